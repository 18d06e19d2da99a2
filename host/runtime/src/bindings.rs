//! Rust bindings of the `metered:realtime` WIT package (`wit/` at the repo root):
//! the one `bindgen!` call. Blocking guest calls are async host functions
//! (wasmtime suspends the guest's fiber); everything may trap so the host can end
//! a guest that breaks the contract. Resources map to the host types in
//! [`super::reps`]; [`super::host`] implements the interfaces over them.

#![allow(missing_docs, clippy::all)]

wasmtime::component::bindgen!({
    inline: "
        package metered:host;

        /// What this host can run: agents (`run`, or `handler` for the
        /// `reactor` world), and metadata policies (a separate instance; see
        /// `wit/worlds.wit`).
        world host {
            include metered:realtime/agent@0.1.0;
            export metered:realtime/handler@0.1.0;
            export metered:realtime/metadata-policy@0.1.0;
        }
    ",
    path: "../../wit",
    world: "metered:host/host",
    imports: {
        "metered:realtime/audio-source.[method]audio-source.push": async | trappable,
        "metered:realtime/audio-source.[method]audio-source.push-frame": async | trappable,
        "metered:realtime/audio-source.[method]audio-source.wait-for-playout": async | trappable,
        "metered:realtime/frame-iterator.[method]frame-iterator.next": async | trappable,
        "metered:realtime/room.[static]room.join": async | trappable,
        "metered:realtime/room.[method]room.add-stream": async | trappable,
        "metered:realtime/room.[method]room.add-track": async | trappable,
        "metered:realtime/room.[method]room.next-event": async | trappable,
        "metered:realtime/sources.[static]player.open": async | trappable,
        default: trappable,
    },
    exports: { default: async },
    with: {
        "wasi:io/poll": wasmtime_wasi_io::bindings::wasi::io::poll,
        "metered:realtime/media-stream.track": crate::reps::TrackRep,
        "metered:realtime/media-stream.media-stream": crate::reps::StreamRep,
        "metered:realtime/audio-source.audio-source": crate::reps::SourceRep,
        "metered:realtime/frame-iterator.frame-iterator": crate::reps::IteratorRep,
        "metered:realtime/room.room": crate::reps::RoomRep,
        "metered:realtime/sources.player": crate::reps::PlayerRep,
    },
});

pub(crate) use exports::metered::realtime::handler;
pub(crate) use exports::metered::realtime::metadata_policy;
pub(crate) use exports::metered::realtime::run;
pub(crate) use metered::realtime::{audio_source, frame_iterator, log, media_stream, room, sources, types};
