//! The WebAssembly agent runtime: runs guest components written against the
//! `metered:realtime` WIT package (`wit/` at the repository root) next to the
//! native media engine.
//!
//! - [`Runtime`] — one wasmtime `Engine`: pooling allocator, copy-on-write
//!   memory images, epoch interruption (a ticker thread), a compiled-component
//!   cache ([`CacheConfig`]).
//! - [`AgentComponent`] — a compiled agent and its `InstancePre`: world
//!   `agent` (the guest blocks in its own `run` loop) or world `reactor` (the
//!   host calls the guest's `handler` once per room event and frame, so
//!   runtimes that collect garbage between calls stay bounded); [`Agent`] / [`AgentHandle`] — one instance in its own
//!   `Store` with [`AgentLimits`]: memory (total across memories), instances,
//!   tables, a CPU budget per event, a cap on host calls between waits, caps on
//!   pushes, sources, iterators and resources.
//! - [`PolicyComponent`] — a `policy`-world component; fails closed.
//! - [`RoomHost`] / [`RoomSession`] — the boundary the peer layer implements;
//!   [`offline::OfflineRoom`] implements it over a PCM input on a virtual clock.
//! - [`SourceHost`] / [`OpenedSource`] — the boundary the capture layer
//!   implements (`metered-hosting` over `metered-sources`, under each agent's
//!   source policy); [`NoSources`] refuses every open.
//!
//! Guests get no filesystem, sockets or environment: only clocks, random
//! numbers, logging (into `tracing`, tagged with the agent id) and our
//! interfaces. Blocking guest calls (`next`, `push`, `next-event`,
//! `wait-for-playout`) are async host functions: wasmtime suspends the guest's
//! fiber, so guests are plain sequential code. A trap, an exhausted limit or a
//! deadline ends that agent with a typed [`AgentExit`]; the host and other
//! agents carry on.
//!
//! The runtime doesn't know about the wire protocol or WebRTC: rooms come in
//! through [`RoomHost`], media through the [`metered_media`] and
//! [`metered_audio`] types.
//!
//! ```no_run
//! # async fn demo(bytes: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
//! use metered_runtime::{AgentSpec, Runtime, RuntimeConfig};
//!
//! let runtime = Runtime::new(RuntimeConfig::default())?;
//! let agent = runtime.load_agent(bytes)?;
//! let report = agent.run(AgentSpec::new(r#"{"channel": "room-1"}"#)).await?;
//! println!("{}: {}", report.id, report.exit);
//! # Ok(()) }
//! ```

mod agent;
mod bindings;
mod cache;
mod config;
mod engine;
mod exit;
mod gate;
mod host;
pub mod offline;
mod policy;
mod reactor;
mod reps;
mod room_host;
mod shared;
mod source_host;
mod state;
mod stdio;

pub use agent::{Agent, AgentComponent, AgentHandle, AgentReport, AgentSpec, AgentStopper};
pub use config::{AgentLimits, CacheConfig, RuntimeConfig};
pub use engine::Runtime;
pub use exit::{AgentExit, RuntimeError};
pub use gate::Verdict;
pub use policy::{PolicyComponent, PolicyInstance};
pub use room_host::{AgentInfo, BoxFuture, NoRoom, RoomError, RoomEvent, RoomHost, RoomSession};
pub use source_host::{
    NoSources, OpenedSource, RtspTransport, SourceHost, SourceHostError, SourceRequest, SourceState,
};

#[cfg(test)]
mod tests;
