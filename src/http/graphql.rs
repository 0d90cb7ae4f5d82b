//! GraphQL over HTTP: `POST /graphql` (JSON, batches of up to 10) and
//! `GET /graphql?query=...` for queries only, as stock clients (urql's
//! default) send them. Both authenticate once, resolve automatic persisted
//! queries (Apollo Client's and urql's `persistedQuery` extension: a
//! sha256 hash first, the full query once on a miss), and execute
//! (`graphql::errors` gives every error its code).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType};
use async_graphql::{
    BatchRequest, BatchResponse, ErrorExtensionValues, Request as GqlRequest,
    Response as GqlResponse, ServerError, Variables,
};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::Digest;

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
            AuthState::Unchecked
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

/// Automatic persisted queries: hash to query text, shared by the
/// requests of one instance. Bounded: past `capacity` an arbitrary entry
/// makes room, so invented queries can only cost a client one resend.
pub struct PersistedQueries {
    entries: Mutex<HashMap<String, Arc<str>>>,
    capacity: usize,
}

impl PersistedQueries {
    pub fn new(capacity: usize) -> Self {
        PersistedQueries {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    fn get(&self, hash: &str) -> Option<Arc<str>> {
        self.entries.lock().ok()?.get(hash).cloned()
    }

    fn put(&self, hash: String, query: &str) {
        if let Ok(mut map) = self.entries.lock() {
            if map.len() >= self.capacity
                && !map.contains_key(&hash)
                && let Some(k) = map.keys().next().cloned()
            {
                map.remove(&k);
            }
            map.insert(hash, Arc::from(query));
        }
    }
}

/// Entries of the persisted-query cache per instance.
pub const PERSISTED_QUERIES: usize = 5_000;

fn coded(message: &str, code: &str) -> ServerError {
    let mut e = ServerError::new(message, None);
    let mut ext = ErrorExtensionValues::default();
    ext.set("code", code);
    e.extensions = Some(ext);
    e
}

fn refusal(message: &str, code: &str) -> Box<GqlResponse> {
    Box::new(GqlResponse::from_errors(vec![coded(message, code)]))
}

/// Fills in a request that names a persisted query by hash, and records
/// one that brings its query along. The error is the response to give.
fn persisted(apq: &PersistedQueries, mut r: GqlRequest) -> Result<GqlRequest, Box<GqlResponse>> {
    let Some(pq) = r.extensions.get("persistedQuery") else {
        return Ok(r);
    };
    let hash = match pq {
        async_graphql::Value::Object(o) => match o.get("sha256Hash") {
            Some(async_graphql::Value::String(h)) if h.len() == 64 => h.to_ascii_lowercase(),
            _ => {
                return Err(refusal(
                    "persistedQuery needs a sha256Hash",
                    "BAD_USER_INPUT",
                ));
            }
        },
        _ => {
            return Err(refusal(
                "persistedQuery must be an object",
                "BAD_USER_INPUT",
            ));
        }
    };
    if r.query.is_empty() {
        return match apq.get(&hash) {
            Some(q) => {
                r.query = q.to_string();
                Ok(r)
            }
            // The message Apollo Client and urql look for.
            None => Err(refusal(
                "PersistedQueryNotFound",
                "PERSISTED_QUERY_NOT_FOUND",
            )),
        };
    }
    if hex::encode(sha2::Sha256::digest(r.query.as_bytes())) != hash {
        return Err(refusal(
            "provided sha does not match query",
            "BAD_USER_INPUT",
        ));
    }
    apq.put(hash, &r.query);
    Ok(r)
}

/// The query string of `GET /graphql`.
#[derive(serde::Deserialize)]
pub struct GetParams {
    query: Option<String>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

/// `GET /graphql`: queries only; a mutation (or subscription) answers 405
/// with `Allow: POST`, as the GraphQL-over-HTTP spec allows, so a link or
/// a prefetch can never change anything.
pub async fn graphql_get(
    State(http): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(p): Query<GetParams>,
) -> Response {
    let bad = |m: &str| error_body(StatusCode::BAD_REQUEST, "BAD_USER_INPUT", m);
    let mut r = GqlRequest::new(p.query.unwrap_or_default());
    if let Some(name) = p.operation_name.filter(|n| !n.is_empty()) {
        r = r.operation_name(name);
    }
    if let Some(v) = p.variables.filter(|v| !v.is_empty()) {
        match serde_json::from_str::<serde_json::Value>(&v) {
            Ok(json) => r = r.variables(Variables::from_json(json)),
            Err(_) => return bad("variables is not JSON"),
        }
    }
    if let Some(e) = p.extensions.filter(|e| !e.is_empty()) {
        match serde_json::from_str::<HashMap<String, async_graphql::Value>>(&e) {
            Ok(ext) => r.extensions = async_graphql::Extensions(ext),
            Err(_) => return bad("extensions is not a JSON object"),
        }
    }
    let r = match persisted(&http.apq, r) {
        Ok(r) => r,
        Err(resp) => return respond(&headers, &BatchResponse::Single(*resp), false),
    };
    if r.query.is_empty() {
        return bad("a GraphQL query is required");
    }
    if !is_query(&r) {
        let mut res = error_body(
            StatusCode::METHOD_NOT_ALLOWED,
            "BAD_USER_INPUT",
            "only queries can be sent with GET; send mutations with POST",
        );
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return res;
    }
    execute(&http, peer, &headers, BatchRequest::Single(r)).await
}

/// The name and type of the operation a request selects (the name from
/// the document when the request names none).
fn operation_of(
    r: &GqlRequest,
    doc: Option<&ExecutableDocument>,
) -> (Option<String>, Option<OperationType>) {
    let Some(doc) = doc else {
        return (r.operation_name.clone(), None);
    };
    match &doc.operations {
        // A lone anonymous operation.
        DocumentOperations::Single(op) => (r.operation_name.clone(), Some(op.node.ty)),
        DocumentOperations::Multiple(ops) => {
            let chosen = match &r.operation_name {
                Some(n) => ops.get_key_value(n.as_str()),
                None if ops.len() == 1 => ops.iter().next(),
                None => None,
            };
            match chosen {
                Some((name, op)) => (Some(name.to_string()), Some(op.node.ty)),
                None => (r.operation_name.clone(), None),
            }
        }
    }
}

/// Whether the operation a request selects is a query (a document that
/// does not parse is left to the engine, which reports why).
fn is_query(r: &GqlRequest) -> bool {
    let Ok(doc) = crate::graphql::documents::parse(&r.query) else {
        return true;
    };
    let ty = match &doc.operations {
        DocumentOperations::Single(op) => Some(op.node.ty),
        DocumentOperations::Multiple(ops) => match &r.operation_name {
            Some(name) => ops.get(name.as_str()).map(|op| op.node.ty),
            None if ops.len() == 1 => ops.values().next().map(|op| op.node.ty),
            None => None,
        },
    };
    ty.is_none_or(|t| t == OperationType::Query)
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
    execute(&http, peer, &headers, batch).await
}

/// Runs a parsed request (one operation or a batch) and writes the answer.
async fn execute(
    http: &HttpState,
    peer: SocketAddr,
    headers: &HeaderMap,
    batch: BatchRequest,
) -> Response {
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
    let ip = client_ip(headers, Some(peer.ip()), state.settings.trust_proxy);
    // The HTTP-wide limit took one request; each further operation of a
    // batch costs as much as a request of its own.
    if let Some(ip) = ip
        && (1..count).any(|_| !(http.ip_budget)(ip))
    {
        return crate::http::middleware::too_many(1);
    }
    let ctx = RequestCtx {
        ip,
        auth: auth_state(state, headers).await,
    };
    let signed_in = matches!(ctx.auth, AuthState::User(_));
    let span = tracing::Span::current();
    if let AuthState::User(u) = &ctx.auth {
        span.record("user_id", u.id.as_str());
    }
    if let Some(ip) = ip {
        span.record("client_ip", tracing::field::display(ip));
    }
    let requests = match batch {
        BatchRequest::Single(r) => vec![r],
        BatchRequest::Batch(v) => v,
    };
    let single = count == 1;
    let mut names: Vec<Option<String>> = Vec::with_capacity(requests.len());
    let started = Instant::now();
    let mut out = Vec::with_capacity(requests.len());
    // One after another: a batch must not multiply a client's share of
    // the database pool.
    for r in requests {
        let r = match persisted(&http.apq, r) {
            Ok(r) => r,
            Err(missed) => {
                names.push(None);
                out.push(*missed);
                continue;
            }
        };
        // The operation's name (from the document when the body names
        // none) and type, for the access line and the metrics.
        let doc = crate::graphql::documents::parse(&r.query).ok();
        let (name, ty) = operation_of(&r, doc.as_deref());
        if names.is_empty() {
            if let Some(n) = &name {
                span.record("operation", n.as_str());
            }
            if let Some(ty) = ty {
                span.record("operation_type", tracing::field::display(ty));
            }
        }
        names.push(name);
        let mut r = r;
        // The engine takes the document already parsed (or remembered).
        if let Some(doc) = doc {
            r.set_parsed_query((*doc).clone());
        }
        let r = r
            .data(ctx.clone())
            .data(Loaders::new(&state.domain.db, &state.review_cache));
        out.push(http.schema.execute(r).await);
    }
    let response = if single {
        BatchResponse::Single(out.pop().unwrap_or_else(|| GqlResponse::new(())))
    } else {
        BatchResponse::Batch(out)
    };
    let elapsed = started.elapsed();
    let oks: Vec<bool> = match &response {
        BatchResponse::Single(r) => vec![r.is_ok()],
        BatchResponse::Batch(v) => v.iter().map(GqlResponse::is_ok).collect(),
    };
    for (name, ok) in names.iter().zip(oks) {
        state.metrics.observe(name.as_deref(), ok, elapsed);
    }
    respond(headers, &response, signed_in)
}

/// The JSON answer, as `application/graphql-response+json` when the client
/// asks for it; never cached when it was for a signed-in user.
fn respond(headers: &HeaderMap, response: &BatchResponse, signed_in: bool) -> Response {
    let wants_spec_type = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/graphql-response+json"));
    let content_type = if wants_spec_type {
        "application/graphql-response+json"
    } else {
        "application/json"
    };
    match serde_json::to_vec(response) {
        Ok(body) => {
            let mut res =
                (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response();
            if signed_in {
                res.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            }
            res
        }
        Err(_) => error_body(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_SERVER_ERROR",
            "internal error",
        ),
    }
}
