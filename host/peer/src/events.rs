//! Typed events of [`super::MeteredPeer`], one stream for the room and every
//! remote peer (the SDKs' `MeteredPeer` and `RemotePeer` events together).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::data_channel::DataChannel;
use super::error::PeerError;
use super::lifecycle::{ConnectionState, PeerState};
use super::remote::RemotePeer;
use metered_media::{MediaStream, MediaStreamTrack, StreamMetadata};

/// Whether `Data` came from a channel broadcast or a direct message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    /// `send` to the room.
    Broadcast,
    /// `send_to` / `RemotePeer::send`.
    Direct,
}

/// Something that happened in the room.
#[derive(Clone)]
#[non_exhaustive]
pub enum PeerEvent {
    /// We entered the channel.
    Joined {
        /// Our peer id.
        peer_id: String,
        /// The channel.
        channel: String,
    },
    /// We left the channel for good.
    Left {
        /// Our peer id.
        peer_id: Option<String>,
        /// The channel.
        channel: Option<String>,
        /// Why.
        reason: Option<String>,
    },
    /// Our state changed.
    StateChange {
        /// Previous state.
        from: PeerState,
        /// New state.
        to: PeerState,
    },
    /// A peer joined the channel (its connection already carries our media).
    PeerJoined {
        /// The peer.
        peer: RemotePeer,
    },
    /// A peer left; its tracks end.
    PeerLeft {
        /// The peer.
        peer: RemotePeer,
    },
    /// A remote peer's connection state changed.
    PeerStateChange {
        /// The peer.
        peer: RemotePeer,
        /// Previous state.
        from: ConnectionState,
        /// New state.
        to: ConnectionState,
    },
    /// A remote track arrived (its metadata, if sent, already resolved).
    Track {
        /// The sender.
        peer: RemotePeer,
        /// The track: feed it to [`metered_media::iter_frames`].
        track: Arc<dyn MediaStreamTrack>,
        /// The sender's stream grouping (empty when it sent none).
        streams: Vec<MediaStream>,
        /// The sender's metadata (untrusted peer input).
        metadata: Option<StreamMetadata>,
    },
    /// First track of a stream id not seen on this connection generation.
    StreamAdded {
        /// The sender.
        peer: RemotePeer,
        /// A fresh object per reconnect; `id()` is the sender's, stable.
        stream: MediaStream,
        /// The sender's metadata.
        metadata: Option<StreamMetadata>,
    },
    /// Every track of a stream ended (not fired on reconnects).
    StreamRemoved {
        /// The sender.
        peer: RemotePeer,
        /// The stream.
        stream: MediaStream,
    },
    /// The remote peer opened a WebRTC data channel to us (read it with
    /// [`DataChannel::recv`]; it closes with the connection generation).
    DataChannelOpened {
        /// The peer.
        peer: RemotePeer,
        /// The channel.
        channel: DataChannel,
    },
    /// Application data from a peer in the channel.
    Data {
        /// Server-stamped sender (never trust a `from` inside `data`).
        sender_peer_id: String,
        /// The payload (untrusted).
        data: Value,
        /// Broadcast or direct.
        kind: DataKind,
        /// The sender's token metadata, when joined with sender metadata.
        sender_metadata: Option<Map<String, Value>>,
    },
    /// Something the application must react to (auth refused, kicked, ...).
    FatalError {
        /// The error.
        error: PeerError,
    },
    /// Negotiation with a peer failed (bad SDP, recovery gave up).
    NegotiationError {
        /// The peer.
        peer: RemotePeer,
        /// What failed.
        error: PeerError,
    },
    /// A well-formed remote candidate was refused.
    IceCandidateError {
        /// The peer.
        peer: RemotePeer,
        /// What failed.
        error: PeerError,
    },
}

impl std::fmt::Debug for PeerEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerEvent::Joined { peer_id, channel } => write!(f, "Joined({peer_id}, {channel})"),
            PeerEvent::Left { reason, .. } => write!(f, "Left({reason:?})"),
            PeerEvent::StateChange { from, to } => write!(f, "StateChange({from:?} -> {to:?})"),
            PeerEvent::PeerJoined { peer } => write!(f, "PeerJoined({})", peer.id()),
            PeerEvent::PeerLeft { peer } => write!(f, "PeerLeft({})", peer.id()),
            PeerEvent::PeerStateChange { peer, from, to } => {
                write!(f, "PeerStateChange({}, {from:?} -> {to:?})", peer.id())
            }
            PeerEvent::Track { peer, track, streams, metadata } => write!(
                f,
                "Track({}, {}, streams {:?}, {:?})",
                peer.id(),
                track.id(),
                streams.iter().map(MediaStream::id).collect::<Vec<_>>(),
                metadata
            ),
            PeerEvent::StreamAdded { peer, stream, .. } => write!(f, "StreamAdded({}, {})", peer.id(), stream.id()),
            PeerEvent::StreamRemoved { peer, stream } => write!(f, "StreamRemoved({}, {})", peer.id(), stream.id()),
            PeerEvent::DataChannelOpened { peer, channel } => {
                write!(f, "DataChannelOpened({}, {:?})", peer.id(), channel.label())
            }
            PeerEvent::Data { sender_peer_id, kind, .. } => write!(f, "Data({sender_peer_id}, {kind:?})"),
            PeerEvent::FatalError { error } => write!(f, "FatalError({error})"),
            PeerEvent::NegotiationError { peer, error } => write!(f, "NegotiationError({}, {error})", peer.id()),
            PeerEvent::IceCandidateError { peer, error } => write!(f, "IceCandidateError({}, {error})", peer.id()),
        }
    }
}
