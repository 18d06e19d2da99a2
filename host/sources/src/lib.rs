//! Media sources: files, RTSP streams, cameras, microphones and screens as
//! tracks, behind a source policy.
//!
//! Work in progress (issue 11): see `docs/ARCHITECTURE.md`.

mod error;

pub use error::{DeviceProblem, Rule, SourceError};
