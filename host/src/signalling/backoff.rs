//! Pure reconnect decisions: the backoff delay and whether to retry.

use std::time::Duration;

use super::options::ReconnectOptions;
use crate::protocol::CloseCode;

/// Close code after which the next delay has a floor (over capacity).
const SLOW_BACKOFF_CODE: u16 = 4010;
/// The floor applied after [`SLOW_BACKOFF_CODE`].
pub const SLOW_BACKOFF_FLOOR: Duration = Duration::from_secs(30);

/// Delay before reconnect attempt `attempt` (1-based). `unit_random` is in
/// `[0, 1)`; `floor` raises the base delay (after 4010).
pub fn delay(opts: &ReconnectOptions, attempt: u32, floor: Option<Duration>, unit_random: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(64) as i32;
    let base = opts.initial_delay.as_secs_f64() * opts.multiplier.powi(exponent);
    let base = base.min(opts.max_delay.as_secs_f64());
    let before = base.max(floor.map_or(0.0, |f| f.as_secs_f64()));
    let jitter = before * opts.jitter_ratio * (unit_random * 2.0 - 1.0);
    Duration::from_secs_f64((before + jitter).max(0.0))
}

/// The floor the next delay must respect after a close with `code`.
pub fn floor_after(code: u16) -> Option<Duration> {
    (code == SLOW_BACKOFF_CODE).then_some(SLOW_BACKOFF_FLOOR)
}

/// Whether to reconnect after a connection ended with `code` (`None`: the
/// attempt failed before any close code, e.g. the token provider failed).
pub fn should_reconnect(
    opts: Option<&ReconnectOptions>,
    code: Option<u16>,
    explicitly_closed: bool,
    was_ever_connected: bool,
    attempts: u32,
) -> bool {
    let Some(opts) = opts else { return false };
    if explicitly_closed || !was_ever_connected {
        return false;
    }
    if code.is_some_and(CloseCode::is_terminal) {
        return false;
    }
    attempts < opts.max_attempts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_capped_and_jittered() {
        let o = ReconnectOptions::default();
        assert_eq!(delay(&o, 1, None, 0.5), Duration::from_millis(500));
        assert_eq!(delay(&o, 2, None, 0.5), Duration::from_secs(1));
        assert_eq!(delay(&o, 4, None, 0.5), Duration::from_secs(4));
        assert_eq!(delay(&o, 20, None, 0.5), Duration::from_secs(30));
        assert_eq!(delay(&o, u32::MAX, None, 0.5), Duration::from_secs(30));
        let low = delay(&o, 2, None, 0.0);
        let high = delay(&o, 2, None, 0.999_999);
        assert!((low.as_secs_f64() - 0.8).abs() < 1e-9, "{low:?}");
        assert!((high.as_secs_f64() - 1.2).abs() < 1e-5, "{high:?}");
        assert_eq!(delay(&o, 1, floor_after(4010), 0.5), Duration::from_secs(30));
        assert_eq!(floor_after(1006), None);
    }

    #[test]
    fn reconnect_decisions() {
        let o = ReconnectOptions::default();
        assert!(should_reconnect(Some(&o), Some(1006), false, true, 0));
        assert!(should_reconnect(Some(&o), Some(1001), false, true, 5));
        assert!(should_reconnect(Some(&o), Some(4002), false, true, 0), "expired token: a provider mints a new one");
        assert!(should_reconnect(Some(&o), None, false, true, 0));
        for fatal in [4001, 4003, 4012, 4020] {
            assert!(!should_reconnect(Some(&o), Some(fatal), false, true, 0), "{fatal}");
        }
        assert!(!should_reconnect(Some(&o), Some(1006), true, true, 0));
        assert!(!should_reconnect(Some(&o), Some(1006), false, false, 0));
        assert!(!should_reconnect(Some(&o), Some(1006), false, true, 100));
        assert!(!should_reconnect(None, Some(1006), false, true, 0));
    }
}
