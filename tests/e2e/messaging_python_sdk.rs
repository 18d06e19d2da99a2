//! The official Python SDK (`metered-realtime==1.0.2`, project venv) against
//! `metered serve`: it connects with `url="ws://127.0.0.1:<port>"` unchanged.

use std::time::Duration;

use e2e_support::{TestServer, limited_request, now_secs, repo_root, run_python, within};
use metered_realtime::server::{Server, TokenRequest};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(90);

fn script() -> std::path::PathBuf {
    repo_root().join("tests/python/sdk_messaging.py")
}

async fn scenario(name: &str, args: Value) -> Value {
    assert!(
        e2e_support::python_sdk_available(),
        "run scripts/setup: the project venv with the official SDK is missing"
    );
    let out = run_python(&script(), &[name, &args.to_string()], LIMIT).await;
    assert_eq!(out.code, Some(0), "python {name} failed:\nstdout: {}\nstderr: {}", out.stdout, out.stderr);
    let last = out.stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("bad JSON from python ({e}): {}", out.stdout))
}

#[tokio::test]
async fn python_sdk_pubsub_presence_directs_and_errors() {
    let server = TestServer::start().await;
    let r = scenario("pubsub", json!({"url": server.base_url(), "key": server.key()})).await;
    let (a, b) = (r["a"].as_str().unwrap(), r["b"].as_str().unwrap());
    assert_ne!(a, b);
    assert_eq!(r["max_message_size"], 65536);
    assert_eq!(r["expires_at"], Value::Null);
    assert_eq!(r["snapshot_a"], json!([]));
    assert_eq!(r["snapshot_b"], json!([a]));
    assert_eq!(r["join_seen_by_a"], json!([b]));
    assert_eq!(
        r["message"],
        json!({"channel": "room", "from": b, "data": {"text": "h\u{e9}llo \u{2603}", "n": [1, 2.5, null, true]}, "meta": null})
    );
    assert_eq!(r["direct"], json!({"from": a, "data": "psst"}));
    assert_eq!(r["b_echoes"], 0, "the publisher must not receive its own message");
    assert_eq!(
        r["errors"],
        json!({"reserved": "channel_reserved", "reserved_upper": "channel_reserved", "unknown_peer": "peer_not_found"})
    );
    assert_eq!(r["left_on_unsubscribe"], json!([b]));
    assert_eq!(r["left_on_disconnect"], json!([b]));
    server.shutdown().await;
}

/// Mints a token through the REST control plane (`POST /v1/tokens`).
async fn rest_token(server: &TestServer, body: Value) -> (String, i64) {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/tokens", server.http_url()))
        .header("authorization", server.bearer())
        .json(&body)
        .send()
        .await
        .expect("POST /v1/tokens");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("token JSON");
    (body["token"].as_str().expect("token").to_owned(), body["expiresAt"].as_i64().expect("expiresAt"))
}

#[tokio::test]
async fn python_sdk_tokens_metadata_and_close_codes() {
    let server = TestServer::start().await;
    let meta = json!({"name": "Ada", "role": "agent"});
    let (meta_token, minted_expiry) =
        rest_token(&server, json!({"peerId": "ada", "expiresInSec": 600, "peerMetadata": meta})).await;
    let limited_token = server.token(&limited_request("limited"));
    let expired_token = server
        .token_at(&TokenRequest { peer_id: "late".into(), expires_in_secs: 5, ..Default::default() }, now_secs() - 60);
    let r = scenario(
        "tokens",
        json!({
            "url": server.base_url(), "key": server.key(),
            "meta_token": meta_token, "limited_token": limited_token, "expired_token": expired_token,
        }),
    )
    .await;
    assert_eq!(r["peer_id"], "ada");
    assert_eq!(r["expires_at"], minted_expiry, "Connected.expires_at is the token's expiry");
    assert!((minted_expiry - (now_secs() + 600) * 1000).abs() < 5_000, "{minted_expiry}");
    let key_peers: Vec<Value> =
        r["key_peers"].as_array().expect("key peers").iter().map(|p| json!({"peer_id": p, "metadata": null})).collect();
    assert_eq!(r["snapshot_seen_by_token_peer"], json!(key_peers), "publishable-key peers carry no metadata");
    assert_eq!(r["join_seen_by_listener"], json!([{"peer_id": "ada", "metadata": meta}]));
    assert_eq!(r["sender_metadata"], meta);
    assert_eq!(r["plain_subscriber_metadata"], Value::Null, "metadata only for includeSenderMetadata");
    assert_eq!(r["direct_metadata"], meta);
    assert_eq!(r["key_peer_direct"]["data"], "back");
    assert_eq!(r["key_peer_direct"]["metadata"], Value::Null);
    assert_eq!(r["not_authorized"], "channel_not_authorized");
    assert_eq!(r["not_permitted"], "action_not_permitted");
    assert_eq!(r["expired_close_code"], 4002);
    assert_eq!(r["bad_close_code"], 4001);
    assert_eq!(r["bad_key_close_code"], 4001);
    server.shutdown().await;
}

#[tokio::test]
async fn python_sdk_treats_an_admin_kick_as_final() {
    let server = TestServer::start().await;
    let token = server.token(&TokenRequest { peer_id: "victim".into(), expires_in_secs: 600, ..Default::default() });
    let r = scenario(
        "kick",
        json!({
            "url": server.base_url(), "key": server.key(), "http": server.http_url(),
            "bearer": server.bearer(), "token": token, "peer_id": "victim",
        }),
    )
    .await;
    assert_eq!(r, json!({"status": 200, "code": 4020, "will_reconnect": false, "left": ["victim"], "connects": 1}));
    server.shutdown().await;
}

#[tokio::test]
async fn python_sdk_reconnects_and_resubscribes_after_a_restart_on_the_same_port() {
    let server = TestServer::start().await;
    let config = server.config.clone();
    let marker = std::env::temp_dir().join(format!("metered-reconnect-{}", uuid_like()));
    let args = json!({"url": server.base_url(), "key": server.key(), "marker": marker.clone()});
    let marker_file = marker.clone();
    let python = tokio::spawn(async move { scenario("reconnect", args).await });
    within("python subscribed", async {
        while !marker.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    server.shutdown().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let restarted = Server::bind(config).await.expect("rebind the same port");
    let r = within("python result", python).await.expect("python task");
    assert_eq!(r["retry_after_ms"], 1000);
    assert_eq!(r["disconnect_code"], 1001);
    assert_eq!(r["will_reconnect"], true);
    assert_eq!(r["same_peer_id"], false, "a publishable key gets a fresh peer id per connection");
    assert_eq!(r["message_after_restart"], "after restart");
    restarted.shutdown().await;
    let _ = std::fs::remove_file(marker_file);
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    )
}
