//! Messaging benchmark of `metered serve` on loopback; prints one JSON object.
//!
//! - fan-out throughput: messages delivered per second with 1, 100 and 1000
//!   subscribers in one channel, publishers publishing as fast as a flow-control
//!   window over the slowest subscriber allows, for a fixed duration;
//! - publish→receive latency (p50/p99/max, measured at every subscriber) at fixed
//!   publish rates, up to 1000 subscribers × 1000 publishes/s;
//! - server resident memory per idle, subscribed connection.
//!
//! The server is the real `target/release/metered serve --config <generated toml>`
//! in its own process (built first with `cargo build --release -p metered-cli
//! --bin metered`, or `METERED_BIN=/path/to/metered`), so its CPU time and RSS
//! are read from `/proc/<pid>/{stat,status}` apart from the load generator's.
//! The generated config lifts the limits a benchmark would trip (documented in
//! the JSON under `server_config`): the per-connection message rate, the
//! outbound queue, the per-tenant and per-IP connection caps, and the
//! heartbeat/idle timers (so that silent benchmark clients are not pinged).
//!
//! The load generator speaks WebSocket directly over `tokio::net::TcpStream`
//! (hand-written handshake and frame header parsing, frames counted by their
//! `{"type":"message"` prefix without JSON parsing) so that as much of the
//! shared CPU as possible is left to the server. Server and clients share the
//! same cores; the JSON reports both processes' CPU and everyone else's.
//!
//! The server logs at `warn` unless `METERED_LOG` is set (`metered serve`'s own
//! default is `info`, which enters a per-connection span on every poll).
//!
//! `cargo bench -p metered-realtime-e2e --bench messaging`: about 40 s of
//! measurement after the build (bounded at 7 minutes, 90 s with `BENCH_QUICK=1`,
//! which takes about 20 s). Knobs: `BENCH_ONLY=idle,fanout-1000,latency-1000-1000`,
//! `BENCH_SECS`, `BENCH_LATENCY=SUBS:RATE,…`, `BENCH_CLIENT_THREADS`, `METERED_BIN`.
//! Latency figures are only meaningful when `cpu.other_processes_cores` is near
//! 0: on a 2-core machine any other load goes straight into the queueing delay.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SUB_KEY: &str = "pk_bench_subscriber";
const PUB_KEY: &str = "pk_bench_publisher";

/// Limits lifted in the generated server config (everything else is the hosted default).
const LIMITS: &[(&str, u64)] = &[
    // A benchmark publisher is far above the hosted 100 messages/s.
    ("messages_per_second", 1_000_000_000),
    ("message_burst", 1_000_000_000),
    // Room for the flow-control window of a fast publisher.
    ("outbound_queue_frames", 65_536),
    // 0 = unlimited: thousands of connections from one tenant and one IP.
    ("max_connections_per_tenant", 0),
    ("connections_per_ip_per_minute", 0),
    // Benchmark clients never send; don't ping them mid-run.
    ("ping_interval_secs", 600),
    ("idle_timeout_secs", 1200),
];

fn config_toml() -> String {
    let mut s = String::from("listen = \"127.0.0.1:0\"\n");
    for (key, action) in [(SUB_KEY, "subscribe"), (PUB_KEY, "publish")] {
        // Subscribers lack the presence action: no O(n²) presence deltas while
        // 1000 of them join, and only `message` frames reach them.
        s += &format!("[[publishable_keys]]\nkey = \"{key}\"\nchannel_patterns = [\"**\"]\nactions = [\"{action}\"]\n");
    }
    s += "[limits]\n";
    for (k, v) in LIMITS {
        s += &format!("{k} = {v}\n");
    }
    s += "[web]\nenabled = false\n";
    s
}

// ---------------------------------------------------------------- processes --

/// pid of the running server child, for the run-time watchdog.
static SERVER_PID: AtomicU32 = AtomicU32::new(0);

/// `metered serve` in a child process; killed on drop (also on panic) and,
/// through `PR_SET_PDEATHSIG`, when this process dies.
struct ServerProcess {
    child: Child,
    addr: String,
    dir: PathBuf,
}

impl ServerProcess {
    fn start(bin: &Path) -> Self {
        let dir = std::env::temp_dir().join(format!("metered-bench-{}-{}", std::process::id(), rand_suffix()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = dir.join("serve.toml");
        let ready = dir.join("ready");
        std::fs::write(&config, config_toml()).expect("write config");
        let mut cmd = Command::new(bin);
        cmd.arg("serve").arg("--config").arg(&config).arg("--ready-file").arg(&ready);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::inherit());
        if std::env::var_os("METERED_LOG").is_none() {
            cmd.env("METERED_LOG", "warn");
        }
        die_with_parent(&mut cmd);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        SERVER_PID.store(child.id(), Ordering::Relaxed);
        let mut server = Self { child, addr: String::new(), dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(a) = std::fs::read_to_string(&ready)
                && !a.trim().is_empty()
            {
                server.addr = a.trim().to_owned();
                break;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("metered serve exited early: {status}");
            }
            assert!(Instant::now() < deadline, "metered serve did not become ready");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // SIGTERM first (graceful shutdown, lets profilers write their data), then SIGKILL.
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        SERVER_PID.store(0, Ordering::Relaxed);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Raises RLIMIT_NOFILE (soft to the hard limit, and the hard limit too when
/// root); the server child inherits it. Returns the soft limit in force.
#[allow(unsafe_code)]
fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        let want = lim.rlim_cur.max(65_536);
        let mut raised = libc::rlimit { rlim_cur: want, rlim_max: lim.rlim_max.max(want) };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            libc::setrlimit(libc::RLIMIT_NOFILE, &raised);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

/// The `metered` binary: `METERED_BIN`, else built next to this bench.
fn metered_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("METERED_BIN") {
        return PathBuf::from(p);
    }
    // This bench runs from <target>/release/deps/; the binary lands in <target>/release/.
    let exe = std::env::current_exe().expect("current_exe");
    let release = exe.parent().and_then(Path::parent).expect("target dir").to_path_buf();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "-p", "metered-cli", "--bin", "metered"])
        .env("CARGO_TARGET_DIR", release.parent().expect("target dir"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build --release -p metered-cli --bin metered failed");
    release.join("metered")
}

// -------------------------------------------------------------- /proc stats --

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of a process, in clock ticks (1/100 s).
fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    n(11) + n(12)
}

/// Busy ticks of the whole machine (all cores).
fn machine_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> =
        stat.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().take(8).sum();
    total - v.get(3).copied().unwrap_or(0) - v.get(4).copied().unwrap_or(0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// CPU use (in cores) of the server, this load generator and everything else
/// over a measured interval.
struct CpuMeter {
    server: String,
    t: Instant,
    s: u64,
    c: u64,
    m: u64,
}

impl CpuMeter {
    fn start(server: u32) -> Self {
        let server = server.to_string();
        Self { s: cpu_ticks(&server), c: cpu_ticks("self"), m: machine_busy_ticks(), t: Instant::now(), server }
    }

    fn stop(&self) -> Value {
        let secs = self.t.elapsed().as_secs_f64();
        let s = cpu_ticks(&self.server).saturating_sub(self.s) as f64;
        let c = cpu_ticks("self").saturating_sub(self.c) as f64;
        let m = machine_busy_ticks().saturating_sub(self.m) as f64;
        let cores = |ticks: f64| round2(ticks / 100.0 / secs);
        json!({
            "server_cores": cores(s),
            "load_generator_cores": cores(c),
            "other_processes_cores": cores((m - s - c).max(0.0)),
        })
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

// -------------------------------------------------------- raw WebSocket I/O --

/// A client WebSocket over a plain TcpStream: handshake, masked text frames out,
/// unmasked server frames in (header parsing only).
struct RawWs {
    tcp: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

/// A masked (all-zero key, so the payload is unchanged) client text frame.
fn client_frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.push(0x81);
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(payload);
}

impl RawWs {
    async fn connect(addr: &str, key: &str) -> RawWs {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        let mut ws = RawWs { tcp, buf: vec![0; 64 * 1024], start: 0, end: 0 };
        let req = format!(
            "GET /v1?key={key} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        ws.tcp.write_all(req.as_bytes()).await.expect("handshake write");
        let head_end = loop {
            if let Some(i) = ws.buf[..ws.end].windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(ws.fill().await, "connection closed during handshake");
        };
        assert!(
            ws.buf.starts_with(b"HTTP/1.1 101"),
            "handshake refused: {}",
            String::from_utf8_lossy(&ws.buf[..head_end])
        );
        ws.start = head_end;
        let welcome = ws.next_text().await.expect("welcome");
        assert!(welcome.starts_with(br#"{"type":"welcome""#), "expected welcome");
        ws
    }

    /// Reads more bytes; false on EOF or error.
    async fn fill(&mut self) -> bool {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let n = self.buf.len() * 2;
                self.buf.resize(n, 0);
            }
        }
        match self.tcp.read(&mut self.buf[self.end..]).await {
            Ok(n) if n > 0 => {
                self.end += n;
                true
            }
            _ => false,
        }
    }

    /// The next complete frame in the buffer: (opcode, payload range).
    fn parse_one(&self) -> Option<(u8, usize, usize)> {
        let b = &self.buf[self.start..self.end];
        if b.len() < 2 {
            return None;
        }
        let (len, hdr) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => (u64::from_be_bytes(b[2..10].try_into().ok()?) as usize, 10),
            126 | 127 => return None,
            n => (n as usize, 2),
        };
        (b.len() >= hdr + len).then(|| (b[0] & 0x0f, self.start + hdr, self.start + hdr + len))
    }

    /// Calls `f` with every text frame's payload until it returns false or the
    /// connection ends.
    async fn for_each_text(&mut self, mut f: impl FnMut(&[u8]) -> bool) {
        loop {
            while let Some((op, a, z)) = self.parse_one() {
                self.start = z;
                if op == 0x8 {
                    return;
                }
                if op == 0x1 && !f(&self.buf[a..z]) {
                    return;
                }
            }
            if !self.fill().await {
                return;
            }
        }
    }

    async fn next_text(&mut self) -> Option<Vec<u8>> {
        let mut out = None;
        self.for_each_text(|t| {
            out = Some(t.to_vec());
            false
        })
        .await;
        out
    }

    async fn send_text(&mut self, text: &str) {
        let mut out = Vec::with_capacity(text.len() + 14);
        client_frame(&mut out, text.as_bytes());
        self.tcp.write_all(&out).await.expect("send");
    }

    /// A connection subscribed to `channel` (ack received).
    async fn subscriber(addr: &str, channel: &str) -> RawWs {
        let mut ws = RawWs::connect(addr, SUB_KEY).await;
        ws.send_text(&json!({"type": "subscribe", "channel": channel, "requestId": "s"}).to_string()).await;
        loop {
            let t = ws.next_text().await.expect("subscribe ack");
            if t.starts_with(br#"{"type":"ack""#) {
                return ws;
            }
            assert!(!t.starts_with(br#"{"type":"error""#), "subscribe refused: {}", String::from_utf8_lossy(&t));
        }
    }
}

fn is_message(t: &[u8]) -> bool {
    t.starts_with(br#"{"type":"message""#)
}

async fn subscribers(addr: &str, channel: &str, n: usize) -> Vec<RawWs> {
    futures_util::stream::iter(0..n).map(|_| RawWs::subscriber(addr, channel)).buffered(32).collect().await
}

// ------------------------------------------------------------------ phases --

/// Fan-out throughput: `subs` subscribers of one channel, `publishers`
/// publishers keeping at most `window` publishes ahead of the slowest subscriber.
async fn fanout(server: &ServerProcess, subs: usize, publishers: usize, window: u64, secs: Duration) -> Value {
    let channel = format!("fanout-{subs}");
    let received: Arc<Vec<AtomicU64>> = Arc::new((0..subs).map(|_| AtomicU64::new(0)).collect());
    let mut readers = Vec::new();
    for (i, mut ws) in subscribers(&server.addr, &channel, subs).await.into_iter().enumerate() {
        let received = received.clone();
        readers.push(tokio::spawn(async move {
            loop {
                // Count a whole read's worth of frames, then publish the count.
                let mut n = 0u64;
                let mut more = true;
                while let Some((op, a, z)) = ws.parse_one() {
                    ws.start = z;
                    if op == 0x8 {
                        more = false;
                        break;
                    }
                    n += u64::from(op == 0x1 && is_message(&ws.buf[a..z]));
                }
                received[i].fetch_add(n, Ordering::Relaxed);
                if !more || !ws.fill().await {
                    return;
                }
            }
        }));
    }
    let published = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    const BATCH: u64 = 32;
    for _ in 0..publishers {
        let mut ws = RawWs::connect(&server.addr, PUB_KEY).await;
        let (published, stop, received) = (published.clone(), stop.clone(), received.clone());
        let payload = json!({"type": "publish", "channel": channel, "data": {"text": "benchmark payload of a typical chat-sized message"}})
            .to_string();
        writers.push(tokio::spawn(async move {
            let mut batch = Vec::new();
            for _ in 0..BATCH {
                client_frame(&mut batch, payload.as_bytes());
            }
            while !stop.load(Ordering::Relaxed) {
                let slowest = received.iter().map(|r| r.load(Ordering::Relaxed)).min().unwrap_or(0);
                if published.load(Ordering::Relaxed) + BATCH > slowest + window {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                    continue;
                }
                if ws.tcp.write_all(&batch).await.is_err() {
                    break;
                }
                published.fetch_add(BATCH, Ordering::Relaxed);
            }
        }));
    }
    let total = || received.iter().map(|r| r.load(Ordering::Relaxed)).sum::<u64>();
    tokio::time::sleep(Duration::from_millis(500)).await; // warm-up
    let n0 = total();
    let cpu = CpuMeter::start(server.pid());
    tokio::time::sleep(secs).await;
    let n1 = total();
    let elapsed = cpu.t.elapsed().as_secs_f64();
    let cpu = cpu.stop();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        let _ = w.await;
    }
    for r in readers {
        r.abort();
    }
    let delivered = (n1 - n0) as f64 / elapsed;
    json!({
        "subscribers": subs,
        "publishers": publishers,
        "window_publishes": window,
        "delivered_per_sec": delivered.round(),
        "publishes_per_sec": (delivered / subs as f64).round(),
        "seconds": round2(elapsed),
        "cpu": cpu,
    })
}

fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    round3(f64::from(sorted[idx]) / 1000.0)
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Parses the `t` (µs) of a `{"t":…}` payload.
fn sent_micros(t: &[u8]) -> Option<u64> {
    let i = t.windows(4).position(|w| w == br#""t":"#)? + 4;
    let digits = t[i..].iter().take_while(|b| b.is_ascii_digit());
    Some(digits.fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0')))
}

/// Publish→receive latency at every one of `subs` subscribers at `rate` publishes/s.
async fn latency(server: &ServerProcess, subs: usize, rate: u64, secs: Duration) -> Value {
    let channel = format!("latency-{subs}-{rate}");
    let base = Instant::now();
    let mut readers = Vec::new();
    for mut ws in subscribers(&server.addr, &channel, subs).await {
        readers.push(tokio::spawn(async move {
            let mut local: Vec<u32> = Vec::with_capacity((rate * secs.as_secs()) as usize + 64);
            ws.for_each_text(|t| {
                if !is_message(t) {
                    return true;
                }
                let now = base.elapsed().as_micros() as u64;
                match sent_micros(t) {
                    Some(sent) => {
                        local.push(now.saturating_sub(sent).min(u64::from(u32::MAX)) as u32);
                        true
                    }
                    None => false, // the end marker
                }
            })
            .await;
            local
        }));
    }
    let mut ws = RawWs::connect(&server.addr, PUB_KEY).await;
    let cpu = CpuMeter::start(server.pid());
    let period = Duration::from_nanos(1_000_000_000 / rate);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = 0u64;
    let mut out = Vec::with_capacity(128);
    while cpu.t.elapsed() < secs {
        tick.tick().await;
        let t = base.elapsed().as_micros() as u64;
        out.clear();
        client_frame(&mut out, format!(r#"{{"type":"publish","channel":"{channel}","data":{{"t":{t}}}}}"#).as_bytes());
        ws.tcp.write_all(&out).await.expect("publish");
        sent += 1;
    }
    let elapsed = cpu.t.elapsed().as_secs_f64();
    let cpu = cpu.stop();
    ws.send_text(&format!(r#"{{"type":"publish","channel":"{channel}","data":{{"end":true}}}}"#)).await;
    let mut all = Vec::new();
    let mut stuck = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for r in readers {
        match tokio::time::timeout_at(deadline, r).await {
            Ok(Ok(v)) => all.extend(v),
            _ => stuck += 1,
        }
    }
    all.sort_unstable();
    let expected = sent * subs as u64;
    json!({
        "subscribers": subs,
        "target_publishes_per_sec": rate,
        "achieved_publishes_per_sec": (sent as f64 / elapsed).round(),
        "deliveries_per_sec": (all.len() as f64 / elapsed).round(),
        "received_fraction": round3(all.len() as f64 / expected.max(1) as f64),
        "samples": all.len(),
        "p10_ms": percentile_ms(&all, 0.10),
        "p50_ms": percentile_ms(&all, 0.50),
        "p90_ms": percentile_ms(&all, 0.90),
        "p99_ms": percentile_ms(&all, 0.99),
        "max_ms": all.last().map(|v| round3(f64::from(*v) / 1000.0)),
        "stuck_readers": stuck,
        "cpu": cpu,
    })
}

/// Server RSS growth per idle, subscribed connection (a fresh server).
async fn idle_memory(server: &ServerProcess, n: usize) -> Value {
    // A few connections first so one-time allocations (runtime, maps) are not
    // charged to the idle ones.
    let warm = subscribers(&server.addr, "idle-warm", 16).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(server.pid());
    let mut conns = Vec::with_capacity(n);
    for c in 0..n.div_ceil(100) {
        let k = 100.min(n - c * 100);
        conns.extend(subscribers(&server.addr, &format!("idle-{c}"), k).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(server.pid());
    drop(conns);
    drop(warm);
    json!({
        "connections": n,
        "channels": n.div_ceil(100),
        "server_rss_before_kib": before,
        "server_rss_after_kib": after,
        "kib_per_idle_connection": round2(after.saturating_sub(before) as f64 / n as f64),
    })
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` probes harness=false benches
    }
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
    let fd_limit = raise_fd_limit();
    let bin = metered_bin();
    // Bound the whole run; the server child dies with us (PR_SET_PDEATHSIG) and
    // is killed explicitly here too.
    let budget = Duration::from_secs(if quick { 90 } else { 420 });
    std::thread::spawn(move || {
        std::thread::sleep(budget);
        eprintln!("messaging bench: over its {budget:?} budget, aborting");
        let pid = SERVER_PID.load(Ordering::Relaxed);
        if pid != 0 {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
        std::process::exit(2);
    });
    let secs = Duration::from_secs(std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(if quick {
        2
    } else {
        5
    }));
    let idle_n = if quick { 1000 } else { 5000.min((fd_limit as usize).saturating_sub(200) / 2) };
    let load_before = loadavg();
    let started = Instant::now();
    // BENCH_ONLY=idle,fanout-1000,latency-1000-1000 runs only the named phases.
    let only = std::env::var("BENCH_ONLY").ok();
    let run = |phase: &str| only.as_deref().is_none_or(|o| o.split(',').any(|p| p.trim() == phase));
    // Load generator threads (BENCH_CLIENT_THREADS; default: one per core).
    let client_threads = std::env::var("BENCH_CLIENT_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(client_threads).enable_all().build().unwrap();
    let result = rt.block_on(async {
        let mem = if run("idle") {
            let server = ServerProcess::start(&bin);
            idle_memory(&server, idle_n).await
        } else {
            Value::Null
        };
        let server = ServerProcess::start(&bin);
        let mut fan = Vec::new();
        for (subs, publishers, window) in [(1, 4, 20_000), (100, 2, 2_000), (1000, 2, 200)] {
            if run(&format!("fanout-{subs}")) {
                fan.push(fanout(&server, subs, publishers, window, secs).await);
            }
        }
        let mut lat = Vec::new();
        // BENCH_LATENCY=SUBS:RATE,… replaces the latency phases (for profiling).
        let custom: Option<Vec<(usize, u64)>> = std::env::var("BENCH_LATENCY").ok().map(|v| {
            v.split(',')
                .filter_map(|p| p.split_once(':'))
                .filter_map(|(s, r)| Some((s.trim().parse().ok()?, r.trim().parse().ok()?)))
                .collect()
        });
        let phases = custom.unwrap_or_else(|| vec![(1, 1000), (100, 1000), (1000, 100), (1000, 1000)]);
        for (subs, rate) in phases {
            if run(&format!("latency-{subs}-{rate}")) || std::env::var_os("BENCH_LATENCY").is_some() {
                lat.push(latency(&server, subs, rate, secs).await);
            }
        }
        let best_fanout = fan.iter().filter_map(|f| f["delivered_per_sec"].as_f64()).fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
        let p99_1000 = lat.iter().find(|l| l["subscribers"] == 1000 && l["target_publishes_per_sec"] == 1000).and_then(|l| l["p99_ms"].as_f64());
        let idle_kib = mem["kib_per_idle_connection"].as_f64();
        let goals = json!({
            "fanout_delivered_per_sec_at_least_200k": best_fanout.map(|v| v >= 200_000.0),
            "p99_under_5ms_at_1000_subscribers_1000_publishes_per_sec": p99_1000.map(|v| v < 5.0),
            "idle_connection_under_50_kib": idle_kib.map(|v| v < 50.0),
        });
        json!({
            "bench": "messaging",
            "goals": goals,
            "quick": quick,
            "server": format!("{} serve --config <generated>", bin.display()),
            "server_config": {"limits": LIMITS.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(), "log": std::env::var("METERED_LOG").unwrap_or_else(|_| "warn".into())},
            "machine": {
                "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
                "load_generator_threads": client_threads,
                "note": "server and load generator share these cores (and with whatever else runs: see cpu.other_processes_cores)",
                "loadavg_before": load_before,
                "loadavg_after": loadavg(),
            },
            "fanout": fan,
            "latency": lat,
            "idle_memory": mem,
            "run_seconds": started.elapsed().as_secs(),
        })
    });
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", serde_json::to_string_pretty(&result).unwrap());
}
