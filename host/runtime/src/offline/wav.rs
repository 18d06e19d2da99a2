//! Minimal RIFF/WAVE PCM s16 reading and writing, for the offline harness.

/// Interleaved s16 PCM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pcm {
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// Interleaved samples.
    pub samples: Vec<i16>,
}

impl Pcm {
    /// Duration in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.channels.max(1)) / f64::from(self.sample_rate.max(1))
    }

    /// Little-endian bytes of the samples.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        self.samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }
}

/// Why a WAV file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WavError {
    /// Not a RIFF/WAVE file, or truncated.
    #[error("not a WAV file: {0}")]
    Malformed(&'static str),
    /// A format other than 16-bit integer PCM with 1 or 2 channels.
    #[error("unsupported WAV format: {0} (need 16-bit PCM, mono or stereo)")]
    Unsupported(String),
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(i..i + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

/// Parses a 16-bit PCM WAV file (mono or stereo).
pub fn read_wav(bytes: &[u8]) -> Result<Pcm, WavError> {
    if bytes.get(0..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
        return Err(WavError::Malformed("missing RIFF/WAVE header"));
    }
    let mut fmt = None;
    let mut i = 12;
    while i + 8 <= bytes.len() {
        let id = &bytes[i..i + 4];
        let len = u32_at(bytes, i + 4).ok_or(WavError::Malformed("chunk header"))? as usize;
        let body = i + 8;
        let end = body.checked_add(len).ok_or(WavError::Malformed("chunk length"))?;
        if id == b"fmt " {
            let format = u16_at(bytes, body).ok_or(WavError::Malformed("fmt chunk"))?;
            let channels = u16_at(bytes, body + 2).ok_or(WavError::Malformed("fmt chunk"))?;
            let rate = u32_at(bytes, body + 4).ok_or(WavError::Malformed("fmt chunk"))?;
            let bits = u16_at(bytes, body + 14).ok_or(WavError::Malformed("fmt chunk"))?;
            if !(format == 1 || format == 0xFFFE) || bits != 16 || !(1..=2).contains(&channels) {
                return Err(WavError::Unsupported(format!("format {format}, {bits} bits, {channels} channels")));
            }
            fmt = Some((rate, channels));
        } else if id == b"data" {
            let (sample_rate, channels) = fmt.ok_or(WavError::Malformed("data before fmt"))?;
            let data = &bytes[body..end.min(bytes.len())];
            let samples = data.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
            return Ok(Pcm { sample_rate, channels, samples });
        }
        i = end + (len & 1);
    }
    Err(WavError::Malformed("no data chunk"))
}

/// Encodes a 16-bit PCM WAV file.
pub fn write_wav(pcm: &Pcm) -> Vec<u8> {
    let data_len = u32::try_from(pcm.samples.len() * 2).unwrap_or(u32::MAX);
    let block = pcm.channels * 2;
    let mut out = Vec::with_capacity(44 + pcm.samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36u32.saturating_add(data_len)).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&pcm.channels.to_le_bytes());
    out.extend_from_slice(&pcm.sample_rate.to_le_bytes());
    out.extend_from_slice(&(pcm.sample_rate * u32::from(block)).to_le_bytes());
    out.extend_from_slice(&block.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out.extend(pcm.samples.iter().flat_map(|s| s.to_le_bytes()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let pcm = Pcm { sample_rate: 16_000, channels: 1, samples: vec![0, 1, -1, i16::MAX, i16::MIN] };
        assert_eq!(read_wav(&write_wav(&pcm)), Ok(pcm));
        assert!(matches!(read_wav(b"RIFF\0\0\0\0WAVE"), Err(WavError::Malformed(_))));
        assert!(matches!(read_wav(b"junk"), Err(WavError::Malformed(_))));
        let mut f32_wav = write_wav(&Pcm { sample_rate: 8000, channels: 1, samples: vec![] });
        f32_wav[34] = 32;
        assert!(matches!(read_wav(&f32_wav), Err(WavError::Unsupported(_))));
    }
}
