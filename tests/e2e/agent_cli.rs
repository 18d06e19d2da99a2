//! `metered run` as a guest author and an operator use it, with the Rust echo
//! agent built from `guests/rust/echo`:
//! - offline: `--input in.wav --output out.wav` returns the input tone, and
//!   the same input gives a byte-identical file on every run (virtual clock);
//! - live: `--channel` joins a room on `metered serve`; a Rust peer hears its
//!   own tone come back, and when that peer leaves the agent finishes and the
//!   process exits 0.
#![cfg(feature = "hosting")]

use crate::peer_common as common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::{measure, peer, tone, wait_for};
use e2e_support::{TestServer, metered_bin, rust_guest};
use metered_realtime::audio::analysis::{rms_dbfs, tone_frequency};
use metered_realtime::media::MediaStream;
use metered_realtime::peer::PeerEvent;
use metered_realtime::runtime::offline::{Pcm, read_wav, write_wav};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("metered-agent-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn run_offline_echoes_the_input_identically_every_time() {
    let dir = scratch("offline");
    let n = 16_000 * 2;
    let samples =
        (0..n).map(|i| ((i as f64 * std::f64::consts::TAU * 440.0 / 16_000.0).sin() * 16_384.0) as i16).collect();
    std::fs::write(dir.join("in.wav"), write_wav(&Pcm { sample_rate: 16_000, channels: 1, samples })).unwrap();
    let (bin, echo) = (metered_bin(), rust_guest("echo_agent"));
    let mut outputs = Vec::new();
    for run in 0..2 {
        let out_path = dir.join(format!("out{run}.wav"));
        let out = std::process::Command::new(&bin)
            .arg("run")
            .arg(&echo)
            .arg("--input")
            .arg(dir.join("in.wav"))
            .arg("--output")
            .arg(&out_path)
            .output()
            .unwrap();
        assert!(out.status.success(), "metered run failed: {}", String::from_utf8_lossy(&out.stderr));
        outputs.push(std::fs::read(&out_path).unwrap());
    }
    assert_eq!(outputs[0], outputs[1], "the same input must give the same output file");
    let pcm = read_wav(&outputs[0]).unwrap();
    assert_eq!((pcm.sample_rate, pcm.channels), (48_000, 2));
    let left: Vec<f64> =
        pcm.samples.iter().step_by(2).map(|&s| f64::from(s) / 32_768.0).filter(|v| v.abs() > 1e-4).collect();
    let seconds = left.len() as f64 / 48_000.0;
    assert!((seconds - 2.0).abs() < 0.1, "{seconds} s of echo for 2 s of input");
    let f = tone_frequency(&left, 48_000.0);
    assert!((f - 440.0).abs() < 2.0, "echoed {f} Hz");
    assert!((rms_dbfs(&left) + 9.0).abs() < 0.5, "echoed at {} dBFS", rms_dbfs(&left));
    let _ = std::fs::remove_dir_all(dir);
}

/// `metered run AGENT --channel CHANNEL` against `server`, with `extra`
/// arguments; stderr piped, killed on drop.
fn metered_run(
    agent: &std::path::Path,
    channel: &str,
    server: &TestServer,
    extra: &[&std::ffi::OsStr],
) -> tokio::process::Child {
    tokio::process::Command::new(metered_bin())
        .arg("run")
        .arg(agent)
        .args(["--channel", channel, "--url", &server.base_url(), "--key", server.key()])
        .args(extra)
        .env("METERED_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("metered run")
}

/// Waits (bounded) for `child` to exit: its status and stderr.
async fn exited(child: &mut tokio::process::Child, what: &str) -> (std::process::ExitStatus, String) {
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.expect(what).unwrap();
    let mut err = String::new();
    let _ = tokio::io::AsyncReadExt::read_to_string(child.stderr.as_mut().unwrap(), &mut err).await;
    (status, err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_live_joins_the_channel_and_echoes_a_peer() {
    let server = TestServer::start().await;
    let mut child = metered_run(&rust_guest("echo_agent"), "cli-echo", &server, &[]);
    let talker = peer(&server.base_url(), server.key());
    let mut events = talker.events();
    let (source, feeder) = tone(587.33, 0.5);
    talker.add_stream(&MediaStream::with_tracks(Some("talker".into()), [source.track()]), None).unwrap();
    talker.join("cli-echo").await.unwrap();
    let (track, metadata) = wait_for(&mut events, "the agent's echo track", |ev| match ev {
        PeerEvent::Track { track, metadata, .. } => Some((track.clone(), metadata.clone())),
        _ => None,
    })
    .await;
    assert_eq!(metadata.and_then(|m| m.label().map(str::to_owned)).as_deref(), Some("Echo"));
    let (freq, level) = measure(track, 50, 50).await;
    eprintln!("echo via metered run: {freq:.1} Hz at {level:.1} dBFS");
    assert!((freq - 587.33).abs() < 10.0, "echoed {freq} Hz");
    assert!(level > -20.0, "echoed at {level} dBFS");
    feeder.abort();
    talker.close().await;
    let (status, err) = exited(&mut child, "the agent finishes once its peer left").await;
    assert!(status.success(), "metered run failed:\n{err}");
    assert!(err.contains("finished"), "{err}");
    server.shutdown().await;
}

/// `metered run` with the player agent (`guests/rust/player`): `--source-root`
/// lets it play a file from that folder, which a Rust peer hears; a file
/// outside it is refused by the policy and the process exits non-zero with the
/// rule in its message.
#[cfg(feature = "sources")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_gives_the_agent_the_sources_its_flags_allow() {
    use metered_media_fixtures::{Container, MediaSpec, make_file};
    let dir = scratch("player");
    let file = make_file(&dir, Container::OggOpus, &MediaSpec::default()).unwrap();
    let server = TestServer::start().await;
    let player = rust_guest("player_agent");
    let run = |source: &str, channel: &str| {
        let config = serde_json::json!({"source": source, "loop": true, "seconds": 8, "stream_id": "cli-hold"});
        let config = config.to_string();
        let extra = ["--source-root".as_ref(), dir.as_os_str(), "--config".as_ref(), config.as_ref()];
        metered_run(&player, channel, &server, &extra)
    };
    let mut child = run(file.to_str().unwrap(), "cli-player");
    let listener = peer(&server.base_url(), server.key());
    let mut events = listener.events();
    listener.join("cli-player").await.unwrap();
    let (track, streams) = wait_for(&mut events, "the agent's file track", |ev| match ev {
        PeerEvent::Track { track, streams, .. } => {
            Some((track.clone(), streams.iter().map(|s| s.id().to_owned()).collect::<Vec<_>>()))
        }
        _ => None,
    })
    .await;
    assert_eq!(streams, ["cli-hold"]);
    let (freq, level) = measure(track, 25, 50).await;
    eprintln!("the player agent via metered run: {freq:.1} Hz at {level:.1} dBFS");
    assert!((freq - 440.0).abs() < 5.0, "heard {freq} Hz");
    assert!(level > -30.0, "heard {level} dBFS");
    listener.close().await;
    let _ = child.kill().await;

    let outside = e2e_support::repo_root().join("Cargo.toml");
    let mut child = run(outside.to_str().unwrap(), "cli-player-refused");
    let (status, err) = exited(&mut child, "it exits").await;
    assert!(!status.success(), "a refused source fails the agent:\n{err}");
    assert!(err.contains("denied") && err.contains("outside the allowed directories"), "{err}");
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
