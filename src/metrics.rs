//! Prometheus metrics: HTTP requests by route and status, refusals by
//! limit, GraphQL operations by name and outcome, open WebSockets and
//! subscriptions, the business counters of [`Activity`], webhooks and
//! emails; database pool, statement and search index figures read at
//! scrape time; build information and the standard process metrics.
//!
//! Every label takes a bounded set of values: routes are the router's own
//! patterns, statuses are numbers, limits and outcomes are fixed names, and
//! operation names are either known (the documents the server ships, see
//! [`KNOWN_OPERATIONS`]) or one of a capped set admitted first come; past
//! the cap a new name is counted as `other`, and a known name always keeps
//! its own label, so invented names cannot crowd out real ones.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use sea_orm::DatabaseConnection;

use crate::domain::activity::Activity;
use crate::domain::listing::ListingIndex;

/// Names not known in advance admitted as labels of their own.
const MAX_OTHER_OPERATION_LABELS: usize = 100;

/// Operation documents the server knows: the playground's saved operations,
/// which follow the app's own flows. Their names always get a label.
pub const KNOWN_OPERATIONS: &str = include_str!("../playground/operations.graphql");

/// Which limit refused a request (the `limit` label of
/// `maestro_rate_limited_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The HTTP-wide budget per client IP.
    Http,
    /// A field's own budget (sign-in, registration, password reset).
    Field(&'static str),
    /// A WebSocket's subscriptions or sockets per user.
    WebSocket,
    /// Concurrent admin exports.
    Exports,
}

impl Limit {
    fn label(self) -> &'static str {
        match self {
            Limit::Http => "http",
            Limit::Field(bucket) => bucket,
            Limit::WebSocket => "websocket",
            Limit::Exports => "exports",
        }
    }
}

pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_latency: HistogramVec,
    rate_limited: IntCounterVec,
    requests: IntCounterVec,
    latency: HistogramVec,
    websockets: IntGauge,
    subscriptions: IntGauge,
    pool_size: IntGauge,
    pool_idle: IntGauge,
    statements: IntCounter,
    index_loads: IntCounterVec,
    index_listening: IntGauge,
    webhooks: IntCounterVec,
    emails: IntCounterVec,
    outbox: IntGaugeVec,
    pushes: IntCounterVec,
    limits_shared: IntGauge,
    limit_fallbacks: IntCounter,
    known_operations: HashSet<String>,
    other_operations: Mutex<HashSet<String>>,
    /// One scrape at a time: counters read from elsewhere are brought up
    /// to date by their difference.
    scrape: tokio::sync::Mutex<()>,
}

/// Seconds buckets for request latencies.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

impl Metrics {
    pub fn new(activity: &Activity) -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("maestro".into()), None)?;
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
                labels,
            )?;
            registry.register(Box::new(h.clone()))?;
            Ok::<_, prometheus::Error>(h)
        };
        let http_requests = counter(
            "http_requests_total",
            "HTTP requests by route (the router's pattern, or `unmatched`) and status",
            &["route", "status"],
        )?;
        let http_latency = histogram(
            "http_request_duration_seconds",
            "Time to the start of the response, by route",
            &["route"],
        )?;
        let rate_limited = counter(
            "rate_limited_total",
            "Requests refused by a limit: http (per IP), websocket, exports, or a field's bucket",
            &["limit"],
        )?;
        let requests = counter(
            "graphql_requests_total",
            "GraphQL operations by name and outcome",
            &["operation", "outcome"],
        )?;
        let latency = histogram(
            "graphql_request_duration_seconds",
            "Time to answer a GraphQL operation",
            &["operation"],
        )?;
        let websockets = gauge("websockets_open", "Open GraphQL WebSockets")?;
        let subscriptions = gauge(
            "subscriptions_active",
            "Subscriptions running on WebSockets",
        )?;
        let pool_size = gauge("db_pool_connections", "Open database connections")?;
        let pool_idle = gauge("db_pool_idle_connections", "Idle database connections")?;
        let statements = IntCounter::new(
            "db_statements_total",
            "SQL statements run for requests since start",
        )?;
        registry.register(Box::new(statements.clone()))?;
        let index_loads = counter(
            "search_index_loads_total",
            "Search index loads since start: all listings (full) or changed coaches (partial)",
            &["kind"],
        )?;
        let index_listening = gauge(
            "search_index_listening",
            "1 while other instances' listing changes are being received (PostgreSQL)",
        )?;
        let webhooks = counter(
            "payment_webhooks_total",
            "Payment provider webhooks by outcome (applied, duplicate, ignored, rejected, unreadable, failed)",
            &["outcome"],
        )?;
        let emails = counter(
            "emails_total",
            "Outbox emails by outcome: sent, retried (an attempt failed), dead (given up), skipped (no longer true)",
            &["outcome"],
        )?;
        let pushes = counter(
            "push_notifications_total",
            "Push messages by outcome: sent (Expo took it), retried, dead (given up, or the device is gone), skipped (no longer true)",
            &["outcome"],
        )?;
        let outbox = IntGaugeVec::new(
            Opts::new(
                "outbox_emails",
                "Emails in the outbox by status (dead: given up, visible to admins); read at scrape time",
            ),
            &["status"],
        )?;
        registry.register(Box::new(outbox.clone()))?;
        let build = IntGaugeVec::new(
            Opts::new(
                "build_info",
                "Always 1: the version and git revision of this build",
            ),
            &["version", "revision"],
        )?;
        registry.register(Box::new(build.clone()))?;
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION"), crate::GIT_REVISION])
            .set(1);
        activity.register(&registry)?;
        let limits_shared = gauge(
            "rate_limits_shared",
            "1 while rate limits are shared through Redis, 0 while this instance counts alone (REDIS_URL set)",
        )?;
        let limit_fallbacks = IntCounter::new(
            "rate_limit_fallbacks_total",
            "Rate-limit attempts counted in this instance's memory because Redis did not answer",
        )?;
        registry.register(Box::new(limit_fallbacks.clone()))?;
        Ok(Metrics {
            registry,
            http_requests,
            http_latency,
            rate_limited,
            requests,
            latency,
            websockets,
            subscriptions,
            pool_size,
            pool_idle,
            statements,
            index_loads,
            index_listening,
            webhooks,
            emails,
            outbox,
            pushes,
            limits_shared,
            limit_fallbacks,
            known_operations: operation_names(KNOWN_OPERATIONS),
            other_operations: Mutex::new(HashSet::new()),
            scrape: tokio::sync::Mutex::new(()),
        })
    }

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
        let p = &d.pushes;
        for (label, n) in [
            ("sent", p.sent),
            ("retried", p.retried),
            ("dead", p.dead),
            ("skipped", p.skipped),
        ] {
            if n > 0 {
                self.pushes.with_label_values(&[label]).inc_by(n as u64);
            }
        }
    }

    /// Counts one HTTP response. `route` is the router's pattern.
    pub fn http(&self, route: &str, status: u16, elapsed: Duration) {
        let status = status.to_string();
        self.http_requests
            .with_label_values(&[route, status.as_str()])
            .inc();
        self.http_latency
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one refusal by a limit.
    pub fn rate_limited(&self, limit: Limit) {
        self.rate_limited.with_label_values(&[limit.label()]).inc();
    }

    /// A WebSocket is open until the returned guard drops.
    pub fn websocket_opened(&self) -> GaugeGuard {
        GaugeGuard::up(self.websockets.clone(), 1)
    }

    /// WebSockets still open (each closes itself once shutdown begins).
    pub fn websockets_open(&self) -> i64 {
        self.websockets.get()
    }

    /// The gauge of running subscriptions.
    pub fn subscriptions(&self) -> &IntGauge {
        &self.subscriptions
    }

    fn label(&self, operation: Option<&str>) -> String {
        let Some(name) = operation.filter(|n| {
            !n.is_empty()
                && n.len() <= 64
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        }) else {
            return "anonymous".into();
        };
        if self.known_operations.contains(name) {
            return name.to_string();
        }
        let Ok(mut seen) = self.other_operations.lock() else {
            return "other".into();
        };
        if seen.contains(name) {
            return name.to_string();
        }
        if seen.len() >= MAX_OTHER_OPERATION_LABELS {
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

    /// Whether rate limits are shared through Redis right now, and how many
    /// attempts this instance counted in memory instead.
    pub fn set_shared_limits(&self, shared: bool, fallbacks: u64) {
        self.limits_shared.set(i64::from(shared));
        catch_up(&self.limit_fallbacks, fallbacks);
    }

    /// The outbox's rows by status, as read at scrape time.
    pub fn set_outbox(&self, by_status: &[(String, i64)]) {
        for (status, n) in by_status {
            self.outbox
                .with_label_values(&[status.to_lowercase().as_str()])
                .set(*n);
        }
    }

    pub async fn render(
        &self,
        db: &DatabaseConnection,
        statements: u64,
        index: &ListingIndex,
    ) -> String {
        let _one = self.scrape.lock().await;
        catch_up(&self.statements, statements);
        let loads = index.loads();
        catch_up(&self.index_loads.with_label_values(&["full"]), loads.full);
        catch_up(
            &self.index_loads.with_label_values(&["partial"]),
            loads.partial,
        );
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
        let mut text = String::from_utf8(buf).unwrap_or_default();
        text.push_str(&process_metrics());
        text
    }
}

/// Brings a counter up to a total kept elsewhere.
fn catch_up(counter: &IntCounter, total: u64) {
    let now = counter.get();
    if total > now {
        counter.inc_by(total - now);
    }
}

/// The names of the operations in a document (none if it does not parse).
fn operation_names(document: &str) -> HashSet<String> {
    let Ok(doc) = async_graphql::parser::parse_query(document) else {
        return HashSet::new();
    };
    match doc.operations {
        async_graphql::parser::types::DocumentOperations::Single(_) => HashSet::new(),
        async_graphql::parser::types::DocumentOperations::Multiple(ops) => {
            ops.keys().map(|n| n.to_string()).collect()
        }
    }
}

/// Moves a gauge back when dropped.
pub struct GaugeGuard {
    gauge: IntGauge,
    by: i64,
}

impl GaugeGuard {
    pub fn up(gauge: IntGauge, by: i64) -> Self {
        gauge.add(by);
        GaugeGuard { gauge, by }
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.gauge.sub(self.by);
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

/// The standard process metrics (`process_*`, unprefixed, as every
/// Prometheus client names them), read from `/proc` on Linux; elsewhere
/// none.
fn process_metrics() -> String {
    use std::fmt::Write;
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return String::new();
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return String::new();
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // /proc reports times in clock ticks of USER_HZ, 100 on Linux.
    const TICKS: f64 = 100.0;
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    // `rest` starts at field 3 (state): utime is field 14, stime 15,
    // num_threads 20, starttime 22, vsize 23, rss 24 (pages).
    let at = |n: usize| field(n - 3);
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: Option<f64>| {
        if let Some(v) = value {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
            );
        }
    };
    let cpu = at(14).zip(at(15)).map(|(u, s)| (u + s) / TICKS);
    metric(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        cpu,
    );
    metric(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        // 4 KiB pages, as on every platform this server is built for.
        at(24).map(|pages| pages * 4096.0),
    );
    metric(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        at(23),
    );
    metric(
        "process_threads",
        "gauge",
        "Number of OS threads in the process.",
        at(20),
    );
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    metric(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        boot.zip(at(22)).map(|(b, t)| b + t / TICKS),
    );
    let fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as f64);
    metric(
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        fds,
    );
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse::<f64>().ok())
        });
    metric(
        "process_max_fds",
        "gauge",
        "Maximum number of open file descriptors.",
        max_fds,
    );
    out
}
