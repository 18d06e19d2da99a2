//! One WebSocket connection: authentication, the welcome, the request loop, the
//! outbound queue, heartbeats, idle and token-expiry deadlines, and shutdown.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tracing::{Instrument, debug, info_span, warn};

use super::App;
use super::auth::{Action, AuthError, Grant};
use super::hub::{Member, Tenant, frame};
use super::keepalive::{Due, Keepalive};
use super::rate::TokenBucket;
use metered_protocol::{ClientRequest, CloseCode, ErrorCode, FrameError, ServerFrame, is_reserved_channel};

/// The credential from the connect URL's query string.
pub(crate) enum Credential {
    Key(String),
    Token(String),
    None,
}

/// How long to wait for the peer's close reply after sending a close frame.
const CLOSE_LINGER: Duration = Duration::from_secs(1);
/// Frames written per flush when the queue is busy.
const WRITE_BATCH: usize = 256;

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Runs a connection to completion.
pub(crate) async fn run(
    app: Arc<App>,
    socket: WebSocket,
    credential: Credential,
    origin: Option<String>,
    addr: SocketAddr,
) {
    let mut io = Io { ws: socket };
    let grant = match authenticate(&app, credential) {
        Ok(g) => g,
        Err(e) => {
            app.hub.metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
            let code = match e {
                AuthError::Expired => CloseCode::TokenExpired,
                AuthError::ChannelNotAuthorized => CloseCode::ChannelNotAuthorized,
                _ => CloseCode::InvalidToken,
            };
            debug!(%addr, error = %e, "refused connection");
            io.close(code, &e.to_string()).await;
            return;
        }
    };
    if let Some(allowed) = &grant.allowed_origins
        && !origin.as_deref().is_some_and(|o| allowed.iter().any(|a| a.eq_ignore_ascii_case(o)))
    {
        app.hub.metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
        io.close(CloseCode::PolicyViolation, "origin not allowed").await;
        return;
    }
    let (handle, rx) = app.hub.new_connection();
    let span = info_span!("conn", tenant = %grant.tenant, peer = %grant.peer_id, conn = handle.id, %addr);
    let tenant = match app.hub.register(&grant.tenant, &grant.peer_id, &handle) {
        Ok(t) => t,
        Err(code) => {
            app.hub.metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
            io.close(code, "over the concurrent connection limit").await;
            return;
        }
    };
    let member = Member {
        peer_id: grant.peer_id.clone(),
        peer_metadata: grant.peer_metadata.clone(),
        handle,
        wants_presence: grant.actions.allows(Action::Presence),
    };
    let mut conn = Connection {
        bucket: TokenBucket::new(
            app.config.limits.messages_per_second,
            app.config.limits.message_burst,
            Instant::now(),
        ),
        app: app.clone(),
        grant,
        tenant,
        member,
        channels: HashSet::new(),
    };
    async move {
        debug!("connected");
        let reason = conn.serve(&mut io, rx).await;
        conn.app.hub.unregister(&conn.tenant, &conn.member, conn.channels.iter());
        debug!(?reason, "disconnected");
    }
    .instrument(span)
    .await;
}

fn authenticate(app: &App, credential: Credential) -> Result<Grant, AuthError> {
    match credential {
        Credential::Key(k) => app.auth.publishable_key(&k),
        Credential::Token(t) => app.auth.token(&t, now_ms() / 1000),
        Credential::None => Err(AuthError::Missing),
    }
}

/// The socket, unsplit: one task reads and writes it (no lock between halves).
struct Io {
    ws: WebSocket,
}

impl Io {
    /// Sends a close frame, then lingers briefly for the peer's close reply.
    async fn close(&mut self, code: CloseCode, reason: &str) {
        let reason: String = reason.chars().take(100).collect();
        let frame = CloseFrame { code: code.code(), reason: Utf8Bytes::from(reason) };
        if self.ws.send(Message::Close(Some(frame))).await.is_ok() {
            let _ = tokio::time::timeout(CLOSE_LINGER, async {
                while let Some(Ok(m)) = self.ws.recv().await {
                    if matches!(m, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
    }
}

#[derive(Debug)]
enum End {
    ClientClosed,
    Closed(CloseCode, &'static str),
    TransportError,
}

struct Connection {
    app: Arc<App>,
    grant: Grant,
    tenant: Arc<Tenant>,
    member: Member,
    channels: HashSet<Arc<str>>,
    bucket: TokenBucket,
}

impl Connection {
    async fn serve(&mut self, io: &mut Io, mut rx: mpsc::Receiver<Utf8Bytes>) -> End {
        let app = self.app.clone();
        let limits = &app.config.limits;
        let welcome = ServerFrame::Welcome {
            peer_id: self.grant.peer_id.to_string(),
            expires_at: self.grant.expires_at_ms,
            server_time: now_ms(),
            max_message_size: limits.max_frame_bytes as u64,
            metadata: self.welcome_metadata(),
        };
        if io.ws.send(Message::Text(frame(&welcome))).await.is_err() {
            return End::TransportError;
        }
        // tokio's clock (paused time in tests moves it), as a std instant.
        let clock = || tokio::time::Instant::now().into_std();
        let token_deadline = self
            .grant
            .expires_at_ms
            .map(|exp| clock() + Duration::from_millis(exp.saturating_sub(now_ms()).max(0) as u64));
        let mut keepalive = Keepalive::new(clock(), limits.ping_interval(), limits.idle_timeout(), token_deadline);
        let timer = tokio::time::sleep_until(keepalive.next_deadline().into());
        tokio::pin!(timer);
        let mut shutdown = self.app.shutdown.clone();
        let control = self.member.handle.control.clone();
        // Created once, not on every turn of the loop: re-registering with the
        // Notify and the watch channel per outbound frame is measurable at fan-out.
        let closing = async {
            tokio::select! {
                biased;
                (code, reason) = control.requested() => Some((code, reason)),
                _ = shutdown.changed() => None,
            }
        };
        tokio::pin!(closing);

        let end = loop {
            tokio::select! {
                biased;
                closing = &mut closing => match closing {
                    Some((code, reason)) => break End::Closed(code, reason),
                    None => {
                        let retry = ServerFrame::GoingAway { retry_after_ms: limits.going_away_retry_ms };
                        let _ = io.ws.send(Message::Text(frame(&retry))).await;
                        break End::Closed(CloseCode::GoingAway, "server shutting down");
                    }
                },
                Some(first) = rx.recv() => {
                    if write_batch(io, first, &mut rx).await.is_err() {
                        break End::TransportError;
                    }
                }
                inbound = io.ws.recv() => {
                    keepalive.inbound(clock());
                    match inbound {
                        None | Some(Ok(Message::Close(_))) => break End::ClientClosed,
                        Some(Ok(Message::Text(text))) => {
                            if let Some(end) = self.on_text(&text) {
                                break end;
                            }
                        }
                        Some(Ok(Message::Binary(_))) => {
                            if let Some(end) = self.charge_rate() {
                                break end;
                            }
                            self.reply_error(&FrameError {
                                code: ErrorCode::MalformedMessage,
                                request_id: None,
                                message: "binary frames are not supported; send JSON text".into(),
                            });
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        Some(Err(e)) => {
                            if is_too_big(e) {
                                break End::Closed(CloseCode::MessageTooBig, "frame exceeds maxMessageSize");
                            }
                            break End::TransportError;
                        }
                    }
                }
                () = &mut timer => {
                    let now = clock();
                    match keepalive.poll(now) {
                        Due::Close(code, reason) => break End::Closed(code, reason),
                        Due::Ping => {
                            if io.ws.send(Message::Ping(Default::default())).await.is_err() {
                                break End::TransportError;
                            }
                        }
                        Due::Nothing => {}
                    }
                    let next = keepalive.next_deadline().max(now + Duration::from_millis(1));
                    timer.as_mut().reset(next.into());
                }
            }
        };
        if let End::Closed(code, reason) = &end {
            // Flush what is queued (acks, a final error) before closing.
            while let Ok(f) = rx.try_recv() {
                if io.ws.feed(Message::Text(f)).await.is_err() {
                    break;
                }
            }
            io.close(*code, reason).await;
        }
        end
    }

    fn welcome_metadata(&self) -> Option<Map<String, Value>> {
        let mut meta = self.grant.metadata.clone();
        if let Some(ice) = self.app.config.ice_servers_json() {
            let m = meta.get_or_insert_with(Map::new);
            m.entry("iceServers").or_insert(ice);
        }
        meta
    }

    fn charge_rate(&mut self) -> Option<End> {
        if self.bucket.try_take(Instant::now()) {
            None
        } else {
            self.app.hub.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
            warn!("over the message rate");
            Some(End::Closed(CloseCode::OverMessageRate, "over the message rate"))
        }
    }

    fn deliver(&self, f: &ServerFrame) {
        self.member.handle.deliver(frame(f), &self.app.hub.metrics);
    }

    fn reply_error(&self, e: &FrameError) {
        self.app.hub.metrics.errors_sent.fetch_add(1, Ordering::Relaxed);
        self.deliver(&ServerFrame::Error {
            code: e.code.as_str().to_owned(),
            request_id: e.request_id.clone(),
            message: Some(e.message.to_string()),
        });
    }

    fn ack(&self, request_id: Option<&str>) {
        if let Some(id) = request_id {
            self.deliver(&ServerFrame::Ack { request_id: id.to_owned() });
        }
    }

    fn on_text(&mut self, text: &str) -> Option<End> {
        if text.len() > self.app.config.limits.max_frame_bytes {
            return Some(End::Closed(CloseCode::MessageTooBig, "frame exceeds maxMessageSize"));
        }
        if let Some(end) = self.charge_rate() {
            return Some(end);
        }
        match ClientRequest::parse(text) {
            Ok((request_id, request)) => {
                if let Err(code) = self.handle(request_id.as_deref(), request) {
                    let e = FrameError {
                        code,
                        request_id: request_id.map(|r| r.into_owned()),
                        message: code_message(code).into(),
                    };
                    self.reply_error(&e);
                }
            }
            Err(e) => self.reply_error(&e),
        }
        None
    }

    fn check_channel(&self, channel: &str, action: Action) -> Result<(), ErrorCode> {
        if is_reserved_channel(channel) {
            return Err(ErrorCode::ChannelReserved);
        }
        if !self.grant.actions.allows(action) {
            return Err(ErrorCode::ActionNotPermitted);
        }
        if !self.grant.covers_channel(channel) {
            return Err(ErrorCode::ChannelNotAuthorized);
        }
        Ok(())
    }

    fn handle(&mut self, request_id: Option<&str>, request: ClientRequest<'_>) -> Result<(), ErrorCode> {
        let hub = &self.app.hub;
        match request {
            ClientRequest::Subscribe { channel, include_sender_metadata } => {
                self.check_channel(&channel, Action::Subscribe)?;
                let already = self.channels.contains(&*channel);
                if !already && self.channels.len() >= self.app.config.limits.max_channels_per_connection {
                    return Err(ErrorCode::ChannelLimitExceeded);
                }
                let ack = request_id.map(|id| frame(&ServerFrame::Ack { request_id: id.to_owned() }));
                hub.subscribe(&self.tenant, &self.member, &channel, include_sender_metadata, ack);
                if !already {
                    self.channels.insert(Arc::from(&*channel));
                }
                debug!(channel = %channel, "subscribed");
            }
            ClientRequest::Unsubscribe { channel } => {
                if is_reserved_channel(&channel) {
                    return Err(ErrorCode::ChannelReserved);
                }
                if self.channels.remove(&*channel) {
                    hub.unsubscribe(&self.tenant, &self.member, &channel);
                }
                self.ack(request_id);
            }
            ClientRequest::Publish { channel, data } => {
                self.check_channel(&channel, Action::Publish)?;
                hub.charge_quota(&self.tenant, Instant::now())?;
                hub.publish(&self.tenant, &self.member, &channel, data);
                self.ack(request_id);
            }
            ClientRequest::Send { to, data } => {
                if !self.grant.actions.allows(Action::Send) {
                    return Err(ErrorCode::ActionNotPermitted);
                }
                hub.charge_quota(&self.tenant, Instant::now())?;
                hub.send(&self.tenant, &self.member, &to, data)?;
                self.ack(request_id);
            }
            ClientRequest::Ping => {
                self.deliver(&ServerFrame::Pong);
                self.ack(request_id);
            }
        }
        Ok(())
    }
}

fn code_message(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::ChannelReserved => "channel uses a reserved prefix",
        ErrorCode::ActionNotPermitted => "the credential does not grant this action",
        ErrorCode::ChannelNotAuthorized => "the credential does not cover this channel",
        ErrorCode::ChannelLimitExceeded => "too many channels on this connection",
        ErrorCode::PeerNotFound => "no connected peer has that id",
        ErrorCode::OverMessageQuota => "message quota for the period is used up",
        _ => "request refused",
    }
}

async fn write_batch(io: &mut Io, first: Utf8Bytes, rx: &mut mpsc::Receiver<Utf8Bytes>) -> Result<(), axum::Error> {
    io.ws.feed(Message::Text(first)).await?;
    let mut n = 1;
    while n < WRITE_BATCH {
        match rx.try_recv() {
            Ok(f) => {
                io.ws.feed(Message::Text(f)).await?;
                n += 1;
            }
            Err(_) => break,
        }
    }
    io.ws.flush().await
}

fn is_too_big(e: axum::Error) -> bool {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let inner = e.into_inner();
    matches!(inner.downcast_ref::<WsError>(), Some(WsError::Capacity(_)))
}
