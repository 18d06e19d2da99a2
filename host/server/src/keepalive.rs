//! [`Keepalive`]: a connection's timers as a pure state machine — the
//! server's WebSocket pings, the idle timeout and the token's expiry. `now`
//! goes in; what to do and when to look again come out. The connection task
//! only sleeps until [`Keepalive::next_deadline`] and acts on
//! [`Keepalive::poll`].

use std::time::{Duration, Instant};

use metered_protocol::CloseCode;

/// What is due at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// Nothing: sleep until the next deadline.
    Nothing,
    /// The peer has been silent for a ping interval: send a WebSocket ping.
    Ping,
    /// Close the connection with this code and reason.
    Close(CloseCode, &'static str),
}

/// Heartbeat, idle and token-expiry state of one connection.
#[derive(Debug, Clone)]
pub(crate) struct Keepalive {
    ping_interval: Duration,
    idle_timeout: Duration,
    token_deadline: Option<Instant>,
    last_inbound: Instant,
    pinged: bool,
}

impl Keepalive {
    /// Timers starting at `now`; `token_deadline` is when the connection's
    /// token expires (none for publishable keys).
    pub(crate) fn new(
        now: Instant,
        ping_interval: Duration,
        idle_timeout: Duration,
        token_deadline: Option<Instant>,
    ) -> Self {
        Self { ping_interval, idle_timeout, token_deadline, last_inbound: now, pinged: false }
    }

    /// Something arrived from the peer (any frame, a pong included).
    pub(crate) fn inbound(&mut self, now: Instant) {
        self.last_inbound = now;
        self.pinged = false;
    }

    /// What is due at `now`. A ping is due once per silence: after it, only
    /// the idle timeout (or new traffic) moves things on.
    pub(crate) fn poll(&mut self, now: Instant) -> Due {
        if self.token_deadline.is_some_and(|d| now >= d) {
            return Due::Close(CloseCode::TokenExpired, "token expired");
        }
        let silent = now.saturating_duration_since(self.last_inbound);
        if silent >= self.idle_timeout {
            return Due::Close(CloseCode::GoingAway, "idle timeout");
        }
        if silent >= self.ping_interval && !self.pinged {
            self.pinged = true;
            return Due::Ping;
        }
        Due::Nothing
    }

    /// When [`Keepalive::poll`] next has something to say.
    pub(crate) fn next_deadline(&self) -> Instant {
        let next =
            if self.pinged { self.last_inbound + self.idle_timeout } else { self.last_inbound + self.ping_interval };
        self.token_deadline.map_or(next, |d| d.min(next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_silent_peer_is_pinged_once_then_closed_at_the_idle_timeout() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(t0, 25 * S, 60 * S, None);
        assert_eq!(k.next_deadline(), t0 + 25 * S);
        assert_eq!(k.poll(t0 + 24 * S), Due::Nothing);
        assert_eq!(k.poll(t0 + 25 * S), Due::Ping);
        assert_eq!(k.poll(t0 + 26 * S), Due::Nothing, "one ping per silence");
        assert_eq!(k.next_deadline(), t0 + 60 * S);
        assert_eq!(k.poll(t0 + 60 * S), Due::Close(CloseCode::GoingAway, "idle timeout"));
    }

    #[test]
    fn traffic_resets_the_heartbeat() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(t0, 25 * S, 60 * S, None);
        assert_eq!(k.poll(t0 + 25 * S), Due::Ping);
        k.inbound(t0 + 30 * S); // the pong
        assert_eq!(k.next_deadline(), t0 + 55 * S);
        assert_eq!(k.poll(t0 + 59 * S), Due::Ping, "silent again for a ping interval");
        assert_eq!(k.poll(t0 + 89 * S), Due::Nothing);
        assert_eq!(k.poll(t0 + 90 * S), Due::Close(CloseCode::GoingAway, "idle timeout"));
    }

    #[test]
    fn the_token_expires_even_on_a_busy_connection() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(t0, 25 * S, 60 * S, Some(t0 + 10 * S));
        assert_eq!(k.next_deadline(), t0 + 10 * S, "the expiry comes before the first ping");
        for s in 1..10 {
            k.inbound(t0 + s * S);
            assert_eq!(k.poll(t0 + s * S), Due::Nothing);
        }
        assert_eq!(k.poll(t0 + 10 * S), Due::Close(CloseCode::TokenExpired, "token expired"));
    }

    #[test]
    fn an_already_expired_token_closes_at_once() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(t0, 25 * S, 60 * S, Some(t0));
        assert_eq!(k.poll(t0), Due::Close(CloseCode::TokenExpired, "token expired"));
    }
}
