//! The state one client's handles and tasks share: [`Shared`] (options, event
//! and state channels, the live connection's [`Link`], pending acks, tracked
//! subscriptions, the close signal) and the helpers every layer uses to talk
//! through it ([`request_id`], [`encode`], [`closed`], [`Ready`]).
//!
//! The lowest I/O layer: the handle (`client`), the reconnect loop
//! (`reconnect`), the connection task (`connection`) and subscription replay
//! (`resubscribe`) all import it; it imports none of them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::debug;

use super::error::ClientError;
use super::events::{ClientEvent, ClientState};
use super::options::{ClientOptions, SubscribeOptions};
use metered_protocol::ClientFrame;

/// The `maxMessageSize` assumed until the first `welcome` (the hosted default).
const DEFAULT_MAX_MESSAGE_SIZE: u64 = 65_536;

type AckSender = oneshot::Sender<Result<(), ClientError>>;

/// Resolves the first `connect()`: `Ok` after `welcome`, or why it failed.
pub(crate) type Ready = Option<oneshot::Sender<Result<(), ClientError>>>;

/// State shared by the handles, the reconnect loop and the connection task.
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
    /// Whether a reconnect-loop task is alive.
    pub(crate) running: AtomicBool,
}

/// The live connection's writer.
pub(crate) struct Link {
    pub(crate) tx: mpsc::UnboundedSender<String>,
    pub(crate) generation: u64,
}

impl Shared {
    /// Fresh state for a client built from validated `opts` (`origin` is what
    /// validation returned): `Idle`, not connected, nothing tracked.
    pub(crate) fn new(opts: ClientOptions, origin: String) -> Self {
        let (events, _) = broadcast::channel(opts.event_capacity.max(16));
        let (state, _) = watch::channel(ClientState::Idle);
        let (close_tx, _) = watch::channel(false);
        Self {
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
        }
    }

    /// A new receiver of the events, from now on.
    pub(crate) fn subscribe_events(&self) -> broadcast::Receiver<ClientEvent> {
        self.events.subscribe()
    }

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

    /// A watch of the state, for awaiting transitions.
    pub(crate) fn watch_state(&self) -> watch::Receiver<ClientState> {
        self.state.subscribe()
    }

    pub(crate) fn is_explicitly_closed(&self) -> bool {
        self.explicitly_closed.load(Ordering::Acquire)
    }

    /// Clears the close request (a `connect()` starts over).
    pub(crate) fn clear_close_request(&self) {
        self.explicitly_closed.store(false, Ordering::Release);
        self.close_tx.send_replace(false);
    }

    /// Records a `close()`: the reconnect loop stops, and the live connection
    /// (or the backoff sleep) ends at once ([`closed`] resolves).
    pub(crate) fn request_close(&self) {
        self.explicitly_closed.store(true, Ordering::Release);
        self.close_tx.send_replace(true);
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

    /// Tracks `channel` for replay with `opts` (replacing its options if it was
    /// tracked already); returns whether it was tracked before.
    pub(crate) fn track(&self, channel: &str, opts: SubscribeOptions) -> bool {
        let mut subs = self.subscriptions.lock();
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
    }

    /// Stops tracking `channel` (it is no longer replayed).
    pub(crate) fn untrack(&self, channel: &str) {
        self.subscriptions.lock().retain(|(c, _)| c != channel);
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
            // Holding the link lock while registering: the connection task and
            // the reconnect loop clear the link before failing pending requests,
            // so none is left hanging.
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

/// Resolves when `close()` was called (`rx` watches [`Shared::close_tx`]).
pub(crate) async fn closed(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|c| *c).await.is_err() {
        // The sender lives in `Shared`, which outlives this task: unreachable in
        // practice; never resolve rather than spin.
        std::future::pending::<()>().await;
    }
}

/// A fresh `requestId`.
pub(crate) fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Encodes an outbound frame; a frame the protocol rejects (e.g. an invalid
/// channel name) is [`ClientError::InvalidArgument`].
pub(crate) fn encode(frame: &ClientFrame<'_>) -> Result<String, ClientError> {
    frame.encode().map_err(|e| ClientError::InvalidArgument { reason: e.message.into_owned() })
}
