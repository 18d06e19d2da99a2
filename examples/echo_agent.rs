//! An echo agent: joins a channel, and plays back to the room whatever the
//! first remote audio track it hears says, frame for frame (48 kHz stereo in,
//! 48 kHz stereo out, paced by the `AudioSource`). Talk to it from the room
//! page that `metered serve` serves at `/`.
//!
//! ```sh
//! scripts/serve &          # prints a dev publishable key and the room page URL
//! cargo run --features webrtc --example echo_agent -- ws://127.0.0.1:8787 pk_live_dev_… room-1
//! ```
//!
//! It runs until Ctrl-C (or, with a fourth argument, for that many seconds).

use std::time::Duration;

use futures_util::StreamExt;
use metered_realtime::audio::{AudioSource, AudioSourceOptions, InputLayout};
use metered_realtime::media::{Frame, MediaStream, StreamMetadata, iter_frames};
use metered_realtime::peer::{IcePolicy, MeteredPeer, PeerEvent, PeerOptions};
use metered_realtime::signalling::ClientOptions;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,webrtc=error,webrtc_ice=error".into()))
        .init();
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(key)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: echo_agent <ws-url> <publishable-key> [channel] [seconds]");
    };
    let channel = args.next().unwrap_or_else(|| "room-1".to_owned());
    let seconds: Option<u64> = args.next().map(|s| s.parse()).transpose()?;

    let mut opts = PeerOptions::new(ClientOptions::with_api_key(key).url(&url));
    if url.contains("127.0.0.1") || url.contains("localhost") {
        opts = opts.ice(IcePolicy::LoopbackOnly);
    }
    let peer = MeteredPeer::with_options(opts)?;
    // Remote audio arrives as 48 kHz stereo: push it as it is.
    let source = AudioSource::new(AudioSourceOptions {
        input_rate: 48_000,
        input_layout: InputLayout::Stereo,
        max_buffered_seconds: 1.0,
        ..Default::default()
    })?;
    peer.add_stream(
        &MediaStream::with_tracks(Some("echo".into()), [source.track()]),
        Some(StreamMetadata::role_label("echo", "Echo")?),
    )?;
    let mut events = peer.events();
    peer.join(&channel).await?;
    println!("echo agent {} in {channel}", peer.peer_id().unwrap_or_default());

    let echo = async {
        while let Ok(ev) = events.recv().await {
            let PeerEvent::Track { peer: from, track, .. } = ev else { continue };
            println!("echoing {} ({})", from.id(), track.id());
            let mut frames = iter_frames(track);
            // A 60 ms jitter buffer: frames arrive with network jitter but
            // play out on a strict 20 ms clock; without headroom every late
            // frame is an underrun (a gap of silence in the echo).
            source.push(&[0u8; 3 * 960 * 4]).await;
            while let Some(frame) = frames.next().await {
                if let Frame::Audio(a) = frame
                    && let Err(e) = source.push_frame(&a).await
                {
                    eprintln!("push: {e}");
                }
            }
            println!("{} stopped; waiting for the next track", from.id());
        }
    };
    tokio::select! {
        () = echo => {}
        _ = tokio::signal::ctrl_c() => {}
        () = tokio::time::sleep(Duration::from_secs(seconds.unwrap_or(u64::MAX / 4))) => {}
    }
    peer.close().await;
    Ok(())
}
