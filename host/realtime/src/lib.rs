//! # metered-realtime
//!
//! A native host for realtime voice and video agents, wire-compatible with
//! Metered Realtime: the official Python (`metered-realtime`) and browser
//! (`@metered-ca/realtime`) SDKs connect to it unchanged.
//!
//! ## Parts
//!
//! - [`protocol`] — serde types of every wire frame, limits, error and close codes,
//!   validation. Pure: no sockets, no tokio.
//! - [`server`] — the embedded messaging service behind `metered serve`:
//!   connections, keys and JWT auth, channels, presence, direct messages, limits,
//!   the REST control plane.
//! - [`signalling`] — [`signalling::SignallingClient`], the pub/sub client (parity
//!   with the Python SDK's `SignallingClient`): acks, typed events, reconnect with
//!   backoff, resubscribe, inactivity watchdog.
#![cfg_attr(
    feature = "media",
    doc = "- [`media`] / [`audio`] — frames, tracks, `MediaStream`, `StreamMetadata`, `AudioSource`, `iter_frames`."
)]
#![cfg_attr(
    feature = "webrtc",
    doc = "- [`peer`] — `MeteredPeer`: WebRTC rooms (Opus) on the `SignallingClient`, interoperable with the official SDKs."
)]
#![cfg_attr(
    feature = "sources",
    doc = "- [`sources`] — files, RTSP, cameras, microphones and screens as tracks, behind a `SourcePolicy`."
)]
#![cfg_attr(
    feature = "video",
    doc = "- [`video`] — VP8 and H.264 encoders and decoders; video in `peer::MeteredPeer`."
)]
#![cfg_attr(
    feature = "runtime",
    doc = "- [`runtime`] — the wasmtime host of `metered:realtime` guest components, per-agent limits, offline harness."
)]
#![cfg_attr(
    feature = "hosting",
    doc = "- [`hosting`] — agents in real rooms: `PeerRoomHost`, the agent-per-channel dispatcher of `metered serve --agent`."
)]
//!
//! ## Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | *(none)* | — | messaging service, `SignallingClient`, `metered serve` / `metered token` |
//! | `media` | yes | frames, tracks, `MediaStream`, `StreamMetadata`, `AudioSource` (rubato) |
//! | `webrtc` | no | `peer::MeteredPeer` (webrtc-rs 0.17, Opus via libopus) |
//! | `runtime` | no | `runtime`: the wasmtime agent runtime for `metered:realtime` guests (`wit/`), offline harness |
//! | `hosting` | no | `hosting`: agents in real rooms (`runtime` + `webrtc`) |
//! | `video` | no | `video`: VP8 (libvpx) / H.264 (libx264, FFmpeg) codecs; video send/receive in `peer` (`webrtc` + FFmpeg) |
//! | `sources` | no | `sources`: `from_file`, `from_rtsp`, `from_camera`, `from_microphone`, `screen_share` (FFmpeg, cpal) behind a `SourcePolicy` |
//!
//! Each part is its own crate (`metered-protocol`, `metered-server`,
//! `metered-signalling`, `metered-media`, `metered-audio`, `metered-peer`,
//! `metered-runtime`, `metered-hosting`, `metered-sources`, `metered-video`); this crate re-exports them under
//! the module names above. `cargo build --no-default-features` is the
//! messaging-only build: it pulls in neither FFmpeg, WebRTC, wasmtime, clap
//! nor tracing-subscriber.
//!
//! ## Example: a server and a client in one process
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use metered_realtime::server::{Server, ServerConfig};
//! use metered_realtime::signalling::{SignallingClient, ClientOptions};
//!
//! let config = ServerConfig::dev("127.0.0.1:0".parse()?);
//! let key = config.publishable_keys[0].key.clone();
//! let server = Server::bind(config).await?;
//! let url = format!("ws://{}", server.local_addr());
//! let client = SignallingClient::connect_with(ClientOptions::with_api_key(key).url(url)).await?;
//! client.subscribe("room-1").await?;
//! client.publish("room-1", serde_json::json!({"hello": "world"})).await?;
//! # Ok(()) }
//! ```

#[doc(inline)]
pub use metered_protocol as protocol;
#[doc(inline)]
pub use metered_server as server;
#[doc(inline)]
pub use metered_signalling as signalling;

#[cfg(feature = "media")]
#[doc(inline)]
pub use metered_audio as audio;
#[cfg(feature = "hosting")]
#[doc(inline)]
pub use metered_hosting as hosting;
#[cfg(feature = "media")]
#[doc(inline)]
pub use metered_media as media;
#[cfg(feature = "webrtc")]
#[doc(inline)]
pub use metered_peer as peer;
#[cfg(feature = "runtime")]
#[doc(inline)]
pub use metered_runtime as runtime;
#[cfg(feature = "sources")]
#[doc(inline)]
pub use metered_sources as sources;
#[cfg(feature = "video")]
#[doc(inline)]
pub use metered_video as video;
