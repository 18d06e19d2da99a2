//! [`Framer`]: the pure core of an `AudioSource` — input in, resampled to
//! 48 kHz stereo s16, queued under a cap, cut into 20 ms frames on the
//! [`Pacer`]'s schedule. No locks, tasks or clock: `now` is an argument and
//! every answer is a value, so it is tested without time passing
//! (str0m's sans-IO shape).

use std::collections::VecDeque;
use std::ops::Range;
use std::time::Instant;

use metered_media::{Anchor, AudioFrame, ChannelLayout, SampleFormat};

use super::pacer::{Pace, Pacer};
use super::resample::{OUTPUT_FRAME_BYTES, OUTPUT_RATE, ResampleError, StereoResampler};

/// Samples per channel in one 20 ms output frame.
pub const FRAME_SAMPLES: usize = 960;
/// Bytes of one 20 ms output frame (interleaved stereo s16 LE).
pub(crate) const FRAME_BYTES: usize = FRAME_SAMPLES * OUTPUT_FRAME_BYTES;
/// Queue capacity kept once a source has drained (a few frames).
const IDLE_CAPACITY: usize = 4 * FRAME_BYTES;

/// Which input path fed the framer last (the other path's resampler is
/// flushed on a switch, so audio stays in push order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LastInput {
    Raw,
    Frame,
}

/// What [`Framer::poll_frame`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Poll {
    /// A frame was written; `had_audio` says whether any of it was audio
    /// (not padding), `room` whether the queue is now under its cap.
    Frame { had_audio: bool, room: bool },
    /// Nothing is due before this instant.
    WaitUntil(Instant),
    /// The stream ended and everything queued has been emitted (or the
    /// track was stopped).
    Ended,
}

/// The framing state of one source.
#[derive(Debug)]
pub(crate) struct Framer {
    /// 48 kHz stereo s16 LE bytes, interleaved, awaiting emission.
    buffer: VecDeque<u8>,
    cap_bytes: usize,
    /// Bytes of an incomplete input sample frame carried to the next push.
    partial: Vec<u8>,
    /// Bytes per input sample frame of raw pushes (2 × channels).
    raw_frame_bytes: usize,
    resampler: StereoResampler,
    /// Resampler for pushed frames, keyed by (rate, channels fed).
    frame_resampler: Option<(u32, usize, StereoResampler)>,
    last_input: LastInput,
    pacer: Pacer,
    /// A schedule start shared with other tracks (A/V sync).
    anchor: Option<Anchor>,
    pts: u64,
    /// Output sample frames ever queued, and ever emitted or cleared: their
    /// difference is what `wait_for_playout` waits for.
    queued: u64,
    retired: u64,
    underruns: u64,
    /// Inside an underrun episode.
    starved: bool,
    ended: bool,
    stopped: bool,
}

impl Framer {
    /// A framer for raw PCM of `input_rate` with `input_channels` (1 or 2),
    /// queueing at most `cap_bytes` of output (at least one frame).
    pub(crate) fn new(input_rate: u32, input_channels: usize, cap_bytes: usize) -> Result<Self, ResampleError> {
        Ok(Self {
            buffer: VecDeque::new(),
            cap_bytes: cap_bytes.max(FRAME_BYTES),
            partial: Vec::with_capacity(4),
            raw_frame_bytes: 2 * input_channels,
            resampler: StereoResampler::new(input_rate, input_channels)?,
            frame_resampler: None,
            last_input: LastInput::Raw,
            pacer: Pacer::audio(),
            anchor: None,
            pts: 0,
            queued: 0,
            retired: 0,
            underruns: 0,
            starved: false,
            ended: false,
            stopped: false,
        })
    }

    /// Runs `feed` against the queue and counts the whole output frames it
    /// added: the one place the queued-frames arithmetic lives.
    fn queue_with(&mut self, feed: impl FnOnce(&mut Resamplers<'_>, &mut VecDeque<u8>)) {
        let before = self.buffer.len();
        let mut r = Resamplers { raw: &mut self.resampler, frames: self.frame_resampler.as_mut().map(|(_, _, r)| r) };
        feed(&mut r, &mut self.buffer);
        self.queued += ((self.buffer.len() - before) / OUTPUT_FRAME_BYTES) as u64;
    }

    /// Shares the schedule start with other tracks: frame 0 is due at the
    /// anchor (set by whichever track emits first). No effect once framing
    /// has started.
    pub(crate) fn share_anchor(&mut self, anchor: Anchor) {
        if !self.pacer.is_anchored() {
            self.anchor = Some(anchor);
        }
    }

    /// Whether input is refused from now on (ended or stopped).
    pub(crate) fn closed(&self) -> bool {
        self.ended || self.stopped
    }

    /// Whether the queue is under its cap (a push may proceed).
    pub(crate) fn has_room(&self) -> bool {
        self.buffer.len() < self.cap_bytes
    }

    /// Queues raw s16 LE PCM (any length: a partial sample frame is carried).
    pub(crate) fn push_pcm(&mut self, bytes: &[u8]) {
        if self.last_input == LastInput::Frame {
            self.queue_with(|r, q| r.flush_frames(q));
            self.last_input = LastInput::Raw;
        }
        let bpf = self.raw_frame_bytes;
        let mut partial = std::mem::take(&mut self.partial);
        self.queue_with(|r, q| {
            let mut rest = bytes;
            if !partial.is_empty() {
                let n = (bpf - partial.len()).min(rest.len());
                partial.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                if partial.len() == bpf {
                    r.raw.push_s16le(&partial, q);
                    partial.clear();
                }
            }
            let whole = rest.len() / bpf * bpf;
            r.raw.push_s16le(&rest[..whole], q);
            partial.extend_from_slice(&rest[whole..]);
        });
        self.partial = partial;
    }

    /// Prepares for frames of `rate` with `fed` (1 or 2) channels fed to the
    /// resampler: a format change flushes the previous frames' tail first.
    pub(crate) fn frame_format(&mut self, rate: u32, fed: usize) -> Result<(), ResampleError> {
        if matches!(&self.frame_resampler, Some((r, c, _)) if *r == rate && *c == fed) {
            return Ok(());
        }
        let next = StereoResampler::new(rate, fed)?;
        self.queue_with(|r, q| r.flush_frames(q));
        self.frame_resampler = Some((rate, fed, next));
        Ok(())
    }

    /// Queues samples `range` of `frame` (after [`Framer::frame_format`] for
    /// its rate), mixed down or up to stereo.
    pub(crate) fn push_frame(&mut self, frame: &AudioFrame, range: Range<usize>) {
        if self.last_input == LastInput::Raw {
            self.queue_with(|r, q| r.raw.flush(q));
            self.last_input = LastInput::Frame;
        }
        let channels = frame.layout.channels();
        self.queue_with(|r, q| {
            let Some(r) = r.frames.as_mut() else { return };
            let sample = |ch: usize, i: usize| frame.sample_f32(ch, i).unwrap_or(0.0);
            for i in range {
                let (left, right) = match channels {
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
                r.push_frame(left, right, q);
            }
            r.drain(q);
        });
    }

    /// Ends the stream: the resamplers' tails are queued; what is queued is
    /// still emitted. Returns the output frames left to emit, or `None` if it
    /// had already ended.
    pub(crate) fn end(&mut self) -> Option<usize> {
        if self.ended {
            return None;
        }
        self.ended = true;
        self.queue_with(|r, q| {
            r.raw.flush(q);
            r.flush_frames(q);
        });
        Some(self.buffer.len() / FRAME_BYTES)
    }

    /// Drops everything queued (barge-in); returns how many output sample
    /// frames (per channel) were dropped.
    pub(crate) fn clear(&mut self) -> u64 {
        let dropped = (self.buffer.len() / OUTPUT_FRAME_BYTES) as u64;
        self.buffer.clear();
        self.buffer.shrink_to(IDLE_CAPACITY);
        self.partial.clear();
        self.resampler.reset();
        if let Some((_, _, r)) = &mut self.frame_resampler {
            r.reset();
        }
        self.retired += dropped;
        dropped
    }

    /// Stops the track: nothing more is emitted or accepted.
    pub(crate) fn stop(&mut self) {
        self.stopped = true;
        self.ended = true;
    }

    /// The playout mark of everything queued so far.
    pub(crate) fn queued_mark(&self) -> u64 {
        self.queued
    }

    /// Whether everything up to `mark` has been emitted or dropped.
    pub(crate) fn played_out(&self, mark: u64) -> bool {
        self.retired >= mark || self.stopped
    }

    /// Samples per channel emitted so far (the next frame's pts).
    pub(crate) fn played_samples(&self) -> u64 {
        self.pts
    }

    /// Seconds of audio queued (48 kHz output).
    pub(crate) fn buffered_seconds(&self) -> f64 {
        (self.buffer.len() / OUTPUT_FRAME_BYTES) as f64 / f64::from(OUTPUT_RATE)
    }

    /// Frames emitted as (full or partial) silence because the queue ran dry.
    pub(crate) fn underruns(&self) -> u64 {
        self.underruns
    }

    /// Times the schedule was re-anchored after a stall.
    pub(crate) fn resyncs(&self) -> u64 {
        self.pacer.resyncs()
    }

    /// Whether the last frame started an underrun episode (for logging once
    /// per episode).
    pub(crate) fn starved(&self) -> bool {
        self.starved
    }

    /// At `now`: writes the next frame into `out` if one is due (reusing its
    /// buffer; silence pads an underrun), or says when the next one is due,
    /// or that the stream is over.
    pub(crate) fn poll_frame(&mut self, now: Instant, out: &mut AudioFrame) -> Poll {
        if self.stopped {
            return Poll::Ended;
        }
        if self.ended && self.buffer.is_empty() {
            self.stopped = true;
            return Poll::Ended;
        }
        if !self.pacer.is_anchored()
            && let Some(anchor) = &self.anchor
        {
            self.pacer.anchor_at(anchor.get_or_set(now));
        }
        if let Pace::WaitUntil(deadline) = self.pacer.poll(now) {
            return Poll::WaitUntil(deadline);
        }
        let take = self.buffer.len().min(FRAME_BYTES);
        let starved = take < FRAME_BYTES && !self.ended;
        if starved {
            self.underruns += 1;
        }
        self.starved = starved;
        out.sample_rate = OUTPUT_RATE;
        out.layout = ChannelLayout::Stereo;
        out.format = SampleFormat::S16;
        out.planar = false;
        out.pts = self.pts;
        out.data.clear();
        let (a, b) = self.buffer.as_slices();
        let from_a = a.len().min(take);
        out.data.extend_from_slice(&a[..from_a]);
        out.data.extend_from_slice(&b[..take - from_a]);
        self.buffer.drain(..take);
        if self.buffer.is_empty() && self.buffer.capacity() > IDLE_CAPACITY {
            // A burst is over: give back what it grew (once per burst, not per
            // frame), so thousands of idle sources don't each keep seconds of room.
            self.buffer.shrink_to(IDLE_CAPACITY);
        }
        out.data.resize(FRAME_BYTES, 0);
        self.pts += FRAME_SAMPLES as u64;
        self.retired += (take / OUTPUT_FRAME_BYTES) as u64;
        Poll::Frame { had_audio: take > 0, room: self.has_room() }
    }
}

/// The framer's two resamplers, lent to [`Framer::queue_with`].
struct Resamplers<'a> {
    raw: &'a mut StereoResampler,
    frames: Option<&'a mut StereoResampler>,
}

impl Resamplers<'_> {
    fn flush_frames(&mut self, q: &mut VecDeque<u8>) {
        if let Some(r) = self.frames.as_mut() {
            r.flush(q);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn pcm(samples: impl IntoIterator<Item = i16>) -> Vec<u8> {
        samples.into_iter().flat_map(i16::to_le_bytes).collect()
    }

    #[test]
    fn frames_come_on_the_grid_and_underruns_are_silence() {
        let mut f = Framer::new(48_000, 2, 48_000 * 4).unwrap();
        let t0 = Instant::now();
        let mut out = AudioFrame::empty();
        f.push_pcm(&pcm(std::iter::repeat_n(7, 960 * 2)));
        assert_eq!(f.poll_frame(t0, &mut out), Poll::Frame { had_audio: true, room: true });
        assert!(out.to_s16_interleaved().iter().all(|s| *s == 7));
        assert_eq!(out.pts, 0);
        assert_eq!(f.poll_frame(t0 + 5 * MS, &mut out), Poll::WaitUntil(t0 + 20 * MS));
        assert_eq!(f.poll_frame(t0 + 20 * MS, &mut out), Poll::Frame { had_audio: false, room: true });
        assert!(out.to_s16_interleaved().iter().all(|s| *s == 0));
        assert_eq!((out.pts, f.underruns()), (960, 1));
        assert!(f.starved());
    }

    #[test]
    fn the_cap_any_split_and_the_playout_mark() {
        // Cap of one frame: a second frame's worth leaves no room.
        let mut f = Framer::new(48_000, 1, FRAME_BYTES).unwrap();
        let one = pcm((0..960).map(|i| i as i16));
        // A split inside a sample (odd byte) is carried, not lost.
        f.push_pcm(&one[..1001]);
        f.push_pcm(&one[1001..]);
        assert!(!f.has_room());
        let mark = f.queued_mark();
        assert_eq!(mark, 960);
        assert!(!f.played_out(mark));
        let mut out = AudioFrame::empty();
        let t0 = Instant::now();
        assert_eq!(f.poll_frame(t0, &mut out), Poll::Frame { had_audio: true, room: true });
        assert!(f.played_out(mark));
        let s = out.to_s16_interleaved();
        assert_eq!((s[2], s[3], s[1918], s[1919]), (1, 1, 959, 959), "mono duplicated, bit-exact at 48 kHz");
    }

    #[test]
    fn a_shared_anchor_sets_frame_zero() {
        let anchor = Anchor::new();
        let t0 = Instant::now();
        assert_eq!(anchor.get_or_set(t0), t0, "another track went first");
        let mut f = Framer::new(48_000, 2, 1 << 20).unwrap();
        f.share_anchor(anchor);
        let mut out = AudioFrame::empty();
        // Polled 10 ms after the anchor: frame 0 was due then, frame 1 at 20 ms.
        assert!(matches!(f.poll_frame(t0 + 10 * MS, &mut out), Poll::Frame { .. }));
        assert_eq!(f.poll_frame(t0 + 10 * MS, &mut out), Poll::WaitUntil(t0 + 20 * MS));
    }

    #[test]
    fn end_drains_then_ends_and_clear_retires_what_it_drops() {
        let mut f = Framer::new(16_000, 1, 1 << 20).unwrap();
        f.push_pcm(&pcm(std::iter::repeat_n(1000, 1600)));
        let dropped = f.clear();
        assert!(dropped > 0);
        assert!(f.played_out(f.queued_mark()), "cleared audio counts as played out");
        f.push_pcm(&pcm(std::iter::repeat_n(1000, 320)));
        let left = f.end().expect("first end");
        assert_eq!(f.end(), None, "end is idempotent");
        assert!(f.closed());
        let mut out = AudioFrame::empty();
        let t0 = Instant::now();
        let mut frames = 0;
        let mut now = t0;
        loop {
            match f.poll_frame(now, &mut out) {
                Poll::Frame { .. } => frames += 1,
                Poll::WaitUntil(t) => now = t,
                Poll::Ended => break,
            }
        }
        assert!(frames == left || frames == left + 1, "{frames} frames for {left} whole frames queued");
        assert!(frames >= 1);
        assert_eq!(f.underruns(), 0, "the last partial frame after end is not an underrun");
        assert_eq!(f.poll_frame(now, &mut out), Poll::Ended);
    }
}
