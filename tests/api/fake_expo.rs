//! A fake Expo push service: `POST /--/api/v2/push/send` (an array of
//! messages, at most 100, answered with one ticket per message in order)
//! and `POST /--/api/v2/push/getReceipts` (`{"ids": [...]}` answered with
//! `{"data": {id: receipt}}`), in Expo's formats, errors included. It
//! records every request and can be told to fail the next ones, or that a
//! token's app is gone (at the ticket or only at the receipt).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

pub const ACCESS_TOKEN: &str = "expo-access-token-0123456789abcdef";

#[derive(Debug, Clone)]
pub struct Request {
    pub authorization: Option<String>,
    pub messages: Vec<Value>,
    /// Answered with tickets (not an injected failure).
    pub accepted: bool,
}

#[derive(Default)]
struct Inner {
    sends: Vec<Request>,
    receipt_requests: Vec<Vec<String>>,
    failures: Vec<(u16, usize)>,
    gone_at_ticket: HashSet<String>,
    gone_at_receipt: HashSet<String>,
    tickets: HashMap<String, String>,
}

#[derive(Clone)]
pub struct FakeExpo {
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeExpo {
    pub async fn start() -> FakeExpo {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = FakeExpo {
            base: format!("http://{}", listener.local_addr().unwrap()),
            inner: Arc::default(),
        };
        let router = Router::new()
            .route("/--/api/v2/push/send", post(send))
            .route("/--/api/v2/push/getReceipts", post(receipts))
            .with_state(fake.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        fake
    }

    pub fn configure(&self, a: &mut maestro_hub::config::SettingsArgs) {
        a.expo_push_url = self.base.clone();
        a.expo_access_token = Some(ACCESS_TOKEN.into());
    }

    /// The next `times` send requests answer `status`.
    pub fn fail(&self, status: u16, times: usize) {
        self.inner.lock().unwrap().failures.push((status, times));
    }

    pub fn clear_failures(&self) {
        self.inner.lock().unwrap().failures.clear();
    }

    /// The app behind `token` was uninstalled: its tickets say so.
    pub fn gone_at_ticket(&self, token: &str) {
        self.inner
            .lock()
            .unwrap()
            .gone_at_ticket
            .insert(token.into());
    }

    /// Accepted, but its receipt will say the device is gone.
    pub fn gone_at_receipt(&self, token: &str) {
        self.inner
            .lock()
            .unwrap()
            .gone_at_receipt
            .insert(token.into());
    }

    pub fn sends(&self) -> Vec<Request> {
        self.inner.lock().unwrap().sends.clone()
    }

    pub fn receipt_requests(&self) -> Vec<Vec<String>> {
        self.inner.lock().unwrap().receipt_requests.clone()
    }

    /// Messages Expo accepted for `token`, oldest first (a gone device's
    /// are not delivered).
    pub fn delivered_to(&self, token: &str) -> Vec<Value> {
        let inner = self.inner.lock().unwrap();
        inner
            .sends
            .iter()
            .filter(|r| r.accepted)
            .flat_map(|r| r.messages.iter())
            .filter(|m| m["to"] == token && !inner.gone_at_ticket.contains(token))
            .cloned()
            .collect()
    }

    /// Every accepted message.
    pub fn delivered(&self) -> Vec<Value> {
        self.sends()
            .into_iter()
            .filter(|r| r.accepted)
            .flat_map(|r| r.messages)
            .collect()
    }
}

fn errors(status: u16, code: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        json!({ "errors": [{ "code": code, "message": message }] }).to_string(),
    )
        .into_response()
}

async fn send(State(fake): State<FakeExpo>, headers: HeaderMap, body: String) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let messages = match body {
        Value::Array(list) => list,
        one @ Value::Object(_) => vec![one],
        _ => {
            return errors(
                400,
                "VALIDATION_ERROR",
                "\"value\" must be an array or an object",
            );
        }
    };
    let mut inner = fake.inner.lock().unwrap();
    let mut request = Request {
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        messages: messages.clone(),
        accepted: false,
    };
    if let Some(slot) = inner.failures.iter_mut().find(|(_, n)| *n > 0) {
        slot.1 -= 1;
        let status = slot.0;
        inner.sends.push(request);
        return if status == 429 {
            errors(429, "TOO_MANY_REQUESTS", "Too many requests")
        } else {
            errors(
                status,
                "INTERNAL_SERVER_ERROR",
                "An unknown error occurred.",
            )
        };
    }
    if messages.len() > 100 {
        inner.sends.push(request);
        return errors(
            400,
            "PUSH_TOO_MANY_NOTIFICATIONS",
            "You are trying to send more than 100 push notifications in one request.",
        );
    }
    let mut tickets = Vec::new();
    for m in &messages {
        let to = m["to"].as_str().unwrap_or_default().to_string();
        if inner.gone_at_ticket.contains(&to) {
            tickets.push(json!({
                "status": "error",
                "message": format!("\"{to}\" is not a registered push notification recipient"),
                "details": { "error": "DeviceNotRegistered", "expoPushToken": to },
            }));
        } else {
            let id = uuid::Uuid::new_v4().to_string();
            inner.tickets.insert(id.clone(), to);
            tickets.push(json!({ "status": "ok", "id": id }));
        }
    }
    request.accepted = true;
    inner.sends.push(request);
    axum::Json(json!({ "data": tickets })).into_response()
}

async fn receipts(State(fake): State<FakeExpo>, body: String) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let Some(ids) = body["ids"].as_array() else {
        return errors(400, "VALIDATION_ERROR", "\"ids\" is required");
    };
    let ids: Vec<String> = ids
        .iter()
        .filter_map(|i| i.as_str().map(str::to_string))
        .collect();
    let mut inner = fake.inner.lock().unwrap();
    inner.receipt_requests.push(ids.clone());
    let mut data = serde_json::Map::new();
    for id in ids {
        let Some(token) = inner.tickets.get(&id) else {
            continue;
        };
        let receipt = if inner.gone_at_receipt.contains(token) {
            json!({
                "status": "error",
                "message": format!("\"{token}\" is not a registered push notification recipient"),
                "details": { "error": "DeviceNotRegistered", "expoPushToken": token },
            })
        } else {
            json!({ "status": "ok" })
        };
        data.insert(id, receipt);
    }
    axum::Json(json!({ "data": data })).into_response()
}
