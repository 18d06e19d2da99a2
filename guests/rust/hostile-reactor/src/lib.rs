//! A misbehaving reactor, for the runtime's tests of the `reactor` world:
//! the config's `mode` picks what it does. Each must end only this agent,
//! with a clear reason.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "metered:realtime/reactor",
    generate_all,
});

use std::cell::RefCell;

use exports::metered::realtime::handler::Flow;
use metered::realtime::frame_iterator::FrameIterator;
use metered::realtime::room::{Room, RoomEvent};
use metered::realtime::types::Frame;

thread_local! {
    static MODE: RefCell<String> = const { RefCell::new(String::new()) };
    static HELD: RefCell<(Option<Room>, Vec<FrameIterator>, u64)> = const { RefCell::new((None, Vec::new(), 0)) };
}

fn mode() -> String {
    MODE.with_borrow(Clone::clone)
}

struct Hostile;

impl exports::metered::realtime::handler::Guest for Hostile {
    fn start(config: String) -> Result<Flow, String> {
        let config: serde_json::Value = serde_json::from_str(&config).unwrap_or_default();
        MODE.set(config["mode"].as_str().unwrap_or("").to_owned());
        match mode().as_str() {
            "fail-start" => Err("refusing to start".into()),
            "loop-start" => loop {
                std::hint::black_box(0u64);
            },
            "nothing" => Ok(Flow::More), // joins nothing: nothing to deliver
            _ => {
                let room = Room::join("hostile").map_err(|e| format!("{e:?}"))?;
                HELD.with_borrow_mut(|h| h.0 = Some(room));
                Ok(Flow::More)
            }
        }
    }

    fn on_room_event(event: RoomEvent) -> Result<Flow, String> {
        if let RoomEvent::Track(t) = event {
            HELD.with_borrow_mut(|h| h.1.push(FrameIterator::new(&t.track)));
        }
        Ok(Flow::More)
    }

    fn on_frame(_track_id: String, _frame: Frame) -> Result<Flow, String> {
        let n = HELD.with_borrow_mut(|h| {
            h.2 += 1;
            h.2
        });
        match mode().as_str() {
            // Handles a frame by spinning.
            "loop-frame" => loop {
                std::hint::black_box(0u64);
            },
            "panic-frame" => panic!("hostile reactor panics on frame {n}"),
            // Counts ten frames, then says it is done.
            "finish-after-10" if n >= 10 => Ok(Flow::Finish),
            _ => Ok(Flow::More),
        }
    }

    fn on_track_ended(_track_id: String) -> Result<Flow, String> {
        let n = HELD.with_borrow(|h| h.2);
        Err(format!("track ended after {n} frames"))
    }
}

export!(Hostile);
