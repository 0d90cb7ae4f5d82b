//! The development payment provider's pages: checkout, a plain form whose
//! button completes the payment, and payout onboarding. Mounted only with the development provider
//! (never in production).

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::domain::payment::events::{self, Applied, ProviderEvent};
use crate::domain::payment::{self, PaymentStatus};
use crate::error::AppError;
use crate::state::AppState;

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The form posts to this page itself and nothing else runs.
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'; form-action 'self'; frame-ancestors 'none'"),
        ],
        format!("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Maestro Hub test checkout</title></head><body>{body}</body></html>"),
    )
        .into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub async fn page(State(state): State<AppState>, Path(payment_id): Path<String>) -> Response {
    let payment = match payment::find(&state.domain.db, &payment_id).await {
        Ok(p) => p,
        Err(AppError::NotFound(_)) => {
            return html(StatusCode::NOT_FOUND, "<h1>No such payment</h1>".into());
        }
        Err(e) => {
            tracing::error!(error = ?e, "dev checkout page failed");
            return html(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<h1>Something went wrong</h1>".into(),
            );
        }
    };
    let amount = format!(
        "{}.{:02} {}",
        payment.amount_minor / 100,
        payment.amount_minor % 100,
        escape(&payment.currency)
    );
    if PaymentStatus::of(&payment) != PaymentStatus::Pending {
        return html(
            StatusCode::OK,
            format!(
                "<h1>Payment {}</h1><p>{amount}</p>",
                escape(&payment.status.to_lowercase())
            ),
        );
    }
    html(
        StatusCode::OK,
        format!(
            "<h1>Test checkout</h1><p>Development payment provider: no money moves.</p>\
             <p>Amount: <strong>{amount}</strong></p>\
             <form method=\"post\" action=\"/dev/checkout/{id}\"><button type=\"submit\">Pay</button></form>",
            id = escape(&payment.id)
        ),
    )
}

pub async fn pay(State(state): State<AppState>, Path(payment_id): Path<String>) -> Response {
    match payment::complete(&state.domain, &payment_id).await {
        Ok(true) => html(
            StatusCode::OK,
            "<h1>Paid</h1><p>You can return to the app.</p>".into(),
        ),
        Ok(false) => html(StatusCode::OK, "<h1>Already processed</h1>".into()),
        Err(AppError::NotFound(_)) => {
            html(StatusCode::NOT_FOUND, "<h1>No such payment</h1>".into())
        }
        Err(e) => {
            tracing::error!(error = ?e, "dev checkout failed");
            html(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<h1>Something went wrong</h1>".into(),
            )
        }
    }
}

/// The development provider's payout onboarding: one button that reports
/// the account ready, through the same path as a provider's report.
pub async fn payouts_page(Path(account): Path<String>) -> Response {
    html(
        StatusCode::OK,
        format!(
            "<h1>Test payout onboarding</h1><p>Development payment provider: no money moves.</p>\
             <form method=\"post\" action=\"/dev/payouts/{a}\"><button type=\"submit\">Enable payouts</button></form>",
            a = escape(&account)
        ),
    )
}

pub async fn payouts_enable(
    State(state): State<AppState>,
    Path(account): Path<String>,
) -> Response {
    if account.len() > 100 {
        return html(StatusCode::NOT_FOUND, "<h1>No such account</h1>".into());
    }
    let event = ProviderEvent::PayoutAccount {
        account: account.clone(),
        charges_enabled: true,
        payouts_enabled: true,
        at: chrono::Utc::now().timestamp(),
    };
    let key = format!("dev:{account}:{}", uuid::Uuid::now_v7());
    match events::apply(&state.domain, &key, "account.updated", event).await {
        Ok(Applied::Done) => html(
            StatusCode::OK,
            "<h1>Payouts enabled</h1><p>You can return to the app.</p>".into(),
        ),
        Ok(_) => html(StatusCode::NOT_FOUND, "<h1>No such account</h1>".into()),
        Err(e) => {
            tracing::error!(error = ?e, "dev payout onboarding failed");
            html(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<h1>Something went wrong</h1>".into(),
            )
        }
    }
}

/// Development without an email key: the last emails the server "sent"
/// (recipient, subject, text, link), newest first, as JSON; `?to=` filters
/// by recipient. Answers only this machine (the links hold tokens).
pub async fn mailbox(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
    headers: axum::http::HeaderMap,
) -> Response {
    // This machine only: behind a proxy (`TRUST_PROXY`), the client it
    // forwards for must be this machine too.
    let client =
        crate::http::graphql::client_ip(&headers, Some(peer.ip()), state.settings.trust_proxy);
    let local = peer.ip().is_loopback() && client.is_some_and(|ip| ip.is_loopback());
    let Some(mailbox) = state.dev_mailbox.as_ref().filter(|_| local) else {
        return crate::http::graphql::error_body(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "no such route",
        );
    };
    let to = q.get("to").map(|t| t.trim().to_lowercase());
    let emails: Vec<serde_json::Value> = mailbox
        .recent()
        .into_iter()
        .filter(|e| {
            to.as_deref()
                .is_none_or(|t| e["to"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(t)))
        })
        .collect();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "emails": emails }).to_string(),
    )
        .into_response()
}
