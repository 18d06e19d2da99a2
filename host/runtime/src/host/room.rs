//! `metered:realtime/room`: the guest's view of a channel ([`RoomRep`], over a
//! [`RoomSession`](crate::room_host::RoomSession) from the agent's
//! [`RoomHost`](crate::room_host::RoomHost)). Inbound track metadata passes the
//! agent's metadata gate before the guest sees it; outbound metadata passes it
//! before the room does.

use std::sync::Arc;

use wasmtime::component::Resource;
use wasmtime_wasi_io::poll::{DynPollable, subscribe};

use super::types::kind_to_wit;
use crate::bindings::room::{DataMessage, Error, Host, HostRoom, RemoteTrack, RoomEvent as WitEvent};
use crate::exit::truncate;
use crate::gate::Verdict;
use crate::reps::{RoomRep, StreamRep, TrackRep};
use crate::room_host::{RoomError, RoomEvent};
use crate::state::{GuestState, tracked};
use metered_media::{MediaStreamTrack, MetadataError, StreamMetadata};

/// Longest channel name a guest may ask for.
const CHANNEL_BYTES: usize = 256;

fn room_error(e: RoomError) -> Error {
    match e {
        RoomError::Denied(m) => Error::Denied(m),
        RoomError::NotFound(m) => Error::NotFound(m),
        RoomError::LimitExceeded(m) => Error::LimitExceeded(m),
        RoomError::Closed => Error::Closed,
        RoomError::Unsupported(m) => Error::Unsupported(m),
    }
}

fn metadata_error(e: MetadataError) -> Error {
    match e {
        MetadataError::TooLarge { .. } => Error::LimitExceeded(e.to_string()),
        other => Error::InvalidArgument(other.to_string()),
    }
}

impl Host for GuestState {}

impl GuestState {
    /// Validates outbound metadata and passes it through the policy.
    async fn outbound(&mut self, stream_id: &str, metadata: &str) -> Result<StreamMetadata, Error> {
        let cap = self.limits.metadata_bytes;
        let metadata = StreamMetadata::parse(metadata, cap).map_err(metadata_error)?;
        let Some(gate) = self.policy.as_mut() else { return Ok(metadata) };
        match gate.decide_outbound(stream_id, &metadata).await {
            Verdict::Accept(metadata) => Ok(metadata),
            Verdict::Reject { reason } => Err(Error::Denied(reason)),
        }
    }

    /// Publishes tracks after the policy accepted their metadata.
    async fn publish(
        &mut self,
        this: &Resource<RoomRep>,
        tracks: Vec<Arc<dyn MediaStreamTrack>>,
        stream_id: &str,
        metadata: &str,
    ) -> wasmtime::Result<Result<(), Error>> {
        if stream_id.len() > CHANNEL_BYTES {
            return Ok(Err(Error::InvalidArgument(format!("stream id over {CHANNEL_BYTES} bytes"))));
        }
        let metadata = match self.outbound(stream_id, metadata).await {
            Ok(m) => m,
            Err(e) => return Ok(Err(e)),
        };
        let room = self.table.get_mut(this)?;
        for track in tracks {
            if let Err(e) = room.session.add_track(track, stream_id, metadata.clone()) {
                return Ok(Err(room_error(e)));
            }
        }
        Ok(Ok(()))
    }

    /// A room event as the guest sees it, or `None` when the policy drops it.
    pub(crate) async fn deliver(&mut self, event: RoomEvent) -> wasmtime::Result<Option<WitEvent>> {
        Ok(Some(match event {
            RoomEvent::PeerJoined { peer_id } => WitEvent::PeerJoined(peer_id),
            RoomEvent::PeerLeft { peer_id } => WitEvent::PeerLeft(peer_id),
            RoomEvent::Data { sender, payload } => WitEvent::Data(DataMessage { sender, payload }),
            RoomEvent::Track { peer_id, stream_id, track, metadata } => {
                let metadata = match self.policy.as_mut() {
                    None => metadata,
                    Some(gate) => match gate.check_inbound(&peer_id, &stream_id, track.kind(), &metadata).await {
                        Verdict::Accept(m) => m,
                        Verdict::Reject { reason } => {
                            tracing::debug!(agent = %self.agent.id, peer_id, stream_id, reason, "inbound metadata rejected");
                            return Ok(None);
                        }
                    },
                };
                let kind = kind_to_wit(track.kind());
                let metadata = serde_json::to_string(metadata.as_map()).unwrap_or_else(|_| "{}".into());
                let track = self.push(TrackRep { track })?;
                WitEvent::Track(RemoteTrack { peer_id, stream_id, track, kind, metadata })
            }
        }))
    }
}

impl HostRoom for GuestState {
    async fn join(&mut self, channel: String) -> wasmtime::Result<Result<Resource<RoomRep>, Error>> {
        self.enter()?;
        if channel.is_empty() || channel.len() > CHANNEL_BYTES {
            return Ok(Err(Error::InvalidArgument(format!("channel must be 1..={CHANNEL_BYTES} bytes"))));
        }
        let (host, agent) = (self.room.clone(), self.agent.clone());
        let joined = self.blocking(async move { host.join(&agent, &channel).await }).await;
        match joined {
            Ok(session) => {
                let room = self.push(RoomRep::new(session))?;
                self.live.rooms.push(room.rep());
                Ok(Ok(room))
            }
            Err(e) => Ok(Err(room_error(e))),
        }
    }

    fn peer_id(&mut self, this: Resource<RoomRep>) -> wasmtime::Result<String> {
        self.enter()?;
        Ok(self.table.get(&this)?.session.peer_id().to_owned())
    }

    async fn add_stream(
        &mut self,
        this: Resource<RoomRep>,
        stream: Resource<StreamRep>,
        metadata: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        self.enter()?;
        let stream = self.table.get(&stream)?.stream.clone();
        self.publish(&this, stream.get_tracks(), stream.id(), &metadata).await
    }

    async fn add_track(
        &mut self,
        this: Resource<RoomRep>,
        track: Resource<TrackRep>,
        stream_id: String,
        metadata: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        self.enter()?;
        let track = self.table.get(&track)?.track.clone();
        self.publish(&this, vec![track], &stream_id, &metadata).await
    }

    fn replace_track(
        &mut self,
        this: Resource<RoomRep>,
        old: Resource<TrackRep>,
        new: Option<Resource<TrackRep>>,
    ) -> wasmtime::Result<Result<(), Error>> {
        self.enter()?;
        let old_id = self.table.get(&old)?.track.id().to_owned();
        let new = match new {
            Some(new) => Some(self.table.get(&new)?.track.clone()),
            None => None,
        };
        Ok(self.table.get_mut(&this)?.session.replace_track(&old_id, new).map_err(room_error))
    }

    fn send_data(
        &mut self,
        this: Resource<RoomRep>,
        to: Option<String>,
        payload: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        self.enter()?;
        let cap = self.limits.message_bytes;
        if payload.len() > cap {
            return Ok(Err(Error::LimitExceeded(format!(
                "payload of {} bytes is over the {cap}-byte cap",
                payload.len()
            ))));
        }
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&payload) {
            return Ok(Err(Error::InvalidArgument(truncate(format!("payload is not JSON: {e}"), 200))));
        }
        Ok(self.table.get_mut(&this)?.session.send_data(to.as_deref(), &payload).map_err(room_error))
    }

    async fn next_event(&mut self, this: Resource<RoomRep>) -> wasmtime::Result<Option<WitEvent>> {
        self.enter()?;
        loop {
            let GuestState { table, meter, .. } = &mut *self;
            let (event, waited) = tracked(table.get_mut(&this)?.next()).await;
            if waited {
                meter.waited();
            }
            let Some(event) = event else { return Ok(None) };
            if let Some(event) = self.deliver(event).await? {
                return Ok(Some(event));
            }
        }
    }

    fn subscribe(&mut self, this: Resource<RoomRep>) -> wasmtime::Result<Resource<DynPollable>> {
        self.enter()?;
        subscribe(&mut self.table, this)
    }

    fn drop(&mut self, this: Resource<RoomRep>) -> wasmtime::Result<()> {
        let rep = this.rep();
        self.delete(this)?;
        self.live.rooms.retain(|&r| r != rep);
        Ok(())
    }
}
