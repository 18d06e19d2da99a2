//! A Rust `MeteredPeer` and the official Python SDK's `MeteredPeer`
//! (`metered-realtime[webrtc]`, aiortc) in one channel on an in-process
//! `metered serve`: each hears the other's `AudioSource` tone (frequency and
//! level measured on the decoded frames), metadata and stream ids arrive both
//! ways, a peer that leaves ends the other side's iterator, `replace_track`
//! switches the tone without renegotiation.
#![cfg(feature = "webrtc")]

use crate::peer_common as common;

use std::sync::Arc;
use std::time::Duration;

use common::{measure, peer, tone, until_end, wait_for};
use e2e_support::{TestServer, repo_root, run_python};
use metered_realtime::media::{MediaStream, MediaStreamTrack, StreamMetadata};
use metered_realtime::peer::{MeteredPeer, PeerEvent};
use serde_json::{Value, json};

const PY_FREQ: f64 = 660.0;
const PY_AMP: f64 = 0.4; // -11.0 dBFS
const RUST_FREQ: f64 = 440.0;
const RUST_AMP: f64 = 0.5; // -9.0 dBFS

struct Room {
    server: TestServer,
    rust: MeteredPeer,
    events: tokio::sync::broadcast::Receiver<PeerEvent>,
    feeder: tokio::task::JoinHandle<()>,
    python: tokio::task::JoinHandle<e2e_support::ProcessOutput>,
    source: metered_realtime::audio::AudioSource,
}

async fn room(mode: &str) -> Room {
    assert!(
        e2e_support::python_sdk_available(),
        "run scripts/setup: the project venv with the official SDK is missing"
    );
    let server = TestServer::start().await;
    let rust = peer(&server.base_url(), server.key());
    let events = rust.events();
    let (source, feeder) = tone(RUST_FREQ, RUST_AMP);
    rust.add_stream(
        &MediaStream::with_tracks(Some("rust-voice".into()), [source.track()]),
        Some(StreamMetadata::role_label("agent", "Rust").unwrap()),
    )
    .unwrap();
    rust.join("interop").await.unwrap();
    let args = json!({"url": server.base_url(), "key": server.key(), "channel": "interop", "mode": mode,
        "freq": PY_FREQ, "amp": PY_AMP})
    .to_string();
    let python = tokio::spawn(async move {
        run_python(&repo_root().join("tests/python/peer_audio.py"), &[&args], Duration::from_secs(90)).await
    });
    Room { server, rust, events, feeder, python, source }
}

fn python_result(out: e2e_support::ProcessOutput) -> Value {
    assert_eq!(out.code, Some(0), "python failed:\nstdout: {}\nstderr: {}", out.stdout, out.stderr);
    let last = out.stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("bad JSON from python ({e}): {}", out.stdout))
}

/// The Python peer's track, checked for stream id and metadata; then its tone.
async fn hear_python(r: &mut Room) -> Arc<dyn MediaStreamTrack> {
    let (track, streams, metadata) = wait_for(&mut r.events, "Track from python", |ev| match ev {
        PeerEvent::Track { track, streams, metadata, .. } => {
            Some((track.clone(), streams.iter().map(|s| s.id().to_owned()).collect::<Vec<_>>(), metadata.clone()))
        }
        _ => None,
    })
    .await;
    assert_eq!(streams, ["py-voice"], "the Python stream id arrives via msid");
    let m = metadata.expect("python's metadata resolved on the Track event");
    assert_eq!((m.role(), m.label()), (Some("agent"), Some("Py")));
    let (freq, level) = measure(track.clone(), 10, 50).await;
    eprintln!("rust hears python: {freq:.1} Hz at {level:.1} dBFS");
    assert!((freq - PY_FREQ).abs() < 10.0, "rust hears {freq} Hz");
    // The Python AudioSource upmixes mono to stereo with libswresample, at -3 dB.
    let want = 20.0 * PY_AMP.log10() - 3.01 - 3.01;
    assert!((level - want).abs() < 2.0, "rust hears {level} dBFS, want {want}");
    track
}

fn check_python_heard(py: &Value, key: &str, freq: f64) {
    let heard = &py[key];
    let (f, db) = (heard["freq"].as_f64().unwrap(), heard["dbfs"].as_f64().unwrap());
    eprintln!("python hears rust ({key}): {f:.1} Hz at {db:.1} dBFS");
    assert_eq!(heard["rate"], 48_000);
    assert!((f - freq).abs() < 10.0, "python hears {f} Hz, want {freq}");
    assert!((db - (20.0 * RUST_AMP.log10() - 3.01)).abs() < 2.0, "python hears {db} dBFS");
}

async fn py_data(r: &mut Room, key: &'static str) -> Value {
    wait_for(&mut r.events, key, |ev| match ev {
        PeerEvent::Data { data, .. } => data.get(key).cloned(),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn python_and_rust_hear_each_other_and_rust_leaving_ends_python_iterator() {
    let mut r = room("rust_leaves").await;
    hear_python(&mut r).await;
    py_data(&mut r, "py").await; // python has measured us
    r.rust.close().await;
    let py = python_result(r.python.await.unwrap());
    assert_eq!(py["stream_ids"], json!(["rust-voice"]));
    assert_eq!(py["metadata"], json!({"role": "agent", "label": "Rust"}));
    assert_eq!(py["kind"], "audio");
    check_python_heard(&py, "heard", RUST_FREQ);
    assert_eq!(py["iterator_ended"], true, "{py}");
    assert_eq!(py["peer_left"], true, "{py}");
    r.feeder.abort();
    r.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn python_leaving_ends_the_rust_iterator() {
    let mut r = room("py_leaves").await;
    let track = hear_python(&mut r).await;
    let py = python_result(r.python.await.unwrap());
    check_python_heard(&py, "heard", RUST_FREQ);
    wait_for(&mut r.events, "PeerLeft", |ev| matches!(ev, PeerEvent::PeerLeft { .. }).then_some(())).await;
    until_end(track, Duration::from_secs(5)).await;
    r.rust.close().await;
    r.feeder.abort();
    r.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replace_track_switches_the_tone_python_hears() {
    let mut r = room("replace").await;
    hear_python(&mut r).await;
    py_data(&mut r, "py").await;
    let (next, next_feeder) = tone(550.0, RUST_AMP);
    r.rust.replace_track(&*r.source.track(), Some(next.track())).unwrap();
    assert_eq!(
        r.rust.get_track_metadata(&*next.track()).and_then(|m| m.label().map(str::to_owned)).as_deref(),
        Some("Rust"),
        "metadata follows the new track"
    );
    r.rust.send(json!({"replaced": true})).await.unwrap();
    py_data(&mut r, "py_replaced").await;
    let py = python_result(r.python.await.unwrap());
    check_python_heard(&py, "heard", RUST_FREQ);
    check_python_heard(&py, "heard_after_replace", 550.0);
    r.rust.close().await;
    r.feeder.abort();
    next_feeder.abort();
    r.server.shutdown().await;
}
