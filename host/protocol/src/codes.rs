//! Error codes of `error` frames and WebSocket close codes.

use std::fmt;

/// A machine-readable error code carried by an `error` frame.
///
/// The set is the hosted service's; clients must pass unknown codes through, so
/// parsing a server frame keeps the code as a string (see [`super::ServerFrame`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame is not a JSON object, a field has the wrong type, or a value is out of range.
    MalformedMessage,
    /// `type` names no known client frame.
    UnknownType,
    /// The channel name is empty, too long or contains control characters.
    InvalidChannel,
    /// The peer id is empty, too long or not printable ASCII.
    InvalidPeerId,
    /// The credential's channel patterns do not cover the channel.
    ChannelNotAuthorized,
    /// The channel starts with a reserved prefix (`_metered/`, `_internal/`, `_system/`).
    ChannelReserved,
    /// The connection is already subscribed to the maximum number of channels.
    ChannelLimitExceeded,
    /// No connected peer has the target id.
    PeerNotFound,
    /// `publish` / `send` without a `data` field.
    MissingData,
    /// The credential does not grant the action.
    ActionNotPermitted,
    /// The tenant's message quota for the period is used up.
    OverMessageQuota,
    /// A backplane (NATS) operation failed.
    BackendError,
    /// An unexpected server fault.
    InternalError,
}

impl ErrorCode {
    /// Every known code, in wire order.
    pub const ALL: [ErrorCode; 13] = [
        Self::MalformedMessage,
        Self::UnknownType,
        Self::InvalidChannel,
        Self::InvalidPeerId,
        Self::ChannelNotAuthorized,
        Self::ChannelReserved,
        Self::ChannelLimitExceeded,
        Self::PeerNotFound,
        Self::MissingData,
        Self::ActionNotPermitted,
        Self::OverMessageQuota,
        Self::BackendError,
        Self::InternalError,
    ];

    /// The code as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MalformedMessage => "malformed_message",
            Self::UnknownType => "unknown_type",
            Self::InvalidChannel => "invalid_channel",
            Self::InvalidPeerId => "invalid_peer_id",
            Self::ChannelNotAuthorized => "channel_not_authorized",
            Self::ChannelReserved => "channel_reserved",
            Self::ChannelLimitExceeded => "channel_limit_exceeded",
            Self::PeerNotFound => "peer_not_found",
            Self::MissingData => "missing_data",
            Self::ActionNotPermitted => "action_not_permitted",
            Self::OverMessageQuota => "over_message_quota",
            Self::BackendError => "backend_error",
            Self::InternalError => "internal_error",
        }
    }

    /// Parses a wire code; `None` for a code this release does not know.
    pub fn from_wire(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// WebSocket close codes the server emits (plus the client's own inactivity close).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseCode {
    /// 1000: normal closure.
    Normal,
    /// 1001: the server is shutting down (after a `going_away` frame).
    GoingAway,
    /// 1008: policy violation (bad origin, malformed frame flood, slow consumer).
    PolicyViolation,
    /// 1009: an inbound frame exceeded the frame size limit.
    MessageTooBig,
    /// 4000: the client's inactivity watchdog fired (never sent by the server).
    ClientInactivity,
    /// 4001: the token or key is invalid.
    InvalidToken,
    /// 4002: the token has expired.
    TokenExpired,
    /// 4003: the credential grants no channel.
    ChannelNotAuthorized,
    /// 4010: the tenant's concurrent-connection limit is reached.
    OverConcurrentLimit,
    /// 4011: the connection exceeded its sustained message rate.
    OverMessageRate,
    /// 4012: the account is suspended.
    AccountSuspended,
    /// 4020: an operator disconnected the peer (`DELETE /v1/peers/:id`).
    AdminDisconnect,
}

impl CloseCode {
    /// The numeric code.
    pub const fn code(self) -> u16 {
        match self {
            Self::Normal => 1000,
            Self::GoingAway => 1001,
            Self::PolicyViolation => 1008,
            Self::MessageTooBig => 1009,
            Self::ClientInactivity => 4000,
            Self::InvalidToken => 4001,
            Self::TokenExpired => 4002,
            Self::ChannelNotAuthorized => 4003,
            Self::OverConcurrentLimit => 4010,
            Self::OverMessageRate => 4011,
            Self::AccountSuspended => 4012,
            Self::AdminDisconnect => 4020,
        }
    }

    /// Close codes after which a client must not reconnect on its own: the caller
    /// has to act (new credential, new authorization) first.
    pub const fn is_terminal(code: u16) -> bool {
        matches!(code, 4001 | 4003 | 4012 | 4020)
    }
}
