//! What the tests share: reading tracks with bounds, tone and colour checks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use metered_media::{Frame, MediaStreamTrack, VideoFrame, iter_frames};
use metered_sources::{Player, PlayerState};

/// Each test's overall bound.
pub const BOUND: Duration = Duration::from_secs(60);

/// YUV (BT.601, limited range) of pure red, green and blue, as libswscale
/// converts them.
pub const RED: (u8, u8, u8) = (81, 90, 240);
pub const BLUE: (u8, u8, u8) = (41, 240, 110);

/// A scratch directory, removed on drop.
pub struct Scratch(pub std::path::PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("metered-sources-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Audio read from a track: mono f32 (left channel) at 48 kHz, and every
/// frame's pts.
#[derive(Default)]
pub struct Heard {
    pub samples: Vec<f32>,
    pub pts: Vec<u64>,
    pub frame_rms: Vec<f32>,
}

/// Reads audio until the track ends, `media` seconds have arrived, or the
/// bound passes.
pub async fn hear(track: Arc<dyn MediaStreamTrack>, media: f64, bound: Duration) -> Heard {
    let mut heard = Heard::default();
    let mut frames = iter_frames(track);
    let deadline = tokio::time::Instant::now() + bound;
    while (heard.samples.len() as f64) < media * 48_000.0 {
        let Ok(Some(frame)) = tokio::time::timeout_at(deadline, frames.next()).await else { break };
        let Frame::Audio(f) = frame else { panic!("video on an audio track") };
        assert_eq!(f.sample_rate, 48_000, "sources deliver 48 kHz");
        assert_eq!(f.samples_per_channel(), Some(960), "sources deliver 20 ms frames");
        let n = f.samples_per_channel().unwrap_or(0);
        let mono: Vec<f32> = (0..n).map(|i| f.sample_f32(0, i).unwrap_or(0.0)).collect();
        heard.frame_rms.push(metered_media_fixtures::rms(&mono));
        heard.samples.extend_from_slice(&mono);
        heard.pts.push(f.pts);
    }
    heard
}

/// Video read from a track: every frame (up to `max`), until the track ends
/// or the bound passes.
pub async fn watch(track: Arc<dyn MediaStreamTrack>, max: usize, bound: Duration) -> Vec<VideoFrame> {
    let mut out = Vec::new();
    let mut frames = iter_frames(track);
    let deadline = tokio::time::Instant::now() + bound;
    while out.len() < max {
        let Ok(Some(frame)) = tokio::time::timeout_at(deadline, frames.next()).await else { break };
        let Frame::Video(f) = frame else { panic!("audio on a video track") };
        f.validate().expect("a valid I420 frame");
        out.push(f);
    }
    out
}

/// The dominant frequency of `samples` (48 kHz).
pub fn tone(samples: &[f32]) -> f64 {
    metered_media_fixtures::dominant_frequency(samples, 48_000)
}

/// Whether `yuv` is within `tolerance` of `want` on each component.
pub fn near(yuv: (u8, u8, u8), want: (u8, u8, u8), tolerance: u8) -> bool {
    yuv.0.abs_diff(want.0) <= tolerance && yuv.1.abs_diff(want.1) <= tolerance && yuv.2.abs_diff(want.2) <= tolerance
}

/// The colour at the centre of `f`.
pub fn centre(f: &VideoFrame) -> (u8, u8, u8) {
    f.yuv_at(f.width / 2, f.height / 2).expect("inside the frame")
}

/// Waits until the player reaches a state matching `pred`, within `bound`.
pub async fn state_becomes(player: &Player, bound: Duration, pred: impl Fn(&PlayerState) -> bool) -> PlayerState {
    let mut rx = player.states();
    let got = tokio::time::timeout(bound, async {
        loop {
            let s = rx.borrow_and_update().clone();
            if pred(&s) {
                return s;
            }
            if rx.changed().await.is_err() {
                return rx.borrow().clone();
            }
        }
    })
    .await;
    got.unwrap_or_else(|_| panic!("state not reached within {bound:?}; now {:?}", player.state()))
}

/// Open file descriptors and threads of this process, for "back to
/// baseline" checks. Other tests run in other processes (nextest) or are
/// serialised by [`LEAK_LOCK`].
///
/// Threads that live for the process by design are not counted: tokio's
/// blocking pool (DNS lookups) and the media core's shared pacer.
pub fn resources() -> (usize, usize) {
    let threads = std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|t| {
                    let name = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
                    !name.starts_with("tokio-") && !name.starts_with("metered-pacer")
                })
                .count()
        })
        .unwrap_or(0);
    (metered_media_fixtures::fd_count(), threads)
}

/// Held by tests that count this process's fds and threads, so tests in the
/// same process (plain `cargo test`) don't disturb each other's counts.
pub static LEAK_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits (bounded) for fds and threads to come back to `baseline`, and
/// asserts they did.
pub async fn assert_released(baseline: (usize, usize), what: &str) {
    let start = Instant::now();
    let mut now = resources();
    while (now.0 > baseline.0 || now.1 > baseline.1) && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        now = resources();
    }
    assert!(now.0 <= baseline.0, "{what}: {} fds open, {} before", now.0, baseline.0);
    assert!(now.1 <= baseline.1, "{what}: {} threads, {} before", now.1, baseline.1);
}
