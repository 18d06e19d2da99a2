//! [`VideoSource`]: a push-based video track paced by its frames'
//! timestamps — what a decoder, a capture device or an agent pushes video
//! through.
//!
//! A frame with timestamp `pts` is emitted at `anchor + (pts − origin) /
//! 90 kHz` on the source's [`Timer`]: the anchor is the instant the first
//! frame goes out (or an [`Anchor`] shared with other tracks, so audio and
//! video of one player keep one schedule), the origin the first frame's
//! timestamp (or a fixed one). A consumer more than 100 ms late shifts the
//! schedule instead of bursting, as the audio pacer does. Frame buffers
//! travel back to the producer ([`VideoSource::spare_frame`]): no
//! allocation per frame once warm.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::clock::{PreciseTimer, Sleep, Timer};
use super::frame::{VIDEO_CLOCK_RATE, VideoFrame, VideoFrameError};
use super::track::{Frame, MediaKind, MediaStreamTrack, TrackEnded};

/// A consumer this late re-anchors the schedule instead of bursting.
const RESYNC_AFTER: Duration = Duration::from_millis(100);

/// The instant a group of tracks counts its timestamps from: the first of
/// them to emit sets it, the others follow it (A/V sync on one clock).
#[derive(Debug, Clone, Default)]
pub struct Anchor(Arc<OnceLock<Instant>>);

impl Anchor {
    /// An anchor not yet set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The anchor, set to `now` if nobody set it yet.
    pub fn get_or_set(&self, now: Instant) -> Instant {
        *self.0.get_or_init(|| now)
    }

    /// The anchor, if set.
    pub fn get(&self) -> Option<Instant> {
        self.0.get().copied()
    }
}

/// What a full queue does with the next push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// The push waits for room (files: the decoder runs ahead only as far
    /// as the queue).
    #[default]
    Wait,
    /// The oldest queued frame is dropped (live sources: latency stays
    /// bounded when the consumer stalls).
    DropOldest,
}

/// Options of a [`VideoSource`].
#[derive(Clone)]
pub struct VideoSourceOptions {
    /// Frames queued at most (default 30: a second at 30 fps).
    pub max_buffered_frames: usize,
    /// What a push into a full queue does.
    pub overflow: Overflow,
    /// The clock frames are paced on (default: [`PreciseTimer`]).
    pub timer: Arc<dyn Timer>,
    /// A schedule start shared with other tracks (default: this track's own).
    pub anchor: Anchor,
    /// The timestamp due at the anchor (default: the first frame's).
    pub origin_pts: Option<u64>,
}

impl Default for VideoSourceOptions {
    fn default() -> Self {
        Self {
            max_buffered_frames: 30,
            overflow: Overflow::Wait,
            timer: PreciseTimer::shared(),
            anchor: Anchor::new(),
            origin_pts: None,
        }
    }
}

impl fmt::Debug for VideoSourceOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VideoSourceOptions")
            .field("max_buffered_frames", &self.max_buffered_frames)
            .field("overflow", &self.overflow)
            .field("origin_pts", &self.origin_pts)
            .finish_non_exhaustive()
    }
}

struct State {
    queue: VecDeque<VideoFrame>,
    spare: Vec<VideoFrame>,
    /// The schedule: (instant, pts due then).
    schedule: Option<(Instant, u64)>,
    sleep: Option<Pin<Box<dyn Sleep>>>,
    consumer: Option<Waker>,
    producers: Vec<Waker>,
    /// What a push into a full queue does.
    overflow: Overflow,
    /// Re-emit the last frame at this interval while nothing new is queued.
    hold: Option<Duration>,
    /// The last frame emitted and when it was due (for holding).
    last: Option<(VideoFrame, Instant)>,
    ended: bool,
    stopped: bool,
    dropped: u64,
    resyncs: u64,
    emitted: u64,
    held: u64,
}

struct Inner {
    id: String,
    capacity: usize,
    timer: Arc<dyn Timer>,
    anchor: Anchor,
    origin_pts: Option<u64>,
    state: Mutex<State>,
}

/// A push-based, timestamp-paced video track. Clones share the source.
#[derive(Clone)]
pub struct VideoSource {
    inner: Arc<Inner>,
}

impl fmt::Debug for VideoSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VideoSource").field("id", &self.inner.id).finish_non_exhaustive()
    }
}

fn ticks(d: Duration) -> u64 {
    (d.as_nanos() * u128::from(VIDEO_CLOCK_RATE) / 1_000_000_000) as u64
}

fn span(pts_delta: u64) -> Duration {
    Duration::from_nanos((u128::from(pts_delta) * 1_000_000_000 / u128::from(VIDEO_CLOCK_RATE)) as u64)
}

impl VideoSource {
    /// A source with the given options.
    pub fn new(opts: VideoSourceOptions) -> Self {
        let bytes: [u8; 8] = rand::random();
        let capacity = opts.max_buffered_frames.max(1);
        Self {
            inner: Arc::new(Inner {
                id: bytes.iter().map(|b| format!("{b:02x}")).collect(),
                capacity,
                timer: opts.timer,
                anchor: opts.anchor,
                origin_pts: opts.origin_pts,
                state: Mutex::new(State {
                    queue: VecDeque::with_capacity(capacity),
                    spare: Vec::new(),
                    schedule: None,
                    sleep: None,
                    consumer: None,
                    producers: Vec::new(),
                    overflow: opts.overflow,
                    hold: None,
                    last: None,
                    ended: false,
                    stopped: false,
                    dropped: 0,
                    resyncs: 0,
                    emitted: 0,
                    held: 0,
                }),
            }),
        }
    }

    /// This source as a generic track; it shares the source.
    pub fn track(&self) -> Arc<dyn MediaStreamTrack> {
        Arc::new(self.clone())
    }

    /// A frame buffer to fill and push: a recycled one when the consumer has
    /// given some back (no allocation once warm), else an empty one.
    pub fn spare_frame(&self) -> VideoFrame {
        self.inner.state.lock().spare.pop().unwrap_or_default()
    }

    /// Queues a frame, waiting for room if the queue is full and the
    /// overflow rule is [`Overflow::Wait`]. A no-op once the source ended.
    /// Refuses a frame whose geometry does not hold together.
    pub async fn push(&self, frame: VideoFrame) -> Result<(), VideoFrameError> {
        frame.validate()?;
        let mut frame = Some(frame);
        std::future::poll_fn(|cx| self.poll_push(cx, &mut frame)).await;
        Ok(())
    }

    /// [`VideoSource::push`] for a thread outside any async runtime (a
    /// decoder thread): blocks the thread while the queue is full.
    pub fn push_blocking(&self, frame: VideoFrame) -> Result<(), VideoFrameError> {
        frame.validate()?;
        let mut frame = Some(frame);
        block_on(std::future::poll_fn(|cx| self.poll_push(cx, &mut frame)));
        Ok(())
    }

    /// Queues a frame without waiting: `Ok(None)` when queued (or, with
    /// [`Overflow::DropOldest`], queued after dropping the oldest; or
    /// discarded because the source ended), `Ok(Some(frame))` handing it back
    /// when the queue is full and the rule is [`Overflow::Wait`].
    pub fn try_push(&self, frame: VideoFrame) -> Result<Option<VideoFrame>, VideoFrameError> {
        frame.validate()?;
        let mut frame = Some(frame);
        let mut cx = Context::from_waker(Waker::noop());
        match self.poll_push_inner(&mut cx, &mut frame, false) {
            Poll::Ready(()) => Ok(None),
            Poll::Pending => Ok(frame),
        }
    }

    /// Drops every queued frame (a seek): the next pushed frame is the next
    /// one out.
    pub fn clear(&self) {
        let producers: Vec<Waker> = {
            let mut st = self.inner.state.lock();
            let State { queue, spare, .. } = &mut *st;
            spare.extend(queue.drain(..));
            st.producers.drain(..).collect()
        };
        producers.into_iter().for_each(Waker::wake);
    }

    fn poll_push(&self, cx: &mut Context<'_>, frame: &mut Option<VideoFrame>) -> Poll<()> {
        self.poll_push_inner(cx, frame, true)
    }

    fn poll_push_inner(&self, cx: &mut Context<'_>, frame: &mut Option<VideoFrame>, register: bool) -> Poll<()> {
        let mut st = self.inner.state.lock();
        if st.ended || st.stopped {
            if let Some(f) = frame.take() {
                st.spare.push(f);
            }
            return Poll::Ready(());
        }
        if st.queue.len() >= self.inner.capacity {
            match st.overflow {
                Overflow::Wait => {
                    if register && !st.producers.iter().any(|w| w.will_wake(cx.waker())) {
                        st.producers.push(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
                Overflow::DropOldest => {
                    if let Some(old) = st.queue.pop_front() {
                        st.dropped += 1;
                        st.spare.push(old);
                    }
                }
            }
        }
        if let Some(f) = frame.take() {
            st.queue.push_back(f);
        }
        let consumer = st.consumer.take();
        drop(st);
        if let Some(w) = consumer {
            w.wake();
        }
        Poll::Ready(())
    }

    /// Changes what a push into a full queue does (a player waits while it
    /// prerolls, then drops the oldest once playing, so a track nobody
    /// reads cannot stall the others).
    pub fn set_overflow(&self, overflow: Overflow) {
        let producers: Vec<Waker> = {
            let mut st = self.inner.state.lock();
            st.overflow = overflow;
            st.producers.drain(..).collect()
        };
        producers.into_iter().for_each(Waker::wake);
    }

    /// Whether the schedule has started (a frame went out).
    pub fn is_started(&self) -> bool {
        self.inner.state.lock().schedule.is_some()
    }

    /// While no new frame is queued, re-emit the last one every `interval`
    /// (a live source that is reconnecting keeps its track alive with a
    /// held picture); `None` stops holding.
    pub fn set_hold(&self, interval: Option<Duration>) {
        let consumer = {
            let mut st = self.inner.state.lock();
            st.hold = interval.filter(|d| !d.is_zero());
            st.consumer.take()
        };
        if let Some(w) = consumer {
            w.wake();
        }
    }

    /// The timestamp due now on this track's schedule, once it has one: a
    /// producer resuming after a gap stamps its frames from here.
    pub fn pts_now(&self) -> Option<u64> {
        let st = self.inner.state.lock();
        let (at, pts) = st.schedule?;
        Some(pts + ticks(self.inner.timer.now().saturating_duration_since(at)))
    }

    /// Ends the stream: what is queued is still emitted, then the track ends.
    pub fn end(&self) {
        let wakers = {
            let mut st = self.inner.state.lock();
            st.ended = true;
            let mut w: Vec<Waker> = st.producers.drain(..).collect();
            w.extend(st.consumer.take());
            w
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Frames dropped by [`Overflow::DropOldest`].
    pub fn dropped_frames(&self) -> u64 {
        self.inner.state.lock().dropped
    }

    /// Times the schedule was shifted because the consumer fell behind.
    pub fn resyncs(&self) -> u64 {
        self.inner.state.lock().resyncs
    }

    /// Frames emitted (held repeats included), and of those, held repeats.
    pub fn emitted_frames(&self) -> (u64, u64) {
        let st = self.inner.state.lock();
        (st.emitted, st.held)
    }

    /// Frames waiting.
    pub fn queued_frames(&self) -> usize {
        self.inner.state.lock().queue.len()
    }

    fn poll_frame(&self, cx: &mut Context<'_>, out: &mut VideoFrame) -> Poll<Result<(), TrackEnded>> {
        let mut st = self.inner.state.lock();
        loop {
            if st.stopped {
                return Poll::Ready(Err(TrackEnded));
            }
            let now = self.inner.timer.now();
            let next_pts = match (st.queue.front(), &st.last, st.hold) {
                (Some(f), _, _) => Some(f.pts),
                (None, Some((last, _)), Some(interval)) if !st.ended => Some(last.pts + ticks(interval)),
                _ => None,
            };
            let Some(pts) = next_pts else {
                if st.ended {
                    st.stopped = true;
                    return Poll::Ready(Err(TrackEnded));
                }
                st.consumer = Some(cx.waker().clone());
                return Poll::Pending;
            };
            let (at, at_pts) = *st.schedule.get_or_insert_with(|| {
                let origin = self.inner.origin_pts.unwrap_or(pts);
                (self.inner.anchor.get_or_set(now), origin)
            });
            let due =
                if pts >= at_pts { at + span(pts - at_pts) } else { at.checked_sub(span(at_pts - pts)).unwrap_or(at) };
            if now < due {
                let State { sleep, .. } = &mut *st;
                match sleep {
                    Some(s) => self.inner.timer.reset(s, due),
                    None => *sleep = Some(self.inner.timer.sleep_until(due)),
                }
                // A frame pushed meanwhile may be due earlier: be woken for it too.
                st.consumer = Some(cx.waker().clone());
                if let Some(s) = st.sleep.as_mut()
                    && s.as_mut().poll(cx).is_pending()
                {
                    return Poll::Pending;
                }
                continue;
            }
            let due = if now.duration_since(due) > RESYNC_AFTER {
                // Shift the schedule: this frame is due now.
                st.schedule = Some((now, pts));
                st.resyncs += 1;
                now
            } else {
                due
            };
            match st.queue.pop_front() {
                Some(mut frame) => {
                    std::mem::swap(out, &mut frame);
                    // Keep a copy of what went out for holding, in a recycled buffer.
                    let mut keep = st.last.take().map(|(f, _)| f).unwrap_or_default();
                    keep.clone_from(out);
                    st.last = Some((keep, due));
                    if st.spare.len() <= self.inner.capacity {
                        st.spare.push(frame);
                    }
                }
                None => {
                    let Some((last, _)) = st.last.as_mut() else { continue };
                    last.pts = pts;
                    out.clone_from(last);
                    st.held += 1;
                    if let Some((_, at)) = st.last.as_mut() {
                        *at = due;
                    }
                }
            }
            st.emitted += 1;
            let producers: Vec<Waker> = st.producers.drain(..).collect();
            drop(st);
            producers.into_iter().for_each(Waker::wake);
            return Poll::Ready(Ok(()));
        }
    }
}

impl MediaStreamTrack for VideoSource {
    fn kind(&self) -> MediaKind {
        MediaKind::Video
    }

    fn id(&self) -> &str {
        &self.inner.id
    }

    fn poll_recv_into(&self, cx: &mut Context<'_>, out: &mut Frame) -> Poll<Result<(), TrackEnded>> {
        if !matches!(out, Frame::Video(_)) {
            *out = Frame::Video(VideoFrame::default());
        }
        match out {
            Frame::Video(frame) => self.poll_frame(cx, frame),
            Frame::Audio(_) => Poll::Ready(Err(TrackEnded)),
        }
    }

    fn stop(&self) {
        let wakers = {
            let mut st = self.inner.state.lock();
            st.stopped = true;
            st.ended = true;
            st.queue.clear();
            let mut w: Vec<Waker> = st.producers.drain(..).collect();
            w.extend(st.consumer.take());
            w
        };
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// Runs a future to completion on this thread, parking it between polls: how
/// a thread outside any async runtime (a decoder, a capture callback's
/// feeder) waits on a track's backpressure. Never call it on an async
/// runtime's thread.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::VirtualClock;

    const MS: Duration = Duration::from_millis(1);

    fn source(clock: &VirtualClock, cap: usize, overflow: Overflow) -> VideoSource {
        VideoSource::new(VideoSourceOptions {
            max_buffered_frames: cap,
            overflow,
            timer: Arc::new(clock.clone()),
            ..VideoSourceOptions::default()
        })
    }

    fn frame(pts: u64, luma: u8) -> VideoFrame {
        let mut f = VideoFrame::black(4, 4);
        f.plane_mut(0).fill(luma);
        f.pts = pts;
        f
    }

    /// Polls once with a no-op waker.
    fn poll(s: &VideoSource, out: &mut Frame) -> Poll<Result<(), TrackEnded>> {
        s.poll_recv_into(&mut Context::from_waker(Waker::noop()), out)
    }

    fn luma(f: &Frame) -> u8 {
        match f {
            Frame::Video(v) => v.plane(0)[0],
            Frame::Audio(_) => panic!("audio"),
        }
    }

    #[test]
    fn frames_go_out_at_their_timestamps() {
        let clock = VirtualClock::new();
        let s = source(&clock, 8, Overflow::Wait);
        // 30 fps: 3000 ticks apart, starting at an arbitrary timestamp.
        for k in 0..3 {
            s.push_blocking(frame(90_000 + 3000 * k, 10 + k as u8)).unwrap();
        }
        let mut out = Frame::empty(MediaKind::Video);
        assert!(poll(&s, &mut out).is_ready(), "the first frame anchors the schedule");
        assert_eq!(luma(&out), 10);
        assert!(poll(&s, &mut out).is_pending(), "the next is due 33.3 ms later");
        clock.advance(33 * MS);
        assert!(poll(&s, &mut out).is_pending());
        clock.advance(MS);
        assert!(poll(&s, &mut out).is_ready());
        assert_eq!(luma(&out), 11);
        clock.advance(34 * MS);
        assert!(poll(&s, &mut out).is_ready());
        assert_eq!((luma(&out), s.resyncs()), (12, 0));
        s.end();
        assert_eq!(poll(&s, &mut out), Poll::Ready(Err(TrackEnded)));
    }

    #[test]
    fn a_shared_anchor_puts_two_tracks_on_one_schedule() {
        let clock = VirtualClock::new();
        let anchor = Anchor::new();
        let mk = || {
            VideoSource::new(VideoSourceOptions {
                timer: Arc::new(clock.clone()),
                anchor: anchor.clone(),
                origin_pts: Some(0),
                ..VideoSourceOptions::default()
            })
        };
        let (a, b) = (mk(), mk());
        a.push_blocking(frame(0, 1)).unwrap();
        b.push_blocking(frame(9000, 2)).unwrap(); // 100 ms into the timeline
        let mut out = Frame::empty(MediaKind::Video);
        assert!(poll(&a, &mut out).is_ready());
        clock.advance(60 * MS);
        assert!(poll(&b, &mut out).is_pending(), "b's frame is due 100 ms after a's, not at b's first poll");
        clock.advance(40 * MS);
        assert!(poll(&b, &mut out).is_ready());
    }

    #[test]
    fn a_stalled_consumer_shifts_the_schedule_instead_of_bursting() {
        let clock = VirtualClock::new();
        let s = source(&clock, 8, Overflow::Wait);
        for k in 0..4 {
            s.push_blocking(frame(3000 * k, k as u8)).unwrap();
        }
        let mut out = Frame::empty(MediaKind::Video);
        assert!(poll(&s, &mut out).is_ready());
        clock.advance(Duration::from_secs(1));
        assert!(poll(&s, &mut out).is_ready());
        assert_eq!(s.resyncs(), 1);
        assert!(poll(&s, &mut out).is_pending(), "no burst: the next frame is a frame interval later");
    }

    #[test]
    fn drop_oldest_keeps_the_newest_and_wait_applies_backpressure() {
        let clock = VirtualClock::new();
        let live = source(&clock, 2, Overflow::DropOldest);
        for k in 0..5 {
            live.push_blocking(frame(3000 * k, k as u8)).unwrap();
        }
        assert_eq!((live.queued_frames(), live.dropped_frames()), (2, 3));
        let file = source(&clock, 1, Overflow::Wait);
        file.push_blocking(frame(0, 0)).unwrap();
        let mut second = Some(frame(3000, 1));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(file.poll_push(&mut cx, &mut second).is_pending(), "full: the push waits");
        let mut out = Frame::empty(MediaKind::Video);
        assert!(poll(&file, &mut out).is_ready());
        assert!(file.poll_push(&mut cx, &mut second).is_ready(), "room again");
    }

    #[test]
    fn holding_repeats_the_last_picture_with_advancing_timestamps() {
        let clock = VirtualClock::new();
        let s = source(&clock, 8, Overflow::DropOldest);
        s.push_blocking(frame(0, 77)).unwrap();
        let mut out = Frame::empty(MediaKind::Video);
        assert!(poll(&s, &mut out).is_ready());
        assert!(poll(&s, &mut out).is_pending(), "nothing queued, not holding");
        s.set_hold(Some(Duration::from_millis(100)));
        clock.advance(100 * MS);
        assert!(poll(&s, &mut out).is_ready());
        let Frame::Video(v) = &out else { panic!() };
        assert_eq!((v.plane(0)[0], v.pts), (77, 9000));
        assert_eq!(s.emitted_frames(), (2, 1));
        // The producer resumes on the track's schedule.
        assert_eq!(s.pts_now(), Some(9000));
        clock.advance(20 * MS);
        let resume = s.pts_now().unwrap();
        s.push_blocking(frame(resume, 5)).unwrap();
        assert!(poll(&s, &mut out).is_ready());
        assert_eq!(luma(&out), 5);
    }

    #[test]
    fn bad_frames_are_refused_and_stop_ends_everything() {
        let clock = VirtualClock::new();
        let s = source(&clock, 1, Overflow::Wait);
        let bad = VideoFrame { width: 4, height: 4, strides: [4, 2, 2], data: vec![0; 3], ..Default::default() };
        assert!(matches!(s.push_blocking(bad), Err(VideoFrameError::Data { .. })));
        s.push_blocking(frame(0, 1)).unwrap();
        let pusher = {
            let s = s.clone();
            std::thread::spawn(move || s.push_blocking(frame(3000, 2)))
        };
        std::thread::sleep(10 * MS);
        s.stop();
        pusher.join().unwrap().unwrap();
        let mut out = Frame::empty(MediaKind::Video);
        assert_eq!(poll(&s, &mut out), Poll::Ready(Err(TrackEnded)));
    }
}
