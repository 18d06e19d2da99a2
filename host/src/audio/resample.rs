//! Resampling to 48 kHz stereo with rubato. Input is staged with `feed` and
//! resampled in 1 ms blocks (`drain` runs every complete block), so at most 1 ms
//! of input plus the filter's own delay waits inside; both calls are
//! allocation-free.

use std::collections::VecDeque;

use rubato::{Resampler as _, SincFixedIn, SincInterpolationParameters, SincInterpolationType, WindowFunction};

/// The output rate.
pub const OUTPUT_RATE: u32 = 48_000;

/// Why a resampler could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResampleError {
    /// The input rate is outside 1 kHz..=384 kHz.
    #[error("input rate {0} Hz is outside 1000..=384000")]
    Rate(u32),
    /// rubato refused the parameters.
    #[error("resampler: {0}")]
    Construction(String),
}

/// Windowed-sinc length in input samples: 64 taps put the filter's group delay at
/// 32 input samples (2 ms at 16 kHz). With a Blackman-Harris window and the cutoff
/// at 0.97 of the lower Nyquist, 16 kHz → 48 kHz measures THD+N −90.8 dB at 1 kHz
/// and −88.9 dB at 7 kHz with −0.01 dB passband loss at 7 kHz (see the tests;
/// alternatives measured: squared Blackman-Harris at 0.93 lost 1.2 dB at 7 kHz).
const SINC_LEN: usize = 64;

/// Mono or stereo input → 48 kHz stereo s16, interleaved into a queue.
pub struct StereoResampler {
    inner: Option<SincFixedIn<f32>>,
    channels: usize,
    chunk: usize,
    pending: [Vec<f32>; 2],
    out: Vec<Vec<f32>>,
    ratio: f64,
    frames_in: u64,
    frames_out: u64,
}

impl std::fmt::Debug for StereoResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StereoResampler").field("channels", &self.channels).field("chunk", &self.chunk).finish()
    }
}

fn to_s16(x: f32) -> i16 {
    (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

impl StereoResampler {
    /// A resampler from `input_rate` with 1 or 2 input channels.
    pub fn new(input_rate: u32, channels: usize) -> Result<Self, ResampleError> {
        if !(1_000..=384_000).contains(&input_rate) {
            return Err(ResampleError::Rate(input_rate));
        }
        let channels = channels.clamp(1, 2);
        // 1 ms blocks: at most 1 ms of input waits for its block, and every
        // block has the same size, so any split of the input gives the same
        // output bit for bit (larger blocks measured no faster: the 64-tap
        // dot products dominate).
        let chunk = (input_rate as usize / 1000).max(1);
        let inner = if input_rate == OUTPUT_RATE {
            None
        } else {
            let ratio = f64::from(OUTPUT_RATE) / f64::from(input_rate);
            // Oversampling by the rates' ratio denominator makes the sinc table
            // hold exactly the needed positions ("Nearest" is then exact) and keeps
            // it tiny (64 × 3 taps for 16 kHz → 48 kHz).
            let g = gcd(OUTPUT_RATE, input_rate);
            let den = (OUTPUT_RATE / g) as usize;
            let oversampling = if den <= 512 { den } else { 256 };
            let interpolation = if den <= 512 { SincInterpolationType::Nearest } else { SincInterpolationType::Cubic };
            let params = SincInterpolationParameters {
                sinc_len: SINC_LEN,
                f_cutoff: 0.97,
                oversampling_factor: oversampling,
                interpolation,
                window: WindowFunction::BlackmanHarris,
            };
            Some(
                SincFixedIn::<f32>::new(ratio, 1.0, params, chunk, channels)
                    .map_err(|e| ResampleError::Construction(e.to_string()))?,
            )
        };
        let out = inner.as_ref().map(|r| r.output_buffer_allocate(true)).unwrap_or_default();
        Ok(Self {
            inner,
            channels,
            chunk,
            pending: [Vec::with_capacity(chunk * 4), Vec::with_capacity(chunk * 4)],
            out,
            ratio: f64::from(OUTPUT_RATE) / f64::from(input_rate),
            frames_in: 0,
            frames_out: 0,
        })
    }

    /// Input channels (1 or 2).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Output frames the filter holds back (its group delay).
    pub fn delay_frames(&self) -> usize {
        self.inner.as_ref().map_or(0, |r| r.output_delay())
    }

    /// Stages one input frame (per-channel samples in [-1, 1]); a full 20 ms
    /// block is resampled into `sink` at once, the rest by [`Self::drain`].
    pub fn feed(&mut self, left: f32, right: f32, sink: &mut VecDeque<i16>) {
        if self.inner.is_none() {
            let r = if self.channels == 1 { left } else { right };
            sink.push_back(to_s16(left));
            sink.push_back(to_s16(r));
            return;
        }
        self.frames_in += 1;
        self.pending[0].push(left);
        if self.channels == 2 {
            self.pending[1].push(right);
        }
        if self.pending[0].len() >= self.chunk {
            self.drain(sink);
        }
    }

    /// Resamples everything staged into `sink` as interleaved stereo s16.
    pub fn drain(&mut self, sink: &mut VecDeque<i16>) {
        let channels = self.channels;
        while let Some(r) = self.inner.as_mut() {
            let n = self.chunk;
            if self.pending[0].len() < n {
                return;
            }
            let input: [&[f32]; 2] = [&self.pending[0][..n], &self.pending[1][..if channels == 2 { n } else { 0 }]];
            let produced = match r.process_into_buffer(&input[..channels], &mut self.out, None) {
                Ok((_, produced)) => produced,
                Err(e) => {
                    tracing::error!(error = %e, "resampler failed; dropping a block");
                    0
                }
            };
            interleave(&self.out, channels, produced, sink);
            self.frames_out += produced as u64;
            for p in &mut self.pending {
                let k = n.min(p.len());
                p.drain(..k);
            }
        }
    }

    /// Flushes pending input and the filter's tail (end of stream): the output
    /// then holds exactly `input frames × ratio` frames after the filter delay.
    pub fn flush(&mut self, sink: &mut VecDeque<i16>) {
        let Some(r) = self.inner.as_mut() else { return };
        let channels = self.channels;
        let target = (self.frames_in as f64 * self.ratio).round() as u64 + r.output_delay() as u64;
        let pending_len = self.pending[0].len();
        let mut first = pending_len > 0;
        // Bounded: each call advances at least one chunk of (zero-padded) input.
        for _ in 0..64 {
            if self.frames_out >= target {
                break;
            }
            let result = if first {
                let input: [&[f32]; 2] =
                    [&self.pending[0], &self.pending[1][..if channels == 2 { pending_len } else { 0 }]];
                r.process_partial_into_buffer(Some(&input[..channels]), &mut self.out, None)
            } else {
                r.process_partial_into_buffer(None::<&[&[f32]]>, &mut self.out, None)
            };
            first = false;
            match result {
                Ok((_, produced)) if produced > 0 => {
                    let take = (produced as u64).min(target - self.frames_out) as usize;
                    interleave(&self.out, channels, take, sink);
                    self.frames_out += take as u64;
                }
                _ => break,
            }
        }
        self.reset();
    }

    /// Drops pending input and the filter's state (barge-in).
    pub fn reset(&mut self) {
        for p in &mut self.pending {
            p.clear();
        }
        self.frames_in = 0;
        self.frames_out = 0;
        if let Some(r) = self.inner.as_mut() {
            r.reset();
        }
    }
}

fn interleave(out: &[Vec<f32>], channels: usize, frames: usize, sink: &mut VecDeque<i16>) {
    if channels == 2 {
        for (l, r) in out[0][..frames].iter().zip(&out[1][..frames]) {
            sink.push_back(to_s16(*l));
            sink.push_back(to_s16(*r));
        }
    } else {
        for l in &out[0][..frames] {
            let v = to_s16(*l);
            sink.push_back(v);
            sink.push_back(v);
        }
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}
