//! Sources in a room with the official Python SDK's `MeteredPeer`: a Rust
//! peer publishes a player's audio track — from a looped file, an RTSP
//! stream over tcp and udp (GStreamer's server), a microphone (a private
//! PulseAudio) — and the Python peer measures the tone it hears.
#![cfg(all(feature = "webrtc", feature = "sources"))]

use std::time::Duration;

use crate::peer_common::peer;
use e2e_support::{TestServer, repo_root, run_python};
use metered_media_fixtures::{Container, MediaSpec, PulseMic, RtspServer, make_file};
use metered_realtime::media::{MediaStream, StreamMetadata};
use metered_realtime::sources::{Player, RtspTransport, Sources};
use serde_json::{Value, json};

/// Publishes `player`'s audio into a room and returns what the Python peer
/// heard (`peer_audio.py` in `py_leaves` mode: measure, then leave).
async fn python_hears(player: &Player, channel: &str) -> Value {
    assert!(e2e_support::python_sdk_available(), "run scripts/setup: the official SDK venv is missing");
    let server = TestServer::start().await;
    let rust = peer(&server.base_url(), server.key());
    let track = player.audio.as_ref().expect("an audio track").track();
    rust.add_stream(
        &MediaStream::with_tracks(Some("source".into()), [track]),
        Some(StreamMetadata::role_label("source", player.source()).unwrap()),
    )
    .unwrap();
    rust.join(channel).await.unwrap();
    let args = json!({"url": server.base_url(), "key": server.key(), "channel": channel, "mode": "py_leaves",
        "freq": 660.0, "amp": 0.1})
    .to_string();
    let out = run_python(&repo_root().join("tests/python/peer_audio.py"), &[&args], Duration::from_secs(90)).await;
    rust.close().await;
    server.shutdown().await;
    assert_eq!(out.code, Some(0), "python failed:\nstdout: {}\nstderr: {}", out.stdout, out.stderr);
    let last = out.stdout.lines().last().unwrap_or_default();
    let v: Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("bad JSON from python ({e}): {}", out.stdout));
    assert_eq!(v["stream_ids"], json!(["source"]), "{v}");
    assert_eq!(v["metadata"]["role"], "source", "{v}");
    v
}

fn check_tone(v: &Value, what: &str) {
    let heard = &v["heard"];
    let (f, db) = (heard["freq"].as_f64().unwrap(), heard["dbfs"].as_f64().unwrap());
    eprintln!("python hears {what}: {f:.1} Hz at {db:.1} dBFS");
    assert!((f - 440.0).abs() < 5.0, "{what}: python hears {f} Hz");
    assert!(db > -30.0, "{what}: python hears {db} dBFS (silence?)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn python_hears_a_looped_file() {
    let dir = std::env::temp_dir().join(format!("metered-e2e-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = make_file(&dir, Container::Mp4H264Aac, &MediaSpec::default()).unwrap();
    let player = Sources::operator().from_file(file.to_str().unwrap(), true).await.unwrap();
    let v = python_hears(&player, "file-room").await;
    check_tone(&v, "the file");
    player.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn python_hears_rtsp_over_tcp_and_udp() {
    let server = RtspServer::start(&MediaSpec::default()).expect("the RTSP server starts");
    for transport in [RtspTransport::Tcp, RtspTransport::Udp] {
        let player = Sources::operator().from_rtsp(&server.url(), transport).await.unwrap();
        let v = python_hears(&player, &format!("rtsp-{}", transport.as_str())).await;
        check_tone(&v, &format!("RTSP over {}", transport.as_str()));
        player.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn python_hears_the_microphone() {
    let mic = PulseMic::start(440.0).expect("pulseaudio starts");
    mic.apply_env();
    let player = Sources::operator().from_microphone(None).await.unwrap();
    let v = python_hears(&player, "mic-room").await;
    check_tone(&v, "the microphone");
    player.stop();
}
