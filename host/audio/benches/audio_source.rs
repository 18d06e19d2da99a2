//! AudioSource benchmark, side by side with the official Python SDK's
//! AudioSource in one run. Prints one JSON object.
//!
//! `cargo bench -p metered-audio --bench audio_source` (`BENCH_QUICK=1` for a
//! short run). The Python baseline runs from `$CARGO_MANIFEST_DIR/../.local/venv`
//! (made by scripts/setup); without it the baseline is reported as skipped.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metered_audio::analysis::{resampled_sine_quality, resampler_latency_ms};
use metered_audio::resample::StereoResampler;
use metered_audio::{AudioSource, AudioSourceOptions, InputLayout, PacingTimer};
use metered_media::{AudioFrame, ChannelLayout};
use serde_json::{Value, json};

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

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Busy CPU time of the whole machine (all processes), from /proc/stat.
fn machine_busy() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else { return Duration::ZERO };
    let Some(line) = stat.lines().next() else { return Duration::ZERO };
    // user nice system idle iowait irq softirq steal …, in USER_HZ (100/s).
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let busy: u64 = v.iter().enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, x)| x).sum();
    Duration::from_millis(busy * 10)
}

/// A 440 Hz tone at −6 dBFS, `channels` interleaved, as s16 LE bytes.
fn tone(rate: u32, channels: usize, secs: f64) -> Vec<u8> {
    let n = (f64::from(rate) * secs) as usize;
    (0..n)
        .flat_map(|i| {
            let v = (0.5 * 32767.0 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / f64::from(rate)).sin()) as i16;
            std::iter::repeat_n(v.to_le_bytes(), channels).flatten()
        })
        .collect()
}

fn opts(rate: u32) -> AudioSourceOptions {
    let layout = if rate == 48_000 { InputLayout::Stereo } else { InputLayout::Mono };
    AudioSourceOptions { input_rate: rate, input_layout: layout, ..AudioSourceOptions::default() }
}

/// (a) Push 20 ms of 16 kHz mono, pull one 48 kHz frame, repeat, on tokio's
/// paused clock (the pacer's waits cost no real time).
fn cpu_ours(seconds: f64) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
    let pcm = tone(16_000, 1, seconds);
    rt.block_on(async {
        let src = AudioSource::new(AudioSourceOptions { timer: PacingTimer::Tokio, ..opts(16_000) }).unwrap();
        let mut frame = AudioFrame::from_s16(48_000, ChannelLayout::Stereo, 0, &[]);
        let mut frames = 0u32;
        let c0 = cpu_time();
        for chunk in pcm.chunks(640) {
            src.push(chunk).await;
            src.recv_into(&mut frame).await.unwrap();
            frames += 1;
        }
        let cpu = cpu_time() - c0;
        json!({"audio_seconds": seconds, "frames": frames, "cpu_seconds": cpu.as_secs_f64(),
               "cpu_ms_per_audio_second": cpu.as_secs_f64() * 1000.0 / seconds})
    })
}

/// The resampler alone (the dominant cost), fed in 20 ms pushes.
fn resampler_only(seconds: f64) -> Value {
    let pcm = tone(16_000, 1, seconds);
    let mut r = StereoResampler::new(16_000, 1).unwrap();
    let mut out = VecDeque::with_capacity(8192);
    let c0 = cpu_time();
    for chunk in pcm.chunks(640) {
        r.push_s16le(chunk, &mut out);
        out.clear();
    }
    let cpu = cpu_time() - c0;
    json!({"cpu_ms_per_audio_second": cpu.as_secs_f64() * 1000.0 / seconds,
           "ns_per_output_frame": cpu.as_secs_f64() * 1e9 / (seconds * 48_000.0)})
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// (b) `sources` sources in real time for `secs` on a 2-worker runtime: a task
/// per source pushes 20 ms and pulls a frame, recording when each frame comes
/// out against that source's schedule (first frame + n · 20 ms). `staggered`
/// spreads the sources' starts over one 20 ms period (independent calls);
/// otherwise all start at once, so every frame of every source is due at the
/// same instant (the worst case).
fn pacing(sources: usize, secs: f64, rate: u32, staggered: bool) -> Value {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let channels = if rate == 48_000 { 2 } else { 1 };
    let chunk = Arc::new(tone(rate, channels, 0.02));
    rt.block_on(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let rss0 = rss_kib();
        let srcs: Vec<AudioSource> = (0..sources).map(|_| AudioSource::new(opts(rate)).unwrap()).collect();
        let idle_rss_per_source_kib = rss_kib().saturating_sub(rss0) as f64 / sources as f64;
        let (c0, m0) = (cpu_time(), machine_busy());
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs_f64(secs);
        let tasks: Vec<_> = srcs
            .into_iter()
            .enumerate()
            .map(|(i, src)| {
                let chunk = chunk.clone();
                let offset =
                    if staggered { Duration::from_micros(20_000 * i as u64 / sources as u64) } else { Duration::ZERO };
                tokio::spawn(async move {
                    tokio::time::sleep(offset).await;
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
                    (devs, src.underruns(), src.resyncs())
                })
            })
            .collect();
        let mut all = Vec::new();
        let mut max_drift: f64 = 0.0;
        let (mut underruns, mut resyncs) = (0, 0);
        let mut max_trend: f64 = 0.0;
        for t in tasks {
            let (devs, u, r) = t.await.unwrap();
            underruns += u;
            resyncs += r;
            if let Some(last) = devs.last() {
                max_drift = max_drift.max(last.abs());
            }
            // Cumulative drift: mean deviation over the last 50 frames minus
            // over the first 50 (jitter averages out, a drifting clock doesn't).
            if devs.len() >= 150 {
                let mean = |d: &[f64]| d.iter().sum::<f64>() / d.len() as f64;
                let trend = mean(&devs[devs.len() - 50..]) - mean(&devs[1..51]);
                max_trend = max_trend.max(trend.abs());
            }
            all.extend(devs.into_iter().skip(1));
        }
        let wall = t0.elapsed().as_secs_f64();
        let cpu = (cpu_time() - c0).as_secs_f64();
        let machine = machine_busy().saturating_sub(m0).as_secs_f64();
        all.sort_by(f64::total_cmp);
        json!({
            "other_processes_cpu_percent_of_one_core": (100.0 * (machine - cpu) / wall).max(0.0),
            "sources": sources,
            "input": if rate == 48_000 { "48 kHz stereo (no resampling)" } else { "16 kHz mono (resampled)" },
            "starts": if staggered { "staggered over 20 ms" } else { "all at once" },
            "seconds": secs,
            "frames": all.len(),
            "p50_ms": percentile(&all, 0.5),
            "p99_ms": percentile(&all, 0.99),
            "p999_ms": percentile(&all, 0.999),
            "max_ms": all.last(),
            "max_abs_deviation_of_last_frame_ms": max_drift,
            "max_abs_drift_ms": max_trend,
            "schedule_reanchors": resyncs,
            "cpu_percent_of_one_core": 100.0 * cpu / wall,
            "cpu_ms_per_audio_second": 1000.0 * cpu / (secs * sources as f64),
            "idle_rss_per_source_kib": idle_rss_per_source_kib,
            "underrun_frames": underruns,
        })
    })
}

fn python(args: &[&str]) -> Value {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let py = root.join(".local/venv/bin/python");
    if !py.exists() {
        return json!({"skipped": "no .local/venv (run scripts/setup)"});
    }
    let out = Command::new(py).arg(root.join("host/audio/benches/py/audio_source_bench.py")).args(args).output();
    match out {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout).unwrap_or(json!({"error": "bad JSON"})),
        Ok(o) => json!({"error": String::from_utf8_lossy(&o.stderr).chars().take(400).collect::<String>()}),
        Err(e) => json!({"error": e.to_string()}),
    }
}

/// (c) The same measurements the unit test asserts, on the real resampler.
fn quality() -> Value {
    let rows: Vec<Value> = [1000.0, 7000.0]
        .iter()
        .map(|f| {
            let q = resampled_sine_quality(*f);
            json!({"freq_hz": f, "thd_n_db": (q.thd_n_db * 10.0).round() / 10.0,
                   "gain_db": (q.gain_db * 1000.0).round() / 1000.0, "mono_duplicated": q.channels_identical})
        })
        .collect();
    let nominal = StereoResampler::new(16_000, 1).map_or(0, |r| r.delay_frames()) as f64 / 48.0;
    json!({
        "input": "16 kHz mono sine at -6 dBFS, 2 s in 20 ms pushes; steady state",
        "resampler": "rubato 56-tap Blackman-Harris sinc table (cutoff 0.97) driven by a streaming polyphase convolution (16 kHz is 3 phases)",
        "results": rows,
        "added_latency_ms_measured": resampler_latency_ms(),
        "added_latency_ms_nominal": nominal,
    })
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
    let mut pacing_ours = Vec::new();
    for n in [1, 100, 1000] {
        pacing_ours.push(pacing(n, secs, 48_000, false));
    }
    pacing_ours.push(pacing(1000, secs, 48_000, true));
    pacing_ours.push(pacing(1000, secs, 16_000, true));
    let pacing_theirs: Vec<Value> =
        [1, 100, 1000].iter().map(|n| python(&["pacing", &n.to_string(), &secs.to_string()])).collect();
    let result = json!({
        "bench": "audio_source",
        "cpu_60s_16k_mono_in_20ms_chunks": {
            "method": "push 20 ms of 16 kHz mono, pull one 48 kHz stereo 20 ms frame, repeat 3000 times; the pacer runs on a virtual clock (ours: tokio paused time; official: time.monotonic and asyncio.sleep patched), so only push + resample + framing + recv is measured; process CPU time",
            "ours": ours,
            "official_python_sdk": theirs,
            "ratio_official_over_ours": ratio,
            "resampler_only": resampler_only(60.0),
        },
        "pacing": {
            "method": "one task per source on a 2-worker tokio runtime: push 20 ms, recv one frame; deviation = when recv returned minus (first frame + n*20 ms); drift = per source, mean deviation of the last 50 frames minus the first 50, max over sources; schedule_reanchors = stalls over 100 ms; CPU = process CPU / wall; other_processes_cpu = machine-wide busy CPU minus ours over the run (the machine is shared: read the timing figures against it); RSS per idle source = RSS growth after constructing the sources / sources",
            "ours": pacing_ours,
            "official_python_sdk": pacing_theirs,
        },
        "resampling_quality": quality(),
        "machine_cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "quick": quick,
    });
    println!("{}", serde_json::to_string_pretty(&result).unwrap_or_default());
}
