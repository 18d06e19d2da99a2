//! Agent runtime benchmark: the echo agent of every guest language (Rust,
//! Python, JS), side by side. Prints one JSON object with, per language:
//!
//! - `instantiate_us`: p50/p99 of instantiating the echo agent from a warm
//!   `InstancePre` (pooling allocator, copy-on-write memory image);
//! - `per_frame_us`: host↔guest cost of one 20 ms frame (`next` + `push`):
//!   the echo agent against a native Rust loop doing the same media work;
//! - `density`: echo agents running at once on the real clock, each fed a
//!   numbered 20 ms frame on schedule (agents' phases spread evenly over the
//!   20 ms, as independent peers' are) and checked frame by frame on the way
//!   out (a miss = an output frame that is silent or out of sequence once
//!   started, i.e. later than ~10 ms), with RSS per agent and process CPU;
//! - `rss_per_idle_instance_kib`.
//!
//! `cargo bench -p metered-runtime --bench runtime`
//! (`BENCH_QUICK=1` for a short run, `BENCH_LANGS=rust,python` for some
//! languages). Guests are built from `guests/` by `guests/build`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use metered_audio::{AudioSource, AudioSourceOptions, InputLayout, PacingTimer};
use metered_guest_build::GuestLang;
use metered_media::{AudioFrame, ChannelLayout, Frame, MediaKind, MediaStreamTrack, StreamMetadata, TrackEnded};
use metered_runtime::{
    AgentExit, AgentInfo, AgentSpec, BoxFuture, RoomError, RoomEvent, RoomHost, RoomSession, Runtime, RuntimeConfig,
};
use parking_lot::Mutex;
use serde_json::json;

/// The echo agent of `lang` (`rust`, `python`, `js`), built from `guests/`
/// by the shared guest builder.
fn echo_component(lang: &str) -> Vec<u8> {
    let lang = match lang {
        "rust" => GuestLang::Rust,
        "python" => GuestLang::Python,
        "js" => GuestLang::Js,
        other => panic!("no guest language {other}"),
    };
    metered_guest_build::guest_bytes(lang, "echo_agent")
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4096
}

/// Process CPU time (user + system), from /proc/self/stat.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<f64> = after.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    // Fields after the command: state(skipped, not a number) ... utime is the 14th
    // field overall, i.e. index 11 of the numeric fields that follow `state`.
    (f.get(10).unwrap_or(&0.0) + f.get(11).unwrap_or(&0.0)) / 100.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// A 20 ms 48 kHz stereo frame whose every sample is `value`.
fn frame(value: i16, pts: u64) -> AudioFrame {
    AudioFrame::from_s16(48_000, ChannelLayout::Stereo, pts, &[value; 1920])
}

/// Hands out `n` copies of a frame immediately (no pacing), then ends.
struct InstantTrack {
    left: AtomicU64,
    frame: AudioFrame,
    /// When the first frame was handed out: the agent has started up.
    started_at: Mutex<Option<Instant>>,
    /// When the first `Ended` was handed out: after the last frame was pushed.
    ended_at: Mutex<Option<Instant>>,
}

impl InstantTrack {
    fn new(frames: u64) -> Self {
        Self {
            left: AtomicU64::new(frames),
            frame: frame(7, 0),
            started_at: Mutex::new(None),
            ended_at: Mutex::new(None),
        }
    }
}

impl MediaStreamTrack for InstantTrack {
    fn kind(&self) -> MediaKind {
        MediaKind::Audio
    }
    fn id(&self) -> &str {
        "instant"
    }
    fn poll_recv_into(&self, _cx: &mut Context<'_>, out: &mut Frame) -> Poll<Result<(), TrackEnded>> {
        match self.left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)) {
            Ok(_) => {
                self.started_at.lock().get_or_insert_with(Instant::now);
                match out {
                    Frame::Audio(a) => a.clone_from(&self.frame),
                    other => *other = Frame::Audio(self.frame.clone()),
                }
                Poll::Ready(Ok(()))
            }
            Err(_) => {
                self.ended_at.lock().get_or_insert_with(Instant::now);
                Poll::Ready(Err(TrackEnded))
            }
        }
    }
    fn stop(&self) {
        self.left.store(0, Ordering::Relaxed);
    }
}

/// Frame `k` (value `k + 1`) at `start + k·20 ms`, on tokio's timer.
struct NumberedTrack {
    start: tokio::time::Instant,
    frames: u64,
    next: Mutex<(u64, Option<std::pin::Pin<Box<tokio::time::Sleep>>>)>,
}

impl MediaStreamTrack for NumberedTrack {
    fn kind(&self) -> MediaKind {
        MediaKind::Audio
    }
    fn id(&self) -> &str {
        "numbered"
    }
    fn poll_recv_into(&self, cx: &mut Context<'_>, out: &mut Frame) -> Poll<Result<(), TrackEnded>> {
        let mut st = self.next.lock();
        let k = st.0;
        if k >= self.frames {
            return Poll::Ready(Err(TrackEnded));
        }
        let due = self.start + Duration::from_millis(20 * k);
        let sleep = st.1.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        sleep.as_mut().reset(due);
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        st.0 += 1;
        *out = Frame::Audio(frame((k + 1) as i16, k * 960));
        Poll::Ready(Ok(()))
    }
    fn stop(&self) {
        self.next.lock().0 = u64::MAX;
    }
}

/// A room whose one peer sends `track`; published tracks go to `sink`.
struct BenchRoom {
    track: Mutex<Option<Arc<dyn MediaStreamTrack>>>,
    sink: Box<dyn Fn(Arc<dyn MediaStreamTrack>) + Send + Sync>,
}

struct BenchSession {
    events: VecDeque<RoomEvent>,
    sink: Arc<BenchRoom>,
}

struct Joined(Arc<BenchRoom>);

impl RoomHost for Joined {
    fn join<'a>(&'a self, _: &'a AgentInfo, _: &'a str) -> BoxFuture<'a, Result<Box<dyn RoomSession>, RoomError>> {
        let track = self.0.track.lock().take();
        let events = track
            .map(|track| RoomEvent::Track {
                peer_id: "peer".into(),
                stream_id: "s".into(),
                track,
                metadata: StreamMetadata::new(),
            })
            .into_iter()
            .collect();
        let session = BenchSession { events, sink: self.0.clone() };
        Box::pin(async move { Ok(Box::new(session) as Box<dyn RoomSession>) })
    }
}

impl RoomSession for BenchSession {
    fn peer_id(&self) -> &str {
        "bench"
    }
    fn add_track(&mut self, track: Arc<dyn MediaStreamTrack>, _: &str, _: StreamMetadata) -> Result<(), RoomError> {
        (self.sink.sink)(track);
        Ok(())
    }
    fn replace_track(&mut self, _: &str, _: Option<Arc<dyn MediaStreamTrack>>) -> Result<(), RoomError> {
        Ok(())
    }
    fn send_data(&mut self, _: Option<&str>, _: &str) -> Result<(), RoomError> {
        Ok(())
    }
    fn poll_event(&mut self, _: &mut Context<'_>) -> Poll<Option<RoomEvent>> {
        match self.events.pop_front() {
            Some(e) => Poll::Ready(Some(e)),
            None => Poll::Pending,
        }
    }
}

fn room(
    track: Arc<dyn MediaStreamTrack>,
    sink: impl Fn(Arc<dyn MediaStreamTrack>) + Send + Sync + 'static,
) -> Arc<Joined> {
    Arc::new(Joined(Arc::new(BenchRoom { track: Mutex::new(Some(track)), sink: Box::new(sink) })))
}

/// Checks an echo's output frame by frame, reading until the track ends: once
/// started, frame values must run 1, 2, 3, … with no silent frame in between.
/// Returns (frames checked, misses).
///
/// Reading starts half a frame after the input's schedule, so each echoed frame
/// has a ~10 ms deadline: a frame the agent pushes later than that shows up
/// as a silent frame (a miss).
async fn check_output(track: Arc<dyn MediaStreamTrack>, start: tokio::time::Instant) -> (u64, u64) {
    tokio::time::sleep_until(start + Duration::from_millis(10)).await;
    let (mut prev, mut silent, mut checked, mut misses) = (0i32, 0u64, 0u64, 0u64);
    while let Ok(Frame::Audio(f)) = track.recv().await {
        let first = i32::from(i16::from_le_bytes([f.data[0], f.data[1]]));
        let last = i32::from(i16::from_le_bytes([f.data[f.data.len() - 2], f.data[f.data.len() - 1]]));
        if first == 0 && last == 0 {
            silent += u64::from(prev != 0);
            continue;
        }
        checked += 1;
        if prev != 0 {
            misses += silent + u64::from(first != prev + 1 || last != first);
        }
        silent = 0;
        prev = first;
    }
    (checked, misses)
}

/// What one language is measured with: sample sizes and the agent counts of
/// the density runs.
struct Plan {
    lang: &'static str,
    instantiations: usize,
    frames: u64,
    counts: &'static [usize],
    idle: usize,
}

fn plans(quick: bool) -> Vec<Plan> {
    let all = vec![
        Plan {
            lang: "rust",
            instantiations: if quick { 500 } else { 5_000 },
            frames: if quick { 2_000 } else { 10_000 },
            counts: if quick { &[100, 500] } else { &[250, 500, 1000, 1500] },
            idle: 1000,
        },
        Plan {
            lang: "python",
            instantiations: if quick { 50 } else { 300 },
            frames: if quick { 1_000 } else { 3_000 },
            counts: if quick { &[25] } else { &[25, 50, 100] },
            idle: 50,
        },
        Plan {
            lang: "js",
            instantiations: if quick { 100 } else { 1_000 },
            frames: if quick { 1_000 } else { 3_000 },
            counts: if quick { &[25] } else { &[25, 50, 100] },
            idle: 50,
        },
    ];
    let only = std::env::var("BENCH_LANGS").ok();
    all.into_iter().filter(|p| only.as_deref().is_none_or(|o| o.split(',').any(|l| l.trim() == p.lang))).collect()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` probes harness=false benches
    }
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut languages = serde_json::Map::new();
    for plan in plans(quick) {
        let result = bench_language(&tokio, &plan, quick);
        languages.insert(plan.lang.to_owned(), result);
    }
    let verdict = |lang: &str, f: &dyn Fn(&serde_json::Value) -> Option<bool>| languages.get(lang).and_then(f);
    let real_time_at = |v: &serde_json::Value, n: u64| {
        v["density"].as_array().and_then(|d| {
            d.iter().find(|r| r["agents"].as_u64() == Some(n)).map(|r| r["misses"] == 0 && r["finished"] == n)
        })
    };
    let out = json!({
        "bench": "runtime",
        "quick": quick,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "load_average": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
        "languages": languages,
        "goals": {
            "rust_instantiate_p50_le_10us": verdict("rust", &|v| Some(v["instantiate_us"]["p50"].as_f64()? <= 10.0)),
            "rust_per_frame_overhead_le_2us": verdict("rust", &|v| Some(v["per_frame_us"]["overhead_us"].as_f64()? <= 2.0)),
            "python_per_frame_overhead_le_25us": verdict("python", &|v| Some(v["per_frame_us"]["overhead_us"].as_f64()? <= 25.0)),
            "js_per_frame_overhead_le_25us": verdict("js", &|v| Some(v["per_frame_us"]["overhead_us"].as_f64()? <= 25.0)),
            "rust_1000_agents_real_time": verdict("rust", &|v| real_time_at(v, 1000)),
            "python_50_agents_real_time": verdict("python", &|v| real_time_at(v, 50)),
            "rust_rss_per_agent_lt_1mib": verdict("rust", &|v| {
                let d = v["density"].as_array()?;
                Some(d.iter().filter_map(|r| r["rss_per_agent_kib"].as_f64()).all(|k| k < 1024.0))
            }),
        },
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}

/// Every measurement of one language's echo agent.
fn bench_language(tokio: &tokio::runtime::Runtime, plan: &Plan, quick: bool) -> serde_json::Value {
    let echo_bytes = echo_component(plan.lang);
    let mut config = RuntimeConfig::default();
    // The per-frame run feeds frames with no pacing, so the echo never waits:
    // lift the caps that would (rightly) end it, and let it buffer everything.
    config.limits.max_buffered_seconds = 3600.0;
    config.limits.calls_per_event = u32::MAX;
    config.limits.event_budget = Duration::from_secs(60);
    let runtime = Runtime::new(config).expect("runtime");
    let compile_start = Instant::now();
    let echo = runtime.load_agent(&echo_bytes).expect("load");
    let compile_ms = compile_start.elapsed().as_secs_f64() * 1e3;
    let cached_start = Instant::now();
    let _ = runtime.load_agent(&echo_bytes).expect("load");
    let cached_ms = cached_start.elapsed().as_secs_f64() * 1e3;

    // Instantiation from a warm InstancePre.
    let n = plan.instantiations;
    let mut times = Vec::with_capacity(n);
    tokio.block_on(async {
        for _ in 0..n {
            let t = Instant::now();
            let agent = echo.instantiate(AgentSpec::new("{}")).await.expect("instantiate");
            times.push(t.elapsed().as_secs_f64() * 1e6);
            drop(agent);
        }
    });
    times.sort_by(f64::total_cmp);
    let instantiate = json!({"p50": percentile(&times, 0.5), "p99": percentile(&times, 0.99), "n": n});

    // Per-frame cost: `next` + `push` through the guest vs a native loop.
    let frames = plan.frames;
    let opts = AudioSourceOptions {
        input_rate: 48_000,
        input_layout: InputLayout::Stereo,
        max_buffered_seconds: 3600.0,
        timer: PacingTimer::Tokio,
    };
    let native = |frames: u64| {
        let opts = opts.clone();
        async move {
            let track: Arc<dyn MediaStreamTrack> = Arc::new(InstantTrack::new(frames));
            let source = AudioSource::new(opts).unwrap();
            let t = Instant::now();
            while let Ok(Frame::Audio(f)) = track.recv().await {
                source.push(&f.data).await;
            }
            t.elapsed().as_secs_f64() * 1e6 / frames as f64
        }
    };
    // The guest path: the echo agent between the same track and a source with
    // a cap large enough that nobody needs to read it.
    let guest = |frames: u64| {
        let echo = echo.clone();
        async move {
            let track = Arc::new(InstantTrack::new(frames));
            let r = room(track.clone(), |_| {});
            let agent = echo.instantiate(AgentSpec::new(r#"{"buffer": 3600}"#).room(r)).await.unwrap();
            let handle = tokio::spawn(agent.run());
            // From the first frame handed out (start-up excluded) to the
            // guest asking for one past the last: `frames` iterations of
            // `next` + `push`. The echo then waits for a playout nobody
            // paces: stop it.
            let (t, end) = loop {
                if let (Some(t), Some(end)) = (*track.started_at.lock(), *track.ended_at.lock()) {
                    break (t, end);
                }
                assert!(!handle.is_finished(), "the echo agent ended early");
                tokio::time::sleep(Duration::from_millis(1)).await;
            };
            handle.abort();
            let _ = handle.await;
            (end - t).as_secs_f64() * 1e6 / frames as f64
        }
    };
    let (mut native_us, mut guest_us) = (f64::MAX, f64::MAX);
    tokio.block_on(async {
        for _ in 0..5 {
            native_us = native_us.min(native(frames).await);
            guest_us = guest_us.min(guest(frames).await);
        }
    });
    let per_frame = json!({
        "guest_us": guest_us,
        "native_us": native_us,
        "overhead_us": guest_us - native_us,
        "frames": frames,
    });

    // Density on the real clock.
    let seconds: u64 = if quick { 3 } else { 6 };
    let counts = plan.counts;
    let mut density = Vec::new();
    for &k in counts {
        let result = tokio.block_on(async {
            let rss0 = rss_bytes();
            let cpu0 = cpu_secs();
            let start = tokio::time::Instant::now() + Duration::from_millis(500);
            let frames = seconds * 50;
            let results = Arc::new(Mutex::new(Vec::new()));
            let mut handles = Vec::with_capacity(k);
            for i in 0..k {
                // Agents' inputs come from independent peers: their 20 ms
                // phases are spread evenly rather than all due at one instant.
                let start = start + Duration::from_micros(20_000 * i as u64 / k as u64);
                let track = Arc::new(NumberedTrack { start, frames, next: Mutex::new((0, None)) });
                let results = results.clone();
                let r = room(track, move |out| {
                    let results = results.clone();
                    tokio::spawn(async move {
                        let r = check_output(out, start).await;
                        results.lock().push(r);
                    });
                });
                handles.push(echo.spawn(AgentSpec::new("{}").room(r)).await.expect("spawn"));
            }
            tokio::time::sleep_until(start + Duration::from_secs(seconds / 2)).await;
            let rss_mid = rss_bytes();
            let mut exits = 0;
            let deadline = start + Duration::from_secs(seconds + 10);
            while !handles.iter().all(|h| h.is_finished()) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            for h in handles {
                h.stop(); // no effect on agents that finished
                if h.join().await.exit == AgentExit::Finished {
                    exits += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            let wall = start.elapsed().as_secs_f64() + 0.5;
            let cpu = cpu_secs() - cpu0;
            let res = results.lock();
            let checked: u64 = res.iter().map(|r| r.0).sum();
            let misses: u64 = res.iter().map(|r| r.1).sum();
            json!({
                "agents": k,
                "finished": exits,
                "frames_checked": checked,
                "frames_expected": frames * k as u64,
                "misses": misses,
                "rss_per_agent_kib": (rss_mid.saturating_sub(rss0)) as f64 / k as f64 / 1024.0,
                "cpu_percent": cpu / wall * 100.0,
            })
        });
        density.push(result);
    }

    // RSS of idle instances only (no media).
    let idle = tokio.block_on(async {
        let k = plan.idle;
        let rss0 = rss_bytes();
        let mut live = Vec::with_capacity(k);
        for _ in 0..k {
            live.push(echo.instantiate(AgentSpec::new("{}")).await.unwrap());
        }
        let per = rss_bytes().saturating_sub(rss0) as f64 / k as f64 / 1024.0;
        drop(live);
        per
    });

    json!({
        "component_bytes": echo_bytes.len(),
        "compile_ms": compile_ms,
        "load_cached_ms": cached_ms,
        "instantiate_us": instantiate,
        "per_frame_us": per_frame,
        "density": density,
        "rss_per_idle_instance_kib": idle,
    })
}
