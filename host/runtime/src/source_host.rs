//! The sources boundary: what an agent's `sources` import needs from the
//! capture layer.
//!
//! The runtime knows neither FFmpeg nor devices. A [`SourceHost`] opens a
//! source string for an agent — under that agent's source policy — and hands
//! back an [`OpenedSource`]: its tracks, state and position. The hosting
//! layer implements it over `metered-sources`; [`NoSources`] refuses every
//! open (the default).

use std::sync::Arc;
use std::time::Duration;

use metered_media::MediaStreamTrack;

use super::room_host::{AgentInfo, BoxFuture};

/// How an RTSP source is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RtspTransport {
    /// Interleaved over the RTSP connection (default).
    Tcp,
    /// RTP over UDP.
    Udp,
    /// RTP over multicast UDP.
    UdpMulticast,
    /// Tunnelled over HTTP.
    Http,
}

/// What a guest asked to open.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceRequest {
    /// The source string, untrusted and unjudged.
    pub source: String,
    /// Repeat a seekable file.
    pub looping: bool,
    /// RTSP transport (`None`: the default).
    pub transport: Option<RtspTransport>,
    /// Wanted video size and rate (0: as the source).
    pub width: u32,
    /// See `width`.
    pub height: u32,
    /// See `width`.
    pub fps: u32,
}

impl SourceRequest {
    /// A request for `source` with every option at its default.
    pub fn new(source: impl Into<String>) -> Self {
        Self { source: source.into(), looping: false, transport: None, width: 0, height: 0, fps: 0 }
    }
}

/// Why an open (or a seek) was refused. Maps onto the WIT `error` variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceHostError {
    /// The policy refused it; the text names the rule.
    #[error("denied: {0}")]
    Denied(String),
    /// A malformed source string or option.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// No such file, host or device.
    #[error("not found: {0}")]
    NotFound(String),
    /// A per-agent limit.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// This host cannot open it (no decoder, no source host, not seekable, a
    /// timeout or a failed open: the text says which).
    #[error("unsupported: {0}")]
    Unsupported(String),
}

/// Where an opened source is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceState {
    /// Opening.
    Connecting,
    /// Media is flowing.
    Live,
    /// A live source dropped and is being reopened; the tracks stay live.
    Reconnecting,
    /// Ended, and why.
    Ended(String),
}

/// An open source, as the runtime holds it for a guest.
pub trait OpenedSource: Send + Sync + 'static {
    /// The source as shown in logs (credentials hidden).
    fn label(&self) -> String;
    /// The audio track, if any.
    fn audio(&self) -> Option<Arc<dyn MediaStreamTrack>>;
    /// The video track, if any.
    fn video(&self) -> Option<Arc<dyn MediaStreamTrack>>;
    /// The current state.
    fn state(&self) -> SourceState;
    /// Media time played (`None` for live sources).
    fn position(&self) -> Option<Duration>;
    /// The length (`None` when unknown or live).
    fn duration(&self) -> Option<Duration>;
    /// Moves a seekable source.
    fn seek(&self, position: Duration) -> Result<(), SourceHostError>;
    /// Stops the source: its tracks end, its resources are released.
    fn stop(&self);
}

/// Opens sources for agents.
pub trait SourceHost: Send + Sync + 'static {
    /// Opens `request.source` for `agent`, judged by that agent's policy
    /// before any I/O.
    fn open<'a>(
        &'a self,
        agent: &'a AgentInfo,
        request: &'a SourceRequest,
    ) -> BoxFuture<'a, Result<Box<dyn OpenedSource>, SourceHostError>>;
}

/// A [`SourceHost`] that refuses every open: agents get no media sources.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSources;

impl SourceHost for NoSources {
    fn open<'a>(
        &'a self,
        _agent: &'a AgentInfo,
        _request: &'a SourceRequest,
    ) -> BoxFuture<'a, Result<Box<dyn OpenedSource>, SourceHostError>> {
        Box::pin(async { Err(SourceHostError::Unsupported("this host offers no media sources".into())) })
    }
}
