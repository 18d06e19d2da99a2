//! Local devices through libavdevice: `from_camera` (V4L2 on Linux) and
//! `screen_share` (x11grab), the device list, and `from_device` for any
//! libavdevice input the operator names (the `lavfi` test pattern stands in
//! for a camera on machines without one).

use std::path::Path;
use std::time::Duration;

use super::error::{DeviceProblem, SourceError, shown};
use super::ffmpeg::feeder::{self, FeedConfig};
use super::ffmpeg::open::{self, Target};
use super::player::Player;
use super::policy::SourcePolicy;
use super::registry::{BoxFuture, Source, SourceOptions};

/// The libavdevice inputs [`from_device`] may name.
pub const DEVICE_FORMATS: [&str; 3] = ["v4l2", "x11grab", "lavfi"];

/// The camera source kind (`camera:/dev/video0`, or a bare device path).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CameraSource;

/// The screen source kind (`screen::0.0`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScreenSource;

fn strip<'a>(location: &'a str, scheme: &str) -> &'a str {
    location.strip_prefix(scheme).and_then(|l| l.strip_prefix(':')).unwrap_or(location)
}

fn capture_options(options: &SourceOptions) -> Vec<(String, String)> {
    let mut v = vec![("framerate".to_owned(), options.fps.to_string())];
    if options.width > 0 {
        v.push(("video_size".to_owned(), format!("{}x{}", options.width, options.height)));
    }
    v
}

/// The cameras this host has (`/dev/video*`), first first.
pub fn cameras() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/dev")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("video") && n[5..].chars().all(|c| c.is_ascii_digit()))
                .map(|n| format!("/dev/{n}"))
                .collect()
        })
        .unwrap_or_default();
    v.sort_by_key(|p| p.trim_start_matches("/dev/video").parse::<u32>().unwrap_or(u32::MAX));
    v
}

/// The primary display (`$DISPLAY`, else `:0`).
pub fn default_display() -> String {
    std::env::var("DISPLAY").ok().filter(|d| !d.is_empty()).unwrap_or_else(|| ":0".to_owned())
}

impl Source for CameraSource {
    fn kind(&self) -> &'static str {
        "camera"
    }

    fn schemes(&self) -> &'static [&'static str] {
        &["camera"]
    }

    fn open<'a>(
        &'a self,
        location: &'a str,
        options: &'a SourceOptions,
        policy: &'a SourcePolicy,
    ) -> BoxFuture<'a, Result<Player, SourceError>> {
        Box::pin(async move {
            policy.check_device("camera")?;
            let requested = strip(location, "camera");
            let device = if requested.is_empty() {
                cameras().into_iter().next().ok_or_else(|| SourceError::Device {
                    device: "default camera".into(),
                    problem: DeviceProblem::Missing,
                    reason: "no /dev/video* device on this host".into(),
                })?
            } else {
                if !requested.starts_with("/dev/video") || requested.contains("..") {
                    return Err(SourceError::Device {
                        device: shown(requested),
                        problem: DeviceProblem::Unsupported,
                        reason: "a camera is a /dev/videoN device".into(),
                    });
                }
                if !Path::new(requested).exists() {
                    return Err(SourceError::Device {
                        device: shown(requested),
                        problem: DeviceProblem::Missing,
                        reason: "no such device".into(),
                    });
                }
                requested.to_owned()
            };
            capture("v4l2", &device, options).await
        })
    }
}

impl Source for ScreenSource {
    fn kind(&self) -> &'static str {
        "screen"
    }

    fn schemes(&self) -> &'static [&'static str] {
        &["screen"]
    }

    fn open<'a>(
        &'a self,
        location: &'a str,
        options: &'a SourceOptions,
        policy: &'a SourcePolicy,
    ) -> BoxFuture<'a, Result<Player, SourceError>> {
        Box::pin(async move {
            policy.check_device("screen")?;
            let requested = strip(location, "screen");
            let display = if requested.is_empty() { default_display() } else { requested.to_owned() };
            // `:N`, `:N.S` or `:N.S+X,Y` (a region from X,Y): nothing else.
            let ok = display.starts_with(':')
                && display[1..].chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | '+' | ','));
            if !ok {
                return Err(SourceError::Device {
                    device: shown(&display),
                    problem: DeviceProblem::Unsupported,
                    reason: "a screen is an X display: :N, :N.S or :N.S+X,Y".into(),
                });
            }
            capture("x11grab", &display, options).await
        })
    }
}

/// Captures from the libavdevice input `format` (one of
/// [`DEVICE_FORMATS`]) and its device string, under `policy`. For the
/// operator and tests: `lavfi` graphs can read files (`movie=`), so this is
/// not reachable from a source string.
pub async fn from_device(
    policy: &SourcePolicy,
    format: &'static str,
    device: &str,
    options: &SourceOptions,
) -> Result<Player, SourceError> {
    policy.check_device("camera")?;
    options.validate()?;
    if !DEVICE_FORMATS.contains(&format) {
        return Err(SourceError::InvalidArgument {
            name: "device format",
            value: shown(format),
            expected: "v4l2, x11grab or lavfi",
        });
    }
    capture(format, device, options).await
}

async fn capture(format: &'static str, device: &str, options: &SourceOptions) -> Result<Player, SourceError> {
    let mut opts = capture_options(options);
    if format == "lavfi" {
        opts.retain(|(k, _)| k != "framerate" && k != "video_size");
    }
    let config = FeedConfig {
        label: shown(device),
        live: true,
        looping: false,
        reconnect: false,
        open_timeout: options.open_timeout,
        read_timeout: options.read_timeout.max(Duration::from_secs(2)),
        video_size: (options.width > 0).then_some((options.width, options.height)),
    };
    feeder::start(Target::Device { format, device: device.to_owned(), options: opts }, config).await
}

/// What this host can capture from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeviceList {
    /// Cameras (`/dev/video*`).
    pub cameras: Vec<String>,
    /// Microphones (audio input devices by name), the default first.
    pub microphones: Vec<String>,
    /// The display `screen_share` captures by default, if X is there.
    pub screen: Option<String>,
    /// FFmpeg's input devices (`v4l2`, `x11grab`, `lavfi`, `pulse`, …).
    pub ffmpeg_inputs: Vec<String>,
}

/// Lists the devices of this host.
pub fn list_devices() -> DeviceList {
    DeviceList {
        cameras: cameras(),
        microphones: super::microphone::microphones(),
        screen: std::env::var("DISPLAY").ok().filter(|d| !d.is_empty()),
        ffmpeg_inputs: open::device_formats(),
    }
}
