//! [`SignallingClient`]: the pub/sub client of Metered Realtime Messaging, at
//! parity with the official Python SDK's `SignallingClient`.
//!
//! - api key or async token provider, base-URL validation (`wss:`, or `ws:` for
//!   localhost), the credential kept out of `Debug` and logs;
//! - `subscribe` / `unsubscribe` / `publish` / `send` resolved by the server's
//!   `ack` (or its `error`, typed) with a timeout;
//! - typed [`ClientEvent`]s on a bounded broadcast channel ([`SignallingClient::events`]);
//! - reconnect with exponential backoff and jitter (a 30 s floor after 4010),
//!   resubscribe after reconnect, a heartbeat `ping` and an inactivity watchdog
//!   (close 4000, then reconnect); fatal close codes (4001, 4003, 4012, 4020) end
//!   the client.
//!
//! ```no_run
//! # async fn demo() -> Result<(), metered_realtime::signalling::ClientError> {
//! use metered_realtime::signalling::{ClientEvent, ClientOptions, SignallingClient};
//! let client = SignallingClient::new(ClientOptions::with_api_key("pk_live_…").url("ws://127.0.0.1:8787"))?;
//! let mut events = client.events();
//! client.connect().await?;
//! client.subscribe("room-1").await?;
//! client.publish("room-1", serde_json::json!({"hello": "world"})).await?;
//! while let Ok(event) = events.recv().await {
//!     if let ClientEvent::Message { data, .. } = event { println!("{data}"); }
//! }
//! # Ok(()) }
//! ```

mod backoff;
mod driver;
mod error;
mod events;
mod options;
mod url;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

pub use error::{ClientError, ConfigError};
pub use events::{ClientEvent, ClientState, IceServer};
pub use options::{BoxError, ClientOptions, Credential, ReconnectOptions, SubscribeOptions, TokenProvider};

use crate::protocol::ClientFrame;

/// The pub/sub client. Cheap to clone; all clones share one connection.
#[derive(Clone)]
pub struct SignallingClient {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SignallingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignallingClient").field("state", &self.state()).field("peer_id", &self.peer_id()).finish()
    }
}

/// State shared by the handles and the driver task.
pub(crate) struct Shared {
    pub(crate) opts: ClientOptions,
    pub(crate) origin: String,
    pub(crate) events: broadcast::Sender<ClientEvent>,
    pub(crate) state: watch::Sender<ClientState>,
    pub(crate) link: Mutex<Option<Link>>,
    pub(crate) pending: Mutex<HashMap<String, oneshot::Sender<Result<(), ClientError>>>>,
    /// Channels to re-subscribe after a reconnect, in subscription order.
    pub(crate) subscriptions: Mutex<Vec<(String, SubscribeOptions)>>,
    pub(crate) peer_id: Mutex<Option<String>>,
    pub(crate) max_message_size: Mutex<u64>,
    pub(crate) explicitly_closed: AtomicBool,
    pub(crate) close_tx: watch::Sender<bool>,
    pub(crate) started: AtomicBool,
}

/// The live connection's writer.
pub(crate) struct Link {
    pub(crate) tx: mpsc::UnboundedSender<String>,
}

impl Shared {
    pub(crate) fn emit(&self, event: ClientEvent) {
        // No receiver is fine: events are best-effort to whoever listens.
        let _ = self.events.send(event);
    }

    pub(crate) fn transition(&self, to: ClientState) {
        let from = *self.state.borrow();
        if from != to {
            self.state.send_replace(to);
            self.emit(ClientEvent::StateChange { from, to });
        }
    }

    pub(crate) fn fail_pending(&self, code: u16) {
        for (_, tx) in self.pending.lock().drain() {
            let _ = tx.send(Err(ClientError::Disconnected(code)));
        }
    }
}

impl SignallingClient {
    /// Builds a client (validating the options) without connecting.
    pub fn new(opts: ClientOptions) -> Result<Self, ClientError> {
        let origin = url::validate_base_url(&opts.url)?;
        if let Some(r) = &opts.reconnect
            && (r.initial_delay.is_zero()
                || r.multiplier < 1.0
                || r.max_delay < r.initial_delay
                || !(0.0..=1.0).contains(&r.jitter_ratio))
        {
            return Err(ConfigError::Option(
                "reconnect: need initial_delay > 0, multiplier >= 1, max_delay >= initial_delay, jitter in [0, 1]"
                    .into(),
            )
            .into());
        }
        if opts.inactivity_timeout.as_millis() < 30 {
            return Err(ConfigError::Option("inactivity_timeout must be at least 30 ms".into()).into());
        }
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
                max_message_size: Mutex::new(65_536),
                explicitly_closed: AtomicBool::new(false),
                close_tx,
                started: AtomicBool::new(false),
            }),
        })
    }

    /// Builds a client and connects it (resolves after `welcome`).
    pub async fn connect_with(opts: ClientOptions) -> Result<Self, ClientError> {
        let client = Self::new(opts)?;
        client.connect().await?;
        Ok(client)
    }

    /// A new receiver of the client's events (events before this call are not replayed).
    pub fn events(&self) -> broadcast::Receiver<ClientEvent> {
        self.shared.events.subscribe()
    }

    /// Connects; resolves once `welcome` arrived, or fails with the close code.
    /// The client then stays connected, reconnecting as configured, until
    /// [`SignallingClient::close`].
    pub async fn connect(&self) -> Result<(), ClientError> {
        if self.shared.started.swap(true, Ordering::AcqRel) {
            return Err(ClientError::InvalidArgument("connect: already started".into()));
        }
        let (ready_tx, ready_rx) = oneshot::channel();
        tokio::spawn(driver::supervise(self.shared.clone(), ready_tx));
        ready_rx.await.unwrap_or(Err(ClientError::Closed))
    }

    /// The current state.
    pub fn state(&self) -> ClientState {
        *self.shared.state.borrow()
    }

    /// A watch of the state, for awaiting transitions.
    pub fn watch_state(&self) -> watch::Receiver<ClientState> {
        self.shared.state.subscribe()
    }

    /// Our peer id (after the first `welcome`).
    pub fn peer_id(&self) -> Option<String> {
        self.shared.peer_id.lock().clone()
    }

    /// The server's frame cap from the last `welcome`.
    pub fn max_message_size(&self) -> u64 {
        *self.shared.max_message_size.lock()
    }

    /// Subscribes to a channel.
    pub async fn subscribe(&self, channel: &str) -> Result<(), ClientError> {
        self.subscribe_with(channel, SubscribeOptions::default()).await
    }

    /// Subscribes with options; the last subscribe of a channel wins.
    pub async fn subscribe_with(&self, channel: &str, opts: SubscribeOptions) -> Result<(), ClientError> {
        let rid = request_id();
        let frame = ClientFrame::Subscribe {
            channel,
            request_id: Some(&rid),
            include_sender_metadata: opts.include_sender_metadata,
        };
        let text = encode(&frame)?;
        // Track before sending, so a drop between send and ack doesn't lose it.
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
        let result = self.request(rid, text).await;
        if matches!(result, Err(ClientError::NotConnected)) && !was_tracked {
            self.shared.subscriptions.lock().retain(|(c, _)| c != channel);
        }
        result
    }

    /// Unsubscribes from a channel.
    pub async fn unsubscribe(&self, channel: &str) -> Result<(), ClientError> {
        let rid = request_id();
        let text = encode(&ClientFrame::Unsubscribe { channel, request_id: Some(&rid) })?;
        self.shared.subscriptions.lock().retain(|(c, _)| c != channel);
        self.request(rid, text).await
    }

    /// Publishes to a channel (every other subscriber receives it).
    pub async fn publish(&self, channel: &str, data: Value) -> Result<(), ClientError> {
        let rid = request_id();
        let text = encode(&ClientFrame::Publish { channel, data: &data, request_id: Some(&rid) })?;
        self.check_size(&text)?;
        self.request(rid, text).await
    }

    /// Sends a direct message to a peer.
    pub async fn send(&self, to_peer_id: &str, data: Value) -> Result<(), ClientError> {
        let rid = request_id();
        let text = encode(&ClientFrame::Send { to: to_peer_id, data: &data, request_id: Some(&rid) })?;
        self.check_size(&text)?;
        self.request(rid, text).await
    }

    /// Closes the connection for good (idempotent). Pending requests fail.
    pub async fn close(&self) {
        self.shared.explicitly_closed.store(true, Ordering::Release);
        self.shared.close_tx.send_replace(true);
        let mut state = self.shared.state.subscribe();
        if self.shared.started.load(Ordering::Acquire) {
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(2), state.wait_for(|s| *s == ClientState::Closed))
                    .await;
        }
        self.shared.fail_pending(1000);
        self.shared.transition(ClientState::Closed);
    }

    fn check_size(&self, text: &str) -> Result<(), ClientError> {
        let cap = self.max_message_size();
        if text.len() as u64 > cap {
            return Err(ClientError::InvalidArgument(format!(
                "frame of {} bytes exceeds maxMessageSize {cap}",
                text.len()
            )));
        }
        Ok(())
    }

    async fn request(&self, rid: String, text: String) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        {
            let link = self.shared.link.lock();
            let Some(link) = link.as_ref().filter(|_| self.state() == ClientState::Connected) else {
                return Err(ClientError::NotConnected);
            };
            self.shared.pending.lock().insert(rid.clone(), tx);
            if link.tx.send(text).is_err() {
                self.shared.pending.lock().remove(&rid);
                return Err(ClientError::NotConnected);
            }
        }
        let result = match tokio::time::timeout(self.shared.opts.ack_timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(ClientError::Disconnected(1006)),
            Err(_) => Err(ClientError::AckTimeout { request_id: rid.clone() }),
        };
        self.shared.pending.lock().remove(&rid);
        result
    }
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn encode(frame: &ClientFrame<'_>) -> Result<String, ClientError> {
    frame.encode().map_err(|e| ClientError::InvalidArgument(e.message.into_owned()))
}
