//! Hostile agents, for the runtime's tests: the config's `mode` picks the
//! misbehaviour. Each must end only this agent, with a clear reason.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "metered:realtime/agent",
    generate_all,
});

use metered::realtime::audio_source::{AudioSource, InputLayout, Options};
use metered::realtime::frame_iterator::FrameIterator;
use metered::realtime::media_stream::Track;
use metered::realtime::room::Room;

struct Hostile;

fn source(max_buffered_seconds: f64) -> Result<AudioSource, String> {
    AudioSource::create(Options { input_rate: 48_000, input_layout: InputLayout::Stereo, max_buffered_seconds })
        .map_err(|e| format!("{e:?}"))
}

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    if depth == u64::MAX {
        return 0;
    }
    recurse(std::hint::black_box(depth + 1)).wrapping_add(depth)
}

impl exports::metered::realtime::run::Guest for Hostile {
    fn run(config: String) -> Result<(), String> {
        let config: serde_json::Value = serde_json::from_str(&config).unwrap_or_default();
        match config["mode"].as_str().unwrap_or("") {
            // Spins in `run` before any host call.
            "loop-run" => loop {
                std::hint::black_box(0u64);
            },
            // Handles the first room event by spinning.
            "loop-event" => {
                let room = Room::join("hostile").map_err(|e| format!("{e:?}"))?;
                let _event = room.next_event();
                loop {
                    std::hint::black_box(0u64);
                }
            }
            // Grows memory without end.
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "stack" => Ok(std::hint::black_box(recurse(0)).to_string()).map(|_| ()),
            "panic" => panic!("hostile agent panics on purpose"),
            "trap" => {
                #[cfg(target_arch = "wasm32")]
                core::arch::wasm32::unreachable();
                #[cfg(not(target_arch = "wasm32"))]
                unreachable!()
            }
            // An oversized push must be refused; then it calls the host as fast
            // as it can, never waiting (empty pushes return at once).
            "push-flood" => {
                let s = source(1.0)?;
                let huge = vec![0u8; (1 << 20) + 2];
                match s.push(&huge) {
                    Err(metered::realtime::types::Error::LimitExceeded(_)) => {}
                    other => return Err(format!("an oversized push was not refused: {other:?}")),
                }
                loop {
                    let _ = s.push(&[]);
                }
            }
            // Pushes audio without end: backpressure must hold it at the cap.
            "push-backpressure" => {
                let s = source(3600.0)?;
                let chunk = vec![0u8; 192_000];
                let mut pushed = 0u64;
                loop {
                    s.push(&chunk).map_err(|e| format!("{e:?}"))?;
                    pushed += 1;
                    if s.buffered_seconds() > 10.5 {
                        return Err(format!("buffered {} s after {pushed} pushes", s.buffered_seconds()));
                    }
                }
            }
            // Publishes 1 MiB of metadata; reports what the host said.
            "metadata" => {
                let room = Room::join("hostile").map_err(|e| format!("{e:?}"))?;
                let s = source(1.0)?;
                let huge = format!(r#"{{"x":"{}"}}"#, "y".repeat(1 << 20));
                match room.add_track(&s.track(), "s", &huge) {
                    Ok(()) => Ok(()),
                    Err(e) => Err(format!("{e:?}")),
                }
            }
            // Uses a track handle after dropping it.
            "handle-dropped" => {
                let s = source(1.0)?;
                let track = s.track();
                let raw = track.take_handle();
                // SAFETY: deliberately wrong — `raw` is owned and dropped here, then
                // reused; the host must trap this agent, nothing more.
                unsafe {
                    drop(Track::from_handle(raw));
                    let again = Track::from_handle(raw);
                    let _ = again.id();
                }
                Ok(())
            }
            // Uses an audio-source handle as a track (another resource type),
            // and a handle index this instance never received.
            "handle-foreign" => {
                let s = source(1.0)?;
                let raw = s.handle();
                // SAFETY: deliberately wrong — see above.
                unsafe {
                    let fake = Track::from_handle(raw);
                    let _ = fake.id();
                    std::mem::forget(fake);
                    let never = Track::from_handle(0x7fff_fff0);
                    let _ = never.id();
                }
                Ok(())
            }
            // Leaks pollables (never dropped) until something gives.
            "pollable-flood" => {
                let s = source(1.0)?;
                let frames = FrameIterator::new(&s.track());
                loop {
                    std::mem::forget(frames.subscribe());
                }
            }
            // Reaches for the outside world: a TCP connection and a UDP packet
            // to `port` on loopback, a name lookup, a file, the environment.
            // Reports what each attempt got, as its error text.
            "escape" => {
                let port = config["port"].as_u64().unwrap_or(9) as u16;
                let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).map(|_| "connected");
                let udp = std::net::UdpSocket::bind("127.0.0.1:0")
                    .and_then(|s| s.send_to(b"escape", ("127.0.0.1", port)))
                    .map(|_| "sent");
                let dns = std::net::ToSocketAddrs::to_socket_addrs(&("localhost", port)).map(|_| "resolved");
                let file = std::fs::read("/etc/hostname").map(|_| "read");
                let env = std::env::vars().count();
                Err(format!("tcp: {tcp:?}; udp: {udp:?}; dns: {dns:?}; file: {file:?}; env: {env}"))
            }
            other => Err(format!("unknown mode {other:?}")),
        }
    }
}

export!(Hostile);
