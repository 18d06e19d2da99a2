//! The room boundary: what an agent's `room` import needs from the peer layer.
//!
//! The runtime doesn't know about WebRTC or the messaging service. A
//! [`RoomHost`] joins channels on an agent's behalf and hands back a
//! [`RoomSession`]; `MeteredPeer` will implement these for real rooms, and
//! [`super::offline::OfflineRoom`] implements them over an input file on a
//! virtual clock.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use metered_media::{MediaStreamTrack, StreamMetadata};

/// A boxed, sendable future (the trait stays object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Who is asking: passed to every [`RoomHost`] call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInfo {
    /// The agent's id (unique per runtime; used in logs).
    pub id: Arc<str>,
}

/// Why a room call was refused. Maps onto the WIT `error` variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoomError {
    /// The agent may not do this (join this channel, publish this).
    #[error("denied: {0}")]
    Denied(String),
    /// No such peer or track.
    #[error("not found: {0}")]
    NotFound(String),
    /// A size or rate limit.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// The room has closed.
    #[error("closed")]
    Closed,
    /// Not offered by this room implementation.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

/// Something that happened in the room.
#[derive(Clone)]
#[non_exhaustive]
pub enum RoomEvent {
    /// A peer joined.
    PeerJoined {
        /// Its peer id.
        peer_id: String,
    },
    /// A peer left; its tracks end.
    PeerLeft {
        /// Its peer id.
        peer_id: String,
    },
    /// A remote track arrived.
    Track {
        /// The sending peer.
        peer_id: String,
        /// The sender's stream id.
        stream_id: String,
        /// The track.
        track: Arc<dyn MediaStreamTrack>,
        /// The sender's metadata (untrusted; the runtime passes it through the
        /// agent's metadata policy before the guest sees it).
        metadata: StreamMetadata,
    },
    /// A peer sent data.
    Data {
        /// The sending peer.
        sender: String,
        /// JSON text as sent (untrusted).
        payload: String,
    },
}

impl std::fmt::Debug for RoomEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RoomEvent::PeerJoined { peer_id } => f.debug_struct("PeerJoined").field("peer_id", peer_id).finish(),
            RoomEvent::PeerLeft { peer_id } => f.debug_struct("PeerLeft").field("peer_id", peer_id).finish(),
            RoomEvent::Track { peer_id, stream_id, track, metadata } => f
                .debug_struct("Track")
                .field("peer_id", peer_id)
                .field("stream_id", stream_id)
                .field("track", &track.id())
                .field("metadata", metadata)
                .finish(),
            RoomEvent::Data { sender, payload } => {
                f.debug_struct("Data").field("sender", sender).field("payload_len", &payload.len()).finish()
            }
        }
    }
}

/// Joins channels for agents. Implemented by the peer layer (`MeteredPeer`) and
/// by [`super::offline::OfflineRoom`].
pub trait RoomHost: Send + Sync + 'static {
    /// Joins `channel` for `agent`. Refuse channels the agent may not enter with
    /// [`RoomError::Denied`].
    fn join<'a>(
        &'a self,
        agent: &'a AgentInfo,
        channel: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn RoomSession>, RoomError>>;
}

/// One agent's membership of one channel. Dropping it leaves the channel.
///
/// The runtime has already checked sizes and applied the metadata policy to
/// everything it passes in; implementations enforce their own rate limits.
pub trait RoomSession: Send + 'static {
    /// This agent's peer id in the room.
    fn peer_id(&self) -> &str;

    /// Publishes `track` under `stream_id` with `metadata`.
    fn add_track(
        &mut self,
        track: Arc<dyn MediaStreamTrack>,
        stream_id: &str,
        metadata: StreamMetadata,
    ) -> Result<(), RoomError>;

    /// Replaces the published track `old_track_id` in place (`None`: send
    /// nothing). [`RoomError::NotFound`] when it isn't published.
    fn replace_track(&mut self, old_track_id: &str, new: Option<Arc<dyn MediaStreamTrack>>) -> Result<(), RoomError>;

    /// Sends `payload` (validated JSON text) to `to`, or to everyone.
    fn send_data(&mut self, to: Option<&str>, payload: &str) -> Result<(), RoomError>;

    /// Polls for the next event; `Ready(None)` once the room has closed (and
    /// forever after).
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<RoomEvent>>;
}

/// A [`RoomHost`] that refuses every join: for agents that run without a room.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRoom;

impl RoomHost for NoRoom {
    fn join<'a>(
        &'a self,
        _agent: &'a AgentInfo,
        channel: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn RoomSession>, RoomError>> {
        let channel = channel.chars().take(64).collect::<String>();
        Box::pin(async move { Err(RoomError::Unsupported(format!("no room host: cannot join {channel:?}"))) })
    }
}
