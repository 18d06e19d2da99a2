//! Outbound video (feature `video`): one encoder per codec for a local
//! track, shared by every connection that negotiated that codec.
//!
//! The pump (a tokio task) reads the source's paced frames into a one-frame
//! slot where the newest frame wins: an encoder that falls behind skips
//! frames instead of queueing them. The encoder thread encodes the slot's
//! frame once per codec some connection is bound to, answers keyframe
//! requests (PLI/FIR, a new receiver) on the next frame — at most one per
//! [`KEYFRAME_GAP`], so a flood of PLIs costs nothing — and follows the
//! receivers' feedback: the lowest REMB, and receiver-report loss (down
//! when over 10 %, up 5 % a second when under 2 %), within
//! [`VideoSendOptions`]' bounds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::rtc::{LocalRtpTrack, VIDEO_CODECS};
use metered_media::{Frame, MediaKind, MediaStreamTrack, VideoFrame};
use metered_video::{Encoder, EncoderOptions, VideoCodec};

/// Keyframes requested closer together than this are merged.
pub(crate) const KEYFRAME_GAP: Duration = Duration::from_millis(300);
/// How often the bitrate follows the feedback.
const RATE_INTERVAL: Duration = Duration::from_secs(1);

/// Bitrate bounds of outgoing video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoSendOptions {
    /// Starting bitrate (bits per second; default 1 Mbit/s).
    pub start_bitrate: u32,
    /// Lowest bitrate feedback may push it to (default 150 kbit/s).
    pub min_bitrate: u32,
    /// Highest bitrate (default 2.5 Mbit/s).
    pub max_bitrate: u32,
    /// Frame rate the rate control expects (default 30).
    pub fps: u32,
}

impl Default for VideoSendOptions {
    fn default() -> Self {
        Self { start_bitrate: 1_000_000, min_bitrate: 150_000, max_bitrate: 2_500_000, fps: 30 }
    }
}

/// The frame handed from the pump to the encoder thread.
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    ready: Condvar,
}

#[derive(Default)]
struct SlotState {
    frame: Option<VideoFrame>,
    spare: Option<VideoFrame>,
    closed: bool,
    skipped: u64,
}

/// Closes the slot when the pump ends (or is aborted): the thread exits.
struct CloseOnDrop(Arc<Slot>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.state.lock().closed = true;
        self.0.ready.notify_all();
    }
}

/// Starts sending `source` through `rtp`; the returned pump reads the
/// current source (swapped by `replace_track`) until aborted.
pub(crate) fn start(
    rtp: LocalRtpTrack,
    source: Arc<Mutex<Arc<dyn MediaStreamTrack>>>,
    swapped: Arc<Notify>,
    options: VideoSendOptions,
) -> JoinHandle<()> {
    let slot = Arc::new(Slot::default());
    let handle = tokio::runtime::Handle::current();
    {
        let (slot, rtp) = (slot.clone(), rtp.clone());
        let spawned = std::thread::Builder::new()
            .name("metered-video-enc".into())
            .spawn(move || encode_loop(&slot, &rtp, &handle, options));
        if let Err(e) = spawned {
            tracing::warn!(target: "metered_realtime::peer", "cannot start a video encoder thread: {e}");
        }
    }
    tokio::spawn(async move {
        let _close = CloseOnDrop(slot.clone());
        let mut frame = Frame::empty(MediaKind::Video);
        loop {
            let current = source.lock().clone();
            let got = tokio::select! {
                got = current.recv_into(&mut frame) => got.is_ok(),
                _ = swapped.notified() => continue,
            };
            if !got {
                swapped.notified().await;
                continue;
            }
            if !rtp.is_bound() {
                continue;
            }
            let Frame::Video(v) = &mut frame else { continue };
            let mut st = slot.state.lock();
            let spare = st.spare.take().unwrap_or_default();
            if let Some(old) = st.frame.replace(std::mem::replace(v, spare)) {
                st.skipped += 1;
                st.spare = Some(old);
            }
            drop(st);
            slot.ready.notify_one();
        }
    })
}

/// One encoder and the codec indexes of [`VIDEO_CODECS`] it feeds.
struct CodecEncoder {
    codec: VideoCodec,
    encoder: Option<Encoder>,
    indexes: Vec<usize>,
    failed: bool,
}

fn encode_loop(slot: &Slot, rtp: &LocalRtpTrack, handle: &tokio::runtime::Handle, options: VideoSendOptions) {
    let mut encoders: Vec<CodecEncoder> = VideoCodec::ALL
        .iter()
        .map(|&codec| CodecEncoder {
            codec,
            encoder: None,
            indexes: (0..VIDEO_CODECS.len())
                .filter(|&i| VideoCodec::from_mime_type(VIDEO_CODECS[i].0) == Some(codec))
                .collect(),
            failed: false,
        })
        .collect();
    let mut frame = VideoFrame::default();
    let mut last_pts: Option<u64> = None;
    let mut last_keyframe: Option<Instant> = None;
    let mut keyframe_pending = true;
    let mut bitrate = options.start_bitrate.clamp(options.min_bitrate, options.max_bitrate);
    let mut rate_at = Instant::now() + RATE_INTERVAL;
    let mut encoded = Vec::new();
    loop {
        {
            let mut st = slot.state.lock();
            while st.frame.is_none() && !st.closed {
                slot.ready.wait(&mut st);
            }
            if st.closed {
                return;
            }
            let Some(next) = st.frame.take() else { continue };
            st.spare = Some(std::mem::replace(&mut frame, next));
        }
        let now = Instant::now();
        if rtp.feedback().take_keyframe_request() {
            keyframe_pending = true;
        }
        let keyframe = keyframe_pending && last_keyframe.is_none_or(|t| now.duration_since(t) >= KEYFRAME_GAP);
        if now >= rate_at {
            rate_at = now + RATE_INTERVAL;
            let (remb, loss) = rtp.feedback().estimate();
            let mut target = if loss > 0.10 {
                (f64::from(bitrate) * (1.0 - 0.5 * f64::from(loss))) as u32
            } else if loss < 0.02 {
                (f64::from(bitrate) * 1.05) as u32
            } else {
                bitrate
            };
            if let Some(remb) = remb {
                target = target.min(remb);
            }
            bitrate = target.clamp(options.min_bitrate, options.max_bitrate);
        }
        let duration = last_pts
            .map(|p| Duration::from_micros(frame.pts.saturating_sub(p).saturating_mul(1_000_000) / 90_000))
            .unwrap_or(Duration::from_millis(33))
            .clamp(Duration::from_millis(1), Duration::from_secs(1));
        last_pts = Some(frame.pts);
        let mut sent_keyframe = false;
        for enc in &mut encoders {
            let targets: Vec<usize> = enc.indexes.iter().copied().filter(|&i| rtp.bound_to(i) > 0).collect();
            if targets.is_empty() || enc.failed {
                continue;
            }
            if enc.encoder.is_none() {
                let opts = EncoderOptions { codec: enc.codec, bitrate, fps: options.fps };
                match Encoder::new(opts) {
                    Ok(e) => enc.encoder = Some(e),
                    Err(e) => {
                        enc.failed = true;
                        tracing::warn!(target: "metered_realtime::peer", codec = %enc.codec, "cannot encode video: {e}");
                        continue;
                    }
                }
            }
            let Some(encoder) = enc.encoder.as_mut() else { continue };
            if encoder.bitrate() != bitrate {
                encoder.set_bitrate(bitrate);
            }
            if keyframe {
                encoder.request_keyframe();
            }
            encoded.clear();
            let mut was_key = false;
            let res = encoder.encode(&frame, |e| {
                encoded.extend_from_slice(e.data);
                was_key |= e.keyframe;
            });
            if let Err(e) = res {
                tracing::debug!(target: "metered_realtime::peer", codec = %enc.codec, "video frame not encoded: {e}");
                continue;
            }
            sent_keyframe |= was_key;
            if encoded.is_empty() {
                continue;
            }
            for &i in &targets {
                let _ = handle.block_on(rtp.write_codec(i, &encoded, duration));
            }
        }
        if sent_keyframe {
            last_keyframe = Some(now);
        }
        if keyframe {
            keyframe_pending = false;
        }
    }
}
