//! The runtime's [`SourceHost`] over `metered-sources`: an agent's
//! `player.open` becomes a [`Player`] opened under the agent's (its
//! tenant's) [`SourcePolicy`] — the strict one unless configured otherwise.

use std::sync::Arc;
use std::time::Duration;

use metered_media::MediaStreamTrack;
use metered_runtime::{
    AgentInfo, BoxFuture, OpenedSource, RtspTransport as WantedTransport, SourceHost, SourceHostError, SourceRequest,
    SourceState,
};
use metered_sources::{
    EndReason, Player, PlayerState, RtspTransport, SourceError, SourceOptions, SourcePolicy, Sources,
};

/// Opens sources for agents under one policy (per tenant: one of these each).
pub struct PolicySources {
    sources: Sources,
}

impl PolicySources {
    /// Sources judged by `policy` (give guests [`SourcePolicy::strict`] plus
    /// what their tenant is allowed).
    pub fn new(policy: SourcePolicy) -> Self {
        Self { sources: Sources::new(policy) }
    }

    /// As a runtime [`SourceHost`].
    pub fn shared(policy: SourcePolicy) -> Arc<dyn SourceHost> {
        Arc::new(Self::new(policy))
    }
}

impl std::fmt::Debug for PolicySources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySources").field("policy", self.sources.policy()).finish()
    }
}

/// The runtime's error for a sources error: the most specific WIT case.
fn host_error(e: SourceError) -> SourceHostError {
    let text = e.to_string();
    match e {
        SourceError::Refused { .. } => SourceHostError::Denied(text),
        SourceError::InvalidArgument { .. } | SourceError::UnknownKind { .. } => SourceHostError::InvalidArgument(text),
        SourceError::NotFound { .. } => SourceHostError::NotFound(text),
        SourceError::Device { problem: metered_sources::DeviceProblem::Missing, .. } => SourceHostError::NotFound(text),
        _ => SourceHostError::Unsupported(text),
    }
}

impl SourceHost for PolicySources {
    fn open<'a>(
        &'a self,
        agent: &'a AgentInfo,
        request: &'a SourceRequest,
    ) -> BoxFuture<'a, Result<Box<dyn OpenedSource>, SourceHostError>> {
        Box::pin(async move {
            let defaults = SourceOptions::default();
            let options = SourceOptions {
                looping: request.looping,
                transport: match request.transport {
                    None | Some(WantedTransport::Tcp) => RtspTransport::Tcp,
                    Some(WantedTransport::Udp) => RtspTransport::Udp,
                    Some(WantedTransport::UdpMulticast) => RtspTransport::UdpMulticast,
                    Some(WantedTransport::Http) => RtspTransport::Http,
                    Some(other) => {
                        return Err(SourceHostError::InvalidArgument(format!("transport {other:?}")));
                    }
                },
                width: request.width,
                height: request.height,
                fps: if request.fps == 0 { defaults.fps } else { request.fps },
                ..defaults
            };
            match self.sources.open_str(&request.source, &options).await {
                Ok(player) => Ok(Box::new(Opened(player)) as Box<dyn OpenedSource>),
                Err(e) => {
                    tracing::info!(agent = %agent.id, error = %e, "source refused or unopenable");
                    Err(host_error(e))
                }
            }
        })
    }
}

/// A player as the runtime holds it. Dropping it drops the player; tracks
/// handed out keep playing while held.
struct Opened(Player);

impl OpenedSource for Opened {
    fn label(&self) -> String {
        self.0.source().to_owned()
    }

    fn audio(&self) -> Option<Arc<dyn MediaStreamTrack>> {
        self.0.audio.as_ref().map(|a| a.track())
    }

    fn video(&self) -> Option<Arc<dyn MediaStreamTrack>> {
        self.0.video.as_ref().map(|v| v.track())
    }

    fn state(&self) -> SourceState {
        match self.0.state() {
            PlayerState::Connecting => SourceState::Connecting,
            PlayerState::Live => SourceState::Live,
            PlayerState::Reconnecting { .. } => SourceState::Reconnecting,
            PlayerState::Ended { reason } => SourceState::Ended(match reason {
                EndReason::EndOfStream => "end of stream".into(),
                EndReason::Stopped => "stopped".into(),
                EndReason::Failed(e) => format!("failed: {e}"),
                other => format!("{other:?}"),
            }),
            _ => SourceState::Live,
        }
    }

    fn position(&self) -> Option<Duration> {
        self.0.duration().map(|_| self.0.position())
    }

    fn duration(&self) -> Option<Duration> {
        self.0.duration()
    }

    fn seek(&self, position: Duration) -> Result<(), SourceHostError> {
        self.0.seek(position).map_err(host_error)
    }

    fn stop(&self) {
        self.0.stop();
    }
}
