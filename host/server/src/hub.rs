//! Routing state of one node: tenants, channels, subscribers, presence and the
//! peer directory for direct messages. Every frame is serialized once and handed
//! to each recipient's bounded queue; nothing here blocks or awaits.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use parking_lot::{Mutex, RwLock};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::sync::{Notify, mpsc};

use super::backplane::{Backplane, Origin};
use super::metrics::Metrics;
use metered_protocol::{CloseCode, ErrorCode, PresenceChange, PresencePeer, ServerFrame};

/// A connection's id, unique within the process.
pub(crate) type ConnId = u64;

/// Out-of-band instruction to a connection task (admin kick, slow consumer).
#[derive(Default)]
pub(crate) struct ConnControl {
    close: Mutex<Option<(CloseCode, &'static str)>>,
    notify: Notify,
}

impl ConnControl {
    /// Asks the connection to close with `code`; the first request wins.
    pub(crate) fn close(&self, code: CloseCode, reason: &'static str) {
        let mut slot = self.close.lock();
        if slot.is_none() {
            *slot = Some((code, reason));
            self.notify.notify_one();
        }
    }
    pub(crate) async fn requested(&self) -> (CloseCode, &'static str) {
        loop {
            if let Some(req) = *self.close.lock() {
                return req;
            }
            self.notify.notified().await;
        }
    }
}

/// The sending side of one connection.
#[derive(Clone)]
pub(crate) struct ConnHandle {
    pub(crate) id: ConnId,
    tx: mpsc::Sender<Utf8Bytes>,
    pub(crate) control: Arc<ConnControl>,
}

impl ConnHandle {
    pub(crate) fn new(id: ConnId, queue: usize) -> (Self, mpsc::Receiver<Utf8Bytes>) {
        let (tx, rx) = mpsc::channel(queue);
        (Self { id, tx, control: Arc::default() }, rx)
    }

    /// Queues a frame; a full queue closes the connection as a slow consumer.
    pub(crate) fn deliver(&self, frame: Utf8Bytes, metrics: &Metrics) -> bool {
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics.slow_consumer_drops.fetch_add(1, Ordering::Relaxed);
                self.control.close(CloseCode::PolicyViolation, "slow consumer");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

pub(crate) fn frame(f: &ServerFrame) -> Utf8Bytes {
    Utf8Bytes::from(f.to_json())
}

/// The identity a connection acts under.
#[derive(Clone)]
pub(crate) struct Member {
    pub(crate) peer_id: Arc<str>,
    pub(crate) peer_metadata: Option<Arc<Map<String, Value>>>,
    pub(crate) handle: ConnHandle,
    pub(crate) wants_presence: bool,
}

impl Member {
    /// The member as the sender of a message.
    pub(crate) fn origin(&self) -> Origin<'_> {
        Origin { peer_id: &self.peer_id, peer_metadata: self.peer_metadata.as_deref() }
    }
}

struct Subscriber {
    member: Member,
    include_sender_metadata: bool,
}

struct Presence {
    connections: usize,
    metadata: Option<Arc<Map<String, Value>>>,
}

#[derive(Default)]
struct ChannelState {
    subscribers: HashMap<ConnId, Subscriber>,
    present: HashMap<Arc<str>, Presence>,
}

struct Channel {
    name: Arc<str>,
    state: RwLock<ChannelState>,
    /// Set under the tenant's channel-map lock when the channel is dropped from
    /// the map; a subscriber that raced with the removal retries on a fresh one.
    removed: AtomicBool,
}

struct Quota {
    period_start: Instant,
    used: u64,
}

/// One tenant's namespace.
pub(crate) struct Tenant {
    name: Arc<str>,
    channels: RwLock<HashMap<Arc<str>, Arc<Channel>>>,
    peers: RwLock<HashMap<Arc<str>, Vec<ConnHandle>>>,
    connections: AtomicUsize,
    quota: Mutex<Quota>,
}

/// What `Hub::subscribe` did.
pub(crate) enum Subscribed {
    /// First subscription of this connection to the channel.
    New,
    /// The connection was already subscribed (options updated, snapshot re-sent).
    Again,
}

/// The node's routing state.
pub(crate) struct Hub {
    tenants: RwLock<HashMap<Arc<str>, Arc<Tenant>>>,
    next_conn: AtomicU64,
    pub(crate) metrics: Metrics,
    max_connections_per_tenant: usize,
    message_quota: u64,
    quota_period: Duration,
    queue: usize,
    presence: tokio::sync::broadcast::Sender<PresenceChange>,
    /// Where everything that must reach other nodes goes.
    backplane: Arc<dyn Backplane>,
}

impl Hub {
    pub(crate) fn new(limits: &super::config::Limits, backplane: Arc<dyn Backplane>) -> Self {
        Self {
            tenants: RwLock::default(),
            next_conn: AtomicU64::new(1),
            metrics: Metrics::default(),
            max_connections_per_tenant: limits.max_connections_per_tenant,
            message_quota: limits.message_quota,
            quota_period: Duration::from_secs(limits.quota_period_secs.max(1)),
            queue: limits.outbound_queue_frames,
            presence: tokio::sync::broadcast::channel(1024).0,
            backplane,
        }
    }

    /// Presence changes from now on (a receiver that lags loses some: re-read
    /// [`Hub::channel_peers`] then).
    pub(crate) fn presence_changes(&self) -> tokio::sync::broadcast::Receiver<PresenceChange> {
        self.presence.subscribe()
    }

    /// A peer's first connection in a channel here subscribed, or its last
    /// one left: the in-process feed and the backplane hear of it.
    fn presence_changed(
        &self,
        t: &Tenant,
        channel: &Arc<str>,
        peer_id: &Arc<str>,
        joined: bool,
        metadata: Option<&Map<String, Value>>,
    ) {
        let change =
            PresenceChange { tenant: t.name.clone(), channel: channel.clone(), peer_id: peer_id.clone(), joined };
        self.backplane.presence(&change, metadata);
        if self.presence.receiver_count() > 0 {
            let _ = self.presence.send(change);
        }
    }

    pub(crate) fn new_connection(&self) -> (ConnHandle, mpsc::Receiver<Utf8Bytes>) {
        ConnHandle::new(self.next_conn.fetch_add(1, Ordering::Relaxed), self.queue)
    }

    fn tenant(&self, name: &str) -> Arc<Tenant> {
        if let Some(t) = self.tenants.read().get(name) {
            return t.clone();
        }
        self.tenants
            .write()
            .entry(Arc::from(name))
            .or_insert_with_key(|name| {
                Arc::new(Tenant {
                    name: name.clone(),
                    channels: RwLock::default(),
                    peers: RwLock::default(),
                    connections: AtomicUsize::new(0),
                    quota: Mutex::new(Quota { period_start: Instant::now(), used: 0 }),
                })
            })
            .clone()
    }

    fn existing_tenant(&self, name: &str) -> Option<Arc<Tenant>> {
        self.tenants.read().get(name).cloned()
    }

    /// Admits a connection to its tenant (4010 over the concurrent limit).
    pub(crate) fn register(
        &self,
        tenant: &str,
        peer_id: &Arc<str>,
        handle: &ConnHandle,
    ) -> Result<Arc<Tenant>, CloseCode> {
        let t = self.tenant(tenant);
        let n = t.connections.fetch_add(1, Ordering::AcqRel);
        if self.max_connections_per_tenant > 0 && n >= self.max_connections_per_tenant {
            t.connections.fetch_sub(1, Ordering::AcqRel);
            return Err(CloseCode::OverConcurrentLimit);
        }
        t.peers.write().entry(peer_id.clone()).or_default().push(handle.clone());
        self.metrics.connections_current.fetch_add(1, Ordering::Relaxed);
        self.metrics.connections_total.fetch_add(1, Ordering::Relaxed);
        Ok(t)
    }

    /// Removes a connection: leaves its channels (presence deltas) and the directory.
    pub(crate) fn unregister<'a>(&self, t: &Tenant, member: &Member, channels: impl Iterator<Item = &'a Arc<str>>) {
        for channel in channels {
            self.unsubscribe(t, member, channel);
        }
        let mut peers = t.peers.write();
        if let Some(conns) = peers.get_mut(&member.peer_id) {
            conns.retain(|h| h.id != member.handle.id);
            if conns.is_empty() {
                peers.remove(&member.peer_id);
            }
        }
        drop(peers);
        t.connections.fetch_sub(1, Ordering::AcqRel);
        self.metrics.connections_current.fetch_sub(1, Ordering::Relaxed);
    }

    /// Counts one message against the tenant's quota.
    pub(crate) fn charge_quota(&self, t: &Tenant, now: Instant) -> Result<(), ErrorCode> {
        if self.message_quota == 0 {
            return Ok(());
        }
        let mut q = t.quota.lock();
        if now.saturating_duration_since(q.period_start) >= self.quota_period {
            q.period_start = now;
            q.used = 0;
        }
        if q.used >= self.message_quota {
            return Err(ErrorCode::OverMessageQuota);
        }
        q.used += 1;
        Ok(())
    }

    /// Subscribes `member`; queues the ack (if any) and the presence snapshot to
    /// it, and a join delta to the other subscribers, all under the channel lock
    /// so no message can slip in between.
    pub(crate) fn subscribe(
        &self,
        t: &Tenant,
        member: &Member,
        channel: &str,
        include_sender_metadata: bool,
        ack: Option<Utf8Bytes>,
    ) -> Subscribed {
        loop {
            let ch = {
                let existing = t.channels.read().get(channel).cloned();
                match existing {
                    Some(ch) => ch,
                    None => t
                        .channels
                        .write()
                        .entry(Arc::from(channel))
                        .or_insert_with_key(|k| {
                            Arc::new(Channel {
                                name: k.clone(),
                                state: RwLock::default(),
                                removed: AtomicBool::new(false),
                            })
                        })
                        .clone(),
                }
            };
            let mut st = ch.state.write();
            if ch.removed.load(Ordering::Acquire) {
                continue;
            }
            let again = st.subscribers.contains_key(&member.handle.id);
            st.subscribers.insert(member.handle.id, Subscriber { member: member.clone(), include_sender_metadata });
            if !again {
                let p = st
                    .present
                    .entry(member.peer_id.clone())
                    .or_insert(Presence { connections: 0, metadata: member.peer_metadata.clone() });
                p.connections += 1;
                if p.connections == 1 {
                    let delta = frame(&ServerFrame::Presence {
                        channel: ch.name.to_string(),
                        joined: vec![presence_peer(&member.peer_id, &member.peer_metadata)],
                        left: vec![],
                    });
                    self.broadcast_presence(&st, member, delta);
                    self.presence_changed(t, &ch.name, &member.peer_id, true, member.peer_metadata.as_deref());
                }
            }
            if let Some(ack) = ack {
                member.handle.deliver(ack, &self.metrics);
            }
            if member.wants_presence {
                let joined = st
                    .present
                    .iter()
                    .filter(|(peer, _)| **peer != member.peer_id)
                    .map(|(peer, p)| presence_peer(peer, &p.metadata))
                    .collect();
                let snapshot = frame(&ServerFrame::Presence { channel: ch.name.to_string(), joined, left: vec![] });
                member.handle.deliver(snapshot, &self.metrics);
            }
            return if again { Subscribed::Again } else { Subscribed::New };
        }
    }

    fn broadcast_presence(&self, st: &ChannelState, member: &Member, delta: Utf8Bytes) {
        for sub in st.subscribers.values() {
            if sub.member.handle.id != member.handle.id
                && sub.member.wants_presence
                && sub.member.peer_id != member.peer_id
            {
                sub.member.handle.deliver(delta.clone(), &self.metrics);
            }
        }
    }

    /// Unsubscribes; returns whether the connection was subscribed.
    pub(crate) fn unsubscribe(&self, t: &Tenant, member: &Member, channel: &str) -> bool {
        let Some(ch) = t.channels.read().get(channel).cloned() else { return false };
        let empty = {
            let mut st = ch.state.write();
            if st.subscribers.remove(&member.handle.id).is_none() {
                return false;
            }
            if let Some(p) = st.present.get_mut(&member.peer_id) {
                p.connections -= 1;
                if p.connections == 0 {
                    let metadata = st.present.remove(&member.peer_id).and_then(|p| p.metadata);
                    let delta = frame(&ServerFrame::Presence {
                        channel: ch.name.to_string(),
                        joined: vec![],
                        left: vec![presence_peer(&member.peer_id, &metadata)],
                    });
                    self.broadcast_presence(&st, member, delta);
                    self.presence_changed(t, &ch.name, &member.peer_id, false, metadata.as_deref());
                }
            }
            st.subscribers.is_empty()
        };
        if empty {
            let mut map = t.channels.write();
            // Re-check under both locks: a subscriber may have arrived meanwhile.
            if ch.state.read().subscribers.is_empty() {
                ch.removed.store(true, Ordering::Release);
                map.remove(channel);
            }
        }
        true
    }

    /// Publishes from a connection on this node: fans the message out to
    /// the channel's subscribers here except the sender's connection, then
    /// hands it to the backplane; returns how many local connections it was
    /// queued for.
    pub(crate) fn publish(&self, t: &Tenant, from: &Member, channel: &str, data: &RawValue) -> usize {
        let delivered = self.fan_out(t, channel, Some(from.handle.id), from.origin(), data);
        self.backplane.publish(&t.name, channel, from.origin(), data);
        delivered
    }

    /// Publishes from outside any connection (the REST control plane):
    /// fanned out here and handed to the backplane.
    pub(crate) fn publish_external(&self, tenant: &str, channel: &str, from: Origin<'_>, data: &RawValue) -> usize {
        let delivered = self.deliver_publish(tenant, channel, from, data);
        self.backplane.publish(tenant, channel, from, data);
        delivered
    }

    /// Fans a message from outside this node's connections (the REST plane,
    /// another node) out to the channel's subscribers here.
    pub(crate) fn deliver_publish(&self, tenant: &str, channel: &str, from: Origin<'_>, data: &RawValue) -> usize {
        match self.existing_tenant(tenant) {
            Some(t) => self.fan_out(&t, channel, None, from, data),
            None => 0,
        }
    }

    /// The fan-out: the `message` frame is built once (and once more with
    /// `fromMetadata`, lazily) and queued to every subscriber but `skip`.
    fn fan_out(&self, t: &Tenant, channel: &str, skip: Option<ConnId>, from: Origin<'_>, data: &RawValue) -> usize {
        let Some(ch) = t.channels.read().get(channel).cloned() else { return 0 };
        let st = ch.state.read();
        let mut plain: Option<Utf8Bytes> = None;
        let mut with_meta: Option<Utf8Bytes> = None;
        let build = |meta: bool| {
            frame(&ServerFrame::Message {
                channel: channel.to_owned(),
                from: from.peer_id.to_owned(),
                data: data.to_owned(),
                from_metadata: if meta { from.peer_metadata.cloned() } else { None },
            })
        };
        let mut delivered = 0;
        for sub in st.subscribers.values() {
            if Some(sub.member.handle.id) == skip {
                continue;
            }
            let f = if sub.include_sender_metadata && from.peer_metadata.is_some() {
                with_meta.get_or_insert_with(|| build(true)).clone()
            } else {
                plain.get_or_insert_with(|| build(false)).clone()
            };
            if sub.member.handle.deliver(f, &self.metrics) {
                delivered += 1;
            }
        }
        self.metrics.messages_published.fetch_add(1, Ordering::Relaxed);
        self.metrics.messages_delivered.fetch_add(delivered as u64, Ordering::Relaxed);
        delivered
    }

    /// Delivers a direct message to every connection of peer `to`: here if
    /// it has any, else through the backplane (`PeerNotFound` when it is
    /// connected nowhere).
    pub(crate) fn send(&self, t: &Tenant, from: &Member, to: &str, data: &RawValue) -> Result<usize, ErrorCode> {
        match self.direct_local(t, to, from.origin(), data) {
            Err(ErrorCode::PeerNotFound) => self.backplane.send(&t.name, to, from.origin(), data),
            local => local,
        }
    }

    /// Delivers a direct message from another node to `to`'s connections here.
    pub(crate) fn deliver_direct(
        &self,
        tenant: &str,
        to: &str,
        from: Origin<'_>,
        data: &RawValue,
    ) -> Result<usize, ErrorCode> {
        let t = self.existing_tenant(tenant).ok_or(ErrorCode::PeerNotFound)?;
        self.direct_local(&t, to, from, data)
    }

    fn direct_local(&self, t: &Tenant, to: &str, from: Origin<'_>, data: &RawValue) -> Result<usize, ErrorCode> {
        let peers = t.peers.read();
        let conns = peers.get(to).filter(|c| !c.is_empty()).ok_or(ErrorCode::PeerNotFound)?;
        let f = frame(&ServerFrame::Direct {
            from: from.peer_id.to_owned(),
            data: data.to_owned(),
            from_metadata: from.peer_metadata.cloned(),
        });
        let delivered = conns.iter().filter(|h| h.deliver(f.clone(), &self.metrics)).count();
        self.metrics.directs.fetch_add(1, Ordering::Relaxed);
        self.metrics.messages_delivered.fetch_add(delivered as u64, Ordering::Relaxed);
        Ok(delivered)
    }

    /// The peers present in a channel.
    pub(crate) fn channel_peers(&self, tenant: &str, channel: &str) -> Vec<PresencePeer> {
        let Some(t) = self.existing_tenant(tenant) else { return vec![] };
        let Some(ch) = t.channels.read().get(channel).cloned() else { return vec![] };
        let st = ch.state.read();
        let mut peers: Vec<_> = st.present.iter().map(|(id, p)| presence_peer(id, &p.metadata)).collect();
        peers.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        peers
    }

    /// Closes every connection of a peer, on every node, with 4020; returns
    /// how many.
    pub(crate) fn kick(&self, tenant: &str, peer_id: &str) -> usize {
        self.kick_local(tenant, peer_id) + self.backplane.kick(tenant, peer_id)
    }

    /// Closes a peer's connections on this node with 4020; returns how many.
    pub(crate) fn kick_local(&self, tenant: &str, peer_id: &str) -> usize {
        let Some(t) = self.existing_tenant(tenant) else { return 0 };
        let peers = t.peers.read();
        let Some(conns) = peers.get(peer_id) else { return 0 };
        for h in conns {
            h.control.close(CloseCode::AdminDisconnect, "disconnected by an administrator");
        }
        conns.len()
    }

    /// Live counts for `GET /v1/usage`, per tenant.
    pub(crate) fn tenant_usage(&self, tenant: &str) -> (usize, usize, usize) {
        let Some(t) = self.existing_tenant(tenant) else { return (0, 0, 0) };
        let conns = t.connections.load(Ordering::Relaxed);
        let peers = t.peers.read().len();
        let channels = t.channels.read().len();
        (conns, peers, channels)
    }

    /// Quota used in the current period.
    pub(crate) fn quota_used(&self, tenant: &str) -> u64 {
        self.existing_tenant(tenant).map(|t| t.quota.lock().used).unwrap_or(0)
    }
}

/// What other nodes deliver into this node's hub: the receiving end of a
/// [`Backplane`]. Cheap to clone.
#[derive(Clone)]
pub struct HubIngress {
    pub(crate) hub: Arc<Hub>,
}

impl HubIngress {
    /// Delivers a message published elsewhere to this node's subscribers of
    /// `channel`; returns how many connections it was queued for.
    pub fn publish(&self, tenant: &str, channel: &str, from: Origin<'_>, data: &RawValue) -> usize {
        self.hub.deliver_publish(tenant, channel, from, data)
    }

    /// Delivers a direct message sent elsewhere to `to`'s connections on this
    /// node; `Err(PeerNotFound)` when it has none here.
    pub fn send(&self, tenant: &str, to: &str, from: Origin<'_>, data: &RawValue) -> Result<usize, ErrorCode> {
        self.hub.deliver_direct(tenant, to, from, data)
    }

    /// Closes `peer_id`'s connections on this node (an admin kick issued
    /// elsewhere); returns how many.
    pub fn kick(&self, tenant: &str, peer_id: &str) -> usize {
        self.hub.kick_local(tenant, peer_id)
    }
}

fn presence_peer(peer: &Arc<str>, metadata: &Option<Arc<Map<String, Value>>>) -> PresencePeer {
    PresencePeer { peer_id: peer.to_string(), metadata: metadata.as_deref().cloned() }
}

#[cfg(test)]
mod tests;
