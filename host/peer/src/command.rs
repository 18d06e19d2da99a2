//! [`Command`]: what the room (and a [`RemotePeer`](super::RemotePeer)) asks
//! of one connection driver. Its own file so that the driver
//! (`connection.rs`) and the remote-peer handle (`remote.rs`) both depend on
//! it, not on each other.

use serde_json::Value;
use tokio::sync::oneshot;

use super::data_channel::{DataChannel, DataChannelOptions};
use super::error::PeerError;
use super::rtc::LocalRtpTrack;
use metered_protocol::RtcSignal;

/// What the room asks of a connection.
pub(crate) enum Command {
    /// An inbound `rtc-description` / `rtc-ice`.
    Signal(RtcSignal),
    /// Start sending a local track (keyed by the application's track id).
    Attach(String, LocalRtpTrack),
    /// Stop sending it.
    Detach(String),
    /// Queue a `__meteredTrackMeta` message on the ordered signal path (so it
    /// reaches the remote ahead of the media it describes).
    Meta(Value),
    /// Open a data channel on the current connection generation.
    DataChannel(String, DataChannelOptions, oneshot::Sender<Result<DataChannel, PeerError>>),
    /// Rebuild from scratch (our signalling reconnected).
    Rebuild,
    /// Tear down; acknowledged when done.
    Close(oneshot::Sender<()>),
}
