//! The driver of one remote peer's WebRTC connection: a task that owns the
//! [`Pc`] and the [`Negotiator`] and serializes everything that touches them —
//! inbound signals, local track changes, connection events, timers — so no lock
//! is needed around the connection. Signals go out, in order, through a
//! separate sender task (an ack round-trip never blocks inbound handling).
//! The room and [`RemotePeer`] reach it with [`Command`]s (`command.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::command::Command;
use super::data_channel::{DEFAULT_MAX_BUFFERED_AMOUNT, DEFAULT_MAX_QUEUED_SENDS, DataChannel};
use super::error::PeerError;
use super::events::PeerEvent;
use super::lifecycle::ConnectionState;
use super::negotiation::{
    ANSWER_TIMEOUT, Candidate, MAX_REBUILD_ATTEMPTS, Negotiator, OfferAction, Recovery, RemoteOffer, Unanswered,
};
use super::remote::{RemotePeer, spawn_audio_track};
use super::rtc::{LocalRtpTrack, Pc, PcEvent, PcState, RemoteRtp, RtcApi, RtpSender};
use super::track_meta::TrackKeys;
use metered_media::MediaStreamTrack;
use metered_protocol::{MsidEntry, RtcSignal, SdpKind, msids_by_mid};
use metered_signalling::{IceServer, SignallingClient};

/// How long a rebuilt connection may take to connect before the next rebuild.
/// The largest received picture decoded (4K UHD): a bitstream claiming more is refused.
#[cfg(feature = "video")]
const MAX_VIDEO_PIXELS: u64 = 3840 * 2160;
const CONNECT_PROBE: Duration = Duration::from_secs(15);

/// A handle on the connection task.
pub(crate) struct Connection {
    tx: mpsc::UnboundedSender<Command>,
}

impl Connection {
    /// Spawns the driver.
    pub(crate) fn spawn(
        api: Arc<RtcApi>,
        ice_servers: Vec<IceServer>,
        client: SignallingClient,
        remote: RemotePeer,
        meta: Vec<Value>,
        tracks: Vec<(String, LocalRtpTrack)>,
    ) -> Connection {
        let (tx, rx) = mpsc::unbounded_channel();
        remote.set_commands(tx.clone());
        tokio::spawn(async move {
            let (out_tx, out_rx) = mpsc::channel(64);
            tokio::spawn(send_signals(client, remote.id().to_owned(), out_rx));
            for m in meta {
                let _ = out_tx.send(m).await;
            }
            let (ev_tx, ev_rx) = mpsc::unbounded_channel();
            let pc = match Pc::new(&api, &ice_servers, 0, ev_tx.clone()).await {
                Ok(pc) => pc,
                Err(error) => {
                    remote.emit(PeerEvent::NegotiationError { peer: remote.clone(), error });
                    return;
                }
            };
            let mut driver = Driver {
                api,
                ice_servers,
                pc,
                generation: 0,
                neg: Negotiator::new(remote.polite()),
                remote,
                out: out_tx,
                ev_tx,
                tracks: tracks.into_iter().map(|(k, t)| (k, t, None)).collect(),
                msids: Vec::new(),
                inbound: Vec::new(),
                recovery_at: None,
                probe_at: None,
                pending_channel: false,
            };
            driver.run(rx, ev_rx).await;
        });
        Connection { tx }
    }

    /// Queues a command (ignored once the driver has ended).
    pub(crate) fn send(&self, cmd: Command) {
        let _ = self.tx.send(cmd);
    }

    /// Closes the connection and waits (bounded) until it is torn down.
    pub(crate) async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Close(tx)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(3), rx).await;
        }
    }
}

async fn send_signals(client: SignallingClient, to: String, mut rx: mpsc::Receiver<Value>) {
    while let Some(payload) = rx.recv().await {
        if let Err(e) = client.send(&to, payload).await {
            tracing::debug!(target: "metered_realtime::peer", peer = %to, "signal not delivered: {e}");
        }
    }
}

struct Driver {
    api: Arc<RtcApi>,
    ice_servers: Vec<IceServer>,
    pc: Pc,
    generation: u64,
    neg: Negotiator,
    remote: RemotePeer,
    out: mpsc::Sender<Value>,
    ev_tx: mpsc::UnboundedSender<(u64, PcEvent)>,
    tracks: Vec<(String, LocalRtpTrack, Option<RtpSender>)>,
    msids: Vec<MsidEntry>,
    inbound: Vec<Arc<dyn MediaStreamTrack>>,
    recovery_at: Option<Instant>,
    probe_at: Option<Instant>,
    /// A data channel was created and no negotiated session carries SCTP yet.
    pending_channel: bool,
}

impl Driver {
    async fn run(
        &mut self,
        mut cmds: mpsc::UnboundedReceiver<Command>,
        mut events: mpsc::UnboundedReceiver<(u64, PcEvent)>,
    ) {
        for i in 0..self.tracks.len() {
            self.attach(i).await;
        }
        let mut offer_wait = self.drive().await;
        let closer = loop {
            let wake = [offer_wait, self.recovery_at, self.probe_at].into_iter().flatten().min();
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    None => break None,
                    Some(Command::Close(done)) => break Some(done),
                    Some(cmd) => self.command(cmd).await,
                },
                Some((generation, ev)) = events.recv() => {
                    if generation == self.generation {
                        self.pc_event(ev).await;
                    }
                }
                _ = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now).into()), if wake.is_some() => {}
            }
            offer_wait = self.drive().await;
        };
        self.stop_inbound();
        self.pc.close().await;
        if let Some(done) = closer {
            let _ = done.send(());
        }
    }

    /// Timers and pending offers; returns when to look again for a deferred offer.
    async fn drive(&mut self) -> Option<Instant> {
        let now = Instant::now();
        if self.recovery_at.is_some_and(|t| t <= now) {
            self.recovery_at = None;
            self.rebuild("ice-failure").await;
            self.probe_at = Some(now + CONNECT_PROBE);
        }
        if self.probe_at.is_some_and(|t| t <= now) {
            self.probe_at = None;
            if self.remote.state() != ConnectionState::Connected {
                self.on_failed(now);
            }
        }
        if !self.pc.stable() {
            if !self.pc.have_local_offer() {
                return None;
            }
            // An offer is out; its answer comes first — unless it never does.
            return match self.neg.unanswered(now) {
                Unanswered::WaitUntil(t) => Some(t),
                Unanswered::Resend => {
                    tracing::debug!(target: "metered_realtime::peer", peer = %self.remote.id(), "offer unanswered; sending it again");
                    if let Some(sdp) = self.pc.local_sdp().await {
                        self.signal(RtcSignal::Description { kind: SdpKind::Offer, sdp }).await;
                        self.signal(RtcSignal::Ice(None)).await;
                    }
                    Some(now + ANSWER_TIMEOUT)
                }
                Unanswered::Rebuild => {
                    tracing::debug!(target: "metered_realtime::peer", peer = %self.remote.id(), "offer never answered; rebuilding");
                    self.rebuild("offer-unanswered").await;
                    Some(now)
                }
            };
        }
        match self.neg.poll_offer(now) {
            OfferAction::Idle => None,
            OfferAction::WaitUntil(t) => Some(t),
            OfferAction::Offer => {
                self.make_offer().await;
                None
            }
        }
    }

    async fn make_offer(&mut self) {
        match self.pc.offer().await {
            Ok(sdp) => {
                tracing::debug!(target: "metered_realtime::peer", peer = %self.remote.id(), generation = self.generation, "sending offer");
                self.signal(RtcSignal::Description { kind: SdpKind::Offer, sdp }).await;
                self.signal(RtcSignal::Ice(None)).await;
                self.neg.offer_sent(Instant::now());
            }
            Err(error) => {
                tracing::debug!(target: "metered_realtime::peer", peer = %self.remote.id(), "offer failed: {error}");
                self.neg.offer_failed();
                self.remote.emit(PeerEvent::NegotiationError { peer: self.remote.clone(), error });
            }
        }
    }

    async fn signal(&self, s: RtcSignal) {
        let _ = self.out.send(s.to_value()).await;
    }

    async fn command(&mut self, cmd: Command) {
        let now = Instant::now();
        match cmd {
            Command::Signal(RtcSignal::Description { kind: SdpKind::Offer, sdp }) => {
                let decision = self.neg.remote_offer(&sdp, self.pc.stable(), self.pc.has_remote().await, now);
                tracing::debug!(target: "metered_realtime::peer", peer = %self.remote.id(), ?decision, "remote offer");
                match decision {
                    RemoteOffer::Ignore | RemoteOffer::DropCooldown => return,
                    RemoteOffer::RebuildThenApply => self.rebuild("remote-restart-or-glare").await,
                    RemoteOffer::Apply => {}
                }
                if let Err(error) = self.answer(sdp).await {
                    self.remote.emit(PeerEvent::NegotiationError { peer: self.remote.clone(), error });
                }
            }
            Command::Signal(RtcSignal::Description { kind: SdpKind::Answer, sdp }) => {
                if !self.neg.remote_answer(self.pc.have_local_offer()) {
                    return; // stale answer
                }
                self.msids = msids_by_mid(&sdp);
                let res = self.pc.set_remote(SdpKind::Answer, sdp.clone()).await;
                match res {
                    Ok(()) => {
                        self.neg.remote_applied(&sdp);
                        let unsatisfied = self.unsatisfied().await;
                        self.neg.round_complete(unsatisfied, now);
                    }
                    Err(error) => self.remote.emit(PeerEvent::NegotiationError { peer: self.remote.clone(), error }),
                }
            }
            Command::Signal(RtcSignal::Ice(c)) => {
                let has_remote = self.pc.has_remote().await;
                match (self.neg.remote_candidate(c.as_ref().map(|c| c.candidate.as_str()), has_remote), c) {
                    (Candidate::Add, Some(c)) => {
                        if let Err(error) = self.pc.add_candidate(&c).await
                            && !self.neg.ignoring_offer()
                        {
                            self.remote.emit(PeerEvent::IceCandidateError { peer: self.remote.clone(), error });
                        }
                    }
                    (Candidate::Drop(why), _) => {
                        tracing::debug!(target: "metered_realtime::peer", peer = %self.remote.id(), "dropping candidate: {why}");
                    }
                    _ => {}
                }
            }
            Command::Attach(key, rtp) => {
                if self.tracks.iter().any(|(k, _, _)| *k == key) {
                    return;
                }
                tracing::debug!(target: "metered_realtime::peer", peer = %self.remote.id(), track = %key, "attach");
                self.tracks.push((key, rtp, None));
                self.attach(self.tracks.len() - 1).await;
            }
            Command::Detach(key) => {
                if let Some(i) = self.tracks.iter().position(|(k, _, _)| *k == key) {
                    let (_, _, sender) = self.tracks.remove(i);
                    if let Some(sender) = sender
                        && let Err(e) = self.pc.remove_track(&sender).await
                    {
                        tracing::debug!(target: "metered_realtime::peer", "remove_track: {e}");
                    }
                    self.neg.mark_dirty(now);
                }
            }
            Command::DataChannel(label, opts, reply) => {
                let res = self.pc.create_data_channel(&label, opts.init()).await;
                let res = res.map(|bound| DataChannel::new(bound, opts.max_buffered_amount, opts.max_queued_sends));
                if res.is_ok() && opts.negotiated_id.is_none() && !self.pc.sctp_negotiated().await {
                    self.pending_channel = true;
                    self.neg.mark_dirty(now);
                }
                let _ = reply.send(res);
            }
            Command::Meta(m) => {
                let _ = self.out.send(m).await;
            }
            Command::Rebuild => {
                if self.remote.state() == ConnectionState::Connected {
                    self.remote.set_state(ConnectionState::Reconnecting);
                }
                self.rebuild("signalling-reconnect").await;
            }
            Command::Close(_) => {}
        }
    }

    async fn answer(&mut self, sdp: String) -> Result<(), PeerError> {
        self.msids = msids_by_mid(&sdp);
        self.pc.set_remote(SdpKind::Offer, sdp.clone()).await?;
        self.neg.remote_applied(&sdp);
        let answer = self.pc.answer().await?;
        self.signal(RtcSignal::Description { kind: SdpKind::Answer, sdp: answer }).await;
        self.signal(RtcSignal::Ice(None)).await;
        let unsatisfied = self.unsatisfied().await;
        tracing::debug!(target: "metered_realtime::peer", peer = %self.remote.id(), unsatisfied, tracks = self.tracks.len(), "answer sent");
        self.neg.round_complete(unsatisfied, Instant::now());
        Ok(())
    }

    /// Whether something local (a sender, a new data channel) missed the
    /// negotiation that just completed: a follow-up offer is due.
    async fn unsatisfied(&mut self) -> bool {
        if self.pending_channel && self.pc.sctp_negotiated().await {
            self.pending_channel = false;
        }
        self.pending_channel || self.pc.local_media_unsatisfied().await
    }

    async fn attach(&mut self, i: usize) {
        let (key, rtp, sender) = &mut self.tracks[i];
        match self.pc.add_track(rtp).await {
            Ok(s) => *sender = Some(s),
            Err(e) => tracing::warn!(target: "metered_realtime::peer", track = %key, "add_track failed: {e}"),
        }
        self.neg.mark_dirty(Instant::now());
    }

    async fn rebuild(&mut self, reason: &str) {
        tracing::debug!(target: "metered_realtime::peer", peer = %self.remote.id(), reason, "rebuilding connection");
        if self.remote.state() == ConnectionState::Connected {
            self.remote.set_state(ConnectionState::Reconnecting);
        }
        self.generation += 1;
        let pc = match Pc::new(&self.api, &self.ice_servers, self.generation, self.ev_tx.clone()).await {
            Ok(pc) => pc,
            Err(error) => {
                self.remote.emit(PeerEvent::NegotiationError { peer: self.remote.clone(), error });
                return;
            }
        };
        let old = std::mem::replace(&mut self.pc, pc);
        tokio::spawn(async move { old.close().await });
        // The old generation's tracks end with it; a fresh Track per stream follows.
        self.stop_inbound();
        self.msids.clear();
        // Data channels die with the old generation (the SDKs' contract).
        self.pending_channel = false;
        for i in 0..self.tracks.len() {
            self.tracks[i].2 = None;
            self.attach(i).await;
        }
        self.neg.rebuilt(Instant::now(), !self.tracks.is_empty());
    }

    fn stop_inbound(&mut self) {
        for t in self.inbound.drain(..) {
            t.stop();
        }
    }

    fn on_failed(&mut self, now: Instant) {
        match self.neg.failed(now) {
            Recovery::RebuildAt(t) => self.recovery_at = Some(t),
            Recovery::GiveUp => self.remote.emit(PeerEvent::NegotiationError {
                peer: self.remote.clone(),
                error: PeerError::Rtc(format!("ICE recovery gave up after {MAX_REBUILD_ATTEMPTS} attempts")),
            }),
            Recovery::Done => {}
        }
    }

    async fn pc_event(&mut self, ev: PcEvent) {
        match ev {
            PcEvent::State(s) => {
                let to = match s {
                    PcState::Connecting => ConnectionState::Connecting,
                    PcState::Connected => {
                        self.neg.connected();
                        self.recovery_at = None;
                        self.probe_at = None;
                        ConnectionState::Connected
                    }
                    PcState::Disconnected => ConnectionState::Reconnecting,
                    PcState::Failed => {
                        self.on_failed(Instant::now());
                        ConnectionState::Reconnecting
                    }
                    PcState::Closed => return,
                };
                self.remote.set_state(to);
            }
            PcEvent::Track { track, mid } => self.track(track, mid),
            PcEvent::DataChannel(bound) => {
                let channel = DataChannel::new(bound, DEFAULT_MAX_BUFFERED_AMOUNT, DEFAULT_MAX_QUEUED_SENDS);
                self.remote.emit(PeerEvent::DataChannelOpened { peer: self.remote.clone(), channel });
            }
        }
    }

    fn track(&mut self, rtp: RemoteRtp, mid: Option<String>) {
        let kind = if rtp.is_audio() { "audio" } else { "video" };
        if rtp.is_audio() && !rtp.is_opus() {
            tracing::debug!(target: "metered_realtime::peer", mime = %rtp.mime_type(), "ignoring a non-Opus audio track");
            return;
        }
        #[cfg(not(feature = "video"))]
        if !rtp.is_audio() {
            tracing::debug!(target: "metered_realtime::peer", "ignoring a video track (feature `video` is off)");
            return;
        }
        let by_mid: Option<MsidEntry> = mid.as_deref().and_then(|m| self.msids.iter().find(|e| e.mid == m).cloned());
        let (stream_id, msid_track) = match by_mid {
            Some(e) => (e.stream_id, Some(e.track_id)),
            None => {
                let s = rtp.stream_id();
                (Some(s).filter(|s| !s.is_empty() && s != "-" && s.len() <= 256), None)
            }
        };
        let track_id = msid_track.clone().unwrap_or_else(|| rtp.id());
        let signalled: Vec<String> = self.msids.iter().map(|e| e.track_id.clone()).collect();
        let metadata = self.remote.lookup_metadata(TrackKeys {
            msid_track_id: Some(&track_id),
            stream_id: stream_id.as_deref(),
            kind,
            signalled_track_ids: &signalled,
        });
        let (remote, generation) = (self.remote.clone(), self.generation);
        let (sid, tid): (Option<String>, String) = (stream_id.clone(), track_id.clone());
        let on_end = move || {
            if let Some(sid) = sid
                && let Some(stream) = remote.track_ended(generation, &sid, &tid)
            {
                remote.emit(PeerEvent::StreamRemoved { peer: remote.clone(), stream });
            }
        };
        let spawned: Result<Arc<dyn MediaStreamTrack>, PeerError> = if rtp.is_audio() {
            spawn_audio_track(track_id, rtp, on_end).map(|t| t as Arc<dyn MediaStreamTrack>)
        } else {
            #[cfg(feature = "video")]
            {
                crate::video_recv::spawn_video_track(track_id, rtp, MAX_VIDEO_PIXELS, on_end)
                    .map(|t| t as Arc<dyn MediaStreamTrack>)
            }
            #[cfg(not(feature = "video"))]
            {
                drop(on_end);
                Err(PeerError::Rtc("video needs the `video` feature".into()))
            }
        };
        let track: Arc<dyn MediaStreamTrack> = match spawned {
            Ok(t) => t,
            Err(error) => {
                self.remote.emit(PeerEvent::NegotiationError { peer: self.remote.clone(), error });
                return;
            }
        };
        self.inbound.push(track.clone());
        let stream = self.remote.track_arrived(generation, stream_id.as_deref(), &track);
        let streams = stream.iter().map(|(s, _)| s.clone()).collect();
        self.remote.emit(PeerEvent::Track { peer: self.remote.clone(), track, streams, metadata: metadata.clone() });
        if let Some((stream, true)) = stream {
            self.remote.emit(PeerEvent::StreamAdded { peer: self.remote.clone(), stream, metadata });
        }
    }
}
