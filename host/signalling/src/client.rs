//! [`SignallingClient`], the handle applications hold: it validates options,
//! starts the reconnect loop on `connect()`, and turns requests into frames sent
//! through the [`Shared`] state (which it shares with the reconnect loop and the
//! connection task).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{broadcast, oneshot, watch};
use tracing::{Instrument, debug_span};

use super::error::{ClientError, ConfigError};
use super::events::{ClientEvent, ClientState};
use super::options::{ClientOptions, SubscribeOptions};
use super::reconnect;
use super::shared::{Shared, encode, request_id};
use metered_protocol::ClientFrame;

/// `close()` waits this long for the reconnect loop to finish the close handshake.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

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

impl SignallingClient {
    /// Builds a client (validating the options) without connecting; take
    /// [`SignallingClient::events`] before [`SignallingClient::connect`] to see
    /// the first `Connected`.
    pub fn new(opts: ClientOptions) -> Result<Self, ConfigError> {
        let origin = opts.validate()?;
        Ok(Self { shared: Arc::new(Shared::new(opts, origin)) })
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
        self.shared.subscribe_events()
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
        self.shared.clear_close_request();
        // Synchronously, so a concurrent second connect() sees a non-idle state.
        self.shared.transition(ClientState::Connecting);
        let (ready_tx, ready_rx) = oneshot::channel();
        tokio::spawn(reconnect::run(self.shared.clone(), ready_tx));
        ready_rx.await.unwrap_or(Err(ClientError::Closed))
    }

    /// The current state.
    pub fn state(&self) -> ClientState {
        self.shared.state()
    }

    /// A watch of the state, for awaiting transitions.
    pub fn watch_state(&self) -> watch::Receiver<ClientState> {
        self.shared.watch_state()
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
        let was_tracked = self.shared.track(channel, opts);
        let result = self.request("subscribe", Some(channel), None, rid, text).await;
        if matches!(result, Err(ClientError::NotConnected)) && !was_tracked {
            self.shared.untrack(channel);
        }
        result
    }

    /// Unsubscribes from a channel (it is no longer replayed, whatever the outcome).
    pub async fn unsubscribe(&self, channel: &str) -> Result<(), ClientError> {
        let rid = request_id();
        let text = encode(&ClientFrame::Unsubscribe { channel, request_id: Some(&rid) })?;
        self.shared.untrack(channel);
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
        self.shared.request_close();
        if self.shared.running.load(Ordering::Acquire) {
            let mut state = self.shared.watch_state();
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
