//! [`MeteredPeer`], the crate's public face, and the [`PeerOptions`] it is
//! built from: join / leave / close, broadcast and direct sends, and the local
//! tracks and streams sent to every peer. Each call works on the shared
//! [`Inner`] (`state.rs`); signalling events are handled by the room driver
//! (`room_driver.rs`), started with the peer.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::broadcast;

use super::command::Command;
use super::error::PeerError;
use super::events::PeerEvent;
use super::lifecycle::PeerState;
use super::local::LocalTrack;
use super::remote::RemotePeer;
use super::room_driver;
use super::rtc::{IcePolicy, RtcApi};
use super::state::{Inner, Tracked};
use metered_media::{Frame, MediaKind, MediaStream, MediaStreamTrack, StreamMetadata, TrackEnded};
use metered_signalling::{ClientOptions, ClientState, SignallingClient, SubscribeOptions};

/// What a [`MeteredPeer`] is built from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PeerOptions {
    /// The signalling client's options (credential, URL, reconnect).
    pub client: ClientOptions,
    /// Which local addresses ICE gathers.
    pub ice: IcePolicy,
    /// Event buffer per subscriber; a subscriber that lags further loses events.
    pub event_capacity: usize,
    /// How long to wait for the channel's roster after a reconnect before
    /// re-issuing the subscribe (twice), then giving up with
    /// [`PeerError::ReconcileTimeout`] on [`PeerEvent::FatalError`] (default
    /// 10 s, as the SDKs).
    pub reconcile_deadline: Duration,
    /// Video codecs offered and accepted, by MIME type (`video/VP8`,
    /// `video/H264`), in preference order; empty (the default): VP8 then
    /// H.264. One entry forces that codec.
    pub video_codecs: Vec<String>,
}

impl PeerOptions {
    /// Options with defaults around a client's options.
    pub fn new(client: ClientOptions) -> Self {
        Self {
            client,
            ice: IcePolicy::Default,
            event_capacity: 1024,
            reconcile_deadline: Duration::from_secs(10),
            video_codecs: Vec::new(),
        }
    }

    /// Offers and accepts only these video codecs (MIME types), in this order.
    pub fn video_codecs<S: Into<String>>(mut self, codecs: impl IntoIterator<Item = S>) -> Self {
        self.video_codecs = codecs.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the ICE policy ([`IcePolicy::LoopbackOnly`] for same-host tests).
    pub fn ice(mut self, ice: IcePolicy) -> Self {
        self.ice = ice;
        self
    }
}

/// A room member: joins one channel and connects to every peer in it.
/// Cheap to clone; all clones are the same peer.
#[derive(Clone)]
pub struct MeteredPeer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MeteredPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.inner.st.lock();
        f.debug_struct("MeteredPeer").field("state", &st.state).field("peer_id", &st.peer_id).finish()
    }
}

/// A track that has already ended: what `replace_track(old, None)` sends
/// in `old`'s place (the RTP track stays, nothing is sent on it).
struct EndedTrack(String);

impl MediaStreamTrack for EndedTrack {
    fn kind(&self) -> MediaKind {
        MediaKind::Audio
    }
    fn id(&self) -> &str {
        &self.0
    }
    fn poll_recv_into(&self, _: &mut std::task::Context<'_>, _: &mut Frame) -> std::task::Poll<Result<(), TrackEnded>> {
        std::task::Poll::Ready(Err(TrackEnded))
    }
    fn stop(&self) {}
}

impl MeteredPeer {
    /// A peer over a new signalling client (not connected until [`MeteredPeer::join`]).
    pub fn new(client: ClientOptions) -> Result<Self, PeerError> {
        Self::with_options(PeerOptions::new(client))
    }

    /// A peer with explicit options.
    pub fn with_options(opts: PeerOptions) -> Result<Self, PeerError> {
        let client = SignallingClient::new(opts.client).map_err(|e| PeerError::Setup(e.to_string()))?;
        let api = Arc::new(RtcApi::new(&opts.ice, &opts.video_codecs)?);
        let inner = Arc::new(Inner::new(client, api, opts.event_capacity, opts.reconcile_deadline));
        room_driver::spawn(&inner);
        Ok(Self { inner })
    }

    /// A new receiver of the room's events (subscribe before `join` to see them all).
    pub fn events(&self) -> broadcast::Receiver<PeerEvent> {
        self.inner.events.subscribe()
    }

    /// The peer's state.
    pub fn state(&self) -> PeerState {
        self.inner.st.lock().state
    }

    /// Our peer id (after connecting).
    pub fn peer_id(&self) -> Option<String> {
        self.inner.st.lock().peer_id.clone()
    }

    /// The channel joined.
    pub fn channel(&self) -> Option<String> {
        self.inner.st.lock().channel.clone()
    }

    /// The remote peers now known.
    pub fn remote_peers(&self) -> Vec<RemotePeer> {
        self.inner.st.lock().peers.values().map(|(r, _)| r.clone()).collect()
    }

    /// Connects (if needed) and joins `channel`; resolves when the subscription
    /// is confirmed — peers arrive as [`PeerEvent::PeerJoined`]. One channel per
    /// peer; `close` is terminal.
    pub async fn join(&self, channel: &str) -> Result<(), PeerError> {
        self.join_with(channel, SubscribeOptions::default()).await
    }

    /// [`MeteredPeer::join`] with subscribe options (e.g. sender metadata on `Data`).
    pub async fn join_with(&self, channel: &str, opts: SubscribeOptions) -> Result<(), PeerError> {
        let state = self.state();
        if state != PeerState::Idle {
            return Err(PeerError::InvalidState { op: "join", state });
        }
        let lower = channel.to_ascii_lowercase();
        if ["_metered/", "_internal/", "_system/"].iter().any(|p| lower.starts_with(p)) {
            return Err(PeerError::ReservedChannel(channel.to_owned()));
        }
        self.inner.set_state(PeerState::Joining);
        let result = async {
            if self.inner.client.state() == ClientState::Idle {
                self.inner.client.connect().await?;
            }
            // Set before the ack: the roster snapshot can arrive right behind it.
            {
                let mut st = self.inner.st.lock();
                st.channel = Some(channel.to_owned());
                st.join_opts = opts;
            }
            self.inner.client.subscribe_with(channel, opts).await?;
            Ok::<_, PeerError>(())
        }
        .await;
        if let Err(e) = result {
            if self.state() == PeerState::Joining {
                self.inner.st.lock().channel = None;
                self.inner.set_state(PeerState::Idle);
            }
            return Err(e);
        }
        if self.state() != PeerState::Joining {
            return Ok(()); // closed meanwhile
        }
        self.inner.set_state(PeerState::Joined);
        // Peers that arrived before we were Joined get the tracks added meanwhile.
        if let Some(peer_id) = self.peer_id() {
            self.inner.emit(PeerEvent::Joined { peer_id, channel: channel.to_owned() });
        }
        Ok(())
    }

    /// Leaves the channel: the same as [`MeteredPeer::close`] (terminal).
    pub async fn leave(&self) {
        self.close().await;
    }

    /// Closes every connection and the signalling socket. Idempotent and terminal;
    /// remote tracks end (their `iter_frames` streams finish).
    pub async fn close(&self) {
        let state = self.state();
        if matches!(state, PeerState::Closed | PeerState::Leaving) {
            return;
        }
        if state == PeerState::Idle {
            self.inner.set_state(PeerState::Closed);
            self.inner.client.close().await;
            return;
        }
        self.inner.set_state(PeerState::Leaving);
        let ids: Vec<String> = self.inner.st.lock().peers.keys().cloned().collect();
        for id in ids {
            self.inner.remove_peer(&id).await;
        }
        self.inner.client.close().await;
        self.inner.teardown(None).await;
    }

    /// Broadcasts `data` to the channel (not echoed to us).
    pub async fn send(&self, data: Value) -> Result<(), PeerError> {
        let channel = {
            let st = self.inner.st.lock();
            match (&st.channel, st.state) {
                (Some(c), PeerState::Joined) => c.clone(),
                _ => return Err(PeerError::NotJoined),
            }
        };
        self.inner.gate.check_size(&data)?;
        Ok(self.inner.client.publish(&channel, data).await?)
    }

    /// Sends `data` to one peer (server-routed direct message).
    pub async fn send_to(&self, peer_id: &str, data: Value) -> Result<(), PeerError> {
        self.inner.gate.send_to(peer_id, data).await
    }

    /// Sends every track of `stream` to every current and future peer, with
    /// `metadata` delivered ahead of the media.
    pub fn add_stream(&self, stream: &MediaStream, metadata: Option<StreamMetadata>) -> Result<(), PeerError> {
        self.inner.require_media_state("add_stream")?;
        for track in stream.get_tracks() {
            self.add_track(track, Some(stream), metadata.clone())?;
        }
        Ok(())
    }

    /// Stops sending every track of `stream`.
    pub fn remove_stream(&self, stream: &MediaStream) -> Result<(), PeerError> {
        for track in stream.get_tracks() {
            self.remove_track(&*track)?;
        }
        Ok(())
    }

    /// Sends one track to every current and future peer. Idempotent for the same
    /// track and stream; the same track under another stream is refused.
    pub fn add_track(
        &self,
        track: Arc<dyn MediaStreamTrack>,
        stream: Option<&MediaStream>,
        metadata: Option<StreamMetadata>,
    ) -> Result<(), PeerError> {
        self.inner.require_media_state("add_track")?;
        let mut st = self.inner.st.lock();
        if let Some(t) = st.tracked.iter().find(|t| t.source.id() == track.id()) {
            if t.stream.as_ref().map(MediaStream::id) == stream.map(MediaStream::id) {
                return Ok(());
            }
            return Err(PeerError::TrackAlreadyAttached(track.id().to_owned()));
        }
        if metadata.is_some() {
            let msg = Tracked::meta_for(track.id(), track.kind(), stream, metadata.as_ref());
            let size = serde_json::to_string(&msg).map(|s| s.len()).unwrap_or(0);
            if size > st.max_message_size {
                return Err(PeerError::Oversized { size, max: st.max_message_size });
            }
        }
        let stream_id = stream.map_or_else(|| MediaStream::new().id().to_owned(), |s| s.id().to_owned());
        let local = Arc::new(LocalTrack::start(track.clone(), &stream_id)?);
        let tracked =
            Tracked { wire_id: track.id().to_owned(), source: track, stream: stream.cloned(), metadata, local };
        let meta = tracked.meta_message();
        let (key, rtp) = (tracked.wire_id.clone(), tracked.local.rtp.clone());
        st.tracked.push(tracked);
        drop(st);
        self.inner.to_all(|_| {
            let mut cmds: Vec<Command> = meta.iter().map(|m| Command::Meta(m.clone())).collect();
            cmds.push(Command::Attach(key.clone(), rtp.clone()));
            cmds
        });
        Ok(())
    }

    /// Stops sending `track` everywhere (no-op if it was never added).
    pub fn remove_track(&self, track: &dyn MediaStreamTrack) -> Result<(), PeerError> {
        self.inner.require_media_state("remove_track")?;
        let removed = {
            let mut st = self.inner.st.lock();
            let Some(i) = st.tracked.iter().position(|t| t.source.id() == track.id()) else { return Ok(()) };
            st.tracked.remove(i)
        };
        let clear = removed.metadata.is_some().then(|| Tracked::meta_for(track.id(), track.kind(), None, None));
        self.inner.to_all(|_| {
            let mut cmds: Vec<Command> = clear.iter().map(|m| Command::Meta(m.clone())).collect();
            cmds.push(Command::Detach(removed.wire_id.clone()));
            cmds
        });
        Ok(())
    }

    /// Swaps `old` for `new` (or silence, with `None`) on every connection without
    /// renegotiation; the metadata follows the new track id.
    pub fn replace_track(
        &self,
        old: &dyn MediaStreamTrack,
        new: Option<Arc<dyn MediaStreamTrack>>,
    ) -> Result<(), PeerError> {
        let state = self.state();
        if matches!(state, PeerState::Reconnecting | PeerState::Leaving | PeerState::Closed) {
            return Err(PeerError::InvalidState { op: "replace_track", state });
        }
        if new.as_ref().is_some_and(|n| n.kind() != old.kind()) {
            return Err(PeerError::KindMismatch);
        }
        let (clear, set) = {
            let mut st = self.inner.st.lock();
            let Some(t) = st.tracked.iter_mut().find(|t| t.source.id() == old.id()) else {
                return Err(PeerError::UnknownTrack(old.id().to_owned()));
            };
            let new = new.unwrap_or_else(|| Arc::new(EndedTrack(old.id().to_owned())));
            t.local.replace(new.clone());
            t.source = new;
            let had = t.metadata.is_some();
            let clear = (had && old.id() != t.source.id()).then(|| Tracked::meta_for(old.id(), old.kind(), None, None));
            (clear, t.meta_message().filter(|_| had))
        };
        self.inner.to_all(|_| clear.iter().chain(set.iter()).map(|m| Command::Meta(m.clone())).collect());
        Ok(())
    }

    /// The metadata being sent for a local track.
    pub fn get_track_metadata(&self, track: &dyn MediaStreamTrack) -> Option<StreamMetadata> {
        self.inner.st.lock().tracked.iter().find(|t| t.source.id() == track.id()).and_then(|t| t.metadata.clone())
    }

    /// The metadata of the first sent track of `stream`.
    pub fn get_stream_metadata(&self, stream: &MediaStream) -> Option<StreamMetadata> {
        let st = self.inner.st.lock();
        stream
            .get_tracks()
            .iter()
            .find_map(|track| st.tracked.iter().find(|t| t.source.id() == track.id()))
            .and_then(|t| t.metadata.clone())
    }
}
