//! Media core: frames, tracks, [`MediaStream`], [`StreamMetadata`] and
//! [`iter_frames`]. Doesn't know about WebRTC or wasm: a remote WebRTC track, an
//! [`crate::audio::AudioSource`] or a file decoder are all just
//! [`MediaStreamTrack`]s here.

mod frame;
mod metadata;
mod stream;
mod track;

pub use frame::{AudioFrame, ChannelLayout, SampleFormat, VideoFrame};
pub use metadata::{MetadataError, StreamMetadata};
pub use stream::MediaStream;
pub use track::{Frame, MediaKind, MediaStreamTrack, TrackEnded, iter_frames};
