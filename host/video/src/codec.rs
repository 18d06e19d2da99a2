//! The codecs video travels in.

use std::fmt;
use std::str::FromStr;

/// A video codec negotiated over WebRTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// VP8 (RFC 7741 payload), libvpx.
    Vp8,
    /// H.264 constrained baseline, packetization-mode 1 (RFC 6184), libx264.
    H264,
}

impl VideoCodec {
    /// Every codec, in the order we prefer them (VP8 first, as the
    /// official SDKs and Chromium offer).
    pub const ALL: [VideoCodec; 2] = [VideoCodec::Vp8, VideoCodec::H264];

    /// The RTP mime type (`video/VP8`, `video/H264`).
    pub fn mime_type(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "video/VP8",
            VideoCodec::H264 => "video/H264",
        }
    }

    /// The codec of an RTP mime type (case-insensitive), if it is one of ours.
    pub fn from_mime_type(mime: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.mime_type().eq_ignore_ascii_case(mime))
    }

    /// `vp8` / `h264`.
    pub fn as_str(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "vp8",
            VideoCodec::H264 => "h264",
        }
    }
}

impl fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A codec name that is not `vp8` or `h264`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown video codec {0:?} (expected vp8 or h264)")]
pub struct UnknownCodec(pub String);

impl FromStr for VideoCodec {
    type Err = UnknownCodec;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "vp8" => Ok(VideoCodec::Vp8),
            "h264" | "h.264" | "avc" => Ok(VideoCodec::H264),
            _ => Err(UnknownCodec(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_mime_types_round_trip() {
        for c in VideoCodec::ALL {
            assert_eq!(VideoCodec::from_mime_type(&c.mime_type().to_uppercase()), Some(c));
            assert_eq!(c.as_str().parse::<VideoCodec>(), Ok(c));
        }
        assert_eq!(VideoCodec::from_mime_type("video/VP9"), None);
        assert!("av1".parse::<VideoCodec>().is_err());
    }
}
