//! The media clock: what time it is for a pacer, and who wakes it when a
//! frame is due. hyper's `rt::Timer` is the model: a small trait the
//! realtime parts are handed, so none of them reads a global clock.
//!
//! - [`PreciseTimer`] — real time, woken by one shared precision timer
//!   thread (futex timeouts, ~µs): the default. tokio's timer rounds
//!   deadlines up to its 1 ms tick, which shows as ~1 ms of emission jitter
//!   on 20 ms frames.
//! - [`VirtualClock`] — time that moves only when its owner says so
//!   ([`VirtualClock::advance`], [`VirtualClock::advance_to_next`]): the
//!   offline harness runs agents on it as fast as the CPU allows, with the
//!   same output on every run, and tests use it instead of real seconds.
//!
//! Waking never allocates once warm: both keep their pending wake-ups in a
//! binary heap whose storage is reused.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// A clock and the timer that wakes tasks on it.
///
/// Implementations must be monotonic (`now` never goes back) and must wake a
/// [`Sleep`] no earlier than its deadline on their own clock.
pub trait Timer: Send + Sync + 'static {
    /// Now, on this timer's clock.
    fn now(&self) -> Instant;

    /// A future that completes at `deadline` (at once if it has passed).
    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>>;

    /// A future that completes `duration` from now.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.sleep_until(self.now() + duration)
    }

    /// Moves `sleep` (made by this timer) to a new deadline without
    /// allocating: the path a pacer takes every frame.
    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, deadline: Instant) {
        sleep.as_mut().reset(deadline);
    }
}

/// A pending wake-up of a [`Timer`].
pub trait Sleep: Future<Output = ()> + Send + Sync {
    /// Changes the deadline; the next poll waits for the new one.
    fn reset(self: Pin<&mut Self>, deadline: Instant);
    /// The deadline.
    fn deadline(&self) -> Instant;
}

/// A queue of wake-ups ordered by deadline (then by registration order, so
/// ties wake in a deterministic order).
#[derive(Default)]
struct WakeQueue {
    heap: BinaryHeap<Entry>,
    seq: u64,
}

struct Entry {
    deadline: Instant,
    seq: u64,
    waker: Waker,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    // Reversed: BinaryHeap is a max-heap, we want the earliest deadline on top.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.deadline, other.seq).cmp(&(self.deadline, self.seq))
    }
}

impl WakeQueue {
    /// Registers a wake-up; whether it is now the earliest.
    fn push(&mut self, deadline: Instant, waker: &Waker) -> bool {
        self.seq += 1;
        let earliest = self.heap.peek().is_none_or(|top| deadline < top.deadline);
        self.heap.push(Entry { deadline, seq: self.seq, waker: waker.clone() });
        earliest
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|e| e.deadline)
    }

    /// Moves every waker due at `now` into `due`.
    fn pop_due(&mut self, now: Instant, due: &mut Vec<Waker>) {
        while self.heap.peek().is_some_and(|top| top.deadline <= now) {
            if let Some(e) = self.heap.pop() {
                due.push(e.waker);
            }
        }
    }
}

// ---------------------------------------------------------------- precise --

/// Real time, woken by the process-wide precision timer thread (started on
/// first use). Cheap to copy; every copy shares the thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct PreciseTimer;

impl PreciseTimer {
    /// The timer as a shareable handle.
    pub fn shared() -> Arc<dyn Timer> {
        static SHARED: OnceLock<Arc<dyn Timer>> = OnceLock::new();
        SHARED.get_or_init(|| Arc::new(PreciseTimer)).clone()
    }

    /// Wakes `waker` at (or just after) `deadline`: the registration behind
    /// [`PreciseTimer`]'s sleeps, for pollers that keep their own deadline.
    pub fn wake_at(deadline: Instant, waker: &Waker) {
        PrecisionThread::global().wake_at(deadline, waker);
    }
}

impl Timer for PreciseTimer {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(PreciseSleep { deadline })
    }
}

struct PreciseSleep {
    deadline: Instant,
}

impl Future for PreciseSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        PrecisionThread::global().wake_at(self.deadline, cx.waker());
        Poll::Pending
    }
}

impl Sleep for PreciseSleep {
    fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
        self.deadline = deadline;
    }
    fn deadline(&self) -> Instant {
        self.deadline
    }
}

/// One thread sleeps until the earliest registered deadline and wakes the
/// tasks due.
struct PrecisionThread {
    queue: Mutex<WakeQueue>,
    changed: Condvar,
}

impl PrecisionThread {
    fn global() -> &'static PrecisionThread {
        static TIMER: OnceLock<Arc<PrecisionThread>> = OnceLock::new();
        TIMER.get_or_init(|| {
            let timer = Arc::new(PrecisionThread { queue: Mutex::default(), changed: Condvar::new() });
            let t = timer.clone();
            // If the thread cannot start, wakers are woken at once on register
            // (degraded to polling) rather than never.
            if std::thread::Builder::new().name("metered-pacer".into()).spawn(move || t.run()).is_err() {
                tracing::error!("cannot start the pacing timer thread");
            }
            timer
        })
    }

    fn wake_at(&self, deadline: Instant, waker: &Waker) {
        let Ok(mut q) = self.queue.lock() else {
            waker.wake_by_ref();
            return;
        };
        let earliest = q.push(deadline, waker);
        drop(q);
        if earliest {
            self.changed.notify_one();
        }
    }

    fn run(&self) {
        let mut due: Vec<Waker> = Vec::with_capacity(256);
        let Ok(mut q) = self.queue.lock() else { return };
        loop {
            let now = Instant::now();
            q.pop_due(now, &mut due);
            if !due.is_empty() {
                drop(q);
                for w in due.drain(..) {
                    w.wake();
                }
                q = match self.queue.lock() {
                    Ok(q) => q,
                    Err(_) => return,
                };
                continue;
            }
            q = match q.next_deadline() {
                Some(deadline) => match self.changed.wait_timeout(q, deadline.saturating_duration_since(now)) {
                    Ok((q, _)) => q,
                    Err(_) => return,
                },
                None => match self.changed.wait(q) {
                    Ok(q) => q,
                    Err(_) => return,
                },
            };
        }
    }
}

// ---------------------------------------------------------------- virtual --

/// A clock that moves only when told to. Clones share the clock.
///
/// Sleeps on it complete when [`VirtualClock::advance`] (or `advance_to`,
/// `advance_to_next`) moves time to or past their deadline; wake-ups due at
/// the same instant fire in the order they were registered, so a
/// single-threaded run on a virtual clock is deterministic. A driver that
/// calls [`VirtualClock::advance_to_next`] whenever its executor goes idle
/// gets what tokio's paused time gives, without `tokio/test-util`.
#[derive(Clone)]
pub struct VirtualClock {
    inner: Arc<Mutex<VirtualState>>,
}

struct VirtualState {
    now: Instant,
    queue: WakeQueue,
    due: Vec<Waker>,
}

impl fmt::Debug for VirtualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VirtualClock").field("now", &self.now()).finish_non_exhaustive()
    }
}

impl Default for VirtualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl VirtualClock {
    /// A clock standing at the real `Instant::now()`.
    pub fn new() -> Self {
        Self::starting_at(Instant::now())
    }

    /// A clock standing at `start`.
    pub fn starting_at(start: Instant) -> Self {
        Self { inner: Arc::new(Mutex::new(VirtualState { now: start, queue: WakeQueue::default(), due: Vec::new() })) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, VirtualState> {
        // A panic while holding the lock leaves consistent data: keep going.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Now, on this clock.
    pub fn now(&self) -> Instant {
        self.state().now
    }

    /// The earliest pending deadline, if any task waits on this clock.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.state().queue.next_deadline()
    }

    /// Moves time forward by `by` and wakes everything due.
    pub fn advance(&self, by: Duration) {
        let to = self.now() + by;
        self.advance_to(to);
    }

    /// Moves time to `to` (never backwards) and wakes everything due.
    pub fn advance_to(&self, to: Instant) {
        let mut due = {
            let mut st = self.state();
            st.now = st.now.max(to);
            let now = st.now;
            let mut due = std::mem::take(&mut st.due);
            st.queue.pop_due(now, &mut due);
            due
        };
        for w in due.drain(..) {
            w.wake();
        }
        // Give the (now empty) buffer back for the next call.
        let mut st = self.state();
        if st.due.capacity() < due.capacity() {
            st.due = due;
        }
    }

    /// Jumps to the earliest pending deadline (if it is ahead) and wakes
    /// every task due then; `false` when nothing waits on this clock.
    pub fn advance_to_next(&self) -> bool {
        match self.next_deadline() {
            Some(deadline) => {
                self.advance_to(deadline);
                true
            }
            None => false,
        }
    }

    fn wake_at(&self, deadline: Instant, waker: &Waker) -> bool {
        let mut st = self.state();
        if deadline <= st.now {
            return true;
        }
        st.queue.push(deadline, waker);
        false
    }
}

impl Timer for VirtualClock {
    fn now(&self) -> Instant {
        VirtualClock::now(self)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(VirtualSleep { clock: self.clone(), deadline })
    }
}

struct VirtualSleep {
    clock: VirtualClock,
    deadline: Instant,
}

impl Future for VirtualSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Registered on every pending poll (like the precision thread): a
        // wake-up for a deadline already queued is a no-op for time, which
        // only ever jumps to deadlines someone waits for.
        if self.clock.wake_at(self.deadline, cx.waker()) { Poll::Ready(()) } else { Poll::Pending }
    }
}

impl Sleep for VirtualSleep {
    fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
        self.deadline = deadline;
    }
    fn deadline(&self) -> Instant {
        self.deadline
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
    use std::task::Wake;

    struct Tag(usize, Arc<Mutex<Vec<usize>>>);
    impl Wake for Tag {
        fn wake(self: Arc<Self>) {
            self.1.lock().unwrap().push(self.0);
        }
    }

    #[test]
    fn the_precision_thread_wakes_in_deadline_order() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let t0 = Instant::now();
        for (i, ms) in [(0usize, 30u64), (1, 10), (2, 20)] {
            let w = Waker::from(Arc::new(Tag(i, order.clone())));
            PreciseTimer::wake_at(t0 + Duration::from_millis(ms), &w);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while order.lock().unwrap().len() < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(*order.lock().unwrap(), vec![1, 2, 0]);
    }

    #[test]
    fn virtual_time_moves_only_when_told_and_wakes_ties_in_registration_order() {
        let clock = VirtualClock::new();
        let t0 = clock.now();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut sleeps: Vec<_> = [(0usize, 20u64), (1, 10), (2, 20), (3, 40)]
            .into_iter()
            .map(|(i, ms)| (i, clock.sleep_until(t0 + Duration::from_millis(ms))))
            .collect();
        for (i, s) in &mut sleeps {
            let w = Waker::from(Arc::new(Tag(*i, order.clone())));
            assert!(s.as_mut().poll(&mut Context::from_waker(&w)).is_pending());
        }
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(clock.now(), t0, "real time passing moves nothing");
        assert!(order.lock().unwrap().is_empty());
        assert!(clock.advance_to_next());
        assert_eq!(clock.now(), t0 + Duration::from_millis(10));
        assert_eq!(*order.lock().unwrap(), vec![1]);
        assert!(clock.advance_to_next());
        assert_eq!(*order.lock().unwrap(), vec![1, 0, 2], "ties wake in registration order");
        clock.advance(Duration::from_secs(1));
        assert_eq!(*order.lock().unwrap(), vec![1, 0, 2, 3]);
        assert!(!clock.advance_to_next(), "nothing left to wait for");
        let noop = Waker::noop();
        for (_, s) in &mut sleeps {
            assert!(s.as_mut().poll(&mut Context::from_waker(noop)).is_ready());
        }
    }

    #[test]
    fn a_reset_sleep_waits_for_its_new_deadline() {
        let clock = VirtualClock::new();
        let t0 = clock.now();
        let woken = Arc::new(AtomicUsize::new(0));
        struct Count(Arc<AtomicUsize>);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, AtomicOrdering::Relaxed);
            }
        }
        let w = Waker::from(Arc::new(Count(woken.clone())));
        let mut cx = Context::from_waker(&w);
        let mut s = clock.sleep_until(t0 + Duration::from_millis(20));
        assert!(s.as_mut().poll(&mut cx).is_pending());
        clock.reset(&mut s, t0 + Duration::from_millis(40));
        assert_eq!(s.deadline(), t0 + Duration::from_millis(40));
        clock.advance(Duration::from_millis(20));
        assert!(s.as_mut().poll(&mut cx).is_pending(), "the old deadline no longer counts");
        clock.advance(Duration::from_millis(20));
        assert!(s.as_mut().poll(&mut cx).is_ready());
        assert!(woken.load(AtomicOrdering::Relaxed) >= 2);
    }
}
