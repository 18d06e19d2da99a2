//! Opening an FFmpeg input: a checked URL or file, a device through
//! libavdevice, or a caller's reader through an AVIO context — with bounded
//! open and read times (an interrupt callback) and FFmpeg's own protocol and
//! format whitelists.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ffmpeg_next as ff;

use crate::error::{DeviceProblem, SourceError};
use crate::player::Control;

/// Initializes FFmpeg once per process (formats, devices, network) and turns
/// its logging down to errors (our own errors say what went wrong).
pub(crate) fn init() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        if let Err(e) = ff::init() {
            tracing::error!(target: "metered_sources", "FFmpeg failed to initialize: {e}");
        }
        ff::device::register_all();
        ff::util::log::set_level(ff::util::log::Level::Fatal);
    });
}

/// What to open.
pub(crate) enum Target {
    /// A URL FFmpeg opens itself (`file:/…`, `rtsp://…`, `http://…`): the
    /// policy has checked it; `options` carry its whitelists and tuning.
    Url {
        /// What FFmpeg opens.
        url: String,
        /// Demuxer and protocol options.
        options: Vec<(String, String)>,
    },
    /// A device through libavdevice: input format `format` (`v4l2`,
    /// `x11grab`, `lavfi`, `pulse`, …) and its device string.
    Device {
        /// The libavdevice input format.
        format: &'static str,
        /// The device string (`/dev/video0`, `:0.0+0,0`, …).
        device: String,
        /// Device options (`video_size`, `framerate`, …).
        options: Vec<(String, String)>,
    },
    /// A caller's reader (`Read + Seek`): consumed by the first open.
    Reader {
        /// The AVIO context over the reader, until opened.
        io: Option<ff::format::context::StreamIo>,
        /// Demuxer options (the format whitelist).
        options: Vec<(String, String)>,
    },
}

/// A deadline the interrupt callback enforces, shared with the feeder: it
/// arms it before each open or read and disarms it after.
#[derive(Clone, Default)]
pub(crate) struct Deadline(Arc<AtomicU64>);

impl Deadline {
    /// Interrupt FFmpeg after `d` from now.
    pub(crate) fn arm(&self, origin: Instant, d: Duration) {
        let at = origin.elapsed() + d;
        self.0.store(at.as_micros().max(1) as u64, Ordering::Release);
    }

    /// No deadline.
    pub(crate) fn disarm(&self) {
        self.0.store(0, Ordering::Release);
    }

    fn passed(&self, origin: Instant) -> bool {
        match self.0.load(Ordering::Acquire) {
            0 => false,
            at => origin.elapsed().as_micros() as u64 >= at,
        }
    }
}

fn dictionary(options: &[(String, String)]) -> ff::Dictionary<'static> {
    let mut d = ff::Dictionary::new();
    for (k, v) in options {
        d.set(k, v);
    }
    d
}

/// Opens `target`; stops early (FFmpeg's "immediate exit requested") when the
/// player is stopped or the deadline passes. Devices open through
/// `avformat_open_input` with their input format, which ffmpeg-next exposes
/// without an interrupt callback: a device open is bounded by the device
/// itself (reads return every frame interval).
pub(crate) fn open(
    target: &mut Target,
    control: &Arc<Control>,
    deadline: &Deadline,
    origin: Instant,
    open_timeout: Duration,
    label: &str,
) -> Result<ff::format::context::Input, SourceError> {
    init();
    let interrupt = {
        let (control, deadline) = (control.clone(), deadline.clone());
        move || control.is_stopped() || deadline.passed(origin)
    };
    deadline.arm(origin, open_timeout);
    let started = Instant::now();
    let result = match target {
        Target::Url { url, options } => {
            ff::format::input_with_interrupt_and_dictionary(url.as_str(), interrupt, dictionary(options))
        }
        Target::Device { format, device, options } => {
            let Some(input) = device_format(format) else {
                deadline.disarm();
                return Err(SourceError::Device {
                    device: label.to_owned(),
                    problem: DeviceProblem::Unsupported,
                    reason: format!("this FFmpeg has no `{format}` input device"),
                });
            };
            ff::format::open_with(device.as_str(), &ff::Format::Input(input), dictionary(options)).and_then(|c| match c
            {
                ff::format::context::Context::Input(i) => Ok(i),
                ff::format::context::Context::Output(_) => Err(ff::Error::DemuxerNotFound),
            })
        }
        Target::Reader { io, options } => match io.take() {
            Some(io) => ff::format::input_from_stream_with_interrupt(io, None, Some(dictionary(options)), interrupt),
            None => {
                deadline.disarm();
                return Err(SourceError::NotSeekable { location: label.to_owned() });
            }
        },
    };
    let timed_out = deadline.passed(origin);
    deadline.disarm();
    result.map_err(|e| {
        if control.is_stopped() {
            return SourceError::Stopped;
        }
        if timed_out || matches!(e, ff::Error::Exit) {
            return SourceError::Timeout { location: label.to_owned(), after: open_timeout };
        }
        // A socket timeout (FFmpeg's `timeout` option, µs) during the open
        // comes back as "invalid data" or ETIMEDOUT: still a timeout.
        if let Some(io) = socket_timeout(target)
            && started.elapsed() + Duration::from_millis(100) >= io
            && matches!(e, ff::Error::InvalidData | ff::Error::Other { errno: 110 })
        {
            return SourceError::Timeout { location: label.to_owned(), after: io.min(open_timeout) };
        }
        open_error(target, label, e)
    })
}

/// The socket I/O timeout a URL target carries (`timeout`, µs).
fn socket_timeout(target: &Target) -> Option<Duration> {
    let Target::Url { options, .. } = target else { return None };
    let (_, v) = options.iter().find(|(k, _)| k == "timeout")?;
    v.parse::<u64>().ok().map(Duration::from_micros)
}

fn device_format(name: &str) -> Option<ff::format::format::Input> {
    for f in ff::device::input::video().chain(ff::device::input::audio()) {
        if let ff::Format::Input(input) = f
            && input.name() == name
        {
            return Some(input);
        }
    }
    None
}

fn open_error(target: &Target, label: &str, e: ff::Error) -> SourceError {
    let reason = e.to_string();
    match (target, e) {
        (Target::Device { .. }, ff::Error::Other { errno }) if errno == libc_ebusy() => {
            SourceError::Device { device: label.to_owned(), problem: DeviceProblem::Busy, reason }
        }
        (Target::Device { .. }, ff::Error::Other { errno }) if errno == libc_enoent() || errno == libc_enodev() => {
            SourceError::Device { device: label.to_owned(), problem: DeviceProblem::Missing, reason }
        }
        (Target::Device { .. }, ff::Error::Other { .. } | ff::Error::InvalidData) => {
            SourceError::Device { device: label.to_owned(), problem: DeviceProblem::Unsupported, reason }
        }
        (_, ff::Error::Other { errno }) if errno == libc_enoent() => {
            SourceError::NotFound { location: label.to_owned() }
        }
        // FFmpeg answers EINVAL when a nested open or the probed container
        // is not on the whitelists the policy set.
        (Target::Url { options, .. } | Target::Reader { options, .. }, ff::Error::Other { errno })
            if errno == libc_einval() && options.iter().any(|(k, _)| k.ends_with("_whitelist")) =>
        {
            SourceError::Refused { location: label.to_owned(), rule: crate::error::Rule::NotWhitelisted }
        }
        (_, ff::Error::HttpNotFound) => SourceError::NotFound { location: label.to_owned() },
        _ => SourceError::Open { location: label.to_owned(), reason },
    }
}

// errno values (Linux) FFmpeg wraps in AVERROR(e).
fn libc_enoent() -> i32 {
    2
}
fn libc_einval() -> i32 {
    22
}
fn libc_ebusy() -> i32 {
    16
}
fn libc_enodev() -> i32 {
    19
}

/// The input devices this FFmpeg has, by name (`v4l2`, `x11grab`, `lavfi`,
/// `pulse`, `alsa`, …).
pub(crate) fn device_formats() -> Vec<String> {
    init();
    ff::device::input::video()
        .chain(ff::device::input::audio())
        .filter_map(|f| match f {
            ff::Format::Input(i) => Some(i.name().to_owned()),
            ff::Format::Output(_) => None,
        })
        .collect()
}
