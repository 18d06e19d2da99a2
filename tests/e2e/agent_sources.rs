//! Guests open media through the host (`metered:realtime/sources`): the Rust
//! player agent (`guests/rust/player`) opens a source string under the
//! source policy its host gives it and publishes the tracks into its room.
//!
//! - A looped file under the policy's root: the official Python SDK peer in the
//!   room hears the file's 440 Hz tone under the guest's stream id and metadata.
//! - Strings the strict policy forbids (a path outside the root, a
//!   pseudo-protocol, a URL to loopback) come back to the guest as
//!   `error.denied` naming the rule; without a source host, `unsupported`.
#![cfg(all(feature = "hosting", feature = "sources"))]

use std::sync::Arc;
use std::time::Duration;

use e2e_support::{GuestLang, TestServer, component_cache, guest, repo_root, run_python};
use metered_media_fixtures::{Container, MediaSpec, make_file};
use metered_realtime::hosting::{PeerRoomHost, PolicySources};
use metered_realtime::peer::{IcePolicy, PeerOptions};
use metered_realtime::runtime::{AgentComponent, AgentExit, AgentSpec, CacheConfig, Runtime, RuntimeConfig};
use metered_realtime::signalling::ClientOptions;
use metered_realtime::sources::SourcePolicy;
use serde_json::{Value, json};

async fn player_agent() -> (Runtime, AgentComponent) {
    let mut config = RuntimeConfig::default();
    config.max_agents = 4;
    config.cache = CacheConfig::Dir(component_cache());
    let runtime = Runtime::new(config).unwrap();
    let component = guest(GuestLang::Rust, "player_agent");
    tokio::task::spawn_blocking(move || runtime.load_agent_file(component).map(|c| (runtime, c)))
        .await
        .unwrap()
        .expect("the player agent loads")
}

fn room_host(server: &TestServer, channel: &str) -> Arc<PeerRoomHost> {
    let opts =
        PeerOptions::new(ClientOptions::with_api_key(server.key()).url(server.base_url())).ice(IcePolicy::LoopbackOnly);
    Arc::new(PeerRoomHost::new(opts).only(channel))
}

fn temp_dir(what: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("metered-e2e-{what}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_python_peer_hears_a_file_a_guest_plays() {
    assert!(e2e_support::python_sdk_available(), "run scripts/setup: the official SDK venv is missing");
    let dir = temp_dir("guest-file");
    let file = make_file(&dir, Container::Mp4H264Aac, &MediaSpec::default()).unwrap();
    let server = TestServer::start().await;
    let channel = "guest-hold-music";
    let (_runtime, player) = player_agent().await;
    let policy = SourcePolicy::strict().with_root(&dir).unwrap();
    let config = json!({"channel": channel, "source": file.to_str().unwrap(), "loop": true,
        "stream_id": "hold", "metadata": {"role": "music", "label": "Hold"}, "seconds": 60})
    .to_string();
    let agent = player
        .spawn(AgentSpec::new(config).room(room_host(&server, channel)).sources(PolicySources::shared(policy)))
        .await
        .unwrap();

    let args = json!({"url": server.base_url(), "key": server.key(), "channel": channel, "mode": "py_leaves",
        "freq": 660.0, "amp": 0.1})
    .to_string();
    let out = run_python(&repo_root().join("tests/python/peer_audio.py"), &[&args], Duration::from_secs(90)).await;
    agent.stop();
    let report = tokio::time::timeout(Duration::from_secs(20), agent.join()).await.expect("the agent stops");
    eprintln!("the player agent: {}", report.exit);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.code, Some(0), "python failed:\nstdout: {}\nstderr: {}", out.stdout, out.stderr);
    let v: Value = serde_json::from_str(out.stdout.lines().last().unwrap_or_default()).expect("python JSON");
    assert_eq!(v["stream_ids"], json!(["hold"]), "{v}");
    assert_eq!(v["metadata"], json!({"role": "music", "label": "Hold"}), "{v}");
    assert_eq!(v["kind"], "audio", "{v}");
    let (f, db) = (v["heard"]["freq"].as_f64().unwrap(), v["heard"]["dbfs"].as_f64().unwrap());
    eprintln!("python hears the guest's file: {f:.1} Hz at {db:.1} dBFS");
    assert!((f - 440.0).abs() < 5.0, "python hears {f} Hz");
    assert!(db > -30.0, "python hears {db} dBFS (silence?)");
    assert!(matches!(report.exit, AgentExit::Finished | AgentExit::Stopped), "{}", report.exit);
}

/// The agent's exit for `source` under `sources` (`None`: no source host).
async fn exit_for(player: &AgentComponent, server: &TestServer, source: &str, policy: Option<SourcePolicy>) -> String {
    let channel = format!("guest-refused-{}", source.len());
    let config = json!({"channel": channel, "source": source}).to_string();
    let mut spec = AgentSpec::new(config).room(room_host(server, &channel));
    if let Some(policy) = policy {
        spec = spec.sources(PolicySources::shared(policy));
    }
    let agent = player.spawn(spec).await.unwrap();
    let report = tokio::time::timeout(Duration::from_secs(30), agent.join()).await.expect("the agent ends");
    match report.exit {
        AgentExit::Failed { message } => message,
        other => panic!("{source}: want a failed agent, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_gets_typed_refusals_naming_the_rule() {
    let dir = temp_dir("guest-refused");
    let inside = make_file(&dir, Container::Wav, &MediaSpec { seconds: 1.0, ..MediaSpec::default() }).unwrap();
    let server = TestServer::start().await;
    let (_runtime, player) = player_agent().await;
    let strict = || SourcePolicy::strict().with_root(&dir).unwrap();
    let outside = repo_root().join("Cargo.toml");
    let cases = [
        (outside.to_str().unwrap().to_owned(), "denied"),
        (format!("concat:{}|{}", inside.display(), inside.display()), "denied"),
        ("http://127.0.0.1:9/clip.mp4".to_owned(), "denied"),
        ("rtsp://localhost:8554/door".to_owned(), "denied"),
        (format!("{}/../{}", dir.display(), outside.display()), "denied"),
        (format!("{}/missing.mp4", dir.display()), "not found"),
    ];
    for (source, want) in &cases {
        let message = exit_for(&player, &server, source, Some(strict())).await;
        eprintln!("{source}: {message}");
        assert!(message.contains(&format!("open: {want}")), "{source}: {message}");
    }
    let message = exit_for(&player, &server, inside.to_str().unwrap(), None).await;
    assert!(message.contains("open: unsupported"), "no source host: {message}");
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
