//! The wire protocol of Metered Realtime Messaging: frames, codes, limits and the
//! validation every inbound frame goes through.
//!
//! Pure data and functions: nothing here knows about sockets or tokio. The server
//! parses hostile client frames with [`ClientRequest::parse`]; the client parses
//! server frames with [`ServerFrame::parse`]; both build outbound frames from the
//! typed enums here so the JSON shape lives in one place.
//!
//! Inbound text is untrusted. Parsing never panics; every failure is a typed
//! [`FrameError`] carrying the wire error code and, when it could be recovered,
//! the `requestId` to correlate it with.

mod client_frame;
mod codes;
mod limits;
mod presence;
mod rtc;
mod scope;
mod server_frame;
mod validate;

pub use client_frame::MAX_DATA_DEPTH;
pub use client_frame::nesting_depth;
pub use client_frame::{ClientFrame, ClientRequest, FrameError};
pub use codes::{CloseCode, ErrorCode};
pub use limits::{MAX_CHANNEL_BYTES, MAX_PEER_ID_BYTES, MAX_REQUEST_ID_BYTES, RESERVED_CHANNEL_PREFIXES};
pub use presence::PresenceChange;
pub use rtc::{
    IceCandidateInit, MAX_MSID_ENTRIES, MAX_RTC_ID_BYTES, MAX_UFRAG_BYTES, MsidEntry, RtcSignal, SdpKind,
    TRACK_META_KEY, TrackMeta, ice_ufrag, is_polite, msids_by_mid,
};
pub use scope::{Action, Actions, ChannelPattern};
pub use server_frame::{PresencePeer, ServerFrame};
pub use validate::{
    ValidationError, has_control_chars, is_reserved_channel, validate_channel, validate_peer_id, validate_request_id,
};
