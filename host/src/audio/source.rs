//! [`AudioSource`]: a push-based audio track (an agent's TTS output).

use std::collections::VecDeque;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::pacer::{Pace, Pacer};
use super::resample::{OUTPUT_FRAME_BYTES, OUTPUT_RATE, ResampleError, StereoResampler};
use crate::media::{AudioFrame, ChannelLayout, Frame, MediaKind, MediaStreamTrack, SampleFormat, TrackEnded};

/// Samples per channel in one 20 ms output frame.
pub const FRAME_SAMPLES: usize = 960;
/// Bytes of one 20 ms output frame (interleaved stereo s16 LE).
const FRAME_BYTES: usize = FRAME_SAMPLES * OUTPUT_FRAME_BYTES;
/// Queue capacity kept once a source has drained (a few frames).
const IDLE_CAPACITY: usize = 4 * FRAME_BYTES;

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

/// Which clock wakes a source whose next frame is not yet due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PacingTimer {
    /// The shared precision timer thread (default): sub-millisecond emission.
    #[default]
    Precise,
    /// tokio's timer (1 ms granularity); follows `tokio::time::pause`, so tests
    /// can run on virtual time.
    Tokio,
}

/// Options of an [`AudioSource`] (the Python SDK's keyword arguments).
#[derive(Debug, Clone, Copy, PartialEq)]
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

/// Which input path fed the source last (the other path's resampler is
/// flushed on a switch, so audio stays in push order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LastInput {
    Raw,
    Frame,
}

struct State {
    /// 48 kHz stereo s16 LE bytes, interleaved, awaiting emission.
    buffer: VecDeque<u8>,
    /// Bytes of an incomplete input frame carried to the next push.
    partial: Vec<u8>,
    resampler: StereoResampler,
    /// Resampler for pushed frames, keyed by (rate, channels fed).
    frame_resampler: Option<(u32, usize, StereoResampler)>,
    last_input: LastInput,
    ended: bool,
    stopped: bool,
    pacer: Pacer,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    pts: u64,
    /// Output frames (per channel) ever queued, and ever emitted or cleared.
    queued: u64,
    retired: u64,
    underruns: u64,
    /// Inside an underrun episode (logged once per episode).
    starved: bool,
}

struct Inner {
    id: String,
    opts: AudioSourceOptions,
    cap_bytes: usize,
    state: Mutex<State>,
    /// Serializes concurrent `push` calls so their audio is not interleaved.
    push_lock: tokio::sync::Mutex<()>,
    room: Notify,
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

fn now(timer: PacingTimer) -> Instant {
    match timer {
        PacingTimer::Precise => Instant::now(),
        // tokio's clock, so paused time in tests drives the pacer too.
        PacingTimer::Tokio => tokio::time::Instant::now().into_std(),
    }
}

impl AudioSource {
    /// A source for PCM in the given format.
    pub fn new(opts: AudioSourceOptions) -> Result<Self, AudioSourceError> {
        let m = opts.max_buffered_seconds;
        if !(m.is_finite() && m > 0.0 && m <= 3600.0) {
            return Err(AudioSourceError::InvalidMaxBuffered(m));
        }
        let resampler = StereoResampler::new(opts.input_rate, opts.input_layout.channels())?;
        let cap_bytes = ((m * f64::from(OUTPUT_RATE)) as usize * OUTPUT_FRAME_BYTES).max(FRAME_BYTES);
        let bytes: [u8; 8] = rand::random();
        Ok(Self {
            inner: Arc::new(Inner {
                id: bytes.iter().map(|b| format!("{b:02x}")).collect(),
                opts,
                cap_bytes,
                push_lock: tokio::sync::Mutex::new(()),
                state: Mutex::new(State {
                    buffer: VecDeque::new(),
                    partial: Vec::with_capacity(4),
                    resampler,
                    frame_resampler: None,
                    last_input: LastInput::Raw,
                    ended: false,
                    stopped: false,
                    pacer: Pacer::audio(),
                    sleep: None,
                    pts: 0,
                    queued: 0,
                    retired: 0,
                    underruns: 0,
                    starved: false,
                }),
                room: Notify::new(),
                retired: Notify::new(),
            }),
        })
    }

    /// The options it was built with.
    pub fn options(&self) -> AudioSourceOptions {
        self.inner.opts
    }

    /// This source as a generic track (for `MediaStream::add_track`, a peer's
    /// sender, `iter_frames`); it shares the source.
    pub fn track(&self) -> Arc<dyn MediaStreamTrack> {
        Arc::new(self.clone())
    }

    /// Seconds of audio currently buffered (48 kHz output).
    pub fn buffered_seconds(&self) -> f64 {
        (self.inner.state.lock().buffer.len() / OUTPUT_FRAME_BYTES) as f64 / f64::from(OUTPUT_RATE)
    }

    /// How many 20 ms frames were emitted as (full or partial) silence because the
    /// buffer ran dry.
    pub fn underruns(&self) -> u64 {
        self.inner.state.lock().underruns
    }

    /// How many times the pacing schedule was re-anchored because the consumer
    /// fell more than 100 ms behind (each one is a discontinuity in the
    /// schedule; zero means no drift: frame *n* went out at `start + n · 20 ms`).
    pub fn resyncs(&self) -> u64 {
        self.inner.state.lock().pacer.resyncs()
    }

    /// Waits while the buffer is at the cap; `false` once the source has ended.
    async fn wait_for_room(&self) -> bool {
        loop {
            let notified = self.inner.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let st = self.inner.state.lock();
                if st.ended || st.stopped {
                    return false;
                }
                if st.buffer.len() < self.inner.cap_bytes {
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
        loop {
            if !self.wait_for_room().await {
                return;
            }
            let mut st = self.inner.state.lock();
            if st.ended || st.stopped {
                return;
            }
            let (now, later) = data.split_at(data.len().min(slice));
            st.ingest_pcm(now, bpf);
            data = later;
            if data.is_empty() {
                return;
            }
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
        let fed = channels.min(2);
        let _order = self.inner.push_lock.lock().await;
        {
            let mut st = self.inner.state.lock();
            if st.ended || st.stopped {
                return Ok(());
            }
            if !matches!(&st.frame_resampler, Some((r, c, _)) if *r == frame.sample_rate && *c == fed) {
                let r = StereoResampler::new(frame.sample_rate, fed)?;
                // A format change: the previous frames' tail goes out first.
                let State { frame_resampler, buffer, .. } = &mut *st;
                let before = buffer.len();
                if let Some((_, _, old)) = frame_resampler {
                    old.flush(buffer);
                }
                st.queued += ((st.buffer.len() - before) / OUTPUT_FRAME_BYTES) as u64;
                st.frame_resampler = Some((frame.sample_rate, fed, r));
            }
        }
        let slice = (frame.sample_rate as usize / 50).max(1);
        let mut i = 0;
        while i < n {
            if !self.wait_for_room().await {
                return Ok(());
            }
            let mut st = self.inner.state.lock();
            if st.ended || st.stopped {
                return Ok(());
            }
            let end = (i + slice).min(n);
            st.ingest_frame(frame, i..end);
            i = end;
        }
        Ok(())
    }

    /// Ends the stream (idempotent): what is buffered — including the
    /// resampler's tail — is emitted, then the track ends.
    pub fn end(&self) {
        let mut st = self.inner.state.lock();
        if st.ended {
            return;
        }
        st.ended = true;
        let State { resampler, frame_resampler, buffer, .. } = &mut *st;
        let before = buffer.len();
        resampler.flush(buffer);
        if let Some((_, _, r)) = frame_resampler {
            r.flush(buffer);
        }
        st.queued += ((st.buffer.len() - before) / OUTPUT_FRAME_BYTES) as u64;
        let buffered_frames = st.buffer.len() / OUTPUT_FRAME_BYTES;
        tracing::debug!(track = %self.inner.id, buffered_frames, "end of stream: draining");
        drop(st);
        self.inner.room.notify_waiters();
    }

    /// Drops everything queued at once (barge-in): the track continues with
    /// silence until more audio is pushed. `wait_for_playout` callers resolve.
    pub fn clear(&self) {
        let mut st = self.inner.state.lock();
        let dropped = (st.buffer.len() / OUTPUT_FRAME_BYTES) as u64;
        st.buffer.clear();
        st.buffer.shrink_to(IDLE_CAPACITY);
        st.partial.clear();
        st.resampler.reset();
        if let Some((_, _, r)) = &mut st.frame_resampler {
            r.reset();
        }
        st.retired += dropped;
        tracing::debug!(track = %self.inner.id, dropped_frames = dropped, "cleared (barge-in)");
        drop(st);
        self.inner.room.notify_waiters();
        self.inner.retired.notify_waiters();
    }

    /// Resolves when everything queued so far has been emitted (or cleared, or
    /// the track stopped). Audio still inside the resampler — the filter's
    /// look-ahead, 1.75 ms of input at 16 kHz (plus up to a 1 ms block for rates
    /// rubato resamples itself) — counts once it leaves it: on the next push, or
    /// at [`AudioSource::end`].
    pub async fn wait_for_playout(&self) {
        let target = self.inner.state.lock().queued;
        loop {
            let notified = self.inner.retired.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let st = self.inner.state.lock();
                if st.retired >= target || st.stopped {
                    return;
                }
            }
            notified.await;
        }
    }

    /// The next frame into `out`, reusing its buffer (the allocation-free path).
    pub fn poll_recv_into(&self, cx: &mut Context<'_>, out: &mut AudioFrame) -> Poll<Result<(), TrackEnded>> {
        let mut st = self.inner.state.lock();
        loop {
            if st.stopped {
                return Poll::Ready(Err(TrackEnded));
            }
            if st.ended && st.buffer.is_empty() {
                st.stopped = true;
                drop(st);
                self.inner.retired.notify_waiters();
                return Poll::Ready(Err(TrackEnded));
            }
            let timer = self.inner.opts.timer;
            match st.pacer.poll(now(timer)) {
                Pace::WaitUntil(deadline) if timer == PacingTimer::Precise => {
                    super::timer::PrecisionTimer::global().wake_at(deadline, cx.waker());
                    return Poll::Pending;
                }
                Pace::WaitUntil(deadline) => {
                    let deadline = tokio::time::Instant::from_std(deadline);
                    let sleep = st.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                    sleep.as_mut().reset(deadline);
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
                Pace::Emit { .. } => break,
            }
        }
        let take = st.buffer.len().min(FRAME_BYTES);
        let starved = take < FRAME_BYTES && !st.ended;
        if starved {
            st.underruns += 1;
            if !st.starved {
                tracing::debug!(track = %self.inner.id, "underrun: emitting silence");
            }
        }
        st.starved = starved;
        out.sample_rate = OUTPUT_RATE;
        out.layout = ChannelLayout::Stereo;
        out.format = SampleFormat::S16;
        out.planar = false;
        out.pts = st.pts;
        out.data.clear();
        let (a, b) = st.buffer.as_slices();
        let from_a = a.len().min(take);
        out.data.extend_from_slice(&a[..from_a]);
        out.data.extend_from_slice(&b[..take - from_a]);
        st.buffer.drain(..take);
        if st.buffer.is_empty() && st.buffer.capacity() > IDLE_CAPACITY {
            // A burst is over: give back what it grew (once per burst, not per
            // frame), so thousands of idle sources don't each keep seconds of room.
            st.buffer.shrink_to(IDLE_CAPACITY);
        }
        out.data.resize(FRAME_BYTES, 0);
        st.pts += FRAME_SAMPLES as u64;
        st.retired += (take / OUTPUT_FRAME_BYTES) as u64;
        let room = st.buffer.len() < self.inner.cap_bytes;
        drop(st);
        if room {
            self.inner.room.notify_waiters();
        }
        if take > 0 {
            self.inner.retired.notify_waiters();
        }
        Poll::Ready(Ok(()))
    }

    /// The next frame into `out` (async form of [`AudioSource::poll_recv_into`]).
    pub async fn recv_into(&self, out: &mut AudioFrame) -> Result<(), TrackEnded> {
        std::future::poll_fn(|cx| self.poll_recv_into(cx, out)).await
    }
}

fn empty_frame() -> AudioFrame {
    AudioFrame {
        sample_rate: OUTPUT_RATE,
        layout: ChannelLayout::Stereo,
        format: SampleFormat::S16,
        planar: false,
        pts: 0,
        data: Vec::new(),
    }
}

impl MediaStreamTrack for AudioSource {
    fn kind(&self) -> MediaKind {
        MediaKind::Audio
    }

    fn id(&self) -> &str {
        &self.inner.id
    }

    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Result<Frame, TrackEnded>> {
        let mut frame = empty_frame();
        self.poll_recv_into(cx, &mut frame).map_ok(|()| Frame::Audio(frame))
    }

    fn stop(&self) {
        let mut st = self.inner.state.lock();
        st.stopped = true;
        st.ended = true;
        drop(st);
        self.inner.room.notify_waiters();
        self.inner.retired.notify_waiters();
    }
}

impl State {
    fn ingest_pcm(&mut self, bytes: &[u8], bpf: usize) {
        if self.last_input == LastInput::Frame {
            self.flush_frames();
            self.last_input = LastInput::Raw;
        }
        let before = self.buffer.len();
        let mut rest = bytes;
        if !self.partial.is_empty() {
            let n = (bpf - self.partial.len()).min(rest.len());
            self.partial.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if self.partial.len() == bpf {
                self.resampler.push_s16le(&self.partial, &mut self.buffer);
                self.partial.clear();
            }
        }
        let whole = rest.len() / bpf * bpf;
        self.resampler.push_s16le(&rest[..whole], &mut self.buffer);
        self.partial.extend_from_slice(&rest[whole..]);
        self.queued += ((self.buffer.len() - before) / OUTPUT_FRAME_BYTES) as u64;
    }

    fn flush_frames(&mut self) {
        let before = self.buffer.len();
        if let Some((_, _, r)) = self.frame_resampler.as_mut() {
            r.flush(&mut self.buffer);
        }
        self.queued += ((self.buffer.len() - before) / OUTPUT_FRAME_BYTES) as u64;
    }

    fn ingest_frame(&mut self, frame: &AudioFrame, range: std::ops::Range<usize>) {
        if self.last_input == LastInput::Raw {
            let before = self.buffer.len();
            self.resampler.flush(&mut self.buffer);
            self.queued += ((self.buffer.len() - before) / OUTPUT_FRAME_BYTES) as u64;
            self.last_input = LastInput::Frame;
        }
        let before = self.buffer.len();
        let channels = frame.layout.channels();
        let Some((_, _, r)) = self.frame_resampler.as_mut() else { return };
        let sample = |ch: usize, i: usize| frame.sample_f32(ch, i).unwrap_or(0.0);
        for i in range {
            let (l, rr) = match channels {
                1 => {
                    let s = sample(0, i);
                    (s, s)
                }
                2 => (sample(0, i), sample(1, i)),
                n => {
                    // Generic downmix: even channels left, odd channels right.
                    let (mut l, mut rr) = (0.0, 0.0);
                    for ch in 0..n {
                        if ch % 2 == 0 { l += sample(ch, i) } else { rr += sample(ch, i) }
                    }
                    (l / n.div_ceil(2) as f32, rr / (n / 2) as f32)
                }
            };
            r.push_frame(l, rr, &mut self.buffer);
        }
        r.drain(&mut self.buffer);
        self.queued += ((self.buffer.len() - before) / OUTPUT_FRAME_BYTES) as u64;
    }
}
