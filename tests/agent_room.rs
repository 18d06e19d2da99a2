//! A guest agent in a real room: the Rust echo agent (built from
//! `guests/rust/echo`) runs in the wasmtime runtime, joins a channel on
//! `metered serve` through `PeerRoomHost` (a `MeteredPeer` of its own), and the
//! official Python SDK peer in that channel hears its own tone come back —
//! frequency and level measured on the frames it receives, stream id and
//! metadata as the guest published them. When the Python peer leaves, the
//! echo's iterator ends and the agent finishes cleanly.
#![cfg(all(feature = "webrtc", feature = "runtime"))]

use std::sync::Arc;
use std::time::Duration;

use e2e_support::{TestServer, repo_root, run_python, rust_guest};
use metered_realtime::hosting::PeerRoomHost;
use metered_realtime::peer::{IcePolicy, PeerOptions};
use metered_realtime::runtime::{AgentExit, AgentSpec, Runtime, RuntimeConfig};
use metered_realtime::signalling::ClientOptions;
use serde_json::{Value, json};

const PY_FREQ: f64 = 660.0;
const PY_AMP: f64 = 0.4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rust_echo_agent_returns_the_python_peers_tone() {
    assert!(e2e_support::python_sdk_available(), "run scripts/setup: the official Python SDK is missing");
    let server = TestServer::start().await;
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let echo = runtime.load_agent_file(rust_guest("echo_agent")).unwrap();
    let opts =
        PeerOptions::new(ClientOptions::with_api_key(server.key()).url(server.base_url())).ice(IcePolicy::LoopbackOnly);
    let host = Arc::new(PeerRoomHost::new(opts).only("agent-echo"));
    let agent = echo.spawn(AgentSpec::new(r#"{"channel": "agent-echo"}"#).room(host)).await.unwrap();

    let args = json!({"url": server.base_url(), "key": server.key(), "channel": "agent-echo", "mode": "py_leaves",
        "freq": PY_FREQ, "amp": PY_AMP})
    .to_string();
    let out = run_python(&repo_root().join("tests/python/peer_audio.py"), &[&args], Duration::from_secs(90)).await;
    assert_eq!(out.code, Some(0), "python failed:\nstdout: {}\nstderr: {}", out.stdout, out.stderr);
    let py: Value = serde_json::from_str(out.stdout.lines().last().unwrap_or_default()).expect("python JSON");
    assert_eq!(py["stream_ids"], json!(["echo"]), "{py}");
    assert_eq!(py["metadata"], json!({"role": "echo", "label": "Echo"}));
    let heard = &py["heard"];
    let (f, db) = (heard["freq"].as_f64().unwrap(), heard["dbfs"].as_f64().unwrap());
    eprintln!("python hears its echo: {f:.1} Hz at {db:.1} dBFS");
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
