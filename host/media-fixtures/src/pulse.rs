//! A private PulseAudio daemon whose default source plays a sine tone.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::process::{POLL, Proc, run_ok, run_with_timeout};

/// Bound of each start-up step of [`PulseMic::start`].
const STEP_BOUND: Duration = Duration::from_secs(10);

/// Name of the null sink; its monitor `fixture.monitor` is the default source.
const SINK: &str = "fixture";

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// A private `pulseaudio -n` (no default modules, no autospawn, no D-Bus) listening
/// only on `<dir>/pulse.sock` with a 48 kHz stereo null sink `fixture`, fed a sine
/// tone by `sox | pacat` for an hour; its monitor `fixture.monitor` is the default
/// source. Any PulseAudio client given [`PulseMic::env`] records the tone, and so
/// does ALSA's `default` device (libasound2-plugins routes it to pulse when a pulse
/// server is reachable), which is what cpal opens.
///
/// Works as root: the daemon's `HOME`, `XDG_RUNTIME_DIR` and friends point into the
/// private directory. Dropping it kills `pacat`, `sox` and the daemon, then removes
/// the directory.
pub struct PulseMic {
    dir: PathBuf,
    tone_hz: f64,
    // Killed in this order by `Drop`.
    pacat: Option<Proc>,
    sox: Option<Proc>,
    daemon: Option<Proc>,
}

impl PulseMic {
    /// Starts the daemon and the tone feed; each step bounded to 10 s.
    pub fn start(tone_hz: f64) -> Result<PulseMic, String> {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "mf-pulse-{}-{}-{nanos:x}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let mut mic = PulseMic { dir, tone_hz, pacat: None, sox: None, daemon: None };
        mic.start_daemon()?;
        mic.start_feed()?;
        Ok(mic)
    }

    /// The private directory (socket, daemon state).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server socket, `<dir>/pulse.sock`.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("pulse.sock")
    }

    /// The tone frequency in Hz.
    pub fn tone_hz(&self) -> f64 {
        self.tone_hz
    }

    /// The environment a client needs: `PULSE_SERVER=unix:<dir>/pulse.sock` and
    /// `PULSE_SOURCE=fixture.monitor`.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("PULSE_SERVER".into(), format!("unix:{}", self.socket().display())),
            ("PULSE_SOURCE".into(), format!("{SINK}.monitor")),
        ]
    }

    /// Sets [`PulseMic::env`] in this process (for in-process clients such as cpal).
    ///
    /// Process-global: call it from a single-threaded test set-up, before threads
    /// that read the environment start, and use one `PulseMic` per test process.
    #[allow(unsafe_code)]
    pub fn apply_env(&self) {
        for (k, v) in self.env() {
            // SAFETY: for single-threaded test set-up only (documented above): no other
            // thread reads or writes the environment concurrently.
            unsafe { std::env::set_var(k, v) };
        }
    }

    /// Records `seconds` of the default source with `parec` (48 kHz stereo s16le),
    /// returned as mono f32 (the channels averaged). Bounded to `seconds + 10 s`.
    pub fn capture(&self, seconds: f64) -> Result<Vec<f32>, String> {
        let frames = (seconds * 48_000.0).round() as usize;
        let want = frames * 4;
        let mut cmd = Command::new("parec");
        cmd.args(["--rate=48000", "--channels=2", "--format=s16le", "--latency-msec=20"])
            .arg(format!("--device={SINK}.monitor"))
            .envs(self.env())
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        let mut parec = Proc::spawn("parec", &mut cmd)?;
        let Some(mut out) = parec.child_mut().stdout.take() else {
            return Err("parec: no stdout".into());
        };
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = vec![0u8; want];
            let res = out.read_exact(&mut buf).map(|()| buf);
            let _ = tx.send(res);
        });
        let bound = Duration::from_secs_f64(seconds.max(0.0)) + Duration::from_secs(10);
        let bytes = match rx.recv_timeout(bound) {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(e)) => return Err(parec.failure(&format!("parec read: {e}"))),
            Err(_) => return Err(parec.failure("parec capture timed out")),
        };
        parec.kill();
        Ok(bytes
            .chunks_exact(4)
            .map(|c| {
                let l = f32::from(i16::from_le_bytes([c[0], c[1]]));
                let r = f32::from(i16::from_le_bytes([c[2], c[3]]));
                (l + r) / 2.0 / 32768.0
            })
            .collect())
    }

    fn pactl(&self, args: &[&str]) -> Result<String, String> {
        let out = run_ok(Command::new("pactl").args(args).envs(self.env()), STEP_BOUND)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    fn start_daemon(&mut self) -> Result<(), String> {
        let dir = self.dir.clone();
        let socket = self.socket();
        let mut cmd = Command::new("pulseaudio");
        cmd.args(["-n", "--daemonize=no", "--exit-idle-time=-1", "--disable-shm=yes"])
            .args(["--use-pid-file=no", "--system=no", "--log-target=stderr"])
            .arg("-L")
            .arg(format!("module-native-protocol-unix socket={} auth-anonymous=1", socket.display()))
            .arg("-L")
            .arg(format!("module-null-sink sink_name={SINK} rate=48000 channels=2 format=s16le"))
            .current_dir(&dir)
            .env("HOME", &dir)
            .env("XDG_RUNTIME_DIR", &dir)
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("XDG_STATE_HOME", dir.join("state"))
            .env("PULSE_RUNTIME_PATH", &dir)
            .env("PULSE_STATE_PATH", dir.join("state"))
            .env_remove("DISPLAY")
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env_remove("PULSE_SERVER")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let mut daemon = Proc::spawn("pulseaudio", &mut cmd)?;
        let deadline = Instant::now() + STEP_BOUND;
        loop {
            if daemon.exited().is_some() {
                return Err(daemon.failure("pulseaudio failed"));
            }
            if socket.exists()
                && run_with_timeout(Command::new("pactl").arg("info").envs(self.env()), Duration::from_secs(5))
                    .is_ok_and(|o| o.status.success())
            {
                break;
            }
            if Instant::now() >= deadline {
                return Err(daemon.failure("pulseaudio not ready within 10 s"));
            }
            thread::sleep(Duration::from_millis(50));
        }
        self.daemon = Some(daemon);
        self.pactl(&["set-default-source", &format!("{SINK}.monitor")])?;
        Ok(())
    }

    fn start_feed(&mut self) -> Result<(), String> {
        let mut sox = Proc::spawn(
            "sox",
            Command::new("sox")
                .args(["-q", "-n", "-r", "48000", "-c", "2", "-b", "16", "-e", "signed", "-t", "raw", "-"])
                .args(["synth", "3600", "sine", &self.tone_hz.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::piped()),
        )?;
        let Some(tone) = sox.child_mut().stdout.take() else {
            return Err("sox: no stdout".into());
        };
        self.sox = Some(sox);
        let pacat = Proc::spawn(
            "pacat",
            Command::new("pacat")
                .args(["--latency-msec=20", "--rate=48000", "--channels=2", "--format=s16le"])
                .args(["-d", SINK])
                .envs(self.env())
                .stdin(Stdio::from(tone))
                .stdout(Stdio::null()),
        )?;
        self.pacat = Some(pacat);
        // Wait until the tone actually plays into the sink.
        let deadline = Instant::now() + STEP_BOUND;
        loop {
            if let Some(p) = self.pacat.as_mut()
                && p.exited().is_some()
            {
                return Err(p.failure("pacat failed"));
            }
            if self.pactl(&["list", "short", "sink-inputs"]).is_ok_and(|s| !s.trim().is_empty()) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err("the tone never reached the sink within 10 s".into());
            }
            thread::sleep(POLL * 5);
        }
    }
}

impl Drop for PulseMic {
    fn drop(&mut self) {
        for p in [self.pacat.take(), self.sox.take(), self.daemon.take()].into_iter().flatten() {
            drop(p);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
