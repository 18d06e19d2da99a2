//! Runtime tests with real guests, built from `guests/rust` by
//! [`guest`] (once per test binary, into `$CARGO_TARGET_DIR/guests`).

mod hostile;
mod offline;
mod policy;
mod reactor;

use std::path::PathBuf;
use std::sync::OnceLock;

use super::{AgentLimits, Runtime, RuntimeConfig};
use crate::runtime::offline::Pcm;

/// The repository root.
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where the guests are built: `$CARGO_TARGET_DIR/guests` (or `target/guests`).
fn guest_target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo().join("target"), PathBuf::from).join("guests")
}

/// Builds every Rust guest once (release, wasm32-wasip2) and returns the
/// component bytes of `name` (`echo_agent`, `hostile_agent`, …).
pub(crate) fn guest(name: &str) -> Vec<u8> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = std::process::Command::new(cargo)
            .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
            .arg(repo().join("guests/rust/Cargo.toml"))
            .env("CARGO_TARGET_DIR", guest_target())
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .output()
            .map_err(|e| format!("running cargo: {e}"))?;
        if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
    });
    if let Err(e) = built {
        panic!("building guests/rust failed (is the wasm32-wasip2 target installed?):\n{e}");
    }
    let path = guest_target().join("wasm32-wasip2/release").join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A runtime with a small pool, for tests.
pub(crate) fn runtime(max_agents: u32) -> Runtime {
    Runtime::new(RuntimeConfig { max_agents, ..RuntimeConfig::default() }).expect("runtime")
}

/// A runtime with a small pool and adjusted limits.
pub(crate) fn runtime_with(max_agents: u32, limits: impl FnOnce(&mut AgentLimits)) -> Runtime {
    let mut config = RuntimeConfig { max_agents, ..RuntimeConfig::default() };
    limits(&mut config.limits);
    Runtime::new(config).expect("runtime")
}

/// A sine tone at −6 dBFS.
pub(crate) fn tone(freq: f64, seconds: f64, rate: u32, channels: u16) -> Pcm {
    let n = (seconds * f64::from(rate)) as usize;
    let samples = (0..n)
        .flat_map(|i| {
            let s = ((i as f64 * std::f64::consts::TAU * freq / f64::from(rate)).sin() * 16384.0) as i16;
            std::iter::repeat_n(s, usize::from(channels))
        })
        .collect();
    Pcm { sample_rate: rate, channels, samples }
}

/// The left channel of interleaved stereo as f64 in [-1, 1], without leading
/// and trailing silence.
pub(crate) fn left_trimmed(samples: &[i16]) -> Vec<f64> {
    let left: Vec<f64> = samples.iter().step_by(2).map(|&s| f64::from(s) / 32768.0).collect();
    let first = left.iter().position(|v| v.abs() > 1e-3).unwrap_or(0);
    let last = left.iter().rposition(|v| v.abs() > 1e-3).unwrap_or(0);
    left.get(first..=last).map(<[f64]>::to_vec).unwrap_or_default()
}

/// Resident set size of this process, bytes (Linux; 0 elsewhere).
pub(crate) fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<usize>().ok()).unwrap_or(0) * 4096
}
