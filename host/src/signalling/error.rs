//! Errors of the signalling client.

/// Why building a client failed (bad options).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The base URL is unusable.
    #[error("invalid url: {0}")]
    Url(String),
    /// An option is out of range.
    #[error("invalid option: {0}")]
    Option(String),
}

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Bad options.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The first connect failed; `close_code` is the WebSocket close code (1006
    /// for a transport failure, the HTTP status for a refused handshake).
    #[error("connect failed (code {close_code}): {reason}")]
    Connect {
        /// Close code.
        close_code: u16,
        /// Close reason (credentials scrubbed).
        reason: String,
    },
    /// The operation needs a live connection; the frame never left this client.
    #[error("not connected")]
    NotConnected,
    /// The connection dropped before the ack arrived (the frame may have been delivered).
    #[error("disconnected before the ack (code {0})")]
    Disconnected(u16),
    /// No ack within the timeout.
    #[error("no ack for request {request_id} within the timeout")]
    AckTimeout {
        /// The request id.
        request_id: String,
    },
    /// The server refused the request.
    #[error("server refused the request: {code}{}", message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Server {
        /// The wire error code (kept verbatim, also unknown ones).
        code: String,
        /// The server's message.
        message: Option<String>,
    },
    /// The arguments are invalid (checked before sending).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The client was closed.
    #[error("client closed")]
    Closed,
}
