//! Signal measurements used by the tests and benchmarks (and handy for checking
//! what an agent hears): THD+N against a fitted sine, a tone's frequency, and
//! the measured quality and latency of the 16 kHz → 48 kHz resampler.

use std::collections::VecDeque;

use super::resample::StereoResampler;

/// A −6 dBFS (0.5 × full scale) sine at `freq`, `secs` long, as s16 LE bytes.
fn sine_pcm(rate: u32, freq: f64, secs: f64) -> Vec<u8> {
    let n = (f64::from(rate) * secs) as usize;
    (0..n)
        .flat_map(|i| {
            let v = 0.5 * 32767.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin();
            (v.round() as i16).to_le_bytes()
        })
        .collect()
}

fn left_channel(out: &VecDeque<u8>) -> Vec<i16> {
    let bytes: Vec<u8> = out.iter().copied().collect();
    bytes.chunks_exact(4).map(|f| i16::from_le_bytes([f[0], f[1]])).collect()
}

/// Resampling quality of a sine, measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SineQuality {
    /// THD+N of the left output channel against the best-fit sine (dB).
    pub thd_n_db: f64,
    /// Output amplitude relative to the input's (dB).
    pub gain_db: f64,
    /// Whether both output channels are identical (mono duplicated).
    pub channels_identical: bool,
}

/// Resamples 2 s of a −6 dBFS sine at `freq` from 16 kHz mono to 48 kHz stereo in
/// 20 ms pushes and measures the steady-state output (the first and last 100 ms
/// are left out).
pub fn resampled_sine_quality(freq: f64) -> SineQuality {
    let Ok(mut r) = StereoResampler::new(16_000, 1) else {
        return SineQuality { thd_n_db: f64::NAN, gain_db: f64::NAN, channels_identical: false };
    };
    let mut out = VecDeque::new();
    for chunk in sine_pcm(16_000, freq, 2.0).chunks(640) {
        r.push_s16le(chunk, &mut out);
    }
    let bytes: Vec<u8> = out.iter().copied().collect();
    let channels_identical = bytes.chunks_exact(4).all(|f| f[..2] == f[2..]);
    let left: Vec<f64> = left_channel(&out).iter().map(|v| f64::from(*v) / 32768.0).collect();
    let steady = &left[4800..left.len().saturating_sub(4800).max(4800)];
    let (thd_n_db, amp) = thd_n(steady, 48_000.0, freq);
    let expected = 0.5 * 32767.0 / 32768.0;
    SineQuality { thd_n_db, gain_db: 20.0 * (amp / expected).log10(), channels_identical }
}

/// The latency the 16 kHz → 48 kHz resampler adds, measured (ms): with input
/// pushed in 20 ms chunks, the output released so far trails the input by up to
/// `held` frames (the filter's look-ahead), and a 16 kHz impulse lands `shift`
/// frames after its ideal 48 kHz position; a sound comes out `held + shift`
/// frames late.
pub fn resampler_latency_ms() -> f64 {
    let Ok(mut r) = StereoResampler::new(16_000, 1) else { return f64::NAN };
    let mut input: Vec<u8> = vec![0; 3200];
    input[1600..1602].copy_from_slice(&16_384i16.to_le_bytes()); // sample 800
    let mut out = VecDeque::new();
    let mut held: usize = 0;
    for (k, chunk) in input.chunks(640).enumerate() {
        r.push_s16le(chunk, &mut out);
        held = held.max(((k + 1) * 320 * 3).saturating_sub(out.len() / 4));
    }
    let left = left_channel(&out);
    let peak = left.iter().enumerate().max_by_key(|(_, v)| v.unsigned_abs()).map_or(0, |(i, _)| i);
    (held as f64 + peak as f64 - 2400.0) / 48.0
}

/// THD+N in dB, and the amplitude, of `y` (sampled at `rate`) against the
/// least-squares best-fit sine at `freq` (with a DC term).
pub fn thd_n(y: &[f64], rate: f64, freq: f64) -> (f64, f64) {
    let w = 2.0 * std::f64::consts::PI * freq / rate;
    // Least squares for a·sin + b·cos + c.
    let (mut ss, mut cc, mut sc, mut s1, mut c1, mut ys, mut yc, mut y1) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let n = y.len() as f64;
    for (i, v) in y.iter().enumerate() {
        let (s, c) = (w * i as f64).sin_cos();
        ss += s * s;
        cc += c * c;
        sc += s * c;
        s1 += s;
        c1 += c;
        ys += v * s;
        yc += v * c;
        y1 += v;
    }
    let m = [[ss, sc, s1], [sc, cc, c1], [s1, c1, n]];
    let rhs = [ys, yc, y1];
    let solve = |m: [[f64; 3]; 3], r: [f64; 3]| {
        let det = |m: [[f64; 3]; 3]| {
            m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
                + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
        };
        let d = det(m);
        let mut out = [0.0; 3];
        for (k, o) in out.iter_mut().enumerate() {
            let mut mk = m;
            for row in 0..3 {
                mk[row][k] = r[row];
            }
            *o = det(mk) / d;
        }
        out
    };
    let [a, b, c] = solve(m, rhs);
    let mut err = 0.0;
    for (i, v) in y.iter().enumerate() {
        let (s, co) = (w * i as f64).sin_cos();
        let e = v - (a * s + b * co + c);
        err += e * e;
    }
    let amp = (a * a + b * b).sqrt();
    let signal_rms = amp / 2f64.sqrt();
    let noise_rms = (err / n).sqrt();
    (20.0 * (noise_rms / signal_rms).log10(), amp)
}

/// The frequency (Hz) of the strongest tone in `y`, by counting zero crossings of
/// the mean-removed signal (good for a single clean tone).
pub fn tone_frequency(y: &[f64], rate: f64) -> f64 {
    if y.len() < 2 {
        return 0.0;
    }
    let mean = y.iter().sum::<f64>() / y.len() as f64;
    let crossings = y.windows(2).filter(|w| (w[0] - mean < 0.0) != (w[1] - mean < 0.0)).count();
    crossings as f64 / 2.0 / (y.len() as f64 / rate)
}

/// RMS level of `y` in dBFS (full scale = 1.0).
pub fn rms_dbfs(y: &[f64]) -> f64 {
    let rms = (y.iter().map(|v| v * v).sum::<f64>() / y.len().max(1) as f64).sqrt();
    20.0 * rms.max(1e-12).log10()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_clean_sine() {
        let y: Vec<f64> =
            (0..48_000).map(|i| 0.5 * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 48_000.0).sin()).collect();
        let (thdn, amp) = thd_n(&y, 48_000.0, 1000.0);
        assert!(thdn < -200.0 && (amp - 0.5).abs() < 1e-9, "{thdn} {amp}");
        assert!((tone_frequency(&y, 48_000.0) - 1000.0).abs() < 1.0);
        assert!((rms_dbfs(&y) + 9.03).abs() < 0.01);
    }
}
