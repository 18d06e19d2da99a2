//! [`AudioSource`]: input slicing, resampling to 48 kHz stereo (rubato), 20 ms
//! framing and a pure [`pacer::Pacer`] with a thin tokio driver. Doesn't know
//! about sockets, WebRTC or wasm.

pub mod analysis;
pub mod pacer;
mod polyphase;
pub mod resample;
mod source;
mod timer;

pub use source::{AudioSource, AudioSourceError, AudioSourceOptions, FRAME_SAMPLES, InputLayout, PacingTimer};

#[cfg(test)]
mod tests;
