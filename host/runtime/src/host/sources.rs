//! `metered:realtime/sources`: players the host opens for the guest
//! ([`PlayerRep`], over an [`OpenedSource`](crate::source_host::OpenedSource)
//! from the agent's [`SourceHost`](crate::source_host::SourceHost)). The source
//! string is judged by the source host's policy, never here; this side checks
//! shapes and the per-agent player limit.

use std::time::Duration;

use wasmtime::component::Resource;

use crate::bindings::sources::{Error, Host, HostPlayer, OpenOptions, PlayerState, RtspTransport as WitTransport};
use crate::reps::{PlayerRep, TrackRep};
use crate::source_host::{RtspTransport, SourceHostError, SourceRequest, SourceState};
use crate::state::GuestState;

/// Longest source string a guest may pass.
const SOURCE_BYTES: usize = 4096;
/// Largest video size or rate a guest may ask for.
const MAX_DIMENSION: u32 = 8192;
const MAX_FPS: u32 = 240;

fn source_error(e: SourceHostError) -> Error {
    match e {
        SourceHostError::Denied(m) => Error::Denied(m),
        SourceHostError::InvalidArgument(m) => Error::InvalidArgument(m),
        SourceHostError::NotFound(m) => Error::NotFound(m),
        SourceHostError::LimitExceeded(m) => Error::LimitExceeded(m),
        SourceHostError::Unsupported(m) => Error::Unsupported(m),
    }
}

/// The request, or what is wrong with the guest's arguments.
fn request(source: String, options: &OpenOptions) -> Result<SourceRequest, Error> {
    if source.is_empty() || source.len() > SOURCE_BYTES {
        return Err(Error::InvalidArgument(format!("source must be 1..={SOURCE_BYTES} bytes")));
    }
    if source.chars().any(char::is_control) {
        return Err(Error::InvalidArgument("source holds control characters".into()));
    }
    for (name, v, max) in [
        ("width", options.width, MAX_DIMENSION),
        ("height", options.height, MAX_DIMENSION),
        ("fps", options.fps, MAX_FPS),
    ] {
        if v > max {
            return Err(Error::InvalidArgument(format!("{name} {v} is over {max}")));
        }
    }
    let mut r = SourceRequest::new(source);
    r.looping = options.loop_;
    r.transport = options.transport.map(|t| match t {
        WitTransport::Tcp => RtspTransport::Tcp,
        WitTransport::Udp => RtspTransport::Udp,
        WitTransport::UdpMulticast => RtspTransport::UdpMulticast,
        WitTransport::Http => RtspTransport::Http,
    });
    (r.width, r.height, r.fps) = (options.width, options.height, options.fps);
    Ok(r)
}

impl Host for GuestState {}

impl HostPlayer for GuestState {
    async fn open(
        &mut self,
        source: String,
        options: OpenOptions,
    ) -> wasmtime::Result<Result<Resource<PlayerRep>, Error>> {
        self.enter()?;
        if self.counts.players >= self.limits.players {
            return Ok(Err(Error::LimitExceeded(format!("at most {} players per agent", self.limits.players))));
        }
        let request = match request(source, &options) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        let (host, agent) = (self.sources.clone(), self.agent.clone());
        let opened = self.blocking(async move { host.open(&agent, &request).await }).await;
        match opened {
            Ok(source) => {
                tracing::info!(agent = %self.agent.id, source = %source.label(), "player opened");
                let res = self.push(PlayerRep { source })?;
                self.counts.players += 1;
                Ok(Ok(res))
            }
            Err(e) => {
                tracing::info!(agent = %self.agent.id, error = %e, "player refused");
                Ok(Err(source_error(e)))
            }
        }
    }

    fn label(&mut self, this: Resource<PlayerRep>) -> wasmtime::Result<String> {
        self.enter()?;
        Ok(self.table.get(&this)?.source.label())
    }

    fn audio(&mut self, this: Resource<PlayerRep>) -> wasmtime::Result<Option<Resource<TrackRep>>> {
        self.enter()?;
        match self.table.get(&this)?.source.audio() {
            Some(track) => Ok(Some(self.push(TrackRep { track })?)),
            None => Ok(None),
        }
    }

    fn video(&mut self, this: Resource<PlayerRep>) -> wasmtime::Result<Option<Resource<TrackRep>>> {
        self.enter()?;
        match self.table.get(&this)?.source.video() {
            Some(track) => Ok(Some(self.push(TrackRep { track })?)),
            None => Ok(None),
        }
    }

    fn state(&mut self, this: Resource<PlayerRep>) -> wasmtime::Result<PlayerState> {
        self.enter()?;
        Ok(match self.table.get(&this)?.source.state() {
            SourceState::Connecting => PlayerState::Connecting,
            SourceState::Live => PlayerState::Live,
            SourceState::Reconnecting => PlayerState::Reconnecting,
            SourceState::Ended(why) => PlayerState::Ended(why),
        })
    }

    fn position_ms(&mut self, this: Resource<PlayerRep>) -> wasmtime::Result<Option<u64>> {
        self.enter()?;
        Ok(self.table.get(&this)?.source.position().map(|d| d.as_millis() as u64))
    }

    fn duration_ms(&mut self, this: Resource<PlayerRep>) -> wasmtime::Result<Option<u64>> {
        self.enter()?;
        Ok(self.table.get(&this)?.source.duration().map(|d| d.as_millis() as u64))
    }

    fn seek(&mut self, this: Resource<PlayerRep>, position_ms: u64) -> wasmtime::Result<Result<(), Error>> {
        self.enter()?;
        let source = &self.table.get(&this)?.source;
        Ok(source.seek(Duration::from_millis(position_ms)).map_err(source_error))
    }

    fn stop(&mut self, this: Resource<PlayerRep>) -> wasmtime::Result<()> {
        self.enter()?;
        self.table.get(&this)?.source.stop();
        Ok(())
    }

    fn drop(&mut self, this: Resource<PlayerRep>) -> wasmtime::Result<()> {
        // The tracks keep playing while the guest (or its room) holds one.
        self.delete(this)?;
        self.counts.players = self.counts.players.saturating_sub(1);
        Ok(())
    }
}
