//! Outbound media: one [`LocalTrack`] per track given to `add_track`. Its pump
//! reads the source's frames in real time, encodes each 20 ms once — only while
//! some connection is sending the track — and writes the packet to one RTP
//! track shared by every peer connection (the stack fans it out).
//! `replace_track` swaps the source under the pump: same RTP track, same SSRC,
//! no renegotiation.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::PeerError;
use super::codec::OpusPacketizer;
use super::rtc::LocalRtpTrack;
use crate::media::{Frame, MediaKind, MediaStreamTrack};

const PACKET_DURATION: Duration = Duration::from_millis(20);

/// A local track being sent to the room.
pub(crate) struct LocalTrack {
    pub(crate) rtp: LocalRtpTrack,
    source: Arc<Mutex<Arc<dyn MediaStreamTrack>>>,
    swapped: Arc<Notify>,
    pump: JoinHandle<()>,
}

impl LocalTrack {
    /// Starts pumping `source` (audio only for now) as `a=msid:<stream_id> <id>`.
    pub(crate) fn start(source: Arc<dyn MediaStreamTrack>, stream_id: &str) -> Result<Self, PeerError> {
        if source.kind() != MediaKind::Audio {
            return Err(PeerError::Rtc("video tracks are not sent yet (no VP8 encoder)".into()));
        }
        let rtp = LocalRtpTrack::opus(source.id(), stream_id);
        let mut encoder = OpusPacketizer::new().map_err(|e| PeerError::Rtc(e.to_string()))?;
        let source = Arc::new(Mutex::new(source));
        let swapped = Arc::new(Notify::new());
        let (src, swap, out) = (source.clone(), swapped.clone(), rtp.clone());
        let pump = tokio::spawn(async move {
            let mut packets: Vec<Vec<u8>> = Vec::new();
            let mut warned = false;
            loop {
                let current = src.lock().clone();
                let frame = tokio::select! {
                    f = current.recv() => f,
                    _ = swap.notified() => continue,
                };
                match frame {
                    // Nobody to send to yet: the source still plays out in
                    // real time, but its frames are not encoded.
                    Ok(Frame::Audio(_)) if !out.is_bound() => {}
                    Ok(Frame::Audio(frame)) => {
                        let mut n = 0;
                        let res = encoder.push(&frame, |p| {
                            if packets.len() <= n {
                                packets.push(Vec::with_capacity(p.len()));
                            }
                            packets[n].clear();
                            packets[n].extend_from_slice(p);
                            n += 1;
                        });
                        if let Err(e) = res
                            && !warned
                        {
                            warned = true;
                            tracing::warn!(target: "metered_realtime::peer", "cannot encode local audio: {e}");
                        }
                        for p in &packets[..n] {
                            // No bound connection yet is fine: the packet is dropped.
                            let _ = out.write(p, PACKET_DURATION).await;
                        }
                    }
                    Ok(Frame::Video(_)) => {}
                    // Ended: wait for replace_track to hand over a new source.
                    Err(_) => swap.notified().await,
                }
            }
        });
        Ok(Self { rtp, source, swapped, pump })
    }

    /// Sends `new` from now on (same RTP track: no renegotiation).
    pub(crate) fn replace(&self, new: Arc<dyn MediaStreamTrack>) {
        *self.source.lock() = new;
        self.swapped.notify_one();
    }
}

impl Drop for LocalTrack {
    fn drop(&mut self) {
        self.pump.abort();
    }
}
