//! Raw WebSocket clients against `metered serve`: hostile frames, credentials,
//! limits, the REST control plane, and exactly-once fan-out at scale. After every
//! hostile sequence the server must still serve a fresh client, and nothing may
//! leak into another channel.

use std::collections::HashMap;
use std::time::Duration;

use e2e_support::{TestServer, within};
use futures_util::{SinkExt, StreamExt};
use metered_realtime::server::{ChannelPattern, ServerConfig, TokenRequest, mint_token};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A raw connection with a little protocol help.
struct Raw {
    ws: Ws,
    peer_id: String,
}

async fn open_url(url: String) -> Result<Ws, WsError> {
    let (ws, _) = tokio_tungstenite::connect_async(url).await?;
    Ok(ws)
}

impl Raw {
    async fn connect(server: &TestServer) -> Raw {
        Self::connect_query(server, &format!("key={}", server.key())).await
    }

    async fn connect_query(server: &TestServer, query: &str) -> Raw {
        let mut ws = within("open", open_url(format!("{}/v1?{query}", server.base_url()))).await.expect("handshake");
        let welcome = next_json(&mut ws).await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        let peer_id = welcome["peerId"].as_str().unwrap().to_owned();
        Raw { ws, peer_id }
    }

    async fn send_text(&mut self, text: impl Into<String>) {
        self.ws.send(Message::text(text.into())).await.expect("send");
    }

    async fn next(&mut self) -> Value {
        next_json(&mut self.ws).await
    }

    /// Sends a request and returns the ack or error answering it (presence and
    /// other frames in between are skipped).
    async fn request(&mut self, mut frame: Value) -> Value {
        let rid = uuid::Uuid::new_v4().to_string();
        frame["requestId"] = json!(rid);
        self.send_text(frame.to_string()).await;
        loop {
            let f = self.next().await;
            if f["requestId"] == json!(rid) {
                return f;
            }
        }
    }

    async fn subscribe(&mut self, channel: &str) {
        let r = self.request(json!({"type": "subscribe", "channel": channel})).await;
        assert_eq!(r["type"], "ack", "{r}");
        let snapshot = self.next().await;
        assert_eq!(snapshot["type"], "presence", "{snapshot}");
    }

    /// Expects the server to close the connection with `code`.
    async fn expect_close(mut self, code: u16) {
        expect_close(&mut self.ws, code).await;
    }

    /// No channel message or direct arrives within `wait` (presence and
    /// WebSocket pings may).
    async fn expect_no_messages(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, self.ws.next()).await {
            if let Message::Text(t) = &m {
                let v: Value = serde_json::from_str(t).expect("JSON");
                assert!(!matches!(v["type"].as_str(), Some("message" | "direct")), "unexpected {v}");
            }
        }
    }
}

async fn next_json(ws: &mut Ws) -> Value {
    within("next frame", async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return serde_json::from_str::<Value>(&t).expect("server sent JSON"),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    })
    .await
}

async fn expect_close(ws: &mut Ws, code: u16) {
    within("close", async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(f)))) => {
                    assert_eq!(u16::from(f.code), code, "close reason: {}", f.reason);
                    return;
                }
                Some(Ok(Message::Close(None))) | None => panic!("closed without code, expected {code}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("expected close {code}, got error {e}"),
            }
        }
    })
    .await
}

/// The server still works for a fresh pair of clients, and `bystander` (on
/// another channel) received nothing.
async fn assert_healthy(server: &TestServer, bystander: &mut Raw) {
    let mut a = Raw::connect(server).await;
    let mut b = Raw::connect(server).await;
    a.subscribe("health").await;
    b.subscribe("health").await;
    let _join = a.next().await;
    let r = b.request(json!({"type": "publish", "channel": "health", "data": "ok"})).await;
    assert_eq!(r["type"], "ack");
    let m = a.next().await;
    assert_eq!((m["type"].as_str(), m["data"].as_str()), (Some("message"), Some("ok")), "{m}");
    bystander.expect_no_messages(Duration::from_millis(100)).await;
}

async fn error_code(raw: &mut Raw, frame: Value) -> String {
    let r = raw.request(frame).await;
    assert_eq!(r["type"], "error", "{r}");
    r["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn malformed_frames_get_typed_errors_and_nothing_leaks() {
    let server = TestServer::start().await;
    let mut bystander = Raw::connect(&server).await;
    bystander.subscribe("quiet").await;
    let mut c = Raw::connect(&server).await;
    c.subscribe("noisy").await;
    for (text, code) in [
        ("not json", "malformed_message"),
        ("[1,2,3]", "malformed_message"),
        ("\"str\"", "malformed_message"),
        ("{\"type\":\"ping\",\"type\":\"ping\"}", "malformed_message"),
        ("{\"type\":42}", "malformed_message"),
        ("{\"type\":\"warp\"}", "unknown_type"),
        ("{\"type\":\"subscribe\",\"channel\":7}", "invalid_channel"),
        ("{\"type\":\"subscribe\",\"channel\":\"a\\u0000b\"}", "invalid_channel"),
        ("{\"type\":\"subscribe\",\"channel\":\"a\\u0085b\"}", "invalid_channel"),
        ("{\"type\":\"publish\",\"channel\":\"noisy\"}", "missing_data"),
        ("{\"type\":\"send\",\"to\":\"\\u0007\",\"data\":1}", "invalid_peer_id"),
        ("{\"type\":\"send\",\"to\":5,\"data\":1}", "invalid_peer_id"),
    ] {
        c.send_text(text).await;
        let r = c.next().await;
        assert_eq!((r["type"].as_str(), r["code"].as_str()), (Some("error"), Some(code)), "{text} -> {r}");
    }
    let deep =
        format!("{{\"type\":\"publish\",\"channel\":\"noisy\",\"data\":{}{}}}", "[".repeat(5000), "]".repeat(5000));
    c.send_text(deep).await;
    assert_eq!(c.next().await["code"], "malformed_message");
    let long_rid = json!({"type": "ping", "requestId": "r".repeat(200)}).to_string();
    c.send_text(long_rid).await;
    assert_eq!(c.next().await["code"], "malformed_message");
    c.ws.send(Message::binary(vec![0u8, 159, 146, 150])).await.unwrap();
    assert_eq!(c.next().await["code"], "malformed_message");
    // Errors carry the request id; a request after all that still works.
    assert_eq!(error_code(&mut c, json!({"type": "subscribe", "channel": "_internal/x"})).await, "channel_reserved");
    assert_eq!(error_code(&mut c, json!({"type": "send", "to": "ghost", "data": 1})).await, "peer_not_found");
    let pong = c.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "ack");
    assert_healthy(&server, &mut bystander).await;
    server.shutdown().await;
}

#[tokio::test]
async fn oversized_frame_closes_with_1009() {
    let server = TestServer::start().await;
    let mut bystander = Raw::connect(&server).await;
    bystander.subscribe("quiet").await;
    let mut c = Raw::connect(&server).await;
    let big = json!({"type": "publish", "channel": "x", "data": "y".repeat(70_000)}).to_string();
    let _ = c.ws.send(Message::text(big)).await;
    c.expect_close(1009).await;
    let mut c = Raw::connect(&server).await;
    let near_mib = json!({"type": "publish", "channel": "x", "data": "y".repeat(900 * 1024)}).to_string();
    let _ = c.ws.send(Message::text(near_mib)).await;
    c.expect_close(1009).await;
    // Past what the server reads at all it drops the connection (a close frame
    // cannot be delivered while the peer is still pushing the payload).
    let mut c = Raw::connect(&server).await;
    let _ = c.ws.send(Message::text("z".repeat(8 * 1024 * 1024))).await;
    let end = within("drop", c.ws.next()).await;
    assert!(!matches!(end, Some(Ok(Message::Text(_)))), "{end:?}");
    assert_healthy(&server, &mut bystander).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_flood_closes_only_the_flooder_with_4011() {
    let server = TestServer::start().await;
    let mut bystander = Raw::connect(&server).await;
    bystander.subscribe("quiet").await;
    let mut c = Raw::connect(&server).await;
    for i in 0..400 {
        if c.ws
            .feed(Message::text(json!({"type": "publish", "channel": "flood", "data": i}).to_string()))
            .await
            .is_err()
        {
            break;
        }
    }
    let _ = c.ws.flush().await;
    c.expect_close(4011).await;
    assert_healthy(&server, &mut bystander).await;
    server.shutdown().await;
}

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

async fn refused(server: &TestServer, query: &str, code: u16) {
    let mut ws = open_url(format!("{}/v1?{query}", server.base_url())).await.expect("upgrade happens before auth");
    expect_close(&mut ws, code).await;
}

#[tokio::test]
async fn bad_credentials_close_with_the_documented_codes() {
    let server = TestServer::start_with(|c| {
        c.secret_keys[0].channel_patterns = vec![ChannelPattern::try_from("room-*".to_owned()).unwrap()];
    })
    .await;
    let key = server.config.secret_keys[0].clone();
    let limits = server.config.limits.clone();
    refused(&server, "key=pk_live_wrong", 4001).await;
    refused(&server, "", 4001).await;
    refused(&server, "token=not.a.jwt", 4001).await;
    let mut forged_key = key.clone();
    forged_key.secret = "not-the-secret-value".into();
    let req = TokenRequest { peer_id: "p".into(), expires_in_secs: 60, ..Default::default() };
    let forged = mint_token(&forged_key, &req, &limits, now_secs()).unwrap().0;
    refused(&server, &format!("token={forged}"), 4001).await;
    let expired = mint_token(&key, &req, &limits, now_secs() - 120).unwrap().0;
    refused(&server, &format!("token={expired}"), 4002).await;
    let mut wide_key = key.clone();
    wide_key.channel_patterns = vec![ChannelPattern::everything()];
    let wide_req =
        TokenRequest { channels: Some(vec![ChannelPattern::try_from("admin-*".to_owned()).unwrap()]), ..req.clone() };
    let wide = mint_token(&wide_key, &wide_req, &limits, now_secs()).unwrap().0;
    refused(&server, &format!("token={wide}"), 4003).await;
    // A good token connects with its subject as peer id and its expiry.
    let good = mint_token(&key, &req, &limits, now_secs()).unwrap().0;
    let mut ws = open_url(format!("{}/v1?token={good}", server.base_url())).await.unwrap();
    let welcome = next_json(&mut ws).await;
    assert_eq!(welcome["peerId"], "p");
    assert!(welcome["expiresAt"].as_i64().unwrap() > now_secs() * 1000);
    server.shutdown().await;
}

#[tokio::test]
async fn a_token_expiring_mid_connection_closes_with_4002() {
    let server = TestServer::start().await;
    let req = TokenRequest { peer_id: "short".into(), expires_in_secs: 1, ..Default::default() };
    let t = mint_token(&server.config.secret_keys[0], &req, &server.config.limits, now_secs()).unwrap().0;
    let mut raw = Raw::connect_query(&server, &format!("token={t}")).await;
    raw.subscribe("r").await;
    raw.expect_close(4002).await;
    server.shutdown().await;
}

#[tokio::test]
async fn connection_limits_per_ip_tenant_origin_and_channels() {
    let server = TestServer::start_with(|c: &mut ServerConfig| {
        c.limits.connections_per_ip_per_minute = 3;
        c.limits.rate_limit_loopback = true;
    })
    .await;
    for _ in 0..3 {
        Raw::connect(&server).await;
    }
    match open_url(format!("{}/v1?key={}", server.base_url(), server.key())).await {
        Err(WsError::Http(resp)) => assert_eq!(resp.status(), 429),
        other => panic!("expected HTTP 429, got {:?}", other.map(|_| ())),
    }
    server.shutdown().await;

    let server = TestServer::start_with(|c| c.limits.max_connections_per_tenant = 2).await;
    let _a = Raw::connect(&server).await;
    let _b = Raw::connect(&server).await;
    refused(&server, &format!("key={}", server.key()), 4010).await;
    server.shutdown().await;

    let server = TestServer::start_with(|c| {
        c.publishable_keys[0].allowed_origins = Some(vec!["https://app.example".into()]);
    })
    .await;
    let url = format!("{}/v1?key={}", server.base_url(), server.key());
    let mut req = url.clone().into_client_request().unwrap();
    req.headers_mut().insert("origin", "https://evil.example".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    expect_close(&mut ws, 1008).await;
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("origin", "https://app.example".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "welcome");
    server.shutdown().await;

    let server = TestServer::start_with(|c| c.limits.max_channels_per_connection = 3).await;
    let mut c = Raw::connect(&server).await;
    for i in 0..3 {
        c.subscribe(&format!("c{i}")).await;
    }
    assert_eq!(error_code(&mut c, json!({"type": "subscribe", "channel": "c3"})).await, "channel_limit_exceeded");
    c.subscribe("c1").await; // re-subscribing an existing channel is fine
    server.shutdown().await;
}

#[tokio::test]
async fn rest_control_plane() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let base = server.http_url();
    let auth = server.bearer();
    let mut sub = Raw::connect(&server).await;
    sub.subscribe("news").await;

    // Auth.
    let r = http.get(format!("{base}/v1/usage")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "unauthorized");
    let r = http
        .get(format!("{base}/v1/usage"))
        .header("authorization", format!("Bearer {}", server.key()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "publishable keys are refused");

    // Tokens.
    let r = http
        .post(format!("{base}/v1/tokens"))
        .header("authorization", &auth)
        .json(&json!({"peerId": "bot", "peerMetadata": {"role": "bot"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    assert!(body["expiresAt"].as_i64().unwrap() > now_secs() * 1000);
    let mut bot = Raw::connect_query(&server, &format!("token={token}")).await;
    assert_eq!(bot.peer_id, "bot");
    bot.subscribe("news").await;
    for (body, status, code) in [
        (json!({}), 400, "invalid_request"),
        (json!({"peerId": "x", "expiresInSec": 86_401}), 400, "invalid_request"),
        (json!({"peerId": "x", "bogus": 1}), 400, "invalid_request"),
        (json!({"peerId": "x", "permissions": ["fly"]}), 400, "invalid_request"),
    ] {
        let r = http.post(format!("{base}/v1/tokens")).header("authorization", &auth).json(&body).send().await.unwrap();
        assert_eq!(r.status(), status, "{body}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"], code, "{body}");
    }
    let big = json!({"peerId": "x", "metadata": {"blob": "b".repeat(40_000)}});
    let r = http.post(format!("{base}/v1/tokens")).header("authorization", &auth).json(&big).send().await.unwrap();
    assert_eq!(r.status(), 413);

    // Peers and backend publish.
    let r: Value = http
        .get(format!("{base}/v1/channels/news/peers"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut ids: Vec<&str> = r["peers"].as_array().unwrap().iter().map(|p| p["peerId"].as_str().unwrap()).collect();
    ids.sort();
    let mut want = vec!["bot", sub.peer_id.as_str()];
    want.sort();
    assert_eq!(ids, want);
    let r =
        http.get(format!("{base}/v1/channels/_system%2Fx/peers")).header("authorization", &auth).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "channel_reserved");
    let r = http
        .post(format!("{base}/v1/channels/news/publish"))
        .header("authorization", &auth)
        .json(&json!({"data": {"headline": "hi"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.json::<Value>().await.unwrap()["delivered"], 2);
    let m = loop {
        let f = sub.next().await;
        if f["type"] == "message" {
            break f;
        }
    };
    assert_eq!((m["from"].as_str(), &m["data"]), (Some("server"), &json!({"headline": "hi"})));

    // Usage.
    let u: Value =
        http.get(format!("{base}/v1/usage")).header("authorization", &auth).send().await.unwrap().json().await.unwrap();
    assert_eq!(u["live"]["connections"], 2);
    assert_eq!(u["limits"]["max_frame_bytes"], 65536);

    // Kick.
    let r = http.delete(format!("{base}/v1/peers/bot")).header("authorization", &auth).send().await.unwrap();
    assert_eq!(r.status(), 200);
    bot.expect_close(4020).await;
    let r = http.delete(format!("{base}/v1/peers/bot")).header("authorization", &auth).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = http.get(format!("{base}/v1/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    server.shutdown().await;
}

#[tokio::test]
async fn app_ping_gets_pong_and_reading_clients_outlive_the_idle_timeout() {
    let server = TestServer::start_with(|c| {
        c.limits.ping_interval_secs = 1;
        c.limits.idle_timeout_secs = 2;
    })
    .await;
    let mut c = Raw::connect(&server).await;
    c.send_text(r#"{"type":"ping"}"#).await;
    assert_eq!(c.next().await, json!({"type": "pong"}));
    // tungstenite answers the server's WebSocket pings while we read; stay past
    // the idle timeout and the connection is still usable.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(3500);
    let mut pings = 0;
    while let Ok(frame) = tokio::time::timeout_at(deadline, c.ws.next()).await {
        match frame {
            Some(Ok(Message::Ping(_))) => pings += 1,
            other => panic!("nothing but pings expected, got {other:?}"),
        }
    }
    assert!(pings >= 1, "the server pings a silent connection");
    let r = c.request(json!({"type": "ping"})).await;
    assert_eq!(r["type"], "ack");
    server.shutdown().await;
}

#[tokio::test]
async fn two_hundred_fifty_subscribers_receive_every_message_exactly_once() {
    const SUBSCRIBERS: usize = 250;
    const PUBLISHERS: usize = 4;
    const PER_PUBLISHER: usize = 50;
    let server = TestServer::start().await;
    let mut subs = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let mut r = Raw::connect(&server).await;
        let rid = json!({"type": "subscribe", "channel": "big"});
        let ack = r.request(rid).await;
        assert_eq!(ack["type"], "ack");
        subs.push(r);
    }
    let mut pubs = Vec::new();
    for _ in 0..PUBLISHERS {
        pubs.push(Raw::connect(&server).await);
    }
    let publisher_ids: Vec<String> = pubs.iter().map(|p| p.peer_id.clone()).collect();
    let readers: Vec<_> = subs
        .into_iter()
        .map(|mut r| {
            tokio::spawn(async move {
                let mut seen: HashMap<(String, u64), u32> = HashMap::new();
                let total = PUBLISHERS * PER_PUBLISHER;
                while seen.len() < total {
                    let f = r.next().await;
                    if f["type"] == "message" {
                        let key = (f["from"].as_str().unwrap().to_owned(), f["data"]["n"].as_u64().unwrap());
                        *seen.entry(key).or_default() += 1;
                    }
                }
                r.expect_no_messages(Duration::from_millis(200)).await;
                (r, seen)
            })
        })
        .collect();
    let writers: Vec<_> = pubs
        .into_iter()
        .map(|mut p| {
            tokio::spawn(async move {
                for n in 0..PER_PUBLISHER as u64 {
                    let ack = p.request(json!({"type": "publish", "channel": "big", "data": {"n": n}})).await;
                    assert_eq!(ack["type"], "ack");
                }
                p
            })
        })
        .collect();
    let pubs: Vec<Raw> =
        within("publishers", futures_util::future::join_all(writers)).await.into_iter().map(Result::unwrap).collect();
    for reader in within("subscribers", futures_util::future::join_all(readers)).await {
        let (r, seen) = reader.unwrap();
        let peer = &r.peer_id;
        assert_eq!(seen.len(), PUBLISHERS * PER_PUBLISHER, "{peer} missed messages");
        assert!(seen.values().all(|n| *n == 1), "{peer} got duplicates");
        assert!(publisher_ids.iter().all(|p| seen.keys().any(|(from, _)| from == p)));
    }
    drop(pubs);
    server.shutdown().await;
}
