//! AudioSource benchmark, side by side with the official Python SDK's
//! AudioSource in one run. Prints one JSON object.
//!
//! `cargo bench -p metered-realtime --bench audio_source` (BENCH_QUICK=1 for a
//! short run). The Python baseline runs from `.local/venv` (scripts/setup).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metered_realtime::audio::analysis::thd_n;
use metered_realtime::audio::resample::StereoResampler;
use metered_realtime::audio::{AudioSource, AudioSourceOptions, InputLayout, PacingTimer};
use metered_realtime::media::{AudioFrame, ChannelLayout};
use serde_json::{Value, json};

fn cpu_time() -> Duration {
    let mut t = libc_timespec();
    // SAFETY: clock_gettime writes into the struct we pass.
    #[allow(unsafe_code)]
    unsafe {
        libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t);
    }
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn libc_timespec() -> libc::timespec {
    libc::timespec { tv_sec: 0, tv_nsec: 0 }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn tone(rate: u32, secs: f64) -> Vec<u8> {
    let n = (f64::from(rate) * secs) as usize;
    (0..n)
        .flat_map(|i| {
            let v = (0.5 * 32767.0 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / f64::from(rate)).sin()) as i16;
            v.to_le_bytes()
        })
        .collect()
}

fn opts() -> AudioSourceOptions {
    AudioSourceOptions { input_rate: 16_000, input_layout: InputLayout::Mono, ..AudioSourceOptions::default() }
}

/// (a) push 20 ms chunks, pull one frame per chunk, on tokio's paused clock.
fn cpu_ours(seconds: f64) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
    let pcm = tone(16_000, seconds);
    rt.block_on(async {
        let src = AudioSource::new(AudioSourceOptions { timer: PacingTimer::Tokio, ..opts() }).unwrap();
        let mut frame = AudioFrame::from_s16(48_000, ChannelLayout::Stereo, 0, &[]);
        let mut frames = 0u32;
        let c0 = cpu_time();
        for chunk in pcm.chunks(640) {
            src.push(chunk).await;
            src.recv_into(&mut frame).await.unwrap();
            frames += 1;
        }
        let cpu = cpu_time() - c0;
        json!({"audio_seconds": seconds, "frames": frames, "cpu_seconds": cpu.as_secs_f64()})
    })
}

/// Resampler alone (the dominant cost): CPU per second of audio.
fn resampler_only(seconds: f64) -> Value {
    let pcm = tone(16_000, seconds);
    let mut r = StereoResampler::new(16_000, 1).unwrap();
    let mut out = VecDeque::with_capacity(4096);
    let c0 = cpu_time();
    for s in pcm.chunks_exact(2) {
        let x = f32::from(i16::from_le_bytes([s[0], s[1]])) / 32768.0;
        r.feed(x, x, &mut out);
        if out.len() > 2048 {
            out.clear();
        }
    }
    let cpu = cpu_time() - c0;
    json!({"cpu_ms_per_audio_second": cpu.as_secs_f64() * 1000.0 / seconds})
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// (b) `sources` sources in real time for `secs`: a task per source pushes 20 ms
/// and pulls a frame, recording emission instants against the 20 ms schedule.
/// Sources take 48 kHz stereo so this measures pacing, not resampling (whose
/// cost is reported apart: ~1 ms of CPU per second of 16 kHz audio).
fn pacing(sources: usize, secs: f64) -> Value {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let chunk = Arc::new(tone(48_000, 0.04)); // 20 ms of interleaved stereo bytes
    let opts = || AudioSourceOptions { input_rate: 48_000, input_layout: InputLayout::Stereo, ..opts() };
    rt.block_on(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let rss0 = rss_kib();
        let srcs: Vec<AudioSource> = (0..sources).map(|_| AudioSource::new(opts()).unwrap()).collect();
        let rss1 = rss_kib();
        let idle_rss_per_source_kib = rss1.saturating_sub(rss0) as f64 / sources as f64;
        // Idle sources of the default kind (16 kHz mono, with a resampler).
        let idle: Vec<AudioSource> = (0..sources).map(|_| AudioSource::new(self::opts()).unwrap()).collect();
        let idle_16k_rss_per_source_kib = rss_kib().saturating_sub(rss1) as f64 / sources as f64;
        drop(idle);
        let c0 = cpu_time();
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs_f64(secs);
        let tasks: Vec<_> = srcs
            .into_iter()
            .map(|src| {
                let chunk = chunk.clone();
                tokio::spawn(async move {
                    let mut frame = AudioFrame::from_s16(48_000, ChannelLayout::Stereo, 0, &[]);
                    let mut devs = Vec::with_capacity((secs * 50.0) as usize + 8);
                    let mut first = None;
                    let mut n = 0u32;
                    while Instant::now() < deadline {
                        src.push(&chunk).await;
                        src.recv_into(&mut frame).await.unwrap();
                        let now = Instant::now();
                        let first = *first.get_or_insert(now);
                        let scheduled = first + Duration::from_millis(20) * n;
                        devs.push(
                            now.saturating_duration_since(scheduled).as_secs_f64() * 1000.0
                                - scheduled.saturating_duration_since(now).as_secs_f64() * 1000.0,
                        );
                        n += 1;
                    }
                    devs
                })
            })
            .collect();
        let mut all = Vec::new();
        let mut max_drift: f64 = 0.0;
        for t in tasks {
            let devs = t.await.unwrap();
            if let Some(last) = devs.last() {
                max_drift = max_drift.max(last.abs());
            }
            all.extend(devs.into_iter().skip(1));
        }
        let wall = t0.elapsed().as_secs_f64();
        let cpu = (cpu_time() - c0).as_secs_f64();
        all.sort_by(f64::total_cmp);
        json!({
            "sources": sources,
            "seconds": secs,
            "frames": all.len(),
            "p50_ms": percentile(&all, 0.5),
            "p99_ms": percentile(&all, 0.99),
            "max_ms": all.last(),
            "max_abs_drift_at_end_ms": max_drift,
            "cpu_percent_of_one_core": 100.0 * cpu / wall,
            "idle_rss_per_source_kib": idle_rss_per_source_kib,
            "idle_rss_per_16k_mono_source_kib": idle_16k_rss_per_source_kib,
        })
    })
}

fn python(args: &[&str]) -> Value {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let py = root.join(".local/venv/bin/python");
    if !py.exists() {
        return json!({"skipped": "no .local/venv (run scripts/setup)"});
    }
    let out = Command::new(py).arg(root.join("host/benches/py/audio_source_bench.py")).args(args).output();
    match out {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout).unwrap_or(json!({"error": "bad JSON"})),
        Ok(o) => json!({"error": String::from_utf8_lossy(&o.stderr).chars().take(400).collect::<String>()}),
        Err(e) => json!({"error": e.to_string()}),
    }
}

fn quality() -> Value {
    // Measured on the real resampler: the same analysis the unit test asserts.
    let mut rows = Vec::new();
    for freq in [1000.0, 7000.0] {
        let (thdn, gain) = sine_quality(freq);
        rows.push(json!({"freq_hz": freq, "thd_n_db": (thdn * 10.0).round() / 10.0, "gain_db": (gain * 1000.0).round() / 1000.0}));
    }
    let delay = StereoResampler::new(16_000, 1).unwrap().delay_frames();
    json!({"input": "16 kHz mono sine at -6 dBFS", "results": rows, "added_latency_ms": delay as f64 / 48.0})
}

fn sine_quality(freq: f64) -> (f64, f64) {
    let mut r = StereoResampler::new(16_000, 1).unwrap();
    let mut out = VecDeque::new();
    for i in 0..32_000 {
        let s = (0.5 * 32767.0 * (2.0 * std::f64::consts::PI * freq * f64::from(i) / 16_000.0).sin()).round();
        let x = s as f32 / 32768.0;
        r.feed(x, x, &mut out);
    }
    let left: Vec<f64> = out.iter().step_by(2).map(|v| f64::from(*v) / 32768.0).collect();
    let (thdn, amp) = thd_n(&left[4800..left.len() - 4800], 48_000.0, freq);
    (thdn, 20.0 * (amp / (0.5 * 32767.0 / 32768.0)).log10())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
    let secs = if quick { 3.0 } else { 10.0 };
    let ours = cpu_ours(60.0);
    let theirs = python(&["cpu", "60"]);
    let ratio = theirs["cpu_seconds"].as_f64().map(|t| t / ours["cpu_seconds"].as_f64().unwrap_or(f64::NAN));
    let pacing_ours: Vec<Value> = [1, 100, 1000].iter().map(|n| pacing(*n, secs)).collect();
    let pacing_theirs: Vec<Value> =
        [1, 100].iter().map(|n| python(&["pacing", &n.to_string(), &secs.to_string()])).collect();
    let result = json!({
        "bench": "audio_source",
        "cpu_60s_16k_mono_in_20ms_chunks": {
            "method": "push 20 ms, pull one 48 kHz stereo frame, repeat; pacing on a virtual clock (tokio paused time / patched time.monotonic + asyncio.sleep); process CPU time",
            "ours": ours,
            "official_python_sdk": theirs,
            "ratio_official_over_ours": ratio,
            "resampler_only": resampler_only(60.0),
        },
        "pacing": {"ours": pacing_ours, "official_python_sdk": pacing_theirs},
        "resampling_quality": quality(),
        "machine_cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
    });
    println!("{}", serde_json::to_string_pretty(&result).unwrap());
}
