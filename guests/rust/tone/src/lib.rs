//! A tone agent (a stand-in for a "speech" agent): joins the channel, publishes
//! one audio track and plays a sine tone in 20 ms chunks, generated on the fly
//! and paced by `push`'s backpressure, then ends.
//!
//! Config (JSON): `{"channel": "room-1", "frequency": 440, "seconds": 2.0}`.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "metered:realtime/agent",
    generate_all,
});

use metered::realtime::audio_source::{AudioSource, InputLayout, Options};
use metered::realtime::room::Room;

const RATE: u32 = 16_000;

struct Tone;

impl exports::metered::realtime::run::Guest for Tone {
    fn run(config: String) -> Result<(), String> {
        let config: serde_json::Value = serde_json::from_str(&config).unwrap_or_default();
        let channel = config["channel"].as_str().unwrap_or("tone");
        let frequency = config["frequency"].as_f64().unwrap_or(440.0);
        let seconds = config["seconds"].as_f64().unwrap_or(2.0).clamp(0.0, 3600.0);

        let room = Room::join(channel).map_err(|e| format!("join: {e:?}"))?;
        let source = AudioSource::create(Options {
            input_rate: RATE,
            input_layout: InputLayout::Mono,
            max_buffered_seconds: 0.2,
        })
        .map_err(|e| format!("audio source: {e:?}"))?;
        room.add_track(&source.track(), "tone", r#"{"role":"speech","label":"Tone"}"#)
            .map_err(|e| format!("add track: {e:?}"))?;

        let total = (seconds * f64::from(RATE)) as u64;
        let step = std::f64::consts::TAU * frequency / f64::from(RATE);
        let mut chunk = Vec::with_capacity(RATE as usize / 50 * 2);
        let mut n = 0u64;
        while n < total {
            chunk.clear();
            for _ in 0..(RATE as u64 / 50).min(total - n) {
                let s = ((n as f64 * step).sin() * 0.5 * 32767.0) as i16;
                chunk.extend_from_slice(&s.to_le_bytes());
                n += 1;
            }
            source.push(&chunk).map_err(|e| format!("push: {e:?}"))?;
        }
        source.end();
        source.wait_for_playout();
        Ok(())
    }
}

export!(Tone);
