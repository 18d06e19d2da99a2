//! A Rust `MeteredPeer` agent and the room page (official browser SDK) in
//! headless Chromium with a fake microphone, through `metered serve`: the page
//! hears the agent's tone (WebAudio analyser in the page) and shows the agent's
//! metadata label; the agent hears the browser's microphone beep (frequency and
//! level measured on the decoded frames). Then the agent adds a second track
//! mid-call — a renegotiation the agent offers after answering the browser's
//! offer for its microphone — and the page hears that one too.
#![cfg(feature = "webrtc")]

use crate::peer_common as common;

use std::process::Stdio;
use std::time::Duration;

use common::{peer, tone, wait_for};
use e2e_support::{TestServer, repo_root};
use futures_util::StreamExt;
use metered_realtime::audio::analysis::rms_dbfs;
use metered_realtime::media::{Frame, MediaStream, StreamMetadata, iter_frames};
use metered_realtime::peer::PeerEvent;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const AGENT_FREQ: f64 = 1_000.0;
const SECOND_FREQ: f64 = 600.0;

/// The strongest frequency in `y` between 100 Hz and 2 kHz (DFT magnitude
/// scanned in 5 Hz steps; a square wave's fundamental beats its harmonics).
fn peak_hz(y: &[f64], rate: f64) -> f64 {
    let mean = y.iter().sum::<f64>() / y.len().max(1) as f64;
    let power = |f: f64| {
        let w = std::f64::consts::TAU * f / rate;
        let (re, im) = y.iter().enumerate().fold((0.0, 0.0), |(re, im), (n, v)| {
            let a = w * n as f64;
            (re + (v - mean) * a.cos(), im - (v - mean) * a.sin())
        });
        re * re + im * im
    };
    (20..=400).map(|k| f64::from(k) * 5.0).max_by(|a, b| power(*a).total_cmp(&power(*b))).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn browser_and_rust_agent_hear_each_other() {
    let sdk = repo_root().join(".local/node/node_modules/@metered-ca/realtime/dist/index.mjs");
    assert!(sdk.exists(), "run scripts/setup: the browser SDK is missing");
    assert!(std::path::Path::new("/usr/bin/chromium").exists(), "run scripts/setup: chromium is missing");
    let server = TestServer::start_with(|c| c.web.browser_sdk = Some(sdk)).await;

    let agent = peer(&server.base_url(), server.key());
    let mut events = agent.events();
    let (source, feeder) = tone(AGENT_FREQ, 0.5);
    agent
        .add_stream(
            &MediaStream::with_tracks(Some("agent-voice".into()), [source.track()]),
            Some(StreamMetadata::role_label("agent", "Rust agent").unwrap()),
        )
        .unwrap();
    agent.join("browser-agent").await.unwrap();

    let mut node = tokio::process::Command::new("node")
        .arg(repo_root().join("tests/browser/room_with_agent.mjs"))
        .args([&server.http_url(), "browser-agent", "900", "1100"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node");
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();

    // The browser's microphone track, labelled by the page's metadata.
    let (track, streams, metadata) = wait_for(&mut events, "Track from the browser", |ev| match ev {
        PeerEvent::Track { track, streams, metadata, .. } => Some((track.clone(), streams.clone(), metadata.clone())),
        _ => None,
    })
    .await;
    let m = metadata.expect("the page's track metadata");
    assert_eq!((m.role(), m.label()), (Some("microphone"), Some("browser")));
    assert_eq!(streams.len(), 1, "the browser's MediaStream id arrives via msid");

    // Chromium's fake microphone beeps (a ~400 Hz square wave) with pauses:
    // the spectral peak of each loud 20 ms frame of the first 4 s, median.
    let mut it = iter_frames(track);
    let mut loud: Vec<(f64, f64)> = Vec::new();
    let listen = async {
        for _ in 0..200 {
            let Some(Frame::Audio(a)) = it.next().await else { break };
            assert_eq!((a.sample_rate, a.layout.channels()), (48_000, 2));
            let n = a.samples_per_channel().unwrap_or(0);
            let left: Vec<f64> = (0..n).map(|i| f64::from(a.sample_f32(0, i).unwrap_or(0.0))).collect();
            let level = rms_dbfs(&left);
            if level > -30.0 {
                loud.push((peak_hz(&left, 48_000.0), level));
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), listen).await.expect("4 s of browser audio within 30 s");
    assert!(loud.len() >= 5, "only {} loud frames from the browser", loud.len());
    // Frames that hold the beep only partly (its edges) are quieter: keep
    // the ones within 3 dB of the loudest.
    let peak = loud.iter().map(|l| l.1).fold(f64::MIN, f64::max);
    loud.retain(|l| l.1 > peak - 3.0);
    loud.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (hz, level) = loud[loud.len() / 2];
    eprintln!("agent hears the browser: {hz:.1} Hz at {level:.1} dBFS ({} loud frames)", loud.len());
    assert!((300.0..500.0).contains(&hz), "agent heard {hz} Hz");

    // What the page heard and shows.
    let first = tokio::time::timeout(Duration::from_secs(40), lines.next_line())
        .await
        .expect("the page reports within 40 s")
        .unwrap();
    let Some(first) = first else {
        let mut err = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(node.stderr.as_mut().unwrap(), &mut err).await;
        panic!("node ended without a report:\n{err}");
    };
    let page: Value = serde_json::from_str(&first).expect("JSON from the page");
    eprintln!("page heard: {}", page["heard"]);
    assert_eq!(page["peers"], json!([agent.peer_id().unwrap()]));
    let heard = &page["heard"];
    assert_eq!(heard["streamId"], "agent-voice");
    assert_eq!(heard["metadata"], json!({"role": "agent", "label": "Rust agent"}));
    let hz = heard["dominantHz"].as_f64().unwrap();
    assert!((hz - AGENT_FREQ).abs() < 50.0, "page heard {hz} Hz");
    assert!(page["shown"].as_str().unwrap().contains("Rust agent"), "the page shows the agent's label");
    assert_eq!(page["errors"], json!([]));

    // A second track mid-call: our re-offer must be one Chromium accepts
    // (same extension ids, same DTLS role, a new m-section for the new track).
    let (second, second_feeder) = tone(SECOND_FREQ, 0.5);
    agent
        .add_stream(
            &MediaStream::with_tracks(Some("agent-second".into()), [second.track()]),
            Some(StreamMetadata::role_label("agent", "Second voice").unwrap()),
        )
        .unwrap();
    let mut stdin = node.stdin.take().unwrap();
    stdin.write_all(b"more 500 700 agent-second\n").await.unwrap();
    let more = tokio::time::timeout(Duration::from_secs(40), lines.next_line())
        .await
        .expect("the page reports the second track within 40 s")
        .unwrap()
        .unwrap_or_default();
    let more: Value = serde_json::from_str(&more).expect("JSON from the page");
    eprintln!("page heard the second track: {}", more["more"]);
    assert_eq!(more["more"]["metadata"], json!({"role": "agent", "label": "Second voice"}));
    let hz = more["more"]["dominantHz"].as_f64().unwrap();
    assert!((hz - SECOND_FREQ).abs() < 50.0, "page heard {hz} Hz on the second track");

    // Release the page.
    stdin.write_all(b"done\n").await.unwrap();
    drop(stdin);
    let end = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await.expect("page ends").unwrap();
    let end: Value = serde_json::from_str(&end.unwrap_or_default()).expect("final JSON");
    assert_eq!(end["errorsAtEnd"], json!([]));
    let status = tokio::time::timeout(Duration::from_secs(20), node.wait()).await.expect("node exits").unwrap();
    assert!(status.success());
    feeder.abort();
    second_feeder.abort();
    agent.close().await;
    server.shutdown().await;
}
