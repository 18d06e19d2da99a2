//! `metered serve --agent AGENT.wasm@PATTERN`: the Rust echo agent starts in
//! a matching channel when its first peer joins (and echoes that peer's
//! tone), is stopped when the last peer leaves, and never starts in a channel
//! the pattern doesn't match.
#![cfg(feature = "hosting")]

use crate::peer_common as common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{measure, peer, tone, wait_for};
use e2e_support::{metered_bin, rust_guest};
use metered_realtime::media::MediaStream;
use metered_realtime::peer::PeerEvent;
use serde_json::Value;

const CONFIG: &str = r#"
listen = "127.0.0.1:0"
[[publishable_keys]]
key = "pk_live_agent_serve"
channel_patterns = ["*"]
actions = ["publish", "subscribe", "presence", "send"]
[[secret_keys]]
id = "sk_id_agent_serve"
secret = "sk_secret_agent_serve"
channel_patterns = ["*"]
actions = ["publish", "subscribe", "presence", "send"]
"#;

async fn peers_in(http: &str, channel: &str) -> Vec<String> {
    let out = tokio::process::Command::new("curl")
        .args(["-sf", "-H", "Authorization: Bearer sk_id_agent_serve:sk_secret_agent_serve"])
        .arg(format!("{http}/v1/channels/{channel}/peers"))
        .output()
        .await
        .expect("curl");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v["peers"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["peerId"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

async fn until(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_per_matching_channel_while_it_has_peers() {
    let dir = std::env::temp_dir().join(format!("metered-agent-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("metered.toml"), CONFIG).unwrap();
    let ready = dir.join("ready");
    let (bin, echo) = (metered_bin(), rust_guest("echo_agent"));
    let mut server = tokio::process::Command::new(bin)
        .arg("serve")
        .arg("--config")
        .arg(dir.join("metered.toml"))
        .arg("--ready-file")
        .arg(&ready)
        .arg("--agent")
        .arg(format!("{}@serve-echo-*", echo.display()))
        .env("METERED_LOG", "warn,metered_realtime::hosting=info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("metered serve");
    until("metered serve is listening", Duration::from_secs(60), async || ready.exists()).await;
    let addr = std::fs::read_to_string(&ready).unwrap();
    let (ws, http) = (format!("ws://{addr}"), format!("http://{addr}"));

    // A matching channel: the agent joins once we do, and echoes our tone.
    let talker = peer(&ws, "pk_live_agent_serve");
    let mut events = talker.events();
    let (source, feeder) = tone(698.46, 0.5);
    talker.add_stream(&MediaStream::with_tracks(Some("talker".into()), [source.track()]), None).unwrap();
    talker.join("serve-echo-1").await.unwrap();
    let track = wait_for(&mut events, "the agent's echo track", |ev| match ev {
        PeerEvent::Track { track, .. } => Some(track.clone()),
        _ => None,
    })
    .await;
    let (freq, level) = measure(track, 50, 50).await;
    eprintln!("serve --agent echo: {freq:.1} Hz at {level:.1} dBFS");
    assert!((freq - 698.46).abs() < 10.0, "echoed {freq} Hz");
    assert_eq!(peers_in(&http, "serve-echo-1").await.len(), 2, "us and the agent");

    // A channel the pattern doesn't match: nobody comes.
    let other = peer(&ws, "pk_live_agent_serve");
    other.join("elsewhere").await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(peers_in(&http, "elsewhere").await.len(), 1, "no agent outside the pattern");
    other.close().await;

    // The last peer leaves: the agent is stopped and leaves too.
    feeder.abort();
    talker.close().await;
    until("the agent leaves the empty channel", Duration::from_secs(15), async || {
        peers_in(&http, "serve-echo-1").await.is_empty()
    })
    .await;

    // A peer returns: a fresh agent starts.
    let again = peer(&ws, "pk_live_agent_serve");
    let mut events = again.events();
    again.join("serve-echo-1").await.unwrap();
    wait_for(&mut events, "a fresh agent joins", |ev| matches!(ev, PeerEvent::PeerJoined { .. }).then_some(())).await;
    again.close().await;

    server.start_kill().unwrap();
    let _ = server.wait().await;
    let _ = std::fs::remove_dir_all(dir);
}
