//! [`SendGate`]: the checks every application send passes — `MeteredPeer::send`,
//! `MeteredPeer::send_to` and `RemotePeer::send` share one (joined, not to
//! self, under the server's size cap).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parking_lot::Mutex;
use serde_json::Value;

use super::error::PeerError;
use metered_protocol::TrackMeta;
use metered_signalling::SignallingClient;

/// The checks every send passes (joined, not to self, under the size cap).
/// Cheap to clone; clones share the flags (the room sets them, every
/// [`RemotePeer`](super::RemotePeer) reads them).
#[derive(Clone)]
pub(crate) struct SendGate {
    client: SignallingClient,
    joined: Arc<AtomicBool>,
    self_id: Arc<Mutex<Option<String>>>,
    max: Arc<AtomicUsize>,
}

impl SendGate {
    /// A closed gate (not joined, no self id) with a size cap of `max` bytes.
    pub(crate) fn new(client: SignallingClient, max: usize) -> Self {
        Self { client, joined: Arc::default(), self_id: Arc::default(), max: Arc::new(AtomicUsize::new(max)) }
    }

    /// Opens (or closes) the gate: sends pass only while the room is joined.
    pub(crate) fn set_joined(&self, joined: bool) {
        self.joined.store(joined, Ordering::Release);
    }

    pub(crate) fn set_self_id(&self, id: &str) {
        *self.self_id.lock() = Some(id.to_owned());
    }

    pub(crate) fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Relaxed);
    }

    /// Whether `data`, serialized, is within the server's size cap.
    pub(crate) fn check_size(&self, data: &Value) -> Result<(), PeerError> {
        let size = serde_json::to_string(data).map(|s| s.len()).unwrap_or(0);
        let max = self.max.load(Ordering::Relaxed);
        if size > max {
            return Err(PeerError::Oversized { size, max });
        }
        Ok(())
    }

    /// Sends `data` to one peer (server-routed direct message) once every check passes.
    pub(crate) async fn send_to(&self, peer_id: &str, data: Value) -> Result<(), PeerError> {
        if !self.joined.load(Ordering::Acquire) {
            return Err(PeerError::NotJoined);
        }
        if peer_id.is_empty() {
            return Err(PeerError::Signalling(metered_signalling::ClientError::NotConnected));
        }
        if self.self_id.lock().as_deref() == Some(peer_id) {
            return Err(PeerError::SelfSend);
        }
        if TrackMeta::is_reserved(&data) {
            tracing::warn!(target: "metered_realtime::peer", "send_to: payload uses the reserved key __meteredTrackMeta");
        }
        self.check_size(&data)?;
        Ok(self.client.send(peer_id, data).await?)
    }
}
