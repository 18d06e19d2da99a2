//! [`Presence`]: who is where, as the dispatcher reads it. The hosting layer
//! never sees a server: `metered serve` hands it its hub's view, a cluster
//! node would hand it the cluster-wide one.

pub use metered_protocol::PresenceChange;
use tokio::sync::broadcast;

/// A source of presence: the current occupants of a channel and the changes
/// from now on.
///
/// Implementations must report a change for a peer's first connection in a
/// channel (`joined`) and its last one leaving (`left`), once per peer id; a
/// receiver that falls behind gets `RecvError::Lagged` and re-reads
/// [`Presence::channel_peers`], so the feed may drop under load but must not
/// lie.
pub trait Presence: Send + Sync + 'static {
    /// Presence changes across every tenant and channel, from now on.
    fn changes(&self) -> broadcast::Receiver<PresenceChange>;
    /// The peer ids present in `channel` of `tenant`, now.
    fn channel_peers(&self, tenant: &str, channel: &str) -> Vec<String>;
}
