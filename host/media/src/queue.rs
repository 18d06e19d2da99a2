//! [`FrameQueue`]: the bounded hand-off between a producer of frames (a
//! decoder) and the one consumer of a track.
//!
//! Live media wants the newest frames: when the consumer falls behind, the
//! **oldest** queued frame is dropped, so the delay a stalled consumer comes
//! back to is bounded by the capacity, never by how long it stalled. Frames
//! the consumer is done with are recycled into the producer's next pushes:
//! no allocation per frame once the queue is warm.

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

use super::track::{Frame, MediaKind};

/// A bounded, drop-oldest frame queue with one consumer. `Sync`: the
/// producer and consumer may be on different threads.
#[derive(Debug)]
pub struct FrameQueue {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    frames: VecDeque<Frame>,
    /// Spent frames whose buffers the next pushes reuse.
    spare: Vec<Frame>,
    capacity: usize,
    closed: bool,
    dropped: u64,
    waker: Option<Waker>,
}

impl FrameQueue {
    /// A queue holding at most `capacity` frames (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            state: Mutex::new(State {
                frames: VecDeque::with_capacity(capacity),
                spare: Vec::with_capacity(capacity + 1),
                capacity,
                closed: false,
                dropped: 0,
                waker: None,
            }),
        }
    }

    /// Queues a frame of `kind` written by `fill` into a recycled buffer.
    /// When the queue is full the oldest frame is dropped (and counted).
    /// Returns `false` once the queue is closed (the frame is discarded).
    pub fn push_with(&self, kind: MediaKind, fill: impl FnOnce(&mut Frame)) -> bool {
        let mut st = self.state.lock();
        if st.closed {
            return false;
        }
        let mut frame = match st.spare.pop() {
            Some(f) if f.kind() == kind => f,
            _ => Frame::empty(kind),
        };
        fill(&mut frame);
        if st.frames.len() >= st.capacity
            && let Some(oldest) = st.frames.pop_front()
        {
            st.dropped += 1;
            st.spare.push(oldest);
        }
        st.frames.push_back(frame);
        let waker = st.waker.take();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    /// Queues `frame` (see [`FrameQueue::push_with`]).
    pub fn push(&self, frame: Frame) -> bool {
        self.push_with(frame.kind(), |slot| *slot = frame)
    }

    /// The next frame, swapped into `out` (whose old buffer is recycled):
    /// `Ready(Some(()))` with a frame, `Ready(None)` once the queue is
    /// closed and empty, `Pending` (the waker kept) otherwise.
    pub fn poll_pop_into(&self, cx: &mut Context<'_>, out: &mut Frame) -> Poll<Option<()>> {
        let mut st = self.state.lock();
        match st.frames.pop_front() {
            Some(mut frame) => {
                std::mem::swap(out, &mut frame);
                if st.spare.len() < st.capacity + 1 {
                    st.spare.push(frame);
                }
                Poll::Ready(Some(()))
            }
            None if st.closed => Poll::Ready(None),
            None => {
                match &mut st.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    slot => *slot = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }

    /// Closes the queue: pushes are refused; the consumer drains what is
    /// queued, then sees the end.
    pub fn close(&self) {
        let waker = {
            let mut st = self.state.lock();
            st.closed = true;
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Closes the queue and drops what it holds: the consumer sees the end
    /// at once.
    pub fn close_now(&self) {
        let waker = {
            let mut st = self.state.lock();
            st.closed = true;
            st.frames.clear();
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Whether the queue is closed.
    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// Frames dropped because the consumer fell behind.
    pub fn dropped(&self) -> u64 {
        self.state.lock().dropped
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.state.lock().frames.len()
    }

    /// Whether no frame waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;
    use crate::AudioFrame;

    fn audio(pts: u64) -> Frame {
        Frame::Audio(AudioFrame { pts, ..AudioFrame::empty() })
    }

    fn pts(f: &Frame) -> u64 {
        match f {
            Frame::Audio(a) => a.pts,
            Frame::Video(v) => v.pts,
        }
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_keeps_the_newest() {
        let q = FrameQueue::new(3);
        for n in 0..5 {
            assert!(q.push(audio(n)));
        }
        assert_eq!((q.len(), q.dropped()), (3, 2));
        let mut out = Frame::empty(MediaKind::Audio);
        let mut cx = Context::from_waker(Waker::noop());
        let mut got = vec![];
        while let Poll::Ready(Some(())) = q.poll_pop_into(&mut cx, &mut out) {
            got.push(pts(&out));
        }
        assert_eq!(got, vec![2, 3, 4], "the newest three survive, in order");
        q.close();
        assert_eq!(q.poll_pop_into(&mut cx, &mut out), Poll::Ready(None));
        assert!(!q.push(audio(9)), "closed: refused");
    }

    #[test]
    fn buffers_are_recycled_between_consumer_and_producer() {
        let q = FrameQueue::new(2);
        let mut cx = Context::from_waker(Waker::noop());
        let mut out = Frame::empty(MediaKind::Audio);
        let mut seen = std::collections::HashSet::new();
        for n in 0..100u64 {
            q.push_with(MediaKind::Audio, |f| {
                if let Frame::Audio(a) = f {
                    if a.data.capacity() == 0 {
                        a.data.reserve_exact(3840);
                    }
                    a.data.clear();
                    a.data.resize(3840, 1);
                    a.pts = n;
                }
            });
            assert_eq!(q.poll_pop_into(&mut cx, &mut out), Poll::Ready(Some(())));
            if let Frame::Audio(a) = &out {
                seen.insert(a.data.as_ptr() as usize);
            }
        }
        assert!(seen.len() <= 3, "{} distinct buffers for 100 frames", seen.len());
    }

    #[test]
    fn close_now_ends_the_consumer_at_once() {
        let q = FrameQueue::new(4);
        q.push(audio(1));
        q.close_now();
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(q.poll_pop_into(&mut cx, &mut Frame::empty(MediaKind::Audio)), Poll::Ready(None));
    }
}
