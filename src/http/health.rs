//! Liveness, readiness and metrics endpoints.

use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

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
/// balancer takes this instance out of rotation.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let ok = matches!(
        tokio::time::timeout(Duration::from_secs(2), state.domain.db.ping()).await,
        Ok(Ok(()))
    );
    let (status, body) = if ok {
        (StatusCode::OK, r#"{"status":"ready"}"#)
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"status":"database unavailable"}"#,
        )
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body)
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    match crate::domain::outbox::count_by_status(&state.domain.db).await {
        Ok(counts) => state.metrics.set_outbox(&counts),
        Err(e) => tracing::warn!(error = ?e, "outbox figures unavailable for /metrics"),
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(
            &state.domain.db,
            state.statements.load(std::sync::atomic::Ordering::Relaxed),
            &state.domain.listings,
        ),
    )
}
