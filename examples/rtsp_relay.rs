//! Relays an RTSP camera (an IP camera, a door station) into a room: the
//! stream's audio is published to the room's peers; its video is decoded to
//! I420 frames on the media clock and reported here (sending video over
//! WebRTC is the next part). The player reconnects with backoff when the
//! camera drops, on the same tracks, and says so.
//!
//! ```sh
//! scripts/serve &
//! cargo run --features webrtc,sources --example rtsp_relay -- \
//!     ws://127.0.0.1:8787 pk_live_dev_… door rtsp://127.0.0.1:8554/stream [tcp|udp] [seconds]
//! ```

use std::time::Duration;

use futures_util::StreamExt;
use metered_realtime::media::{Frame, MediaStream, StreamMetadata, iter_frames};
use metered_realtime::peer::{IcePolicy, MeteredPeer, PeerOptions};
use metered_realtime::signalling::ClientOptions;
use metered_realtime::sources::{PlayerState, RtspTransport, Sources};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,webrtc=error,webrtc_ice=error".into()))
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, key, channel, camera, more @ ..] = args.as_slice() else {
        anyhow::bail!("usage: rtsp_relay <ws-url> <publishable-key> <channel> <rtsp-url> [tcp|udp] [seconds]");
    };
    // An unknown transport is a typed error before any I/O.
    let transport: RtspTransport = more.first().map_or(Ok(RtspTransport::Tcp), |t| t.parse())?;
    let seconds: f64 = more.get(1).map(|s| s.parse()).transpose()?.unwrap_or(5.0);

    let started = std::time::Instant::now();
    let player = Sources::operator().from_rtsp(camera, transport).await?;
    println!("camera: open in {:?} over {}", started.elapsed(), transport.as_str());

    let mut opts = PeerOptions::new(ClientOptions::with_api_key(key.as_str()).url(url.as_str()));
    if url.contains("127.0.0.1") || url.contains("localhost") {
        opts = opts.ice(IcePolicy::LoopbackOnly);
    }
    let relay = MeteredPeer::with_options(opts)?;
    if let Some(audio) = &player.audio {
        relay.add_stream(
            &MediaStream::with_tracks(Some("door-camera".into()), [audio.track()]),
            Some(StreamMetadata::role_label("camera", "Door")?),
        )?;
    }
    relay.join(channel).await?;

    // Report the player's state changes and the video it decodes.
    let mut states = player.states();
    tokio::spawn(async move {
        while states.changed().await.is_ok() {
            let s = states.borrow_and_update().clone();
            if let PlayerState::Reconnecting { attempt, reason } = &s {
                println!("camera: dropped ({reason}), reconnecting (attempt {attempt})");
            } else {
                println!("camera: {s:?}");
            }
        }
    });
    let video = player.video.as_ref().map(|v| v.track());
    let frames = tokio::spawn(async move {
        let Some(video) = video else { return 0 };
        let mut n = 0u64;
        let mut frames = iter_frames(video);
        while let Some(Frame::Video(f)) = frames.next().await {
            if n.is_multiple_of(30) {
                println!(
                    "camera: frame {n} {}x{} at {:.3} s, centre YUV {:?}",
                    f.width,
                    f.height,
                    f.pts as f64 / 90_000.0,
                    f.yuv_at(f.width / 2, f.height / 2)
                );
            }
            n += 1;
        }
        n
    });
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs_f64(seconds)) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    player.stop();
    let n = frames.await?;
    relay.close().await;
    println!("ok: relayed {seconds} s; {n} video frames decoded");
    Ok(())
}
