//! Decoded FFmpeg frames into the media core's frames, reusing buffers.

use ff::format::Sample;
use ff::format::sample::Type as Layout;
use ff::software::scaling;
use ffmpeg_next as ff;
use metered_media::{AudioFrame, ChannelLayout, SampleFormat, VideoFrame};

/// Most channels a source may carry (a header claiming more is refused).
pub(crate) const MAX_CHANNELS: u16 = 32;
/// Sample rates a source may have.
pub(crate) const RATES: std::ops::RangeInclusive<u32> = 1_000..=384_000;

/// Writes `src` into `out` (interleaved or planar s16/f32, any layout);
/// `false` when the frame is unusable (no samples, a bad rate or count).
pub(crate) fn audio(src: &ff::frame::Audio, out: &mut AudioFrame) -> bool {
    let (n, channels, rate) = (src.samples(), src.channels(), src.rate());
    if n == 0 || channels == 0 || channels > MAX_CHANNELS || !RATES.contains(&rate) {
        return false;
    }
    let ch = usize::from(channels);
    out.sample_rate = rate;
    out.layout = ChannelLayout::from_channels(ch);
    out.pts = 0;
    out.data.clear();
    let format = src.format();
    let bytes = format.bytes();
    let planar = format.is_planar();
    let plane_len = if planar { n * bytes } else { n * bytes * ch };
    let planes = if planar { ch } else { 1 };
    if src.planes() < planes {
        return false;
    }
    let plane = |i: usize| -> &[u8] {
        let d = src.data(i);
        &d[..plane_len.min(d.len())]
    };
    match format {
        Sample::I16(layout) | Sample::F32(layout) => {
            out.format = if matches!(format, Sample::I16(_)) { SampleFormat::S16 } else { SampleFormat::F32 };
            out.planar = layout == Layout::Planar;
            for i in 0..planes {
                out.data.extend_from_slice(plane(i));
            }
        }
        Sample::U8(_) | Sample::I32(_) | Sample::I64(_) | Sample::F64(_) => {
            // Rare in practice (wav u8/s32, some decoders' dbl): to f32.
            out.format = SampleFormat::F32;
            out.planar = planar;
            for i in 0..planes {
                for s in plane(i).chunks_exact(bytes) {
                    let v = match format {
                        Sample::U8(_) => (f32::from(s[0]) - 128.0) / 128.0,
                        Sample::I32(_) => i32::from_le_bytes([s[0], s[1], s[2], s[3]]) as f32 / 2_147_483_648.0,
                        Sample::I64(_) => {
                            let b: [u8; 8] = s.try_into().unwrap_or([0; 8]);
                            i64::from_le_bytes(b) as f32 / 9.223_372e18
                        }
                        _ => {
                            let b: [u8; 8] = s.try_into().unwrap_or([0; 8]);
                            f64::from_le_bytes(b) as f32
                        }
                    };
                    out.data.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        Sample::None => return false,
    }
    out.samples_per_channel() == Some(n)
}

/// Keeps the first `n` samples (per channel) of `frame`, if it has more.
pub(crate) fn truncate(frame: &mut AudioFrame, n: usize) {
    let Some(have) = frame.samples_per_channel() else { return };
    if n >= have {
        return;
    }
    let bytes = frame.bytes_per_sample();
    let ch = frame.layout.channels();
    if frame.planar {
        let plane = have * bytes;
        for c in 1..ch {
            frame.data.copy_within(c * plane..c * plane + n * bytes, c * n * bytes);
        }
        frame.data.truncate(ch * n * bytes);
    } else {
        frame.data.truncate(n * bytes * ch);
    }
}

/// Video frames to tightly packed I420 at a target size: copied plane by
/// plane when the decoder already gives I420 at that size, else through a
/// swscale context kept (and rebuilt when the input changes).
#[derive(Default)]
pub(crate) struct VideoConverter {
    scaler: Option<(ScalerKey, scaling::Context, ff::frame::Video)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct ScalerKey {
    format: ff::format::Pixel,
    width: u32,
    height: u32,
    out: (u32, u32),
}

impl VideoConverter {
    /// Writes `src` into `out` at `size` (`None`: the source's size).
    pub(crate) fn convert(
        &mut self,
        src: &ff::frame::Video,
        size: Option<(u32, u32)>,
        out: &mut VideoFrame,
    ) -> Result<(), String> {
        let (w, h) = (src.width(), src.height());
        if w == 0 || h == 0 || w > VideoFrame::MAX_SIDE || h > VideoFrame::MAX_SIDE {
            return Err(format!("video of {w}x{h} (at most {0}x{0})", VideoFrame::MAX_SIDE));
        }
        let (ow, oh) = size.filter(|(a, b)| *a > 0 && *b > 0).unwrap_or((w, h));
        let direct =
            matches!(src.format(), ff::format::Pixel::YUV420P | ff::format::Pixel::YUVJ420P) && (ow, oh) == (w, h);
        let frame: &ff::frame::Video = if direct {
            src
        } else {
            let key = ScalerKey { format: src.format(), width: w, height: h, out: (ow, oh) };
            if self.scaler.as_ref().is_none_or(|(k, _, _)| *k != key) {
                let ctx = scaling::Context::get(
                    src.format(),
                    w,
                    h,
                    ff::format::Pixel::YUV420P,
                    ow,
                    oh,
                    scaling::Flags::BILINEAR,
                )
                .map_err(|e| format!("cannot convert {:?} video: {e}", src.format()))?;
                self.scaler = Some((key, ctx, ff::frame::Video::empty()));
            }
            let Some((_, ctx, scaled)) = self.scaler.as_mut() else { return Err("no scaler".into()) };
            ctx.run(src, scaled).map_err(|e| format!("video conversion: {e}"))?;
            scaled
        };
        out.reshape(ow, oh);
        for plane in 0..3 {
            let (rows, width) = (out.plane_rows(plane), out.plane_width(plane));
            let stride = frame.stride(plane);
            let data = frame.data(plane);
            if stride < width || data.len() < stride * (rows - 1) + width {
                return Err("decoder gave a short plane".into());
            }
            let dst = out.plane_mut(plane);
            for r in 0..rows {
                dst[r * width..(r + 1) * width].copy_from_slice(&data[r * stride..r * stride + width]);
            }
        }
        Ok(())
    }
}
