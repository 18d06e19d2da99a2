//! The I/O driver: one supervisor task per client owning the connect →
//! reconnect loop, and per live connection a select loop over the socket, the
//! outbound queue, the heartbeat/inactivity deadline and `close()`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tracing::{Instrument, debug, info_span, warn};

use super::backoff;
use super::events::{ClientEvent, ClientState, IceServer};
use super::options::{Credential, SubscribeOptions};
use super::url::{connect_url, scrub};
use super::{ClientError, Link, Shared, SignallingClient};
use crate::protocol::ServerFrame;

/// Largest inbound frame accepted from a server.
const MAX_INBOUND_FRAME: usize = 1 << 20;
/// Consecutive token-provider failures before `TokenProviderError` is emitted.
const TOKEN_FAILURE_THRESHOLD: u32 = 3;
/// Replays of one subscription after a reconnect, and the spacing between them.
const REPLAY_RETRIES: u32 = 3;
const REPLAY_RETRY_DELAY: Duration = Duration::from_secs(2);

type Ready = Option<oneshot::Sender<Result<(), ClientError>>>;

struct Ended {
    code: u16,
    reason: String,
    opened: bool,
}

pub(crate) async fn supervise(shared: Arc<Shared>, ready: oneshot::Sender<Result<(), ClientError>>) {
    let span = info_span!("signalling", peer = tracing::field::Empty);
    run(shared, Some(ready)).instrument(span).await;
}

async fn run(shared: Arc<Shared>, mut ready: Ready) {
    let mut close_rx = shared.close_tx.subscribe();
    let mut attempts: u32 = 0;
    let mut was_ever_connected = false;
    let mut floor: Option<Duration> = None;
    let mut token_failures: u32 = 0;
    loop {
        if shared.explicitly_closed.load(Ordering::Acquire) {
            break;
        }
        shared.transition(if was_ever_connected { ClientState::Reconnecting } else { ClientState::Connecting });
        let ended = match resolve_url(&shared).await {
            Ok(url) => {
                token_failures = 0;
                run_connection(&shared, &url, &mut ready, &mut was_ever_connected, &mut attempts, &mut close_rx).await
            }
            Err(error) => {
                token_failures += 1;
                if token_failures >= TOKEN_FAILURE_THRESHOLD {
                    shared.emit(ClientEvent::TokenProviderError {
                        consecutive_failures: token_failures,
                        error: error.clone(),
                    });
                }
                if !backoff::should_reconnect(shared.opts.reconnect.as_ref(), None, false, was_ever_connected, attempts)
                {
                    if let Some(r) = ready.take() {
                        let _ = r.send(Err(ClientError::Connect { close_code: 1006, reason: error }));
                    }
                    break;
                }
                Ended { code: 1006, reason: error, opened: false }
            }
        };
        *shared.link.lock() = None;
        shared.fail_pending(ended.code);
        if let Some(f) = backoff::floor_after(ended.code) {
            floor = Some(f);
        }
        let explicitly_closed = shared.explicitly_closed.load(Ordering::Acquire);
        let will_reconnect = backoff::should_reconnect(
            shared.opts.reconnect.as_ref(),
            Some(ended.code),
            explicitly_closed,
            was_ever_connected,
            attempts,
        );
        if ended.opened && was_ever_connected {
            shared.emit(ClientEvent::Disconnected { code: ended.code, reason: ended.reason.clone(), will_reconnect });
        }
        if let Some(r) = ready.take() {
            let _ = r.send(Err(ClientError::Connect { close_code: ended.code, reason: ended.reason }));
        }
        if !will_reconnect {
            break;
        }
        shared.transition(ClientState::Reconnecting);
        attempts += 1;
        let Some(opts) = shared.opts.reconnect.as_ref() else { break };
        let delay = backoff::delay(opts, attempts, floor.take(), rand::random::<f64>());
        debug!(attempt = attempts, ?delay, "reconnecting");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = closed(&mut close_rx) => break,
        }
    }
    *shared.link.lock() = None;
    shared.fail_pending(1000);
    shared.transition(ClientState::Closed);
}

async fn resolve_url(shared: &Shared) -> Result<String, String> {
    match &shared.opts.credential {
        Credential::ApiKey(key) => Ok(connect_url(&shared.origin, false, key)),
        Credential::TokenProvider(provider) => {
            match tokio::time::timeout(shared.opts.token_provider_timeout, provider.token()).await {
                Ok(Ok(token)) if !token.is_empty() => Ok(connect_url(&shared.origin, true, &token)),
                Ok(Ok(_)) => Err("token provider returned an empty token".into()),
                Ok(Err(e)) => Err(scrub(&format!("token provider failed: {e}"))),
                Err(_) => Err("token provider timed out".into()),
            }
        }
    }
}

async fn run_connection(
    shared: &Arc<Shared>,
    url: &str,
    ready: &mut Ready,
    was_ever_connected: &mut bool,
    attempts: &mut u32,
    close_rx: &mut watch::Receiver<bool>,
) -> Ended {
    let config =
        WebSocketConfig::default().max_message_size(Some(MAX_INBOUND_FRAME)).max_frame_size(Some(MAX_INBOUND_FRAME));
    let connect = tokio_tungstenite::connect_async_with_config(url, Some(config), true);
    let ws = match tokio::time::timeout(shared.opts.welcome_timeout, connect).await {
        Err(_) => return Ended { code: 1006, reason: "connect timed out".into(), opened: false },
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
            return Ended { code: resp.status().as_u16(), reason: "handshake rejected".into(), opened: false };
        }
        Ok(Err(e)) => return Ended { code: 1006, reason: scrub(&e.to_string()), opened: false },
        Ok(Ok((ws, _))) => ws,
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let inactivity = shared.opts.inactivity_timeout;
    let heartbeat = (inactivity / 3).max(Duration::from_millis(10));
    let opened_at = Instant::now();
    let mut last_inbound = opened_at;
    let mut heartbeat_sent = false;
    let mut welcomed = false;
    let mut link = Some(Link { tx });
    let timer = tokio::time::sleep(heartbeat.min(shared.opts.welcome_timeout));
    tokio::pin!(timer);

    let end = loop {
        tokio::select! {
            () = closed(close_rx) => break (1000, "client closed".to_owned(), true),
            Some(text) = rx.recv() => {
                if let Err(e) = sink.send(Message::text(text)).await {
                    break (1006, scrub(&e.to_string()), false);
                }
            }
            inbound = stream.next() => {
                last_inbound = Instant::now();
                heartbeat_sent = false;
                match inbound {
                    None => break (1006, "connection lost".to_owned(), false),
                    Some(Err(e)) => {
                        let too_big = matches!(e, tokio_tungstenite::tungstenite::Error::Capacity(_));
                        if too_big {
                            let _ = sink.send(close_msg(1009, "frame too big")).await;
                            break (1009, "inbound frame too big".to_owned(), true);
                        }
                        break (1006, scrub(&e.to_string()), false);
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let (code, reason) = frame.map(|f| (u16::from(f.code), f.reason.to_string())).unwrap_or((1005, String::new()));
                        break (code, reason, false);
                    }
                    Some(Ok(Message::Text(text))) => {
                        if let Some(welcome) = handle_frame(shared, &text, welcomed) {
                            welcomed = true;
                            let is_reconnect = *was_ever_connected;
                            *was_ever_connected = true;
                            *attempts = 0;
                            on_welcome(shared, welcome, link.take(), is_reconnect);
                            if let Some(r) = ready.take() {
                                let _ = r.send(Ok(()));
                            }
                        }
                    }
                    Some(Ok(_)) => {}
                }
            }
            () = &mut timer => {
                let now = Instant::now();
                if !welcomed && now - opened_at >= shared.opts.welcome_timeout {
                    let _ = sink.send(close_msg(1000, "no welcome")).await;
                    break (1006, "no welcome within the timeout".to_owned(), false);
                }
                let silent = now - last_inbound;
                if silent >= inactivity {
                    warn!(?inactivity, "inactivity timeout");
                    let _ = sink.send(close_msg(4000, "inactivity")).await;
                    break (4000, "inactivity".to_owned(), true);
                }
                if welcomed && silent >= heartbeat && !heartbeat_sent {
                    heartbeat_sent = true;
                    if let Err(e) = sink.send(Message::text(r#"{"type":"ping"}"#)).await {
                        warn!(error = %scrub(&e.to_string()), "heartbeat ping failed");
                    }
                }
                let next = if heartbeat_sent || !welcomed { last_inbound + inactivity } else { last_inbound + heartbeat };
                let next = if welcomed { next } else { next.min(opened_at + shared.opts.welcome_timeout) };
                timer.as_mut().reset(next.max(now + Duration::from_millis(1)));
            }
        }
    };
    let (code, reason, we_closed) = end;
    if code == 1000 && we_closed {
        let _ = sink.send(close_msg(1000, "client requested close")).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), async { while stream.next().await.is_some() {} }).await;
    }
    Ended { code, reason, opened: true }
}

async fn closed(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|c| *c).await;
}

fn close_msg(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame { code: WsCloseCode::from(code), reason: reason.to_owned().into() }))
}

struct Welcome {
    peer_id: String,
    server_time: i64,
    expires_at: Option<i64>,
    max_message_size: u64,
    metadata: Option<serde_json::Map<String, Value>>,
}

fn raw_to_value(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}

/// Dispatches one inbound frame; returns the welcome when this is the first one.
fn handle_frame(shared: &Shared, text: &str, welcomed: bool) -> Option<Welcome> {
    let frame = match ServerFrame::parse(text) {
        Ok(f) => f,
        Err(reason) => {
            warn!(%reason, "malformed inbound frame");
            return None;
        }
    };
    match frame {
        ServerFrame::Welcome { peer_id, expires_at, server_time, max_message_size, metadata } => {
            if welcomed {
                warn!("unexpected second welcome");
                return None;
            }
            return Some(Welcome { peer_id, server_time, expires_at, max_message_size, metadata });
        }
        ServerFrame::Ack { request_id } => {
            if let Some(tx) = shared.pending.lock().remove(&request_id) {
                let _ = tx.send(Ok(()));
            }
        }
        ServerFrame::Error { code, request_id, message } => {
            if let Some(tx) = request_id.as_ref().and_then(|r| shared.pending.lock().remove(r)) {
                let _ = tx.send(Err(ClientError::Server { code, message }));
            } else if code == "unknown_type" && request_id.is_none() {
                debug!("ignoring unknown_type without requestId (server without app-level ping)");
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
        ServerFrame::GoingAway { retry_after_ms } => shared.emit(ClientEvent::GoingAway { retry_after_ms }),
        _ => {}
    }
    None
}

fn on_welcome(shared: &Arc<Shared>, w: Welcome, link: Option<Link>, is_reconnect: bool) {
    tracing::Span::current().record("peer", w.peer_id.as_str());
    *shared.peer_id.lock() = Some(w.peer_id.clone());
    *shared.max_message_size.lock() = w.max_message_size;
    *shared.link.lock() = link;
    shared.transition(ClientState::Connected);
    shared.emit(ClientEvent::Connected {
        peer_id: w.peer_id,
        server_time: w.server_time,
        expires_at: w.expires_at,
        is_reconnect,
        max_message_size: w.max_message_size,
        ice_servers: w.metadata.as_ref().and_then(ice_servers),
        metadata: w.metadata,
    });
    if is_reconnect && shared.opts.auto_resubscribe {
        let channels: Vec<String> = shared.subscriptions.lock().iter().map(|(c, _)| c.clone()).collect();
        for channel in channels {
            tokio::spawn(replay(shared.clone(), channel));
        }
    }
}

/// Re-subscribes one channel after a reconnect, retrying on the same connection.
async fn replay(shared: Arc<Shared>, channel: String) {
    let client = SignallingClient { shared: shared.clone() };
    for attempt in 0..=REPLAY_RETRIES {
        // Read the options fresh: a later subscribe wins; an unsubscribe cancels.
        let opts: Option<SubscribeOptions> =
            shared.subscriptions.lock().iter().find(|(c, _)| *c == channel).map(|(_, o)| *o);
        let Some(opts) = opts else { return };
        match client.subscribe_with(&channel, opts).await {
            Ok(()) => return,
            Err(ClientError::NotConnected | ClientError::Disconnected(_)) => return,
            Err(e) => {
                warn!(%channel, attempt, error = %e, "subscription replay failed");
                tokio::time::sleep(REPLAY_RETRY_DELAY).await;
                if client.state() != ClientState::Connected {
                    return;
                }
            }
        }
    }
}

/// Validated `iceServers` (scheme allow-list, caps); `None` on any bad entry.
fn ice_servers(meta: &serde_json::Map<String, Value>) -> Option<Vec<IceServer>> {
    let Value::Array(entries) = meta.get("iceServers")? else { return None };
    if entries.len() > 16 {
        return None;
    }
    fn ok_url(u: &Value) -> Option<&str> {
        u.as_str().filter(|u| {
            let l = u.to_ascii_lowercase();
            !u.is_empty() && u.len() <= 512 && ["stun:", "stuns:", "turn:", "turns:"].iter().any(|p| l.starts_with(p))
        })
    }
    entries
        .iter()
        .map(|e| {
            let e = e.as_object()?;
            let urls = match e.get("urls")? {
                Value::String(_) => vec![ok_url(e.get("urls")?)?.to_owned()],
                Value::Array(us) if !us.is_empty() => {
                    us.iter().map(|u| ok_url(u).map(str::to_owned)).collect::<Option<_>>()?
                }
                _ => return None,
            };
            let text = |k: &str| -> Option<Option<String>> {
                match e.get(k) {
                    Some(Value::String(s)) if s.len() > 1024 => None,
                    Some(Value::String(s)) => Some(Some(s.clone())),
                    _ => Some(None),
                }
            };
            Some(IceServer { urls, username: text("username")?, credential: text("credential")? })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ice_servers_are_validated() {
        let m = json!({"iceServers": [{"urls": "stun:a:3478"}, {"urls": ["turn:b", "turns:c"], "username": "u", "credential": "p"}]});
        let got = ice_servers(m.as_object().unwrap()).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].username.as_deref(), Some("u"));
        for bad in [
            json!({"iceServers": [{"urls": "http://x"}]}),
            json!({"iceServers": [{"urls": []}]}),
            json!({"iceServers": "x"}),
            json!({"iceServers": [{"urls": "stun:a", "username": "u".repeat(2000)}]}),
        ] {
            assert!(ice_servers(bad.as_object().unwrap()).is_none(), "{bad}");
        }
    }
}
