//! Opus at 48 kHz, 20 ms, stereo (libopus through the `opus` crate).
//!
//! [`OpusPacketizer`] turns any 48 kHz audio frames (mono or stereo, s16 or f32,
//! interleaved or planar, any length) into 20 ms Opus packets with reused
//! buffers; [`OpusDepacketizer`] decodes packets into 20 ms 48 kHz stereo s16
//! [`AudioFrame`]s, concealing short sequence gaps with libopus PLC.

use metered_media::{AudioFrame, ChannelLayout, SampleFormat};

/// Sample rate of every Opus stream here.
pub const OPUS_RATE: u32 = 48_000;
/// Samples per channel in one 20 ms packet.
pub const FRAME_SAMPLES: usize = 960;
const CHANNELS: usize = 2;
const MAX_PACKET: usize = 1500;
/// Longest sequence gap concealed with PLC (longer gaps are a restart, not loss).
const MAX_CONCEALED: u16 = 5;

/// Why encoding or decoding failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// Only 48 kHz input is encoded (resample with an `AudioSource` first).
    #[error("unsupported input: {0}")]
    Unsupported(String),
    /// libopus refused.
    #[error("opus: {0}")]
    Opus(String),
}

fn opus_err(e: opus::Error) -> CodecError {
    CodecError::Opus(e.to_string())
}

/// Frames in, 20 ms Opus packets out.
pub struct OpusPacketizer {
    encoder: opus::Encoder,
    pcm: Vec<i16>,
    packet: Vec<u8>,
}

impl OpusPacketizer {
    /// A stereo VoIP encoder with in-band FEC.
    pub fn new() -> Result<Self, CodecError> {
        let mut encoder =
            opus::Encoder::new(OPUS_RATE, opus::Channels::Stereo, opus::Application::Voip).map_err(opus_err)?;
        encoder.set_inband_fec(true).map_err(opus_err)?;
        Ok(Self { encoder, pcm: Vec::with_capacity(FRAME_SAMPLES * CHANNELS * 2), packet: vec![0; MAX_PACKET] })
    }

    /// Appends a frame and calls `emit` with each complete 20 ms packet.
    pub fn push(&mut self, frame: &AudioFrame, mut emit: impl FnMut(&[u8])) -> Result<(), CodecError> {
        if frame.sample_rate != OPUS_RATE {
            return Err(CodecError::Unsupported(format!("{} Hz (need 48000)", frame.sample_rate)));
        }
        let n = frame
            .samples_per_channel()
            .ok_or_else(|| CodecError::Unsupported("frame bytes are not whole samples".into()))?;
        let channels = frame.layout.channels();
        if channels == 0 {
            return Err(CodecError::Unsupported("zero channels".into()));
        }
        if frame.format == SampleFormat::S16 && !frame.planar && frame.layout == ChannelLayout::Stereo {
            self.pcm.extend(frame.data.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])));
        } else {
            for i in 0..n {
                let l = frame.sample_f32(0, i).unwrap_or(0.0);
                let r = if channels > 1 { frame.sample_f32(1, i).unwrap_or(0.0) } else { l };
                self.pcm.push(to_i16(l));
                self.pcm.push(to_i16(r));
            }
        }
        let chunk = FRAME_SAMPLES * CHANNELS;
        let mut start = 0;
        while self.pcm.len() - start >= chunk {
            let len = self.encoder.encode(&self.pcm[start..start + chunk], &mut self.packet).map_err(opus_err)?;
            emit(&self.packet[..len]);
            start += chunk;
        }
        self.pcm.drain(..start);
        Ok(())
    }
}

fn to_i16(v: f32) -> i16 {
    (v * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// Opus packets in, 20 ms 48 kHz stereo s16 frames out.
pub struct OpusDepacketizer {
    decoder: opus::Decoder,
    pcm: Vec<i16>,
    last_seq: Option<u16>,
    pts: u64,
}

impl OpusDepacketizer {
    /// A stereo decoder.
    pub fn new() -> Result<Self, CodecError> {
        let decoder = opus::Decoder::new(OPUS_RATE, opus::Channels::Stereo).map_err(opus_err)?;
        // Room for the longest Opus packet (120 ms).
        Ok(Self { decoder, pcm: vec![0; FRAME_SAMPLES * 6 * CHANNELS], last_seq: None, pts: 0 })
    }

    /// Decodes one packet (with sequence number `seq`); calls `emit` with a
    /// concealment frame per lost packet (short gaps only), then the packet's audio.
    /// Duplicates and reordered late packets are dropped. A corrupt packet is an error.
    pub fn push(&mut self, payload: &[u8], seq: u16, mut emit: impl FnMut(AudioFrame)) -> Result<(), CodecError> {
        if let Some(last) = self.last_seq {
            let delta = seq.wrapping_sub(last);
            if delta == 0 || delta > u16::MAX / 2 {
                return Ok(()); // duplicate or late
            }
            if delta > 1 && delta - 1 <= MAX_CONCEALED {
                for _ in 0..delta - 1 {
                    let n = self.decoder.decode(&[], &mut self.pcm, false).map_err(opus_err)?;
                    emit(self.frame(n));
                }
            }
        }
        self.last_seq = Some(seq);
        if payload.is_empty() {
            return Ok(());
        }
        let n = self.decoder.decode(payload, &mut self.pcm, false).map_err(opus_err)?;
        emit(self.frame(n));
        Ok(())
    }

    fn frame(&mut self, n: usize) -> AudioFrame {
        let n = n.min(self.pcm.len() / CHANNELS);
        let f = AudioFrame::from_s16(OPUS_RATE, ChannelLayout::Stereo, self.pts, &self.pcm[..n * CHANNELS]);
        self.pts += n as u64;
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metered_audio::analysis::{rms_dbfs, tone_frequency};

    fn tone(freq: f64, amp: f64, start: usize, n: usize, layout: ChannelLayout) -> AudioFrame {
        let ch = layout.channels();
        let mut s = Vec::with_capacity(n * ch);
        for i in start..start + n {
            let v = (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / 48_000.0).sin() * 32767.0) as i16;
            for _ in 0..ch {
                s.push(v);
            }
        }
        AudioFrame::from_s16(48_000, layout, start as u64, &s)
    }

    #[test]
    fn a_tone_survives_encode_and_decode() {
        let mut enc = OpusPacketizer::new().unwrap();
        let mut dec = OpusDepacketizer::new().unwrap();
        let mut out = Vec::new();
        let mut seq = 0u16;
        // Odd-sized mono frames: the packetizer re-blocks into 20 ms.
        let mut pos = 0;
        for size in [333, 960, 1500, 7, 2000].iter().cycle().take(60) {
            let f = tone(440.0, 0.5, pos, *size, ChannelLayout::Mono);
            pos += size;
            enc.push(&f, |p| {
                dec.push(p, seq, |fr| out.push(fr)).unwrap();
                seq = seq.wrapping_add(1);
            })
            .unwrap();
        }
        assert_eq!(out.len(), pos / FRAME_SAMPLES);
        assert!(out.iter().all(|f| f.samples_per_channel() == Some(FRAME_SAMPLES)));
        let left: Vec<f64> = out[10..]
            .iter()
            .flat_map(|f| f.to_s16_interleaved().into_iter().step_by(2))
            .map(|v| f64::from(v) / 32768.0)
            .collect();
        let freq = tone_frequency(&left, 48_000.0);
        assert!((freq - 440.0).abs() < 5.0, "{freq}");
        let level = rms_dbfs(&left);
        assert!((level - (-9.0)).abs() < 1.5, "{level} dBFS");
    }

    #[test]
    fn gaps_are_concealed_duplicates_dropped_garbage_refused() {
        let mut enc = OpusPacketizer::new().unwrap();
        let mut packets = Vec::new();
        for i in 0..4 {
            enc.push(&tone(300.0, 0.3, i * 960, 960, ChannelLayout::Stereo), |p| packets.push(p.to_vec())).unwrap();
        }
        let mut dec = OpusDepacketizer::new().unwrap();
        let mut n = 0;
        dec.push(&packets[0], 10, |_| n += 1).unwrap();
        dec.push(&packets[0], 10, |_| n += 1).unwrap();
        assert_eq!(n, 1, "duplicate dropped");
        dec.push(&packets[3], 13, |_| n += 1).unwrap();
        assert_eq!(n, 4, "two lost packets concealed");
        dec.push(&packets[1], 11, |_| n += 1).unwrap();
        assert_eq!(n, 4, "late packet dropped");
        // Hostile payloads never panic.
        for junk in [&[0xffu8; 3][..], &[0u8; 1400][..], &[0xfc, 0xff, 0xff][..]] {
            let _ = dec.push(junk, 14, |_| {});
        }
        let bad = AudioFrame::from_s16(16_000, ChannelLayout::Mono, 0, &[0; 320]);
        assert!(matches!(enc.push(&bad, |_| {}), Err(CodecError::Unsupported(_))));
    }
}
