//! [`SignallingClient`], the handle applications hold, and the state it shares
//! with the supervisor task.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{Instrument, debug, debug_span};

use super::error::{ClientError, ConfigError};
use super::events::{ClientEvent, ClientState};
use super::options::{ClientOptions, SubscribeOptions};
use super::supervisor;
use metered_protocol::ClientFrame;

/// `close()` waits this long for the supervisor to finish the close handshake.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// The `maxMessageSize` assumed until the first `welcome` (the hosted default).
const DEFAULT_MAX_MESSAGE_SIZE: u64 = 65_536;

type AckSender = oneshot::Sender<Result<(), ClientError>>;

/// The pub/sub client of Metered Realtime Messaging.
///
/// Cheap to clone: every clone shares one connection, one subscription set and
/// one event channel, so tasks can publish and send concurrently through their
/// own clone. See the [module docs](super) for the lifecycle.
#[derive(Clone)]
pub struct SignallingClient {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SignallingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignallingClient")
            .field("url", &self.shared.origin)
            .field("state", &self.state())
            .field("peer_id", &self.peer_id())
            .finish_non_exhaustive()
    }
}

/// State shared by the handles and the supervisor task.
pub(crate) struct Shared {
    pub(crate) opts: ClientOptions,
    /// The validated base URL (`scheme://host[:port]`).
    pub(crate) origin: String,
    events: broadcast::Sender<ClientEvent>,
    state: watch::Sender<ClientState>,
    /// The writer of the connection that received `welcome`, if any.
    pub(crate) link: Mutex<Option<Link>>,
    pending: Mutex<HashMap<String, AckSender>>,
    /// Channels to replay after a reconnect, in subscription order.
    subscriptions: Mutex<Vec<(String, SubscribeOptions)>>,
    pub(crate) peer_id: Mutex<Option<String>>,
    pub(crate) max_message_size: AtomicU64,
    /// Bumped at every `welcome`, to tell connections apart.
    generation: AtomicU64,
    explicitly_closed: AtomicBool,
    pub(crate) close_tx: watch::Sender<bool>,
    /// Whether a supervisor task is alive.
    pub(crate) running: AtomicBool,
}

/// The live connection's writer.
pub(crate) struct Link {
    pub(crate) tx: mpsc::UnboundedSender<String>,
    pub(crate) generation: u64,
}

impl Shared {
    pub(crate) fn emit(&self, event: ClientEvent) {
        // No receiver is fine: events go to whoever listens.
        let _ = self.events.send(event);
    }

    pub(crate) fn transition(&self, to: ClientState) {
        let from = self.state.send_replace(to);
        if from != to {
            debug!(?from, ?to, "state");
            self.emit(ClientEvent::StateChange { from, to });
        }
    }

    pub(crate) fn state(&self) -> ClientState {
        *self.state.borrow()
    }

    pub(crate) fn is_explicitly_closed(&self) -> bool {
        self.explicitly_closed.load(Ordering::Acquire)
    }

    pub(crate) fn next_generation(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Whether the connection of `generation` is the live, welcomed one.
    pub(crate) fn is_current(&self, generation: u64) -> bool {
        self.state() == ClientState::Connected && self.link.lock().as_ref().is_some_and(|l| l.generation == generation)
    }

    pub(crate) fn has_pending(&self, request_id: &str) -> bool {
        self.pending.lock().contains_key(request_id)
    }

    /// Completes a pending request (unknown ids are ignored: late or foreign acks).
    pub(crate) fn resolve(&self, request_id: &str, result: Result<(), ClientError>) {
        if let Some(tx) = self.pending.lock().remove(request_id) {
            let _ = tx.send(result);
        }
    }

    /// Fails every pending request: the connection ended with `close_code`.
    pub(crate) fn fail_pending(&self, close_code: u16) {
        for (_, tx) in self.pending.lock().drain() {
            let _ = tx.send(Err(ClientError::Disconnected { close_code }));
        }
    }

    pub(crate) fn tracked_channels(&self) -> Vec<String> {
        self.subscriptions.lock().iter().map(|(c, _)| c.clone()).collect()
    }

    pub(crate) fn tracked_options(&self, channel: &str) -> Option<SubscribeOptions> {
        self.subscriptions.lock().iter().find(|(c, _)| c == channel).map(|(_, o)| *o)
    }

    /// Sends `text` on the live connection (on connection `generation` only, if
    /// given) and waits for the ack of `request_id`.
    pub(crate) async fn request(
        &self,
        request_id: String,
        text: String,
        generation: Option<u64>,
    ) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        {
            // Holding the link lock while registering: the supervisor clears the
            // link before failing pending requests, so none is left hanging.
            let link = self.link.lock();
            let link = link
                .as_ref()
                .filter(|l| self.state() == ClientState::Connected && generation.is_none_or(|g| g == l.generation))
                .ok_or(ClientError::NotConnected)?;
            self.pending.lock().insert(request_id.clone(), tx);
            if link.tx.send(text).is_err() {
                self.pending.lock().remove(&request_id);
                return Err(ClientError::NotConnected);
            }
        }
        let timeout = self.opts.ack_timeout;
        let result = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ClientError::Disconnected { close_code: 1006 }),
            Err(_) => Err(ClientError::AckTimeout { request_id: request_id.clone(), timeout }),
        };
        self.pending.lock().remove(&request_id);
        match &result {
            Ok(()) => debug!("acked"),
            Err(error) => debug!(%error, "request failed"),
        }
        result
    }
}

impl SignallingClient {
    /// Builds a client (validating the options) without connecting; take
    /// [`SignallingClient::events`] before [`SignallingClient::connect`] to see
    /// the first `Connected`.
    pub fn new(opts: ClientOptions) -> Result<Self, ConfigError> {
        let origin = opts.validate()?;
        let (events, _) = broadcast::channel(opts.event_capacity.max(16));
        let (state, _) = watch::channel(ClientState::Idle);
        let (close_tx, _) = watch::channel(false);
        Ok(Self {
            shared: Arc::new(Shared {
                opts,
                origin,
                events,
                state,
                link: Mutex::new(None),
                pending: Mutex::new(HashMap::new()),
                subscriptions: Mutex::new(Vec::new()),
                peer_id: Mutex::new(None),
                max_message_size: AtomicU64::new(DEFAULT_MAX_MESSAGE_SIZE),
                generation: AtomicU64::new(0),
                explicitly_closed: AtomicBool::new(false),
                close_tx,
                running: AtomicBool::new(false),
            }),
        })
    }

    /// Builds a client and connects it: resolves after `welcome`.
    pub async fn connect_with(opts: ClientOptions) -> Result<Self, ClientError> {
        let client = Self::new(opts)?;
        client.connect().await?;
        Ok(client)
    }

    /// A new receiver of the client's events, from now on (earlier events are
    /// not replayed).
    ///
    /// This is a *broadcast*: every receiver sees every event. The channel is
    /// bounded by [`ClientOptions::event_capacity`]; a receiver that falls that
    /// far behind loses the oldest events and its next `recv` returns
    /// `Err(RecvError::Lagged(n))`, so a slow consumer never grows memory.
    /// Drop receivers you no longer read.
    pub fn events(&self) -> broadcast::Receiver<ClientEvent> {
        self.shared.events.subscribe()
    }

    /// Connects: resolves once `welcome` arrived (within the welcome timeout),
    /// or fails with the close code ([`ClientError::Connect`]) or the token
    /// provider's error. A failed first connect is not retried; afterwards the
    /// client reconnects on its own as configured until [`SignallingClient::close`]
    /// or a fatal close code. Legal from `Idle` and `Closed` (a closed client
    /// starts over, keeping its tracked subscriptions).
    pub async fn connect(&self) -> Result<(), ClientError> {
        let state = self.state();
        if !matches!(state, ClientState::Idle | ClientState::Closed) || self.shared.running.swap(true, Ordering::AcqRel)
        {
            return Err(ClientError::InvalidState { state });
        }
        self.shared.explicitly_closed.store(false, Ordering::Release);
        self.shared.close_tx.send_replace(false);
        // Synchronously, so a concurrent second connect() sees a non-idle state.
        self.shared.transition(ClientState::Connecting);
        let (ready_tx, ready_rx) = oneshot::channel();
        tokio::spawn(supervisor::run(self.shared.clone(), ready_tx));
        ready_rx.await.unwrap_or(Err(ClientError::Closed))
    }

    /// The current state.
    pub fn state(&self) -> ClientState {
        self.shared.state()
    }

    /// A watch of the state, for awaiting transitions.
    pub fn watch_state(&self) -> watch::Receiver<ClientState> {
        self.shared.state.subscribe()
    }

    /// Our peer id (from the last `welcome`; a publishable key gets a fresh one
    /// per connection).
    pub fn peer_id(&self) -> Option<String> {
        self.shared.peer_id.lock().clone()
    }

    /// The server's inbound frame cap from the last `welcome`.
    pub fn max_message_size(&self) -> u64 {
        self.shared.max_message_size.load(Ordering::Acquire)
    }

    /// Channels this client subscribed to (and replays after a reconnect).
    pub fn subscriptions(&self) -> Vec<String> {
        self.shared.tracked_channels()
    }

    /// Subscribes to a channel; resolves on the server's ack. The server then
    /// sends a `Presence` snapshot of the peers already there.
    pub async fn subscribe(&self, channel: &str) -> Result<(), ClientError> {
        self.subscribe_with(channel, SubscribeOptions::default()).await
    }

    /// Subscribes with options (the last subscribe of a channel wins).
    ///
    /// The channel is tracked for replay before the frame is sent, so a drop
    /// between send and ack does not lose it; it is forgotten again only when
    /// the frame never left ([`ClientError::NotConnected`]) and it was not
    /// tracked before.
    pub async fn subscribe_with(&self, channel: &str, opts: SubscribeOptions) -> Result<(), ClientError> {
        let rid = request_id();
        let frame = ClientFrame::Subscribe {
            channel,
            request_id: Some(&rid),
            include_sender_metadata: opts.include_sender_metadata,
        };
        let text = encode(&frame)?;
        let was_tracked = {
            let mut subs = self.shared.subscriptions.lock();
            match subs.iter_mut().find(|(c, _)| c == channel) {
                Some(entry) => {
                    entry.1 = opts;
                    true
                }
                None => {
                    subs.push((channel.to_owned(), opts));
                    false
                }
            }
        };
        let result = self.request("subscribe", Some(channel), None, rid, text).await;
        if matches!(result, Err(ClientError::NotConnected)) && !was_tracked {
            self.shared.subscriptions.lock().retain(|(c, _)| c != channel);
        }
        result
    }

    /// Unsubscribes from a channel (it is no longer replayed, whatever the outcome).
    pub async fn unsubscribe(&self, channel: &str) -> Result<(), ClientError> {
        let rid = request_id();
        let text = encode(&ClientFrame::Unsubscribe { channel, request_id: Some(&rid) })?;
        self.shared.subscriptions.lock().retain(|(c, _)| c != channel);
        self.request("unsubscribe", Some(channel), None, rid, text).await
    }

    /// Publishes `data` to a channel; every other subscriber receives it (the
    /// publisher does not).
    pub async fn publish(&self, channel: &str, data: Value) -> Result<(), ClientError> {
        let rid = request_id();
        let text = encode(&ClientFrame::Publish { channel, data: &data, request_id: Some(&rid) })?;
        self.check_size(&text)?;
        self.request("publish", Some(channel), None, rid, text).await
    }

    /// Sends `data` to one peer (it arrives as `Direct`).
    pub async fn send(&self, to_peer_id: &str, data: Value) -> Result<(), ClientError> {
        let rid = request_id();
        let text = encode(&ClientFrame::Send { to: to_peer_id, data: &data, request_id: Some(&rid) })?;
        self.check_size(&text)?;
        self.request("send", None, Some(to_peer_id), rid, text).await
    }

    /// Closes the connection for good (close code 1000) and stops reconnecting.
    /// Idempotent; pending requests fail with [`ClientError::Disconnected`].
    pub async fn close(&self) {
        self.shared.explicitly_closed.store(true, Ordering::Release);
        self.shared.close_tx.send_replace(true);
        if self.shared.running.load(Ordering::Acquire) {
            let mut state = self.shared.state.subscribe();
            let _ = tokio::time::timeout(CLOSE_WAIT, state.wait_for(|s| *s == ClientState::Closed)).await;
        }
        self.shared.fail_pending(1000);
        self.shared.transition(ClientState::Closed);
    }

    fn check_size(&self, text: &str) -> Result<(), ClientError> {
        let max = self.max_message_size();
        if text.len() as u64 > max {
            return Err(ClientError::MessageTooLarge { size: text.len(), max });
        }
        Ok(())
    }

    async fn request(
        &self,
        op: &'static str,
        channel: Option<&str>,
        to: Option<&str>,
        rid: String,
        text: String,
    ) -> Result<(), ClientError> {
        let peer = self.peer_id();
        let span = debug_span!("signalling_request", op, peer = peer.as_deref(), channel, to, request_id = %rid);
        self.shared.request(rid, text, None).instrument(span).await
    }
}

pub(crate) fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub(crate) fn encode(frame: &ClientFrame<'_>) -> Result<String, ClientError> {
    frame.encode().map_err(|e| ClientError::InvalidArgument { reason: e.message.into_owned() })
}
