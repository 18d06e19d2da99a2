//! Agents in real rooms: the glue between the agent runtime and the peer
//! layer (features `runtime` + `webrtc`), which know nothing of each other.
//!
//! - [`PeerRoomHost`] — the runtime's `RoomHost` over [`crate::peer::MeteredPeer`]:
//!   an agent's `room.join` becomes a peer of its own in the channel.

//! - [`Supervisor`] — `metered serve --agent AGENT.wasm@PATTERN`: an agent per
//!   matching channel while it has peers.

mod peer_room;
mod supervisor;

pub use peer_room::PeerRoomHost;
pub use supervisor::{AgentRule, Supervisor};
