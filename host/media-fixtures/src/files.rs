//! Media files made at test time by the `ffmpeg` CLI.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::process::run_ok;

/// How long one `ffmpeg` encode may take before it is killed.
const ENCODE_BOUND: Duration = Duration::from_secs(60);

/// What a fixture plays: a solid colour and a sine tone.
#[derive(Clone, Debug, PartialEq)]
pub struct MediaSpec {
    /// Duration in seconds.
    pub seconds: f64,
    /// Video width in pixels.
    pub width: u32,
    /// Video height in pixels.
    pub height: u32,
    /// Video frame rate.
    pub fps: u32,
    /// Frequency of the (stereo, 48 kHz) sine tone in Hz.
    pub tone_hz: f64,
    /// The solid video colour (R, G, B).
    pub color: (u8, u8, u8),
    /// Frames between keyframes of the RTSP server's H.264 (0: one second).
    /// A client's first picture waits for the next keyframe.
    pub keyframe_interval: u32,
}

impl Default for MediaSpec {
    /// 2 s of 320x240 at 30 fps, red, with a 440 Hz tone.
    fn default() -> Self {
        MediaSpec {
            seconds: 2.0,
            width: 320,
            height: 240,
            fps: 30,
            tone_hz: 440.0,
            color: (255, 0, 0),
            keyframe_interval: 0,
        }
    }
}

impl MediaSpec {
    /// The colour as `RRGGBB` hex.
    pub fn color_hex(&self) -> String {
        let (r, g, b) = self.color;
        format!("{r:02X}{g:02X}{b:02X}")
    }
}

/// A container with its codecs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Container {
    /// MP4: H.264 (libx264, yuv420p) + AAC.
    Mp4H264Aac,
    /// WebM: VP8 (libvpx) + Opus.
    WebmVp8Opus,
    /// Matroska: H.264 + Opus.
    MkvH264Opus,
    /// WAV: PCM s16le.
    Wav,
    /// MP3 (libmp3lame).
    Mp3,
    /// Ogg: Opus.
    OggOpus,
    /// FLAC.
    Flac,
    /// M4A (MP4 audio only): AAC.
    M4aAac,
}

impl Container {
    /// Every container, for table-driven tests.
    pub const ALL: [Container; 8] = [
        Container::Mp4H264Aac,
        Container::WebmVp8Opus,
        Container::MkvH264Opus,
        Container::Wav,
        Container::Mp3,
        Container::OggOpus,
        Container::Flac,
        Container::M4aAac,
    ];

    /// The file extension (without the dot).
    pub fn extension(self) -> &'static str {
        match self {
            Container::Mp4H264Aac => "mp4",
            Container::WebmVp8Opus => "webm",
            Container::MkvH264Opus => "mkv",
            Container::Wav => "wav",
            Container::Mp3 => "mp3",
            Container::OggOpus => "ogg",
            Container::Flac => "flac",
            Container::M4aAac => "m4a",
        }
    }

    /// Whether the file has a video stream (all have an audio stream).
    pub fn has_video(self) -> bool {
        matches!(self, Container::Mp4H264Aac | Container::WebmVp8Opus | Container::MkvH264Opus)
    }

    /// `(video codec, audio codec)` as `ffprobe` names them.
    pub fn codec_names(self) -> (Option<&'static str>, &'static str) {
        match self {
            Container::Mp4H264Aac => (Some("h264"), "aac"),
            Container::WebmVp8Opus => (Some("vp8"), "opus"),
            Container::MkvH264Opus => (Some("h264"), "opus"),
            Container::Wav => (None, "pcm_s16le"),
            Container::Mp3 => (None, "mp3"),
            Container::OggOpus => (None, "opus"),
            Container::Flac => (None, "flac"),
            Container::M4aAac => (None, "aac"),
        }
    }

    fn video_args(self) -> &'static [&'static str] {
        match self {
            Container::Mp4H264Aac | Container::MkvH264Opus => {
                &["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
            }
            Container::WebmVp8Opus => {
                &["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "500k", "-pix_fmt", "yuv420p"]
            }
            _ => &[],
        }
    }

    fn audio_args(self) -> &'static [&'static str] {
        match self {
            Container::Mp4H264Aac | Container::M4aAac => &["-c:a", "aac", "-b:a", "128k"],
            Container::WebmVp8Opus | Container::MkvH264Opus | Container::OggOpus => &["-c:a", "libopus", "-b:a", "96k"],
            Container::Wav => &["-c:a", "pcm_s16le"],
            Container::Mp3 => &["-c:a", "libmp3lame", "-b:a", "128k"],
            Container::Flac => &["-c:a", "flac"],
        }
    }
}

static FILE_SEQ: AtomicU64 = AtomicU64::new(0);

/// Makes a `container` file in `dir` playing `spec` (solid colour video if the
/// container has video, stereo 48 kHz sine audio) with the `ffmpeg` CLI; the encode
/// is killed after 60 s. Returns the new file's path (a fresh name per call).
pub fn make_file(dir: &Path, container: Container, spec: &MediaSpec) -> Result<PathBuf, String> {
    if !spec.seconds.is_finite() || spec.seconds <= 0.0 || spec.width == 0 || spec.height == 0 || spec.fps == 0 {
        return Err(format!("invalid media spec {spec:?}"));
    }
    let n = FILE_SEQ.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("fixture-{}-{n}.{}", std::process::id(), container.extension()));
    let seconds = format!("{}", spec.seconds);
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-y", "-loglevel", "error"]);
    if container.has_video() {
        let key_every = spec.fps.to_string();
        cmd.args(["-f", "lavfi", "-i"])
            .arg(format!("color=c=0x{}:size={}x{}:rate={}", spec.color_hex(), spec.width, spec.height, spec.fps))
            .args(["-f", "lavfi", "-i"])
            .arg(format!("sine=frequency={}:sample_rate=48000", spec.tone_hz))
            .args(["-map", "0:v", "-map", "1:a"])
            .args(container.video_args())
            // A keyframe every second, so seeks and loops are cheap.
            .args(["-g", &key_every]);
    } else {
        cmd.args(["-f", "lavfi", "-i"])
            .arg(format!("sine=frequency={}:sample_rate=48000", spec.tone_hz))
            .args(["-map", "0:a"]);
    }
    cmd.args(container.audio_args()).args(["-ac", "2", "-ar", "48000", "-t", &seconds]).arg(&path);
    run_ok(&mut cmd, ENCODE_BOUND).map_err(|e| format!("making {}: {e}", path.display()))?;
    Ok(path)
}

/// Writes `bytes` to `dir/name` and returns the path (for garbage and edge-case inputs).
///
/// # Panics
/// If the file cannot be written (a broken test environment).
pub fn write_bytes(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// Copies the first `keep` bytes of `src` to `dst` (a truncated, damaged file);
/// returns `dst`.
pub fn truncated_copy(src: &Path, dst: &Path, keep: usize) -> Result<PathBuf, String> {
    let bytes = fs::read(src).map_err(|e| format!("read {}: {e}", src.display()))?;
    let keep = keep.min(bytes.len());
    fs::write(dst, &bytes[..keep]).map_err(|e| format!("write {}: {e}", dst.display()))?;
    Ok(dst.to_path_buf())
}
