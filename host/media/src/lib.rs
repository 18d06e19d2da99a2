//! Media core: frames, tracks, [`MediaStream`], [`StreamMetadata`],
//! [`iter_frames`], [`VideoSource`] and the media [`clock`]. Doesn't know about WebRTC, wasm
//! or FFmpeg: a remote WebRTC track, an `AudioSource` (crate
//! `metered-audio`) or a file decoder are all just [`MediaStreamTrack`]s
//! here.

pub mod clock;
mod frame;
mod metadata;
mod queue;
mod stream;
mod track;
mod video;

pub use clock::{PreciseTimer, Sleep, Timer, VirtualClock};
pub use frame::{AudioFrame, ChannelLayout, Rotation, SampleFormat, VIDEO_CLOCK_RATE, VideoFrame, VideoFrameError};
pub use metadata::{MetadataError, StreamMetadata};
pub use queue::FrameQueue;
pub use stream::MediaStream;
pub use track::{Frame, MediaKind, MediaStreamTrack, TrackEnded, iter_frames};
pub use video::{Anchor, Overflow, VideoSource, VideoSourceOptions, block_on};
