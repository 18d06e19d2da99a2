//! The host side of each WIT interface, one file per interface, all implemented
//! on [`crate::state::GuestState`] over the resource reps of [`crate::reps`];
//! and the linkers' contents (`add_wasi`, `add_logging`, `add_media`).

pub(crate) mod audio_source;
pub(crate) mod frame_iterator;
pub(crate) mod log;
pub(crate) mod media_stream;
pub(crate) mod poll;
pub(crate) mod room;
pub(crate) mod sources;
pub(crate) mod types;

use wasmtime::component::{HasData, HasSelf, Linker, ResourceTable};

use super::bindings;
use super::state::GuestState;

/// `wasi:io` error and stream functions operate on the resource table alone.
struct Io;

impl HasData for Io {
    type Data<'a> = &'a mut ResourceTable;
}

/// Adds the WASI subset every guest gets: clocks, random, I/O streams and
/// polling, an empty environment, a filesystem with nothing preopened, and
/// stdio routed to `tracing`, and `wasi:sockets` against a context that allows
/// nothing: language runtimes (componentize-py, componentize-js) import sockets
/// whether or not the guest uses them, so they link, and every attempt to
/// create a socket or resolve a name is refused with `access-denied`.
pub(crate) fn add_wasi(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random, sockets};
    use wasmtime_wasi::{
        cli::WasiCli, clocks::WasiClocks, filesystem::WasiFilesystem, random::WasiRandom, sockets::WasiSockets,
    };
    use wasmtime_wasi::{
        cli::WasiCliView, clocks::WasiClocksView, filesystem::WasiFilesystemView, random::WasiRandomView,
        sockets::WasiSocketsView,
    };

    let l = linker;
    wasmtime_wasi_io::bindings::wasi::io::error::add_to_linker::<GuestState, Io>(l, |t| &mut t.table)?;
    wasmtime_wasi_io::bindings::wasi::io::streams::add_to_linker::<GuestState, Io>(l, |t| &mut t.table)?;
    wasmtime_wasi_io::bindings::wasi::io::poll::add_to_linker::<GuestState, HasSelf<GuestState>>(l, |t| t)?;
    clocks::wall_clock::add_to_linker::<GuestState, WasiClocks>(l, GuestState::clocks)?;
    clocks::monotonic_clock::add_to_linker::<GuestState, WasiClocks>(l, GuestState::clocks)?;
    random::random::add_to_linker::<GuestState, WasiRandom>(l, GuestState::random)?;
    random::insecure::add_to_linker::<GuestState, WasiRandom>(l, GuestState::random)?;
    random::insecure_seed::add_to_linker::<GuestState, WasiRandom>(l, GuestState::random)?;
    cli::exit::add_to_linker::<GuestState, WasiCli>(l, GuestState::cli)?;
    cli::environment::add_to_linker::<GuestState, WasiCli>(l, GuestState::cli)?;
    cli::stdin::add_to_linker::<GuestState, WasiCli>(l, GuestState::cli)?;
    cli::stdout::add_to_linker::<GuestState, WasiCli>(l, GuestState::cli)?;
    cli::stderr::add_to_linker::<GuestState, WasiCli>(l, GuestState::cli)?;
    cli::terminal_input::add_to_linker::<GuestState, WasiCli>(l, GuestState::cli)?;
    cli::terminal_output::add_to_linker::<GuestState, WasiCli>(l, GuestState::cli)?;
    cli::terminal_stdin::add_to_linker::<GuestState, WasiCli>(l, GuestState::cli)?;
    cli::terminal_stdout::add_to_linker::<GuestState, WasiCli>(l, GuestState::cli)?;
    cli::terminal_stderr::add_to_linker::<GuestState, WasiCli>(l, GuestState::cli)?;
    filesystem::types::add_to_linker::<GuestState, WasiFilesystem>(l, GuestState::filesystem)?;
    filesystem::preopens::add_to_linker::<GuestState, WasiFilesystem>(l, GuestState::filesystem)?;
    sockets::tcp::add_to_linker::<GuestState, WasiSockets>(l, GuestState::sockets)?;
    sockets::tcp_create_socket::add_to_linker::<GuestState, WasiSockets>(l, GuestState::sockets)?;
    sockets::udp::add_to_linker::<GuestState, WasiSockets>(l, GuestState::sockets)?;
    sockets::udp_create_socket::add_to_linker::<GuestState, WasiSockets>(l, GuestState::sockets)?;
    sockets::instance_network::add_to_linker::<GuestState, WasiSockets>(l, GuestState::sockets)?;
    sockets::network::add_to_linker::<GuestState, WasiSockets>(l, &Default::default(), GuestState::sockets)?;
    sockets::ip_name_lookup::add_to_linker::<GuestState, WasiSockets>(l, GuestState::sockets)?;
    Ok(())
}

/// Interfaces a guest may import. Anything else is refused at load time, with
/// its name, rather than failing on first use.
const IMPORTABLE: [&str; 7] =
    ["wasi:io/", "wasi:clocks/", "wasi:random/", "wasi:cli/", "wasi:filesystem/", "wasi:sockets/", "metered:realtime/"];

/// Refuses a component that imports an interface outside [`IMPORTABLE`],
/// naming it (a clearer message than the linker's).
pub(crate) fn check_imports(
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
) -> Result<(), String> {
    match component.component_type().imports(engine).find(|(name, _)| !IMPORTABLE.iter().any(|p| name.starts_with(p))) {
        Some((name, _)) => Err(format!("the component imports `{name}`, which agents cannot use")),
        None => Ok(()),
    }
}

/// Adds `log`: all a metadata policy may import.
pub(crate) fn add_logging(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    bindings::log::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |s| s)
}

/// Adds the media plane: types, tracks and streams, audio sources, frame
/// iterators, the room, media sources.
pub(crate) fn add_media(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    bindings::types::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |s| s)?;
    bindings::media_stream::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |s| s)?;
    bindings::audio_source::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |s| s)?;
    bindings::frame_iterator::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |s| s)?;
    bindings::room::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |s| s)?;
    bindings::sources::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |s| s)?;
    Ok(())
}
