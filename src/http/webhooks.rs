//! `POST /webhooks/stripe`: the signature is checked on the raw body
//! before anything is parsed; a verified event is applied through the
//! domain with its id, in the transaction of its effect. Answers: 200 for
//! an event applied, already applied or not used; 400 for a missing, bad
//! or stale signature (and for a signed event this build cannot read, so
//! Stripe retries it and shows it as failing); 500 when applying failed
//! (Stripe retries). The body is never logged.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::domain::payment::events;
use crate::http::graphql::error_body;
use crate::integrations::stripe::{self, Rejected};
use crate::state::AppState;

fn refused(message: &str) -> Response {
    error_body(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
}

pub async fn stripe(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let settings = &state.settings;
    let secrets: Vec<String> = [
        settings.stripe_webhook_secret.as_ref(),
        settings.stripe_connect_webhook_secret.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|s| String::from_utf8_lossy(s.expose()).into_owned())
    .collect();
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let Ok(payload) = std::str::from_utf8(&body) else {
        return refused("the body is not UTF-8");
    };
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    let verified = match stripe::verify(&secrets, payload, signature) {
        Ok(v) => v,
        Err(Rejected::MissingSignature) => {
            state.metrics.webhook("rejected");
            return refused("missing or malformed Stripe-Signature header");
        }
        Err(Rejected::BadSignature) => {
            state.metrics.webhook("rejected");
            tracing::warn!("a webhook with a bad or stale signature was refused");
            return refused("the signature does not match or is too old");
        }
        Err(Rejected::Unreadable(why)) => {
            state.metrics.webhook("unreadable");
            tracing::error!(error = %why, "a signed Stripe event could not be read");
            return refused("the event could not be read");
        }
    };
    match events::apply(&state.domain, &verified.id, &verified.kind, verified.event).await {
        Ok(outcome) => {
            let label = match outcome {
                events::Applied::Done => "applied",
                events::Applied::Duplicate => "duplicate",
                events::Applied::Ignored => "ignored",
            };
            state.metrics.webhook(label);
            tracing::info!(event = %verified.id, kind = %verified.kind, outcome = label, "stripe webhook");
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"received":true}"#,
            )
                .into_response()
        }
        Err(e) => {
            state.metrics.webhook("failed");
            tracing::error!(event = %verified.id, kind = %verified.kind, error = ?e, "stripe webhook failed; Stripe will retry");
            error_body(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_SERVER_ERROR",
                "internal error",
            )
        }
    }
}
