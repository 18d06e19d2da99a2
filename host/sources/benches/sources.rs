//! Sources benchmark: this crate against the official SDK's `from_file` /
//! `from_rtsp` (aiortc's MediaPlayer on PyAV, `tests/media/bench_sdk.py`),
//! on the same files in the same run, one after the other. Prints JSON.
//!
//! ```sh
//! cargo bench -p metered-sources --bench sources            # 10 s per file
//! BENCH_SECONDS=30 BENCH_LOOP_SECONDS=600 cargo bench -p metered-sources --bench sources
//! BENCH_ONLY=rtsp cargo bench -p metered-sources --bench sources   # RTSP first frame only
//! ```
//!
//! Figures: CPU seconds per second of media (audio-only AAC; H.264+AAC
//! 640x480@30 of a moving pattern), audio pacing (lateness of each 20 ms
//! frame against the first, p99 and max), A/V drift on a looped file (audio
//! vs video arrival against their timestamps), RSS per open player, RTSP
//! open-to-first-frame.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use metered_media::{Frame, iter_frames};
use metered_media_fixtures::{MediaSpec, RtspServer};
use metered_sources::{RtspTransport, Sources};
use serde_json::{Value, json};

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// This process's CPU time (user + system), from /proc (clock ticks).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn percentile(xs: &mut [f64], p: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    xs[((p / 100.0) * (xs.len() - 1) as f64).round() as usize]
}

fn ffmpeg(args: &[&str], out: &Path) {
    let status = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-y", "-loglevel", "error"])
        .args(args)
        .arg(out)
        .status()
        .expect("ffmpeg");
    assert!(status.success(), "ffmpeg failed for {}", out.display());
}

fn make_files(dir: &Path, seconds: f64) -> (PathBuf, PathBuf) {
    let t = format!("{seconds}");
    let aac = dir.join("audio.m4a");
    ffmpeg(&["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-ac", "2", "-t", &t, "-c:a", "aac"], &aac);
    let av = dir.join("av.mp4");
    ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x480:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-ac",
            "2",
            "-t",
            &t,
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "60",
            "-c:a",
            "aac",
        ],
        &av,
    );
    (aac, av)
}

/// Plays `path` for `seconds` of media, consuming both tracks.
async fn play(path: &Path, seconds: f64, looping: bool) -> Value {
    let player = Sources::operator().from_file(path.to_str().unwrap(), looping).await.expect("opens");
    let cpu0 = cpu_seconds();
    let audio = player.audio.as_ref().map(|a| a.track());
    let video = player.video.as_ref().map(|v| v.track());
    // Each frame's arrival minus its timestamp, relative to the first.
    let audio_task = tokio::spawn(async move {
        let mut late = Vec::new();
        let Some(track) = audio else { return (late, 0.0) };
        let mut frames = iter_frames(track);
        let mut first: Option<Instant> = None;
        let mut media = 0.0;
        while media < seconds {
            let Some(Frame::Audio(f)) = frames.next().await else { break };
            let now = Instant::now();
            let t = f.pts as f64 / 48_000.0;
            let zero = *first.get_or_insert(now);
            late.push((now - zero).as_secs_f64() * 1000.0 - t * 1000.0);
            media = t + f.duration_secs();
        }
        (late, media)
    });
    let video_task = tokio::spawn(async move {
        let mut late = Vec::new();
        let Some(track) = video else { return late };
        let mut frames = iter_frames(track);
        let mut first: Option<Instant> = None;
        while let Some(Frame::Video(f)) = frames.next().await {
            let now = Instant::now();
            let t = f.pts as f64 / 90_000.0;
            let zero = *first.get_or_insert(now);
            late.push((now - zero).as_secs_f64() * 1000.0 - t * 1000.0);
            if t + 1.0 / 30.0 >= seconds {
                break;
            }
        }
        late
    });
    let (mut alate, media) = audio_task.await.unwrap();
    let vlate = video_task.await.unwrap();
    let cpu = cpu_seconds() - cpu0;
    player.stop();
    let base = alate.iter().copied().fold(f64::INFINITY, f64::min);
    let mut dev: Vec<f64> = alate.iter().map(|x| x - base).collect();
    let max = dev.iter().copied().fold(0.0, f64::max);
    // A/V drift: over the last tenth of the run, the mean arrival-minus-pts
    // of video minus that of audio, against the same over the first tenth.
    let drift = |v: &[f64], a: &[f64]| {
        let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len().max(1) as f64;
        let (nv, na) = (v.len() / 10, a.len() / 10);
        if nv == 0 || na == 0 {
            return f64::NAN;
        }
        (mean(&v[v.len() - nv..]) - mean(&a[a.len() - na..])) - (mean(&v[..nv]) - mean(&a[..na]))
    };
    let av_drift = drift(&vlate, &alate);
    alate.clear();
    json!({
        "cpu_s_per_media_s": cpu / media.max(1e-9),
        "media_s": media,
        "video_frames": vlate.len(),
        "audio_pacing_p99_ms": percentile(&mut dev, 99.0),
        "audio_pacing_max_ms": max,
        "av_drift_ms": if av_drift.is_nan() { Value::Null } else { json!(av_drift) },
    })
}

async fn rss_per_player(path: &Path, n: usize) -> f64 {
    let before = rss_mib();
    let mut players = Vec::new();
    for _ in 0..n {
        let p = Sources::operator().from_file(path.to_str().unwrap(), true).await.unwrap();
        if let Some(v) = &p.video {
            let _ = iter_frames(v.track()).next().await;
        }
        players.push(p);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_mib();
    for p in &players {
        p.stop();
    }
    (after - before) / n as f64
}

/// Open-to-first-frame over `runs` opens: the median and every run, sorted.
async fn rtsp_figures(url: &str, runs: usize) -> Value {
    let mut runs = rtsp_first_frame(url, runs).await;
    runs.sort_by(f64::total_cmp);
    json!({"median": percentile(&mut runs.clone(), 50.0), "runs": runs})
}

async fn rtsp_first_frame(url: &str, runs: usize) -> Vec<f64> {
    let mut out = Vec::new();
    for _ in 0..runs {
        let t0 = Instant::now();
        let p = Sources::operator().from_rtsp(url, RtspTransport::Tcp).await.expect("rtsp");
        let track = p.video.as_ref().expect("video").track();
        let _ = tokio::time::timeout(Duration::from_secs(20), iter_frames(track).next()).await;
        out.push(t0.elapsed().as_secs_f64() * 1000.0);
        p.stop();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seconds = env_f64("BENCH_SECONDS", 10.0);
    let loop_seconds = env_f64("BENCH_LOOP_SECONDS", 60.0);
    let rss_players = 8;
    // RTSP: a 10-frame GOP, so the first picture waits for at most 1/3 s.
    let rtsp =
        RtspServer::start(&MediaSpec { width: 640, height: 480, keyframe_interval: 10, ..MediaSpec::default() }).ok();
    if std::env::var("BENCH_ONLY").as_deref() == Ok("rtsp") {
        if let Some(server) = &rtsp {
            println!("{}", json!({"rtsp_first_frame_ms": rtsp_figures(&server.url(), 5).await}));
        }
        return;
    }
    let dir = std::env::temp_dir().join(format!("metered-bench-sources-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (aac, av) = make_files(&dir, seconds);

    let mut ours = json!({"files": {}});
    ours["files"]["aac_audio_only"] = play(&aac, seconds, false).await;
    ours["files"]["h264_aac_640x480"] = play(&av, seconds, false).await;
    ours["looped_h264_aac"] = play(&av, loop_seconds, true).await;
    ours["rss_mib_per_player"] = json!(rss_per_player(&av, rss_players).await);
    if let Some(server) = &rtsp {
        ours["rtsp_first_frame_ms"] = rtsp_figures(&server.url(), 5).await;
    }

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join(".local/venv/bin/python");
    let sdk = if python.exists() {
        let args = json!({
            "files": {"aac_audio_only": aac, "h264_aac_640x480": av},
            "seconds": seconds, "rss_players": rss_players, "rss_file": av,
            "rtsp_url": rtsp.as_ref().map(|s| s.url()), "rtsp_runs": 5,
        });
        let out = std::process::Command::new(&python)
            .arg(root.join("tests/media/bench_sdk.py"))
            .arg(args.to_string())
            .output()
            .expect("python");
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str::<Value>(text.lines().last().unwrap_or("")).unwrap_or_else(
            |_| json!({"error": String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("failed").to_owned()}),
        )
    } else {
        json!({"error": "no .local/venv (run scripts/setup)"})
    };
    let ratio = |k: &str| {
        let a = sdk["files"][k]["cpu_s_per_media_s"].as_f64()?;
        let b = ours["files"][k]["cpu_s_per_media_s"].as_f64()?;
        (b > 0.0).then(|| a / b)
    };
    let report = json!({
        "bench": "sources",
        "seconds_per_file": seconds,
        "metered_sources": ours,
        "official_sdk_aiortc": sdk,
        "cpu_ratio_sdk_over_ours": {
            "aac_audio_only": ratio("aac_audio_only"),
            "h264_aac_640x480": ratio("h264_aac_640x480"),
        },
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    drop(rtsp);
    let _ = std::fs::remove_dir_all(&dir);
}
