//! A live RTSP server: GStreamer's RTSP server through PyGObject.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::files::MediaSpec;
use crate::process::{POLL, Proc, free_port};

/// Bound of [`RtspServer::start`] and [`RtspServer::restart`].
const START_BOUND: Duration = Duration::from_secs(20);

/// The mount point served.
const MOUNT: &str = "/stream";

/// Debian's Python (a venv or pyenv Python has no `gi`).
const PYTHON: &str = "/usr/bin/python3";

/// A GStreamer RTSP server on 127.0.0.1 serving `rtsp://127.0.0.1:PORT/stream`: live
/// H.264 video of the spec's solid colour (x264 zerolatency, a keyframe every `fps`
/// frames, payload type 96) and a live Opus sine tone (stereo 48 kHz, payload type
/// 97). The media is shared, so several clients and reconnects see one pipeline; TCP
/// and UDP transports both work.
///
/// Runs `tests/media/rtsp_server.py` with `/usr/bin/python3`. Killed on drop; the
/// script also exits when its stdin (held by this value) closes, so it does not
/// outlive a crashed test process.
pub struct RtspServer {
    spec: MediaSpec,
    port: u16,
    proc: Option<Running>,
}

struct Running {
    // Dropped after `proc` is killed; closing it also stops the script.
    _stdin: Option<ChildStdin>,
    proc: Proc,
}

/// Why one launch failed.
enum LaunchError {
    /// The port was taken: try again (another port, or later).
    Bind(String),
    /// Anything else.
    Fatal(String),
}

impl RtspServer {
    /// Starts a server on a free port and waits (at most 20 s) until it printed
    /// "ready" and its port accepts TCP connections.
    pub fn start(spec: &MediaSpec) -> Result<RtspServer, String> {
        let deadline = Instant::now() + START_BOUND;
        let mut last = String::new();
        while Instant::now() < deadline {
            let port = free_port()?;
            match launch(spec, port, deadline) {
                Ok(running) => return Ok(RtspServer { spec: spec.clone(), port, proc: Some(running) }),
                Err(LaunchError::Bind(e)) => last = e,
                Err(LaunchError::Fatal(e)) => return Err(e),
            }
        }
        Err(format!("RTSP server did not start within {START_BOUND:?}: {last}"))
    }

    /// `rtsp://127.0.0.1:PORT/stream`.
    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}{MOUNT}", self.port)
    }

    /// The TCP port of the RTSP control connection.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server process is running.
    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(|r| r.proc.exited().is_none())
    }

    /// Kills the server (SIGKILL) and reaps it: clients see the connection drop.
    /// Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut running) = self.proc.take() {
            running.proc.kill();
        }
    }

    /// Kills the server if it runs, then starts it again on the same port (retrying
    /// while the port is still held), bounded to 20 s.
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        let deadline = Instant::now() + START_BOUND;
        let mut last = String::new();
        while Instant::now() < deadline {
            match launch(&self.spec, self.port, deadline) {
                Ok(running) => {
                    self.proc = Some(running);
                    return Ok(());
                }
                Err(LaunchError::Bind(e)) => {
                    last = e;
                    thread::sleep(Duration::from_millis(200));
                }
                Err(LaunchError::Fatal(e)) => return Err(e),
            }
        }
        Err(format!("RTSP server did not restart on port {} within {START_BOUND:?}: {last}", self.port))
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn script_path() -> PathBuf {
    metered_guest_build::repo_root().join("tests/media/rtsp_server.py")
}

fn launch(spec: &MediaSpec, port: u16, deadline: Instant) -> Result<Running, LaunchError> {
    let script = script_path();
    if !script.is_file() {
        return Err(LaunchError::Fatal(format!("missing {}", script.display())));
    }
    let mut cmd = Command::new(PYTHON);
    cmd.arg(&script)
        .args(["--port", &port.to_string(), "--mount", MOUNT])
        .args(["--color", &spec.color_hex(), "--tone", &spec.tone_hz.to_string()])
        .args(["--width", &spec.width.to_string(), "--height", &spec.height.to_string()])
        .args(["--fps", &spec.fps.to_string()])
        .args(["--gop", &(if spec.keyframe_interval == 0 { spec.fps } else { spec.keyframe_interval }).to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut proc = Proc::spawn("rtsp_server.py", &mut cmd).map_err(LaunchError::Fatal)?;
    let stdin = proc.child_mut().stdin.take();
    let stdout = proc.child_mut().stdout.take();

    // "ready" arrives on stdout; the reader ends when the process does.
    let (tx, rx) = mpsc::channel();
    if let Some(stdout) = stdout {
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    let mut ready = false;
    while !ready {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let msg = proc.failure("RTSP server not ready in time");
            return Err(LaunchError::Fatal(msg));
        }
        match rx.recv_timeout(left) {
            Ok(line) => ready = line.trim() == "ready",
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // stdout closed: the script exited.
                let _ = crate::process::wait_deadline(proc.child_mut(), Instant::now() + Duration::from_secs(2));
                let msg = proc.failure("RTSP server exited before ready");
                return Err(if msg.contains("cannot listen") || msg.contains("Address already in use") {
                    LaunchError::Bind(msg)
                } else {
                    LaunchError::Fatal(msg)
                });
            }
        }
    }

    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            break;
        }
        if proc.exited().is_some() {
            return Err(LaunchError::Bind(proc.failure("RTSP server exited after ready")));
        }
        if Instant::now() >= deadline {
            return Err(LaunchError::Fatal(proc.failure("RTSP port never accepted")));
        }
        thread::sleep(POLL);
    }
    Ok(Running { _stdin: stdin, proc })
}
