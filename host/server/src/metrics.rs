//! Counters operators read from `GET /v1/usage` and `GET /metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Process-wide counters of the messaging service.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Open WebSocket connections.
    pub connections_current: AtomicU64,
    /// Connections admitted since start.
    pub connections_total: AtomicU64,
    /// Connections refused (bad credential, limits, origin, rate).
    pub connections_refused: AtomicU64,
    /// `publish` frames accepted.
    pub messages_published: AtomicU64,
    /// Frames queued to recipients by publish and send.
    pub messages_delivered: AtomicU64,
    /// `send` frames accepted.
    pub directs: AtomicU64,
    /// `error` frames sent.
    pub errors_sent: AtomicU64,
    /// Frames dropped because a recipient's queue was full (it is then closed).
    pub slow_consumer_drops: AtomicU64,
    /// Connections closed for exceeding the message rate.
    pub rate_limited: AtomicU64,
}

impl Metrics {
    /// Prometheus text exposition.
    pub fn render_prometheus(&self) -> String {
        let rows: [(&str, &str, &AtomicU64); 9] = [
            ("metered_connections", "gauge", &self.connections_current),
            ("metered_connections_total", "counter", &self.connections_total),
            ("metered_connections_refused_total", "counter", &self.connections_refused),
            ("metered_messages_published_total", "counter", &self.messages_published),
            ("metered_messages_delivered_total", "counter", &self.messages_delivered),
            ("metered_directs_total", "counter", &self.directs),
            ("metered_errors_sent_total", "counter", &self.errors_sent),
            ("metered_slow_consumer_drops_total", "counter", &self.slow_consumer_drops),
            ("metered_rate_limited_total", "counter", &self.rate_limited),
        ];
        let mut out = String::new();
        for (name, kind, v) in rows {
            let _ = writeln!(out, "# TYPE {name} {kind}\n{name} {}", v.load(Ordering::Relaxed));
        }
        out
    }
}
