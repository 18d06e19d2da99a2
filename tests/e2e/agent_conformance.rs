//! One conformance suite, run against the echo agent of every guest language
//! (`guests/rust/echo`, `guests/python/echo`, `guests/js/echo`, each built from
//! source by `guests/build`):
//!
//! - **in a room**: the agent runs in the wasmtime runtime and joins a channel
//!   on `metered serve` through `PeerRoomHost` (a `MeteredPeer` of its own);
//!   the official Python SDK peer in that channel hears its own tone come back
//!   — frequency and level measured on the frames it receives, stream id and
//!   metadata as the guest published them. When the Python peer leaves, the
//!   echo's iterator ends and the agent finishes cleanly.
//! - **offline**: `run_offline_file` (what `metered run --input --output`
//!   calls) echoes a WAV file on a virtual clock; the same input gives a
//!   byte-identical output file on every run, with the input's tone in it;
//!   and the agent's memory does not grow with the length of the stream
//!   (no per-frame leak in the language's bindings; JS levels off).
//!
//! The JS echo and `guests/rust/echo-reactor` are `reactor`-world agents (the
//! host calls them per event and frame); the others block in `run`.
#![cfg(feature = "hosting")]

use std::sync::Arc;
use std::time::Duration;

use e2e_support::{GuestLang, TestServer, component_cache, guest, repo_root, run_python};
use metered_realtime::audio::analysis::{rms_dbfs, tone_frequency};
use metered_realtime::hosting::PeerRoomHost;
use metered_realtime::peer::{IcePolicy, PeerOptions};
use metered_realtime::runtime::offline::{OfflineOptions, Pcm, read_wav, run_offline, run_offline_file, write_wav};
use metered_realtime::runtime::{AgentExit, AgentSpec, CacheConfig, Runtime, RuntimeConfig};
use metered_realtime::signalling::ClientOptions;
use serde_json::{Value, json};

const PY_FREQ: f64 = 660.0;
const PY_AMP: f64 = 0.4;

/// The engine the conformance tests run guests in: default limits, and the
/// compiled-component cache shared by the test binaries.
fn runtime_config() -> RuntimeConfig {
    let mut config = RuntimeConfig::default();
    config.max_agents = 8;
    config.cache = CacheConfig::Dir(component_cache());
    config
}

async fn echo_returns_the_python_peers_tone(lang: GuestLang, name: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    assert!(e2e_support::python_sdk_available(), "run scripts/setup: the official Python SDK is missing");
    let server = TestServer::start().await;
    let channel = format!("agent-echo-{}-{}", lang.as_str(), name.replace('_', "-"));
    let component = guest(lang, name);
    let runtime = Runtime::new(runtime_config()).unwrap();
    let echo =
        tokio::task::spawn_blocking(move || runtime.load_agent_file(component).map(|c| (runtime, c))).await.unwrap();
    let (runtime, echo) = echo.unwrap_or_else(|e| panic!("loading the {} echo agent: {e}", lang.as_str()));
    let opts =
        PeerOptions::new(ClientOptions::with_api_key(server.key()).url(server.base_url())).ice(IcePolicy::LoopbackOnly);
    let host = Arc::new(PeerRoomHost::new(opts).only(&channel));
    let config = json!({ "channel": channel }).to_string();
    let agent = echo.spawn(AgentSpec::new(config).room(host)).await.unwrap();

    let args = json!({"url": server.base_url(), "key": server.key(), "channel": channel, "mode": "py_leaves",
        "freq": PY_FREQ, "amp": PY_AMP})
    .to_string();
    let out = run_python(&repo_root().join("tests/python/peer_audio.py"), &[&args], Duration::from_secs(90)).await;
    assert_eq!(out.code, Some(0), "python failed:\nstdout: {}\nstderr: {}", out.stdout, out.stderr);
    let py: Value = serde_json::from_str(out.stdout.lines().last().unwrap_or_default()).expect("python JSON");
    assert_eq!(py["stream_ids"], json!(["echo"]), "{py}");
    assert_eq!(py["metadata"], json!({"role": "echo", "label": "Echo"}));
    let heard = &py["heard"];
    let (f, db) = (heard["freq"].as_f64().unwrap(), heard["dbfs"].as_f64().unwrap());
    eprintln!("python hears the {} echo: {f:.1} Hz at {db:.1} dBFS", lang.as_str());
    assert!((f - PY_FREQ).abs() < 10.0, "python hears {f} Hz, want {PY_FREQ}");
    // Python sends mono upmixed at -3 dB per channel; the echo returns it as is.
    let want = 20.0 * PY_AMP.log10() - 3.01 - 3.01;
    assert!((db - want).abs() < 3.0, "python hears {db} dBFS, want {want}");

    // Python left: the echo's iterator ends, the guest returns, the agent finishes.
    let report = tokio::time::timeout(Duration::from_secs(20), agent.join()).await.expect("agent ends within 20 s");
    assert_eq!(report.exit, AgentExit::Finished, "{}", report.exit);
    assert_eq!(runtime.live_guests(), 0);
    server.shutdown().await;
}

/// `seconds` of a 440 Hz tone at -6 dBFS, 16 kHz mono.
fn tone_440(seconds: u32) -> Pcm {
    let samples = (0..16_000 * seconds)
        .map(|i| ((f64::from(i) * std::f64::consts::TAU * 440.0 / 16_000.0).sin() * 16_384.0) as i16)
        .collect();
    Pcm { sample_rate: 16_000, channels: 1, samples }
}

/// The agent's linear memory after echoing `seconds` of audio offline.
fn memory_after(lang: GuestLang, name: &str, seconds: u32) -> usize {
    let runtime = Runtime::new(runtime_config()).unwrap();
    let echo = runtime.load_agent_file(guest(lang, name)).unwrap();
    // The offline run has its own virtual clock: any executor can wait for it.
    let tokio = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let out = tokio.block_on(run_offline(&echo, tone_440(seconds), OfflineOptions::default())).unwrap();
    assert_eq!(out.exit, AgentExit::Finished, "{}", out.exit);
    out.memory_bytes
}

fn offline_echo_is_identical_every_run(lang: GuestLang, name: &str) {
    let dir = std::env::temp_dir().join(format!("metered-conformance-{}-{}-{name}", std::process::id(), lang.as_str()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.wav");
    std::fs::write(&input, write_wav(&tone_440(2))).unwrap();
    let agent = guest(lang, name);
    let mut outputs = Vec::new();
    for run in 0..2 {
        let output = dir.join(format!("out{run}.wav"));
        let out = run_offline_file(&agent, &input, &output, OfflineOptions::default(), runtime_config())
            .unwrap_or_else(|e| panic!("offline {} echo: {e}", lang.as_str()));
        assert_eq!(out.exit, AgentExit::Finished, "{}", out.exit);
        outputs.push(std::fs::read(&output).unwrap());
    }
    assert_eq!(outputs[0], outputs[1], "{}: the same input must give the same output file", lang.as_str());
    let pcm = read_wav(&outputs[0]).unwrap();
    assert_eq!((pcm.sample_rate, pcm.channels), (48_000, 2));
    let left: Vec<f64> =
        pcm.samples.iter().step_by(2).map(|&s| f64::from(s) / 32_768.0).filter(|v| v.abs() > 1e-4).collect();
    let seconds = left.len() as f64 / 48_000.0;
    assert!((seconds - 2.0).abs() < 0.1, "{}: {seconds} s of echo for 2 s of input", lang.as_str());
    let f = tone_frequency(&left, 48_000.0);
    assert!((f - 440.0).abs() < 2.0, "{}: echoed {f} Hz", lang.as_str());
    assert!((rms_dbfs(&left) + 9.0).abs() < 0.5, "{}: echoed at {} dBFS", lang.as_str(), rms_dbfs(&left));
    let _ = std::fs::remove_dir_all(dir);

    // 1 500 more frames must not cost more memory: a leak of one 20 ms frame
    // (3 840 bytes) per frame would add 5.6 MiB. (JS: see
    // `js_echo_agent_memory_levels_off`.)
    if lang == GuestLang::Js {
        return;
    }
    let (short, long) = (memory_after(lang, name, 2), memory_after(lang, name, 32));
    eprintln!("{} {name}: {} KiB after 2 s, {} KiB after 32 s", lang.as_str(), short >> 10, long >> 10);
    assert!(
        long <= short + (1 << 20),
        "{}: memory grew from {short} to {long} bytes over 30 s more audio",
        lang.as_str()
    );
}

/// A JS agent's memory levels off: SpiderMonkey collects garbage between
/// export calls (the JS echo is a `reactor`, called per frame) once its heap
/// reaches ~70 MiB (measured: 72 MiB after 5 minutes of audio, the same after
/// 10 and 20). Ten minutes must end well under the default 128 MiB cap; any
/// per-frame growth of the size seen before (a JS agent blocking in `run`:
/// ~8 KiB per frame, 230 MiB over 10 minutes) ends it at the cap instead.
#[test]
fn js_echo_agent_memory_levels_off() {
    let ten = memory_after(GuestLang::Js, "echo_agent", 602);
    eprintln!("js echo_agent: {} KiB after 602 s", ten >> 10);
    assert!(ten < 96 << 20, "js: {ten} bytes after 10 minutes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rust_echo_agent_returns_the_python_peers_tone() {
    echo_returns_the_python_peers_tone(GuestLang::Rust, "echo_agent").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rust_reactor_echo_agent_returns_the_python_peers_tone() {
    echo_returns_the_python_peers_tone(GuestLang::Rust, "echo_reactor_agent").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn python_echo_agent_returns_the_python_peers_tone() {
    echo_returns_the_python_peers_tone(GuestLang::Python, "echo_agent").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn js_echo_agent_returns_the_python_peers_tone() {
    echo_returns_the_python_peers_tone(GuestLang::Js, "echo_agent").await;
}

#[test]
fn rust_echo_agent_offline_is_identical_every_run() {
    offline_echo_is_identical_every_run(GuestLang::Rust, "echo_agent");
}

#[test]
fn rust_reactor_echo_agent_offline_is_identical_every_run() {
    offline_echo_is_identical_every_run(GuestLang::Rust, "echo_reactor_agent");
}

#[test]
fn python_echo_agent_offline_is_identical_every_run() {
    offline_echo_is_identical_every_run(GuestLang::Python, "echo_agent");
}

#[test]
fn js_echo_agent_offline_is_identical_every_run() {
    offline_echo_is_identical_every_run(GuestLang::Js, "echo_agent");
}
