//! The Rust `SignallingClient` against a real `metered serve` on loopback.

use std::time::Duration;

use e2e_support::{TestServer, limited_request, within};
use metered_realtime::server::{TokenRequest, mint_token};
use metered_realtime::signalling::{
    ClientError, ClientEvent, ClientOptions, ClientState, ReconnectOptions, SignallingClient, SubscribeOptions,
};
use serde_json::json;
use tokio::sync::broadcast;

fn fast_reconnect() -> Option<ReconnectOptions> {
    Some(ReconnectOptions {
        initial_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(200),
        ..ReconnectOptions::default()
    })
}

async fn client(server: &TestServer) -> (SignallingClient, broadcast::Receiver<ClientEvent>) {
    let c = SignallingClient::new(
        ClientOptions::with_api_key(server.key()).url(server.base_url()).reconnect(fast_reconnect()),
    )
    .expect("options");
    let events = c.events();
    within("connect", c.connect()).await.expect("connect");
    (c, events)
}

/// Waits for the first event `pick` accepts.
async fn next<T>(
    events: &mut broadcast::Receiver<ClientEvent>,
    what: &str,
    mut pick: impl FnMut(ClientEvent) -> Option<T>,
) -> T {
    within(what, async {
        loop {
            match events.recv().await {
                Ok(e) => {
                    if let Some(v) = pick(e) {
                        return v;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => panic!("events closed while waiting for {what}"),
            }
        }
    })
    .await
}

#[tokio::test]
async fn publish_reaches_other_subscribers_but_not_the_publisher() {
    let server = TestServer::start().await;
    let (a, mut a_events) = client(&server).await;
    let (b, mut b_events) = client(&server).await;
    assert_eq!(a.state(), ClientState::Connected);
    assert_eq!(a.max_message_size(), 65536);
    a.subscribe("room").await.unwrap();
    b.subscribe("room").await.unwrap();
    a.publish("room", json!({"n": 1})).await.unwrap();
    let (from, data) = next(&mut b_events, "message at b", |e| match e {
        ClientEvent::Message { channel, sender_peer_id, data, .. } if channel == "room" => Some((sender_peer_id, data)),
        _ => None,
    })
    .await;
    assert_eq!(from, a.peer_id().unwrap());
    assert_eq!(data, json!({"n": 1}));
    b.publish("room", json!("from b")).await.unwrap();
    let data = next(&mut a_events, "message at a", |e| match e {
        ClientEvent::Message { data, .. } => Some(data),
        _ => None,
    })
    .await;
    assert_eq!(data, json!("from b"), "a must not see its own message first");
    a.close().await;
    b.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn presence_snapshot_and_deltas() {
    let server = TestServer::start().await;
    let (a, mut a_events) = client(&server).await;
    let (b, mut b_events) = client(&server).await;
    a.subscribe("lobby").await.unwrap();
    let snapshot = next(&mut a_events, "snapshot", |e| match e {
        ClientEvent::Presence { joined, left, .. } => Some((joined, left)),
        _ => None,
    })
    .await;
    assert!(snapshot.0.is_empty() && snapshot.1.is_empty());
    b.subscribe("lobby").await.unwrap();
    let b_snapshot = next(&mut b_events, "b snapshot", |e| match e {
        ClientEvent::Presence { joined, .. } => Some(joined),
        _ => None,
    })
    .await;
    assert_eq!(b_snapshot.iter().map(|p| p.peer_id.clone()).collect::<Vec<_>>(), vec![a.peer_id().unwrap()]);
    let joined = next(&mut a_events, "join delta", |e| match e {
        ClientEvent::Presence { joined, .. } if !joined.is_empty() => Some(joined),
        _ => None,
    })
    .await;
    assert_eq!(joined[0].peer_id, b.peer_id().unwrap());
    b.unsubscribe("lobby").await.unwrap();
    let left = next(&mut a_events, "leave delta", |e| match e {
        ClientEvent::Presence { left, .. } if !left.is_empty() => Some(left),
        _ => None,
    })
    .await;
    assert_eq!(left[0].peer_id, b.peer_id().unwrap());
    a.close().await;
    b.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn direct_messages_and_sender_metadata_from_tokens() {
    let server = TestServer::start().await;
    let meta = json!({"name": "Ada"}).as_object().cloned();
    let t = server.token(&TokenRequest {
        peer_id: "ada".into(),
        expires_in_secs: 600,
        peer_metadata: meta.clone(),
        ..Default::default()
    });
    let ada = SignallingClient::new(
        ClientOptions::with_token_provider(move || {
            let t = t.clone();
            async move { Ok(t) }
        })
        .url(server.base_url()),
    )
    .unwrap();
    let mut ada_events = ada.events();
    ada.connect().await.unwrap();
    let expires = next(&mut ada_events, "connected", |e| match e {
        ClientEvent::Connected { peer_id, expires_at, .. } => Some((peer_id, expires_at)),
        _ => None,
    })
    .await;
    assert_eq!(expires.0, "ada");
    assert!(expires.1.is_some());
    let (bob, mut bob_events) = client(&server).await;
    ada.send(&bob.peer_id().unwrap(), json!({"hi": "bob"})).await.unwrap();
    let (from, data, sender_meta) = next(&mut bob_events, "direct", |e| match e {
        ClientEvent::Direct { sender_peer_id, data, sender_metadata } => Some((sender_peer_id, data, sender_metadata)),
        _ => None,
    })
    .await;
    assert_eq!((from.as_str(), data), ("ada", json!({"hi": "bob"})));
    assert_eq!(sender_meta, meta);
    // Opted-in channel messages carry it too.
    bob.subscribe_with("r", SubscribeOptions { include_sender_metadata: true }).await.unwrap();
    ada.publish("r", json!(1)).await.unwrap();
    let m = next(&mut bob_events, "message with metadata", |e| match e {
        ClientEvent::Message { sender_metadata, .. } => Some(sender_metadata),
        _ => None,
    })
    .await;
    assert_eq!(m, meta);
    let err = ada.send("nobody-here", json!(1)).await.unwrap_err();
    assert!(matches!(&err, ClientError::ServerRequest { code, .. } if code == "peer_not_found"), "{err:?}");
    ada.close().await;
    bob.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn server_errors_are_typed() {
    let server = TestServer::start().await;
    let (a, _) = client(&server).await;
    for (channel, code) in [("_metered/x", "channel_reserved"), ("_System/y", "channel_reserved")] {
        match a.subscribe(channel).await {
            Err(ClientError::ServerRequest { code: got, .. }) => assert_eq!(got, code),
            other => panic!("{channel}: {other:?}"),
        }
    }
    assert!(matches!(a.subscribe("").await, Err(ClientError::InvalidArgument { .. })));
    assert!(matches!(a.send("bad\u{7}peer", json!(1)).await, Err(ClientError::InvalidArgument { .. })));
    let big = "x".repeat(70_000);
    assert!(matches!(a.publish("room", json!(big)).await, Err(ClientError::MessageTooLarge { max: 65536, .. })));
    let t = server.token(&limited_request("limited"));
    let limited = SignallingClient::connect_with(
        ClientOptions::with_token_provider(move || {
            let t = t.clone();
            async move { Ok(t) }
        })
        .url(server.base_url()),
    )
    .await
    .unwrap();
    let code = |r: Result<(), ClientError>| match r {
        Err(ClientError::ServerRequest { code, .. }) => code,
        other => panic!("{other:?}"),
    };
    assert_eq!(code(limited.subscribe("other").await), "channel_not_authorized");
    assert_eq!(code(limited.publish("room-1", json!(1)).await), "action_not_permitted");
    limited.subscribe("room-1").await.unwrap();
    a.close().await;
    limited.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn bad_and_expired_credentials_fail_connect_with_their_close_codes() {
    let server = TestServer::start().await;
    let bad = SignallingClient::connect_with(ClientOptions::with_api_key("pk_live_nope").url(server.base_url())).await;
    assert!(matches!(bad, Err(ClientError::Connect { close_code: 4001, .. })), "{bad:?}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let (expired, _) = mint_token(
        &server.config.secret_keys[0],
        &TokenRequest { peer_id: "late".into(), expires_in_secs: 1, ..Default::default() },
        &server.config.limits,
        now - 100,
    )
    .unwrap();
    let r = SignallingClient::connect_with(
        ClientOptions::with_token_provider(move || {
            let t = expired.clone();
            async move { Ok(t) }
        })
        .url(server.base_url()),
    )
    .await;
    assert!(matches!(r, Err(ClientError::Connect { close_code: 4002, .. })), "{r:?}");
    assert!(SignallingClient::new(ClientOptions::with_api_key("k").url("ws://example.com")).is_err());
    server.shutdown().await;
}

#[tokio::test]
async fn reconnects_and_resubscribes_after_a_server_restart() {
    let server = TestServer::start().await;
    let config = server.config.clone();
    let (a, mut a_events) = client(&server).await;
    a.subscribe("room").await.unwrap();
    server.shutdown().await;
    let retry = next(&mut a_events, "going_away", |e| match e {
        ClientEvent::GoingAway { retry_after_ms } => Some(retry_after_ms),
        _ => None,
    })
    .await;
    assert_eq!(retry, 1000);
    let (code, will) = next(&mut a_events, "disconnected", |e| match e {
        ClientEvent::Disconnected { code, will_reconnect, .. } => Some((code, will_reconnect)),
        _ => None,
    })
    .await;
    assert_eq!((code, will), (1001, true));
    // Same port, same keys.
    let server = metered_realtime::server::Server::bind(config.clone()).await.expect("rebind");
    let server = TestServer { server, config };
    let again = next(&mut a_events, "reconnected", |e| match e {
        ClientEvent::Connected { is_reconnect, .. } => Some(is_reconnect),
        _ => None,
    })
    .await;
    assert!(again);
    // The replayed subscription gets a snapshot; then messages flow again.
    next(&mut a_events, "snapshot after resubscribe", |e| matches!(e, ClientEvent::Presence { .. }).then_some(()))
        .await;
    let (b, _) = client(&server).await;
    b.publish("room", json!("after restart")).await.unwrap();
    let data = next(&mut a_events, "message after restart", |e| match e {
        ClientEvent::Message { data, .. } => Some(data),
        _ => None,
    })
    .await;
    assert_eq!(data, json!("after restart"));
    a.close().await;
    b.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn admin_kick_is_fatal_and_not_retried() {
    let server = TestServer::start().await;
    let (a, mut events) = client(&server).await;
    let peer = a.peer_id().unwrap();
    let resp = reqwest::Client::new()
        .delete(format!("{}/v1/peers/{peer}", server.http_url()))
        .header("authorization", server.bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (code, will) = next(&mut events, "kicked", |e| match e {
        ClientEvent::Disconnected { code, will_reconnect, .. } => Some((code, will_reconnect)),
        _ => None,
    })
    .await;
    assert_eq!((code, will), (4020, false));
    let mut state = a.watch_state();
    within("closed", state.wait_for(|s| *s == ClientState::Closed)).await.unwrap();
    assert!(matches!(a.publish("x", json!(1)).await, Err(ClientError::NotConnected)));
    server.shutdown().await;
}

#[tokio::test]
async fn heartbeat_keeps_an_idle_connection_alive() {
    let server = TestServer::start().await;
    let c = SignallingClient::new(
        ClientOptions::with_api_key(server.key()).url(server.base_url()).inactivity_timeout(Duration::from_millis(300)),
    )
    .unwrap();
    let mut events = c.events();
    c.connect().await.unwrap();
    // Several inactivity windows of silence from the application: the heartbeat
    // ping's pong keeps the watchdog quiet.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    while let Ok(e) = events.try_recv() {
        assert!(!matches!(e, ClientEvent::Disconnected { .. }), "unexpected {e:?}");
    }
    assert_eq!(c.state(), ClientState::Connected);
    c.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn welcome_fields_and_concurrent_requests_from_clones() {
    let server = TestServer::start().await;
    let c = SignallingClient::new(ClientOptions::with_api_key(server.key()).url(server.base_url())).unwrap();
    let mut events = c.events();
    assert_eq!(c.state(), ClientState::Idle);
    within("connect", c.connect()).await.unwrap();
    let (peer, server_time, expires_at, is_reconnect, max) = next(&mut events, "connected", |e| match e {
        ClientEvent::Connected { peer_id, server_time, expires_at, is_reconnect, max_message_size, .. } => {
            Some((peer_id, server_time, expires_at, is_reconnect, max_message_size))
        }
        _ => None,
    })
    .await;
    assert_eq!(Some(peer), c.peer_id());
    assert!((server_time - e2e_support::now_secs() * 1000).abs() < 60_000, "{server_time}");
    assert_eq!((expires_at, is_reconnect, max), (None, false, 65536), "a key does not expire");
    let (listener, mut l_events) = client(&server).await;
    listener.subscribe("fan").await.unwrap();
    c.subscribe("fan").await.unwrap();
    // The MeteredPeer pattern: many tasks sending through clones of one client.
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let c = c.clone();
            tokio::spawn(async move { c.publish("fan", json!({"n": n})).await })
        })
        .collect();
    for t in tasks {
        within("publish", t).await.unwrap().unwrap();
    }
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 20 {
        let (n, meta) = next(&mut l_events, "fan-out", |e| match e {
            ClientEvent::Message { data, sender_metadata, .. } => Some((data["n"].as_u64(), sender_metadata)),
            _ => None,
        })
        .await;
        assert_eq!(meta, None, "no sender metadata without include_sender_metadata");
        seen.insert(n.unwrap());
    }
    c.unsubscribe("fan").await.unwrap();
    assert!(c.subscriptions().is_empty());
    c.close().await;
    c.close().await; // idempotent
    assert_eq!(c.state(), ClientState::Closed);
    assert_eq!(c.publish("fan", json!(1)).await, Err(ClientError::NotConnected));
    listener.close().await;
    server.shutdown().await;
}
