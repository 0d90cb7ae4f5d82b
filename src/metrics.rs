//! Prometheus metrics: GraphQL request counts and latency per operation
//! name; database pool, statement and search index figures (read at
//! scrape time).

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use sea_orm::DatabaseConnection;

use crate::domain::listing::ListingIndex;

/// Operation names come from clients; past this many distinct names new
/// ones are counted as `other`, so a client cannot grow memory without end.
const MAX_OPERATION_LABELS: usize = 200;

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pool_size: IntGauge,
    pool_idle: IntGauge,
    statements: IntGauge,
    index_loads: IntGaugeVec,
    index_listening: IntGauge,
    webhooks: IntCounterVec,
    emails: IntCounterVec,
    outbox: IntGaugeVec,
    seen_operations: Mutex<HashSet<String>>,
}

impl Metrics {
    /// Counts one payment webhook by its outcome (a fixed set of labels).
    pub fn webhook(&self, outcome: &'static str) {
        self.webhooks.with_label_values(&[outcome]).inc();
    }

    /// Counts one outbox pass.
    pub fn emails(&self, d: &crate::domain::outbox::Delivery) {
        for (label, n) in [
            ("sent", d.sent),
            ("retried", d.retried),
            ("dead", d.dead),
            ("skipped", d.skipped),
        ] {
            if n > 0 {
                self.emails.with_label_values(&[label]).inc_by(n as u64);
            }
        }
    }

    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("maestro".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new(
                "graphql_requests_total",
                "GraphQL operations by name and outcome",
            ),
            &["operation", "outcome"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "graphql_request_duration_seconds",
                "Time to answer a GraphQL operation",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["operation"],
        )?;
        let pool_size = IntGauge::new("db_pool_connections", "Open database connections")?;
        let pool_idle = IntGauge::new("db_pool_idle_connections", "Idle database connections")?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(pool_size.clone()))?;
        registry.register(Box::new(pool_idle.clone()))?;
        let statements = IntGauge::new("db_statements_total", "SQL statements run since start")?;
        registry.register(Box::new(statements.clone()))?;
        let index_loads = IntGaugeVec::new(
            Opts::new(
                "search_index_loads_total",
                "Search index loads since start: all listings (full) or changed coaches (partial)",
            ),
            &["kind"],
        )?;
        registry.register(Box::new(index_loads.clone()))?;
        let index_listening = IntGauge::new(
            "search_index_listening",
            "1 while other instances' listing changes are being received (PostgreSQL)",
        )?;
        registry.register(Box::new(index_listening.clone()))?;
        let webhooks = IntCounterVec::new(
            Opts::new(
                "payment_webhooks_total",
                "Payment provider webhooks by outcome (applied, duplicate, ignored, rejected, unreadable, failed)",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(webhooks.clone()))?;
        let emails = IntCounterVec::new(
            Opts::new(
                "emails_total",
                "Outbox emails by outcome: sent, retried (an attempt failed), dead (given up), skipped (no longer true)",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(emails.clone()))?;
        let outbox = IntGaugeVec::new(
            Opts::new(
                "outbox_emails",
                "Emails in the outbox by status (dead: given up, visible to admins); read at scrape time",
            ),
            &["status"],
        )?;
        registry.register(Box::new(outbox.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            latency,
            pool_size,
            pool_idle,
            statements,
            index_loads,
            index_listening,
            webhooks,
            emails,
            outbox,
            seen_operations: Mutex::new(HashSet::new()),
        })
    }

    fn label(&self, operation: Option<&str>) -> String {
        let Some(name) = operation.filter(|n| {
            !n.is_empty()
                && n.len() <= 64
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        }) else {
            return "anonymous".into();
        };
        let Ok(mut seen) = self.seen_operations.lock() else {
            return "other".into();
        };
        if seen.contains(name) {
            return name.to_string();
        }
        if seen.len() >= MAX_OPERATION_LABELS {
            return "other".into();
        }
        seen.insert(name.to_string());
        name.to_string()
    }

    pub fn observe(&self, operation: Option<&str>, ok: bool, elapsed: Duration) {
        let label = self.label(operation);
        self.requests
            .with_label_values(&[label.as_str(), if ok { "ok" } else { "error" }])
            .inc();
        self.latency
            .with_label_values(&[label.as_str()])
            .observe(elapsed.as_secs_f64());
    }

    /// The outbox's rows by status, as read at scrape time.
    pub fn set_outbox(&self, by_status: &[(String, i64)]) {
        for (status, n) in by_status {
            self.outbox
                .with_label_values(&[status.to_lowercase().as_str()])
                .set(*n);
        }
    }

    pub fn render(&self, db: &DatabaseConnection, statements: u64, index: &ListingIndex) -> String {
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.statements.set(count(statements));
        let loads = index.loads();
        self.index_loads
            .with_label_values(&["full"])
            .set(count(loads.full));
        self.index_loads
            .with_label_values(&["partial"])
            .set(count(loads.partial));
        self.index_listening.set(i64::from(index.is_listening()));
        let (size, idle) = pool_stats(db);
        self.pool_size.set(size);
        self.pool_idle.set(idle);
        let mut buf = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

fn pool_stats(db: &DatabaseConnection) -> (i64, i64) {
    match db.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (i64::from(pool.size()), pool.num_idle() as i64)
        }
        _ => {
            let pool = db.get_sqlite_connection_pool();
            (i64::from(pool.size()), pool.num_idle() as i64)
        }
    }
}
