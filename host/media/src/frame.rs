//! Audio and video frames.

/// How samples are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFormat {
    /// Signed 16-bit little-endian integers.
    S16,
    /// 32-bit floats in [-1, 1].
    F32,
}

/// Channel layout of an audio frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelLayout {
    /// One channel.
    Mono,
    /// Two channels, left then right.
    Stereo,
    /// Any other count (downmixed to stereo by consumers that need stereo).
    Other(u16),
}

impl ChannelLayout {
    /// The number of channels.
    pub fn channels(self) -> usize {
        match self {
            ChannelLayout::Mono => 1,
            ChannelLayout::Stereo => 2,
            ChannelLayout::Other(n) => usize::from(n),
        }
    }

    /// The layout for a channel count.
    pub fn from_channels(n: usize) -> Self {
        match n {
            1 => ChannelLayout::Mono,
            2 => ChannelLayout::Stereo,
            n => ChannelLayout::Other(u16::try_from(n).unwrap_or(u16::MAX)),
        }
    }
}

/// A block of audio. Samples are held as raw bytes in the frame's format:
/// interleaved (`planar == false`: L R L R …) or planar (all of channel 0, then
/// channel 1, …).
#[derive(Debug, Clone, PartialEq)]
pub struct AudioFrame {
    /// Samples per second.
    pub sample_rate: u32,
    /// Channel layout.
    pub layout: ChannelLayout,
    /// Sample format.
    pub format: SampleFormat,
    /// Planar (`true`) or interleaved (`false`).
    pub planar: bool,
    /// Presentation timestamp in samples (per channel) since the track started.
    pub pts: u64,
    /// Little-endian sample bytes.
    pub data: Vec<u8>,
}

impl Default for AudioFrame {
    fn default() -> Self {
        Self::empty()
    }
}

impl AudioFrame {
    /// An empty 48 kHz stereo s16 frame: a buffer to receive into.
    pub fn empty() -> Self {
        Self {
            sample_rate: 48_000,
            layout: ChannelLayout::Stereo,
            format: SampleFormat::S16,
            planar: false,
            pts: 0,
            data: Vec::new(),
        }
    }

    /// An interleaved s16 frame from samples.
    pub fn from_s16(sample_rate: u32, layout: ChannelLayout, pts: u64, samples: &[i16]) -> Self {
        let mut data = Vec::with_capacity(samples.len() * 2);
        for s in samples {
            data.extend_from_slice(&s.to_le_bytes());
        }
        Self { sample_rate, layout, format: SampleFormat::S16, planar: false, pts, data }
    }

    /// Bytes per sample of the format.
    pub fn bytes_per_sample(&self) -> usize {
        match self.format {
            SampleFormat::S16 => 2,
            SampleFormat::F32 => 4,
        }
    }

    /// Samples per channel, or `None` when the byte length doesn't divide evenly.
    pub fn samples_per_channel(&self) -> Option<usize> {
        let per_frame = self.bytes_per_sample() * self.layout.channels();
        (per_frame > 0 && self.data.len().is_multiple_of(per_frame)).then(|| self.data.len() / per_frame)
    }

    /// Duration in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.samples_per_channel().unwrap_or(0) as f64 / f64::from(self.sample_rate.max(1))
    }

    /// Sample `i` (per channel) of channel `ch` as f32 in [-1, 1]; `None` when
    /// out of range or the data is not whole samples.
    pub fn sample_f32(&self, ch: usize, i: usize) -> Option<f32> {
        let channels = self.layout.channels();
        let n = self.samples_per_channel()?;
        if ch >= channels || i >= n {
            return None;
        }
        let idx = if self.planar { ch * n + i } else { i * channels + ch };
        match self.format {
            SampleFormat::S16 => {
                let b = self.data.get(idx * 2..idx * 2 + 2)?;
                Some(f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
            }
            SampleFormat::F32 => {
                let b = self.data.get(idx * 4..idx * 4 + 4)?;
                Some(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
        }
    }

    /// Interleaved s16 samples (allocating convenience).
    pub fn to_s16_interleaved(&self) -> Vec<i16> {
        let n = self.samples_per_channel().unwrap_or(0);
        let channels = self.layout.channels();
        if self.format == SampleFormat::S16 && !self.planar {
            return self.data.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
        }
        let mut out = Vec::with_capacity(n * channels);
        for i in 0..n {
            for ch in 0..channels {
                let v = self.sample_f32(ch, i).unwrap_or(0.0);
                out.push((v * 32768.0).round().clamp(-32768.0, 32767.0) as i16);
            }
        }
        out
    }
}

/// The 90 kHz clock video timestamps count in (RTP's video clock).
pub const VIDEO_CLOCK_RATE: u32 = 90_000;

/// A video frame: planar I420 (8-bit Y at full size, U and V at half width
/// and half height, rounded up), each plane with its own stride, in one
/// buffer. Carried through tracks; codecs live elsewhere.
///
/// The layout is what encoders take without a copy: plane `i` starts at
/// [`VideoFrame::plane_offset`] and has [`VideoFrame::plane_rows`] rows of
/// `strides[i]` bytes (the first `plane_width(i)` of each row are pixels).
/// A consumer that reads into the same frame again reuses the buffer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VideoFrame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per row of the Y, U and V planes (at least the plane's width).
    pub strides: [usize; 3],
    /// Presentation timestamp in 90 kHz units ([`VIDEO_CLOCK_RATE`]) on the
    /// media clock of the track.
    pub pts: u64,
    /// The Y plane, then U, then V.
    pub data: Vec<u8>,
    /// How the picture must be turned for display (a phone camera held
    /// upright; RTP carries it in the video-orientation extension).
    pub rotation: Rotation,
}

/// Clockwise rotation a frame needs for display.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Rotation {
    /// Upright as stored.
    #[default]
    None,
    /// A quarter turn clockwise.
    Cw90,
    /// Upside down.
    Cw180,
    /// Three quarter turns clockwise.
    Cw270,
}

impl Rotation {
    /// Degrees clockwise: 0, 90, 180 or 270.
    pub fn degrees(self) -> u16 {
        match self {
            Rotation::None => 0,
            Rotation::Cw90 => 90,
            Rotation::Cw180 => 180,
            Rotation::Cw270 => 270,
        }
    }

    /// The rotation of `degrees` (any multiple of 90, negative too); `None`
    /// for other angles.
    pub fn from_degrees(degrees: i32) -> Option<Self> {
        match degrees.rem_euclid(360) {
            0 => Some(Rotation::None),
            90 => Some(Rotation::Cw90),
            180 => Some(Rotation::Cw180),
            270 => Some(Rotation::Cw270),
            _ => None,
        }
    }
}

/// Why a video frame's geometry is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VideoFrameError {
    /// Width or height is zero, odd-sized beyond the limit, or too large.
    #[error("video frame of {width}x{height} is outside 1x1..={max}x{max}")]
    Dimensions {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// The largest side accepted.
        max: u32,
    },
    /// A stride is shorter than its plane's width.
    #[error("stride {stride} of plane {plane} is shorter than its width {width}")]
    Stride {
        /// The plane (0 = Y, 1 = U, 2 = V).
        plane: usize,
        /// The stride.
        stride: usize,
        /// The plane's width.
        width: usize,
    },
    /// The buffer is shorter than the planes it must hold.
    #[error("video frame data is {len} bytes, the planes need {need}")]
    Data {
        /// Bytes present.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
}

impl VideoFrame {
    /// The largest width or height accepted (8K).
    pub const MAX_SIDE: u32 = 8192;

    /// A black, tightly packed I420 frame.
    pub fn black(width: u32, height: u32) -> Self {
        let mut f = VideoFrame::default();
        f.reshape(width, height);
        let y = f.plane_offset(1);
        f.data[..y].fill(16);
        f.data[y..].fill(128);
        f
    }

    /// Makes this frame a tightly packed `width`×`height` I420 frame,
    /// reusing its buffer (contents unspecified: the caller fills every
    /// plane). Sizes beyond [`VideoFrame::MAX_SIDE`] are clamped to it.
    pub fn reshape(&mut self, width: u32, height: u32) {
        let (width, height) = (width.min(Self::MAX_SIDE), height.min(Self::MAX_SIDE));
        let cw = width.div_ceil(2) as usize;
        self.width = width;
        self.height = height;
        self.strides = [width as usize, cw, cw];
        let need = self.needed_len();
        if self.data.len() != need {
            self.data.resize(need, 0);
        }
    }

    /// Pixels per row of plane `i` (0 = Y, 1 = U, 2 = V).
    pub fn plane_width(&self, i: usize) -> usize {
        if i == 0 { self.width as usize } else { self.width.div_ceil(2) as usize }
    }

    /// Rows of plane `i`.
    pub fn plane_rows(&self, i: usize) -> usize {
        if i == 0 { self.height as usize } else { self.height.div_ceil(2) as usize }
    }

    /// Where plane `i` starts in [`VideoFrame::data`].
    pub fn plane_offset(&self, i: usize) -> usize {
        (0..i.min(3)).map(|p| self.strides[p] * self.plane_rows(p)).sum()
    }

    fn needed_len(&self) -> usize {
        self.plane_offset(3)
    }

    /// Checks the geometry against the buffer: what a consumer must do
    /// before trusting a frame from elsewhere (a guest, a decoder).
    pub fn validate(&self) -> Result<(), VideoFrameError> {
        let (w, h, max) = (self.width, self.height, Self::MAX_SIDE);
        if w == 0 || h == 0 || w > max || h > max {
            return Err(VideoFrameError::Dimensions { width: w, height: h, max });
        }
        for plane in 0..3 {
            let width = self.plane_width(plane);
            if self.strides[plane] < width {
                return Err(VideoFrameError::Stride { plane, stride: self.strides[plane], width });
            }
        }
        let need = self.needed_len();
        if self.data.len() < need {
            return Err(VideoFrameError::Data { len: self.data.len(), need });
        }
        Ok(())
    }

    /// Plane `i`, all its rows with their padding (empty if the frame is
    /// malformed).
    pub fn plane(&self, i: usize) -> &[u8] {
        let start = self.plane_offset(i);
        let end = start + self.strides.get(i).copied().unwrap_or(0) * self.plane_rows(i);
        self.data.get(start..end).unwrap_or(&[])
    }

    /// Plane `i`, mutable (empty if the frame is malformed).
    pub fn plane_mut(&mut self, i: usize) -> &mut [u8] {
        let start = self.plane_offset(i);
        let end = start + self.strides.get(i).copied().unwrap_or(0) * self.plane_rows(i);
        self.data.get_mut(start..end).unwrap_or(&mut [])
    }

    /// The Y, U and V values at pixel (`x`, `y`), if inside the frame.
    pub fn yuv_at(&self, x: u32, y: u32) -> Option<(u8, u8, u8)> {
        if x >= self.width || y >= self.height || self.validate().is_err() {
            return None;
        }
        let (x, y) = (x as usize, y as usize);
        let luma = self.plane(0)[y * self.strides[0] + x];
        let u = self.plane(1)[(y / 2) * self.strides[1] + x / 2];
        let v = self.plane(2)[(y / 2) * self.strides[2] + x / 2];
        Some((luma, u, v))
    }

    /// [`VideoFrame::packed_i420`], taking the buffer (no copy when tight).
    pub fn into_packed_i420(self) -> Vec<u8> {
        if self.is_tight() { self.data } else { self.packed_i420().into_owned() }
    }

    fn is_tight(&self) -> bool {
        (0..3).all(|i| self.strides[i] == self.plane_width(i)) && self.data.len() == self.needed_len()
    }

    /// The planes without row padding, Y then U then V (a copy only when a
    /// stride is wider than its plane).
    pub fn packed_i420(&self) -> std::borrow::Cow<'_, [u8]> {
        if self.is_tight() {
            return std::borrow::Cow::Borrowed(&self.data);
        }
        let mut out = Vec::with_capacity((0..3).map(|i| self.plane_width(i) * self.plane_rows(i)).sum());
        for i in 0..3 {
            let (w, stride) = (self.plane_width(i), self.strides[i]);
            for row in self.plane(i).chunks(stride.max(1)).take(self.plane_rows(i)) {
                out.extend_from_slice(&row[..w.min(row.len())]);
            }
        }
        std::borrow::Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s16_round_trip_and_planar_access() {
        let f = AudioFrame::from_s16(48_000, ChannelLayout::Stereo, 0, &[1, -1, 32767, -32768]);
        assert_eq!(f.samples_per_channel(), Some(2));
        assert_eq!(f.to_s16_interleaved(), vec![1, -1, 32767, -32768]);
        assert_eq!(f.sample_f32(1, 1), Some(-1.0));
        assert_eq!(f.sample_f32(2, 0), None, "no third channel");
        assert_eq!(f.sample_f32(0, 2), None, "past the end");
        let planar = AudioFrame { planar: true, ..f.clone() };
        assert_eq!(planar.to_s16_interleaved(), vec![1, 32767, -1, -32768]);
        let odd = AudioFrame { data: vec![0; 3], ..f };
        assert_eq!(odd.samples_per_channel(), None);
        assert_eq!(odd.sample_f32(0, 0), None);
        assert_eq!(ChannelLayout::from_channels(6).channels(), 6);
    }

    #[test]
    fn i420_planes_strides_and_validation() {
        let f = VideoFrame::black(5, 3);
        assert_eq!(f.strides, [5, 3, 3]);
        assert_eq!((f.plane_rows(0), f.plane_rows(1)), (3, 2));
        assert_eq!(f.data.len(), 5 * 3 + 3 * 2 * 2);
        assert_eq!(f.yuv_at(4, 2), Some((16, 128, 128)), "black");
        assert_eq!(f.yuv_at(5, 0), None);
        f.validate().unwrap();
        // A padded layout (as a decoder hands it out) packs to the same pixels.
        let mut padded = VideoFrame {
            width: 5,
            height: 3,
            strides: [8, 4, 4],
            data: vec![0; 8 * 3 + 4 * 2 * 2],
            ..Default::default()
        };
        padded.plane_mut(0)[8 + 4] = 200; // Y at (4, 1)
        padded.plane_mut(1)[4 + 2] = 60; // U at (4, 2)
        assert_eq!(padded.yuv_at(4, 1), Some((200, 0, 0)));
        assert_eq!(padded.yuv_at(4, 2).map(|p| p.1), Some(60));
        let packed = padded.packed_i420();
        assert_eq!(packed.len(), 5 * 3 + 3 * 2 * 2);
        assert_eq!(packed[5 + 4], 200);
        assert!(matches!(f.packed_i420(), std::borrow::Cow::Borrowed(_)), "tight frames are not copied");
        let short = VideoFrame { data: vec![0; 10], ..f.clone() };
        assert_eq!(short.validate(), Err(VideoFrameError::Data { len: 10, need: 27 }));
        let thin = VideoFrame { strides: [4, 3, 3], ..f.clone() };
        assert!(matches!(thin.validate(), Err(VideoFrameError::Stride { plane: 0, .. })));
        assert!(matches!(VideoFrame::default().validate(), Err(VideoFrameError::Dimensions { .. })));
        assert!(short.plane(2).is_empty(), "a malformed frame has no planes, never a panic");
    }
}
