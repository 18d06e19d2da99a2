//! The examples run against a real `metered serve`: `audio_agent` (the seed's
//! end-to-end example: the listener must hear every note the agent plays),
//! `echo_agent` (a Rust peer's tone comes back, frequency measured) and
//! `pubsub` (its publishes arrive, it prints what it receives, Ctrl-C ends it).
#![cfg(feature = "webrtc")]

use crate::peer_common as common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::{measure, peer, tone, wait_for};
use e2e_support::TestServer;
use metered_realtime::media::MediaStream;
use metered_realtime::peer::PeerEvent;

/// An example binary, next to this test's (`target/<profile>/examples`),
/// built first (a no-op when fresh; building only this test does not build
/// the examples, and a stale binary would test old code).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target/<profile>");
    let path = dir.join("examples").join(name);
    {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            // The features the test suite builds with, so this is a no-op
            // after `cargo test --all-features` (another set rebuilds the stack).
            .args(["build", "-p", "metered-realtime-e2e", "--all-features", "--example", name])
            .current_dir(e2e_support::repo_root())
            .status()
            .expect("cargo");
        assert!(status.success(), "building example {name} failed");
    }
    assert!(path.exists(), "{} missing", path.display());
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audio_agent_example_listener_hears_every_note() {
    let server = TestServer::start().await;
    let child = tokio::process::Command::new(example("audio_agent"))
        .args([&server.base_url(), server.key(), "example-audio-agent"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("audio_agent");
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("audio_agent finishes within 60 s")
        .expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "audio_agent failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("(Voice agent)"), "the listener saw the agent's metadata:\n{stdout}");
    assert!(stdout.contains("ok: the listener heard all 4 notes"), "{stdout}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn echo_agent_example_returns_the_tone() {
    let server = TestServer::start().await;
    let mut child = tokio::process::Command::new(example("echo_agent"))
        .args([&server.base_url(), server.key(), "example-echo", "60"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("echo_agent");
    let talker = peer(&server.base_url(), server.key());
    let mut events = talker.events();
    let (source, feeder) = tone(523.25, 0.5);
    talker.add_stream(&MediaStream::with_tracks(Some("talker".into()), [source.track()]), None).unwrap();
    talker.join("example-echo").await.unwrap();
    let (track, streams, metadata) = wait_for(&mut events, "the echo track", |ev| match ev {
        PeerEvent::Track { track, streams, metadata, .. } => Some((track.clone(), streams.clone(), metadata.clone())),
        _ => None,
    })
    .await;
    assert_eq!(streams.iter().map(MediaStream::id).collect::<Vec<_>>(), ["echo"]);
    assert_eq!(metadata.and_then(|m| m.role().map(str::to_owned)).as_deref(), Some("echo"));
    // Skip the start (silence until our tone makes the round trip).
    let (freq, level) = measure(track, 50, 50).await;
    eprintln!("echo: {freq:.1} Hz at {level:.1} dBFS");
    assert!((freq - 523.25).abs() < 10.0, "echoed {freq} Hz");
    assert!(level > -20.0, "echoed at {level} dBFS");
    feeder.abort();
    talker.close().await;
    child.kill().await.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_example_publishes_prints_what_it_receives_and_stops_on_ctrl_c() {
    use metered_realtime::signalling::{ClientEvent, ClientOptions, SignallingClient};
    use tokio::io::{AsyncBufReadExt, BufReader};

    let server = TestServer::start().await;
    let watcher = SignallingClient::new(ClientOptions::with_api_key(server.key()).url(server.base_url())).unwrap();
    let mut events = watcher.events();
    watcher.connect().await.unwrap();
    watcher.subscribe("example-pubsub").await.unwrap();
    let mut child = tokio::process::Command::new(example("pubsub"))
        .args([&server.base_url(), server.key(), "example-pubsub"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("pubsub");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    // It publishes once a second: the first one reaches the watcher.
    let from = e2e_support::within("the example's first publish", async {
        loop {
            if let Ok(ClientEvent::Message { sender_peer_id, data, .. }) = events.recv().await
                && data["text"] == "hello from Rust"
            {
                assert_eq!(data["n"], 0, "the first publish");
                break sender_peer_id;
            }
        }
    })
    .await;
    watcher.publish("example-pubsub", serde_json::json!({"said": "hi from the test"})).await.unwrap();
    let me = watcher.peer_id().expect("connected");
    let (mut connected, mut saw_us, mut got_ours) = (false, false, false);
    e2e_support::within("the example's output", async {
        while !(connected && saw_us && got_ours) {
            let line = lines.next_line().await.expect("stdout").expect("the example is still running");
            connected |= line == format!("connected as {from}");
            saw_us |= line == format!("+ {me}");
            got_ours |= line.starts_with(&format!("{me}: ")) && line.contains("hi from the test");
        }
    })
    .await;
    // Ctrl-C: it leaves (the watcher sees it go) and exits cleanly.
    let pid = child.id().expect("running").to_string();
    let kill = tokio::process::Command::new("kill").args(["-INT", &pid]).status().await.expect("kill");
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("exits on SIGINT").unwrap();
    assert!(status.success(), "pubsub exited with {status}");
    e2e_support::within("the example's peer to leave", async {
        loop {
            if let Ok(ClientEvent::Presence { left, .. }) = events.recv().await
                && left.iter().any(|p| p.peer_id == from)
            {
                break;
            }
        }
    })
    .await;
    watcher.close().await;
    server.shutdown().await;
}

#[cfg(feature = "sources")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn file_player_example_plays_a_file_the_listener_hears() {
    use metered_media_fixtures::{Container, MediaSpec, make_file};
    let dir = std::env::temp_dir().join(format!("metered-example-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = make_file(&dir, Container::Mp3, &MediaSpec { seconds: 3.0, ..MediaSpec::default() }).unwrap();
    let server = TestServer::start().await;
    let child = tokio::process::Command::new(example("file_player"))
        .args([&server.base_url(), server.key(), "example-file-player", file.to_str().unwrap(), "--loop", "6"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("file_player");
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("file_player finishes within 60 s")
        .expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "file_player failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("(File player)"), "{stdout}");
    let tones: Vec<f64> =
        stdout.lines().filter_map(|l| l.strip_prefix("listener: ")?.split_once(" Hz")?.0.trim().parse().ok()).collect();
    // Half-second windows by zero crossings: one straddling the moment the
    // track started (or a seam) can read off; most read the tone.
    let on_pitch = tones.iter().filter(|f| (**f - 440.0).abs() < 5.0).count();
    assert!(on_pitch >= 3 && on_pitch * 2 > tones.len(), "440 Hz heard: {tones:?}");
    // A pseudo-protocol is refused with the typed error, non-zero.
    let out = tokio::process::Command::new(example("file_player"))
        .args([&server.base_url(), server.key(), "x", "concat:/etc/passwd|/etc/hosts"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused"), "{}", String::from_utf8_lossy(&out.stderr));
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(feature = "sources")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rtsp_relay_example_relays_a_camera() {
    use metered_media_fixtures::{MediaSpec, RtspServer};
    let camera = RtspServer::start(&MediaSpec::default()).expect("the RTSP server starts");
    let server = TestServer::start().await;
    let listener = peer(&server.base_url(), server.key());
    let mut events = listener.events();
    listener.join("example-rtsp").await.unwrap();
    let child = tokio::process::Command::new(example("rtsp_relay"))
        .args([&server.base_url(), server.key(), "example-rtsp", &camera.url(), "udp", "6"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("rtsp_relay");
    let track = wait_for(&mut events, "the relay's track", |ev| match ev {
        PeerEvent::Track { track, .. } => Some(track.clone()),
        _ => None,
    })
    .await;
    let (freq, _) = measure(track, 10, 50).await;
    assert!((freq - 440.0).abs() < 10.0, "the room hears the camera's {freq} Hz");
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("rtsp_relay finishes")
        .expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "rtsp_relay failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("video frames decoded") && !stdout.contains("; 0 video frames"), "{stdout}");
    listener.close().await;
    server.shutdown().await;
}
