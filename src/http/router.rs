//! Every route, in one place.

use axum::Router;
use axum::routing::{get, post};
use tokio::sync::watch;

use crate::domain::payment::ProviderKind;
use crate::graphql::AppSchema;
use crate::http::{dev_checkout, exports, graphql, health, middleware, playground, webhooks, ws};
use crate::state::AppState;

/// The scraper's own listener (`METRICS_ADDR`): metrics and the probes,
/// nothing of the API.
pub fn ops_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(health::metrics_open))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .with_state(state)
}

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct HttpState {
    pub state: AppState,
    pub schema: AppSchema,
    /// The HTTP-wide per-IP budget, spent by WebSocket operations too.
    pub ip_budget: middleware::IpBudget,
    /// Open WebSockets per user.
    pub sockets: std::sync::Arc<ws::SocketCounts>,
    /// Turns true when the server shuts down (sockets close with 1012).
    pub stop: watch::Receiver<bool>,
    /// Admin CSV exports streaming at once (each holds a connection).
    pub exports: std::sync::Arc<tokio::sync::Semaphore>,
    /// Automatic persisted queries known to this instance.
    pub apq: std::sync::Arc<graphql::PersistedQueries>,
}

impl axum::extract::FromRef<HttpState> for AppState {
    fn from_ref(s: &HttpState) -> Self {
        s.state.clone()
    }
}

pub fn router(state: AppState, schema: AppSchema, stop: watch::Receiver<bool>) -> Router {
    let settings = state.settings.clone();
    let general = middleware::GeneralLimit::new(&settings, stop.clone());
    let http = HttpState {
        state: state.clone(),
        schema: schema.clone(),
        ip_budget: general.budget(),
        sockets: Default::default(),
        stop,
        exports: std::sync::Arc::new(tokio::sync::Semaphore::new(2)),
        apq: std::sync::Arc::new(graphql::PersistedQueries::new(graphql::PERSISTED_QUERIES)),
    };

    let mut api = Router::new()
        .route("/graphql", post(graphql::graphql).get(graphql::graphql_get))
        .route("/graphql/ws", get(ws::graphql_ws))
        .route("/admin/exports/bookings.csv", get(exports::bookings))
        .route("/admin/exports/payments.csv", get(exports::payments));
    if state.domain.payments.kind() == ProviderKind::Dev {
        api = api
            .route(
                "/dev/checkout/{payment_id}",
                get(dev_checkout::page).post(dev_checkout::pay),
            )
            .route(
                "/dev/payouts/{account}",
                get(dev_checkout::payouts_page).post(dev_checkout::payouts_enable),
            );
    }
    if state.dev_mailbox.is_some() && !settings.is_production() {
        api = api.route("/dev/emails", get(dev_checkout::mailbox));
    }
    if settings.playground_enabled {
        api = api
            .route(
                "/",
                get(|| async { axum::response::Redirect::temporary("/playground") }),
            )
            .route("/playground", get(playground::page))
            .route("/playground/app.js", get(playground::script))
            .route("/playground/app.css", get(playground::style))
            .route(
                "/playground/operations.graphql",
                get(playground::operations),
            );
    }
    // Probes and scrapes come from our own infrastructure, often; they are
    // outside the per-IP limit so a busy probe never takes an instance down.
    let ops = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics));

    let api = general.apply(api.with_state(http.clone()));
    let app = Router::new()
        .merge(api)
        .merge(ops.with_state(http))
        .fallback(|| async {
            graphql::error_body(
                axum::http::StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "no such route",
            )
        });
    let app = middleware::apply(
        app,
        &settings,
        state.metrics.clone(),
        middleware::MAX_BODY_BYTES,
    );
    // Stripe's deliveries come in bursts from few addresses and are retried
    // by Stripe, so they are outside the per-IP limit; an unsigned request
    // costs one HMAC before its 400. Events may be larger than API requests.
    if state.domain.payments.kind() == ProviderKind::Stripe {
        let state_metrics = state.metrics.clone();
        let hooks = Router::new()
            .route("/webhooks/stripe", post(webhooks::stripe))
            .with_state(state);
        return app.merge(middleware::apply(
            hooks,
            &settings,
            state_metrics,
            middleware::MAX_WEBHOOK_BODY_BYTES,
        ));
    }
    app
}
