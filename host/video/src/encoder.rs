//! Realtime encoding of I420 frames to VP8 (libvpx) or H.264 (libx264).

use ffmpeg_next as ff;
use metered_media::VideoFrame;

use super::{VideoCodec, VideoError};

/// Lowest and highest target bitrates accepted (bits per second).
const BITRATES: std::ops::RangeInclusive<u32> = 30_000..=20_000_000;
/// A bitrate change smaller than this share of the current one is ignored
/// (reopening libvpx costs a keyframe).
const MIN_CHANGE: f64 = 0.15;

/// How an [`Encoder`] encodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderOptions {
    /// The codec.
    pub codec: VideoCodec,
    /// Target bitrate in bits per second (clamped to 30 kbit/s–20 Mbit/s).
    pub bitrate: u32,
    /// Expected frames per second (rate control; a keyframe every ten
    /// seconds of frames at least).
    pub fps: u32,
}

impl Default for EncoderOptions {
    fn default() -> Self {
        Self { codec: VideoCodec::Vp8, bitrate: 1_000_000, fps: 30 }
    }
}

/// One encoded frame, borrowed from the encoder until the next call.
#[derive(Debug, Clone, Copy)]
pub struct EncodedFrame<'a> {
    /// The bitstream: a VP8 frame, or an H.264 access unit in Annex B
    /// (SPS and PPS ahead of every IDR).
    pub data: &'a [u8],
    /// Whether the frame decodes on its own (a VP8 keyframe, an IDR).
    pub keyframe: bool,
    /// The input frame's timestamp (90 kHz).
    pub pts: u64,
}

/// A realtime video encoder: a frame in, at most one frame out, no
/// lookahead and no B-frames. Opens on the first frame and reopens when the
/// frame size changes (H.264 needs even sides: an odd row or column is
/// cropped).
pub struct Encoder {
    options: EncoderOptions,
    codec: ff::Codec,
    open: Option<Open>,
    packet: ff::Packet,
    force_keyframe: bool,
    pending_bitrate: Option<u32>,
    frames: u64,
}

struct Open {
    encoder: ff::encoder::Video,
    staging: ff::frame::Video,
    size: (u32, u32),
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("options", &self.options)
            .field("size", &self.open.as_ref().map(|o| o.size))
            .field("frames", &self.frames)
            .finish()
    }
}

impl Encoder {
    /// An encoder with `options`; fails when this FFmpeg lacks the encoder.
    pub fn new(options: EncoderOptions) -> Result<Self, VideoError> {
        super::init();
        let name = match options.codec {
            VideoCodec::Vp8 => "libvpx",
            VideoCodec::H264 => "libx264",
        };
        let codec =
            ff::encoder::find_by_name(name).ok_or(VideoError::Unavailable { codec: options.codec, what: "encoder" })?;
        let options = EncoderOptions {
            bitrate: options.bitrate.clamp(*BITRATES.start(), *BITRATES.end()),
            fps: options.fps.clamp(1, 120),
            ..options
        };
        Ok(Self {
            options,
            codec,
            open: None,
            packet: ff::Packet::empty(),
            force_keyframe: true,
            pending_bitrate: None,
            frames: 0,
        })
    }

    /// The codec.
    pub fn codec(&self) -> VideoCodec {
        self.options.codec
    }

    /// The target bitrate now (bits per second).
    pub fn bitrate(&self) -> u32 {
        self.pending_bitrate.unwrap_or(self.options.bitrate)
    }

    /// Frames encoded so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The next frame is encoded as a keyframe (a receiver lost a picture,
    /// a new receiver joined).
    pub fn request_keyframe(&mut self) {
        self.force_keyframe = true;
    }

    /// Changes the target bitrate from the next frame (a bandwidth estimate
    /// moved). Changes under 15% are ignored. H.264 reconfigures in place;
    /// libvpx is reopened, which costs a keyframe.
    pub fn set_bitrate(&mut self, bps: u32) {
        let bps = bps.clamp(*BITRATES.start(), *BITRATES.end());
        let now = f64::from(self.options.bitrate);
        if (f64::from(bps) - now).abs() >= now * MIN_CHANGE {
            self.pending_bitrate = Some(bps);
        } else {
            self.pending_bitrate = None;
        }
    }

    /// Encodes `frame`; `emit` receives the encoded frame when the encoder
    /// gives one (realtime settings: every frame, unless rate control drops
    /// it). Returns whether a frame was emitted.
    pub fn encode(&mut self, frame: &VideoFrame, mut emit: impl FnMut(EncodedFrame<'_>)) -> Result<bool, VideoError> {
        frame.validate().map_err(|e| VideoError::Frame(e.to_string()))?;
        let size = match self.options.codec {
            VideoCodec::H264 => (frame.width & !1, frame.height & !1),
            VideoCodec::Vp8 => (frame.width, frame.height),
        };
        if size.0 < 2 || size.1 < 2 {
            return Err(VideoError::Frame(format!("{}x{} is too small to encode", frame.width, frame.height)));
        }
        if let Some(bps) = self.pending_bitrate.take() {
            self.options.bitrate = bps;
            match (&mut self.open, self.options.codec) {
                (Some(open), VideoCodec::H264) => {
                    open.encoder.set_bit_rate(bps as usize);
                    open.encoder.set_max_bit_rate(bps as usize);
                }
                (open, _) => *open = None,
            }
        }
        if self.open.as_ref().is_none_or(|o| o.size != size) {
            self.open = Some(self.open_at(size)?);
            self.force_keyframe = true;
        }
        let Some(open) = self.open.as_mut() else { return Ok(false) };
        for plane in 0..3 {
            let rows = if plane == 0 { size.1 as usize } else { size.1.div_ceil(2) as usize };
            let width = if plane == 0 { size.0 as usize } else { size.0.div_ceil(2) as usize };
            let (src, src_stride) = (frame.plane(plane), frame.strides[plane]);
            let dst_stride = open.staging.stride(plane);
            let dst = open.staging.data_mut(plane);
            for r in 0..rows {
                dst[r * dst_stride..r * dst_stride + width]
                    .copy_from_slice(&src[r * src_stride..r * src_stride + width]);
            }
        }
        open.staging.set_pts(Some(frame.pts as i64));
        open.staging.set_kind(if self.force_keyframe { ff::picture::Type::I } else { ff::picture::Type::None });
        let codec = self.options.codec;
        let err = |e: ff::Error| VideoError::Codec { codec, reason: e.to_string() };
        open.encoder.send_frame(&open.staging).map_err(err)?;
        self.force_keyframe = false;
        self.frames += 1;
        let mut emitted = false;
        loop {
            match open.encoder.receive_packet(&mut self.packet) {
                Ok(()) => {
                    if let Some(data) = self.packet.data().filter(|d| !d.is_empty()) {
                        let pts = self.packet.pts().map_or(frame.pts, |p| p.max(0) as u64);
                        emit(EncodedFrame { data, keyframe: self.packet.is_key(), pts });
                        emitted = true;
                    }
                }
                Err(ff::Error::Other { errno: ff::util::error::EAGAIN }) | Err(ff::Error::Eof) => break,
                Err(e) => return Err(err(e)),
            }
        }
        Ok(emitted)
    }

    fn open_at(&self, (width, height): (u32, u32)) -> Result<Open, VideoError> {
        let codec = self.options.codec;
        let err = |e: ff::Error| VideoError::Codec { codec, reason: format!("cannot open the encoder: {e}") };
        let context = ff::codec::context::Context::new_with_codec(self.codec);
        let mut enc = context.encoder().video().map_err(err)?;
        let EncoderOptions { bitrate, fps, .. } = self.options;
        enc.set_width(width);
        enc.set_height(height);
        enc.set_format(ff::format::Pixel::YUV420P);
        enc.set_time_base(ff::Rational::new(1, metered_media::VIDEO_CLOCK_RATE as i32));
        enc.set_frame_rate(Some(ff::Rational::new(fps as i32, 1)));
        enc.set_gop(fps * 10);
        enc.set_max_b_frames(0);
        enc.set_bit_rate(bitrate as usize);
        enc.set_max_bit_rate(bitrate as usize);
        enc.set_threading(ff::threading::Config { kind: ff::threading::Type::None, count: 1, ..Default::default() });
        let mut opts = ff::Dictionary::new();
        let buffer = (bitrate / 2).to_string();
        match codec {
            VideoCodec::Vp8 => {
                opts.set("deadline", "realtime");
                opts.set("cpu-used", "8");
                opts.set("lag-in-frames", "0");
                opts.set("error-resilient", "1");
                opts.set("auto-alt-ref", "0");
                opts.set("minrate", &(bitrate / 4).to_string());
                opts.set("bufsize", &buffer);
                opts.set("qmin", "4");
                opts.set("qmax", "56");
            }
            VideoCodec::H264 => {
                opts.set("preset", "ultrafast");
                opts.set("tune", "zerolatency");
                opts.set("profile", "baseline");
                opts.set("forced-idr", "1");
                opts.set("bufsize", &buffer);
                opts.set("x264-params", "repeat-headers=1:scenecut=0:annexb=1");
            }
        }
        let encoder = enc.open_as_with(self.codec, opts).map_err(err)?;
        let staging = ff::frame::Video::new(ff::format::Pixel::YUV420P, width, height);
        tracing::debug!(target: "metered_video", codec = %codec, width, height, bitrate, fps, "encoder opened");
        Ok(Open { encoder, staging, size: (width, height) })
    }
}
