//! [`AudioSource`]: a push-based audio track (an agent's TTS output) — the
//! thin driver around the pure [`super::framer::Framer`]: it holds the
//! lock, the wake-ups (backpressure, playout) and the clock.

use std::fmt;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use metered_media::{
    Anchor, AudioFrame, Frame, MediaKind, MediaStreamTrack, PreciseTimer, Sleep, Timer, TrackEnded, VirtualClock,
};
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::framer::{FRAME_BYTES, Framer, Poll as Framed};
use super::resample::{OUTPUT_FRAME_BYTES, OUTPUT_RATE, ResampleError};

/// Layout of raw PCM pushed with [`AudioSource::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputLayout {
    /// One channel.
    Mono,
    /// Two interleaved channels.
    Stereo,
}

impl InputLayout {
    fn channels(self) -> usize {
        match self {
            InputLayout::Mono => 1,
            InputLayout::Stereo => 2,
        }
    }
}

impl FromStr for InputLayout {
    type Err = AudioSourceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mono" => Ok(InputLayout::Mono),
            "stereo" => Ok(InputLayout::Stereo),
            other => Err(AudioSourceError::InvalidLayout(other.chars().take(32).collect())),
        }
    }
}

/// Which clock paces a source (and wakes it when its next frame is due).
#[derive(Clone, Default)]
pub enum PacingTimer {
    /// Real time, woken by the shared precision timer thread (default):
    /// sub-millisecond emission.
    #[default]
    Precise,
    /// tokio's timer (1 ms granularity); follows `tokio::time::pause`, so
    /// tests on tokio's paused time drive the pacer too.
    Tokio,
    /// Any other [`Timer`]: a [`VirtualClock`] (the offline harness runs
    /// agents on one), or your own.
    Clock(Arc<dyn Timer>),
}

impl PacingTimer {
    /// The timer behind this choice.
    pub fn timer(&self) -> Arc<dyn Timer> {
        match self {
            PacingTimer::Precise => PreciseTimer::shared(),
            PacingTimer::Tokio => Arc::new(TokioTimer),
            PacingTimer::Clock(t) => t.clone(),
        }
    }
}

impl From<VirtualClock> for PacingTimer {
    fn from(clock: VirtualClock) -> Self {
        PacingTimer::Clock(Arc::new(clock))
    }
}

impl fmt::Debug for PacingTimer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacingTimer::Precise => f.write_str("Precise"),
            PacingTimer::Tokio => f.write_str("Tokio"),
            PacingTimer::Clock(_) => f.write_str("Clock(..)"),
        }
    }
}

impl PartialEq for PacingTimer {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (PacingTimer::Precise, PacingTimer::Precise) | (PacingTimer::Tokio, PacingTimer::Tokio) => true,
            (PacingTimer::Clock(a), PacingTimer::Clock(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// tokio's clock and timer, as a [`Timer`].
#[derive(Debug, Clone, Copy)]
struct TokioTimer;

impl Timer for TokioTimer {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(TokioSleep { deadline, sleep: Box::pin(tokio::time::sleep_until(deadline.into())) })
    }
}

struct TokioSleep {
    deadline: Instant,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl std::future::Future for TokioSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.sleep.as_mut().poll(cx)
    }
}

impl Sleep for TokioSleep {
    fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
        self.deadline = deadline;
        self.sleep.as_mut().reset(deadline.into());
    }
    fn deadline(&self) -> Instant {
        self.deadline
    }
}

/// Options of an [`AudioSource`] (the Python SDK's keyword arguments).
#[derive(Debug, Clone, PartialEq)]
pub struct AudioSourceOptions {
    /// Sample rate of raw PCM passed to `push` (default 16 000).
    pub input_rate: u32,
    /// Layout of raw PCM passed to `push` (default mono).
    pub input_layout: InputLayout,
    /// `push` suspends once this many seconds are buffered (default 5.0).
    pub max_buffered_seconds: f64,
    /// The clock that paces emission.
    pub timer: PacingTimer,
}

impl Default for AudioSourceOptions {
    fn default() -> Self {
        Self {
            input_rate: 16_000,
            input_layout: InputLayout::Mono,
            max_buffered_seconds: 5.0,
            timer: PacingTimer::Precise,
        }
    }
}

/// Why an [`AudioSource`] could not be built, or a frame was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AudioSourceError {
    /// `input_layout` is not `mono` or `stereo` (build an [`AudioFrame`] for others).
    #[error("input_layout must be \"mono\" or \"stereo\", got {0:?}; for other layouts push an AudioFrame")]
    InvalidLayout(String),
    /// `max_buffered_seconds` is not a positive, finite number of at most an hour.
    #[error("max_buffered_seconds must be in (0, 3600], got {0}")]
    InvalidMaxBuffered(f64),
    /// The input rate cannot be resampled.
    #[error(transparent)]
    Resample(#[from] ResampleError),
    /// A pushed frame is malformed (byte length, channel count).
    #[error("invalid audio frame: {0}")]
    InvalidFrame(&'static str),
}

/// What the lock guards: the framer and the pacer's wake-up.
struct Driver {
    framer: Framer,
    /// Made on the first wait, reset for every later one (no allocation per frame).
    sleep: Option<Pin<Box<dyn Sleep>>>,
}

struct Inner {
    id: String,
    opts: AudioSourceOptions,
    timer: Arc<dyn Timer>,
    driver: Mutex<Driver>,
    /// Serializes concurrent `push` calls so their audio is not interleaved.
    push_lock: tokio::sync::Mutex<()>,
    /// The queue went under its cap, or the source closed.
    room: Notify,
    /// Queued audio was emitted or dropped, or the track stopped.
    retired: Notify,
}

/// A push-based audio track: push PCM (or frames) as it is produced; the track
/// emits real-time-paced 20 ms frames of 48 kHz stereo s16, silence on
/// underrun, and `push` suspends once `max_buffered_seconds` are buffered
/// (backpressure), even inside one oversized push. Clones share the source.
#[derive(Clone)]
pub struct AudioSource {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AudioSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioSource").field("id", &self.inner.id).field("opts", &self.inner.opts).finish()
    }
}

impl AudioSource {
    /// A source for PCM in the given format.
    pub fn new(opts: AudioSourceOptions) -> Result<Self, AudioSourceError> {
        let m = opts.max_buffered_seconds;
        if !(m.is_finite() && m > 0.0 && m <= 3600.0) {
            return Err(AudioSourceError::InvalidMaxBuffered(m));
        }
        let cap_bytes = ((m * f64::from(OUTPUT_RATE)) as usize * OUTPUT_FRAME_BYTES).max(FRAME_BYTES);
        let framer = Framer::new(opts.input_rate, opts.input_layout.channels(), cap_bytes)?;
        let bytes: [u8; 8] = rand::random();
        Ok(Self {
            inner: Arc::new(Inner {
                id: bytes.iter().map(|b| format!("{b:02x}")).collect(),
                timer: opts.timer.timer(),
                opts,
                driver: Mutex::new(Driver { framer, sleep: None }),
                push_lock: tokio::sync::Mutex::new(()),
                room: Notify::new(),
                retired: Notify::new(),
            }),
        })
    }

    /// The options it was built with.
    pub fn options(&self) -> AudioSourceOptions {
        self.inner.opts.clone()
    }

    /// This source as a generic track (for `MediaStream::add_track`, a peer's
    /// sender, `iter_frames`); it shares the source.
    pub fn track(&self) -> Arc<dyn MediaStreamTrack> {
        Arc::new(self.clone())
    }

    /// Puts this source on a schedule shared with other tracks (a player's
    /// video): its first frame is due at the [`Anchor`], whichever track sets
    /// it. Call before the first frame is read; later it has no effect.
    pub fn share_anchor(&self, anchor: Anchor) {
        self.inner.driver.lock().framer.share_anchor(anchor);
    }

    /// Seconds of audio currently buffered (48 kHz output).
    pub fn buffered_seconds(&self) -> f64 {
        self.inner.driver.lock().framer.buffered_seconds()
    }

    /// How many 20 ms frames were emitted as (full or partial) silence because the
    /// buffer ran dry.
    pub fn underruns(&self) -> u64 {
        self.inner.driver.lock().framer.underruns()
    }

    /// How many times the pacing schedule was re-anchored because the consumer
    /// fell more than 100 ms behind (each one is a discontinuity in the
    /// schedule; zero means no drift: frame *n* went out at `start + n · 20 ms`).
    pub fn resyncs(&self) -> u64 {
        self.inner.driver.lock().framer.resyncs()
    }

    /// Waits while the queue is at the cap; `false` once the source has
    /// closed (ended or stopped).
    async fn wait_for_room(&self) -> bool {
        loop {
            let notified = self.inner.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let d = self.inner.driver.lock();
                if d.framer.closed() {
                    return false;
                }
                if d.framer.has_room() {
                    return true;
                }
            }
            notified.await;
        }
    }

    /// Queues raw s16 little-endian PCM in the configured `input_rate` /
    /// `input_layout`. Sub-sample remainders are carried to the next push. A
    /// no-op after [`AudioSource::end`] or once the track stopped.
    pub async fn push(&self, pcm: &[u8]) {
        let bpf = 2 * self.inner.opts.input_layout.channels();
        let slice = ((self.inner.opts.input_rate as usize / 50) * bpf).max(bpf);
        let _order = self.inner.push_lock.lock().await;
        let mut data = pcm;
        while !data.is_empty() {
            if !self.wait_for_room().await {
                return;
            }
            let mut d = self.inner.driver.lock();
            if d.framer.closed() {
                return;
            }
            let (now, later) = data.split_at(data.len().min(slice));
            d.framer.push_pcm(now);
            data = later;
        }
    }

    /// Queues a frame of any rate, format and layout (downmixed or upmixed to
    /// stereo). A no-op after [`AudioSource::end`].
    pub async fn push_frame(&self, frame: &AudioFrame) -> Result<(), AudioSourceError> {
        let n =
            frame.samples_per_channel().ok_or(AudioSourceError::InvalidFrame("byte length is not whole samples"))?;
        let channels = frame.layout.channels();
        if channels == 0 {
            return Err(AudioSourceError::InvalidFrame("no channels"));
        }
        let _order = self.inner.push_lock.lock().await;
        {
            let mut d = self.inner.driver.lock();
            if d.framer.closed() {
                return Ok(());
            }
            d.framer.frame_format(frame.sample_rate, channels.min(2))?;
        }
        let slice = (frame.sample_rate as usize / 50).max(1);
        let mut i = 0;
        while i < n {
            if !self.wait_for_room().await {
                return Ok(());
            }
            let mut d = self.inner.driver.lock();
            if d.framer.closed() {
                return Ok(());
            }
            let end = (i + slice).min(n);
            d.framer.push_frame(frame, i..end);
            i = end;
        }
        Ok(())
    }

    /// Queues a frame like [`AudioSource::push_frame`] if the queue is under
    /// its cap right now, without waiting; returns whether it was queued
    /// (`false`: full, another push is running, or the source ended — the
    /// frame is dropped). For producers that must not block on a consumer
    /// that may never read: a live capture, a player whose other track is
    /// the one being played.
    pub fn try_push_frame(&self, frame: &AudioFrame) -> Result<bool, AudioSourceError> {
        let n =
            frame.samples_per_channel().ok_or(AudioSourceError::InvalidFrame("byte length is not whole samples"))?;
        let channels = frame.layout.channels();
        if channels == 0 {
            return Err(AudioSourceError::InvalidFrame("no channels"));
        }
        let Ok(_order) = self.inner.push_lock.try_lock() else { return Ok(false) };
        let mut d = self.inner.driver.lock();
        if d.framer.closed() || !d.framer.has_room() {
            return Ok(false);
        }
        d.framer.frame_format(frame.sample_rate, channels.min(2))?;
        d.framer.push_frame(frame, 0..n);
        Ok(true)
    }

    /// Samples (per channel, 48 kHz) emitted so far, silence included: the
    /// track's playout position.
    pub fn played_samples(&self) -> u64 {
        self.inner.driver.lock().framer.played_samples()
    }

    /// Ends the stream (idempotent): what is buffered — including the
    /// resampler's tail — is emitted, then the track ends.
    pub fn end(&self) {
        let left = self.inner.driver.lock().framer.end();
        if let Some(buffered_frames) = left {
            tracing::debug!(track = %self.inner.id, buffered_frames, "end of stream: draining");
            self.inner.room.notify_waiters();
        }
    }

    /// Drops everything queued at once (barge-in): the track continues with
    /// silence until more audio is pushed. `wait_for_playout` callers resolve.
    pub fn clear(&self) {
        let dropped = self.inner.driver.lock().framer.clear();
        tracing::debug!(track = %self.inner.id, dropped_samples = dropped, "cleared (barge-in)");
        self.inner.room.notify_waiters();
        self.inner.retired.notify_waiters();
    }

    /// Resolves when everything queued so far has been emitted (or cleared, or
    /// the track stopped). Audio still inside the resampler — the filter's
    /// look-ahead, 1.75 ms of input at 16 kHz (plus up to a 1 ms block for rates
    /// rubato resamples itself) — counts once it leaves it: on the next push, or
    /// at [`AudioSource::end`].
    pub async fn wait_for_playout(&self) {
        let mark = self.inner.driver.lock().framer.queued_mark();
        loop {
            let notified = self.inner.retired.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.inner.driver.lock().framer.played_out(mark) {
                return;
            }
            notified.await;
        }
    }

    /// The next frame into `out`, reusing its buffer (the allocation-free path).
    pub fn poll_recv_into(&self, cx: &mut Context<'_>, out: &mut AudioFrame) -> Poll<Result<(), TrackEnded>> {
        let mut d = self.inner.driver.lock();
        let (had_audio, room) = loop {
            let was_starved = d.framer.starved();
            match d.framer.poll_frame(self.inner.timer.now(), out) {
                Framed::Frame { had_audio, room } => {
                    if d.framer.starved() && !was_starved {
                        tracing::debug!(track = %self.inner.id, "underrun: emitting silence");
                    }
                    break (had_audio, room);
                }
                Framed::Ended => {
                    drop(d);
                    self.inner.retired.notify_waiters();
                    return Poll::Ready(Err(TrackEnded));
                }
                Framed::WaitUntil(deadline) => {
                    let Driver { sleep, .. } = &mut *d;
                    match sleep {
                        Some(s) => self.inner.timer.reset(s, deadline),
                        None => *sleep = Some(self.inner.timer.sleep_until(deadline)),
                    }
                    if let Some(s) = sleep.as_mut()
                        && s.as_mut().poll(cx).is_pending()
                    {
                        return Poll::Pending;
                    }
                }
            }
        };
        drop(d);
        if room {
            self.inner.room.notify_waiters();
        }
        if had_audio {
            self.inner.retired.notify_waiters();
        }
        Poll::Ready(Ok(()))
    }

    /// The next frame into `out` (async form of [`AudioSource::poll_recv_into`]).
    pub async fn recv_into(&self, out: &mut AudioFrame) -> Result<(), TrackEnded> {
        std::future::poll_fn(|cx| self.poll_recv_into(cx, out)).await
    }
}

impl MediaStreamTrack for AudioSource {
    fn kind(&self) -> MediaKind {
        MediaKind::Audio
    }

    fn id(&self) -> &str {
        &self.inner.id
    }

    fn poll_recv_into(&self, cx: &mut Context<'_>, out: &mut Frame) -> Poll<Result<(), TrackEnded>> {
        if !matches!(out, Frame::Audio(_)) {
            *out = Frame::Audio(AudioFrame::empty());
        }
        match out {
            Frame::Audio(frame) => AudioSource::poll_recv_into(self, cx, frame),
            Frame::Video(_) => Poll::Ready(Err(TrackEnded)),
        }
    }

    fn stop(&self) {
        self.inner.driver.lock().framer.stop();
        self.inner.room.notify_waiters();
        self.inner.retired.notify_waiters();
    }
}
