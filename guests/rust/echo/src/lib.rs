//! An echo agent: joins the channel named in its config, publishes one audio
//! track, and plays back the first remote audio track it receives, frame for
//! frame.
//!
//! Config (JSON): `{"channel": "room-1", "buffer": 1.0}` (defaults: channel
//! `"echo"`, at most 1 s buffered before `push` blocks).

wit_bindgen::generate!({
    path: "../../../wit",
    world: "metered:realtime/agent",
    generate_all,
});

use metered::realtime::audio_source::{AudioSource, InputLayout, Options};
use metered::realtime::frame_iterator::FrameIterator;
use metered::realtime::log::{Level, log};
use metered::realtime::room::{Room, RoomEvent};
use metered::realtime::types::{Frame, MediaKind};

struct Echo;

impl exports::metered::realtime::run::Guest for Echo {
    fn run(config: String) -> Result<(), String> {
        let config: serde_json::Value = serde_json::from_str(&config).unwrap_or_default();
        let channel = config["channel"].as_str().unwrap_or("echo");

        let room = Room::join(channel).map_err(|e| format!("join {channel}: {e:?}"))?;
        // Remote tracks arrive as 48 kHz stereo: push them as they are.
        let source = AudioSource::create(Options {
            input_rate: 48_000,
            input_layout: InputLayout::Stereo,
            max_buffered_seconds: config["buffer"].as_f64().unwrap_or(1.0),
        })
        .map_err(|e| format!("audio source: {e:?}"))?;
        room.add_track(&source.track(), "echo", r#"{"role":"echo","label":"Echo"}"#)
            .map_err(|e| format!("add track: {e:?}"))?;
        log(Level::Info, &format!("echo agent {} in {channel}", room.peer_id()));

        // Wait for the first remote audio track.
        let track = loop {
            match room.next_event() {
                Some(RoomEvent::Track(t)) if t.kind == MediaKind::Audio => break t.track,
                Some(_) => continue,
                None => return Ok(()),
            }
        };

        let frames = FrameIterator::new(&track);
        // A 60 ms jitter buffer: frames arrive with network jitter but play
        // out on a strict 20 ms clock; without headroom each late frame is an
        // underrun (a gap of silence in the echo).
        source.push(&[0u8; 3 * 960 * 4]).map_err(|e| format!("push: {e:?}"))?;
        while let Some(frame) = frames.next() {
            if let Frame::Audio(audio) = frame {
                let pushed = if audio.sample_rate == 48_000 && audio.channels == 2 {
                    source.push(&audio.samples)
                } else {
                    source.push_frame(&audio)
                };
                if let Err(e) = pushed {
                    log(Level::Warn, &format!("push: {e:?}"));
                }
            }
        }
        source.end();
        source.wait_for_playout();
        Ok(())
    }
}

export!(Echo);
