//! Pure per-connection timers: the `welcome` deadline, the heartbeat `ping`
//! after a third of the inactivity timeout of inbound silence (repeated while the
//! silence lasts), and the inactivity close. Time is an input.

use std::time::Duration;

use tokio::time::Instant;

/// The smallest heartbeat interval (guards tiny inactivity timeouts).
const MIN_HEARTBEAT: Duration = Duration::from_millis(10);

/// What the connection must do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WatchdogAction {
    /// Nothing is due.
    Idle,
    /// Send a heartbeat `{"type":"ping"}`.
    Ping,
    /// No `welcome` within the timeout: close the socket.
    WelcomeTimeout,
    /// No inbound frame within the inactivity timeout: close with 4000.
    Inactive,
}

/// Deadlines of one connection.
#[derive(Debug, Clone)]
pub(crate) struct Watchdog {
    inactivity: Duration,
    heartbeat: Duration,
    welcome_deadline: Option<Instant>,
    last_inbound: Instant,
    last_ping: Option<Instant>,
}

impl Watchdog {
    /// Timers of a socket that opened at `now`.
    pub(crate) fn new(now: Instant, inactivity: Duration, welcome_timeout: Duration) -> Self {
        Self {
            inactivity,
            heartbeat: (inactivity / 3).max(MIN_HEARTBEAT),
            welcome_deadline: Some(later(now, welcome_timeout)),
            last_inbound: now,
            last_ping: None,
        }
    }

    /// A text frame arrived: silence starts again.
    pub(crate) fn on_inbound(&mut self, now: Instant) {
        self.last_inbound = now;
        self.last_ping = None;
    }

    /// The `welcome` arrived: heartbeats start, its deadline is off.
    pub(crate) fn on_welcome(&mut self, now: Instant) {
        self.welcome_deadline = None;
        self.on_inbound(now);
    }

    /// Decides what is due at `now` (a due ping counts as sent).
    pub(crate) fn poll(&mut self, now: Instant) -> WatchdogAction {
        if self.welcome_deadline.is_some_and(|d| now >= d) {
            return WatchdogAction::WelcomeTimeout;
        }
        if now >= self.inactivity_deadline() {
            return WatchdogAction::Inactive;
        }
        if self.ping_deadline().is_some_and(|d| now >= d) {
            self.last_ping = Some(now);
            return WatchdogAction::Ping;
        }
        WatchdogAction::Idle
    }

    /// When [`Watchdog::poll`] next has something to do.
    pub(crate) fn next_deadline(&self) -> Instant {
        let mut next = self.inactivity_deadline();
        if let Some(d) = self.welcome_deadline {
            next = next.min(d);
        }
        if let Some(d) = self.ping_deadline() {
            next = next.min(d);
        }
        next
    }

    fn inactivity_deadline(&self) -> Instant {
        later(self.last_inbound, self.inactivity)
    }

    /// Pings only once connected, one heartbeat after the later of the last
    /// inbound frame and the last ping.
    fn ping_deadline(&self) -> Option<Instant> {
        if self.welcome_deadline.is_some() {
            return None;
        }
        let from = self.last_ping.unwrap_or(self.last_inbound).max(self.last_inbound);
        Some(later(from, self.heartbeat))
    }
}

/// `t + d`, saturating at a far future (decades) instead of overflowing.
fn later(t: Instant, d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(30 * 365 * 86_400);
    t.checked_add(d.min(FAR)).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn welcome_deadline_then_no_pings_before_welcome() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(t0, 60 * S, 10 * S);
        assert_eq!(w.next_deadline(), t0 + 10 * S);
        assert_eq!(w.poll(t0 + 9 * S), WatchdogAction::Idle, "no ping before welcome");
        assert_eq!(w.poll(t0 + 10 * S), WatchdogAction::WelcomeTimeout);
    }

    #[test]
    fn pings_every_third_of_silence_then_closes() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(t0, 60 * S, 10 * S);
        w.on_welcome(t0);
        assert_eq!(w.next_deadline(), t0 + 20 * S);
        assert_eq!(w.poll(t0 + 19 * S), WatchdogAction::Idle);
        assert_eq!(w.poll(t0 + 20 * S), WatchdogAction::Ping);
        assert_eq!(w.poll(t0 + 20 * S), WatchdogAction::Idle, "one ping per interval");
        assert_eq!(w.next_deadline(), t0 + 40 * S);
        assert_eq!(w.poll(t0 + 40 * S), WatchdogAction::Ping, "silence continues: ping again");
        assert_eq!(w.next_deadline(), t0 + 60 * S);
        assert_eq!(w.poll(t0 + 60 * S), WatchdogAction::Inactive);
    }

    #[test]
    fn inbound_frames_push_everything_back() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(t0, 60 * S, 10 * S);
        w.on_welcome(t0 + S);
        assert_eq!(w.poll(t0 + 21 * S), WatchdogAction::Ping);
        w.on_inbound(t0 + 22 * S); // the pong
        assert_eq!(w.next_deadline(), t0 + 42 * S);
        assert_eq!(w.poll(t0 + 61 * S), WatchdogAction::Ping, "not inactive: heard at 22 s");
        assert_eq!(w.poll(t0 + 82 * S), WatchdogAction::Inactive);
    }

    #[test]
    fn tiny_and_huge_timeouts_are_safe() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(t0, Duration::from_millis(1), Duration::MAX);
        w.on_welcome(t0);
        assert_eq!(w.poll(t0 + Duration::from_millis(1)), WatchdogAction::Inactive);
        let mut w = Watchdog::new(t0, Duration::MAX, Duration::MAX);
        assert_eq!(w.poll(t0 + 1000 * S), WatchdogAction::Idle);
        w.on_welcome(t0);
        assert_eq!(w.poll(t0 + 1000 * S), WatchdogAction::Idle);
    }
}
