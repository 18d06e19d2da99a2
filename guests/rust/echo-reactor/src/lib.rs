//! The echo agent as a reactor (world `metered:realtime/reactor`): the same
//! behaviour as `echo` — join the channel named in the config, publish one
//! audio track, play back the first remote audio track — but the host calls
//! in once per event and frame instead of the guest blocking in `run`.
//!
//! Config (JSON): `{"channel": "room-1", "buffer": 1.0}` (defaults: channel
//! `"echo"`, at most 1 s buffered before `push` blocks).

wit_bindgen::generate!({
    path: "../../../wit",
    world: "metered:realtime/reactor",
    generate_all,
});

use std::cell::RefCell;

use exports::metered::realtime::handler::Flow;
use metered::realtime::audio_source::{AudioSource, InputLayout, Options};
use metered::realtime::frame_iterator::FrameIterator;
use metered::realtime::log::{Level, log};
use metered::realtime::room::{Room, RoomEvent};
use metered::realtime::types::{Frame, MediaKind};

/// What the agent keeps between calls.
struct Echo {
    _room: Room,
    source: AudioSource,
    /// The track being echoed, once one arrived (the host delivers its frames
    /// while the iterator lives).
    following: Option<(String, FrameIterator)>,
}

thread_local! {
    static ECHO: RefCell<Option<Echo>> = const { RefCell::new(None) };
}

struct Agent;

impl exports::metered::realtime::handler::Guest for Agent {
    fn start(config: String) -> Result<Flow, String> {
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
        ECHO.set(Some(Echo { _room: room, source, following: None }));
        Ok(Flow::More)
    }

    fn on_room_event(event: RoomEvent) -> Result<Flow, String> {
        let RoomEvent::Track(remote) = event else { return Ok(Flow::More) };
        ECHO.with_borrow_mut(|echo| {
            let echo = echo.as_mut().ok_or("not started")?;
            if remote.kind != MediaKind::Audio || echo.following.is_some() {
                return Ok(Flow::More);
            }
            // A 60 ms jitter buffer (see `echo`).
            echo.source.push(&[0u8; 3 * 960 * 4]).map_err(|e| format!("push: {e:?}"))?;
            echo.following = Some((remote.track.id(), FrameIterator::new(&remote.track)));
            Ok(Flow::More)
        })
    }

    fn on_frame(_track_id: String, frame: Frame) -> Result<Flow, String> {
        let Frame::Audio(audio) = frame else { return Ok(Flow::More) };
        ECHO.with_borrow(|echo| {
            let echo = echo.as_ref().ok_or("not started")?;
            let pushed = if audio.sample_rate == 48_000 && audio.channels == 2 {
                echo.source.push(&audio.samples)
            } else {
                echo.source.push_frame(&audio)
            };
            if let Err(e) = pushed {
                log(Level::Warn, &format!("push: {e:?}"));
            }
            Ok(Flow::More)
        })
    }

    fn on_track_ended(track_id: String) -> Result<Flow, String> {
        ECHO.with_borrow_mut(|echo| {
            let echo = echo.as_mut().ok_or("not started")?;
            if echo.following.as_ref().is_none_or(|(id, _)| *id != track_id) {
                return Ok(Flow::More);
            }
            echo.following = None;
            echo.source.end();
            echo.source.wait_for_playout();
            Ok(Flow::Finish)
        })
    }
}

export!(Agent);
