//! Messaging benchmark: fan-out throughput, publish→receive latency and memory
//! per idle connection of `metered serve`, on loopback. Prints one JSON object.
//!
//! The server runs in a child process (this binary re-executed with
//! `METERED_BENCH_ROLE=server`) so its CPU time and resident memory are read
//! from /proc apart from the load generator's. Both share this machine's cores;
//! the figures say so.
//!
//! `cargo bench -p metered-realtime-e2e --bench messaging` (BENCH_QUICK=1 for a
//! short run).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use metered_realtime::server::{Action, ServerConfig};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const ROLE_VAR: &str = "METERED_BENCH_ROLE";
const SUB_KEY: &str = "pk_bench_subscriber";
const PUB_KEY: &str = "pk_bench_publisher";

fn bench_config() -> ServerConfig {
    let mut c = ServerConfig::dev("127.0.0.1:0".parse().unwrap());
    // Subscribers without the presence action: no O(n²) presence deltas while
    // 1000 of them join. Publishers publish only.
    let template = c.publishable_keys[0].clone();
    let mut sub = template.clone();
    sub.key = SUB_KEY.into();
    sub.actions = vec![Action::Subscribe];
    let mut publ = template;
    publ.key = PUB_KEY.into();
    publ.actions = vec![Action::Publish];
    c.publishable_keys = vec![sub, publ];
    c.web.publishable_key = None;
    // Lift the per-connection message rate (a benchmark publisher is far above
    // the hosted 100/s) and give slow readers room.
    c.limits.messages_per_second = 10_000_000;
    c.limits.message_burst = 10_000_000;
    c.limits.outbound_queue_frames = 16_384;
    c.limits.max_connections_per_tenant = 0;
    c.limits.connections_per_ip_per_minute = 0;
    c
}

fn run_server() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let server = metered_realtime::server::Server::bind(bench_config()).await.expect("bind");
        println!("{}", server.local_addr());
        // Until the parent kills us (or stdin closes).
        let _ = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        })
        .await;
    });
}

/// The server child; killed on drop (also on panic).
struct ServerProcess {
    child: Child,
    addr: String,
}

impl ServerProcess {
    fn start() -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(ROLE_VAR, "server")
            .env("METERED_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("server address");
        Self { child, addr: line.trim().to_owned() }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of a process, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    #[allow(unsafe_code)]
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            let want = 65_536.max(lim.rlim_cur);
            lim.rlim_max = lim.rlim_max.max(want);
            lim.rlim_cur = want;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                lim.rlim_cur = lim.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
        }
    }
}

async fn connect(addr: &str, key: &str) -> Ws {
    let url = format!("ws://{addr}/v1?key={key}");
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true).await.expect("connect");
    ws
}

async fn subscriber(addr: &str, channel: &str) -> Ws {
    let mut ws = connect(addr, SUB_KEY).await;
    let _welcome = ws.next().await;
    ws.send(Message::text(json!({"type": "subscribe", "channel": channel, "requestId": "s"}).to_string()))
        .await
        .unwrap();
    loop {
        if let Some(Ok(Message::Text(t))) = ws.next().await
            && t.contains("\"ack\"")
        {
            return ws;
        }
    }
}

fn is_message(t: &str) -> bool {
    t.starts_with("{\"type\":\"message\"")
}

/// Fan-out throughput with `subs` subscribers; publishers keep at most `window`
/// messages ahead of the slowest subscriber.
async fn fanout(server: &ServerProcess, subs: usize, duration: Duration) -> serde_json::Value {
    let channel = format!("fanout-{subs}");
    let received: Arc<Vec<AtomicU64>> = Arc::new((0..subs).map(|_| AtomicU64::new(0)).collect());
    let mut readers = Vec::new();
    for i in 0..subs {
        let mut ws = subscriber(&server.addr, &channel).await;
        let received = received.clone();
        readers.push(tokio::spawn(async move {
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Text(t) = m
                    && is_message(&t)
                {
                    received[i].fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let publishers = if subs >= 100 { 2 } else { 8 };
    let window: u64 = if subs >= 1000 { 2_000 } else { 8_000 };
    let published = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cpu0 = cpu_secs(server.pid());
    let t0 = Instant::now();
    let mut writers = Vec::new();
    for _ in 0..publishers {
        let mut ws = connect(&server.addr, PUB_KEY).await;
        let _welcome = ws.next().await;
        let (published, stop, received, channel) = (published.clone(), stop.clone(), received.clone(), channel.clone());
        writers.push(tokio::spawn(async move {
            let payload = json!({"type": "publish", "channel": channel, "data": {"text": "benchmark payload of a typical chat-sized message"}}).to_string();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let slowest = received.iter().map(|r| r.load(Ordering::Relaxed)).min().unwrap_or(0);
                if published.load(Ordering::Relaxed) > slowest + window {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                    continue;
                }
                for _ in 0..32 {
                    ws.feed(Message::text(payload.clone())).await.unwrap();
                    n += 1;
                }
                ws.flush().await.unwrap();
                published.fetch_add(32, Ordering::Relaxed);
            }
            n
        }));
    }
    // Measure over the window after a short warm-up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start_total: u64 = received.iter().map(|r| r.load(Ordering::Relaxed)).sum();
    let ts = Instant::now();
    let cpu_s = cpu_secs(server.pid());
    tokio::time::sleep(duration).await;
    let end_total: u64 = received.iter().map(|r| r.load(Ordering::Relaxed)).sum();
    let elapsed = ts.elapsed().as_secs_f64();
    let server_cpu = (cpu_secs(server.pid()) - cpu_s) / elapsed;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        let _ = w.await;
    }
    for r in readers {
        r.abort();
    }
    let _ = (cpu0, t0);
    let delivered = (end_total - start_total) as f64 / elapsed;
    json!({
        "subscribers": subs,
        "publishers": publishers,
        "delivered_per_sec": delivered.round(),
        "publishes_per_sec": (delivered / subs as f64).round(),
        "server_cpu_cores": (server_cpu * 100.0).round() / 100.0,
        "seconds": (elapsed * 100.0).round() / 100.0,
    })
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64 / 1000.0
}

/// Publish→receive latency with `subs` subscribers at `rate` publishes/s.
async fn latency(server: &ServerProcess, subs: usize, rate: u64, duration: Duration) -> serde_json::Value {
    let channel = format!("latency-{subs}-{rate}");
    let base = Instant::now();
    let samples: Arc<parking_lot::Mutex<Vec<u64>>> = Arc::default();
    let lost = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for _ in 0..subs {
        let mut ws = subscriber(&server.addr, &channel).await;
        let samples = samples.clone();
        readers.push(tokio::spawn(async move {
            let mut local = Vec::with_capacity(8192);
            while let Some(Ok(m)) = ws.next().await {
                let Message::Text(t) = m else { continue };
                if !is_message(&t) {
                    continue;
                }
                if t.contains("\"end\":true") {
                    break;
                }
                let now = base.elapsed().as_micros() as u64;
                if let Some(sent) = t
                    .split("\"t\":")
                    .nth(1)
                    .and_then(|r| r.split(['}', ',']).next())
                    .and_then(|v| v.parse::<u64>().ok())
                {
                    local.push(now.saturating_sub(sent));
                }
            }
            samples.lock().extend(local);
        }));
    }
    let mut ws = connect(&server.addr, PUB_KEY).await;
    let _welcome = ws.next().await;
    let cpu_s = cpu_secs(server.pid());
    let ts = Instant::now();
    let period = Duration::from_nanos(1_000_000_000 / rate);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = 0u64;
    while ts.elapsed() < duration {
        tick.tick().await;
        let t = base.elapsed().as_micros() as u64;
        ws.send(Message::text(json!({"type": "publish", "channel": channel, "data": {"t": t}}).to_string()))
            .await
            .unwrap();
        sent += 1;
    }
    let elapsed = ts.elapsed().as_secs_f64();
    let server_cpu = (cpu_secs(server.pid()) - cpu_s) / elapsed;
    ws.send(Message::text(json!({"type": "publish", "channel": channel, "data": {"end": true}}).to_string()))
        .await
        .unwrap();
    for r in readers {
        if tokio::time::timeout(Duration::from_secs(30), r).await.is_err() {
            lost.fetch_add(1, Ordering::Relaxed);
        }
    }
    let mut all = std::mem::take(&mut *samples.lock());
    all.sort_unstable();
    let expected = sent * subs as u64;
    json!({
        "subscribers": subs,
        "target_publishes_per_sec": rate,
        "achieved_publishes_per_sec": (sent as f64 / elapsed).round(),
        "deliveries_per_sec": (all.len() as f64 / elapsed).round(),
        "received_fraction": all.len() as f64 / expected.max(1) as f64,
        "p50_ms": percentile(&all, 0.50),
        "p99_ms": percentile(&all, 0.99),
        "max_ms": all.last().map(|v| *v as f64 / 1000.0),
        "server_cpu_cores": (server_cpu * 100.0).round() / 100.0,
        "stuck_readers": lost.load(Ordering::Relaxed),
    })
}

/// Server RSS growth per idle, subscribed connection.
async fn idle_memory(server: &ServerProcess, n: usize) -> serde_json::Value {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(server.pid());
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        conns.push(subscriber(&server.addr, &format!("idle-{}", i % 50)).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(server.pid());
    drop(conns);
    json!({
        "connections": n,
        "server_rss_before_kib": before,
        "server_rss_after_kib": after,
        "kib_per_idle_connection": ((after.saturating_sub(before)) as f64 / n as f64 * 100.0).round() / 100.0,
    })
}

fn main() {
    if std::env::var(ROLE_VAR).as_deref() == Ok("server") {
        run_server();
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` probes harness=false benches
    }
    raise_fd_limit();
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
    let secs = Duration::from_secs(if quick { 2 } else { 5 });
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let result = rt.block_on(async {
        let mem = idle_memory(&ServerProcess::start(), if quick { 1000 } else { 5000 }).await;
        let server = ServerProcess::start();
        let mut fan = Vec::new();
        for subs in [1, 100, 1000] {
            fan.push(fanout(&server, subs, secs).await);
        }
        let mut lat = Vec::new();
        for (subs, rate) in [(1, 1000), (1000, 10), (1000, 100), (1000, 1000)] {
            lat.push(latency(&server, subs, rate, secs).await);
        }
        json!({
            "bench": "messaging",
            "machine": {"cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), "note": "server and load generator share these cores"},
            "fanout": fan,
            "latency": lat,
            "idle_memory": mem,
        })
    });
    println!("{}", serde_json::to_string_pretty(&result).unwrap());
}
