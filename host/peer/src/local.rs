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
use super::codec::{CodecError, OpusPacketizer};
use super::rtc::LocalRtpTrack;
use metered_media::{Frame, MediaKind, MediaStreamTrack};

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
        let mut encode = Encode::new()?;
        let source = Arc::new(Mutex::new(source));
        let swapped = Arc::new(Notify::new());
        let (src, swap, out) = (source.clone(), swapped.clone(), rtp.clone());
        let pump = tokio::spawn(async move {
            let mut warned = false;
            loop {
                let current = src.lock().clone();
                let got = tokio::select! {
                    got = current.recv_into(&mut encode.frame) => got,
                    _ = swap.notified() => continue,
                };
                if got.is_err() {
                    // Ended: wait for replace_track to hand over a new source.
                    swap.notified().await;
                    continue;
                }
                // Nobody to send to yet: the source still plays out in real
                // time, but its frames are not encoded.
                if !out.is_bound() {
                    continue;
                }
                match encode.packets() {
                    Ok(packets) => {
                        for p in packets {
                            // A connection unbound meanwhile is fine: the packet is dropped.
                            let _ = out.write(p, PACKET_DURATION).await;
                        }
                    }
                    Err(e) if !warned => {
                        warned = true;
                        tracing::warn!(target: "metered_realtime::peer", "cannot encode local audio: {e}");
                    }
                    Err(_) => {}
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

/// The send loop's reused state: the frame a source is read into and the
/// packets it encodes to. Nothing here allocates per frame once warm.
pub(crate) struct Encode {
    pub(crate) frame: Frame,
    encoder: OpusPacketizer,
    packets: Vec<Vec<u8>>,
}

impl Encode {
    pub(crate) fn new() -> Result<Self, PeerError> {
        let encoder = OpusPacketizer::new().map_err(|e| PeerError::Rtc(e.to_string()))?;
        Ok(Self { frame: Frame::empty(MediaKind::Audio), encoder, packets: Vec::new() })
    }

    /// Encodes the frame last read into [`Encode::frame`]; the complete
    /// 20 ms packets it finished (usually one).
    pub(crate) fn packets(&mut self) -> Result<&[Vec<u8>], CodecError> {
        let Frame::Audio(frame) = &self.frame else { return Ok(&[]) };
        let (packets, mut n) = (&mut self.packets, 0);
        self.encoder.push(frame, |p| {
            if packets.len() <= n {
                packets.push(Vec::with_capacity(p.len().max(1500)));
            }
            packets[n].clear();
            packets[n].extend_from_slice(p);
            n += 1;
        })?;
        Ok(&self.packets[..n])
    }
}

impl Drop for LocalTrack {
    fn drop(&mut self) {
        self.pump.abort();
    }
}
