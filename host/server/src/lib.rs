//! The embedded messaging service behind `metered serve`.
//!
//! A wire-compatible Metered Realtime Messaging server: one WebSocket per peer at
//! `/v1?key=…` or `/v1?token=…`, channels with presence, direct messages,
//! publishable keys and secret-key JWTs, the hosted service's limits, error and
//! close codes, and the REST control plane under `/v1/…` on the same port.
//!
//! ```text
//!  axum router ── /v1 (WebSocket) ── connection task ─┐
//!              └─ /v1/tokens, /v1/channels/…, …       ├── Hub (tenants → channels → subscribers,
//!                                                      │        peer directory, presence)
//!                 bounded queue per connection  <──────┘  frames serialized once per fan-out
//! ```
//!
//! Doesn't know about WebRTC, media or wasm. Pure pieces (auth, rate limits,
//! config validation) take time as an argument and are unit-tested without
//! sockets.

pub mod auth;
pub mod backplane;
pub mod config;
mod connection;
mod hub;
mod keepalive;
mod metrics;
pub mod rate;
mod rest;
mod web;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::info;

pub use auth::{Action, ChannelPattern, Claims, TokenRequest, mint_token};
pub use backplane::{Backplane, LocalBackplane, Origin};
pub use config::{ConfigError, IceServer, Limits, PublishableKey, SecretKey, ServerConfig, WebConfig};
pub use hub::HubIngress;
pub use metered_protocol::PresenceChange;
pub use metrics::Metrics;

use auth::Authenticator;
use connection::Credential;
use hub::Hub;
use rate::IpConnectionLimiter;

/// Shared state of one server.
pub(crate) struct App {
    config: Arc<ServerConfig>,
    auth: Authenticator,
    hub: Arc<Hub>,
    ip_limiter: Mutex<IpConnectionLimiter>,
    shutdown: watch::Receiver<bool>,
    started: Instant,
    web: web::Assets,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A running messaging server.
pub struct Server {
    app: Arc<App>,
    local_addr: SocketAddr,
    shutdown_tx: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Who is present in which channel (see [`Server::presence`]).
#[derive(Clone)]
pub struct PresenceView {
    app: Arc<App>,
}

impl PresenceView {
    /// Presence changes across every tenant and channel, from now on. A
    /// receiver that falls more than 1024 changes behind loses the oldest:
    /// re-read [`PresenceView::channel_peers`] then.
    pub fn changes(&self) -> tokio::sync::broadcast::Receiver<PresenceChange> {
        self.app.hub.presence_changes()
    }

    /// The peers present in a channel of a tenant, by peer id.
    pub fn channel_peers(&self, tenant: &str, channel: &str) -> Vec<String> {
        self.app.hub.channel_peers(tenant, channel).into_iter().map(|p| p.peer_id).collect()
    }
}

/// How long a graceful shutdown waits for connections to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl Server {
    /// Validates the configuration, binds the listen address and starts
    /// serving, as a single node ([`LocalBackplane`]).
    pub async fn bind(config: ServerConfig) -> Result<Server, ServerError> {
        Self::bind_with(config, Arc::new(LocalBackplane)).await
    }

    /// [`Server::bind`] with the node's connections reaching the rest of a
    /// deployment through `backplane` (which delivers back through
    /// [`Server::ingress`]).
    pub async fn bind_with(config: ServerConfig, backplane: Arc<dyn Backplane>) -> Result<Server, ServerError> {
        config.validate()?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Bind { addr: config.listen, source })?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind { addr: config.listen, source })?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let config = Arc::new(config);
        let app = Arc::new(App {
            auth: Authenticator::new(config.clone()),
            hub: Arc::new(Hub::new(&config.limits, backplane)),
            ip_limiter: Mutex::new(IpConnectionLimiter::new(
                config.limits.connections_per_ip_per_minute,
                !config.limits.rate_limit_loopback,
            )),
            shutdown: shutdown_rx.clone(),
            started: Instant::now(),
            web: web::Assets::load(&config.web),
            config,
        });
        let router = router(app.clone());
        let mut stop = shutdown_rx;
        // Realtime traffic: no Nagle delay on small frames.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY");
            }
        });
        let task = tokio::spawn(async move {
            let service = router.into_make_service_with_connect_info::<SocketAddr>();
            let serve = axum::serve(listener, service).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "server stopped with an error");
            }
        });
        info!(%local_addr, "messaging service listening");
        Ok(Server { app, local_addr, shutdown_tx, task })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A view of who is where, for in-process supervisors (`metered serve
    /// --agent`); it outlives nothing: once the server is shut down it sees
    /// empty channels.
    pub fn presence(&self) -> PresenceView {
        PresenceView { app: self.app.clone() }
    }

    /// Where a backplane delivers what other nodes publish, send and kick.
    pub fn ingress(&self) -> HubIngress {
        HubIngress { hub: self.app.hub.clone() }
    }

    /// The server's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.app.hub.metrics
    }

    /// Graceful shutdown: every connection gets `going_away` and close 1001; waits
    /// (bounded) for them to finish.
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while self.app.hub.metrics.connections_current.load(std::sync::atomic::Ordering::Relaxed) > 0
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, self.task).await;
    }

    /// Serves until SIGINT or SIGTERM, then shuts down gracefully.
    pub async fn run_until_signal(self) {
        wait_for_signal().await;
        info!("signal received: shutting down");
        self.shutdown().await;
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1", get(websocket))
        .route("/v1/tokens", post(rest::create_token))
        .route("/v1/channels/{channel}/peers", get(rest::channel_peers))
        .route("/v1/channels/{channel}/publish", post(rest::publish))
        .route("/v1/peers/{peer}", delete(rest::kick))
        .route("/v1/usage", get(rest::usage))
        .route("/metrics", get(prometheus))
        .route("/healthz", get(|| async { "ok" }))
        .merge(web::routes(&app.config.web))
        .fallback(rest::not_found)
        .with_state(app)
}

async fn prometheus(State(app): State<Arc<App>>) -> String {
    app.hub.metrics.render_prometheus()
}

fn credential(query: Option<&str>) -> Credential {
    let mut found = Credential::None;
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*k {
            "token" => return Credential::Token(v.into_owned()),
            "key" => found = Credential::Key(v.into_owned()),
            _ => {}
        }
    }
    found
}

async fn websocket(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let ip: IpAddr = addr.ip().to_canonical();
    if !app.ip_limiter.lock().allow(ip, Instant::now()) {
        app.hub.metrics.connections_refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return (StatusCode::TOO_MANY_REQUESTS, "too many connection attempts from this address").into_response();
    }
    if *app.shutdown.borrow() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    let credential = credential(query.as_deref());
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_owned);
    // Read frames up to well past the limit so an oversized one is answered with
    // a clean close 1009 (see `connection::on_text`); beyond this read cap the
    // transport errors and the connection is dropped.
    let read_cap = app.config.limits.max_frame_bytes.saturating_mul(4).max(1 << 20);
    // tungstenite zero-fills `read_buffer_size` bytes on every read attempt, and
    // the loop attempts one after every batch it writes: 1 KiB (a chat-sized
    // frame) keeps that cheap and saves 3 KiB per idle connection; bigger
    // frames are read in 1 KiB steps (see benches/messaging.rs).
    ws.max_message_size(read_cap)
        .max_frame_size(read_cap)
        .read_buffer_size(1024)
        .write_buffer_size(16 * 1024)
        .on_upgrade(move |socket| connection::run(app, socket, credential, origin, addr))
}
