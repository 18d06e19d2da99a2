//! Media sources: files, RTSP streams, cameras, microphones and screens as
//! tracks, behind a source policy.
//!
//! Work in progress (issue 11): see `docs/ARCHITECTURE.md`.

mod device;
mod error;
mod ffmpeg;
mod file;
mod microphone;
mod player;
mod policy;
mod registry;
mod rtsp;

pub use device::{DEVICE_FORMATS, DeviceList, cameras, default_display, from_device, list_devices};
pub use error::{DeviceProblem, Rule, SourceError};
pub use file::from_reader;
pub use microphone::microphones;
pub use player::{AudioTrack, EndReason, Player, PlayerState, VideoTrack};
pub use policy::{
    CheckedFile, CheckedUrl, FILE_FORMATS, FfmpegOptions, MAX_SOURCE_LEN, PSEUDO_PROTOCOLS, SourcePolicy,
    SourcePolicyConfig, is_internal,
};
pub use registry::{BoxFuture, Registry, RtspTransport, Source, SourceOptions, Sources};
pub use rtsp::from_rtsp;
