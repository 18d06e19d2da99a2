//! `metered:realtime/types`: conversions between WIT and media types.

use crate::bindings::types::{self as wit, Host};
use crate::state::GuestState;
use metered_media::{self as media, AudioFrame, ChannelLayout, SampleFormat};

impl Host for GuestState {}

/// A media frame as the guest sees it: s16 interleaved bytes (moved, not
/// copied, when the frame already is).
pub(crate) fn frame_to_wit(frame: media::Frame) -> wit::Frame {
    match frame {
        media::Frame::Audio(a) => {
            let channels = u8::try_from(a.layout.channels()).unwrap_or(u8::MAX);
            let samples = if a.format == SampleFormat::S16 && !a.planar {
                a.data
            } else {
                a.to_s16_interleaved().iter().flat_map(|s| s.to_le_bytes()).collect()
            };
            wit::Frame::Audio(wit::AudioFrame { sample_rate: a.sample_rate, channels, pts: a.pts, samples })
        }
        media::Frame::Video(v) => {
            let (width, height, pts) = (v.width, v.height, v.pts);
            wit::Frame::Video(wit::VideoFrame { width, height, pts, data: v.into_packed_i420() })
        }
    }
}

/// A guest's audio frame, checked: `Err` says what is wrong.
pub(crate) fn audio_from_wit(frame: wit::AudioFrame) -> Result<AudioFrame, String> {
    if frame.channels == 0 {
        return Err("channels must be at least 1".into());
    }
    if !(1_000..=384_000).contains(&frame.sample_rate) {
        return Err(format!("sample-rate {} is outside 1000..=384000", frame.sample_rate));
    }
    let group = 2 * usize::from(frame.channels);
    if !frame.samples.len().is_multiple_of(group) {
        return Err(format!(
            "{} bytes is not a whole number of {}-channel s16 samples",
            frame.samples.len(),
            frame.channels
        ));
    }
    Ok(AudioFrame {
        sample_rate: frame.sample_rate,
        layout: ChannelLayout::from_channels(usize::from(frame.channels)),
        format: SampleFormat::S16,
        planar: false,
        pts: frame.pts,
        data: frame.samples,
    })
}

/// The WIT media kind.
pub(crate) fn kind_to_wit(kind: media::MediaKind) -> wit::MediaKind {
    match kind {
        media::MediaKind::Audio => wit::MediaKind::Audio,
        media::MediaKind::Video => wit::MediaKind::Video,
    }
}
