//! Agents in real rooms: the glue between the agent runtime and the peer
//! layer, which know nothing of each other.
//!
//! - [`PeerRoomHost`] — the runtime's `RoomHost` over [`metered_peer::MeteredPeer`]:
//!   an agent's `room.join` becomes a peer of its own in the channel.
//! - [`Dispatcher`] — `metered serve --agent AGENT.wasm@PATTERN`: an agent per
//!   matching channel while it has peers, driven by a [`Presence`] source.
//! - `PolicySources` (feature `sources`) — the runtime's `SourceHost` over
//!   `metered-sources`: an agent's `player.open` under a source policy.
//!
//! Doesn't know about the messaging server: presence comes in through the
//! [`Presence`] trait (the `metered` binary implements it over the server's
//! hub), rooms through `MeteredPeer` over the wire like any other client.

mod dispatch;
mod peer_room_host;
mod presence;
#[cfg(feature = "sources")]
mod sources;

pub use dispatch::{AgentRule, Dispatcher};
pub use peer_room_host::PeerRoomHost;
pub use presence::{Presence, PresenceChange};
#[cfg(feature = "sources")]
pub use sources::PolicySources;
