//! Child processes with bounded waits, and `ffprobe`.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How much of a child's stderr is kept for error messages.
const STDERR_CAP: usize = 64 * 1024;

/// Poll interval of every bounded wait in this crate.
pub(crate) const POLL: Duration = Duration::from_millis(10);

/// Runs `cmd` to completion with stdin closed and stdout/stderr captured, killing it
/// (SIGKILL, then reaping it) if it has not exited within `bound`.
///
/// A non-zero exit status is not an error here (inspect `Output::status`); failing to
/// start the program and running out of time are.
pub fn run_with_timeout(cmd: &mut Command, bound: Duration) -> Result<Output, String> {
    let name = program_name(cmd);
    let deadline = Instant::now() + bound;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start `{name}`: {e}"))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = match wait_deadline(&mut child, deadline) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            let err = collect(&stderr, Duration::from_millis(200));
            return Err(format!(
                "`{name}` timed out after {:.1} s (killed); stderr: {}",
                bound.as_secs_f64(),
                String::from_utf8_lossy(&err).trim()
            ));
        }
    };
    // The pipes close when the child exits (none of our tools leave grandchildren
    // holding them); the bound is only a guard.
    let stdout = collect(&stdout, Duration::from_secs(2));
    let stderr = collect(&stderr, Duration::from_secs(2));
    Ok(Output { status, stdout, stderr })
}

/// [`run_with_timeout`] that also fails on a non-zero exit; returns stdout.
pub(crate) fn run_ok(cmd: &mut Command, bound: Duration) -> Result<Vec<u8>, String> {
    let name = program_name(cmd);
    let out = run_with_timeout(cmd, bound)?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!("`{name}` failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn program_name(cmd: &Command) -> String {
    cmd.get_program().to_string_lossy().into_owned()
}

/// Waits for `child` until `deadline`; `None` if it is still running then.
pub(crate) fn wait_deadline(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            // ECHILD: someone else reaped it; report it as gone.
            Err(_) => return Some(ExitStatus::default()),
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        thread::sleep(POLL.min(deadline - now));
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
    }
    rx
}

fn collect(rx: &mpsc::Receiver<Vec<u8>>, bound: Duration) -> Vec<u8> {
    rx.recv_timeout(bound).unwrap_or_default()
}

/// A long-running child: SIGKILLed and reaped on drop; its stderr is kept (capped)
/// for error messages.
pub(crate) struct Proc {
    name: String,
    child: Option<Child>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Proc {
    /// Spawns `cmd` with stderr captured (stdin, stdout as the caller configured).
    pub(crate) fn spawn(name: &str, cmd: &mut Command) -> Result<Proc, String> {
        let mut child = cmd.stderr(Stdio::piped()).spawn().map_err(|e| format!("cannot start `{name}`: {e}"))?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let keep = Arc::clone(&stderr);
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let mut kept = keep.lock().unwrap_or_else(|p| p.into_inner());
                    let room = STDERR_CAP.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            });
        }
        Ok(Proc { name: name.to_owned(), child: Some(child), stderr })
    }

    /// The child itself (for its pipes).
    pub(crate) fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("child present until drop")
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// `Some(status)` once the child has exited.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(status) => status,
            Err(_) => Some(ExitStatus::default()),
        }
    }

    /// The stderr captured so far (waits briefly for the reader when the child is gone).
    pub(crate) fn stderr_text(&mut self) -> String {
        if self.exited().is_some() {
            thread::sleep(Duration::from_millis(50));
        }
        let kept = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&kept).trim().to_owned()
    }

    /// An error message naming the program, its exit status if any, and its stderr.
    pub(crate) fn failure(&mut self, what: &str) -> String {
        let status = match self.exited() {
            Some(s) => format!("exited ({s})"),
            None => "still running".to_owned(),
        };
        let stderr = self.stderr_text();
        format!("{what}: `{}` {status}; stderr: {stderr}", self.name)
    }

    /// SIGKILL and reap (idempotent).
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
pub fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| format!("local_addr: {e}"))
}

/// One stream as `ffprobe` reports it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProbeStream {
    /// `video`, `audio`, ...
    pub codec_type: String,
    /// `h264`, `vp8`, `opus`, `aac`, `mp3`, `flac`, `pcm_s16le`, ...
    pub codec_name: String,
    /// Video width in pixels.
    pub width: Option<u32>,
    /// Video height in pixels.
    pub height: Option<u32>,
    /// Audio sample rate in Hz.
    pub sample_rate: Option<u32>,
    /// Audio channel count.
    pub channels: Option<u32>,
}

/// What `ffprobe` says about an input.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Probe {
    /// The streams, in order.
    pub streams: Vec<ProbeStream>,
    /// The container duration in seconds (absent for live inputs).
    pub duration: Option<f64>,
}

impl Probe {
    /// The first stream of `codec_type` (`"video"`, `"audio"`).
    pub fn stream(&self, codec_type: &str) -> Option<&ProbeStream> {
        self.streams.iter().find(|s| s.codec_type == codec_type)
    }
}

/// Runs `ffprobe` on `input` (a path or URL) with `extra` input options placed before
/// it (e.g. `["-rtsp_transport", "udp"]`), bounded to 30 s.
pub fn ffprobe(input: &str, extra: &[&str]) -> Result<Probe, String> {
    let out = run_ok(
        Command::new("ffprobe")
            .args(["-v", "error"])
            .args(extra)
            .args([
                "-show_entries",
                "stream=codec_type,codec_name,width,height,sample_rate,channels:format=duration",
                "-of",
                "compact",
            ])
            .arg(input),
        Duration::from_secs(30),
    )?;
    Ok(parse_compact(&String::from_utf8_lossy(&out)))
}

fn parse_compact(text: &str) -> Probe {
    let mut probe = Probe::default();
    for line in text.lines() {
        let mut fields = line.split('|');
        let section = fields.next().unwrap_or_default();
        let kv = fields.filter_map(|f| f.split_once('='));
        match section {
            "stream" => {
                let mut s = ProbeStream::default();
                for (k, v) in kv {
                    match k {
                        "codec_type" => s.codec_type = v.to_owned(),
                        "codec_name" => s.codec_name = v.to_owned(),
                        "width" => s.width = v.parse().ok(),
                        "height" => s.height = v.parse().ok(),
                        "sample_rate" => s.sample_rate = v.parse().ok(),
                        "channels" => s.channels = v.parse().ok(),
                        _ => {}
                    }
                }
                probe.streams.push(s);
            }
            "format" => {
                for (k, v) in kv {
                    if k == "duration" {
                        probe.duration = v.parse().ok();
                    }
                }
            }
            _ => {}
        }
    }
    probe
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_compact_output() {
        let p = parse_compact(
            "stream|codec_name=h264|codec_type=video|width=320|height=240\n\
             stream|codec_name=opus|codec_type=audio|sample_rate=48000|channels=2\n\
             format|duration=2.000000\n",
        );
        assert_eq!(p.streams.len(), 2);
        assert_eq!(p.stream("video").unwrap().width, Some(320));
        assert_eq!(p.stream("audio").unwrap().channels, Some(2));
        assert_eq!(p.duration, Some(2.0));
        assert_eq!(parse_compact("format|duration=N/A\n").duration, None);
    }

    #[test]
    fn timeout_kills() {
        let t = Instant::now();
        let err = run_with_timeout(Command::new("sleep").arg("30"), Duration::from_millis(300)).unwrap_err();
        assert!(err.contains("timed out"), "{err}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
