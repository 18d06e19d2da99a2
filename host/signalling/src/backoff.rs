//! Pure reconnect logic: the backoff delay and the reconnect loop's decisions
//! (retry or give up, connecting vs reconnecting, when to report token-provider
//! failures). No sockets, no clock, no randomness: the caller passes a uniform
//! random number in.

use std::time::Duration;

use super::events::ClientState;
use super::options::ReconnectOptions;
use metered_protocol::CloseCode;

/// Close code after which the next delay has a floor (over the concurrent limit).
const SLOW_BACKOFF_CODE: u16 = 4010;
/// The floor applied to the next delay after [`SLOW_BACKOFF_CODE`].
pub(crate) const SLOW_BACKOFF_FLOOR: Duration = Duration::from_secs(30);
/// Consecutive token-provider failures from which each failure is reported.
pub(crate) const TOKEN_FAILURE_THRESHOLD: u32 = 3;

/// Delay before reconnect attempt `attempt` (1-based): `initial · multiplier^(attempt-1)`
/// capped at `max_delay`, raised to `floor`, then spread by ±`jitter_ratio`.
/// `unit_random` is in `[0, 1)`. Never panics, whatever the options.
pub(crate) fn delay(opts: &ReconnectOptions, attempt: u32, floor: Option<Duration>, unit_random: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(1024) as i32;
    let max = opts.max_delay.as_secs_f64();
    let base = opts.initial_delay.as_secs_f64() * opts.multiplier.powi(exponent);
    let base = if base.is_finite() { base.min(max) } else { max };
    let before = base.max(floor.map_or(0.0, |f| f.as_secs_f64()));
    let spread = if opts.jitter_ratio.is_finite() { opts.jitter_ratio.clamp(0.0, 1.0) } else { 0.0 };
    let unit = if unit_random.is_finite() { unit_random.clamp(0.0, 1.0) } else { 0.5 };
    let jittered = (before + before * spread * (unit * 2.0 - 1.0)).max(0.0);
    Duration::try_from_secs_f64(jittered).unwrap_or(Duration::MAX)
}

/// What the reconnect loop does after a token-provider failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenFailure {
    /// `Some(n)`: emit `TokenProviderError` with `n` consecutive failures.
    pub report: Option<u32>,
    /// Whether to back off and try again (otherwise the client closes).
    pub retry: bool,
}

/// The reconnect loop's bookkeeping, as a pure state machine.
#[derive(Debug, Clone)]
pub(crate) struct ReconnectPolicy {
    opts: Option<ReconnectOptions>,
    attempts: u32,
    was_ever_connected: bool,
    floor: Option<Duration>,
    token_failures: u32,
    last_close_code: Option<u16>,
}

impl ReconnectPolicy {
    /// A fresh policy (`None`: never reconnect).
    pub(crate) fn new(opts: Option<ReconnectOptions>) -> Self {
        Self { opts, attempts: 0, was_ever_connected: false, floor: None, token_failures: 0, last_close_code: None }
    }

    /// The state to show while the next attempt runs.
    pub(crate) fn attempt_state(&self) -> ClientState {
        if self.attempts > 0 || self.was_ever_connected { ClientState::Reconnecting } else { ClientState::Connecting }
    }

    /// Whether a `welcome` was ever received.
    pub(crate) fn was_ever_connected(&self) -> bool {
        self.was_ever_connected
    }

    /// Retries since the last `welcome`.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The close code of the last connection, if one ended since the last `welcome`.
    pub(crate) fn last_close_code(&self) -> Option<u16> {
        self.last_close_code
    }

    /// A `welcome` arrived; returns whether it follows a reconnect.
    pub(crate) fn on_welcome(&mut self) -> bool {
        let is_reconnect = self.was_ever_connected;
        self.was_ever_connected = true;
        self.attempts = 0;
        self.last_close_code = None;
        is_reconnect
    }

    /// The token provider produced a token.
    pub(crate) fn on_token(&mut self) {
        self.token_failures = 0;
    }

    /// The token provider failed (error, timeout or empty token).
    pub(crate) fn on_token_failure(&mut self, explicitly_closed: bool) -> TokenFailure {
        self.token_failures = self.token_failures.saturating_add(1);
        let report = (self.token_failures >= TOKEN_FAILURE_THRESHOLD).then_some(self.token_failures);
        TokenFailure { report, retry: self.should_reconnect(None, explicitly_closed) }
    }

    /// A connection (or connection attempt) ended with `code`; returns whether
    /// the client will reconnect.
    pub(crate) fn on_close(&mut self, code: u16, explicitly_closed: bool) -> bool {
        self.last_close_code = Some(code);
        if code == SLOW_BACKOFF_CODE {
            self.floor = Some(SLOW_BACKOFF_FLOOR);
        }
        self.should_reconnect(Some(code), explicitly_closed)
    }

    /// Counts one more attempt and returns the delay to wait before it (the
    /// 4010 floor is consumed by this call).
    pub(crate) fn next_delay(&mut self, unit_random: f64) -> Duration {
        self.attempts = self.attempts.saturating_add(1);
        let floor = self.floor.take();
        self.opts.as_ref().map_or(Duration::ZERO, |o| delay(o, self.attempts, floor, unit_random))
    }

    /// The SDK's rule: never after `close()`, never before a first `welcome`
    /// (a failed first connect is reported to the caller), never after a fatal
    /// close code, and at most `max_attempts` times in a row.
    fn should_reconnect(&self, code: Option<u16>, explicitly_closed: bool) -> bool {
        let Some(opts) = &self.opts else { return false };
        if explicitly_closed || !self.was_ever_connected || code.is_some_and(CloseCode::is_terminal) {
            return false;
        }
        self.attempts < opts.max_attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(d: Duration) -> f64 {
        d.as_secs_f64()
    }

    #[test]
    fn exponential_capped_and_jittered() {
        let o = ReconnectOptions::default();
        assert_eq!(delay(&o, 1, None, 0.5), Duration::from_millis(500));
        assert_eq!(delay(&o, 2, None, 0.5), Duration::from_secs(1));
        assert_eq!(delay(&o, 4, None, 0.5), Duration::from_secs(4));
        assert_eq!(delay(&o, 20, None, 0.5), Duration::from_secs(30));
        assert_eq!(delay(&o, u32::MAX, None, 0.5), Duration::from_secs(30));
        assert!((secs(delay(&o, 2, None, 0.0)) - 0.8).abs() < 1e-9);
        assert!((secs(delay(&o, 2, None, 0.999_999)) - 1.2).abs() < 1e-5);
        assert_eq!(delay(&o, 1, Some(SLOW_BACKOFF_FLOOR), 0.5), Duration::from_secs(30));
    }

    #[test]
    fn hostile_options_never_panic() {
        let huge = ReconnectOptions {
            initial_delay: Duration::MAX,
            multiplier: f64::INFINITY,
            max_delay: Duration::MAX,
            jitter_ratio: f64::NAN,
            max_attempts: u32::MAX,
        };
        for attempt in [0, 1, 2, 1000, u32::MAX] {
            for r in [0.0, 0.999, f64::NAN, -5.0, 7.0] {
                let _ = delay(&huge, attempt, Some(Duration::MAX), r);
                let _ =
                    delay(&ReconnectOptions { multiplier: f64::NAN, ..ReconnectOptions::default() }, attempt, None, r);
            }
        }
        let zero = ReconnectOptions { jitter_ratio: 1.0, ..ReconnectOptions::default() };
        assert_eq!(delay(&zero, 1, None, 0.0), Duration::ZERO);
    }

    #[test]
    fn first_connect_failures_are_not_retried() {
        let mut p = ReconnectPolicy::new(Some(ReconnectOptions::default()));
        assert_eq!(p.attempt_state(), ClientState::Connecting);
        assert!(!p.on_close(1006, false));
        assert!(!p.on_token_failure(false).retry);
    }

    #[test]
    fn fatal_codes_explicit_close_and_disabled_reconnect_stop() {
        let mut p = ReconnectPolicy::new(Some(ReconnectOptions::default()));
        assert!(!p.on_welcome());
        for code in [1000, 1001, 1005, 1006, 1009, 1011, 4000, 4002, 4010, 4011] {
            assert!(p.on_close(code, false), "{code} is retried");
        }
        for code in [4001, 4003, 4012, 4020] {
            assert!(!p.on_close(code, false), "{code} is fatal");
        }
        assert!(!p.on_close(1006, true), "close() wins");
        let mut off = ReconnectPolicy::new(None);
        off.on_welcome();
        assert!(!off.on_close(1006, false));
        assert_eq!(off.next_delay(0.5), Duration::ZERO);
    }

    #[test]
    fn attempts_grow_reset_on_welcome_and_exhaust() {
        let opts = ReconnectOptions { max_attempts: 3, jitter_ratio: 0.0, ..ReconnectOptions::default() };
        let mut p = ReconnectPolicy::new(Some(opts));
        p.on_welcome();
        let mut delays = Vec::new();
        while p.on_close(1006, false) {
            assert_eq!(p.attempt_state(), ClientState::Reconnecting);
            delays.push(secs(p.next_delay(0.5)));
        }
        assert_eq!(delays, vec![0.5, 1.0, 2.0]);
        assert_eq!(p.attempts(), 3);
        assert_eq!(p.last_close_code(), Some(1006));
        assert!(p.on_welcome(), "a later welcome is a reconnect");
        assert_eq!((p.attempts(), p.last_close_code()), (0, None));
        assert!(p.on_close(1006, false));
        assert_eq!(secs(p.next_delay(0.5)), 0.5, "schedule restarts after a welcome");
    }

    #[test]
    fn over_capacity_floor_applies_once() {
        let mut p = ReconnectPolicy::new(Some(ReconnectOptions { jitter_ratio: 0.0, ..ReconnectOptions::default() }));
        p.on_welcome();
        assert!(p.on_close(4010, false));
        assert_eq!(p.next_delay(0.5), Duration::from_secs(30));
        assert!(p.on_close(1006, false));
        assert_eq!(p.next_delay(0.5), Duration::from_secs(1), "the floor is consumed");
    }

    #[test]
    fn token_failures_are_reported_from_the_third_and_reset_by_a_token() {
        let mut p = ReconnectPolicy::new(Some(ReconnectOptions::default()));
        p.on_welcome();
        let reports: Vec<_> = (0..4).map(|_| p.on_token_failure(false)).collect();
        assert_eq!(reports.iter().map(|r| r.report).collect::<Vec<_>>(), vec![None, None, Some(3), Some(4)]);
        assert!(reports.iter().all(|r| r.retry));
        p.on_token();
        assert_eq!(p.on_token_failure(false).report, None);
        assert!(!p.on_token_failure(true).retry);
    }
}
