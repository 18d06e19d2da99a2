//! Why a video codec operation failed.

use super::VideoCodec;

/// A typed video codec failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VideoError {
    /// This FFmpeg build lacks the encoder or decoder.
    #[error("{codec} {what} is not available in this FFmpeg build")]
    Unavailable {
        /// The codec.
        codec: VideoCodec,
        /// `encoder` or `decoder`.
        what: &'static str,
    },
    /// The frame handed to the encoder is malformed.
    #[error("cannot encode this frame: {0}")]
    Frame(String),
    /// The picture is larger than the decoder accepts.
    #[error("{width}x{height} video is larger than the {max_pixels} pixels accepted")]
    TooLarge {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// The limit.
        max_pixels: u64,
    },
    /// FFmpeg refused (opening a codec, a corrupt bitstream, ...).
    #[error("{codec}: {reason}")]
    Codec {
        /// The codec.
        codec: VideoCodec,
        /// FFmpeg's message.
        reason: String,
    },
}
