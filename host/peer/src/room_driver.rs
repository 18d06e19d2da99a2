//! The room driver: one task per [`MeteredPeer`](super::MeteredPeer) that
//! turns the signalling client's [`ClientEvent`]s into peer-set changes
//! (presence, the roster reconcile after a reconnect and its deadline), routes
//! `rtc-*` signals and `__meteredTrackMeta` to the right connection, and
//! surfaces everything else as [`PeerEvent::Data`]. It works on the shared
//! [`Inner`] of `state.rs`.

use std::sync::{Arc, Weak};

use serde_json::{Map, Value};
use tokio::sync::broadcast;

use super::command::Command;
use super::connection::Connection;
use super::error::PeerError;
use super::events::{DataKind, PeerEvent};
use super::lifecycle::{ConnectionState, PeerState};
use super::remote::RemotePeer;
use super::state::{Inner, MAX_RECONCILE_RESUBSCRIBES, Reconcile};
use super::track_meta::Rejected;
use metered_protocol::PresencePeer;
use metered_protocol::{RtcSignal, TrackMeta, is_polite};
use metered_signalling::{ClientEvent, ClientState};

/// Most remote peers tracked per channel (each costs a connection).
pub const MAX_PEERS_PER_CHANNEL: usize = 256;

const FATAL_SERVER_ERRORS: [&str; 5] =
    ["account_suspended", "channel_not_authorized", "action_not_permitted", "invalid_token", "token_expired"];
const FATAL_CLOSE_CODES: [u16; 5] = [4001, 4002, 4003, 4012, 4020];

/// Whether a payload has the SDKs' rtc-signal shape (`is_rtc_signal` in the
/// Python SDK): such payloads are routed to the connection, never surfaced.
fn signal_shaped(data: &Value) -> bool {
    let Some(obj) = data.as_object() else { return false };
    match obj.get("type").and_then(Value::as_str) {
        Some("rtc-ice") => matches!(obj.get("candidate"), Some(Value::Null | Value::Object(_))),
        Some("rtc-description") => obj.get("description").and_then(Value::as_object).is_some_and(|d| {
            matches!(d.get("type").and_then(Value::as_str), Some("offer" | "answer"))
                && d.get("sdp").is_some_and(Value::is_string)
        }),
        _ => false,
    }
}

/// Starts the room's driver task. Events (and the reconcile deadline) are
/// handled in order by that one task; it holds the room weakly and ends with
/// it (or with the client's event stream).
pub(crate) fn spawn(inner: &Arc<Inner>) {
    let rx = inner.client.events();
    tokio::spawn(run(Arc::downgrade(inner), rx));
}

async fn run(weak: Weak<Inner>, mut rx: broadcast::Receiver<ClientEvent>) {
    while let Some(deadline) = weak.upgrade().map(|i| i.st.lock().reconcile.deadline) {
        let ev = tokio::select! {
            ev = rx.recv() => ev,
            () = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                let Some(inner) = weak.upgrade() else { break };
                inner.on_reconcile_deadline();
                continue;
            }
        };
        let ev = match ev {
            Ok(ev) => ev,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(target: "metered_realtime::peer", "missed {n} signalling events");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => break,
        };
        let Some(inner) = weak.upgrade() else { break };
        inner.on_client_event(ev).await;
    }
}

impl Inner {
    async fn on_client_event(&self, ev: ClientEvent) {
        match ev {
            ClientEvent::Connected { peer_id, is_reconnect, max_message_size, ice_servers, .. } => {
                let mut st = self.st.lock();
                st.peer_id = Some(peer_id.clone());
                self.gate.set_self_id(&peer_id);
                if let Some(ice) = ice_servers {
                    st.ice_servers = ice;
                }
                let max = usize::try_from(max_message_size).unwrap_or(usize::MAX);
                st.max_message_size = max;
                self.gate.set_max(max);
                if is_reconnect && st.state == PeerState::Reconnecting {
                    if st.peers.is_empty() {
                        // Nobody to reconcile: peers who joined meanwhile
                        // arrive as deltas, which an empty map takes as is.
                        st.reconcile = Reconcile::default();
                        drop(st);
                        self.set_state(PeerState::Joined);
                    } else {
                        // The deadline runs from this welcome, with a fresh
                        // budget of forced resubscribes.
                        st.reconcile = Reconcile {
                            pending: true,
                            deadline: Some(tokio::time::Instant::now() + self.reconcile_deadline),
                            resubscribes: 0,
                        };
                    }
                }
            }
            ClientEvent::Disconnected { code, reason, will_reconnect } => {
                self.on_disconnected(code, reason, will_reconnect).await;
            }
            ClientEvent::Presence { channel, joined, left } => {
                let (ours, reconcile) = {
                    let mut st = self.st.lock();
                    let ours = st.channel.as_deref() == Some(channel.as_str());
                    let reconcile = ours && std::mem::take(&mut st.reconcile).pending;
                    (ours, reconcile)
                };
                if !ours {
                    return;
                }
                if reconcile {
                    self.reconcile(joined).await;
                    return;
                }
                for p in joined {
                    self.add_peer(p.peer_id, p.metadata);
                }
                for p in left {
                    self.remove_peer(&p.peer_id).await;
                }
            }
            ClientEvent::Direct { sender_peer_id, data, sender_metadata } => {
                self.on_direct(sender_peer_id, data, sender_metadata);
            }
            ClientEvent::Message { channel, sender_peer_id, data, sender_metadata } => {
                let st = self.st.lock();
                if st.channel.as_deref() != Some(channel.as_str()) || st.peer_id.as_deref() == Some(&sender_peer_id) {
                    return;
                }
                drop(st);
                self.emit(PeerEvent::Data { sender_peer_id, data, kind: DataKind::Broadcast, sender_metadata });
            }
            ClientEvent::ServerError { code, message, .. } if FATAL_SERVER_ERRORS.contains(&code.as_str()) => {
                let detail = message.map(|m| format!(" ({m})")).unwrap_or_default();
                self.emit(PeerEvent::FatalError { error: PeerError::Setup(format!("server error: {code}{detail}")) });
            }
            ClientEvent::TokenProviderError { consecutive_failures, error } => {
                self.emit(PeerEvent::FatalError {
                    error: PeerError::Setup(format!("token provider failed {consecutive_failures} times: {error}")),
                });
            }
            _ => {}
        }
    }

    fn on_direct(&self, sender: String, data: Value, sender_metadata: Option<Map<String, Value>>) {
        let st = self.st.lock();
        let Some((remote, conn)) = st.peers.get(&sender) else {
            // Presence races the SDP, or a stranger: never surfaced.
            return;
        };
        if let Some(signal) = RtcSignal::parse(&data) {
            conn.send(Command::Signal(signal));
            return;
        }
        if signal_shaped(&data) {
            // An rtc signal our parser refuses (over a cap): dropped, never data.
            tracing::debug!(target: "metered_realtime::peer", from = %sender, "dropping a malformed rtc signal");
            return;
        }
        if TrackMeta::is_reserved(&data) {
            if let Some(meta) = TrackMeta::parse(&data) {
                let max = st.max_message_size;
                if let Err(Rejected::Oversized { len }) = remote.inner.track_meta.lock().apply(meta, max) {
                    tracing::warn!(target: "metered_realtime::peer", from = %sender, len, "dropping oversized inbound track metadata");
                }
            }
            return;
        }
        drop(st);
        self.emit(PeerEvent::Data { sender_peer_id: sender, data, kind: DataKind::Direct, sender_metadata });
    }

    async fn on_disconnected(&self, code: u16, reason: String, will_reconnect: bool) {
        let state = self.st.lock().state;
        if matches!(state, PeerState::Closed | PeerState::Leaving | PeerState::Idle) {
            return;
        }
        if will_reconnect && matches!(state, PeerState::Joined | PeerState::Reconnecting) {
            let peers: Vec<RemotePeer> = {
                let mut st = self.st.lock();
                // Offline, the deadline is moot: the next welcome re-arms it.
                st.reconcile = Reconcile { pending: true, ..Reconcile::default() };
                st.peers.values().map(|(r, _)| r.clone()).collect()
            };
            for p in peers {
                if !matches!(p.state(), ConnectionState::Reconnecting | ConnectionState::Closed) {
                    p.set_state(ConnectionState::Reconnecting);
                }
            }
            self.set_state(PeerState::Reconnecting);
            return;
        }
        if !will_reconnect && FATAL_CLOSE_CODES.contains(&code) {
            self.emit(PeerEvent::FatalError {
                error: PeerError::Setup(format!("connection closed terminally (code {code}): {reason}")),
            });
        }
        if will_reconnect {
            let client = self.client.clone();
            tokio::spawn(async move { client.close().await });
        }
        self.teardown(Some(if reason.is_empty() { format!("disconnected (code {code})") } else { reason })).await;
    }

    /// No roster arrived by the reconcile deadline: re-issue the subscribe
    /// (the server answers it with a snapshot), or give up once the budget
    /// is spent.
    fn on_reconcile_deadline(&self) {
        let mut st = self.st.lock();
        st.reconcile.deadline = None;
        if !st.reconcile.pending || st.state != PeerState::Reconnecting {
            return;
        }
        // Offline again: the next welcome re-arms the deadline.
        if self.client.state() != ClientState::Connected {
            return;
        }
        let Some(channel) = st.channel.clone() else { return };
        if st.reconcile.resubscribes >= MAX_RECONCILE_RESUBSCRIBES {
            drop(st);
            tracing::warn!(target: "metered_realtime::peer", %channel, "no roster after reconnect; giving up");
            self.emit(PeerEvent::FatalError { error: PeerError::ReconcileTimeout });
            return;
        }
        st.reconcile.resubscribes += 1;
        st.reconcile.deadline = Some(tokio::time::Instant::now() + self.reconcile_deadline);
        let (attempt, opts) = (st.reconcile.resubscribes, st.join_opts);
        drop(st);
        tracing::warn!(target: "metered_realtime::peer", %channel, attempt, "no roster after reconnect; re-issuing subscribe");
        let client = self.client.clone();
        tokio::spawn(async move {
            // The re-armed deadline drives the next step whatever this returns.
            if let Err(e) = client.subscribe_with(&channel, opts).await {
                tracing::warn!(target: "metered_realtime::peer", %channel, "forced resubscribe failed: {e}");
            }
        });
    }

    /// The first presence after a reconnect is the channel's full roster.
    async fn reconcile(&self, joined: Vec<PresencePeer>) {
        let me = self.st.lock().peer_id.clone();
        let ids: Vec<&str> = joined.iter().map(|p| p.peer_id.as_str()).filter(|p| Some(*p) != me.as_deref()).collect();
        let gone: Vec<String> = self.st.lock().peers.keys().filter(|k| !ids.contains(&k.as_str())).cloned().collect();
        for id in gone {
            self.remove_peer(&id).await;
        }
        let mut seen = Vec::new();
        for p in joined {
            if Some(&p.peer_id) == me.as_ref() || seen.contains(&p.peer_id) {
                continue;
            }
            seen.push(p.peer_id.clone());
            let survivor = self.st.lock().peers.get(&p.peer_id).map(|(r, _)| r.clone());
            match survivor {
                Some(remote) => {
                    remote.set_metadata(p.metadata);
                    let st = self.st.lock();
                    if let Some((_, conn)) = st.peers.get(&p.peer_id) {
                        // Metadata first, then media, on the same ordered path.
                        for m in st.tracked.iter().filter_map(|t| t.meta_message()) {
                            conn.send(Command::Meta(m));
                        }
                        conn.send(Command::Rebuild);
                    }
                }
                None => self.add_peer(p.peer_id, p.metadata),
            }
        }
        if self.st.lock().state == PeerState::Reconnecting {
            self.set_state(PeerState::Joined);
        }
    }

    pub(crate) fn add_peer(&self, peer_id: String, metadata: Option<Map<String, Value>>) {
        let mut st = self.st.lock();
        let Some(me) = st.peer_id.clone() else { return };
        if peer_id == me || st.peers.contains_key(&peer_id) {
            return;
        }
        if st.peers.len() >= MAX_PEERS_PER_CHANNEL {
            tracing::warn!(target: "metered_realtime::peer", peer = %peer_id, "peer cap reached; ignoring");
            return;
        }
        let remote = RemotePeer::new(
            peer_id.clone(),
            is_polite(&me, &peer_id),
            metadata,
            self.events.clone(),
            self.gate.clone(),
        );
        let meta: Vec<Value> = st.tracked.iter().filter_map(|t| t.meta_message()).collect();
        let tracks = st.tracked.iter().map(|t| (t.wire_id.clone(), t.local.rtp.clone())).collect();
        let conn = Connection::spawn(
            self.api.clone(),
            st.ice_servers.clone(),
            self.client.clone(),
            remote.clone(),
            meta,
            tracks,
        );
        st.peers.insert(peer_id, (remote.clone(), conn));
        drop(st);
        self.emit(PeerEvent::PeerJoined { peer: remote });
    }

    pub(crate) async fn remove_peer(&self, peer_id: &str) {
        let Some((remote, conn)) = self.st.lock().peers.remove(peer_id) else { return };
        remote.close();
        self.emit(PeerEvent::PeerLeft { peer: remote });
        conn.close().await;
    }

    /// Terminal: every peer closed, `Left` emitted.
    pub(crate) async fn teardown(&self, reason: Option<String>) {
        let ids: Vec<String> = self.st.lock().peers.keys().cloned().collect();
        for id in ids {
            self.remove_peer(&id).await;
        }
        let (peer_id, channel) = {
            let mut st = self.st.lock();
            st.tracked.clear();
            st.reconcile = Reconcile::default();
            (st.peer_id.clone(), st.channel.take())
        };
        self.set_state(PeerState::Closed);
        self.emit(PeerEvent::Left { peer_id, channel, reason });
    }
}
