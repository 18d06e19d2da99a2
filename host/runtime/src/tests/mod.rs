//! Runtime tests with real guests, built from `guests/rust` by
//! [`guest`] (once per test binary, into `$CARGO_TARGET_DIR/guests`).

mod hostile;
mod offline;
mod policy;
mod reactor;

use super::{AgentLimits, Runtime, RuntimeConfig};
use crate::offline::Pcm;

/// The component bytes of the Rust guest `name` (`echo_agent`,
/// `hostile_agent`, …), built from `guests/rust` by the shared builder.
pub(crate) fn guest(name: &str) -> Vec<u8> {
    metered_guest_build::guest_bytes(metered_guest_build::GuestLang::Rust, name)
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
