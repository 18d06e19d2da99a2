//! Helpers shared by the `MeteredPeer` tests.
#![cfg(feature = "webrtc")]
#![allow(dead_code, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use metered_realtime::audio::analysis::{rms_dbfs, tone_frequency};
use metered_realtime::audio::{AudioSource, AudioSourceOptions};
use metered_realtime::media::{Frame, MediaStreamTrack, iter_frames};
use metered_realtime::peer::{IcePolicy, MeteredPeer, PeerEvent, PeerOptions};
use metered_realtime::signalling::ClientOptions;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// A peer on the test server, ICE bound to 127.0.0.1.
pub fn peer(url: &str, key: &str) -> MeteredPeer {
    MeteredPeer::with_options(PeerOptions::new(ClientOptions::with_api_key(key).url(url)).ice(IcePolicy::LoopbackOnly))
        .expect("peer")
}

/// An AudioSource fed a continuous 16 kHz sine; the feeder stops when the handle is aborted.
pub fn tone(freq: f64, amp: f64) -> (AudioSource, JoinHandle<()>) {
    let source =
        AudioSource::new(AudioSourceOptions { max_buffered_seconds: 0.2, ..Default::default() }).expect("source");
    let s = source.clone();
    let feeder = tokio::spawn(async move {
        let mut n: u64 = 0;
        loop {
            let mut pcm = Vec::with_capacity(640);
            for _ in 0..320 {
                let v = amp * (2.0 * std::f64::consts::PI * freq * n as f64 / 16_000.0).sin();
                pcm.extend_from_slice(&((v * 32767.0) as i16).to_le_bytes());
                n += 1;
            }
            s.push(&pcm).await;
        }
    });
    (source, feeder)
}

/// Waits (bounded) for the first event `pick` maps to `Some`.
pub async fn wait_for<T>(
    rx: &mut broadcast::Receiver<PeerEvent>,
    what: &str,
    mut pick: impl FnMut(&PeerEvent) -> Option<T>,
) -> T {
    let fut = async {
        loop {
            match rx.recv().await {
                Ok(ev) => {
                    if let Some(v) = pick(&ev) {
                        return v;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("events ended while waiting for {what}: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), fut).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// The tone measured on `frames` frames of a received track (after skipping
/// `skip` frames of start-up): (frequency Hz, level dBFS).
pub async fn measure(track: Arc<dyn MediaStreamTrack>, skip: usize, frames: usize) -> (f64, f64) {
    let mut it = iter_frames(track);
    let mut left = Vec::new();
    let mut seen = 0;
    let fut = async {
        while let Some(f) = it.next().await {
            seen += 1;
            if seen <= skip {
                continue;
            }
            if let Frame::Audio(a) = f {
                assert_eq!(a.sample_rate, 48_000);
                let n = a.samples_per_channel().unwrap_or(0);
                left.extend((0..n).map(|i| f64::from(a.sample_f32(0, i).unwrap_or(0.0))));
            }
            if seen >= skip + frames {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), fut).await.expect("frames within 20 s");
    assert!(left.len() >= frames * 960 / 2, "got {} samples", left.len());
    (tone_frequency(&left, 48_000.0), rms_dbfs(&left))
}

/// Reads until the track ends; panics unless it ends within `limit`.
pub async fn until_end(track: Arc<dyn MediaStreamTrack>, limit: Duration) {
    let mut it = iter_frames(track);
    tokio::time::timeout(limit, async { while it.next().await.is_some() {} })
        .await
        .expect("the iterator ends cleanly once the peer leaves");
}
