//! Decoded FFmpeg pictures into the media core's tight I420 frames.

use ff::software::scaling;
use ffmpeg_next as ff;
use metered_media::VideoFrame;

/// Pictures to tightly packed I420 at a target size: copied plane by plane
/// when the picture already is I420 at that size, else through a swscale
/// context kept (and rebuilt when the input changes). The scaler is not
/// `Send`: create the converter on the thread that uses it.
#[derive(Default)]
pub struct I420Converter {
    scaler: Option<(ScalerKey, scaling::Context, ff::frame::Video)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct ScalerKey {
    format: ff::format::Pixel,
    width: u32,
    height: u32,
    out: (u32, u32),
}

impl I420Converter {
    /// A converter with no scaler yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `src` into `out` at `size` (`None`: the source's size),
    /// reusing `out`'s buffer. Keeps `out.pts` and `out.rotation`.
    pub fn convert(
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
