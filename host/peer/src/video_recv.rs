//! Inbound video (feature `video`): [`RemoteVideoTrack`], a received VP8 or
//! H.264 track decoded to I420 [`VideoFrame`](metered_media::VideoFrame)s.
//!
//! A tokio task reads RTP and rebuilds frames (webrtc-rs's sample builder
//! with the VP8 / H.264 depacketizers); a decoder thread decodes them. The
//! hand-over holds a few frames: when the decoder falls behind, frames are
//! dropped and a keyframe is asked for (a dropped reference frame would
//! otherwise smear every frame after it). A lost packet the NACK round did
//! not repair, or a frame the decoder refuses, also asks for a keyframe —
//! at most one PLI per [`PLI_GAP`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};
use webrtc::media::io::sample_builder::SampleBuilder;
use webrtc::rtp::codecs::h264::H264Packet;
use webrtc::rtp::codecs::vp8::Vp8Packet;

use super::error::PeerError;
use super::rtc::RemoteRtp;
use metered_media::{Frame, FrameQueue, MediaKind, MediaStreamTrack, TrackEnded, VideoFrame};
use metered_video::{Decoder, DecoderOptions, VideoCodec};

/// Decoded frames buffered: a consumer further behind loses the oldest.
const RECEIVE_QUEUE_FRAMES: usize = 4;
/// Encoded frames waiting for the decoder.
const DECODE_QUEUE_FRAMES: usize = 8;
/// Packets the sample builder holds for reordering (a 1080p keyframe is a
/// few hundred packets).
const MAX_LATE_PACKETS: u16 = 512;
/// Keyframe requests closer together than this are merged.
pub(crate) const PLI_GAP: Duration = Duration::from_millis(500);

/// Counters of a received video track.
#[derive(Debug, Default)]
struct Stats {
    decoded: AtomicU64,
    errors: AtomicU64,
    keyframe_requests: AtomicU64,
}

/// A received video track: VP8 or H.264 decoded to I420 frames (pts in
/// 90 kHz). Ends like a received audio track does.
pub struct RemoteVideoTrack {
    id: String,
    codec: VideoCodec,
    frames: FrameQueue,
    stop: Notify,
    stats: Stats,
}

impl std::fmt::Debug for RemoteVideoTrack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteVideoTrack").field("id", &self.id).field("codec", &self.codec).finish()
    }
}

impl RemoteVideoTrack {
    /// The negotiated codec.
    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    /// Frames decoded so far.
    pub fn decoded_frames(&self) -> u64 {
        self.stats.decoded.load(Ordering::Relaxed)
    }

    /// Frames the decoder refused (corrupt, too large).
    pub fn decode_errors(&self) -> u64 {
        self.stats.errors.load(Ordering::Relaxed)
    }

    /// Keyframe requests (PLI) sent to the remote.
    pub fn keyframe_requests(&self) -> u64 {
        self.stats.keyframe_requests.load(Ordering::Relaxed)
    }

    /// Decoded frames dropped (the oldest first) because the consumer fell behind.
    pub fn dropped_frames(&self) -> u64 {
        self.frames.dropped()
    }
}

impl MediaStreamTrack for RemoteVideoTrack {
    fn kind(&self) -> MediaKind {
        MediaKind::Video
    }

    fn id(&self) -> &str {
        &self.id
    }

    fn poll_recv_into(&self, cx: &mut Context<'_>, out: &mut Frame) -> Poll<Result<(), TrackEnded>> {
        self.frames.poll_pop_into(cx, out).map(|got| got.ok_or(TrackEnded))
    }

    fn stop(&self) {
        self.frames.close_now();
        self.stop.notify_one();
    }
}

enum Depacketize {
    Vp8(SampleBuilder<Vp8Packet>),
    H264(SampleBuilder<H264Packet>),
}

/// Starts receiving `rtp` (a VP8 or H.264 track); `on_end` runs once when
/// the track ends. Refuses other codecs.
pub(crate) fn spawn_video_track(
    id: String,
    rtp: RemoteRtp,
    max_pixels: u64,
    on_end: impl FnOnce() + Send + 'static,
) -> Result<Arc<RemoteVideoTrack>, PeerError> {
    let mime = rtp.mime_type();
    let codec = VideoCodec::from_mime_type(&mime)
        .ok_or_else(|| PeerError::Rtc(format!("cannot decode {mime} video (VP8 and H.264 are)")))?;
    let mut builder = match codec {
        VideoCodec::Vp8 => Depacketize::Vp8(SampleBuilder::new(MAX_LATE_PACKETS, Vp8Packet::default(), 90_000)),
        VideoCodec::H264 => Depacketize::H264(SampleBuilder::new(MAX_LATE_PACKETS, H264Packet::default(), 90_000)),
    };
    let track = Arc::new(RemoteVideoTrack {
        id,
        codec,
        frames: FrameQueue::new(RECEIVE_QUEUE_FRAMES),
        stop: Notify::new(),
        stats: Stats::default(),
    });
    let (encoded_tx, encoded_rx) = std::sync::mpsc::sync_channel::<(bytes::Bytes, u64)>(DECODE_QUEUE_FRAMES);
    let (pli_tx, mut pli_rx) = mpsc::unbounded_channel::<()>();
    {
        let (t, pli) = (track.clone(), pli_tx.clone());
        std::thread::Builder::new()
            .name("metered-video-dec".into())
            .spawn(move || decode_loop(&t, codec, max_pixels, &encoded_rx, &pli))
            .map_err(|e| PeerError::Rtc(format!("cannot start a video decoder thread: {e}")))?;
    }
    let t = track.clone();
    tokio::spawn(async move {
        let mut last_pli: Option<Instant> = None;
        let mut rtp_ts_base: Option<u32> = None;
        let mut asked_first = false;
        loop {
            let packet = tokio::select! {
                r = rtp.read_packet() => match r { Ok(p) => p, Err(_) => break },
                Some(()) = pli_rx.recv() => {
                    pli(&rtp, &t, &mut last_pli).await;
                    continue;
                }
                _ = t.stop.notified() => break,
            };
            if !asked_first {
                // Start at a keyframe rather than wait for the next one.
                asked_first = true;
                pli(&rtp, &t, &mut last_pli).await;
            }
            let samples = match &mut builder {
                Depacketize::Vp8(b) => drain(b, packet),
                Depacketize::H264(b) => drain(b, packet),
            };
            for (sample, ts) in samples {
                if sample.prev_dropped_packets > 0 {
                    pli(&rtp, &t, &mut last_pli).await;
                }
                let base = *rtp_ts_base.get_or_insert(ts);
                let pts = u64::from(ts.wrapping_sub(base));
                if encoded_tx.try_send((sample.data, pts)).is_err() {
                    // The decoder is behind: this frame is lost to it.
                    pli(&rtp, &t, &mut last_pli).await;
                }
            }
            if t.frames.is_closed() {
                break;
            }
        }
        drop(encoded_tx);
        t.frames.close();
        on_end();
    });
    Ok(track)
}

fn drain<T: webrtc::rtp::packetizer::Depacketizer>(
    b: &mut SampleBuilder<T>,
    packet: webrtc::rtp::packet::Packet,
) -> Vec<(webrtc::media::Sample, u32)> {
    b.push(packet);
    std::iter::from_fn(|| b.pop_with_timestamp()).collect()
}

async fn pli(rtp: &RemoteRtp, t: &RemoteVideoTrack, last: &mut Option<Instant>) {
    let now = Instant::now();
    if last.is_some_and(|l| now.duration_since(l) < PLI_GAP) {
        return;
    }
    *last = Some(now);
    t.stats.keyframe_requests.fetch_add(1, Ordering::Relaxed);
    rtp.request_keyframe().await;
}

fn decode_loop(
    t: &RemoteVideoTrack,
    codec: VideoCodec,
    max_pixels: u64,
    rx: &std::sync::mpsc::Receiver<(bytes::Bytes, u64)>,
    pli: &mpsc::UnboundedSender<()>,
) {
    let mut decoder = match Decoder::new(DecoderOptions { codec, max_pixels }) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(target: "metered_realtime::peer", track = %t.id, "cannot decode video: {e}");
            t.frames.close();
            return;
        }
    };
    let mut picture = VideoFrame::default();
    while let Ok((data, pts)) = rx.recv() {
        match decoder.decode(&data, pts, &mut picture) {
            Ok(true) => {
                t.stats.decoded.fetch_add(1, Ordering::Relaxed);
                let open = t.frames.push_with(MediaKind::Video, |f| {
                    if let Frame::Video(v) = f {
                        std::mem::swap(v, &mut picture);
                    }
                });
                if !open {
                    return;
                }
            }
            Ok(false) => {}
            Err(e) => {
                t.stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(target: "metered_realtime::peer", track = %t.id, "undecodable video frame: {e}");
                let _ = pli.send(());
            }
        }
    }
}
