//! Hard protocol caps shared by client and server. Configurable per-tenant limits
//! live in the server's configuration (`server::Limits`).

/// Maximum `channel` length in bytes.
pub const MAX_CHANNEL_BYTES: usize = 256;
/// Maximum peer id length in bytes.
pub const MAX_PEER_ID_BYTES: usize = 128;
/// Maximum `requestId` length in bytes.
pub const MAX_REQUEST_ID_BYTES: usize = 128;
/// Channel prefixes no client may use (compared case-insensitively).
pub const RESERVED_CHANNEL_PREFIXES: [&str; 3] = ["_metered/", "_internal/", "_system/"];
