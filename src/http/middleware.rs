//! Every middleware layer, in one place, each with the reason it exists.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_governor::GovernorLayer;
use tower_governor::errors::GovernorError;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use std::sync::Arc;

use crate::config::Settings;
use crate::http::graphql::{client_ip, error_body};
use crate::metrics::{Limit, Metrics};

pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// A payment provider's event can be larger than any API request (a
/// checkout session with its line items); still bounded.
pub const MAX_WEBHOOK_BODY_BYTES: usize = 512 * 1024;
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
pub const REQUEST_ID: &str = "x-request-id";

#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Gives every request an id (kept from the client when it is a sane token),
/// echoes it in the response, and makes it available to the trace span so
/// every log line of the request carries it.
async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let value = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    req.headers_mut().insert(REQUEST_ID, value.clone());
    req.extensions_mut().insert(RequestId(id));
    let mut res = next.run(req).await;
    res.headers_mut().insert(REQUEST_ID, value);
    res
}

/// Answers that the framework writes itself (a body over the limit, a
/// method a route does not take) become JSON errors with a code, like every
/// other error; a 405 keeps its `Allow` header.
async fn json_errors(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return res;
    }
    let mut replaced = match res.status() {
        StatusCode::PAYLOAD_TOO_LARGE => error_body(
            StatusCode::PAYLOAD_TOO_LARGE,
            "BAD_USER_INPUT",
            "the request body is larger than 64 KiB",
        ),
        StatusCode::METHOD_NOT_ALLOWED => error_body(
            StatusCode::METHOD_NOT_ALLOWED,
            "BAD_USER_INPUT",
            "this route does not take that method",
        ),
        _ => return res,
    };
    if let Some(allow) = res.headers().get(header::ALLOW) {
        replaced.headers_mut().insert(header::ALLOW, allow.clone());
    }
    replaced
}

/// Which limit refused a response, for the metrics (set on a 429 by the
/// code that refused it).
#[derive(Clone, Copy, Debug)]
pub struct RefusedBy(pub Limit);

/// Counts every response by route pattern and status, and every refusal
/// by its limit.
async fn count(
    axum::extract::State(metrics): axum::extract::State<Arc<Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    let started = std::time::Instant::now();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string());
    let res = next.run(req).await;
    metrics.http(
        route.as_deref().unwrap_or("unmatched"),
        res.status().as_u16(),
        started.elapsed(),
    );
    if let Some(RefusedBy(limit)) = res.extensions().get::<RefusedBy>() {
        metrics.rate_limited(*limit);
    }
    res
}

/// Layers for every route, outermost first.
pub fn apply(
    router: Router,
    settings: &Settings,
    metrics: Arc<Metrics>,
    max_body_bytes: usize,
) -> Router {
    let layers = ServiceBuilder::new()
        // Correlates a response, its logs and a client report.
        .layer(middleware::from_fn(request_id))
        // Counted outside every other layer, so timeouts and panics count too.
        .layer(middleware::from_fn_with_state(metrics, count))
        // Security headers go on every response, errors and 429s included.
        .layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        // The playground sets its own (looser) policy; everything else is an API.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(API_CSP),
        ))
        // One span per request, with the request id, for structured logs,
        // and one access line at `info` when the response starts: method,
        // path (never the query string: it may hold a GET operation's
        // variables), status, latency, request id, and what the GraphQL
        // handler records (operation name and type, user id, client IP).
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<Body>| {
                    let id = req
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        path = %req.uri().path(),
                        request_id = %id,
                        operation = tracing::field::Empty,
                        operation_type = tracing::field::Empty,
                        user_id = tracing::field::Empty,
                        client_ip = tracing::field::Empty,
                    )
                })
                .on_request(())
                .on_response(AccessLine)
                // The access line has the status; a 5xx's cause is logged
                // where it happened (and reaches error tracking from there).
                .on_failure(()),
        )
        // Browsers may call us only from the listed app origins.
        .layer(cors(settings))
        // Smaller responses for mobile clients; the fastest level keeps most
        // of the saving on JSON at a fraction of the CPU (it showed as the
        // top item in profiles of search at the default level).
        .layer(CompressionLayer::new().quality(tower_http::CompressionLevel::Fastest))
        // No request holds a worker forever.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            settings.request_timeout,
        ))
        // Framework-written errors get a JSON body and a code.
        .layer(middleware::from_fn(json_errors))
        // Bounded memory per request: 64 KiB is plenty for any operation.
        .layer(RequestBodyLimitLayer::new(max_body_bytes))
        // A panic becomes a generic 500, never a dropped connection or a trace.
        .layer(CatchPanicLayer::custom(
            |panic: Box<dyn std::any::Any + Send>| {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(error = %why, "a request panicked");
                error_body(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "INTERNAL_SERVER_ERROR",
                    "internal error",
                )
            },
        ));
    router.layer(layers)
}

/// The access line: written in the request's span, so it carries the
/// span's fields with it.
#[derive(Clone, Copy)]
struct AccessLine;

impl<B> tower_http::trace::OnResponse<B> for AccessLine {
    fn on_response(
        self,
        res: &axum::http::Response<B>,
        latency: std::time::Duration,
        _span: &tracing::Span,
    ) {
        tracing::info!(
            target: "maestro_hub::access",
            status = res.status().as_u16(),
            latency_ms = latency.as_secs_f64() * 1000.0,
            "request"
        );
    }
}

fn cors(settings: &Settings) -> CorsLayer {
    let origins: Vec<HeaderValue> = settings
        .cors_allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let allow = if settings.cors_allowed_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins)
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static(REQUEST_ID),
        ])
        .expose_headers([HeaderName::from_static(REQUEST_ID), header::RETRY_AFTER])
        .max_age(Duration::from_secs(600))
}

/// The rate-limit key: the client IP as `client_ip` sees it.
#[derive(Clone)]
pub struct ClientIpKey {
    trust_proxy: bool,
}

impl KeyExtractor for ClientIpKey {
    type Key = std::net::IpAddr;

    fn extract<T>(&self, req: &axum::http::Request<T>) -> Result<Self::Key, GovernorError> {
        let peer = req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        client_ip(req.headers(), peer, self.trust_proxy).ok_or(GovernorError::UnableToExtractKey)
    }
}

/// Whether a client IP may make one more request now (the HTTP-wide
/// budget, spent by WebSocket operations too).
pub type IpBudget = std::sync::Arc<dyn Fn(std::net::IpAddr) -> bool + Send + Sync>;

/// The HTTP-wide limit per client IP (`RATE_LIMIT_GENERAL_PER_MINUTE`):
/// a full minute's budget as burst, refilled evenly. Idle keys are forgot
/// every minute by a task that ends with `stop`.
pub struct GeneralLimit {
    config: Option<
        std::sync::Arc<
            tower_governor::governor::GovernorConfig<
                ClientIpKey,
                governor::middleware::NoOpMiddleware,
            >,
        >,
    >,
}

impl GeneralLimit {
    pub fn new(settings: &Settings, mut stop: tokio::sync::watch::Receiver<bool>) -> Self {
        let per_minute = settings.rate_limit_general_per_minute.max(1);
        let config = GovernorConfigBuilder::default()
            .period(
                Duration::from_millis(60_000 / u64::from(per_minute)).max(Duration::from_millis(1)),
            )
            .burst_size(per_minute)
            .key_extractor(ClientIpKey {
                trust_proxy: settings.trust_proxy,
            })
            .finish()
            .map(std::sync::Arc::new);
        if let Some(config) = &config {
            let limiter = config.limiter().clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                loop {
                    tokio::select! {
                        _ = tick.tick() => limiter.retain_recent(),
                        _ = stop.changed() => return,
                    }
                }
            });
        }
        GeneralLimit { config }
    }

    /// The same budget, for requests that arrive other than as HTTP
    /// requests (operations over a WebSocket).
    pub fn budget(&self) -> IpBudget {
        match &self.config {
            Some(config) => {
                let limiter = config.limiter().clone();
                std::sync::Arc::new(move |ip| limiter.check_key(&ip).is_ok())
            }
            None => std::sync::Arc::new(|_| true),
        }
    }

    pub fn apply(&self, router: Router) -> Router {
        match &self.config {
            Some(config) => {
                router.layer(GovernorLayer::new(config.clone()).error_handler(too_many_requests))
            }
            None => router,
        }
    }
}

/// 429 with `Retry-After` and a JSON error.
pub fn too_many(wait_secs: u64) -> Response {
    let mut res = error_body(
        StatusCode::TOO_MANY_REQUESTS,
        "RATE_LIMITED",
        "too many requests; slow down",
    );
    if let Ok(v) = HeaderValue::from_str(&wait_secs.max(1).to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res.extensions_mut().insert(RefusedBy(Limit::Http));
    res
}

fn too_many_requests(err: GovernorError) -> Response {
    match err {
        GovernorError::TooManyRequests { wait_time, .. } => too_many(wait_time),
        _ => error_body(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_SERVER_ERROR",
            "internal error",
        )
        .into_response(),
    }
}
