//! Events the client emits.

use serde_json::{Map, Value};

use metered_protocol::PresencePeer;

/// Connection state of a [`super::SignallingClient`] (the SDK's
/// `idle`/`connecting`/`connected`/`reconnecting`/`closed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientState {
    /// Built, never connected.
    Idle,
    /// First connection attempt under way.
    Connecting,
    /// `welcome` received; requests can be sent.
    Connected,
    /// Lost the connection; retrying with backoff.
    Reconnecting,
    /// Closed for good (by `close`, a fatal close code, or giving up).
    Closed,
}

impl ClientState {
    /// The SDK's name of the state.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Connecting => "connecting",
            Self::Connected => "connected",
            Self::Reconnecting => "reconnecting",
            Self::Closed => "closed",
        }
    }
}

impl std::fmt::Display for ClientState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated `iceServers` entry from `welcome.metadata`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceServer {
    /// `stun:`/`turn:` URLs.
    pub urls: Vec<String>,
    /// TURN username.
    pub username: Option<String>,
    /// TURN credential.
    pub credential: Option<String>,
}

/// An event from the client (see [`super::SignallingClient::events`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ClientEvent {
    /// `welcome` received.
    Connected {
        /// Our peer id.
        peer_id: String,
        /// The server's clock, ms since the epoch.
        server_time: i64,
        /// Credential expiry, ms since the epoch.
        expires_at: Option<i64>,
        /// Whether this follows a reconnect.
        is_reconnect: bool,
        /// The server's inbound frame cap.
        max_message_size: u64,
        /// Validated ICE servers, if the welcome carried any.
        ice_servers: Option<Vec<IceServer>>,
        /// The whole (connection-private) welcome metadata.
        metadata: Option<Map<String, Value>>,
    },
    /// A connection that had opened ended (also the final event when the
    /// client gives up or is closed: `will_reconnect` is then false).
    Disconnected {
        /// Close code (1006 for a transport failure, 4000 for our inactivity close).
        code: u16,
        /// Close reason.
        reason: String,
        /// Whether the client will reconnect.
        will_reconnect: bool,
    },
    /// State changed.
    StateChange {
        /// Previous state.
        from: ClientState,
        /// New state.
        to: ClientState,
    },
    /// A channel message.
    Message {
        /// The channel.
        channel: String,
        /// Sender's peer id.
        sender_peer_id: String,
        /// The data.
        data: Value,
        /// Sender's peer metadata (when subscribed with `include_sender_metadata`).
        sender_metadata: Option<Map<String, Value>>,
    },
    /// A direct message.
    Direct {
        /// Sender's peer id.
        sender_peer_id: String,
        /// The data.
        data: Value,
        /// Sender's peer metadata.
        sender_metadata: Option<Map<String, Value>>,
    },
    /// Presence snapshot (after subscribe) or delta.
    Presence {
        /// The channel.
        channel: String,
        /// Joined (or present, in a snapshot).
        joined: Vec<PresencePeer>,
        /// Left.
        left: Vec<PresencePeer>,
    },
    /// An `error` frame that no pending request claimed.
    ServerError {
        /// Wire error code.
        code: String,
        /// Message.
        message: Option<String>,
        /// Request id, if any.
        request_id: Option<String>,
    },
    /// The server is shutting down; it closes the connection next (1001) and
    /// the client reconnects with backoff.
    GoingAway {
        /// Suggested delay before reconnecting.
        retry_after_ms: u64,
    },
    /// The token provider failed this many times in a row while reconnecting
    /// (emitted from the third consecutive failure on).
    TokenProviderError {
        /// Consecutive failures.
        consecutive_failures: u32,
        /// The (scrubbed) error.
        error: String,
    },
}
