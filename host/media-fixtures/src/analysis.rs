//! Signal analysis, leak probes and small waiting helpers.

use std::f64::consts::PI;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

/// Most samples the analysis looks at (~1.4 s at 48 kHz); longer inputs use their
/// start. Keeps the Hann main lobe wide enough for the refinement steps below.
const MAX_ANALYSED: usize = 1 << 16;

/// Samples of the coarse scan.
const COARSE_LEN: usize = 8192;

/// The frequency (Hz) of the strongest sinusoid between 50 and 4000 Hz (capped
/// below Nyquist): a Hann-windowed Goertzel scan every 10 Hz on the first 8192
/// samples, a 0.5 Hz scan of ±10 Hz around the peak on up to 65536 samples, then a
/// ternary search of the main lobe. Within ±0.1 Hz on 1 s of a clean 48 kHz tone.
/// Returns 0.0 for fewer than 64 samples or silence.
pub fn dominant_frequency(samples: &[f32], rate: u32) -> f64 {
    if samples.len() < 64 || rate == 0 {
        return 0.0;
    }
    let rate = f64::from(rate);
    let hi = 4000.0_f64.min(rate / 2.0 - 20.0);
    let lo = 50.0_f64.min(hi);
    let full = windowed(&samples[..samples.len().min(MAX_ANALYSED)]);
    let coarse = windowed(&samples[..samples.len().min(COARSE_LEN)]);
    if full.iter().all(|&x| x == 0.0) {
        return 0.0;
    }

    let argmax = |x: &[f64], from: f64, to: f64, step: f64| {
        let mut best = (from, f64::MIN);
        let mut f = from;
        while f <= to + 1e-9 {
            let p = goertzel_power(x, f / rate);
            if p > best.1 {
                best = (f, p);
            }
            f += step;
        }
        best.0
    };
    let f0 = argmax(&coarse, lo, hi, 10.0);
    let f1 = argmax(&full, (f0 - 10.0).max(lo), (f0 + 10.0).min(hi), 0.5);

    // Ternary search for the lobe's top in [f1 - 0.5, f1 + 0.5].
    let (mut a, mut b) = (f1 - 0.5, f1 + 0.5);
    for _ in 0..40 {
        let m1 = a + (b - a) / 3.0;
        let m2 = b - (b - a) / 3.0;
        if goertzel_power(&full, m1 / rate) < goertzel_power(&full, m2 / rate) {
            a = m1;
        } else {
            b = m2;
        }
    }
    (a + b) / 2.0
}

fn windowed(x: &[f32]) -> Vec<f64> {
    let n = x.len();
    let denom = (n.max(2) - 1) as f64;
    x.iter().enumerate().map(|(i, &v)| f64::from(v) * (0.5 - 0.5 * (2.0 * PI * i as f64 / denom).cos())).collect()
}

/// Power of `x` at `cycles_per_sample` (any real frequency, not only bin centres).
fn goertzel_power(x: &[f64], cycles_per_sample: f64) -> f64 {
    let coeff = 2.0 * (2.0 * PI * cycles_per_sample).cos();
    let (mut s1, mut s2) = (0.0_f64, 0.0_f64);
    for &v in x {
        let s = v + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// Root mean square of `samples` (0.0 when empty).
pub fn rms(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len() as f64).sqrt() as f32
}

/// `seconds` of a sine at `freq` Hz and peak `amplitude`, at `rate` (for tests).
pub fn sine(freq: f64, rate: u32, seconds: f64, amplitude: f32) -> Vec<f32> {
    let n = (seconds * f64::from(rate)).round() as usize;
    (0..n).map(|i| amplitude * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin() as f32).collect()
}

/// Open file descriptors of this process (entries of `/proc/self/fd`, not counting
/// the one used to list them). Compare before/after to find leaks.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count().saturating_sub(1))
}

/// Threads of this process (entries of `/proc/self/task`).
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, Iterator::count)
}

/// Polls `f` every 10 ms until it returns true or `bound` has passed; returns
/// whether it became true (a last check is made at the bound).
pub fn wait_until(bound: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + bound;
    loop {
        if f() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return f();
        }
        thread::sleep(Duration::from_millis(10).min(deadline - now));
    }
}

/// Whether `name` is an executable file: a path if it contains `/`, else looked up
/// in `PATH`.
pub fn tool_available(name: &str) -> bool {
    let executable = |p: &Path| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if name.contains('/') {
        return executable(Path::new(name));
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| !name.is_empty() && executable(&dir.join(name))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sine_frequencies() {
        for (f, rate) in [(440.0, 48_000), (1000.0, 48_000), (123.4, 44_100), (3500.0, 16_000), (440.0, 8_000)] {
            let x = sine(f, rate, 1.0, 0.5);
            let got = dominant_frequency(&x, rate);
            assert!((got - f).abs() < 0.2, "{f} Hz at {rate}: got {got}");
        }
        // Short, with noise and a weaker second tone.
        let mut x = sine(440.0, 48_000, 0.25, 0.5);
        let y = sine(1320.0, 48_000, 0.25, 0.1);
        let mut seed = 1u32;
        for (a, b) in x.iter_mut().zip(&y) {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            *a += b + (f64::from(seed >> 8) / f64::from(1u32 << 24) - 0.5) as f32 * 0.1;
        }
        let got = dominant_frequency(&x, 48_000);
        assert!((got - 440.0).abs() < 2.0, "noisy: {got}");
        // Long inputs (analysis capped at 65536 samples).
        let got = dominant_frequency(&sine(440.0, 48_000, 5.0, 0.5), 48_000);
        assert!((got - 440.0).abs() < 0.2, "long: {got}");
    }

    #[test]
    fn degenerate_inputs() {
        assert_eq!(dominant_frequency(&[], 48_000), 0.0);
        assert_eq!(dominant_frequency(&[0.0; 4800], 48_000), 0.0);
        assert_eq!(rms(&[]), 0.0);
        let r = rms(&sine(440.0, 48_000, 1.0, 1.0));
        assert!((r - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-3, "{r}");
    }

    #[test]
    fn probes_and_waits() {
        assert!(fd_count() >= 3);
        assert!(thread_count() >= 1);
        // Other tests of this binary open pipes concurrently: allow a few tries.
        let one_more = (0..20).any(|_| {
            let before = fd_count();
            let f = std::fs::File::open("/proc/self/stat").unwrap();
            let after = fd_count();
            drop(f);
            after == before + 1
        });
        assert!(one_more);
        assert!(tool_available("sh"));
        assert!(tool_available("/bin/sh"));
        assert!(!tool_available("no-such-tool-here"));
        assert!(!tool_available(""));
        let t = Instant::now();
        assert!(!wait_until(Duration::from_millis(50), || false));
        assert!(t.elapsed() >= Duration::from_millis(50));
        let mut n = 0;
        assert!(wait_until(Duration::from_secs(1), || {
            n += 1;
            n == 3
        }));
    }
}
