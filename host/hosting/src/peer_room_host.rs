//! [`PeerRoomHost`]: the runtime's [`RoomHost`] over real rooms — each join
//! is a [`MeteredPeer`] of its own in the channel (WebRTC mesh with every
//! peer, Opus in and out), so an agent is a peer like any SDK peer.

use std::sync::Arc;
use std::task::{Context, Poll};

use serde_json::Value;
use tokio::sync::{broadcast, mpsc};

use metered_media::{MediaStream, MediaStreamTrack, StreamMetadata};
use metered_peer::{MeteredPeer, PeerError, PeerEvent, PeerOptions};
use metered_runtime::{AgentInfo, BoxFuture, RoomError, RoomEvent, RoomHost, RoomSession};

/// Events queued for a guest that is not reading (beyond: oldest dropped,
/// counted in the log — a stalled guest must not grow host memory).
const EVENT_QUEUE: usize = 256;
/// Data sends queued per session before `send-data` answers `limit-exceeded`.
const SEND_QUEUE: usize = 64;

/// Joins channels as [`MeteredPeer`]s.
#[derive(Clone)]
pub struct PeerRoomHost {
    options: PeerOptions,
    allowed: Option<Arc<str>>,
}

impl PeerRoomHost {
    /// Every join connects with `options` (credential, URL, ICE policy).
    pub fn new(options: PeerOptions) -> Self {
        Self { options, allowed: None }
    }

    /// Refuses joins to any channel but `channel` (the one the operator
    /// started the agent for).
    pub fn only(mut self, channel: &str) -> Self {
        self.allowed = Some(channel.into());
        self
    }
}

fn room_error(e: PeerError) -> RoomError {
    match e {
        PeerError::ReservedChannel(c) => RoomError::Denied(format!("channel {c:?} uses a reserved prefix")),
        PeerError::Oversized { size, max } => RoomError::LimitExceeded(format!("{size} bytes over the {max}-byte cap")),
        PeerError::UnknownTrack(t) => RoomError::NotFound(format!("track {t:?}")),
        PeerError::Closed | PeerError::NotJoined => RoomError::Closed,
        PeerError::Signalling(e) => RoomError::Denied(e.to_string()),
        other => RoomError::Unsupported(other.to_string()),
    }
}

impl RoomHost for PeerRoomHost {
    fn join<'a>(
        &'a self,
        agent: &'a AgentInfo,
        channel: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn RoomSession>, RoomError>> {
        Box::pin(async move {
            if let Some(allowed) = &self.allowed
                && **allowed != *channel
            {
                return Err(RoomError::Denied(format!("this agent may only join {allowed:?}")));
            }
            let peer = MeteredPeer::with_options(self.options.clone()).map_err(room_error)?;
            let events = peer.events();
            peer.join(channel).await.map_err(room_error)?;
            let peer_id = peer.peer_id().unwrap_or_default();
            tracing::info!(target: "metered_realtime::hosting", agent = %agent.id, channel, peer = %peer_id, "agent joined");
            Ok(Box::new(PeerRoomSession::start(peer, peer_id, events, agent.id.clone())) as Box<dyn RoomSession>)
        })
    }
}

/// One agent's peer in one channel. Dropping it closes the peer.
struct PeerRoomSession {
    peer: MeteredPeer,
    peer_id: String,
    published: Vec<Arc<dyn MediaStreamTrack>>,
    events: mpsc::Receiver<RoomEvent>,
    sends: mpsc::Sender<(Option<String>, Value)>,
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl PeerRoomSession {
    fn start(peer: MeteredPeer, peer_id: String, mut rx: broadcast::Receiver<PeerEvent>, agent: Arc<str>) -> Self {
        let (tx, events) = mpsc::channel(EVENT_QUEUE);
        let forward = tokio::spawn(async move {
            let mut dropped = 0u64;
            loop {
                let ev = match rx.recv().await {
                    Ok(ev) => ev,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        dropped += n;
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                let ev = match guest_view(ev) {
                    GuestView::Event(ev) => ev,
                    GuestView::Skip => continue,
                    GuestView::RoomEnded => break, // the peer left for good
                };
                if tx.try_send(ev).is_err() {
                    dropped += 1;
                    if dropped.is_power_of_two() {
                        tracing::warn!(target: "metered_realtime::hosting", %agent, dropped, "agent is not reading room events; dropping");
                    }
                }
            }
        });
        let (sends, mut send_rx) = mpsc::channel::<(Option<String>, Value)>(SEND_QUEUE);
        let sender = peer.clone();
        let send_task = tokio::spawn(async move {
            while let Some((to, data)) = send_rx.recv().await {
                let res = match to {
                    Some(to) => sender.send_to(&to, data).await,
                    None => sender.send(data).await,
                };
                if let Err(e) = res {
                    tracing::debug!(target: "metered_realtime::hosting", "agent data not sent: {e}");
                }
            }
        });
        Self { peer, peer_id, published: Vec::new(), events, sends, tasks: [forward, send_task] }
    }
}

/// What a peer event means to the agent.
enum GuestView {
    /// An event the guest sees.
    Event(RoomEvent),
    /// Nothing the guest needs (connection states, data-channel openings).
    Skip,
    /// The agent's peer left the room for good.
    RoomEnded,
}

fn guest_view(ev: PeerEvent) -> GuestView {
    GuestView::Event(match ev {
        PeerEvent::PeerJoined { peer } => RoomEvent::PeerJoined { peer_id: peer.id().to_owned() },
        PeerEvent::PeerLeft { peer } => RoomEvent::PeerLeft { peer_id: peer.id().to_owned() },
        PeerEvent::Track { peer, track, streams, metadata } => RoomEvent::Track {
            peer_id: peer.id().to_owned(),
            stream_id: streams.first().map(|s| s.id().to_owned()).unwrap_or_default(),
            track,
            metadata: metadata.unwrap_or_default(),
        },
        PeerEvent::Data { sender_peer_id, data, .. } => {
            RoomEvent::Data { sender: sender_peer_id, payload: data.to_string() }
        }
        PeerEvent::Left { .. } | PeerEvent::FatalError { .. } => return GuestView::RoomEnded,
        _ => return GuestView::Skip,
    })
}

impl RoomSession for PeerRoomSession {
    fn peer_id(&self) -> &str {
        &self.peer_id
    }

    fn add_track(
        &mut self,
        track: Arc<dyn MediaStreamTrack>,
        stream_id: &str,
        metadata: StreamMetadata,
    ) -> Result<(), RoomError> {
        let stream = MediaStream::with_id(stream_id);
        let metadata = (!metadata.as_map().is_empty()).then_some(metadata);
        self.peer.add_track(track.clone(), Some(&stream), metadata).map_err(room_error)?;
        self.published.push(track);
        Ok(())
    }

    fn replace_track(&mut self, old_track_id: &str, new: Option<Arc<dyn MediaStreamTrack>>) -> Result<(), RoomError> {
        let i = self
            .published
            .iter()
            .position(|t| t.id() == old_track_id)
            .ok_or_else(|| RoomError::NotFound(format!("track {old_track_id:?} is not published")))?;
        self.peer.replace_track(&*self.published[i], new.clone()).map_err(room_error)?;
        if let Some(new) = new {
            self.published[i] = new;
        }
        Ok(())
    }

    fn send_data(&mut self, to: Option<&str>, payload: &str) -> Result<(), RoomError> {
        let data: Value =
            serde_json::from_str(payload).map_err(|e| RoomError::Unsupported(format!("payload is not JSON: {e}")))?;
        self.sends.try_send((to.map(str::to_owned), data)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => RoomError::LimitExceeded(format!("{SEND_QUEUE} sends pending")),
            mpsc::error::TrySendError::Closed(_) => RoomError::Closed,
        })
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<RoomEvent>> {
        self.events.poll_recv(cx)
    }
}

impl Drop for PeerRoomSession {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        let peer = self.peer.clone();
        // Leave in the background (bounded inside `close`).
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { peer.close().await });
        }
    }
}
