//! A player agent: opens a media source through the host (a file for hold
//! music, an RTSP door camera) and publishes its tracks into the channel. The
//! host decodes, resamples and paces; the agent only chooses what to play.
//! The source string is judged by the host's source policy for this agent: a
//! refusal comes back as `error.denied` naming the rule, and the agent reports
//! it to the room (`{"player": {"error": ...}}`) before ending with it.
//!
//! Config (JSON): `{"channel": "lobby", "source": "hold.mp4", "loop": true,
//! "stream_id": "hold", "metadata": {"role": "music"}, "seconds": 30,
//! "transport": "tcp" | "udp"}`. Without `seconds` it plays until the source
//! ends (a looped file: until the room closes).

wit_bindgen::generate!({
    path: "../../../wit",
    world: "metered:realtime/agent",
    generate_all,
});

use metered::realtime::room::{Room, RoomEvent};
use metered::realtime::sources::{OpenOptions, Player, PlayerState, RtspTransport};
use metered::realtime::types::Error;

struct PlayerAgent;

/// The error's WIT case and its text.
fn parts(e: &Error) -> (&'static str, &str) {
    match e {
        Error::InvalidArgument(m) => ("invalid-argument", m),
        Error::LimitExceeded(m) => ("limit-exceeded", m),
        Error::Closed => ("closed", ""),
        Error::NotFound(m) => ("not-found", m),
        Error::Denied(m) => ("denied", m),
        Error::Unsupported(m) => ("unsupported", m),
    }
}

fn kind(e: &Error) -> &'static str {
    parts(e).0
}

/// `not found: source "…" not found`, for logs and the agent's exit.
fn describe(e: &Error) -> String {
    match parts(e) {
        (kind, "") => kind.replace('-', " "),
        (kind, m) => format!("{}: {m}", kind.replace('-', " ")),
    }
}

fn state(s: &PlayerState) -> String {
    match s {
        PlayerState::Connecting => "connecting".into(),
        PlayerState::Live => "live".into(),
        PlayerState::Reconnecting => "reconnecting".into(),
        PlayerState::Ended(why) => format!("ended: {why}"),
    }
}

impl exports::metered::realtime::run::Guest for PlayerAgent {
    fn run(config: String) -> Result<(), String> {
        let config: serde_json::Value = serde_json::from_str(&config).unwrap_or_default();
        let channel = config["channel"].as_str().unwrap_or("player");
        let source = config["source"].as_str().ok_or("config: `source` is required")?;
        let stream_id = config["stream_id"].as_str().unwrap_or("player");
        let metadata = config.get("metadata").cloned().unwrap_or_else(|| serde_json::json!({"role": "music"}));
        let seconds = config["seconds"].as_f64().map(|s| s.clamp(0.0, 86_400.0));
        let transport = match config["transport"].as_str() {
            None => None,
            Some("tcp") => Some(RtspTransport::Tcp),
            Some("udp") => Some(RtspTransport::Udp),
            Some("udp_multicast") => Some(RtspTransport::UdpMulticast),
            Some("http") => Some(RtspTransport::Http),
            Some(other) => return Err(format!("config: unknown transport {other:?}")),
        };

        let room = Room::join(channel).map_err(|e| format!("join: {}", describe(&e)))?;
        let options =
            OpenOptions { loop_: config["loop"].as_bool().unwrap_or(false), transport, width: 0, height: 0, fps: 0 };
        let player = match Player::open(source, options) {
            Ok(p) => p,
            Err(e) => {
                let report = serde_json::json!({"player": {"error": kind(&e), "message": describe(&e)}});
                let _ = room.send_data(None, &report.to_string());
                return Err(format!("open: {}", describe(&e)));
            }
        };
        let metadata = metadata.to_string();
        // A room that cannot carry a kind (`unsupported`) gets the others.
        let (mut published, mut skipped) = (Vec::new(), Vec::new());
        for (what, track) in [("audio", player.audio()), ("video", player.video())] {
            let Some(track) = track else { continue };
            match room.add_track(&track, stream_id, &metadata) {
                Ok(()) => published.push(what),
                Err(Error::Unsupported(why)) => skipped.push(serde_json::json!({"kind": what, "why": why})),
                Err(e) => return Err(format!("add {what}: {}", describe(&e))),
            }
        }
        if published.is_empty() {
            player.stop();
            return Err(format!("nothing to publish: {skipped:?}"));
        }
        let report = serde_json::json!({"player": {
            "label": player.label(),
            "tracks": published,
            "skipped": skipped,
            "state": state(&player.state()),
            "duration_ms": player.duration_ms(),
        }});
        room.send_data(None, &report.to_string()).map_err(|e| format!("send: {}", describe(&e)))?;

        // Play until the source ends, `seconds` pass, or the room closes.
        let started = std::time::Instant::now();
        loop {
            if let PlayerState::Ended(why) = player.state() {
                let _ = room.send_data(None, &serde_json::json!({"player": {"ended": why}}).to_string());
                break;
            }
            if seconds.is_some_and(|s| started.elapsed().as_secs_f64() >= s) {
                player.stop();
                break;
            }
            // Look at the player and the room every 200 ms (a sleep is a
            // wait: the host suspends the agent and its budgets refill).
            std::thread::sleep(std::time::Duration::from_millis(200));
            let events = room.subscribe();
            while events.ready() {
                match room.next_event() {
                    None => return Ok(()),
                    Some(RoomEvent::Data(msg)) if msg.payload.contains("\"stop\"") => player.stop(),
                    Some(_) => {}
                }
            }
        }
        Ok(())
    }
}

export!(PlayerAgent);
