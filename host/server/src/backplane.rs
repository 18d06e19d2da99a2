//! [`Backplane`]: the hub's boundary with the rest of a deployment.
//!
//! A [`crate::Server`] routes what its own connections do through its hub
//! (`hub.rs`): local subscribers, local presence, local peers. Whatever must
//! also reach connections on *other* nodes — a publish, a direct message to a
//! peer that isn't here, a presence edge, an admin kick — the hub hands to its
//! backplane. What other nodes send back comes in through [`crate::HubIngress`], the
//! same entry the REST control plane uses, so "a message from nowhere on this
//! node" has one path.
//!
//! [`LocalBackplane`] is the single-node deployment (nothing else to reach);
//! a cluster implementation (NATS) implements the same trait, and nothing
//! else in the server knows which one runs.

use metered_protocol::{ErrorCode, PresenceChange};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Who a message is from, as it crosses the backplane.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The sending peer id (`"server"` for the REST control plane).
    pub peer_id: &'a str,
    /// The sender's peer metadata (JWT `peerMetadata`), for receivers that
    /// asked for `includeSenderMetadata`.
    pub peer_metadata: Option<&'a Map<String, Value>>,
}

/// What the hub tells the rest of the deployment.
///
/// Every method is called on the connection's task, inside the hub's
/// routing: implementations must not block (queue the work and return).
pub trait Backplane: Send + Sync + 'static {
    /// A message was published to `channel` of `tenant` on this node and has
    /// been fanned out to this node's subscribers: deliver it to the
    /// subscribers on every other node (once each; never back to this node).
    fn publish(&self, tenant: &str, channel: &str, from: Origin<'_>, data: &RawValue);

    /// A direct message for `to`, who has no connection on this node:
    /// deliver it to `to`'s connections elsewhere and say how many, or
    /// `Err(ErrorCode::PeerNotFound)` when `to` is connected nowhere.
    fn send(&self, tenant: &str, to: &str, from: Origin<'_>, data: &RawValue) -> Result<usize, ErrorCode>;

    /// A peer's first connection in a channel on this node subscribed
    /// (`joined`), or its last one here left: the edge other nodes count to
    /// give the channel one cluster-wide presence per peer id.
    fn presence(&self, change: &PresenceChange, metadata: Option<&Map<String, Value>>);

    /// Closes `peer_id`'s connections on the other nodes (admin kick);
    /// returns how many were asked to close.
    fn kick(&self, tenant: &str, peer_id: &str) -> usize;
}

/// One node, nothing else to reach: publishes and presence edges stay here,
/// a direct message to a peer not on this node finds nobody.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalBackplane;

impl Backplane for LocalBackplane {
    fn publish(&self, _tenant: &str, _channel: &str, _from: Origin<'_>, _data: &RawValue) {}

    fn send(&self, _tenant: &str, _to: &str, _from: Origin<'_>, _data: &RawValue) -> Result<usize, ErrorCode> {
        Err(ErrorCode::PeerNotFound)
    }

    fn presence(&self, _change: &PresenceChange, _metadata: Option<&Map<String, Value>>) {}

    fn kick(&self, _tenant: &str, _peer_id: &str) -> usize {
        0
    }
}
