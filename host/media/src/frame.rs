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

/// A video frame (I420 planes), carried through tracks; codecs live elsewhere.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VideoFrame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Presentation timestamp in 90 kHz units.
    pub pts: u64,
    /// Y, U and V planes, concatenated.
    pub data: Vec<u8>,
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
}
