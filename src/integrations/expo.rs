//! Push notifications through Expo's push service
//! (`POST /--/api/v2/push/send`, `POST /--/api/v2/push/getReceipts`).
//!
//! A small client on the project's reqwest rather than the
//! `expo_push_notification_client` crate: that crate takes another base
//! URL, but it reports a refused request only as text (a 429 or a 503
//! cannot be told from a 400 without parsing its message), drops the
//! tickets of the requests it already sent when a later one of its
//! batches fails, and builds its own HTTP client without a timeout. The
//! outbox's rules (retry a 5xx, a 429 or a refused access token, never
//! another 4xx; exactly one record
//! per request; a bounded wait) need all three.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use crate::domain::push::{PushError, PushMessage, PushOutcome, PushSender};

pub struct ExpoPush {
    http: reqwest::Client,
    base: String,
    access_token: Option<String>,
}

impl ExpoPush {
    pub fn new(
        base_url: &str,
        access_token: Option<String>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("the Expo push client could not be built: {e}"))?;
        Ok(ExpoPush {
            http,
            base: base_url.trim_end_matches('/').to_string(),
            access_token,
        })
    }

    async fn post(&self, path: &str, body: &serde_json::Value) -> Result<Vec<u8>, PushError> {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some(token) = &self.access_token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| PushError {
            message: format!("Expo could not be reached: {}", without_url(&e)),
            retryable: true,
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| PushError {
            message: format!("Expo's answer was cut short: {}", without_url(&e)),
            retryable: true,
        })?;
        if !status.is_success() {
            // Expo explains a refused request in `errors`.
            let detail = serde_json::from_slice::<Errors>(&bytes)
                .ok()
                .and_then(|e| e.errors.into_iter().next())
                .map(|e| format!(" {}: {}", e.code, crate::domain::push::scrub(&e.message)))
                .unwrap_or_default();
            // A refused access token is this server's configuration, not
            // the messages': they are kept and retried until it is fixed.
            let unauthorised = matches!(status.as_u16(), 401 | 403);
            if unauthorised {
                tracing::error!(
                    status = status.as_u16(),
                    "Expo refused the push request: check EXPO_ACCESS_TOKEN"
                );
            }
            return Err(PushError {
                message: format!("Expo answered {}{detail}", status.as_u16())
                    .chars()
                    .take(500)
                    .collect(),
                retryable: status.is_server_error()
                    || status == http::StatusCode::TOO_MANY_REQUESTS
                    || unauthorised,
            });
        }
        Ok(bytes.to_vec())
    }
}

/// reqwest's error text without the URL (it is only the configured base).
fn without_url(e: &reqwest::Error) -> String {
    let mut e = e.to_string();
    if let Some(i) = e.find(" for url") {
        e.truncate(i);
    }
    e
}

#[derive(Deserialize)]
struct Errors {
    errors: Vec<ErrorItem>,
}

#[derive(Deserialize)]
struct ErrorItem {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// A ticket or a receipt: `{"status": "ok", "id"?}` or
/// `{"status": "error", "message", "details": {"error"}}`.
#[derive(Deserialize)]
struct Outcome {
    status: String,
    id: Option<String>,
    #[serde(default)]
    message: String,
    details: Option<Details>,
}

#[derive(Deserialize)]
struct Details {
    error: Option<String>,
}

impl From<Outcome> for PushOutcome {
    fn from(o: Outcome) -> Self {
        if o.status == "ok" {
            PushOutcome::Ok(o.id)
        } else {
            PushOutcome::Failed {
                message: o.message.chars().take(300).collect(),
                error: o.details.and_then(|d| d.error),
            }
        }
    }
}

#[derive(Deserialize)]
struct Tickets {
    data: Vec<Outcome>,
}

#[derive(Deserialize)]
struct Receipts {
    data: HashMap<String, Outcome>,
}

fn unreadable(e: serde_json::Error) -> PushError {
    PushError {
        message: format!("Expo's answer could not be read: {e}"),
        // It was accepted (2xx): sending again could push twice.
        retryable: false,
    }
}

#[async_trait::async_trait]
impl PushSender for ExpoPush {
    async fn send(&self, messages: &[PushMessage]) -> Result<Vec<PushOutcome>, PushError> {
        let body: Vec<serde_json::Value> = messages
            .iter()
            .map(|m| {
                let mut v = serde_json::json!({
                    "to": m.to,
                    "title": m.title,
                    "body": m.body,
                    "data": m.data,
                    "sound": "default",
                    "priority": "high",
                });
                if let Some(ttl) = m.ttl_seconds {
                    v["ttl"] = ttl.into();
                }
                v
            })
            .collect();
        let bytes = self
            .post("/--/api/v2/push/send", &serde_json::Value::Array(body))
            .await?;
        let tickets: Tickets = serde_json::from_slice(&bytes).map_err(unreadable)?;
        Ok(tickets.data.into_iter().map(PushOutcome::from).collect())
    }

    async fn receipts(&self, ids: &[String]) -> Result<HashMap<String, PushOutcome>, PushError> {
        let bytes = self
            .post(
                "/--/api/v2/push/getReceipts",
                &serde_json::json!({ "ids": ids }),
            )
            .await?;
        let receipts: Receipts = serde_json::from_slice(&bytes).map_err(unreadable)?;
        Ok(receipts
            .data
            .into_iter()
            .map(|(id, o)| (id, o.into()))
            .collect())
    }
}
