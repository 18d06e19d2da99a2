//! The pacing core: a pure state machine over an injected `now`.
//!
//! Frames are due at `anchor + n · period` (no accumulated drift). When the
//! consumer falls more than `resync` behind (an event-loop stall, a slow
//! encoder), the schedule is re-anchored at `now` instead of emitting a catch-up
//! burst: live audio resumes from "now".

use std::time::{Duration, Instant};

/// What the pacer says to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Emit frame `index` now; it was due at `scheduled`.
    Emit {
        /// Frame index since the (last) anchor.
        index: u64,
        /// When the frame was due.
        scheduled: Instant,
    },
    /// Nothing is due before this instant.
    WaitUntil(Instant),
}

/// A drift-free frame clock.
#[derive(Debug, Clone)]
pub struct Pacer {
    period: Duration,
    resync: Duration,
    anchor: Option<Instant>,
    next: u64,
    resyncs: u64,
}

impl Pacer {
    /// A pacer with the given frame period and stall threshold.
    pub fn new(period: Duration, resync: Duration) -> Self {
        Self { period, resync, anchor: None, next: 0, resyncs: 0 }
    }

    /// 20 ms frames, re-anchored after a 100 ms stall.
    pub fn audio() -> Self {
        Self::new(Duration::from_millis(20), Duration::from_millis(100))
    }

    /// When frame `n` after the anchor is due.
    fn due(&self, anchor: Instant, n: u64) -> Instant {
        let nanos = self.period.as_nanos().saturating_mul(u128::from(n));
        anchor + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Anchors the schedule at `at` (frame 0 is due then) unless it already
    /// has an anchor.
    pub fn anchor_at(&mut self, at: Instant) {
        self.anchor.get_or_insert(at);
    }

    /// Whether the schedule has an anchor yet.
    pub fn is_anchored(&self) -> bool {
        self.anchor.is_some()
    }

    /// Advances the schedule for `now`. The first call anchors the schedule
    /// (unless [`Pacer::anchor_at`] did).
    pub fn poll(&mut self, now: Instant) -> Pace {
        let anchor = *self.anchor.get_or_insert(now);
        let mut scheduled = self.due(anchor, self.next);
        if now < scheduled {
            return Pace::WaitUntil(scheduled);
        }
        if now.duration_since(scheduled) > self.resync {
            self.anchor = Some(now);
            self.next = 0;
            self.resyncs += 1;
            scheduled = now;
        }
        let index = self.next;
        self.next += 1;
        Pace::Emit { index, scheduled }
    }

    /// How many times the schedule was re-anchored after a stall.
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn frames_are_due_every_20ms_without_drift() {
        let t0 = Instant::now();
        let mut p = Pacer::audio();
        assert_eq!(p.poll(t0), Pace::Emit { index: 0, scheduled: t0 });
        assert_eq!(p.poll(t0 + 5 * MS), Pace::WaitUntil(t0 + 20 * MS));
        // Late by 3 ms: the next deadline is still on the grid, not 20 ms after.
        assert_eq!(p.poll(t0 + 23 * MS), Pace::Emit { index: 1, scheduled: t0 + 20 * MS });
        assert_eq!(p.poll(t0 + 23 * MS), Pace::WaitUntil(t0 + 40 * MS));
        // Far into the stream: frame n is due exactly at t0 + n·20 ms.
        let mut now = t0 + 40 * MS;
        for n in 2..100_000u64 {
            match p.poll(now) {
                Pace::Emit { index, scheduled } => {
                    assert_eq!(index, n);
                    assert_eq!(scheduled, t0 + Duration::from_millis(20 * n));
                }
                other => panic!("{other:?}"),
            }
            now += 20 * MS;
        }
        assert_eq!(p.resyncs(), 0);
    }

    #[test]
    fn a_short_delay_catches_up_a_long_stall_reanchors() {
        let t0 = Instant::now();
        let mut p = Pacer::audio();
        p.poll(t0);
        // 90 ms late: within the threshold, frames 1..=5 are emitted back to back.
        let late = t0 + 110 * MS;
        let mut emitted = 0;
        while let Pace::Emit { .. } = p.poll(late) {
            emitted += 1;
        }
        assert_eq!(emitted, 5);
        // A 1 s stall: no burst; one frame now, the next 20 ms later.
        let stall = t0 + 1200 * MS;
        assert_eq!(p.poll(stall), Pace::Emit { index: 0, scheduled: stall });
        assert_eq!(p.poll(stall), Pace::WaitUntil(stall + 20 * MS));
        assert_eq!(p.resyncs(), 1);
    }
}
