//! Rate limits as pure state machines: time is an argument.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A token bucket: `rate` tokens per second, at most `burst` stored.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate_per_sec: u32, burst: u32, now: Instant) -> Self {
        Self { rate: f64::from(rate_per_sec), burst: f64::from(burst), tokens: f64::from(burst), last: now }
    }

    /// Takes one token; `false` when the bucket is empty.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Connection attempts per source IP within a sliding 60 s window.
#[derive(Debug)]
pub struct IpConnectionLimiter {
    per_minute: u32,
    exempt_loopback: bool,
    attempts: HashMap<IpAddr, Window>,
    last_sweep: Option<Instant>,
}

#[derive(Debug)]
struct Window {
    start: Instant,
    previous: u32,
    current: u32,
}

const WINDOW: Duration = Duration::from_secs(60);

impl IpConnectionLimiter {
    /// `per_minute == 0` disables the limit.
    pub fn new(per_minute: u32, exempt_loopback: bool) -> Self {
        Self { per_minute, exempt_loopback, attempts: HashMap::new(), last_sweep: None }
    }

    /// Records an attempt from `ip`; `false` when it is over the limit.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.per_minute == 0 || (self.exempt_loopback && ip.is_loopback()) {
            return true;
        }
        self.sweep(now);
        let w = self.attempts.entry(ip).or_insert(Window { start: now, previous: 0, current: 0 });
        let mut elapsed = now.saturating_duration_since(w.start);
        if elapsed >= WINDOW {
            let windows = (elapsed.as_secs() / WINDOW.as_secs()) as u32;
            w.previous = if windows == 1 { w.current } else { 0 };
            w.current = 0;
            w.start += WINDOW * windows;
            elapsed = now.saturating_duration_since(w.start);
        }
        // Sliding-window estimate: the previous window weighted by its overlap.
        let overlap = 1.0 - elapsed.as_secs_f64() / WINDOW.as_secs_f64();
        let estimate = f64::from(w.previous) * overlap + f64::from(w.current);
        if estimate >= f64::from(self.per_minute) {
            return false;
        }
        w.current += 1;
        true
    }

    fn sweep(&mut self, now: Instant) {
        if self.last_sweep.is_some_and(|t| now.saturating_duration_since(t) < WINDOW) {
            return;
        }
        self.last_sweep = Some(now);
        self.attempts.retain(|_, w| now.saturating_duration_since(w.start) < WINDOW * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100, 200, t0);
        assert_eq!((0..250).filter(|_| b.try_take(t0)).count(), 200);
        assert!(!b.try_take(t0));
        assert!(b.try_take(t0 + Duration::from_millis(10)));
        assert!(!b.try_take(t0 + Duration::from_millis(10)));
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!((0..300).filter(|_| b.try_take(t1)).count(), 200);
    }

    #[test]
    fn ip_limiter() {
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let mut l = IpConnectionLimiter::new(60, true);
        assert_eq!((0..100).filter(|_| l.allow(ip, t0)).count(), 60);
        assert!(l.allow(other, t0));
        assert!(l.allow("127.0.0.1".parse().unwrap(), t0));
        assert!(l.allow("::1".parse().unwrap(), t0));
        // Half a window later the previous window still weighs half.
        assert_eq!((0..100).filter(|_| l.allow(ip, t0 + Duration::from_secs(90))).count(), 30);
        assert_eq!((0..100).filter(|_| l.allow(ip, t0 + Duration::from_secs(300))).count(), 60);
        let mut strict = IpConnectionLimiter::new(2, false);
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!((0..5).filter(|_| strict.allow(lo, t0)).count(), 2);
        let mut off = IpConnectionLimiter::new(0, false);
        assert!((0..1000).all(|_| off.allow(ip, t0)));
    }
}
