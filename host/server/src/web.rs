//! The browser room page: our HTML/JS (compiled in) and the official browser SDK
//! (read from disk at start, served at `/sdk/realtime.mjs`).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use serde_json::json;

use super::App;
use super::config::WebConfig;

const INDEX_HTML: &str = include_str!("../web/index.html");
const ROOM_JS: &str = include_str!("../web/room.js");

/// Files the page needs that are not compiled in.
pub(crate) struct Assets {
    browser_sdk: Option<Bytes>,
}

impl Assets {
    pub(crate) fn load(web: &WebConfig) -> Self {
        let browser_sdk = web.browser_sdk.as_ref().and_then(|path| match std::fs::read(path) {
            Ok(bytes) => Some(Bytes::from(bytes)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "browser SDK not readable; the room page will not work");
                None
            }
        });
        Self { browser_sdk }
    }
}

pub(crate) fn routes(web: &WebConfig) -> Router<Arc<App>> {
    if !web.enabled {
        return Router::new();
    }
    Router::new()
        .route("/", get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX_HTML) }))
        .route("/room.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], ROOM_JS) }))
        .route("/sdk/realtime.mjs", get(browser_sdk))
        .route("/room-config.json", get(room_config))
}

async fn browser_sdk(State(app): State<Arc<App>>) -> Response {
    match &app.web.browser_sdk {
        Some(js) => ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], js.clone()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "the browser SDK is not configured: set [web] browser_sdk (scripts/setup installs it into .local/node)",
        )
            .into_response(),
    }
}

async fn room_config(State(app): State<Arc<App>>) -> Response {
    axum::Json(json!({ "publishableKey": app.config.web.publishable_key })).into_response()
}
