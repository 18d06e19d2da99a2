//! [`MeteredPeer`]: WebRTC rooms on the messaging service, interoperable with the
//! official Python (`metered-realtime[webrtc]`) and browser (`@metered-ca/realtime`)
//! SDKs. Feature `webrtc`.
//!
//! Every peer in a channel connects to every other (mesh). Signalling rides the
//! messaging service's direct messages exactly as the SDKs do it:
//! `rtc-description` / `rtc-ice` payloads, perfect negotiation where the peer
//! whose id sorts lower is polite (it defers its first offer and answers the
//! other side's), `__meteredTrackMeta` messages ahead of the media (never
//! surfaced as data), stream ids in `a=msid` keyed by `a=mid`, connection
//! rebuilds after ICE failure and after our signalling reconnects.
//!
//! Media: audio is Opus at 48 kHz / 20 ms. An outbound track (any
//! [`MediaStreamTrack`](metered_media::MediaStreamTrack), an `metered_audio::AudioSource` first) is encoded once
//! and fanned out to every connection; a received track is a
//! [`RemoteAudioTrack`] that [`metered_media::iter_frames`] reads.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use metered_audio::{AudioSource, AudioSourceOptions};
//! use metered_media::{MediaStream, StreamMetadata, iter_frames};
//! use metered_peer::{MeteredPeer, PeerEvent};
//! use metered_signalling::ClientOptions;
//! use futures_util::StreamExt;
//!
//! let peer = MeteredPeer::new(ClientOptions::with_api_key("pk_live_…").url("ws://127.0.0.1:8787"))?;
//! let mut events = peer.events();
//! peer.join("room-1").await?;
//! let voice = AudioSource::new(AudioSourceOptions::default())?;
//! let stream = MediaStream::with_tracks(Some("agent-voice".into()), [voice.track()]);
//! peer.add_stream(&stream, Some(StreamMetadata::role_label("agent", "Voice")?))?;
//! while let Ok(ev) = events.recv().await {
//!     if let PeerEvent::Track { track, metadata, .. } = ev {
//!         let mut frames = iter_frames(track);
//!         tokio::spawn(async move { while let Some(_frame) = frames.next().await {} });
//!         let _ = metadata;
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Video (feature `video`): VP8 and H.264 both ways — one encoder per codec
//! for each outgoing track, shared by every connection that negotiated it,
//! keyframes on PLI/FIR (rate-limited), bitrate following REMB and loss; a
//! received VP8/H.264 track is a [`RemoteVideoTrack`] of I420 frames.
//! Without the feature, `add_track` of a video track is a typed error and
//! received video is ignored.

mod codec;
mod command;
mod connection;
mod data_channel;
mod error;
mod events;
mod lifecycle;
mod local;
pub mod negotiation;
mod peer;
mod remote;
mod room_driver;
mod rtc;
mod send_gate;
mod state;
pub mod track_meta;
#[cfg(feature = "video")]
mod video_recv;
#[cfg(feature = "video")]
mod video_send;
#[cfg(all(test, feature = "video"))]
mod video_tests;

pub use codec::{CodecError, OpusDepacketizer, OpusPacketizer};
pub use data_channel::{
    DEFAULT_MAX_BUFFERED_AMOUNT, DEFAULT_MAX_QUEUED_SENDS, DataChannel, DataChannelEvent, DataChannelMessage,
    DataChannelOptions, MAX_MESSAGE_BYTES,
};
pub use error::PeerError;
pub use events::{DataKind, PeerEvent};
pub use lifecycle::{ConnectionState, PeerState};
pub use peer::{MeteredPeer, PeerOptions};
pub use remote::{RemoteAudioTrack, RemotePeer};
pub use room_driver::MAX_PEERS_PER_CHANNEL;
pub use rtc::IcePolicy;
#[cfg(feature = "video")]
pub use video_recv::RemoteVideoTrack;
#[cfg(feature = "video")]
pub use video_send::VideoSendOptions;
