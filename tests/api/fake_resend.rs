//! A fake Resend API: `POST /emails` as Resend takes it (JSON, bearer key,
//! `Idempotency-Key`), answering `{"id": ...}` or Resend's error shape. It
//! records every request, answers a repeated idempotency key with the first
//! answer (as Resend does), and can be told to fail the next requests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

pub const API_KEY: &str = "re_test_fake_0123456789";
pub const FROM: &str = "Maestro Hub <hello@maestrohub.example>";

#[derive(Debug, Clone)]
pub struct Sent {
    pub key: Option<String>,
    pub authorization: Option<String>,
    pub body: Value,
    /// Resend accepted it as a new email (not a failure, not a replay).
    pub delivered: bool,
}

#[derive(Default)]
struct Inner {
    requests: Vec<Sent>,
    seen: HashMap<String, String>,
    failures: Vec<(u16, usize)>,
    next: u64,
}

#[derive(Clone)]
pub struct FakeResend {
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeResend {
    pub async fn start() -> FakeResend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = FakeResend {
            base: format!("http://{}", listener.local_addr().unwrap()),
            inner: Arc::default(),
        };
        let router = Router::new()
            .route("/emails", post(send))
            .with_state(fake.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        fake
    }

    pub fn configure(&self, a: &mut maestro_hub::config::SettingsArgs) {
        a.resend_api_key = Some(API_KEY.into());
        a.resend_base_url = self.base.clone();
        a.email_from = Some(FROM.into());
        a.resend_rate_limit = Some(1000);
    }

    /// The next `times` requests answer `status`.
    pub fn fail(&self, status: u16, times: usize) {
        self.inner.lock().unwrap().failures.push((status, times));
    }

    pub fn clear_failures(&self) {
        self.inner.lock().unwrap().failures.clear();
    }

    pub fn requests(&self) -> Vec<Sent> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// Emails delivered to `to` (each once), oldest first.
    pub fn delivered_to(&self, to: &str) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|s| s.delivered && s.body["to"][0].as_str() == Some(to))
            .map(|s| s.body)
            .collect()
    }

    pub fn delivered(&self) -> Vec<Sent> {
        self.requests()
            .into_iter()
            .filter(|s| s.delivered)
            .collect()
    }
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn send(State(fake): State<FakeResend>, headers: HeaderMap, body: String) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let key = header(&headers, "idempotency-key");
    let mut inner = fake.inner.lock().unwrap();
    let mut sent = Sent {
        key: key.clone(),
        authorization: header(&headers, "authorization"),
        body,
        delivered: false,
    };
    if let Some(slot) = inner.failures.iter_mut().find(|(_, n)| *n > 0) {
        slot.1 -= 1;
        let status = slot.0;
        inner.requests.push(sent);
        let name = if status >= 500 {
            "internal_server_error"
        } else {
            "validation_error"
        };
        return (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", "application/json")],
            json!({ "statusCode": status, "message": "injected failure", "name": name })
                .to_string(),
        )
            .into_response();
    }
    if let Some(k) = &key
        && let Some(id) = inner.seen.get(k).cloned()
    {
        inner.requests.push(sent);
        return axum::Json(json!({ "id": id })).into_response();
    }
    inner.next += 1;
    let id = format!("email_{:06}", inner.next);
    if let Some(k) = key {
        inner.seen.insert(k, id.clone());
    }
    sent.delivered = true;
    inner.requests.push(sent);
    axum::Json(json!({ "id": id })).into_response()
}
