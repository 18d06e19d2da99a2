//! [`RemotePeer`]: one remote channel member, and [`RemoteAudioTrack`]: a received
//! Opus track decoded to [`AudioFrame`](metered_media::AudioFrame)s.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use parking_lot::Mutex;
use serde_json::{Map, Value};
use tokio::sync::{Notify, broadcast, mpsc, oneshot};

use super::codec::OpusDepacketizer;
use super::command::Command;
use super::data_channel::{DataChannel, DataChannelOptions};
use super::error::PeerError;
use super::events::PeerEvent;
use super::lifecycle::ConnectionState;
use super::rtc::RemoteRtp;
use super::send_gate::SendGate;
use super::track_meta::{InboundTrackMeta, TrackKeys};
use metered_media::{Frame, FrameQueue, MediaKind, MediaStream, MediaStreamTrack, StreamMetadata, TrackEnded};

/// Decoded frames buffered per received track: when the consumer falls
/// further behind, the oldest are dropped, so it resumes at most 200 ms
/// behind live (and memory never grows).
const RECEIVE_QUEUE_FRAMES: usize = 10;

/// A received audio track: Opus decoded to 20 ms, 48 kHz stereo s16 frames.
/// It ends when the sender removes it, its peer leaves, or the connection is
/// rebuilt (the replacement arrives as a fresh track on a new `Track` event).
pub struct RemoteAudioTrack {
    id: String,
    frames: FrameQueue,
    stop: Notify,
}

impl std::fmt::Debug for RemoteAudioTrack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteAudioTrack").field("id", &self.id).finish()
    }
}

impl RemoteAudioTrack {
    /// Frames dropped (the oldest first) because the consumer fell behind.
    pub fn dropped_frames(&self) -> u64 {
        self.frames.dropped()
    }
}

impl MediaStreamTrack for RemoteAudioTrack {
    fn kind(&self) -> MediaKind {
        MediaKind::Audio
    }

    fn id(&self) -> &str {
        &self.id
    }

    fn poll_recv_into(&self, cx: &mut Context<'_>, out: &mut Frame) -> Poll<Result<(), TrackEnded>> {
        self.frames.poll_pop_into(cx, out).map(|got| got.ok_or(TrackEnded))
    }

    fn stop(&self) {
        self.frames.close_now();
        self.stop.notify_one();
    }
}

/// Starts decoding `rtp`; `on_end` runs once when the track ends.
pub(crate) fn spawn_audio_track(
    id: String,
    rtp: RemoteRtp,
    on_end: impl FnOnce() + Send + 'static,
) -> Result<Arc<RemoteAudioTrack>, PeerError> {
    let mut decoder = OpusDepacketizer::new().map_err(|e| PeerError::Rtc(e.to_string()))?;
    let track = Arc::new(RemoteAudioTrack { id, frames: FrameQueue::new(RECEIVE_QUEUE_FRAMES), stop: Notify::new() });
    let t = track.clone();
    tokio::spawn(async move {
        loop {
            let (payload, seq) = tokio::select! {
                r = rtp.read() => match r { Ok(p) => p, Err(_) => break },
                _ = t.stop.notified() => break,
            };
            let mut closed = false;
            let res = decoder.push(&payload, seq, |frame| closed |= !t.frames.push(Frame::Audio(frame)));
            if let Err(e) = res {
                tracing::debug!(target: "metered_realtime::peer", track = %t.id, "dropping undecodable packet: {e}");
            }
            if closed {
                break;
            }
        }
        t.frames.close();
        on_end();
    });
    Ok(track)
}

/// Per-stream accounting for `StreamAdded` / `StreamRemoved`, keyed by stream id;
/// reset on every connection generation so a rebuild never fires `StreamRemoved`.
#[derive(Default)]
struct StreamBook {
    generation: u64,
    live: HashMap<String, (MediaStream, HashSet<String>)>,
}

pub(crate) struct RemoteInner {
    pub(crate) id: String,
    pub(crate) polite: bool,
    metadata: Mutex<Option<Map<String, Value>>>,
    state: Mutex<ConnectionState>,
    pub(crate) track_meta: Mutex<InboundTrackMeta>,
    streams: Mutex<StreamBook>,
    closed: AtomicBool,
    events: broadcast::Sender<PeerEvent>,
    /// The room's send gate (joined, not to self, size cap).
    gate: SendGate,
    /// The connection driver (set once it is spawned).
    commands: Mutex<Option<mpsc::UnboundedSender<Command>>>,
}

/// A remote channel member. Cheap to clone; stays the same object across our
/// reconnects (the connection underneath is rebuilt silently).
#[derive(Clone)]
pub struct RemotePeer {
    pub(crate) inner: Arc<RemoteInner>,
}

impl std::fmt::Debug for RemotePeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemotePeer").field("id", &self.inner.id).field("state", &self.state()).finish()
    }
}

impl RemotePeer {
    pub(crate) fn new(
        id: String,
        polite: bool,
        metadata: Option<Map<String, Value>>,
        events: broadcast::Sender<PeerEvent>,
        gate: SendGate,
    ) -> Self {
        Self {
            inner: Arc::new(RemoteInner {
                id,
                polite,
                metadata: Mutex::new(metadata),
                state: Mutex::new(ConnectionState::Idle),
                track_meta: Mutex::new(InboundTrackMeta::new()),
                streams: Mutex::new(StreamBook::default()),
                closed: AtomicBool::new(false),
                events,
                gate,
                commands: Mutex::new(None),
            }),
        }
    }

    /// The remote peer id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The metadata its token asserted (untrusted peer input; refreshed after a reconnect).
    pub fn metadata(&self) -> Option<Map<String, Value>> {
        self.inner.metadata.lock().clone()
    }

    /// The connection state.
    pub fn state(&self) -> ConnectionState {
        *self.inner.state.lock()
    }

    /// Whether we are the polite side of this connection.
    pub fn polite(&self) -> bool {
        self.inner.polite
    }

    /// Sends `data` to this peer as a direct message (server-routed).
    pub async fn send(&self, data: Value) -> Result<(), PeerError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(PeerError::Closed);
        }
        self.inner.gate.send_to(&self.inner.id, data).await
    }

    /// Opens a WebRTC data channel to this peer (negotiated automatically).
    ///
    /// The channel belongs to the current connection: it closes if the
    /// connection is rebuilt (ICE recovery, our reconnect) — open a new one
    /// when [`RemotePeer::state`] is `Connected` again. Wait for
    /// [`DataChannel::wait_open`] before sending.
    pub async fn create_data_channel(&self, label: &str, opts: DataChannelOptions) -> Result<DataChannel, PeerError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(PeerError::Closed);
        }
        if label.len() > 65_535 || opts.protocol.len() > 65_535 {
            return Err(PeerError::Oversized { size: label.len().max(opts.protocol.len()), max: 65_535 });
        }
        let commands = self.inner.commands.lock().clone().ok_or(PeerError::Closed)?;
        let (tx, rx) = oneshot::channel();
        commands.send(Command::DataChannel(label.to_owned(), opts, tx)).map_err(|_| PeerError::Closed)?;
        rx.await.map_err(|_| PeerError::Closed)?
    }

    pub(crate) fn set_commands(&self, tx: mpsc::UnboundedSender<Command>) {
        *self.inner.commands.lock() = Some(tx);
    }

    pub(crate) fn set_metadata(&self, m: Option<Map<String, Value>>) {
        *self.inner.metadata.lock() = m;
    }

    pub(crate) fn emit(&self, event: PeerEvent) {
        if !self.inner.closed.load(Ordering::Acquire) {
            let _ = self.inner.events.send(event);
        }
    }

    /// Moves to `to`, hiding a rebuilt connection's `connecting` hop while
    /// `reconnecting` (so observers see connected → reconnecting → connected).
    pub(crate) fn set_state(&self, to: ConnectionState) {
        let from = {
            let mut s = self.inner.state.lock();
            let from = *s;
            if from == to
                || from == ConnectionState::Closed
                || (from == ConnectionState::Reconnecting && to == ConnectionState::Connecting)
            {
                return;
            }
            *s = to;
            from
        };
        let _ = self.inner.events.send(PeerEvent::PeerStateChange { peer: self.clone(), from, to });
    }

    /// Marks the peer closed (sends fail, no more events).
    pub(crate) fn close(&self) {
        self.set_state(ConnectionState::Closed);
        self.inner.closed.store(true, Ordering::Release);
        self.inner.track_meta.lock().clear();
        self.inner.streams.lock().live.clear();
    }

    /// A track of connection `generation` arrived under `stream_id`: returns its
    /// stream and whether the stream is new (fires `StreamAdded`).
    pub(crate) fn track_arrived(
        &self,
        generation: u64,
        stream_id: Option<&str>,
        track: &Arc<dyn MediaStreamTrack>,
    ) -> Option<(MediaStream, bool)> {
        let stream_id = stream_id?;
        let mut book = self.inner.streams.lock();
        if book.generation != generation {
            book.generation = generation;
            book.live.clear();
        }
        let first = !book.live.contains_key(stream_id);
        let entry =
            book.live.entry(stream_id.to_owned()).or_insert_with(|| (MediaStream::with_id(stream_id), HashSet::new()));
        entry.0.add_track(track.clone());
        entry.1.insert(track.id().to_owned());
        Some((entry.0.clone(), first))
    }

    /// A track ended: the stream it completes, if this emptied it (same generation only).
    pub(crate) fn track_ended(&self, generation: u64, stream_id: &str, track_id: &str) -> Option<MediaStream> {
        let mut book = self.inner.streams.lock();
        if book.generation != generation {
            return None;
        }
        let (_, live) = book.live.get_mut(stream_id)?;
        live.remove(track_id);
        if live.is_empty() { book.live.remove(stream_id).map(|(s, _)| s) } else { None }
    }

    /// The metadata for a received track (see [`InboundTrackMeta::lookup`]).
    pub(crate) fn lookup_metadata(&self, keys: TrackKeys<'_>) -> Option<StreamMetadata> {
        self.inner.track_meta.lock().lookup(keys)
    }
}
