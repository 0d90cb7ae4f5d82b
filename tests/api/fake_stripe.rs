//! A fake Stripe API for the tests: a local HTTP server that reads the
//! form-encoded requests of the endpoints the server uses and answers with
//! complete objects, built from Stripe's own example objects (copied into
//! `stripe/*.json`), so async-stripe's strict deserialisation is exercised
//! as against Stripe. It records every request, honours idempotency keys
//! as Stripe does (a key that succeeded replays its response), and can be
//! told to fail: with a status, or by not answering, before the request
//! reaches its idempotency layer (as when Stripe never started on it).
//!
//! It also builds and signs webhook events the way Stripe does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub const WEBHOOK_SECRET: &str = "whsec_test_platform_0123456789abcdef";
pub const CONNECT_WEBHOOK_SECRET: &str = "whsec_test_connect_0123456789abcdef";
pub const SECRET_KEY: &str = "sk_test_fake_0123456789abcdefghijklmn";

fn fixture(name: &str) -> Value {
    let raw = match name {
        "checkout_session" => include_str!("stripe/checkout_session.json"),
        "refund" => include_str!("stripe/refund.json"),
        "account" => include_str!("stripe/account.json"),
        "account_link" => include_str!("stripe/account_link.json"),
        "charge" => include_str!("stripe/charge.json"),
        "payment_intent" => include_str!("stripe/payment_intent.json"),
        "dispute" => include_str!("stripe/dispute.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(raw).unwrap()
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub idempotency_key: Option<String>,
    pub authorization: Option<String>,
    pub form: Vec<(String, String)>,
    /// Stripe acted on it (not an injected failure, not a replay of an
    /// idempotency key).
    pub acted: bool,
}

impl Recorded {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Failure {
    /// Answers this status, as Stripe does once it started on a request:
    /// the answer is stored under the idempotency key (but for 409 and
    /// 429, which Stripe never stores), so a retry with the same key gets
    /// it again.
    Status(u16),
    /// Never answers, having done nothing (the client's timeout decides).
    Hang,
    /// Does the work (and stores it under the key), then never answers:
    /// the response is lost on the way.
    LoseAnswer,
}

#[derive(Default)]
struct Inner {
    requests: Vec<Recorded>,
    idempotent: HashMap<String, (u16, Value)>,
    /// Path prefix -> failures still to inject.
    failures: Vec<(String, Failure, usize)>,
    sessions: HashMap<String, Value>,
    refunds: Vec<Value>,
    next: u64,
}

#[derive(Clone)]
pub struct FakeStripe {
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeStripe {
    pub async fn start() -> FakeStripe {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let fake = FakeStripe {
            base: base.clone(),
            inner,
        };
        let router = Router::new()
            .route("/v1/checkout/sessions", post(handle))
            .route("/v1/checkout/sessions/{id}", get(handle_get))
            .route("/v1/refunds", post(handle).get(list_refunds))
            .route("/v1/accounts", post(handle))
            .route("/v1/account_links", post(handle))
            .with_state(fake.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        fake
    }

    /// Settings pointing the server at this fake.
    pub fn configure(&self, a: &mut maestro_hub::config::SettingsArgs) {
        a.stripe_secret_key = Some(SECRET_KEY.into());
        a.stripe_webhook_secret = Some(WEBHOOK_SECRET.into());
        a.stripe_connect_webhook_secret = Some(CONNECT_WEBHOOK_SECRET.into());
        a.stripe_api_base = format!("{}/", self.base);
        a.stripe_timeout_seconds = 2;
    }

    /// The next `times` requests under `path` fail as said.
    pub fn fail(&self, path: &str, failure: Failure, times: usize) {
        self.inner
            .lock()
            .unwrap()
            .failures
            .push((path.into(), failure, times));
    }

    pub fn requests(&self, path: &str) -> Vec<Recorded> {
        self.inner
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Requests under `path` that Stripe acted on (not failed, not replayed).
    pub fn acted(&self, path: &str) -> Vec<Recorded> {
        self.requests(path)
            .into_iter()
            .filter(|r| r.acted)
            .collect()
    }

    /// The customer pays: the session completes, paid, with a payment
    /// intent. Returns the session as Stripe then shows it.
    pub fn pay(&self, session_id: &str) -> Value {
        let mut inner = self.inner.lock().unwrap();
        let s = inner.sessions.get_mut(session_id).unwrap();
        s["status"] = json!("complete");
        s["payment_status"] = json!("paid");
        s["payment_intent"] = json!(format!("pi_{}", &session_id[3..]));
        s.clone()
    }

    pub fn expire(&self, session_id: &str) -> Value {
        let mut inner = self.inner.lock().unwrap();
        let s = inner.sessions.get_mut(session_id).unwrap();
        s["status"] = json!("expired");
        s.clone()
    }

    fn record(&self, r: Recorded) {
        self.inner.lock().unwrap().requests.push(r);
    }

    fn take_failure(&self, path: &str) -> Option<Failure> {
        let mut inner = self.inner.lock().unwrap();
        let slot = inner
            .failures
            .iter_mut()
            .find(|(p, _, n)| path.starts_with(p.as_str()) && *n > 0)?;
        slot.2 -= 1;
        Some(slot.1)
    }

    fn next_id(&self, prefix: &str) -> String {
        let mut inner = self.inner.lock().unwrap();
        inner.next += 1;
        format!("{prefix}_test_{:06}", inner.next)
    }
}

fn form_of(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn metadata_of(form: &[(String, String)], prefix: &str) -> Value {
    let mut m = serde_json::Map::new();
    for (k, v) in form {
        if let Some(rest) = k.strip_prefix(prefix)
            && let Some(key) = rest.strip_prefix('[').and_then(|r| r.strip_suffix(']'))
        {
            m.insert(key.to_string(), json!(v));
        }
    }
    Value::Object(m)
}

fn stripe_error(status: u16, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        json!({ "error": { "type": "api_error", "message": message } }).to_string(),
    )
        .into_response()
}

async fn handle_get(
    State(fake): State<FakeStripe>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v1/checkout/sessions/{id}");
    fake.record(Recorded {
        path: path.clone(),
        idempotency_key: None,
        authorization: header(&headers, "authorization"),
        form: Vec::new(),
        acted: true,
    });
    if let Some(f) = fake.take_failure(&path) {
        return fail(f).await;
    }
    match fake.inner.lock().unwrap().sessions.get(&id) {
        Some(s) => axum::Json(s.clone()).into_response(),
        None => stripe_error(404, "No such checkout.session"),
    }
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn fail(f: Failure) -> Response {
    match f {
        Failure::Status(s) => stripe_error(s, "injected failure"),
        Failure::Hang | Failure::LoseAnswer => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            stripe_error(500, "too late")
        }
    }
}

async fn handle(
    State(fake): State<FakeStripe>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let form = form_of(&body);
    let key = header(&headers, "idempotency-key");
    let mut rec = Recorded {
        path: path.clone(),
        idempotency_key: key.clone(),
        authorization: header(&headers, "authorization"),
        form: form.clone(),
        acted: true,
    };
    let failure = fake.take_failure(&path);
    if let Some(Failure::Status(status)) = failure {
        rec.acted = false;
        fake.record(rec);
        if let Some(k) = &key
            && status != 409
            && status != 429
        {
            let body = json!({ "error": { "type": "api_error", "message": "injected failure" } });
            fake.inner
                .lock()
                .unwrap()
                .idempotent
                .insert(k.clone(), (status, body));
        }
        return stripe_error(status, "injected failure");
    }
    if let Some(Failure::Hang) = failure {
        rec.acted = false;
        fake.record(rec);
        return fail(Failure::Hang).await;
    }
    if let Some(k) = &key {
        let stored = fake.inner.lock().unwrap().idempotent.get(k).cloned();
        if let Some((status, body)) = stored {
            rec.acted = false;
            fake.record(rec);
            return (
                StatusCode::from_u16(status).unwrap(),
                [("idempotent-replayed", "true")],
                axum::Json(body),
            )
                .into_response();
        }
    }
    let body = match path.as_str() {
        "/v1/checkout/sessions" => fake.create_session(&form),
        "/v1/refunds" => fake.create_refund(&form),
        "/v1/accounts" => fake.create_account(&form),
        "/v1/account_links" => fake.create_account_link(&form),
        _ => return stripe_error(404, "unknown route"),
    };
    if let Some(k) = key {
        fake.inner
            .lock()
            .unwrap()
            .idempotent
            .insert(k, (200, body.clone()));
    }
    fake.record(rec);
    if let Some(Failure::LoseAnswer) = failure {
        return fail(Failure::Hang).await;
    }
    axum::Json(body).into_response()
}

async fn list_refunds(State(fake): State<FakeStripe>, uri: Uri, headers: HeaderMap) -> Response {
    let query = form_of(uri.query().unwrap_or("").as_bytes());
    fake.record(Recorded {
        path: "GET /v1/refunds".into(),
        idempotency_key: None,
        authorization: header(&headers, "authorization"),
        form: query.clone(),
        acted: true,
    });
    let pi = field(&query, "payment_intent");
    let data: Vec<Value> = fake
        .inner
        .lock()
        .unwrap()
        .refunds
        .iter()
        .filter(|r| pi.is_none() || r["payment_intent"].as_str() == pi)
        .cloned()
        .collect();
    axum::Json(json!({ "object": "list", "data": data, "has_more": false, "url": "/v1/refunds" }))
        .into_response()
}

fn field<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

impl FakeStripe {
    fn create_session(&self, form: &[(String, String)]) -> Value {
        let id = self.next_id("cs");
        let amount: i64 = field(form, "line_items[0][price_data][unit_amount]")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let qty: i64 = field(form, "line_items[0][quantity]")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let mut s = fixture("checkout_session");
        s["id"] = json!(id);
        s["url"] = json!(format!("{}/pay/{id}", self.base));
        s["amount_subtotal"] = json!(amount * qty);
        s["amount_total"] = json!(amount * qty);
        s["currency"] = json!(field(form, "line_items[0][price_data][currency]"));
        s["metadata"] = metadata_of(form, "metadata");
        s["client_reference_id"] = json!(field(form, "client_reference_id"));
        s["success_url"] = json!(field(form, "success_url"));
        s["cancel_url"] = json!(field(form, "cancel_url"));
        s["expires_at"] = json!(
            field(form, "expires_at")
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
        );
        s["created"] = json!(chrono::Utc::now().timestamp());
        s["payment_intent"] = Value::Null;
        s["status"] = json!("open");
        s["payment_status"] = json!("unpaid");
        s["mode"] = json!("payment");
        self.inner
            .lock()
            .unwrap()
            .sessions
            .insert(id.clone(), s.clone());
        s
    }

    fn create_refund(&self, form: &[(String, String)]) -> Value {
        let mut r = fixture("refund");
        r["id"] = json!(self.next_id("re"));
        r["amount"] = json!(
            field(form, "amount")
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
        );
        r["payment_intent"] = json!(field(form, "payment_intent"));
        r["metadata"] = metadata_of(form, "metadata");
        r["status"] = json!("pending");
        self.inner.lock().unwrap().refunds.push(r.clone());
        r
    }

    fn create_account(&self, form: &[(String, String)]) -> Value {
        let mut a = fixture("account");
        a["id"] = json!(self.next_id("acct"));
        a["email"] = json!(field(form, "email"));
        a["country"] = json!(field(form, "country"));
        a["charges_enabled"] = json!(false);
        a["payouts_enabled"] = json!(false);
        a["metadata"] = metadata_of(form, "metadata");
        a
    }

    fn create_account_link(&self, form: &[(String, String)]) -> Value {
        let mut l = fixture("account_link");
        l["url"] = json!(format!(
            "{}/setup/{}/{}",
            self.base,
            field(form, "account").unwrap_or(""),
            self.next_id("link")
        ));
        l
    }
}

/// Stripe objects for webhook events.
pub fn account(id: &str, enabled: bool) -> Value {
    let mut a = fixture("account");
    a["id"] = json!(id);
    a["charges_enabled"] = json!(enabled);
    a["payouts_enabled"] = json!(enabled);
    a
}

pub fn charge(payment_intent: &str, amount: i64, refunded: i64, payment_id: &str) -> Value {
    let mut c = fixture("charge");
    c["id"] = json!(format!("ch_{}", &payment_intent[3..]));
    c["payment_intent"] = json!(payment_intent);
    c["amount"] = json!(amount);
    c["amount_captured"] = json!(amount);
    c["amount_refunded"] = json!(refunded);
    c["refunded"] = json!(refunded >= amount);
    c["currency"] = json!("usd");
    c["metadata"] = json!({ "payment_id": payment_id });
    c
}

pub fn refund(id: &str, refund_id: &str, payment_intent: &str, amount: i64, status: &str) -> Value {
    let mut r = fixture("refund");
    r["id"] = json!(id);
    r["amount"] = json!(amount);
    r["payment_intent"] = json!(payment_intent);
    r["metadata"] = json!({ "refund_id": refund_id });
    r["status"] = json!(status);
    r
}

pub fn dispute(id: &str, payment_intent: &str, amount: i64, status: &str) -> Value {
    let mut d = fixture("dispute");
    d["id"] = json!(id);
    d["payment_intent"] = json!(payment_intent);
    d["amount"] = json!(amount);
    d["currency"] = json!("usd");
    d["status"] = json!(status);
    d
}

pub fn payment_intent(id: &str, payment_id: &str) -> Value {
    let mut p = fixture("payment_intent");
    p["id"] = json!(id);
    p["metadata"] = json!({ "payment_id": payment_id });
    p
}

/// A webhook event as Stripe sends it.
pub fn event(id: &str, kind: &str, object: Value) -> String {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2025-11-17.clover",
        "created": chrono::Utc::now().timestamp(),
        "data": { "object": object },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": kind,
    })
    .to_string()
}

/// `Stripe-Signature` for `payload`, as Stripe computes it.
pub fn sign(payload: &str, secret: &str, at: i64) -> String {
    stripe_webhook::Webhook::generate_test_header(payload, secret, Some(at))
}
