//! Signal measurements used by the tests and benchmarks (and handy for checking
//! what an agent hears): THD+N against a fitted sine, and a tone's frequency.

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
