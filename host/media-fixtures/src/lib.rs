//! Real counterparts for the media-source tests, all on 127.0.0.1 and all made of
//! Debian tools driven as child processes:
//!
//! - [`make_file`]: media files made at test time by the `ffmpeg` CLI (never checked in);
//! - [`RtspServer`]: GStreamer's RTSP server (`tests/media/rtsp_server.py` run by
//!   Debian's `/usr/bin/python3`) with live H.264 + Opus;
//! - [`StalledServer`]: a TCP listener that accepts and never answers;
//! - [`Xvfb`]: a virtual X screen with a red root and solid-colour windows, for x11grab;
//! - [`PulseMic`]: a private `pulseaudio` whose default source plays a sine tone;
//! - analysis helpers ([`dominant_frequency`], [`rms`]) and leak probes
//!   ([`fd_count`], [`thread_count`]).
//!
//! Every child process is killed (SIGKILL) and reaped on `Drop`, and every wait is
//! bounded in time: a fixture that cannot come up returns `Err(String)` with the
//! tool's stderr instead of hanging or panicking. Needed Debian packages: `ffmpeg`,
//! `python3-gi`, `gir1.2-gst-rtsp-server-1.0`, `gstreamer1.0-plugins-base`,
//! `gstreamer1.0-plugins-good`, `gstreamer1.0-plugins-bad`,
//! `gstreamer1.0-plugins-ugly`, `gstreamer1.0-rtsp`, `xvfb`, `x11-xserver-utils`,
//! `x11-utils`, `pulseaudio`, `pulseaudio-utils`, `libasound2-plugins`, `sox`.

mod analysis;
mod files;
mod process;
mod pulse;
mod rtsp;
mod stalled;
mod xvfb;

pub use analysis::{dominant_frequency, fd_count, rms, sine, thread_count, tool_available, wait_until};
pub use files::{Container, MediaSpec, make_file, truncated_copy, write_bytes};
pub use process::{Probe, ProbeStream, ffprobe, free_port, run_with_timeout};
pub use pulse::PulseMic;
pub use rtsp::RtspServer;
pub use stalled::StalledServer;
pub use xvfb::Xvfb;
