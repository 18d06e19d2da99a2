//! [`SignallingClient`]: the pub/sub client of Metered Realtime Messaging, at
//! parity with the official Python SDK's `SignallingClient` (and wire-compatible
//! with the hosted service and `metered serve`).
//!
//! - **Credential**: a publishable key ([`ClientOptions::with_api_key`]) or an
//!   async [`TokenProvider`] called once per connect attempt, bounded by a
//!   timeout. The credential never appears in `Debug` output, errors or logs
//!   (`key=`/`token=` query values are scrubbed).
//! - **URL**: a base URL without path (`wss:`, or `ws:` for `localhost`,
//!   `127.0.0.1`, `::1`); the client appends `/v1?key=` or `/v1?token=`.
//! - **Requests**: [`subscribe`](SignallingClient::subscribe) /
//!   [`subscribe_with`](SignallingClient::subscribe_with) /
//!   [`unsubscribe`](SignallingClient::unsubscribe) /
//!   [`publish`](SignallingClient::publish) / [`send`](SignallingClient::send)
//!   carry a `requestId` and resolve on its `ack`, or fail typed
//!   ([`ClientError::ServerRequest`], [`ClientError::AckTimeout`] after 15 s,
//!   [`ClientError::Disconnected`], [`ClientError::NotConnected`]).
//! - **Events**: typed [`ClientEvent`]s on a bounded broadcast channel
//!   ([`SignallingClient::events`]); a slow receiver skips events (and is told
//!   how many) instead of growing memory.
//! - **Resilience**: reconnect with exponential backoff and jitter
//!   ([`ReconnectOptions`]), a 30 s floor after close 4010, no retry after the
//!   fatal codes 4001, 4003, 4012, 4020 or after a failed *first* connect;
//!   subscriptions replayed after a reconnect (each retried up to 3 times, 2 s
//!   apart, on the same connection); a heartbeat `{"type":"ping"}` after a third
//!   of the inactivity timeout (default 60 s) of inbound silence, and a close
//!   with 4000 then a reconnect when the whole timeout passes silently.
//!   `going_away` is surfaced as [`ClientEvent::GoingAway`]; the server's close
//!   that follows triggers the reconnect.
//! - **Hostile servers**: inbound frames over 1 MiB close the connection (1009);
//!   malformed frames are logged and dropped; no server input panics.
//!
//! # Lifecycle
//!
//! `Idle → Connecting → Connected ⇄ Reconnecting → Closed` (see [`ClientState`]).
//! [`SignallingClient::connect`] resolves after `welcome`; from then on the
//! client keeps itself connected until [`SignallingClient::close`], a fatal
//! close code, or `max_attempts` failed reconnects. Requests made while not
//! connected fail fast with [`ClientError::NotConnected`].
//!
//! # Layout
//!
//! Pure logic, tested without sockets or real time: `backoff` (delay and
//! reconnect decisions) and `watchdog` (welcome deadline, heartbeat, inactivity).
//! I/O, each layer importing only the ones below it: `client` (the handle) →
//! `reconnect` (one task per client: credential → connection → backoff) →
//! `connection` (one select loop per socket, which starts `resubscribe`'s
//! replays after a reconnect) → `shared` (the state they all share: events,
//! state, the live link, pending acks, tracked subscriptions). This module does
//! not know about WebRTC; `MeteredPeer` builds on it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), metered_signalling::ClientError> {
//! use metered_signalling::{ClientEvent, ClientOptions, SignallingClient, SubscribeOptions};
//! let client = SignallingClient::new(ClientOptions::with_api_key("pk_live_…").url("ws://127.0.0.1:8787"))?;
//! let mut events = client.events(); // before connect, to see the first `Connected`
//! client.connect().await?;
//! client.subscribe_with("room-1", SubscribeOptions { include_sender_metadata: true }).await?;
//! client.publish("room-1", serde_json::json!({"hello": "world"})).await?;
//! while let Ok(event) = events.recv().await {
//!     if let ClientEvent::Message { sender_peer_id, data, .. } = event {
//!         println!("{sender_peer_id}: {data}");
//!     }
//! }
//! # Ok(()) }
//! ```

mod backoff;
mod client;
mod connection;
mod error;
mod events;
mod ice;
mod options;
mod reconnect;
mod resubscribe;
mod shared;
mod url;
mod watchdog;

#[cfg(test)]
mod tests;

pub use client::SignallingClient;
pub use error::{ClientError, ConfigError};
pub use events::{ClientEvent, ClientState, IceServer};
pub use options::{
    BoxError, ClientOptions, Credential, DEFAULT_URL, ReconnectOptions, SubscribeOptions, TokenProvider,
};
