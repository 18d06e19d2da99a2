//! A virtual X screen (Xvfb) with solid-colour content, for x11grab.

use std::fs;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::process::{POLL, Proc, run_ok, run_with_timeout};

/// Bound of [`Xvfb::start`] (per display attempt) and of [`Xvfb::spawn_window`].
const READY_BOUND: Duration = Duration::from_secs(10);

/// First display number tried.
const FIRST_DISPLAY: u32 = 90;
/// Display numbers tried before giving up.
const DISPLAY_TRIES: u32 = 200;

/// Display numbers handed out in this process (so parallel tests never race for one).
static NEXT_DISPLAY: AtomicU32 = AtomicU32::new(FIRST_DISPLAY);

/// Window titles handed out in this process.
static NEXT_WINDOW: AtomicU32 = AtomicU32::new(0);

/// An `Xvfb` server on a free display (`:90` and up; UNIX socket only, `-noreset` so
/// the screen survives its last client leaving) at `WxHx24`, root window solid red.
/// Windows from [`Xvfb::spawn_window`] are solid rectangles at exact pixel
/// geometries (there is no window manager, so no decorations). Dropping it kills the
/// windows, then the server, and removes the lock file and socket it leaves.
pub struct Xvfb {
    display: u32,
    width: u32,
    height: u32,
    windows: Vec<Proc>,
    server: Option<Proc>,
}

impl Xvfb {
    /// Starts a `width`x`height` 24-bit screen and paints the root window red
    /// (`xsetroot -solid red`). Each display attempt is bounded to 10 s.
    pub fn start(width: u32, height: u32) -> Result<Xvfb, String> {
        let mut last = String::from("no free display");
        for _ in 0..DISPLAY_TRIES {
            let n = NEXT_DISPLAY.fetch_add(1, Ordering::Relaxed);
            if n >= FIRST_DISPLAY + DISPLAY_TRIES {
                break;
            }
            if lock_path(n).exists() || socket_path(n).exists() {
                continue;
            }
            match launch(n, width, height) {
                Ok(server) => {
                    let xvfb = Xvfb { display: n, width, height, windows: Vec::new(), server: Some(server) };
                    run_ok(Command::new("xsetroot").args(["-display", &xvfb.display(), "-solid", "red"]), READY_BOUND)?;
                    return Ok(xvfb);
                }
                // Most likely another process took the display: try the next one.
                Err(e) => last = e,
            }
        }
        Err(format!("could not start Xvfb: {last}"))
    }

    /// The display name, `:N`.
    pub fn display(&self) -> String {
        format!(":{}", self.display)
    }

    /// The screen size in pixels.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Maps a solid `bg`-coloured window (an X colour name or `#RRGGBB`) of `w`x`h`
    /// pixels at (`x`, `y`) and waits (at most 10 s) until it is viewable. The window
    /// is an `xmessage` (x11-utils) with every colour and border set to `bg`; it lives
    /// until this `Xvfb` is dropped.
    pub fn spawn_window(&mut self, x: i32, y: i32, w: u32, h: u32, bg: &str) -> Result<(), String> {
        let title = format!("fixture-window-{}-{}", std::process::id(), NEXT_WINDOW.fetch_add(1, Ordering::Relaxed));
        let display = self.display();
        let mut cmd = Command::new("xmessage");
        cmd.args(["-display", &display, "-title", &title, "-name", &title])
            .args(["-geometry", &format!("{w}x{h}+{x}+{y}")])
            .args(["-bg", bg, "-fg", bg, "-bd", bg, "-bw", "0"])
            .args(["-xrm", "*borderWidth: 0", "-xrm", "*highlightThickness: 0"])
            .arg(" ")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let mut proc = Proc::spawn("xmessage", &mut cmd)?;
        let deadline = Instant::now() + READY_BOUND;
        loop {
            if proc.exited().is_some() {
                return Err(proc.failure("window did not appear"));
            }
            let info = run_with_timeout(
                Command::new("xwininfo").args(["-display", &display, "-name", &title]),
                Duration::from_secs(5),
            );
            if let Ok(out) = info
                && String::from_utf8_lossy(&out.stdout).contains("Map State: IsViewable")
            {
                break;
            }
            if Instant::now() >= deadline {
                return Err(proc.failure("window not viewable within 10 s"));
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.windows.push(proc);
        Ok(())
    }

    /// Captures the `w`x`h` region at (`x`, `y`) with `ffmpeg -f x11grab` (one frame) as
    /// packed RGB24, row by row. Bounded to 20 s.
    pub fn capture(&self, x: u32, y: u32, w: u32, h: u32) -> Result<Vec<u8>, String> {
        let rgb = run_ok(
            Command::new("ffmpeg")
                .args(["-nostdin", "-loglevel", "error", "-f", "x11grab"])
                .args(["-video_size", &format!("{w}x{h}")])
                .args(["-i", &format!("{}.0+{x},{y}", self.display())])
                .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]),
            Duration::from_secs(20),
        )?;
        let want = (w * h * 3) as usize;
        if rgb.len() != want {
            return Err(format!("x11grab returned {} bytes, wanted {want}", rgb.len()));
        }
        Ok(rgb)
    }

    /// The colour of one pixel, through [`Xvfb::capture`].
    pub fn pixel(&self, x: u32, y: u32) -> Result<(u8, u8, u8), String> {
        let p = self.capture(x, y, 1, 1)?;
        Ok((p[0], p[1], p[2]))
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        for mut w in self.windows.drain(..) {
            w.kill();
        }
        if let Some(mut server) = self.server.take() {
            let pid = server.pid();
            server.kill();
            // SIGKILL leaves the lock file and socket behind: remove them if ours.
            if lock_pid(self.display) == Some(pid) {
                let _ = fs::remove_file(socket_path(self.display));
                let _ = fs::remove_file(lock_path(self.display));
            }
        }
    }
}

fn lock_path(n: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/.X{n}-lock"))
}

fn socket_path(n: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/.X11-unix/X{n}"))
}

fn lock_pid(n: u32) -> Option<u32> {
    fs::read_to_string(lock_path(n)).ok()?.trim().parse().ok()
}

/// Starts `Xvfb :n` and waits until its socket accepts connections and the lock file
/// names our process (not another server that owns the display).
fn launch(n: u32, width: u32, height: u32) -> Result<Proc, String> {
    let mut server = Proc::spawn(
        "Xvfb",
        Command::new("Xvfb")
            .arg(format!(":{n}"))
            .args(["-screen", "0", &format!("{width}x{height}x24")])
            .args(["-nolisten", "tcp", "-noreset"])
            .stdin(Stdio::null())
            .stdout(Stdio::null()),
    )?;
    let deadline = Instant::now() + READY_BOUND;
    loop {
        if server.exited().is_some() {
            return Err(server.failure(&format!("Xvfb :{n} failed")));
        }
        if lock_pid(n) == Some(server.pid()) && UnixStream::connect(socket_path(n)).is_ok() {
            return Ok(server);
        }
        if Instant::now() >= deadline {
            return Err(server.failure(&format!("Xvfb :{n} not ready within 10 s")));
        }
        thread::sleep(POLL);
    }
}
