//! The REST control plane: tokens, channel peers, backend publish, admin kick,
//! usage. Authenticated with `Authorization: Bearer sk_id:sk_secret`.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, to_bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::App;
use super::auth::{Action, ChannelPattern, MintError, TokenRequest, mint_token};
use super::backplane::Origin;
use super::config::SecretKey;
use super::connection::now_ms;
use metered_protocol::{MAX_DATA_DEPTH, is_reserved_channel, nesting_depth, validate_channel};

/// A REST error: `{"error": code, "message": text}`.
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }
    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error": self.code, "message": self.message}))).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn authorize<'a>(app: &'a App, headers: &HeaderMap) -> Result<&'a SecretKey, ApiError> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| app.auth.rest_bearer(v)).ok_or_else(
        || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "use Authorization: Bearer <secret key id>:<secret>",
            )
        },
    )
}

async fn read_json<T: for<'de> Deserialize<'de>>(app: &App, body: Body) -> Result<T, ApiError> {
    let bytes = to_bytes(body, app.config.limits.max_rest_body_bytes).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("body exceeds {} bytes", app.config.limits.max_rest_body_bytes),
        )
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad(format!("invalid JSON body: {e}")))
}

fn check_channel(key: &SecretKey, channel: &str) -> Result<(), ApiError> {
    validate_channel(channel).map_err(|e| ApiError::bad(e.to_string()))?;
    if is_reserved_channel(channel) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "channel_reserved", "channel uses a reserved prefix"));
    }
    if !key.channel_patterns.iter().any(|p| p.matches(channel)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "channel_not_authorized",
            "the key does not cover this channel",
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TokenBody {
    peer_id: Option<String>,
    channels: Option<Vec<ChannelPattern>>,
    permissions: Option<Vec<Action>>,
    expires_in_sec: Option<u64>,
    metadata: Option<Map<String, Value>>,
    peer_metadata: Option<Map<String, Value>>,
}

pub(crate) async fn create_token(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> ApiResult {
    let key = authorize(&app, &headers)?;
    let body: TokenBody = read_json(&app, body).await?;
    let req = TokenRequest {
        peer_id: body.peer_id.ok_or_else(|| ApiError::bad("peerId is required"))?,
        channels: body.channels,
        permissions: body.permissions,
        expires_in_secs: body.expires_in_sec.unwrap_or(3600),
        metadata: body.metadata,
        peer_metadata: body.peer_metadata,
    };
    let (token, expires_at) = mint_token(key, &req, &app.config.limits, now_ms() / 1000).map_err(|e| match e {
        MintError::ChannelNotAuthorized => {
            ApiError::new(StatusCode::FORBIDDEN, "channel_not_authorized", e.to_string())
        }
        MintError::ActionNotPermitted => ApiError::new(StatusCode::FORBIDDEN, "action_not_permitted", e.to_string()),
        other => ApiError::bad(other.to_string()),
    })?;
    Ok(Json(json!({"token": token, "expiresAt": expires_at})).into_response())
}

pub(crate) async fn channel_peers(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(channel): Path<String>,
) -> ApiResult {
    let key = authorize(&app, &headers)?;
    check_channel(key, &channel)?;
    let peers = app.hub.channel_peers(&key.tenant, &channel);
    Ok(Json(json!({"channel": channel, "peers": peers})).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PublishBody {
    #[serde(default, deserialize_with = "present")]
    data: Option<Box<RawValue>>,
    from: Option<String>,
}

/// A present field is `Some`, even when its value is JSON `null` (as on the
/// WebSocket, `"data": null` is data; only a missing `data` is refused).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

pub(crate) async fn publish(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(channel): Path<String>,
    body: Body,
) -> ApiResult {
    let key = authorize(&app, &headers)?;
    check_channel(key, &channel)?;
    if !key.actions.contains(&Action::Publish) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "action_not_permitted", "the key does not grant publish"));
    }
    let body: PublishBody = read_json(&app, body).await?;
    let data = body.data.ok_or_else(|| ApiError::bad("data is required"))?;
    if nesting_depth(data.get()) > MAX_DATA_DEPTH {
        return Err(ApiError::bad(format!("data is nested deeper than {MAX_DATA_DEPTH} levels")));
    }
    let from = body.from.unwrap_or_else(|| "server".to_owned());
    metered_protocol::validate_peer_id(&from).map_err(|e| ApiError::bad(format!("from: {e}")))?;
    let from = Origin { peer_id: &from, peer_metadata: None };
    let delivered = app.hub.publish_external(&key.tenant, &channel, from, &data);
    Ok((StatusCode::ACCEPTED, Json(json!({"delivered": delivered}))).into_response())
}

pub(crate) async fn kick(State(app): State<Arc<App>>, headers: HeaderMap, Path(peer): Path<String>) -> ApiResult {
    let key = authorize(&app, &headers)?;
    let n = app.hub.kick(&key.tenant, &peer);
    if n == 0 {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "no connected peer has that id"));
    }
    Ok(Json(json!({"disconnected": n})).into_response())
}

pub(crate) async fn usage(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult {
    let key = authorize(&app, &headers)?;
    let (connections, peers, channels) = app.hub.tenant_usage(&key.tenant);
    let m = &app.hub.metrics;
    use std::sync::atomic::Ordering::Relaxed;
    Ok(Json(json!({
        "tenant": key.tenant,
        "live": {"connections": connections, "peers": peers, "channels": channels},
        "period": {
            "messagesUsed": app.hub.quota_used(&key.tenant),
            "messageQuota": app.config.limits.message_quota,
            "periodSecs": app.config.limits.quota_period_secs,
        },
        "node": {
            "uptimeSecs": app.started.elapsed().as_secs(),
            "connectionsTotal": m.connections_total.load(Relaxed),
            "messagesPublished": m.messages_published.load(Relaxed),
            "messagesDelivered": m.messages_delivered.load(Relaxed),
            "directs": m.directs.load(Relaxed),
            "slowConsumerDrops": m.slow_consumer_drops.load(Relaxed),
            "rateLimited": m.rate_limited.load(Relaxed),
        },
        "limits": app.config.limits,
    }))
    .into_response())
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}
