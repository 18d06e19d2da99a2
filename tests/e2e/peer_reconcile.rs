//! The roster-reconcile deadline after a reconnect, against a scripted server
//! that does what `metered serve` never does: answer the replayed subscribe
//! without the presence snapshot. The peer must re-issue the subscribe (twice,
//! as the SDKs do), keep its surviving remote peer meanwhile, and either
//! reconcile when a snapshot finally arrives or give up with a typed
//! `ReconcileTimeout` on `FatalError` — never sit in "reconnecting" forever.
#![cfg(feature = "webrtc")]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use metered_realtime::peer::{IcePolicy, MeteredPeer, PeerError, PeerEvent, PeerOptions, PeerState};
use metered_realtime::signalling::{ClientOptions, ReconnectOptions};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

type Ws = WebSocketStream<TcpStream>;

const CHANNEL: &str = "room-reconcile";
const DEADLINE: Duration = Duration::from_millis(300);

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.expect("send to client");
}

/// Accepts the next connection and sends its welcome (our id sorts first,
/// so the remote peer is the impolite one: no offer is needed from it).
async fn accept(listener: &TcpListener) -> Ws {
    let (tcp, _) = within("a connection", listener.accept()).await.unwrap();
    let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
    send(
        &mut ws,
        json!({"type": "welcome", "peerId": "aa-local", "expiresAt": null, "serverTime": 1, "maxMessageSize": 65536}),
    )
    .await;
    ws
}

/// Reads client frames, acking each request, until a `subscribe`; returns its
/// request id.
async fn next_subscribe(ws: &mut Ws) -> String {
    within("a subscribe", async {
        while let Some(Ok(msg)) = ws.next().await {
            let Message::Text(text) = msg else { continue };
            let v: Value = serde_json::from_str(&text).unwrap();
            let rid = v["requestId"].as_str().map(str::to_owned);
            if let Some(rid) = &rid {
                send(ws, json!({"type": "ack", "requestId": rid})).await;
            }
            if v["type"] == "subscribe" {
                assert_eq!(v["channel"], CHANNEL);
                return rid.unwrap_or_default();
            }
        }
        panic!("the client closed before subscribing");
    })
    .await
}

async fn snapshot(ws: &mut Ws) {
    send(ws, json!({"type": "presence", "channel": CHANNEL, "joined": [{"peerId": "zz-remote"}], "left": []})).await;
}

/// Keeps reading (and acking) a connection in the background.
fn drain(mut ws: Ws) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(text) = msg
                && let Ok(v) = serde_json::from_str::<Value>(&text)
                && let Some(rid) = v["requestId"].as_str()
            {
                let _ = ws.send(Message::text(json!({"type": "ack", "requestId": rid}).to_string())).await;
            }
        }
    })
}

/// A joined peer that has seen `zz-remote`, then lost its socket: returns the
/// peer, its events and the second connection (welcomed, subscribe replayed
/// and acked without a snapshot).
async fn reconnected_without_roster(listener: &TcpListener) -> (MeteredPeer, broadcast::Receiver<PeerEvent>, Ws) {
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let client = ClientOptions::with_api_key("pk_test").url(url).reconnect(Some(ReconnectOptions {
        initial_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
        ..ReconnectOptions::default()
    }));
    let mut opts = PeerOptions::new(client).ice(IcePolicy::LoopbackOnly);
    opts.reconcile_deadline = DEADLINE;
    let peer = MeteredPeer::with_options(opts).unwrap();
    let mut events = peer.events();
    let joining = tokio::spawn({
        let peer = peer.clone();
        async move { peer.join(CHANNEL).await }
    });
    let mut first = accept(listener).await;
    next_subscribe(&mut first).await;
    snapshot(&mut first).await;
    within("join", joining).await.unwrap().unwrap();
    wait(
        &mut events,
        "zz-remote joined",
        |ev| matches!(ev, PeerEvent::PeerJoined { peer } if peer.id() == "zz-remote"),
    )
    .await;
    drop(first); // the socket drops without a close frame: a transient loss
    wait(&mut events, "reconnecting", |ev| matches!(ev, PeerEvent::StateChange { to: PeerState::Reconnecting, .. }))
        .await;
    let mut second = accept(listener).await;
    next_subscribe(&mut second).await; // the client's own replay: no snapshot
    (peer, events, second)
}

async fn wait(events: &mut broadcast::Receiver<PeerEvent>, what: &str, pred: impl Fn(&PeerEvent) -> bool) -> PeerEvent {
    within(what, async {
        loop {
            match events.recv().await {
                Ok(ev) if pred(&ev) => return ev,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("events closed waiting for {what}"),
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_roster_is_resubscribed_twice_then_a_typed_fatal_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (peer, mut events, mut ws) = reconnected_without_roster(&listener).await;
    let t0 = tokio::time::Instant::now();
    next_subscribe(&mut ws).await;
    let first = t0.elapsed();
    assert_eq!(peer.state(), PeerState::Reconnecting);
    next_subscribe(&mut ws).await;
    assert!(first >= DEADLINE * 9 / 10, "the first forced resubscribe came after {first:?}, before its deadline");
    let _conn = drain(ws);
    let ev = wait(&mut events, "the fatal error", |ev| matches!(ev, PeerEvent::FatalError { .. })).await;
    let PeerEvent::FatalError { error } = ev else { unreachable!() };
    assert!(matches!(error, PeerError::ReconcileTimeout), "{error}");
    assert!(t0.elapsed() >= DEADLINE * 3 * 9 / 10, "gave up after {:?}", t0.elapsed());
    // The survivor was never dropped while waiting.
    assert!(peer.remote_peers().iter().any(|r| r.id() == "zz-remote"));
    peer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roster_answering_the_forced_resubscribe_reconciles() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (peer, mut events, mut ws) = reconnected_without_roster(&listener).await;
    next_subscribe(&mut ws).await; // the first forced resubscribe
    snapshot(&mut ws).await;
    wait(&mut events, "joined again", |ev| matches!(ev, PeerEvent::StateChange { to: PeerState::Joined, .. })).await;
    let _conn = drain(ws);
    // No further resubscribe, no fatal error, the survivor kept (no PeerLeft).
    tokio::time::sleep(DEADLINE * 4).await;
    while let Ok(ev) = events.try_recv() {
        assert!(!matches!(ev, PeerEvent::FatalError { .. } | PeerEvent::PeerLeft { .. }), "{ev:?}");
    }
    assert_eq!(peer.state(), PeerState::Joined);
    assert!(peer.remote_peers().iter().any(|r| r.id() == "zz-remote"));
    peer.close().await;
}
