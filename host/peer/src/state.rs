//! The room's shared state, behind every [`MeteredPeer`](super::MeteredPeer)
//! clone: [`Inner`] (the signalling client, the WebRTC stack, the event
//! stream, the [`SendGate`]) around one lock on [`RoomState`] (state, ids,
//! the peer set, the local [`Tracked`] tracks, the post-reconnect
//! [`Reconcile`]). The public calls live in `peer.rs`, the signalling-event
//! handling in `room_driver.rs`; both work on this.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::broadcast;

use super::command::Command;
use super::connection::Connection;
use super::error::PeerError;
use super::events::PeerEvent;
use super::lifecycle::PeerState;
use super::local::LocalTrack;
use super::remote::RemotePeer;
use super::rtc::RtcApi;
use super::send_gate::SendGate;
use metered_media::{MediaKind, MediaStream, MediaStreamTrack, StreamMetadata};
use metered_protocol::TrackMeta;
use metered_signalling::{IceServer, SignallingClient, SubscribeOptions};

/// The message-size cap until the server's welcome states its own.
const FALLBACK_MAX_MESSAGE_SIZE: usize = 65_536;

/// Forced resubscribes after a reconnect before [`PeerError::ReconcileTimeout`].
pub(crate) const MAX_RECONCILE_RESUBSCRIBES: u32 = 2;

/// A local track being sent.
pub(crate) struct Tracked {
    /// The id on the wire (the first track's id; kept across `replace_track`).
    pub(crate) wire_id: String,
    /// The application's current track.
    pub(crate) source: Arc<dyn MediaStreamTrack>,
    pub(crate) stream: Option<MediaStream>,
    pub(crate) metadata: Option<StreamMetadata>,
    pub(crate) local: Arc<LocalTrack>,
}

impl Tracked {
    /// The `__meteredTrackMeta` message for a track (`m: None` clears it remotely).
    pub(crate) fn meta_for(
        track_id: &str,
        kind: MediaKind,
        stream: Option<&MediaStream>,
        m: Option<&StreamMetadata>,
    ) -> Value {
        TrackMeta {
            track_id: track_id.to_owned(),
            metadata: m.map(|m| m.as_map().clone()),
            kind: Some(kind.as_str().to_owned()),
            stream_id: stream.map(|s| s.id().to_owned()),
        }
        .to_value()
    }

    /// The set-message for this track, if it has metadata.
    pub(crate) fn meta_message(&self) -> Option<Value> {
        let m = self.metadata.as_ref()?;
        Some(Self::meta_for(self.source.id(), self.source.kind(), self.stream.as_ref(), Some(m)))
    }
}

/// Everything about the room that changes, under one lock.
pub(crate) struct RoomState {
    pub(crate) state: PeerState,
    pub(crate) peer_id: Option<String>,
    pub(crate) channel: Option<String>,
    pub(crate) ice_servers: Vec<IceServer>,
    pub(crate) max_message_size: usize,
    /// Every remote peer now known, with the handle on its connection driver.
    pub(crate) peers: HashMap<String, (RemotePeer, Connection)>,
    /// The local tracks being sent (every newcomer and rebuild gets them).
    pub(crate) tracked: Vec<Tracked>,
    /// The options `join` subscribed with (a forced resubscribe reuses them).
    pub(crate) join_opts: SubscribeOptions,
    pub(crate) reconcile: Reconcile,
}

/// Waiting for the roster after a reconnect: the first presence frame is the
/// channel's snapshot (see `room_driver.rs`). Armed by the reconnect's welcome; if no
/// presence arrives by `deadline`, the subscribe is re-issued up to
/// [`MAX_RECONCILE_RESUBSCRIBES`] times, then the peer gives up.
#[derive(Debug, Default)]
pub(crate) struct Reconcile {
    pub(crate) pending: bool,
    pub(crate) deadline: Option<tokio::time::Instant>,
    pub(crate) resubscribes: u32,
}

/// What every [`MeteredPeer`](super::MeteredPeer) clone shares.
pub(crate) struct Inner {
    pub(crate) client: SignallingClient,
    pub(crate) reconcile_deadline: Duration,
    pub(crate) api: Arc<RtcApi>,
    pub(crate) events: broadcast::Sender<PeerEvent>,
    pub(crate) st: Mutex<RoomState>,
    pub(crate) gate: SendGate,
}

impl Inner {
    /// An idle room over `client` (not connected), with an event buffer of
    /// `event_capacity` (at least 16) per subscriber.
    pub(crate) fn new(
        client: SignallingClient,
        api: Arc<RtcApi>,
        event_capacity: usize,
        reconcile_deadline: Duration,
    ) -> Self {
        let (events, _) = broadcast::channel(event_capacity.max(16));
        let gate = SendGate::new(client.clone(), FALLBACK_MAX_MESSAGE_SIZE);
        Self {
            client,
            api,
            events,
            st: Mutex::new(RoomState {
                state: PeerState::Idle,
                peer_id: None,
                channel: None,
                ice_servers: Vec::new(),
                max_message_size: FALLBACK_MAX_MESSAGE_SIZE,
                peers: HashMap::new(),
                tracked: Vec::new(),
                join_opts: SubscribeOptions::default(),
                reconcile: Reconcile::default(),
            }),
            gate,
            reconcile_deadline,
        }
    }

    pub(crate) fn emit(&self, ev: PeerEvent) {
        let _ = self.events.send(ev);
    }

    /// Moves to `to` (the send gate opens only in `Joined`); emits
    /// [`PeerEvent::StateChange`] if that is a change.
    pub(crate) fn set_state(&self, to: PeerState) {
        let from = std::mem::replace(&mut self.st.lock().state, to);
        self.gate.set_joined(to == PeerState::Joined);
        if from != to {
            self.emit(PeerEvent::StateChange { from, to });
        }
    }

    /// Media calls are refused once leaving or closed.
    pub(crate) fn require_media_state(&self, op: &'static str) -> Result<(), PeerError> {
        let state = self.st.lock().state;
        if matches!(state, PeerState::Leaving | PeerState::Closed) {
            return Err(PeerError::InvalidState { op, state });
        }
        Ok(())
    }

    /// Queues `make(peer_id)`'s commands on every connection (while joining
    /// or joined; otherwise newcomers and reconnects pick the change up).
    pub(crate) fn to_all(&self, make: impl Fn(&str) -> Vec<Command>) {
        let st = self.st.lock();
        if !matches!(st.state, PeerState::Joined | PeerState::Joining) {
            return; // newcomers and reconnects re-attach from `tracked`
        }
        for (id, (_, conn)) in &st.peers {
            for cmd in make(id) {
                conn.send(cmd);
            }
        }
    }
}
