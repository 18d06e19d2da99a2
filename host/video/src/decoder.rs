//! Decoding a remote's VP8 or H.264 bitstream into I420 frames.

use ffmpeg_next as ff;
use metered_media::VideoFrame;

use super::{I420Converter, VideoCodec, VideoError};

/// How a [`Decoder`] decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderOptions {
    /// The codec.
    pub codec: VideoCodec,
    /// Largest picture accepted, in pixels (default 4K UHD): a bitstream
    /// claiming more is refused before anything is allocated for it.
    pub max_pixels: u64,
}

impl Default for DecoderOptions {
    fn default() -> Self {
        Self { codec: VideoCodec::Vp8, max_pixels: 3840 * 2160 }
    }
}

/// A video decoder for one received track: FFmpeg's own VP8 and H.264
/// decoders, single-threaded and low-delay (a frame in, its picture out).
/// Not `Send` once it has converted a non-I420 picture (swscale): create it
/// on the thread that uses it.
pub struct Decoder {
    options: DecoderOptions,
    decoder: ff::decoder::Video,
    picture: ff::frame::Video,
    converter: I420Converter,
    frames: u64,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").field("options", &self.options).field("frames", &self.frames).finish()
    }
}

impl Decoder {
    /// A decoder with `options`; fails when this FFmpeg lacks the decoder.
    pub fn new(options: DecoderOptions) -> Result<Self, VideoError> {
        super::init();
        let codec = options.codec;
        let id = match codec {
            VideoCodec::Vp8 => ff::codec::Id::VP8,
            VideoCodec::H264 => ff::codec::Id::H264,
        };
        let found = ff::decoder::find(id).ok_or(VideoError::Unavailable { codec, what: "decoder" })?;
        let err = |e: ff::Error| VideoError::Codec { codec, reason: format!("cannot open the decoder: {e}") };
        let mut context = ff::codec::context::Context::new_with_codec(found);
        context.set_flags(ff::codec::Flags::LOW_DELAY);
        context.set_threading(ff::threading::Config {
            kind: ff::threading::Type::None,
            count: 1,
            ..Default::default()
        });
        let mut opts = ff::Dictionary::new();
        opts.set("max_pixels", &options.max_pixels.clamp(1, i64::MAX as u64).to_string());
        let decoder = context.decoder().open_as_with(found, opts).map_err(err)?.video().map_err(err)?;
        Ok(Self { options, decoder, picture: ff::frame::Video::empty(), converter: I420Converter::new(), frames: 0 })
    }

    /// The codec.
    pub fn codec(&self) -> VideoCodec {
        self.options.codec
    }

    /// Pictures decoded so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Decodes one encoded frame (a VP8 frame; an H.264 access unit in
    /// Annex B) stamped `pts` (90 kHz). Writes the picture into `out`
    /// (reusing its buffer) and returns `true`, or `false` when the decoder
    /// gave no picture for it (H.264 before its first IDR). A corrupt frame
    /// is an error and the decoder stays usable: the caller asks the sender
    /// for a keyframe.
    pub fn decode(&mut self, data: &[u8], pts: u64, out: &mut VideoFrame) -> Result<bool, VideoError> {
        let codec = self.options.codec;
        let err = |e: ff::Error| VideoError::Codec { codec, reason: e.to_string() };
        if data.is_empty() {
            return Ok(false);
        }
        if codec == VideoCodec::Vp8
            && let Some((width, height)) = vp8_keyframe_size(data)
            && u64::from(width) * u64::from(height) > self.options.max_pixels
        {
            return Err(VideoError::TooLarge { width, height, max_pixels: self.options.max_pixels });
        }
        let mut packet = ff::Packet::copy(data);
        packet.set_pts(Some(pts.min(i64::MAX as u64) as i64));
        match self.decoder.send_packet(&packet) {
            Ok(()) => {}
            Err(ff::Error::Other { errno: ff::util::error::EAGAIN }) => {}
            Err(e) => return Err(err(e)),
        }
        let mut got = false;
        loop {
            match self.decoder.receive_frame(&mut self.picture) {
                Ok(()) => {
                    let (w, h) = (self.picture.width(), self.picture.height());
                    if u64::from(w) * u64::from(h) > self.options.max_pixels {
                        return Err(VideoError::TooLarge { width: w, height: h, max_pixels: self.options.max_pixels });
                    }
                    self.converter.convert(&self.picture, None, out).map_err(VideoError::Frame)?;
                    out.pts = self.picture.pts().map_or(pts, |p| p.max(0) as u64);
                    self.frames += 1;
                    got = true;
                }
                Err(ff::Error::Other { errno: ff::util::error::EAGAIN }) | Err(ff::Error::Eof) => break,
                Err(e) => return Err(err(e)),
            }
        }
        Ok(got)
    }
}

/// The size a VP8 keyframe declares (RFC 6386 §9.1), `None` for an
/// interframe or a frame too short to say.
pub(crate) fn vp8_keyframe_size(data: &[u8]) -> Option<(u32, u32)> {
    if data.len() < 10 || data[0] & 1 != 0 || data[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u16::from_le_bytes([data[6], data[7]]) & 0x3fff;
    let height = u16::from_le_bytes([data[8], data[9]]) & 0x3fff;
    Some((u32::from(width), u32::from(height)))
}
