//! What every request and job may use: the domain's context plus what only
//! the edges need (settings, limits, metrics). Built in `app.rs`; the HTTP
//! and GraphQL layers read it, and nothing here depends on them.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use crate::config::Settings;
use crate::domain::DomainCtx;
use crate::domain::review::ReviewCache;
use crate::integrations::resend::LogMailer;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;

/// Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    /// Database, payment provider, event bus, search index, policy.
    pub domain: DomainCtx,
    pub limiter: Arc<dyn RateLimiter>,
    pub metrics: Arc<Metrics>,
    /// Every SQL statement run through the pool for a request (fed by
    /// SeaORM's metric callback; the background jobs' own are left out):
    /// lets tests and benchmarks prove there is no N+1.
    pub statements: Arc<AtomicU64>,
    /// Review previews shared across requests for a few seconds.
    pub review_cache: ReviewCache,
    /// Development without an email key: the emails the server "sent",
    /// for `GET /dev/emails`.
    pub dev_mailbox: Option<Arc<LogMailer>>,
    /// Redis, when several instances share limits and events.
    pub redis: Option<Arc<crate::integrations::redis::RedisLink>>,
}
