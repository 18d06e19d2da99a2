//! The two lifecycles a caller observes: [`PeerState`] (the room member's)
//! and [`ConnectionState`] (each remote peer's connection). Plain values at
//! the bottom of the crate: errors and events both carry them.

/// State of a [`super::MeteredPeer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Built, not joined.
    Idle,
    /// `join` under way.
    Joining,
    /// In the channel.
    Joined,
    /// The signalling connection dropped; peers are kept and reconciled on return.
    Reconnecting,
    /// `close` under way.
    Leaving,
    /// Closed for good.
    Closed,
}

/// State of the connection to one remote peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// Not negotiated yet.
    Idle,
    /// ICE/DTLS under way.
    Connecting,
    /// Media can flow.
    Connected,
    /// Lost; recovering (ICE rebuild or signalling reconnect).
    Reconnecting,
    /// Closed for good.
    Closed,
}
