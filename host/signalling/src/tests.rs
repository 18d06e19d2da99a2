//! The client against a scripted fake server (loopback WebSocket), for what a
//! well-behaved server never does: silence, oversized and malformed frames,
//! refused replays, fatal close codes, lost acks. Tests against the real
//! messaging server live in the workspace's `tests/signalling_client.rs`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use super::*;

type Ws = WebSocketStream<TcpStream>;

const STEP: Duration = Duration::from_secs(10);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, fut).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Accepts WebSocket connections on loopback and hands each (with its request
/// URI) to the test, which scripts the server side.
struct Fake {
    url: String,
    conns: mpsc::UnboundedReceiver<(String, Ws)>,
    task: JoinHandle<()>,
}

impl Fake {
    async fn start() -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let (tx, conns) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let (uri_tx, uri_rx) = std::sync::mpsc::channel();
                    #[allow(clippy::result_large_err)] // the shape tungstenite's `Callback` demands
                    let callback = move |req: &Request, resp: Response| {
                        let _ = uri_tx.send(req.uri().to_string());
                        Ok(resp)
                    };
                    if let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await {
                        let _ = tx.send((uri_rx.try_recv().unwrap_or_default(), ws));
                    }
                });
            }
        });
        Fake { url, conns, task }
    }

    async fn next(&mut self) -> (String, Ws) {
        within("a connection", self.conns.recv()).await.expect("listener alive")
    }

    /// Asserts no connection arrives within `wait`.
    async fn none_within(&mut self, wait: Duration) {
        if let Ok(Some((uri, _))) = tokio::time::timeout(wait, self.conns.recv()).await {
            panic!("unexpected connection to {uri}");
        }
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

async fn welcome(ws: &mut Ws, peer: &str) {
    send(ws, json!({"type": "welcome", "peerId": peer, "expiresAt": null, "serverTime": 1, "maxMessageSize": 65536}))
        .await;
}

/// The next text frame as JSON (`None` once the socket closes).
async fn recv(ws: &mut Ws) -> Option<Value> {
    within("a client frame", async {
        loop {
            match ws.next().await? {
                Ok(Message::Text(t)) => return serde_json::from_str(t.as_str()).ok(),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    })
    .await
}

/// Reads until the client's close frame; returns its code.
async fn close_code(ws: &mut Ws) -> Option<u16> {
    within("the client's close", async {
        loop {
            match ws.next().await? {
                Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Err(_) => return None,
                Ok(_) => {}
            }
        }
    })
    .await
}

/// Answers the next request with an ack; returns it.
async fn ack_next(ws: &mut Ws) -> Value {
    let frame = recv(ws).await.expect("a request");
    send(ws, json!({"type": "ack", "requestId": frame["requestId"]})).await;
    frame
}

async fn close_with(ws: &mut Ws, code: u16) {
    let frame = CloseFrame { code: code.into(), reason: "scripted".into() };
    let _ = ws.send(Message::Close(Some(frame))).await;
}

fn options(fake: &Fake) -> ClientOptions {
    ClientOptions::with_api_key("pk_test key").url(fake.url.clone()).reconnect(Some(ReconnectOptions {
        initial_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
        ..ReconnectOptions::default()
    }))
}

/// Connects `opts`, scripting the welcome on the first connection.
async fn connected(fake: &mut Fake, opts: ClientOptions) -> (SignallingClient, broadcast::Receiver<ClientEvent>, Ws) {
    let client = SignallingClient::new(opts).unwrap();
    let events = client.events();
    let connecting = tokio::spawn({
        let client = client.clone();
        async move { client.connect().await }
    });
    let (uri, mut ws) = fake.next().await;
    assert_eq!(uri, "/v1?key=pk_test%20key");
    welcome(&mut ws, "p1").await;
    within("connect", connecting).await.unwrap().unwrap();
    (client, events, ws)
}

async fn next_event<T>(events: &mut broadcast::Receiver<ClientEvent>, pick: impl FnMut(ClientEvent) -> Option<T>) -> T {
    let mut pick = pick;
    within("an event", async {
        loop {
            match events.recv().await {
                Ok(e) => {
                    if let Some(v) = pick(e) {
                        return v;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("events closed"),
            }
        }
    })
    .await
}

fn disconnected(e: ClientEvent) -> Option<(u16, bool)> {
    match e {
        ClientEvent::Disconnected { code, will_reconnect, .. } => Some((code, will_reconnect)),
        _ => None,
    }
}

/// The next `Connected` that follows a reconnect.
fn reconnected(e: ClientEvent) -> Option<bool> {
    match e {
        ClientEvent::Connected { is_reconnect: true, .. } => Some(true),
        _ => None,
    }
}

#[tokio::test]
async fn silent_server_gets_heartbeats_then_an_inactivity_close_and_a_reconnect() {
    let mut fake = Fake::start().await;
    let opts = options(&fake).inactivity_timeout(Duration::from_millis(300));
    let (client, mut events, mut ws) = connected(&mut fake, opts).await;
    let started = Instant::now();
    assert_eq!(recv(&mut ws).await, Some(json!({"type": "ping"})), "heartbeat after a third of the timeout");
    assert_eq!(recv(&mut ws).await, Some(json!({"type": "ping"})), "repeated while silent");
    assert_eq!(close_code(&mut ws).await, Some(4000));
    assert!(started.elapsed() >= Duration::from_millis(250), "{:?}", started.elapsed());
    assert_eq!(next_event(&mut events, disconnected).await, (4000, true));
    let (_, mut ws2) = fake.next().await;
    welcome(&mut ws2, "p2").await;
    assert!(next_event(&mut events, reconnected).await);
    assert_eq!(client.peer_id().as_deref(), Some("p2"));
    client.close().await;
    assert_eq!(close_code(&mut ws2).await, Some(1000));
}

#[tokio::test]
async fn hostile_frames_never_panic_and_old_server_unknown_type_is_ignored() {
    let mut fake = Fake::start().await;
    let (client, mut events, mut ws) = {
        let opts = options(&fake);
        connected(&mut fake, opts).await
    };
    for junk in ["", "null", "[]", "{", "\"x\"", r#"{"type":7}"#, r#"{"type":"message"}"#, r#"{"type":"nope"}"#] {
        ws.send(Message::text(junk)).await.unwrap();
    }
    ws.send(Message::binary(vec![0u8, 1, 2])).await.unwrap();
    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    ws.send(Message::text(deep)).await.unwrap();
    send(&mut ws, json!({"type": "welcome", "peerId": "again", "serverTime": 1, "maxMessageSize": 5})).await;
    send(&mut ws, json!({"type": "ack", "requestId": "nobody-asked"})).await;
    send(&mut ws, json!({"type": "error", "code": "unknown_type", "message": "old server"})).await;
    send(&mut ws, json!({"type": "error", "code": "future_code", "requestId": "r9"})).await;
    let (code, rid) = next_event(&mut events, |e| match e {
        ClientEvent::ServerError { code, request_id, .. } => Some((code, request_id)),
        _ => None,
    })
    .await;
    assert_eq!((code.as_str(), rid.as_deref()), ("future_code", Some("r9")), "unknown_type was dropped");
    send(&mut ws, json!({"type": "message", "channel": "c", "from": "x", "data": {"ok": true}})).await;
    let data = next_event(&mut events, |e| match e {
        ClientEvent::Message { data, .. } => Some(data),
        _ => None,
    })
    .await;
    assert_eq!(data, json!({"ok": true}));
    assert_eq!(
        (client.state(), client.peer_id().as_deref(), client.max_message_size()),
        (ClientState::Connected, Some("p1"), 65536)
    );
    client.close().await;
}

#[tokio::test]
async fn oversized_inbound_frame_closes_with_1009_then_reconnects() {
    let mut fake = Fake::start().await;
    let (client, mut events, mut ws) = {
        let opts = options(&fake);
        connected(&mut fake, opts).await
    };
    let huge = json!({"type": "direct", "from": "x", "data": "y".repeat(1_100_000)});
    let _ = ws.send(Message::text(huge.to_string())).await;
    assert_eq!(next_event(&mut events, disconnected).await, (1009, true));
    let (_, mut ws2) = fake.next().await;
    welcome(&mut ws2, "p2").await;
    assert!(next_event(&mut events, reconnected).await);
    client.close().await;
}

#[tokio::test]
async fn fatal_close_codes_are_not_retried() {
    for fatal in [4001u16, 4003, 4012, 4020] {
        let mut fake = Fake::start().await;
        let (client, mut events, mut ws) = {
            let opts = options(&fake);
            connected(&mut fake, opts).await
        };
        close_with(&mut ws, fatal).await;
        assert_eq!(next_event(&mut events, disconnected).await, (fatal, false));
        let mut state = client.watch_state();
        within("closed", state.wait_for(|s| *s == ClientState::Closed)).await.unwrap();
        fake.none_within(Duration::from_millis(300)).await;
        assert_eq!(client.publish("c", json!(1)).await, Err(ClientError::NotConnected));
    }
}

#[tokio::test]
async fn over_capacity_close_is_retried_after_the_floor_not_before() {
    let mut fake = Fake::start().await;
    let (client, mut events, mut ws) = {
        let opts = options(&fake);
        connected(&mut fake, opts).await
    };
    close_with(&mut ws, 4010).await;
    assert_eq!(next_event(&mut events, disconnected).await, (4010, true));
    // The floor is 30 s (± jitter): nothing comes back within a second.
    fake.none_within(Duration::from_secs(1)).await;
    assert_eq!(client.state(), ClientState::Reconnecting);
    client.close().await;
    assert_eq!(client.state(), ClientState::Closed);
}

#[tokio::test]
async fn refused_replay_is_retried_on_the_same_connection() {
    let mut fake = Fake::start().await;
    let (client, mut events, mut ws) = {
        let opts = options(&fake);
        connected(&mut fake, opts).await
    };
    let sub = tokio::spawn({
        let client = client.clone();
        async move { client.subscribe_with("room", SubscribeOptions { include_sender_metadata: true }).await }
    });
    let first = ack_next(&mut ws).await;
    assert_eq!(first["includeSenderMetadata"], json!(true));
    within("subscribe", sub).await.unwrap().unwrap();
    close_with(&mut ws, 1011).await;
    let (_, mut ws2) = fake.next().await;
    welcome(&mut ws2, "p2").await;
    let replay = recv(&mut ws2).await.unwrap();
    assert_eq!((replay["type"].as_str(), replay["channel"].as_str()), (Some("subscribe"), Some("room")));
    assert_eq!(replay["includeSenderMetadata"], json!(true), "replayed with its options");
    let refused_at = Instant::now();
    send(&mut ws2, json!({"type": "error", "code": "backend_error", "requestId": replay["requestId"]})).await;
    let retry = ack_next(&mut ws2).await;
    assert!(refused_at.elapsed() >= Duration::from_millis(1900), "spaced ~2 s: {:?}", refused_at.elapsed());
    assert_eq!(retry["channel"], "room");
    assert_ne!(retry["requestId"], replay["requestId"]);
    assert!(next_event(&mut events, reconnected).await);
    assert_eq!(client.subscriptions(), vec!["room".to_owned()]);
    client.close().await;
}

#[tokio::test]
async fn lost_acks_time_out_and_drops_fail_pending_requests() {
    let mut fake = Fake::start().await;
    let opts = options(&fake).ack_timeout(Duration::from_millis(200));
    let (client, _events, mut ws) = connected(&mut fake, opts).await;
    let err = client.publish("c", json!(1)).await.unwrap_err();
    assert!(matches!(err, ClientError::AckTimeout { timeout, .. } if timeout == Duration::from_millis(200)));
    let pending = tokio::spawn({
        let client = client.clone();
        async move { client.send("peer-2", json!("hi")).await }
    });
    let _ = recv(&mut ws).await; // the timed-out publish
    let sent = recv(&mut ws).await.unwrap();
    assert_eq!((sent["type"].as_str(), sent["to"].as_str()), (Some("send"), Some("peer-2")));
    close_with(&mut ws, 1011).await;
    assert_eq!(within("send", pending).await.unwrap(), Err(ClientError::Disconnected { close_code: 1011 }));
    client.close().await;
}

#[tokio::test]
async fn welcome_timeout_and_refused_handshakes_fail_connect() {
    let mut fake = Fake::start().await;
    let client = SignallingClient::new(options(&fake).welcome_timeout(Duration::from_millis(200))).unwrap();
    let connecting = tokio::spawn({
        let client = client.clone();
        async move { client.connect().await }
    });
    let (_, mut ws) = fake.next().await;
    assert_eq!(close_code(&mut ws).await, Some(1000));
    let err = within("connect", connecting).await.unwrap().unwrap_err();
    assert!(matches!(err, ClientError::Connect { close_code: 1000, .. }), "{err:?}");
    assert_eq!(client.state(), ClientState::Closed);
    fake.none_within(Duration::from_millis(200)).await;
    // A closed client may connect again (the SDK allows it too).
    let again = tokio::spawn({
        let client = client.clone();
        async move { client.connect().await }
    });
    let (_, mut ws) = fake.next().await;
    welcome(&mut ws, "p1").await;
    within("connect again", again).await.unwrap().unwrap();
    assert_eq!(client.connect().await, Err(ClientError::InvalidState { state: ClientState::Connected }));
    client.close().await;
    // Nothing listens here any more: transport failure, 1006.
    let port_gone = SignallingClient::connect_with(options(&fake).url("ws://127.0.0.1:9")).await.unwrap_err();
    assert!(matches!(port_gone, ClientError::Connect { close_code: 1006, .. }), "{port_gone:?}");
    // wss: to a plain-ws server: the TLS handshake fails cleanly.
    let wss = fake.url.replace("ws://", "wss://");
    let tls = tokio::spawn(SignallingClient::connect_with(options(&fake).url(wss)));
    let tls = within("wss connect", tls).await.unwrap().unwrap_err();
    assert!(matches!(tls, ClientError::Connect { close_code: 1006, .. }), "{tls:?}");
}

#[tokio::test]
async fn token_provider_is_called_per_attempt_and_its_failures_are_reported() {
    let mut fake = Fake::start().await;
    let calls = Arc::new(AtomicU32::new(0));
    let provider = {
        let calls = calls.clone();
        move || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Ok("jwt.one".to_owned())
                } else {
                    Err(BoxError::from("GET https://auth?token=leaked failed"))
                }
            }
        }
    };
    let opts = ClientOptions::with_token_provider(provider).url(fake.url.clone()).reconnect(Some(ReconnectOptions {
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(20),
        max_attempts: 4,
        ..ReconnectOptions::default()
    }));
    let client = SignallingClient::new(opts).unwrap();
    let mut events = client.events();
    let connecting = tokio::spawn({
        let client = client.clone();
        async move { client.connect().await }
    });
    let (uri, mut ws) = fake.next().await;
    assert_eq!(uri, "/v1?token=jwt.one");
    welcome(&mut ws, "p1").await;
    within("connect", connecting).await.unwrap().unwrap();
    close_with(&mut ws, 1011).await;
    let (n, error) = next_event(&mut events, |e| match e {
        ClientEvent::TokenProviderError { consecutive_failures, error } => Some((consecutive_failures, error)),
        _ => None,
    })
    .await;
    assert_eq!(n, 3);
    assert!(error.contains("token=***") && !error.contains("leaked"), "{error}");
    let (code, reason) = next_event(&mut events, |e| match e {
        ClientEvent::Disconnected { code, reason, will_reconnect: false } => Some((code, reason)),
        _ => None,
    })
    .await;
    assert_eq!((code, reason.as_str()), (1011, "token provider failed"));
    let mut state = client.watch_state();
    within("closed", state.wait_for(|s| *s == ClientState::Closed)).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 5, "one call per attempt: 1 ok + 4 failed retries");
    // A failing provider fails the first connect without retrying.
    let failing = ClientOptions::with_token_provider(|| async { Err::<String, _>(BoxError::from("nope")) });
    let err = SignallingClient::connect_with(failing.url(fake.url.clone())).await.unwrap_err();
    assert!(matches!(err, ClientError::TokenProvider { .. }), "{err:?}");
    let slow = ClientOptions::with_token_provider(|| async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok("late".to_owned())
    });
    let slow = slow.url(fake.url.clone()).token_provider_timeout(Duration::from_millis(100));
    let err = SignallingClient::connect_with(slow).await.unwrap_err();
    assert!(matches!(&err, ClientError::TokenProvider { reason } if reason.contains("timed out")), "{err:?}");
    fake.none_within(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn close_during_connect_resolves_connect_with_closed() {
    let mut fake = Fake::start().await;
    let client = SignallingClient::new(options(&fake)).unwrap();
    let connecting = tokio::spawn({
        let client = client.clone();
        async move { client.connect().await }
    });
    let (_, _ws) = fake.next().await;
    client.close().await;
    assert_eq!(within("connect", connecting).await.unwrap(), Err(ClientError::Closed));
    assert_eq!(client.state(), ClientState::Closed);
}
