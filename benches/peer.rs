//! MeteredPeer benchmark, side by side with the official Python SDK
//! (`metered-realtime[webrtc]`, aiortc) in one run, on loopback against an
//! in-process `metered serve`. Prints one JSON object.
//!
//! ```sh
//! cargo bench --features webrtc --bench peer             # ~3 min
//! BENCH_QUICK=1 cargo bench --features webrtc --bench peer
//! ```
//!
//! * **latency** — from `AudioSource.push` of a 20 ms full-scale burst (in a
//!   stream of silence pushed in real time, 20 ms every 20 ms) to the remote
//!   `iter_frames` yielding the frame with its onset. Wall-clock times on one
//!   machine; sender and receiver in the same process for Rust→Rust and
//!   Python→Python, in different processes for the cross pairs.
//! * **cpu per active audio peer** — N peers in rooms of two, each pushing a
//!   tone through an `AudioSource` and consuming the other's track with
//!   `iter_frames` (encode + decode + transport + pacing + resampling). Process
//!   CPU time over a steady-state window divided by N. The Rust side's process
//!   also hosts the (idle, signalling-only) server, so its figure is an upper
//!   bound. Real time holds when every peer received ≥ 97 % of the window's frames.
//! * **peers per core** — 1 / (CPU share of one core per peer), from the largest
//!   run that held real time.
//!
//! Environment: `BENCH_QUICK=1` (short), `BENCH_RUST_PEERS=10,40`,
//! `BENCH_PY_PEERS=10`, `BENCH_ONLY=latency|cpu`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use e2e_support::{TestServer, repo_root, venv_python};
use futures_util::StreamExt;
use metered_realtime::audio::{AudioSource, AudioSourceOptions};
use metered_realtime::media::{Frame, MediaStream, iter_frames};
use metered_realtime::peer::{ConnectionState, IcePolicy, MeteredPeer, PeerEvent, PeerOptions};
use metered_realtime::signalling::ClientOptions;
use serde_json::{Value, json};

/// 20 ms of 16 kHz mono.
const CHUNK: usize = 320;
/// A burst's onset: peak over −26 dBFS after ≥ 5 quiet frames.
const THRESHOLD: f32 = 0.05;
/// Warm-up before the first burst (75 × 20 ms).
const WARMUP_TICKS: u32 = 75;

fn wall_ns() -> i128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or(0)
}

fn cpu_time() -> Duration {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes into the timespec we pass, which lives
    // for the whole call.
    #[allow(unsafe_code)]
    unsafe {
        libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t);
    }
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn pcm(samples: impl Iterator<Item = f64>) -> Vec<u8> {
    samples.flat_map(|v| ((v * 32767.0) as i16).to_le_bytes()).collect()
}

fn burst() -> Vec<u8> {
    pcm((0..CHUNK).map(|i| 0.8 * (std::f64::consts::TAU * 1000.0 * i as f64 / 16_000.0).sin()))
}

fn tone(freq: f64, start: usize) -> Vec<u8> {
    pcm((start..start + CHUNK).map(|i| 0.3 * (std::f64::consts::TAU * freq * i as f64 / 16_000.0).sin()))
}

fn new_peer(url: &str, key: &str) -> MeteredPeer {
    MeteredPeer::with_options(PeerOptions::new(ClientOptions::with_api_key(key).url(url)).ice(IcePolicy::LoopbackOnly))
        .expect("peer options")
}

fn source() -> AudioSource {
    AudioSource::new(AudioSourceOptions { max_buffered_seconds: 0.2, ..AudioSourceOptions::default() })
        .expect("audio source")
}

/// Waits until some remote connection of `peer` is up.
async fn connected(events: &mut tokio::sync::broadcast::Receiver<PeerEvent>) {
    loop {
        match events.recv().await {
            Ok(PeerEvent::PeerStateChange { to: ConnectionState::Connected, .. }) => return,
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(_) => return,
        }
    }
}

/// The first remote track of `peer`.
async fn first_track(
    events: &mut tokio::sync::broadcast::Receiver<PeerEvent>,
) -> Option<Arc<dyn metered_realtime::media::MediaStreamTrack>> {
    loop {
        match events.recv().await {
            Ok(PeerEvent::Track { track, .. }) => return Some(track),
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(_) => return None,
        }
    }
}

/// Sender: silence in real time with a burst every `spacing_ms`; returns push times.
async fn rust_sender(url: String, key: String, channel: String, seconds: f64, spacing_ms: u32) -> Vec<i128> {
    let peer = new_peer(&url, &key);
    let mut events = peer.events();
    let src = source();
    peer.join(&channel).await.expect("join");
    peer.add_stream(&MediaStream::with_tracks(Some("bench-voice".into()), [src.track()]), None).expect("add_stream");
    tokio::time::timeout(Duration::from_secs(30), connected(&mut events)).await.expect("sender connected");
    let every = (spacing_ms / 20).max(1);
    let (loud, silence) = (burst(), vec![0u8; CHUNK * 2]);
    let ticks = WARMUP_TICKS + (seconds * 50.0) as u32;
    let mut pushes = Vec::new();
    let start = tokio::time::Instant::now();
    for i in 0..ticks {
        let marker = i >= WARMUP_TICKS && (i - WARMUP_TICKS).is_multiple_of(every);
        if marker {
            pushes.push(wall_ns());
        }
        src.push(if marker { &loud } else { &silence }).await;
        tokio::time::sleep_until(start + Duration::from_millis(20 * u64::from(i + 1))).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    peer.close().await;
    pushes
}

/// Receiver: onset times of bursts in the first remote track.
async fn rust_receiver(url: String, key: String, channel: String, deadline: Duration) -> Vec<i128> {
    let peer = new_peer(&url, &key);
    let mut events = peer.events();
    peer.join(&channel).await.expect("join");
    let mut onsets = Vec::new();
    let run = async {
        let Some(track) = first_track(&mut events).await else { return };
        let mut frames = iter_frames(track);
        let mut quiet = 0u32;
        while let Some(frame) = frames.next().await {
            let now = wall_ns();
            let Frame::Audio(a) = frame else { continue };
            let peak = a.to_s16_interleaved().iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
            if f32::from(peak) / 32768.0 > THRESHOLD {
                if quiet >= 5 {
                    onsets.push(now);
                }
                quiet = 0;
            } else {
                quiet += 1;
            }
        }
    };
    let _ = tokio::time::timeout(deadline, run).await;
    peer.close().await;
    onsets
}

/// Each onset matched to the latest push before it (bursts are `spacing_ms`
/// apart, far more than any latency seen); milliseconds, sorted.
fn match_latencies(pushes: &[i128], onsets: &[i128], spacing_ms: u32) -> Vec<f64> {
    let mut out: Vec<f64> = onsets
        .iter()
        .filter_map(|&o| pushes.iter().rev().find(|&&p| p <= o).map(|&p| (o - p) as f64 / 1e6))
        .filter(|&ms| ms < f64::from(spacing_ms))
        .collect();
    out.sort_by(f64::total_cmp);
    out
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted.get(idx).map(|v| (v * 100.0).round() / 100.0)
}

fn latency_summary(pair: &str, pushes: &[i128], onsets: &[i128], spacing_ms: u32) -> Value {
    let lat = match_latencies(pushes, onsets, spacing_ms);
    json!({
        "pair": pair,
        "bursts_sent": pushes.len(),
        "bursts_heard": lat.len(),
        "p50_ms": percentile(&lat, 50.0),
        "p99_ms": percentile(&lat, 99.0),
        "min_ms": lat.first(),
        "max_ms": lat.last(),
    })
}

fn python_script() -> PathBuf {
    repo_root().join("benches/py/peer_bench.py")
}

/// Runs the Python helper with `args`, bounded by `timeout`; its JSON output.
async fn python(args: Value, timeout: Duration) -> Result<Value, String> {
    let child = tokio::process::Command::new(venv_python())
        .arg(python_script())
        .arg(args.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("spawn python: {e}"))?;
    let out = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| format!("python timed out after {timeout:?}"))?
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout.lines().rev().find_map(|l| serde_json::from_str(l).ok()).ok_or_else(|| {
        let err = String::from_utf8_lossy(&out.stderr);
        format!("python exited {:?}: {}", out.status.code(), err.lines().rev().take(5).collect::<Vec<_>>().join(" | "))
    })
}

fn times(v: &Value, key: &str) -> Vec<i128> {
    v[key].as_array().map(|a| a.iter().filter_map(|x| x.as_i64().map(i128::from)).collect()).unwrap_or_default()
}

async fn latency_runs(server: &TestServer, seconds: f64, spacing_ms: u32) -> Value {
    let (url, key) = (server.base_url(), server.key().to_owned());
    let deadline = Duration::from_secs_f64(seconds + 40.0);
    let py_timeout = Duration::from_secs_f64(seconds + 60.0);
    let py_args = |role: &str, channel: &str| {
        json!({"mode": "latency", "role": role, "url": url, "key": key, "channel": channel,
               "seconds": seconds, "spacing_ms": spacing_ms})
    };
    let mut out = Vec::new();

    // Rust → Rust, one process.
    let recv = tokio::spawn(rust_receiver(url.clone(), key.clone(), "lat-rr".into(), deadline));
    let pushes = rust_sender(url.clone(), key.clone(), "lat-rr".into(), seconds, spacing_ms).await;
    let onsets = recv.await.unwrap_or_default();
    out.push(latency_summary("rust->rust", &pushes, &onsets, spacing_ms));

    // Python → Python, one process.
    out.push(match python(py_args("both", "lat-pp"), py_timeout).await {
        Ok(v) => latency_summary("python->python", &times(&v, "pushes"), &times(&v, "onsets"), spacing_ms),
        Err(e) => json!({"pair": "python->python", "error": e}),
    });

    // Rust → Python.
    let recv = tokio::spawn(python(py_args("recv", "lat-rp"), py_timeout));
    let pushes = rust_sender(url.clone(), key.clone(), "lat-rp".into(), seconds, spacing_ms).await;
    out.push(match recv.await.map_err(|e| e.to_string()).and_then(|r| r) {
        Ok(v) => latency_summary("rust->python", &pushes, &times(&v, "onsets"), spacing_ms),
        Err(e) => json!({"pair": "rust->python", "error": e}),
    });

    // Python → Rust.
    let recv = tokio::spawn(rust_receiver(url.clone(), key.clone(), "lat-pr".into(), deadline));
    let sent = python(py_args("send", "lat-pr"), py_timeout).await;
    let onsets = recv.await.unwrap_or_default();
    out.push(match sent {
        Ok(v) => latency_summary("python->rust", &times(&v, "pushes"), &onsets, spacing_ms),
        Err(e) => json!({"pair": "python->rust", "error": e}),
    });
    Value::Array(out)
}

/// `n` Rust peers in rooms of two, each sending a tone and consuming the other's.
async fn rust_load(server: &TestServer, n: usize, prefix: &str, warmup: Duration, window: Duration) -> Value {
    let (url, key) = (server.base_url(), server.key().to_owned());
    let counting = Arc::new(AtomicBool::new(false));
    let counters: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let (flow_tx, mut flow_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let mut peers = Vec::new();
    let mut tasks = Vec::new();
    let started = Instant::now();
    for i in 0..n {
        let peer = new_peer(&url, &key);
        let mut events = peer.events();
        let src = source();
        peer.join(&format!("{prefix}-{}", i / 2)).await.expect("join");
        peer.add_stream(&MediaStream::with_tracks(Some(format!("load-{i}")), [src.track()]), None).expect("add_stream");
        let freq = 300.0 + 40.0 * i as f64;
        tasks.push(tokio::spawn(async move {
            let mut k = 0;
            loop {
                src.push(&tone(freq, k)).await;
                k += CHUNK;
            }
        }));
        let (counting, counters, flow_tx) = (counting.clone(), counters.clone(), flow_tx.clone());
        tasks.push(tokio::spawn(async move {
            let Some(track) = first_track(&mut events).await else { return };
            let mut frames = iter_frames(track);
            let mut first = true;
            while let Some(frame) = frames.next().await {
                if let Frame::Audio(a) = frame {
                    std::hint::black_box(a.to_s16_interleaved()); // what a consumer (STT) would do
                }
                if first {
                    let _ = flow_tx.send(i);
                    first = false;
                }
                if counting.load(Ordering::Relaxed) {
                    counters[i].fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
        peers.push(peer);
    }
    let mut flowing = 0;
    while flowing < n {
        match tokio::time::timeout(Duration::from_secs(60), flow_rx.recv()).await {
            Ok(Some(_)) => flowing += 1,
            _ => break,
        }
    }
    let connect_s = started.elapsed().as_secs_f64();
    let result = if flowing < n {
        json!({"peers": n, "error": format!("only {flowing} of {n} tracks flowed within 60 s")})
    } else {
        tokio::time::sleep(warmup).await;
        counting.store(true, Ordering::Relaxed);
        let (c0, w0) = (cpu_time(), Instant::now());
        tokio::time::sleep(window).await;
        let (cpu, wall) = ((cpu_time() - c0).as_secs_f64(), w0.elapsed().as_secs_f64());
        counting.store(false, Ordering::Relaxed);
        let frames_min = counters.iter().map(|c| c.load(Ordering::Relaxed)).min().unwrap_or(0);
        json!({"peers": n, "connect_s": connect_s, "wall_s": wall, "cpu_s": cpu, "frames_min": frames_min,
               "frames_expected": (wall * 50.0) as u64, "max_rss_kib": peak_rss_kib()})
    };
    for t in tasks {
        t.abort();
    }
    for p in peers {
        p.close().await;
    }
    summarize_load(result)
}

/// Adds the per-peer figures to a raw load result.
fn summarize_load(mut v: Value) -> Value {
    let (Some(n), Some(cpu), Some(wall)) = (v["peers"].as_f64(), v["cpu_s"].as_f64(), v["wall_s"].as_f64()) else {
        return v;
    };
    let per_peer = cpu / wall / n; // fraction of one core
    let real_time = v["frames_min"].as_f64().unwrap_or(0.0) >= 0.97 * v["frames_expected"].as_f64().unwrap_or(f64::MAX);
    v["cpu_percent_of_core_per_peer"] = json!((per_peer * 1e4).round() / 100.0);
    v["cpu_ms_per_peer_second"] = json!((per_peer * 1e5).round() / 100.0);
    v["real_time"] = json!(real_time);
    v["peers_per_core"] = json!((1.0 / per_peer).floor());
    v
}

/// The largest-N run that held real time; its per-peer figures.
fn best(runs: &[Value]) -> Option<&Value> {
    runs.iter().filter(|r| r["real_time"] == json!(true)).max_by_key(|r| r["peers"].as_u64().unwrap_or(0))
}

fn list(var: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(var)
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).filter(|n: &usize| *n >= 2).collect())
        .unwrap_or_else(|| default.to_vec())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` probes harness=false benches
    }
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
    let only = std::env::var("BENCH_ONLY").ok();
    let run = |phase: &str| only.as_deref().is_none_or(|o| o.split(',').any(|p| p.trim() == phase));
    let budget = Duration::from_secs(if quick { 240 } else { 900 });
    std::thread::spawn(move || {
        std::thread::sleep(budget);
        eprintln!("peer bench: over its {budget:?} budget, aborting");
        std::process::exit(2);
    });
    let have_python = venv_python().exists();
    let (lat_secs, warmup, window) = if quick {
        (6.0, Duration::from_secs(1), Duration::from_secs(4))
    } else {
        (20.0, Duration::from_secs(3), Duration::from_secs(10))
    };
    let rust_ns = list("BENCH_RUST_PEERS", if quick { &[10] } else { &[10, 40] });
    let py_ns = list("BENCH_PY_PEERS", &[10]);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let result = rt.block_on(async {
        let server = TestServer::start().await;
        let latency = if run("latency") { latency_runs(&server, lat_secs, 250).await } else { Value::Null };
        let (mut rust_runs, mut py_runs) = (Vec::new(), Vec::new());
        if run("cpu") {
            for (i, &n) in rust_ns.iter().enumerate() {
                rust_runs.push(rust_load(&server, n, &format!("load-rs{i}"), warmup, window).await);
            }
            if have_python {
                for (i, &n) in py_ns.iter().enumerate() {
                    let args = json!({"mode": "load", "url": server.base_url(), "key": server.key(),
                                      "prefix": format!("load-py{i}"), "peers": n,
                                      "warmup_s": warmup.as_secs_f64(), "seconds": window.as_secs_f64()});
                    py_runs.push(match python(args, Duration::from_secs(180)).await {
                        Ok(v) => summarize_load(v),
                        Err(e) => json!({"peers": n, "error": e}),
                    });
                }
            }
        }
        server.shutdown().await;
        (latency, rust_runs, py_runs)
    });
    let (latency, rust_runs, py_runs) = result;

    // Verdicts against the issue's goals.
    let p50 = |pair: &str| {
        latency.as_array().and_then(|a| a.iter().find(|r| r["pair"] == pair)).and_then(|r| r["p50_ms"].as_f64())
    };
    let cpu_at = |runs: &[Value], n: u64| {
        runs.iter().find(|r| r["peers"].as_u64() == Some(n)).and_then(|r| r["cpu_ms_per_peer_second"].as_f64())
    };
    // CPU ratio at the same peer count on both sides (the first Python count).
    let same_n = py_runs.first().and_then(|r| r["peers"].as_u64());
    let ratio = same_n.and_then(|n| Some(cpu_at(&py_runs, n)? / cpu_at(&rust_runs, n)?));
    let out = json!({
        "bench": "peer",
        "quick": quick,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "latency_push_to_remote_iter_frames": latency,
        "cpu_per_active_audio_peer": {"rust": rust_runs, "python_official_sdk": py_runs},
        "peers_per_core": {
            "rust": best(&rust_runs).map(|r| r["peers_per_core"].clone()),
            "python_official_sdk": best(&py_runs).map(|r| r["peers_per_core"].clone()),
        },
        "verdicts": {
            "p50_under_40ms_rust_to_rust": p50("rust->rust").map(|v| v < 40.0),
            "cpu_ratio_python_over_rust": ratio.map(|r| (r * 100.0).round() / 100.0),
            "cpu_at_least_5x_less_than_python": ratio.map(|r| r >= 5.0),
        },
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
}
