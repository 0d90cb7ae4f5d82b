//! Liveness, readiness and metrics endpoints.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::config::MainPortMetrics;
use crate::http::graphql::error_body;

use crate::state::AppState;

/// The process is up.
pub async fn healthz() -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
}

/// The database answers within two seconds; otherwise 503 so a load
/// balancer takes this instance out of rotation. Redis, when configured,
/// is reported (`"redis": "degraded"` while it does not answer) but never
/// fails readiness: every instance would leave the balancer at once,
/// while each can serve with its own limits and local events.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let db = async {
        matches!(
            tokio::time::timeout(Duration::from_secs(2), state.domain.db.ping()).await,
            Ok(Ok(()))
        )
    };
    let redis = async {
        match &state.redis {
            Some(link) => Some(link.healthy().await),
            None => None,
        }
    };
    let (ok, redis) = tokio::join!(db, redis);
    let mut body = if ok {
        serde_json::json!({ "status": "ready" })
    } else {
        serde_json::json!({ "status": "database unavailable" })
    };
    if let Some(up) = redis {
        body["redis"] = if up { "ok" } else { "degraded" }.into();
    }
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

/// `/metrics` on the main port: only with `METRICS_TOKEN` as a bearer
/// token when one is set; otherwise not there when a separate listener
/// serves it (`METRICS_ADDR`) or in production; open in development.
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match state.settings.metrics_on_main_port() {
        MainPortMetrics::WithToken(token) => {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default();
            if !same_secret(given.as_bytes(), token.expose()) {
                let mut res = error_body(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHENTICATED",
                    "metrics need the metrics token",
                );
                res.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return res;
            }
        }
        MainPortMetrics::Hidden => {
            return error_body(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route");
        }
        MainPortMetrics::Open => {}
    }
    scrape(&state).await
}

/// `/metrics` on the scraper's own listener (`METRICS_ADDR`).
pub async fn metrics_open(State(state): State<AppState>) -> Response {
    scrape(&state).await
}

async fn scrape(state: &AppState) -> Response {
    match crate::domain::outbox::count_by_status(&state.domain.db).await {
        Ok(counts) => state.metrics.set_outbox(&counts),
        Err(e) => tracing::warn!(error = ?e, "outbox figures unavailable for /metrics"),
    }
    if let Some((shared, fallbacks)) = state.limiter.shared_state() {
        state.metrics.set_shared_limits(shared, fallbacks);
    }
    let text = state
        .metrics
        .render(
            &state.domain.db,
            state.statements.load(std::sync::atomic::Ordering::Relaxed),
            &state.domain.listings,
        )
        .await;
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text,
    )
        .into_response()
}

/// Compares digests, so the time taken says nothing about the token.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    Sha256::digest(given) == Sha256::digest(expected)
}
