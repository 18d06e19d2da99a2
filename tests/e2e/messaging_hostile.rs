//! Raw WebSocket clients against `metered serve`: hostile frames, credentials,
//! limits, the REST control plane, and exactly-once fan-out at scale. After every
//! hostile sequence the server must still serve a fresh client, and nothing may
//! leak into another channel (or another tenant).

use std::collections::HashMap;
use std::time::Duration;

use e2e_support::{TestServer, now_secs, within};
use futures_util::{SinkExt, StreamExt};
use metered_realtime::server::{Action, ChannelPattern, PublishableKey, ServerConfig, TokenRequest, mint_token};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a "nothing arrives" check listens.
const QUIET: Duration = Duration::from_millis(150);

/// A raw connection with a little protocol help.
struct Raw {
    ws: Ws,
    peer_id: String,
}

/// Opens `/v1?{query}`, optionally with an `Origin` header; the upgrade happens
/// before authentication, so refusals arrive as close frames.
async fn open(server: &TestServer, query: &str, origin: Option<&str>) -> Result<Ws, WsError> {
    let mut req = format!("{}/v1?{query}", server.base_url()).into_client_request()?;
    if let Some(origin) = origin {
        req.headers_mut().insert("origin", origin.parse().expect("origin header"));
    }
    let (ws, _) = within("WebSocket handshake", tokio_tungstenite::connect_async(req)).await?;
    Ok(ws)
}

impl Raw {
    /// Connects with the dev publishable key.
    async fn connect(server: &TestServer) -> Raw {
        Self::connect_query(server, &format!("key={}", server.key())).await
    }

    /// Connects with `query` and expects a `welcome`.
    async fn connect_query(server: &TestServer, query: &str) -> Raw {
        Self::welcomed(open(server, query, None).await.expect("handshake")).await
    }

    async fn welcomed(mut ws: Ws) -> Raw {
        let welcome = next_json(&mut ws).await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        let peer_id = welcome["peerId"].as_str().expect("peerId").to_owned();
        Raw { ws, peer_id }
    }

    async fn send_text(&mut self, text: impl Into<String>) {
        self.ws.send(Message::text(text.into())).await.expect("send");
    }

    async fn next(&mut self) -> Value {
        next_json(&mut self.ws).await
    }

    /// The next frame of `kind`, skipping others (presence deltas, acks).
    async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let f = self.next().await;
            if f["type"] == kind {
                return f;
            }
        }
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

    /// Subscribes and consumes the ack and the presence snapshot (which it returns).
    async fn subscribe(&mut self, channel: &str) -> Value {
        let r = self.request(json!({"type": "subscribe", "channel": channel})).await;
        assert_eq!(r["type"], "ack", "{r}");
        let snapshot = self.next().await;
        assert_eq!((snapshot["type"].as_str(), snapshot["channel"].as_str()), (Some("presence"), Some(channel)));
        snapshot
    }

    /// Publishes and expects an ack.
    async fn publish(&mut self, channel: &str, data: Value) {
        let r = self.request(json!({"type": "publish", "channel": channel, "data": data})).await;
        assert_eq!(r["type"], "ack", "{r}");
    }

    /// The error code answering `frame`.
    async fn error_code(&mut self, frame: Value) -> String {
        let r = self.request(frame).await;
        assert_eq!(r["type"], "error", "{r}");
        r["code"].as_str().expect("error code").to_owned()
    }

    /// Expects the server to close the connection with `code`.
    async fn expect_close(mut self, code: u16) {
        expect_close(&mut self.ws, code).await;
    }

    /// No channel message or direct arrives within `wait` (presence and
    /// WebSocket pings may), and the connection stays open and answers a ping.
    async fn expect_no_messages(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(m) = tokio::time::timeout_at(deadline, self.ws.next()).await {
            match m {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).expect("server sent JSON");
                    assert!(!matches!(v["type"].as_str(), Some("message" | "direct")), "leaked: {v}");
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("connection ended while listening for leaks: {other:?}"),
            }
        }
        let r = self.request(json!({"type": "ping"})).await;
        assert_eq!(r["type"], "ack", "{r}");
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

/// Opens `/v1?{query}` and expects the server to refuse it with close `code`.
async fn refused(server: &TestServer, query: &str, code: u16) {
    let mut ws = open(server, query, None).await.expect("upgrade happens before auth");
    expect_close(&mut ws, code).await;
}

/// A subscriber on channel `quiet`, used to prove nothing leaks out of a
/// hostile sequence on other channels.
async fn bystander(server: &TestServer) -> Raw {
    let mut b = Raw::connect(server).await;
    b.subscribe("quiet").await;
    b
}

/// The server still works for a fresh pair of clients, and `bystander` (on
/// another channel) is still connected and received nothing.
async fn assert_healthy(server: &TestServer, bystander: &mut Raw) {
    let mut a = Raw::connect(server).await;
    let mut b = Raw::connect(server).await;
    a.subscribe("health").await;
    let snapshot = b.subscribe("health").await;
    assert_eq!(snapshot["joined"], json!([{"peerId": a.peer_id}]));
    b.publish("health", json!("ok")).await;
    let m = a.next_of("message").await;
    assert_eq!(m, json!({"type": "message", "channel": "health", "from": b.peer_id, "data": "ok"}));
    bystander.expect_no_messages(QUIET).await;
}

/// Secret-key bearer header of `server`.
fn rest(server: &TestServer) -> (reqwest::Client, String, String) {
    (reqwest::Client::new(), server.http_url(), server.bearer())
}

/// Waits until the server counts `n` live connections of the dev tenant.
async fn wait_for_live_connections(server: &TestServer, n: u64) {
    let (http, base, auth) = rest(server);
    within("live connection count", async {
        loop {
            let u: Value = http
                .get(format!("{base}/v1/usage"))
                .header("authorization", &auth)
                .send()
                .await
                .expect("usage")
                .json()
                .await
                .expect("usage JSON");
            if u["live"]["connections"] == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

fn pattern(p: &str) -> ChannelPattern {
    ChannelPattern::try_from(p.to_owned()).expect("channel pattern")
}

fn token_request(peer_id: &str) -> TokenRequest {
    TokenRequest { peer_id: peer_id.into(), expires_in_secs: 60, ..Default::default() }
}

// ---------------------------------------------------------------- hostile frames

#[tokio::test]
async fn malformed_frames_get_typed_errors_and_nothing_leaks() {
    let server = TestServer::start().await;
    let mut bystander = bystander(&server).await;
    let mut c = Raw::connect(&server).await;
    c.subscribe("noisy").await;
    for (text, code) in [
        ("not json", "malformed_message"),
        ("{\"type\":\"ping\"", "malformed_message"),
        ("", "malformed_message"),
        ("[1,2,3]", "malformed_message"),
        ("\"str\"", "malformed_message"),
        ("null", "malformed_message"),
        ("{\"type\":\"ping\",\"type\":\"ping\"}", "malformed_message"),
        ("{}", "malformed_message"),
        ("{\"type\":42}", "malformed_message"),
        ("{\"type\":null}", "malformed_message"),
        ("{\"type\":\"ping\",\"requestId\":7}", "malformed_message"),
        ("{\"type\":\"ping\",\"requestId\":\"\"}", "malformed_message"),
        ("{\"type\":\"warp\"}", "unknown_type"),
        ("{\"type\":\"SUBSCRIBE\",\"channel\":\"x\"}", "unknown_type"),
        ("{\"type\":\"subscribe\"}", "invalid_channel"),
        ("{\"type\":\"subscribe\",\"channel\":7}", "invalid_channel"),
        ("{\"type\":\"subscribe\",\"channel\":[\"noisy\"]}", "invalid_channel"),
        ("{\"type\":\"subscribe\",\"channel\":\"\"}", "invalid_channel"),
        ("{\"type\":\"subscribe\",\"channel\":\"a\\u0000b\"}", "invalid_channel"),
        ("{\"type\":\"subscribe\",\"channel\":\"a\\nb\"}", "invalid_channel"),
        ("{\"type\":\"subscribe\",\"channel\":\"a\\u007fb\"}", "invalid_channel"),
        ("{\"type\":\"subscribe\",\"channel\":\"a\\u0085b\"}", "invalid_channel"),
        ("{\"type\":\"subscribe\",\"channel\":\"quiet\",\"includeSenderMetadata\":\"yes\"}", "malformed_message"),
        ("{\"type\":\"publish\",\"channel\":\"noisy\"}", "missing_data"),
        ("{\"type\":\"publish\",\"data\":1}", "invalid_channel"),
        ("{\"type\":\"send\",\"data\":1}", "invalid_peer_id"),
        ("{\"type\":\"send\",\"to\":\"\\u0007\",\"data\":1}", "invalid_peer_id"),
        ("{\"type\":\"send\",\"to\":5,\"data\":1}", "invalid_peer_id"),
    ] {
        c.send_text(text).await;
        let r = c.next().await;
        assert_eq!((r["type"].as_str(), r["code"].as_str()), (Some("error"), Some(code)), "{text:?} -> {r}");
    }
    let too_long_channel = "c".repeat(257);
    assert_eq!(c.error_code(json!({"type": "subscribe", "channel": too_long_channel})).await, "invalid_channel");
    assert_eq!(c.error_code(json!({"type": "send", "to": "p".repeat(129), "data": 1})).await, "invalid_peer_id");
    // `"data": null` is present data, not missing data.
    c.publish("noisy", Value::Null).await;
    assert_healthy(&server, &mut bystander).await;
    server.shutdown().await;
}

#[tokio::test]
async fn deep_nesting_huge_request_ids_and_binary_frames_are_refused_without_harm() {
    let server = TestServer::start().await;
    let mut bystander = bystander(&server).await;
    let mut c = Raw::connect(&server).await;
    let deep =
        format!("{{\"type\":\"publish\",\"channel\":\"noisy\",\"data\":{}{}}}", "[".repeat(5000), "]".repeat(5000));
    c.send_text(deep).await;
    assert_eq!(c.next().await["code"], "malformed_message");
    let deep_objects = format!("{}{}", "{\"a\":".repeat(3000), "}".repeat(3000));
    c.send_text(deep_objects).await;
    assert_eq!(c.next().await["code"], "malformed_message");
    c.send_text(json!({"type": "ping", "requestId": "r".repeat(129)}).to_string()).await;
    let r = c.next().await;
    assert_eq!((r["code"].as_str(), r.get("requestId")), (Some("malformed_message"), None), "{r}");
    c.send_text(json!({"type": "ping", "requestId": "r".repeat(60_000)}).to_string()).await;
    assert_eq!(c.next().await["code"], "malformed_message");
    let longest_ok = "r".repeat(128);
    c.send_text(json!({"type": "ping", "requestId": longest_ok}).to_string()).await;
    assert_eq!(c.next().await, json!({"type": "pong"}));
    assert_eq!(c.next().await, json!({"type": "ack", "requestId": longest_ok}));
    c.ws.send(Message::binary(vec![0u8, 159, 146, 150])).await.expect("send binary");
    assert_eq!(c.next().await["code"], "malformed_message");
    c.ws.send(Message::binary(br#"{"type":"ping"}"#.to_vec())).await.expect("send binary");
    assert_eq!(c.next().await["code"], "malformed_message");
    // Errors carry the request id; requests after all that still work.
    assert_eq!(c.error_code(json!({"type": "subscribe", "channel": "_internal/x"})).await, "channel_reserved");
    assert_eq!(c.error_code(json!({"type": "send", "to": "ghost", "data": 1})).await, "peer_not_found");
    assert_healthy(&server, &mut bystander).await;
    server.shutdown().await;
}

#[tokio::test]
async fn reserved_prefixes_are_refused_in_any_case() {
    let server = TestServer::start().await;
    let mut bystander = bystander(&server).await;
    let mut c = Raw::connect(&server).await;
    for channel in ["_metered/x", "_METERED/x", "_internal/a/b", "_System/x", "_system/"] {
        for ty in ["subscribe", "publish", "unsubscribe"] {
            let code = c.error_code(json!({"type": ty, "channel": channel, "data": 1})).await;
            assert_eq!(code, "channel_reserved", "{ty} {channel}");
        }
    }
    // Look-alikes are ordinary channels.
    c.subscribe("_meteredx").await;
    c.subscribe("metered/x").await;
    assert_healthy(&server, &mut bystander).await;
    server.shutdown().await;
}

#[tokio::test]
async fn an_oversized_frame_closes_with_1009() {
    let server = TestServer::start().await;
    let mut bystander = bystander(&server).await;
    for size in [64 * 1024 + 1, 70_000, 900 * 1024] {
        let mut c = Raw::connect(&server).await;
        let _ = c.ws.send(Message::text("y".repeat(size))).await;
        c.expect_close(1009).await;
    }
    // A frame of exactly the limit is accepted.
    let mut c = Raw::connect(&server).await;
    let filler = 64 * 1024 - r#"{"type":"publish","channel":"x","data":""}"#.len();
    let exact = json!({"type": "publish", "channel": "x", "data": "y".repeat(filler)}).to_string();
    assert_eq!(exact.len(), 64 * 1024);
    c.send_text(exact).await;
    c.send_text(r#"{"type":"ping","requestId":"after"}"#).await;
    assert_eq!(c.next_of("ack").await["requestId"], "after");
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
    let mut bystander = bystander(&server).await;
    // A neighbour on the same channel, same key and same IP is not affected.
    let mut neighbour = Raw::connect(&server).await;
    neighbour.subscribe("flood").await;
    let mut c = Raw::connect(&server).await;
    c.subscribe("flood").await;
    for i in 0..400 {
        let f = json!({"type": "publish", "channel": "flood", "data": i}).to_string();
        if c.ws.feed(Message::text(f)).await.is_err() {
            break;
        }
    }
    let _ = c.ws.flush().await;
    c.expect_close(4011).await;
    // The neighbour got the burst's worth (less the subscribe) in order, then
    // the flooder's departure, then nothing more.
    let mut got = Vec::new();
    loop {
        let f = neighbour.next().await;
        match f["type"].as_str() {
            Some("message") => got.push(f["data"].as_u64().expect("number")),
            Some("presence") if f["left"].as_array().is_some_and(|l| !l.is_empty()) => break,
            _ => {}
        }
    }
    assert!((199..400).contains(&got.len()), "{} messages passed the limiter", got.len());
    assert_eq!(got, (0..got.len() as u64).collect::<Vec<_>>());
    neighbour.expect_no_messages(QUIET).await;
    assert_healthy(&server, &mut bystander).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_within_the_burst_is_not_rate_limited() {
    let server = TestServer::start().await;
    let mut c = Raw::connect(&server).await;
    for i in 0..150 {
        c.send_text(json!({"type": "publish", "channel": "steady", "data": i}).to_string()).await;
    }
    let r = c.request(json!({"type": "ping"})).await;
    assert_eq!(r["type"], "ack", "{r}");
    server.shutdown().await;
}

// ---------------------------------------------------------------- credentials

#[tokio::test]
async fn bad_keys_and_bad_tokens_close_with_4001() {
    let server = TestServer::start().await;
    let mut bystander = bystander(&server).await;
    let key = server.config.secret_keys[0].clone();
    let limits = server.config.limits.clone();
    refused(&server, "key=pk_live_wrong", 4001).await;
    refused(&server, "", 4001).await;
    refused(&server, "key=", 4001).await;
    refused(&server, "token=not.a.jwt", 4001).await;
    refused(&server, &format!("token={}", "a".repeat(20_000)), 4001).await;
    let mut forged_key = key.clone();
    forged_key.secret = "not-the-secret-value".into();
    let forged = mint_token(&forged_key, &token_request("p"), &limits, now_secs()).expect("mint").0;
    refused(&server, &format!("token={forged}"), 4001).await;
    let mut unknown_kid = key.clone();
    unknown_kid.id = "sk_id_unknown".into();
    let unknown = mint_token(&unknown_kid, &token_request("p"), &limits, now_secs()).expect("mint").0;
    refused(&server, &format!("token={unknown}"), 4001).await;
    // The right secret under another algorithm is still refused.
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS384);
    header.kid = Some(key.id.clone());
    let claims = json!({"sub": "p", "exp": now_secs() + 60});
    let hs384 = jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(key.secret.as_bytes()))
        .expect("encode");
    refused(&server, &format!("token={hs384}"), 4001).await;
    assert_healthy(&server, &mut bystander).await;
    server.shutdown().await;
}

/// Signs arbitrary `claims` with the dev secret key (HS256, right `kid`).
fn signed(server: &TestServer, claims: &Value) -> String {
    let key = &server.config.secret_keys[0];
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(key.id.clone());
    jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_secret(key.secret.as_bytes()))
        .expect("encode")
}

#[tokio::test]
async fn correctly_signed_tokens_with_hostile_claims_are_refused() {
    let server = TestServer::start().await;
    let mut bystander = bystander(&server).await;
    let exp = now_secs() + 60;
    for (claims, code) in [
        (json!({"sub": "p"}), 4001),
        (json!({"exp": exp}), 4001),
        (json!({"sub": "p", "exp": "soon"}), 4001),
        (json!({"sub": 7, "exp": exp}), 4001),
        (json!({"sub": "", "exp": exp}), 4001),
        (json!({"sub": "p".repeat(129), "exp": exp}), 4001),
        (json!({"sub": "a\nb", "exp": exp}), 4001),
        (json!({"sub": "p", "exp": exp, "permissions": ["fly"]}), 4001),
        (json!({"sub": "p", "exp": exp, "channels": ["a*b"]}), 4001),
        (json!({"sub": "p", "exp": exp, "peerMetadata": {"blob": "b".repeat(5_000)}}), 4001),
        (json!({"sub": "p", "exp": exp, "metadata": {"blob": "b".repeat(9_000)}}), 4001),
        (json!({"sub": "p", "exp": exp, "peerMetadata": [1]}), 4001),
        (json!({"sub": "p", "exp": exp, "channels": []}), 4003),
        (json!({"sub": "p", "exp": i64::MIN}), 4001),
        (json!({"sub": "p", "exp": 1}), 4002),
    ] {
        let token = signed(&server, &claims);
        let mut ws = open(&server, &format!("token={token}"), None).await.expect("handshake");
        expect_close(&mut ws, code).await;
    }
    // A far-future expiry is not a reason to fall over.
    let forever = signed(&server, &json!({"sub": "forever", "exp": i64::MAX / 1000}));
    let mut c = Raw::connect_query(&server, &format!("token={forever}")).await;
    c.subscribe("room").await;
    assert_healthy(&server, &mut bystander).await;
    server.shutdown().await;
}

#[tokio::test]
async fn an_expired_token_closes_with_4002_and_a_valid_one_connects() {
    let server = TestServer::start().await;
    let expired = server.token_at(&token_request("late"), now_secs() - 120);
    refused(&server, &format!("token={expired}"), 4002).await;
    let good = server.token(&token_request("p"));
    let mut ws = open(&server, &format!("token={good}"), None).await.expect("handshake");
    let welcome = next_json(&mut ws).await;
    assert_eq!(welcome["peerId"], "p");
    let expires_at = welcome["expiresAt"].as_i64().expect("expiresAt");
    assert!((expires_at - (now_secs() + 60) * 1000).abs() < 5_000, "{expires_at}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_token_expiring_mid_connection_closes_with_4002() {
    let server = TestServer::start().await;
    let short = TokenRequest { expires_in_secs: 1, ..token_request("short") };
    let mut raw = Raw::connect_query(&server, &format!("token={}", server.token(&short))).await;
    raw.subscribe("r").await;
    raw.expect_close(4002).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_token_wider_than_its_key_closes_with_4003() {
    let server = TestServer::start_with(|c| c.secret_keys[0].channel_patterns = vec![pattern("room-*")]).await;
    let mut wide_key = server.config.secret_keys[0].clone();
    wide_key.channel_patterns = vec![ChannelPattern::everything()];
    let wide_req = TokenRequest { channels: Some(vec![pattern("admin-*")]), ..token_request("p") };
    let wide = mint_token(&wide_key, &wide_req, &server.config.limits, now_secs()).expect("mint").0;
    refused(&server, &format!("token={wide}"), 4003).await;
    let narrow = TokenRequest { channels: Some(vec![pattern("room-1*")]), ..token_request("p") };
    let mut ok = Raw::connect_query(&server, &format!("token={}", server.token(&narrow))).await;
    ok.subscribe("room-12").await;
    assert_eq!(ok.error_code(json!({"type": "subscribe", "channel": "room-2"})).await, "channel_not_authorized");
    server.shutdown().await;
}

// ---------------------------------------------------------------- connection limits

#[tokio::test]
async fn connection_attempts_per_ip_get_http_429_when_loopback_is_limited() {
    // Loopback is exempt by default...
    let server = TestServer::start_with(|c| c.limits.connections_per_ip_per_minute = 3).await;
    for _ in 0..5 {
        Raw::connect(&server).await;
    }
    server.shutdown().await;
    // ...and limited when asked to be.
    let server = TestServer::start_with(|c: &mut ServerConfig| {
        c.limits.connections_per_ip_per_minute = 3;
        c.limits.rate_limit_loopback = true;
    })
    .await;
    let mut first = Raw::connect(&server).await;
    Raw::connect(&server).await;
    Raw::connect(&server).await;
    for _ in 0..2 {
        match open(&server, &format!("key={}", server.key()), None).await {
            Err(WsError::Http(resp)) => assert_eq!(resp.status(), 429),
            other => panic!("expected HTTP 429, got {:?}", other.map(|_| ())),
        }
    }
    // Connections already admitted keep working.
    let r = first.request(json!({"type": "ping"})).await;
    assert_eq!(r["type"], "ack");
    server.shutdown().await;
}

#[tokio::test]
async fn connections_over_the_tenant_limit_close_with_4010() {
    let server = TestServer::start_with(|c| c.limits.max_connections_per_tenant = 3).await;
    let mut bystander = bystander(&server).await;
    let mut a = Raw::connect(&server).await;
    let b = Raw::connect(&server).await;
    refused(&server, &format!("key={}", server.key()), 4010).await;
    let token = server.token(&token_request("p"));
    refused(&server, &format!("token={token}"), 4010).await;
    a.ws.close(None).await.expect("close");
    drop((a, b));
    wait_for_live_connections(&server, 1).await;
    assert_healthy(&server, &mut bystander).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_wrong_origin_closes_with_1008_and_an_allowed_one_connects() {
    let server = TestServer::start_with(|c| {
        let mut restricted: PublishableKey = c.publishable_keys[0].clone();
        restricted.key = "pk_live_origin".into();
        restricted.allowed_origins = Some(vec!["https://app.example".into()]);
        c.publishable_keys.push(restricted);
    })
    .await;
    let mut bystander = bystander(&server).await;
    for origin in [Some("https://evil.example"), Some("https://app.example.evil"), None] {
        let mut ws = open(&server, "key=pk_live_origin", origin).await.expect("handshake");
        expect_close(&mut ws, 1008).await;
    }
    let ws = open(&server, "key=pk_live_origin", Some("https://APP.example")).await.expect("handshake");
    let mut ok = Raw::welcomed(ws).await;
    ok.subscribe("room").await;
    assert_healthy(&server, &mut bystander).await;
    server.shutdown().await;
}

#[tokio::test]
async fn the_101st_channel_is_refused_with_channel_limit_exceeded() {
    let server = TestServer::start().await;
    let mut bystander = bystander(&server).await;
    let mut c = Raw::connect(&server).await;
    for i in 0..100 {
        c.subscribe(&format!("c{i}")).await;
    }
    assert_eq!(c.error_code(json!({"type": "subscribe", "channel": "c100"})).await, "channel_limit_exceeded");
    c.subscribe("c7").await; // re-subscribing an existing channel is fine
    let r = c.request(json!({"type": "unsubscribe", "channel": "c7"})).await;
    assert_eq!(r["type"], "ack");
    c.subscribe("c100").await; // and a freed slot can be reused
    assert_healthy(&server, &mut bystander).await;
    server.shutdown().await;
}

#[tokio::test]
async fn tenants_are_isolated_even_on_the_same_channel_name() {
    let server = TestServer::start_with(|c| {
        let mut other = c.publishable_keys[0].clone();
        other.key = "pk_live_other_tenant".into();
        other.tenant = "other".into();
        c.publishable_keys.push(other);
    })
    .await;
    let mut outsider = Raw::connect_query(&server, "key=pk_live_other_tenant").await;
    let snapshot = outsider.subscribe("room").await;
    assert_eq!(snapshot["joined"], json!([]));
    let mut a = Raw::connect(&server).await;
    let snapshot = a.subscribe("room").await;
    assert_eq!(snapshot["joined"], json!([]), "presence must not cross tenants");
    let mut b = Raw::connect(&server).await;
    b.subscribe("room").await;
    b.publish("room", json!("inside")).await;
    assert_eq!(a.next_of("message").await["data"], "inside");
    assert_eq!(b.error_code(json!({"type": "send", "to": outsider.peer_id, "data": 1})).await, "peer_not_found");
    outsider.expect_no_messages(QUIET).await;
    server.shutdown().await;
}

// ---------------------------------------------------------------- REST control plane

#[tokio::test]
async fn rest_refuses_missing_and_publishable_credentials_with_401() {
    let server = TestServer::start().await;
    let (http, base, auth) = rest(&server);
    let wrong_secret = format!("Bearer {}:nope", server.config.secret_keys[0].id);
    for header in
        [None, Some(format!("Bearer {}", server.key())), Some(wrong_secret), Some(auth.replace("Bearer", "Basic"))]
    {
        let mut req = http.get(format!("{base}/v1/usage"));
        if let Some(h) = &header {
            req = req.header("authorization", h);
        }
        let r = req.send().await.expect("request");
        assert_eq!(r.status(), 401, "{header:?}");
        assert_eq!(r.json::<Value>().await.expect("JSON")["error"], "unauthorized");
    }
    let r = http.post(format!("{base}/v1/tokens")).json(&json!({"peerId": "x"})).send().await.expect("request");
    assert_eq!(r.status(), 401);
    let r = http.get(format!("{base}/v1/usage")).header("authorization", &auth).send().await.expect("request");
    assert_eq!(r.status(), 200);
    server.shutdown().await;
}

/// Posts `body` to `path` with the dev bearer; returns status and JSON body.
async fn post(server: &TestServer, path: &str, body: &Value) -> (u16, Value) {
    let (http, base, auth) = rest(server);
    let r = http.post(format!("{base}{path}")).header("authorization", auth).json(body).send().await.expect("post");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// GETs `path` with the dev bearer; returns status and JSON body.
async fn get(server: &TestServer, path: &str) -> (u16, Value) {
    let (http, base, auth) = rest(server);
    let r = http.get(format!("{base}{path}")).header("authorization", auth).send().await.expect("get");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn rest_tokens_connect_and_bad_bodies_get_400_and_413() {
    let server = TestServer::start().await;
    let (status, body) = post(&server, "/v1/tokens", &json!({"peerId": "bot", "peerMetadata": {"role": "bot"}})).await;
    assert_eq!(status, 200, "{body}");
    let expires_at = body["expiresAt"].as_i64().expect("expiresAt");
    assert!((expires_at - (now_secs() + 3600) * 1000).abs() < 5_000, "default lifetime is an hour: {expires_at}");
    let token = body["token"].as_str().expect("token");
    let bot = Raw::connect_query(&server, &format!("token={token}")).await;
    assert_eq!(bot.peer_id, "bot");
    for body in [
        json!({}),
        json!({"peerId": 5}),
        json!({"peerId": "x", "expiresInSec": 86_401}),
        json!({"peerId": "x", "expiresInSec": -1}),
        json!({"peerId": "x", "bogus": 1}),
        json!({"peerId": "x", "permissions": ["fly"]}),
        json!({"peerId": "x", "channels": ["a\u{0}b"]}),
        json!({"peerId": "x\u{7}"}),
        json!({"peerId": "x", "peerMetadata": {"blob": "b".repeat(5_000)}}),
        json!([1]),
    ] {
        let (status, r) = post(&server, "/v1/tokens", &body).await;
        assert_eq!((status, r["error"].as_str()), (400, Some("invalid_request")), "{body}");
    }
    let (http, base, auth) = rest(&server);
    let r = http
        .post(format!("{base}/v1/tokens"))
        .header("authorization", &auth)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    let (status, _) =
        post(&server, "/v1/tokens", &json!({"peerId": "x", "metadata": {"blob": "b".repeat(40_000)}})).await;
    assert_eq!(status, 413);
    let (status, _) = post(&server, "/v1/channels/news/publish", &json!({"data": "b".repeat(40_000)})).await;
    assert_eq!(status, 413);
    server.shutdown().await;
}

#[tokio::test]
async fn rest_refuses_what_the_secret_key_does_not_cover_with_403() {
    let server = TestServer::start_with(|c| {
        c.secret_keys[0].channel_patterns = vec![pattern("room-*")];
        c.secret_keys[0].actions = vec![Action::Subscribe, Action::Presence];
    })
    .await;
    let (status, r) = post(&server, "/v1/tokens", &json!({"peerId": "x", "channels": ["admin-*"]})).await;
    assert_eq!((status, r["error"].as_str()), (403, Some("channel_not_authorized")), "{r}");
    let (status, r) = post(&server, "/v1/tokens", &json!({"peerId": "x", "permissions": ["publish"]})).await;
    assert_eq!((status, r["error"].as_str()), (403, Some("action_not_permitted")), "{r}");
    let (status, r) = get(&server, "/v1/channels/admin/peers").await;
    assert_eq!((status, r["error"].as_str()), (403, Some("channel_not_authorized")), "{r}");
    let (status, r) = post(&server, "/v1/channels/room-1/publish", &json!({"data": 1})).await;
    assert_eq!((status, r["error"].as_str()), (403, Some("action_not_permitted")), "{r}");
    let (status, r) = get(&server, "/v1/channels/_system%2Fx/peers").await;
    assert_eq!((status, r["error"].as_str()), (400, Some("channel_reserved")), "{r}");
    let (status, r) = post(&server, "/v1/tokens", &json!({"peerId": "x", "channels": ["room-1"]})).await;
    assert_eq!(status, 200, "a narrower token is fine: {r}");
    server.shutdown().await;
}

#[tokio::test]
async fn rest_publish_reaches_subscribers_and_peers_lists_them() {
    let server = TestServer::start().await;
    let mut bystander = bystander(&server).await;
    let mut sub = Raw::connect(&server).await;
    sub.subscribe("news").await;
    let meta_token = server
        .token(&TokenRequest { peer_metadata: json!({"role": "bot"}).as_object().cloned(), ..token_request("bot") });
    let mut bot = Raw::connect_query(&server, &format!("token={meta_token}")).await;
    bot.subscribe("news").await;

    let (status, r) = get(&server, "/v1/channels/news/peers").await;
    assert_eq!(status, 200);
    let mut want = vec![json!({"peerId": "bot", "metadata": {"role": "bot"}}), json!({"peerId": sub.peer_id})];
    want.sort_by_key(|p| p["peerId"].as_str().map(str::to_owned));
    assert_eq!(r, json!({"channel": "news", "peers": want}));
    assert_eq!(get(&server, "/v1/channels/empty/peers").await, (200, json!({"channel": "empty", "peers": []})));

    let (status, r) = post(&server, "/v1/channels/news/publish", &json!({"data": {"headline": "hi"}})).await;
    assert_eq!((status, r), (202, json!({"delivered": 2})));
    for c in [&mut sub, &mut bot] {
        let m = c.next_of("message").await;
        assert_eq!(m, json!({"type": "message", "channel": "news", "from": "server", "data": {"headline": "hi"}}));
    }
    let (status, r) = post(&server, "/v1/channels/news/publish", &json!({"data": null, "from": "backend-1"})).await;
    assert_eq!((status, r), (202, json!({"delivered": 2})));
    assert_eq!(sub.next_of("message").await["from"], "backend-1");
    for (body, code) in [
        (json!({}), "invalid_request"),
        (json!({"data": 1, "from": "\u{1}"}), "invalid_request"),
        (json!({"data": 1, "extra": 1}), "invalid_request"),
    ] {
        let (status, r) = post(&server, "/v1/channels/news/publish", &body).await;
        assert_eq!((status, r["error"].as_str()), (400, Some(code)), "{body}");
    }
    // The WebSocket's nesting cap (what receiving SDKs can parse) holds here too.
    for depth in [65, 100, 5_000] {
        let body = format!("{{\"data\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
        let (http, base, auth) = rest(&server);
        let r = http
            .post(format!("{base}/v1/channels/news/publish"))
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 400, "data nested {depth} deep");
    }
    let (status, r) = post(&server, "/v1/channels/_metered%2Fx/publish", &json!({"data": 1})).await;
    assert_eq!((status, r["error"].as_str()), (400, Some("channel_reserved")));
    bystander.expect_no_messages(QUIET).await;
    server.shutdown().await;
}

#[tokio::test]
async fn rest_usage_reports_live_connections_and_limits() {
    let server = TestServer::start().await;
    let mut a = Raw::connect(&server).await;
    let mut b = Raw::connect(&server).await;
    a.subscribe("x").await;
    b.subscribe("x").await;
    a.publish("x", json!(1)).await;
    let (status, u) = get(&server, "/v1/usage").await;
    assert_eq!(status, 200);
    assert_eq!(u["live"], json!({"connections": 2, "peers": 2, "channels": 1}));
    assert_eq!(u["node"]["messagesPublished"], 1);
    assert_eq!(u["node"]["messagesDelivered"], 1);
    assert_eq!(u["limits"]["max_frame_bytes"], 65536);
    assert_eq!(u["limits"]["max_channels_per_connection"], 100);
    server.shutdown().await;
}

#[tokio::test]
async fn rest_admin_kick_closes_every_connection_of_the_peer_with_4020() {
    let server = TestServer::start().await;
    let mut bystander = bystander(&server).await;
    let token = server.token(&token_request("bot"));
    let first = Raw::connect_query(&server, &format!("token={token}")).await;
    let second = Raw::connect_query(&server, &format!("token={token}")).await;
    let (http, base, auth) = rest(&server);
    let kick = || http.delete(format!("{base}/v1/peers/bot")).header("authorization", &auth).send();
    let r = kick().await.expect("delete");
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.expect("JSON"), json!({"disconnected": 2}));
    first.expect_close(4020).await;
    second.expect_close(4020).await;
    wait_for_live_connections(&server, 1).await;
    let r = kick().await.expect("delete");
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.expect("JSON")["error"], "not_found");
    let r = http.get(format!("{base}/v1/nope")).send().await.expect("get");
    assert_eq!(r.status(), 404);
    assert_healthy(&server, &mut bystander).await;
    server.shutdown().await;
}

// ---------------------------------------------------------------- heartbeat

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

// ---------------------------------------------------------------- fan-out at scale

/// What one connection saw of the numbered fan-out: how often each
/// `(from, n)` arrived.
type Seen = HashMap<(String, u64), u32>;

/// Reads until `expected` distinct messages and `acks` acks arrived, then
/// listens a little longer for duplicates.
async fn collect_fan_out(mut r: Raw, expected: usize, acks: usize) -> (Raw, Seen) {
    let mut seen = Seen::new();
    let mut acked = 0;
    while seen.len() < expected || acked < acks {
        let f = r.next().await;
        match f["type"].as_str() {
            Some("message") => {
                let key = (f["from"].as_str().expect("from").to_owned(), f["data"]["n"].as_u64().expect("n"));
                *seen.entry(key).or_default() += 1;
            }
            Some("ack") => acked += 1,
            Some("presence") => {}
            _ => panic!("unexpected {f}"),
        }
    }
    let deadline = tokio::time::Instant::now() + QUIET;
    while let Ok(m) = tokio::time::timeout_at(deadline, r.ws.next()).await {
        if let Some(Ok(Message::Text(t))) = m {
            let f: Value = serde_json::from_str(&t).expect("JSON");
            if f["type"] == "message" {
                let key = (f["from"].as_str().expect("from").to_owned(), f["data"]["n"].as_u64().expect("n"));
                *seen.entry(key).or_default() += 1;
            }
        }
    }
    (r, seen)
}

/// `seen` holds each of `per_publisher` numbered messages of every publisher
/// in `from` exactly once, and nothing else.
fn assert_exactly_once(who: &str, seen: &Seen, from: &[&String], per_publisher: u64) {
    let mut want: Vec<(String, u64)> =
        from.iter().flat_map(|p| (0..per_publisher).map(move |n| ((*p).clone(), n))).collect();
    want.sort();
    let mut got: Vec<(String, u64)> = seen.keys().cloned().collect();
    got.sort();
    assert_eq!(got, want, "{who} saw the wrong set of messages");
    let dupes: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(dupes.is_empty(), "{who} got duplicates: {dupes:?}");
}

#[tokio::test]
async fn two_hundred_fifty_subscribers_receive_every_message_exactly_once() {
    const SUBSCRIBERS: usize = 250;
    const PUBLISHERS: usize = 4;
    const PER_PUBLISHER: u64 = 50;
    let server = TestServer::start().await;
    let mut bystander = bystander(&server).await;
    let mut subs = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let mut r = Raw::connect(&server).await;
        let ack = r.request(json!({"type": "subscribe", "channel": "big"})).await;
        assert_eq!(ack["type"], "ack");
        subs.push(r);
    }
    // Publishers are subscribed too: they get each other's messages, never their own.
    let mut pubs = Vec::new();
    for _ in 0..PUBLISHERS {
        let mut p = Raw::connect(&server).await;
        p.subscribe("big").await;
        pubs.push(p);
    }
    let publisher_ids: Vec<String> = pubs.iter().map(|p| p.peer_id.clone()).collect();
    let total = PUBLISHERS * PER_PUBLISHER as usize;
    let readers: Vec<_> = subs.into_iter().map(|r| tokio::spawn(collect_fan_out(r, total, 0))).collect();
    let writers: Vec<_> = pubs
        .into_iter()
        .map(|mut p| {
            tokio::spawn(async move {
                // Pipelined well under the 200-frame burst; acks are counted by the reader.
                for n in 0..PER_PUBLISHER {
                    let f =
                        json!({"type": "publish", "channel": "big", "data": {"n": n}, "requestId": format!("p{n}")});
                    p.ws.feed(Message::text(f.to_string())).await.expect("feed");
                }
                p.ws.flush().await.expect("flush");
                collect_fan_out(p, total - PER_PUBLISHER as usize, PER_PUBLISHER as usize).await
            })
        })
        .collect();
    for writer in within("publishers", futures_util::future::join_all(writers)).await {
        let (p, seen) = writer.expect("publisher task");
        let others: Vec<&String> = publisher_ids.iter().filter(|id| **id != p.peer_id).collect();
        assert_exactly_once(&format!("publisher {}", p.peer_id), &seen, &others, PER_PUBLISHER);
    }
    let everyone: Vec<&String> = publisher_ids.iter().collect();
    for reader in within("subscribers", futures_util::future::join_all(readers)).await {
        let (r, seen) = reader.expect("subscriber task");
        assert_exactly_once(&format!("subscriber {}", r.peer_id), &seen, &everyone, PER_PUBLISHER);
    }
    assert_eq!(server.server.metrics().slow_consumer_drops.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_healthy(&server, &mut bystander).await;
    server.shutdown().await;
}
