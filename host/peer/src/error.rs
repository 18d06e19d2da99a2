//! Errors of [`super::MeteredPeer`].

use metered_media::MetadataError;
use metered_signalling::ClientError;

/// Why a [`super::MeteredPeer`] call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// Building the WebRTC stack or the signalling client failed.
    #[error("setup failed: {0}")]
    Setup(String),
    /// The call is not allowed in the peer's current state.
    #[error("{op}: not allowed in state {state:?}")]
    InvalidState {
        /// The call.
        op: &'static str,
        /// The peer's state.
        state: super::lifecycle::PeerState,
    },
    /// `send` / `send_to` before `join`.
    #[error("not joined; call join() first")]
    NotJoined,
    /// The channel uses a reserved prefix (`_metered/`, `_internal/`, `_system/`).
    #[error("channel {0:?} uses a reserved prefix")]
    ReservedChannel(String),
    /// `send_to` our own peer id.
    #[error("cannot send to self")]
    SelfSend,
    /// The payload is over the server's message-size cap.
    #[error("payload of {size} bytes exceeds the {max}-byte message cap")]
    Oversized {
        /// Serialized size.
        size: usize,
        /// The cap.
        max: usize,
    },
    /// The track is already attached (to another stream); remove it first.
    #[error("track {0:?} is already attached to another stream; remove_track first")]
    TrackAlreadyAttached(String),
    /// No such local track.
    #[error("track {0:?} is not attached")]
    UnknownTrack(String),
    /// The tracks' kinds differ (audio vs video).
    #[error("replace_track: kinds differ")]
    KindMismatch,
    /// Bad metadata.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// The signalling client refused or failed.
    #[error(transparent)]
    Signalling(#[from] ClientError),
    /// No channel roster arrived after a reconnect, even after re-issuing the
    /// subscribe: `close` this peer and build a new one to re-join.
    #[error(
        "reconcile timed out: no channel presence arrived after reconnect; close this peer and build a new one to re-join"
    )]
    ReconcileTimeout,
    /// The WebRTC stack failed (description, candidate, transport).
    #[error("webrtc: {0}")]
    Rtc(String),
    /// Too many `DataChannel::send` calls are waiting for buffer room.
    #[error("data channel send queue is full ({queued} waiting, max {max}); back off")]
    DataChannelOverflow {
        /// Sends already waiting.
        queued: usize,
        /// The cap.
        max: usize,
    },
    /// The data channel is not open (closed, or not open yet).
    #[error("data channel is not open")]
    DataChannelClosed,
    /// The peer was closed.
    #[error("peer closed")]
    Closed,
}
