//! Presence changes as a node reports them to whoever dispatches work per
//! channel (not a wire frame: the wire's `presence` frame is
//! [`crate::ServerFrame::Presence`]).

use std::sync::Arc;

/// A peer entered (its first connection subscribed) or left (its last one
/// unsubscribed) a channel: what an agent dispatcher watches
/// (`metered_server::PresenceView::changes`, `metered_hosting::Presence`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceChange {
    /// The tenant.
    pub tenant: Arc<str>,
    /// The channel.
    pub channel: Arc<str>,
    /// The peer.
    pub peer_id: Arc<str>,
    /// `true`: joined; `false`: left.
    pub joined: bool,
}
