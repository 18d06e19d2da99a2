//! Video codecs for WebRTC (feature `video` of the peer and the façade):
//! VP8 through libvpx and H.264 through libx264 (encode) and FFmpeg's own
//! decoders, between the media core's I420 [`VideoFrame`]s and the
//! bitstreams RTP carries (a VP8 frame; an H.264 access unit in Annex B with
//! SPS/PPS ahead of every IDR).
//!
//! - [`Encoder`]: one per outgoing track and codec, shared by every remote
//!   peer that negotiated that codec. Realtime settings (no lookahead, lag 0:
//!   a frame in is a frame out), keyframes on demand, a bitrate that can be
//!   changed while it runs, reopened when the frame size changes.
//! - [`Decoder`]: one per received track; its input is hostile (a remote's
//!   bitstream), so pictures larger than [`DecoderOptions::max_pixels`] are
//!   refused by FFmpeg before it allocates them, and every failure is a
//!   typed [`VideoError`].
//! - [`I420Converter`]: any decoded picture to the media core's tight I420.
//!
//! [`VideoFrame`]: metered_media::VideoFrame

mod codec;
mod convert;
mod decoder;
mod encoder;
mod error;

pub use codec::VideoCodec;
pub use convert::I420Converter;
pub use decoder::{Decoder, DecoderOptions};
pub use encoder::{EncodedFrame, Encoder, EncoderOptions};
pub use error::VideoError;

/// FFmpeg's one-time set-up (idempotent; cheap after the first call).
pub(crate) fn init() {
    static INIT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    INIT.get_or_init(|| {
        let _ = ffmpeg_next::init();
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Fatal);
    });
}
