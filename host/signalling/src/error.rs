//! Errors of the signalling client, split by phase: [`ConfigError`] when building
//! a client from options, [`ClientError`] when connecting or making requests.

use std::time::Duration;

use super::events::ClientState;

/// Why building a client failed (bad options). Nothing was sent anywhere.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The base URL is unusable (not `wss:`, `ws:` off localhost, has a path...).
    #[error("invalid url: {0}")]
    Url(String),
    /// An option is out of range.
    #[error("invalid option `{name}`: {reason}")]
    Option {
        /// The option's name.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl ConfigError {
    pub(crate) fn option(name: &'static str, reason: impl Into<String>) -> Self {
        Self::Option { name, reason: reason.into() }
    }
}

/// Why connecting or a request failed.
///
/// Branch on the variant (and on `code` of [`ClientError::ServerRequest`]); the
/// `Display` text is not part of the contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Bad options (from [`super::SignallingClient::connect_with`]).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The first connect failed. `close_code` is the WebSocket close code (1006
    /// for a transport failure or timeout, the HTTP status for a refused
    /// handshake, 4001/4002 for a bad/expired credential...).
    #[error("connect failed (code {close_code}): {reason}")]
    Connect {
        /// Close code.
        close_code: u16,
        /// Close reason (credentials scrubbed).
        reason: String,
    },
    /// The first connect failed because the token provider failed (returned an
    /// error or an empty token, or timed out).
    #[error("token provider: {reason}")]
    TokenProvider {
        /// The (scrubbed) error.
        reason: String,
    },
    /// `connect` was called while the client is not idle or closed.
    #[error("connect: invalid state {state:?}")]
    InvalidState {
        /// The state the client was in.
        state: ClientState,
    },
    /// The operation needs a live connection; the frame never left this client
    /// (safe to retry after the next `Connected`).
    #[error("not connected")]
    NotConnected,
    /// The connection dropped after the frame was handed to it and before its
    /// ack arrived (the server may have processed it).
    #[error("disconnected before the ack (code {close_code})")]
    Disconnected {
        /// The code the connection ended with.
        close_code: u16,
    },
    /// No ack within the timeout.
    #[error("no ack for request {request_id} within {timeout:?}")]
    AckTimeout {
        /// The request id.
        request_id: String,
        /// The timeout that elapsed.
        timeout: Duration,
    },
    /// The server answered the request with an `error` frame.
    #[error("server refused the request: {code}{}", message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    ServerRequest {
        /// The wire error code (e.g. `channel_reserved`; unknown codes pass through verbatim).
        code: String,
        /// The server's message.
        message: Option<String>,
        /// The request's id.
        request_id: String,
    },
    /// The encoded frame is larger than the server's `maxMessageSize` (checked
    /// before sending, because the server closes the connection with 1009).
    #[error("frame of {size} bytes exceeds the server's maxMessageSize {max}")]
    MessageTooLarge {
        /// Encoded frame size in bytes.
        size: usize,
        /// The server's cap from `welcome`.
        max: u64,
    },
    /// An argument is invalid (channel or peer id empty, too long, control
    /// characters...), checked before sending.
    #[error("invalid argument: {reason}")]
    InvalidArgument {
        /// What is wrong.
        reason: String,
    },
    /// The client was closed while connecting.
    #[error("client closed")]
    Closed,
}
