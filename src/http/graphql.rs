//! `POST /graphql`: parses the body, authenticates once, enforces the batch
//! limit and executes (`graphql::errors` gives every error its code).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use async_graphql::{BatchRequest, BatchResponse, Response as GqlResponse};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::domain::auth;
use crate::graphql::loaders::Loaders;
use crate::graphql::schema::MAX_BATCH;
use crate::graphql::{AuthState, RequestCtx};
use crate::http::router::HttpState;

/// The client's IP: the peer address, or with `TRUST_PROXY` the first
/// address in `X-Forwarded-For` (set by our own load balancer).
pub fn client_ip(headers: &HeaderMap, peer: Option<IpAddr>, trust_proxy: bool) -> Option<IpAddr> {
    if trust_proxy
        && let Some(ip) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
    {
        return Some(ip);
    }
    peer
}

/// Decides who is calling, once per HTTP request.
pub async fn auth_state(state: &crate::state::AppState, headers: &HeaderMap) -> AuthState {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return AuthState::Anonymous;
    };
    let Some(token) = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
    else {
        return AuthState::Invalid;
    };
    match auth::authenticate(&state.domain.db, &state.domain.auth, token).await {
        Ok(user) => AuthState::User(Box::new(user)),
        Err(crate::error::AppError::Unauthenticated(_)) => AuthState::Invalid,
        Err(err) => {
            tracing::error!(error = ?err, "authentication failed internally");
            AuthState::Invalid
        }
    }
}

pub fn error_body(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code } }]
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub async fn graphql(
    State(http): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !is_json {
        return error_body(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BAD_USER_INPUT",
            "send the request as application/json",
        );
    }
    let batch: BatchRequest = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(_) => {
            return error_body(
                StatusCode::BAD_REQUEST,
                "BAD_USER_INPUT",
                "the body is not a GraphQL request",
            );
        }
    };
    let count = match &batch {
        BatchRequest::Single(_) => 1,
        BatchRequest::Batch(v) => v.len(),
    };
    if count == 0 || count > MAX_BATCH {
        return error_body(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            &format!("a batch holds 1 to {MAX_BATCH} operations"),
        );
    }
    let state = &http.state;
    let ip = client_ip(&headers, Some(peer.ip()), state.settings.trust_proxy);
    // The HTTP-wide limit took one request; each further operation of a
    // batch costs as much as a request of its own.
    if let Some(ip) = ip
        && (1..count).any(|_| !(http.ip_budget)(ip))
    {
        return crate::http::middleware::too_many(1);
    }
    let ctx = RequestCtx {
        ip,
        auth: auth_state(state, &headers).await,
    };
    let names: Vec<Option<String>> = match &batch {
        BatchRequest::Single(r) => vec![r.operation_name.clone()],
        BatchRequest::Batch(v) => v.iter().map(|r| r.operation_name.clone()).collect(),
    };
    let started = Instant::now();
    let response = match batch {
        BatchRequest::Single(r) => BatchResponse::Single(
            http.schema
                .execute(
                    r.data(ctx)
                        .data(Loaders::new(&state.domain.db, &state.review_cache)),
                )
                .await,
        ),
        BatchRequest::Batch(requests) => {
            let mut out = Vec::with_capacity(requests.len());
            // One after another: a batch must not multiply a client's share
            // of the database pool.
            for r in requests {
                let r = r
                    .data(ctx.clone())
                    .data(Loaders::new(&state.domain.db, &state.review_cache));
                out.push(http.schema.execute(r).await);
            }
            BatchResponse::Batch(out)
        }
    };
    let elapsed = started.elapsed();
    let oks: Vec<bool> = match &response {
        BatchResponse::Single(r) => vec![r.is_ok()],
        BatchResponse::Batch(v) => v.iter().map(GqlResponse::is_ok).collect(),
    };
    for (name, ok) in names.iter().zip(oks) {
        state.metrics.observe(name.as_deref(), ok, elapsed);
    }
    match serde_json::to_vec(&response) {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(_) => error_body(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_SERVER_ERROR",
            "internal error",
        ),
    }
}
