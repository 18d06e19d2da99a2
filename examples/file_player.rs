//! Plays a media file into a room: the seed's `from_file` as a hold-music
//! or announcement player. The file's audio track is published with
//! metadata; a listener peer in the same room measures what it hears.
//!
//! ```sh
//! scripts/serve &          # prints a dev publishable key
//! cargo run --features webrtc,sources --example file_player -- \
//!     ws://127.0.0.1:8787 pk_live_dev_… lobby music.mp3 [--loop] [seconds]
//! ```
//!
//! The path goes through the operator's `SourcePolicy` (plain paths and
//! http(s) URLs; `concat:`, `data:` and other pseudo-protocols are refused
//! with a typed error). Exits non-zero unless the listener heard the file.

use std::time::Duration;

use futures_util::StreamExt;
use metered_realtime::audio::analysis::{rms_dbfs, tone_frequency};
use metered_realtime::media::{Frame, MediaStream, StreamMetadata, iter_frames};
use metered_realtime::peer::{IcePolicy, MeteredPeer, PeerEvent, PeerOptions};
use metered_realtime::signalling::ClientOptions;
use metered_realtime::sources::Sources;

fn peer(url: &str, key: &str) -> anyhow::Result<MeteredPeer> {
    let mut opts = PeerOptions::new(ClientOptions::with_api_key(key).url(url));
    if url.contains("127.0.0.1") || url.contains("localhost") {
        opts = opts.ice(IcePolicy::LoopbackOnly);
    }
    Ok(MeteredPeer::with_options(opts)?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,webrtc=error,webrtc_ice=error".into()))
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let looping = args.iter().any(|a| a == "--loop");
    let rest: Vec<&String> = args.iter().filter(|a| *a != "--loop").collect();
    let [url, key, channel, file, more @ ..] = rest.as_slice() else {
        anyhow::bail!("usage: file_player <ws-url> <publishable-key> <channel> <file> [--loop] [seconds]");
    };
    let seconds: f64 = more.first().map(|s| s.parse()).transpose()?.unwrap_or(3.0);

    // The source: decoded by FFmpeg, resampled to 48 kHz stereo, paced.
    let player = Sources::operator().from_file(file, looping).await?;
    println!("player: {} (duration {:?}, video {})", player.source(), player.duration(), player.video.is_some());
    let audio = player.audio.as_ref().ok_or_else(|| anyhow::anyhow!("{file} has no audio"))?;

    let agent = peer(url, key)?;
    agent.add_stream(
        &MediaStream::with_tracks(Some("file-player".into()), [audio.track()]),
        Some(StreamMetadata::role_label("music", "File player")?),
    )?;

    // The listener measures pitch and level every half second.
    let listener = peer(url, key)?;
    let mut events = listener.events();
    let heard = tokio::spawn(async move {
        let mut heard = Vec::new();
        while let Ok(ev) = events.recv().await {
            let PeerEvent::Track { track, metadata, .. } = ev else { continue };
            let label = metadata.as_ref().and_then(|m| m.label().map(str::to_owned)).unwrap_or_default();
            println!("listener: track ({label})");
            let mut frames = iter_frames(track);
            let mut window = Vec::new();
            while let Some(frame) = frames.next().await {
                let Frame::Audio(a) = frame else { continue };
                let n = a.samples_per_channel().unwrap_or(0);
                window.extend((0..n).map(|i| f64::from(a.sample_f32(0, i).unwrap_or(0.0))));
                if window.len() >= 24_000 {
                    let (hz, db) = (tone_frequency(&window, 48_000.0), rms_dbfs(&window));
                    println!("listener: {hz:6.1} Hz at {db:5.1} dBFS");
                    if db > -40.0 {
                        heard.push(hz);
                    }
                    window.clear();
                }
            }
            break;
        }
        heard
    });
    listener.join(channel).await?;
    agent.join(channel).await?;
    // Play for `seconds` (or until a file that does not loop ends).
    let _ = tokio::time::timeout(Duration::from_secs_f64(seconds), player.ended()).await;
    player.stop();
    agent.close().await;
    let heard = tokio::time::timeout(Duration::from_secs(10), heard).await??;
    listener.close().await;
    if heard.is_empty() {
        anyhow::bail!("the listener heard nothing");
    }
    println!("ok: the listener heard the file ({} half-seconds)", heard.len());
    Ok(())
}
