//! The seed's end-to-end example in Rust: an "AI agent in the call". One peer
//! (the agent) pushes synthesized audio into a room through an `AudioSource`
//! (resampled to 48 kHz stereo and paced in real time); another peer (the
//! listener) consumes the agent's track frame by frame with `iter_frames` —
//! where a real agent would feed speech-to-text.
//!
//! ```sh
//! scripts/serve &          # prints a dev publishable key
//! cargo run --features webrtc --example audio_agent -- ws://127.0.0.1:8787 pk_live_dev_… my-voice-agent
//! ```
//!
//! The "TTS" here is a short melody of tones in 20 ms chunks of 16 kHz mono
//! s16 PCM. The listener prints the level and pitch it hears each half second,
//! and the example exits non-zero unless the listener heard every note.

use std::time::Duration;

use futures_util::StreamExt;
use metered_realtime::audio::analysis::{rms_dbfs, tone_frequency};
use metered_realtime::audio::{AudioSource, AudioSourceOptions};
use metered_realtime::media::{Frame, MediaStream, StreamMetadata, iter_frames};
use metered_realtime::peer::{ConnectionState, IcePolicy, MeteredPeer, PeerEvent, PeerOptions};
use metered_realtime::signalling::ClientOptions;

/// The melody: (frequency Hz, seconds).
const NOTES: [(f64, f64); 4] = [(440.0, 1.0), (554.37, 1.0), (659.25, 1.0), (880.0, 1.0)];

/// Stands in for a text-to-speech stream: 20 ms chunks of 16 kHz mono s16 PCM.
fn tts_stream() -> impl Iterator<Item = Vec<u8>> {
    let mut n: u64 = 0;
    NOTES.into_iter().flat_map(move |(freq, secs)| {
        let chunks = (secs * 50.0) as usize;
        let mut out = Vec::with_capacity(chunks);
        for _ in 0..chunks {
            let mut pcm = Vec::with_capacity(640);
            for _ in 0..320 {
                let v = 0.4 * (std::f64::consts::TAU * freq * n as f64 / 16_000.0).sin();
                pcm.extend_from_slice(&((v * 32767.0) as i16).to_le_bytes());
                n += 1;
            }
            out.push(pcm);
        }
        out
    })
}

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
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(key)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: audio_agent <ws-url> <publishable-key> [channel]");
    };
    let channel = args.next().unwrap_or_else(|| "my-voice-agent".to_owned());

    let agent = peer(&url, &key)?;
    let listener = peer(&url, &key)?;

    // --- agent: stream synthesized audio to everyone in the room (TTS out) ---
    let source = AudioSource::new(AudioSourceOptions::default())?; // 16 kHz mono PCM in
    agent.add_stream(
        &MediaStream::with_tracks(Some("agent-voice".into()), [source.track()]),
        Some(StreamMetadata::role_label("agent", "Voice agent")?),
    )?;

    // --- listener: consume the agent's audio (this is your STT feed) ---
    let mut events = listener.events();
    let heard = tokio::spawn(async move {
        let mut notes_heard = Vec::new();
        while let Ok(ev) = events.recv().await {
            let PeerEvent::Track { peer, track, metadata, .. } = ev else { continue };
            let label = metadata.as_ref().and_then(|m| m.label().map(str::to_owned)).unwrap_or_default();
            println!("listener: track from {} ({label})", peer.id());
            let mut frames = iter_frames(track);
            let mut window = Vec::new();
            while let Some(frame) = frames.next().await {
                let Frame::Audio(a) = frame else { continue };
                let n = a.samples_per_channel().unwrap_or(0);
                window.extend((0..n).map(|i| f64::from(a.sample_f32(0, i).unwrap_or(0.0))));
                if window.len() >= 24_000 {
                    let (hz, db) = (tone_frequency(&window, 48_000.0), rms_dbfs(&window));
                    if db > -30.0 {
                        println!("listener: {hz:6.1} Hz at {db:5.1} dBFS");
                        notes_heard.push(hz);
                    }
                    window.clear();
                }
            }
            break; // the agent left: its track ended
        }
        notes_heard
    });

    let mut agent_events = agent.events();
    listener.join(&channel).await?;
    agent.join(&channel).await?;
    // Speak once someone can hear: the source plays in real time whether or
    // not a connection is up, and what plays before is gone.
    let connected = async {
        while let Ok(ev) = agent_events.recv().await {
            if let PeerEvent::PeerStateChange { to: ConnectionState::Connected, .. } = ev {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), connected).await?;
    for chunk in tts_stream() {
        source.push(&chunk).await; // resampled + paced to 48 kHz
    }
    source.end();
    source.wait_for_playout().await;
    tokio::time::sleep(Duration::from_millis(500)).await; // let the tail drain
    agent.close().await;

    let notes = tokio::time::timeout(Duration::from_secs(10), heard).await??;
    listener.close().await;
    let missing: Vec<f64> =
        NOTES.iter().map(|n| n.0).filter(|f| !notes.iter().any(|h| (h - f).abs() < f * 0.02)).collect();
    if missing.is_empty() {
        println!("ok: the listener heard all {} notes", NOTES.len());
        Ok(())
    } else {
        anyhow::bail!("the listener missed notes {missing:?} (heard {notes:?})")
    }
}
