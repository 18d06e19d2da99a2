//! One live WebSocket: a select loop over the socket, the outbound queue, the
//! [`Watchdog`] deadline and `close()`; inbound frames are parsed defensively
//! and dispatched as events or ack results.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tracing::{Instrument, debug, info, info_span, warn};

use super::backoff::ReconnectPolicy;
use super::error::ClientError;
use super::events::{ClientEvent, ClientState};
use super::ice::ice_servers;
use super::resubscribe;
use super::shared::{Link, Ready, Shared, closed};
use super::url::scrub;
use super::watchdog::{Watchdog, WatchdogAction};
use metered_protocol::ServerFrame;

/// Largest inbound frame accepted from a server (1 MiB, as the SDKs).
pub(crate) const MAX_INBOUND_FRAME: usize = 1 << 20;
/// Bound on flushing our close frame and reading the server's answer.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(1);
/// The heartbeat frame.
const PING: &str = r#"{"type":"ping"}"#;

/// How a connection (attempt) ended.
pub(crate) struct Ended {
    /// Close code (1006: transport failure or timeout; an HTTP status for a
    /// refused handshake).
    pub code: u16,
    /// Close reason, scrubbed.
    pub reason: String,
    /// Whether the socket had opened.
    pub opened: bool,
}

impl Ended {
    fn unopened(code: u16, reason: impl Into<String>) -> Self {
        Self { code, reason: reason.into(), opened: false }
    }
}

/// Runs one connection to `url` until it ends.
pub(crate) async fn run(
    shared: &Arc<Shared>,
    url: &str,
    policy: &mut ReconnectPolicy,
    ready: &mut Ready,
    close_rx: &mut watch::Receiver<bool>,
) -> Ended {
    debug!(url = %scrub(url), attempt = policy.attempts(), "opening socket");
    if url.starts_with("wss:") {
        // tungstenite builds its rustls config from the process default provider;
        // install ring unless the application installed one (then this is a no-op).
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let config =
        WebSocketConfig::default().max_message_size(Some(MAX_INBOUND_FRAME)).max_frame_size(Some(MAX_INBOUND_FRAME));
    let connect = tokio::time::timeout(
        shared.opts.welcome_timeout,
        tokio_tungstenite::connect_async_with_config(url, Some(config), true),
    );
    let ws = tokio::select! {
        () = closed(close_rx) => return Ended::unopened(1000, "client requested close"),
        result = connect => match result {
            Err(_) => return Ended::unopened(1006, "connect timed out"),
            Ok(Err(WsError::Http(resp))) => return Ended::unopened(resp.status().as_u16(), "handshake rejected"),
            Ok(Err(e)) => return Ended::unopened(1006, scrub(&e.to_string())),
            Ok(Ok((ws, _))) => ws,
        },
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let mut link = Some(tx);
    let mut dog = Watchdog::new(Instant::now(), shared.opts.inactivity_timeout, shared.opts.welcome_timeout);
    let timer = tokio::time::sleep_until(dog.next_deadline());
    tokio::pin!(timer);

    // (code, reason, the close code we send ourselves)
    let (code, reason, we_close): (u16, String, Option<u16>) = loop {
        tokio::select! {
            () = closed(close_rx) => break (1000, "client requested close".into(), Some(1000)),
            Some(text) = rx.recv() => {
                if let Err(e) = sink.send(Message::text(text)).await {
                    break (1006, scrub(&e.to_string()), None);
                }
            }
            inbound = stream.next() => match inbound {
                None => break (1006, "connection lost".into(), None),
                Some(Err(WsError::Capacity(e))) => {
                    warn!(error = %e, cap = MAX_INBOUND_FRAME, "inbound frame exceeds the cap");
                    break (1009, "frame exceeded client cap".into(), Some(1009));
                }
                Some(Err(e)) => break (1006, scrub(&e.to_string()), None),
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.to_string()));
                    break (code, scrub(&reason), None);
                }
                Some(Ok(Message::Text(text))) => {
                    let now = Instant::now();
                    dog.on_inbound(now);
                    if let Some(welcome) = dispatch(shared, text.as_str(), link.is_some()) {
                        dog.on_welcome(now);
                        timer.as_mut().reset(dog.next_deadline());
                        on_welcome(shared, welcome, link.take(), policy, ready);
                    }
                }
                // Binary and control frames are not application traffic (as in the SDKs).
                Some(Ok(_)) => {}
            },
            () = &mut timer => {
                match dog.poll(Instant::now()) {
                    WatchdogAction::Idle => {}
                    WatchdogAction::Ping => {
                        // A failed ping is not fatal: the inactivity close is the backstop.
                        if let Err(e) = sink.send(Message::text(PING)).await {
                            warn!(error = %scrub(&e.to_string()), "heartbeat ping failed");
                        }
                    }
                    WatchdogAction::WelcomeTimeout => break (1000, "no welcome".into(), Some(1000)),
                    WatchdogAction::Inactive => {
                        warn!(timeout = ?shared.opts.inactivity_timeout, "inactivity timeout");
                        break (4000, "inactivity".into(), Some(4000));
                    }
                }
                timer.as_mut().reset(dog.next_deadline());
            }
        }
    };
    // Stop accepting requests on this socket and fail the in-flight ones now,
    // not after the close handshake.
    *shared.link.lock() = None;
    shared.fail_pending(code);
    let close_reason = reason.clone();
    let flush = async move {
        if let Some(ours) = we_close {
            let frame = CloseFrame { code: WsCloseCode::from(ours), reason: close_reason.into() };
            let _ = sink.send(Message::Close(Some(frame))).await;
        } else {
            // Sends tungstenite's queued answer to the server's close.
            let _ = sink.flush().await;
        }
        while stream.next().await.is_some() {}
    };
    let flush = tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, flush);
    if we_close == Some(1000) {
        // `close()` (or no welcome): finish the handshake before returning.
        let _ = flush.await;
    } else {
        // Don't delay the reconnect on a server that may be gone.
        tokio::spawn(flush.in_current_span());
    }
    Ended { code, reason, opened: true }
}

/// The first `welcome`'s fields.
struct Welcome {
    peer_id: String,
    server_time: i64,
    expires_at: Option<i64>,
    max_message_size: u64,
    metadata: Option<serde_json::Map<String, Value>>,
}

/// Dispatches one inbound text frame; returns the `welcome` when it is the
/// first one (`expect_welcome`). Never panics on any input.
fn dispatch(shared: &Shared, text: &str, expect_welcome: bool) -> Option<Welcome> {
    let frame = match ServerFrame::parse(text) {
        Ok(frame) => frame,
        Err(reason) => {
            warn!(%reason, "malformed inbound frame");
            return None;
        }
    };
    match frame {
        ServerFrame::Welcome { peer_id, expires_at, server_time, max_message_size, metadata } => {
            if expect_welcome {
                return Some(Welcome { peer_id, server_time, expires_at, max_message_size, metadata });
            }
            warn!("unexpected second welcome frame");
        }
        ServerFrame::Ack { request_id } => shared.resolve(&request_id, Ok(())),
        ServerFrame::Error { code, request_id, message } => {
            if let Some(rid) = &request_id
                && shared.has_pending(rid)
            {
                let error = ClientError::ServerRequest { code, message, request_id: rid.clone() };
                shared.resolve(rid, Err(error));
            } else if code == "unknown_type" && request_id.is_none() {
                // An old server answering our heartbeat ping.
                debug!("ignoring unknown_type without requestId (server lacks app-level ping)");
            } else {
                shared.emit(ClientEvent::ServerError { code, message, request_id });
            }
        }
        ServerFrame::Message { channel, from, data, from_metadata } => shared.emit(ClientEvent::Message {
            channel,
            sender_peer_id: from,
            data: raw_to_value(&data),
            sender_metadata: from_metadata,
        }),
        ServerFrame::Direct { from, data, from_metadata } => shared.emit(ClientEvent::Direct {
            sender_peer_id: from,
            data: raw_to_value(&data),
            sender_metadata: from_metadata,
        }),
        ServerFrame::Presence { channel, joined, left } => shared.emit(ClientEvent::Presence { channel, joined, left }),
        ServerFrame::GoingAway { retry_after_ms } => {
            info!(retry_after_ms, "server going away");
            shared.emit(ClientEvent::GoingAway { retry_after_ms });
        }
        _ => {}
    }
    None
}

fn raw_to_value(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}

fn on_welcome(
    shared: &Arc<Shared>,
    w: Welcome,
    link: Option<mpsc::UnboundedSender<String>>,
    policy: &mut ReconnectPolicy,
    ready: &mut Ready,
) {
    let is_reconnect = policy.on_welcome();
    tracing::Span::current().record("peer", w.peer_id.as_str());
    info!(peer = %w.peer_id, is_reconnect, "connected");
    *shared.peer_id.lock() = Some(w.peer_id.clone());
    shared.max_message_size.store(w.max_message_size, std::sync::atomic::Ordering::Release);
    let generation = shared.next_generation();
    if let Some(tx) = link {
        *shared.link.lock() = Some(Link { tx, generation });
    }
    shared.transition(ClientState::Connected);
    shared.emit(ClientEvent::Connected {
        peer_id: w.peer_id.clone(),
        server_time: w.server_time,
        expires_at: w.expires_at,
        is_reconnect,
        max_message_size: w.max_message_size,
        ice_servers: ice_servers(w.metadata.as_ref()),
        metadata: w.metadata,
    });
    if let Some(tx) = ready.take() {
        let _ = tx.send(Ok(()));
    }
    if is_reconnect && shared.opts.auto_resubscribe {
        let channels = shared.tracked_channels();
        if !channels.is_empty() {
            info!(count = channels.len(), "replaying subscriptions");
        }
        for channel in channels {
            let span = info_span!("resubscribe", peer = %w.peer_id, %channel);
            tokio::spawn(resubscribe::replay(shared.clone(), channel, generation).instrument(span));
        }
    }
}
