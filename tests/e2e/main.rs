//! The end-to-end and interop tests, as one binary: a real `metered serve` on
//! loopback (in process or the `metered` binary), the official Python SDK
//! (`.local/venv`) and browser SDK (headless Chromium) as peers, guests built
//! from `guests/`. One module per area; features gate the areas that need
//! WebRTC (`webrtc`) or agents in rooms (`hosting`).
//!
//! One binary, not one per file: each test binary links the whole stack, so
//! sixteen of them cost sixteen links (see `docs/ARCHITECTURE.md`).

mod messaging_hostile;
mod messaging_python_sdk;
mod signalling_client;

mod browser_agent;
mod browser_room;
mod examples;
mod peer_common;
mod peer_datachannel;
mod peer_hostile;
mod peer_python_interop;
mod peer_reconcile;
mod peer_reconnect;
mod peer_rust;
mod peer_video;

mod agent_cli;
mod agent_conformance;
mod agent_serve;
mod agent_sources;

mod sources_python;
