//! A shared precision timer for pacing: one thread sleeps (futex timeout, ~µs
//! precision) until the earliest registered deadline and wakes the tasks due.
//!
//! tokio's timer rounds deadlines up to its 1 ms tick, which shows as ~1 ms of
//! emission jitter; pacing thousands of 20 ms tracks wants better. Registering
//! pushes onto a binary heap whose storage is reused: no allocation per frame
//! once the heap has grown to the number of live sources.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::Waker;
use std::time::Instant;

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

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Entry>,
    seq: u64,
}

/// The process-wide pacing timer.
pub(crate) struct PrecisionTimer {
    queue: Mutex<Queue>,
    changed: Condvar,
}

impl PrecisionTimer {
    /// The shared instance (its thread starts on first use).
    pub(crate) fn global() -> &'static Arc<PrecisionTimer> {
        static TIMER: OnceLock<Arc<PrecisionTimer>> = OnceLock::new();
        TIMER.get_or_init(|| {
            let timer = Arc::new(PrecisionTimer { queue: Mutex::default(), changed: Condvar::new() });
            let t = timer.clone();
            // If the thread cannot start, wakers are woken immediately on register
            // (degraded to polling) rather than never.
            if std::thread::Builder::new().name("metered-pacer".into()).spawn(move || t.run()).is_err() {
                tracing::error!("cannot start the pacing timer thread");
            }
            timer
        })
    }

    /// Wakes `waker` at (or just after) `deadline`.
    pub(crate) fn wake_at(&self, deadline: Instant, waker: &Waker) {
        let Ok(mut q) = self.queue.lock() else {
            waker.wake_by_ref();
            return;
        };
        q.seq += 1;
        let seq = q.seq;
        let earliest = q.heap.peek().is_none_or(|top| deadline < top.deadline);
        q.heap.push(Entry { deadline, seq, waker: waker.clone() });
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
            while q.heap.peek().is_some_and(|top| top.deadline <= now) {
                if let Some(e) = q.heap.pop() {
                    due.push(e.waker);
                }
            }
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
            q = match q.heap.peek().map(|top| top.deadline) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn wakes_in_deadline_order() {
        let timer = PrecisionTimer::global();
        let order = Arc::new(Mutex::new(Vec::new()));
        struct Tag(usize, Arc<Mutex<Vec<usize>>>);
        impl std::task::Wake for Tag {
            fn wake(self: Arc<Self>) {
                self.1.lock().unwrap().push(self.0);
            }
        }
        let t0 = Instant::now();
        for (i, ms) in [(0usize, 30u64), (1, 10), (2, 20)] {
            let w = Waker::from(Arc::new(Tag(i, order.clone())));
            timer.wake_at(t0 + Duration::from_millis(ms), &w);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while order.lock().unwrap().len() < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(*order.lock().unwrap(), vec![1, 2, 0]);
    }
}
