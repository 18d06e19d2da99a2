//! [`AudioSource`]: the push-based audio track of a voice agent (its TTS
//! output). Doesn't know about sockets, WebRTC or wasm.
//!
//! ## Data path
//!
//! `push(pcm)` → partial samples carried → [`resample::StereoResampler`] (rubato's
//! 56-tap sinc, 16 kHz → 48 kHz in 1.73 ms, THD+N ≈ −90 dB) → a byte queue of
//! 48 kHz stereo s16, capped at `max_buffered_seconds` (backpressure: `push`
//! suspends per 20 ms slice) → `recv` takes 960 samples per channel when the
//! [`pacer::Pacer`] says a frame is due, padding with silence on underrun.
//!
//! ## Pacing
//!
//! [`pacer::Pacer`] is pure (`now` in, `Emit`/`WaitUntil` out): frame *n* is
//! due at `anchor + n · 20 ms`, re-anchored after a stall over 100 ms instead
//! of bursting. A private `Framer` holds that and the
//! queue as pure state; `AudioSource` is its thin driver. The clock is a
//! [`Timer`] chosen by [`PacingTimer`]: one shared precision timer thread for
//! the whole process (default: sub-millisecond wake-ups for thousands of
//! sources, no task or timer per source), tokio's timer (which follows
//! `tokio::time::pause`), or any other [`Timer`] — a [`VirtualClock`] runs
//! sources on virtual time (the offline harness, tests).
//!
//! ## Consuming frames
//!
//! ```no_run
//! # async fn demo(tts_pcm: Vec<u8>) -> Result<(), Box<dyn std::error::Error>> {
//! use metered_audio::{AudioSource, AudioSourceOptions};
//! use metered_media::{AudioFrame, ChannelLayout};
//!
//! let source = AudioSource::new(AudioSourceOptions::default())?; // 16 kHz mono in
//! let producer = source.clone();
//! tokio::spawn(async move {
//!     producer.push(&tts_pcm).await; // suspends at the cap
//!     producer.wait_for_playout().await; // everything pushed has been emitted
//!     producer.end(); // drain, then the track ends
//! });
//! // The sender side (an encoder): one reused frame, no allocation per frame.
//! let mut frame = AudioFrame::from_s16(48_000, ChannelLayout::Stereo, 0, &[]);
//! while source.recv_into(&mut frame).await.is_ok() {
//!     // 20 ms of 48 kHz stereo s16 in frame.data, paced in real time
//! }
//! # Ok(()) }
//! ```
//!
//! Generic consumers take it as an `Arc<dyn MediaStreamTrack>` and use
//! [`metered_media::iter_frames`] or `recv` (one allocation per frame).
//!
//! Logs go to `tracing` (target `crate`, field `track`):
//! underrun episodes, `clear`, end of stream — the counterpart of the Python
//! SDK's `logger` argument.

pub mod analysis;
mod framer;
pub mod pacer;
mod polyphase;
pub mod resample;
mod source;

pub use framer::FRAME_SAMPLES;
pub use metered_media::clock::{PreciseTimer, Timer, VirtualClock};
pub use source::{AudioSource, AudioSourceError, AudioSourceOptions, InputLayout, PacingTimer};

#[cfg(test)]
mod tests;
