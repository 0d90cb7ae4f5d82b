//! The composition root: connects the database, builds the domain's
//! context, the shared state, the schema and the router (`build`), and
//! serves them with the background jobs (`serve`). Only this module knows
//! every layer; none of them imports it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use migration::MigratorTrait;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Settings;
use crate::domain::auth::Auth;
use crate::domain::email::Mailer;
use crate::domain::listing::ListingIndex;
use crate::domain::payment::PaymentProvider;
use crate::domain::reference::ReferenceData;
use crate::domain::review::ReviewCache;
use crate::domain::{DomainCtx, Policy};
use crate::events::InProcessBus;
use crate::integrations::dev_payments::DevPaymentProvider;
use crate::integrations::redis::{RedisBus, RedisLink, RedisRateLimiter};
use crate::integrations::resend::{LogMailer, ResendMailer};
use crate::integrations::stripe::StripeProvider;
use crate::metrics::Metrics;
use crate::ratelimit::{InMemoryRateLimiter, RateLimiter};
use crate::state::AppState;

pub struct App {
    pub state: AppState,
    pub router: Router,
    /// Tells every background task to stop (sent by [`serve`] on shutdown).
    stop: watch::Sender<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("{0}")]
    Other(String),
}

pub async fn connect_and_migrate(settings: &Settings) -> Result<DatabaseConnection, StartError> {
    let db = crate::db::connect(&settings.database_url, settings.database_max_connections).await?;
    migrate(&db, &settings.database_url).await?;
    Ok(db)
}

/// Runs pending migrations. On PostgreSQL instances starting together take
/// turns under an advisory lock: one migrates, the others wait and then
/// find nothing to do. (SQLite is one file for one process.)
pub async fn migrate(db: &DatabaseConnection, database_url: &str) -> Result<(), StartError> {
    use sqlx::Connection;
    if db.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
        migration::Migrator::up(db, None).await?;
        return Ok(());
    }
    // The lock belongs to one session: a connection of its own, outside the
    // pool (which the migrations use, whatever its size); closing it
    // releases the lock whatever happens.
    let database = |e: sqlx::Error| StartError::Other(format!("database: {e}"));
    let mut lock = sqlx::PgConnection::connect(database_url)
        .await
        .map_err(database)?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut lock)
        .await
        .map_err(database)?;
    let result = migration::Migrator::up(db, None).await;
    let _ = lock.close().await;
    Ok(result?)
}

/// The advisory lock migrations run under (any constant; "maestro" in ASCII).
const MIGRATION_LOCK: i64 = 0x006d_6165_7374_726f;

/// The payment provider for these settings: Stripe when its key is set
/// (in development too), otherwise the development provider
/// (configuration refuses that in production).
fn payment_provider(settings: &Settings) -> Result<Arc<dyn PaymentProvider>, StartError> {
    if let Some(key) = &settings.stripe_secret_key {
        let key = String::from_utf8_lossy(key.expose());
        let stripe = StripeProvider::new(&key, &settings.stripe_api_base, settings.stripe_timeout)
            .map_err(StartError::Other)?;
        return Ok(Arc::new(stripe));
    }
    Ok(Arc::new(DevPaymentProvider::new(&settings.public_base_url)))
}

/// The mailer for these settings: Resend with a key, otherwise (development
/// only; production refuses) the logging mailer, also returned as the
/// development mailbox.
#[allow(clippy::type_complexity)]
fn mailer(settings: &Settings) -> Result<(Arc<dyn Mailer>, Option<Arc<LogMailer>>), StartError> {
    if let Some(key) = &settings.resend_api_key {
        let key = String::from_utf8_lossy(key.expose());
        let resend = ResendMailer::new(
            &key,
            &settings.resend_base_url,
            &settings.email_from,
            settings.resend_rate_limit,
            std::time::Duration::from_secs(10),
        )
        .map_err(StartError::Other)?;
        return Ok((Arc::new(resend), None));
    }
    let log = Arc::new(LogMailer::default());
    Ok((log.clone(), Some(log)))
}

/// Builds state and router on an already migrated database.
pub async fn build(settings: Settings, mut db: DatabaseConnection) -> Result<App, StartError> {
    let statements = Arc::new(AtomicU64::new(0));
    let counter = statements.clone();
    db.set_metric_callback(move |_| {
        if crate::jobs::BACKGROUND.try_with(|_| ()).is_err() {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    let auth = Auth::new(
        settings.jwt_secret.expose(),
        settings.limits.access_token_ttl,
    )
    .await
    .map_err(|e| StartError::Other(e.message()))?;
    let reference = ReferenceData::load(&db)
        .await
        .map_err(|e| StartError::Other(e.message()))?;
    let (stop, _) = watch::channel(false);
    // With Redis, limits and live updates are shared by every instance.
    let redis = match &settings.redis_url {
        Some(url) => Some(
            RedisLink::start(&String::from_utf8_lossy(url.expose()), stop.subscribe())
                .map_err(StartError::Other)?,
        ),
        None => None,
    };
    let (limiter, events): (Arc<dyn RateLimiter>, Arc<dyn crate::events::EventBus>) = match &redis {
        Some(link) => (
            Arc::new(RedisRateLimiter::new(link.clone(), |b| {
                settings.budget_of(b)
            })),
            RedisBus::start(link.clone(), db.clone(), stop.subscribe()),
        ),
        None => (
            Arc::new(InMemoryRateLimiter::new(|b| settings.budget_of(b))),
            Arc::new(InProcessBus::new()),
        ),
    };
    let payments = payment_provider(&settings)?;
    let (mailer, dev_mailbox) = mailer(&settings)?;
    let templates = Arc::new(crate::email::Templates::new().map_err(StartError::Other)?);
    let push = Arc::new(
        crate::integrations::expo::ExpoPush::new(
            &settings.expo_push_url,
            settings
                .expo_access_token
                .as_ref()
                .map(|t| String::from_utf8_lossy(t.expose()).into_owned()),
            std::time::Duration::from_secs(15),
        )
        .map_err(StartError::Other)?,
    );
    let activity = Arc::new(
        crate::domain::activity::Activity::new().map_err(|e| StartError::Other(e.to_string()))?,
    );
    let metrics = Arc::new(Metrics::new(&activity).map_err(|e| StartError::Other(e.to_string()))?);
    let policy = Policy {
        hold_ttl: settings.hold_ttl,
        min_booking_notice: settings.min_booking_notice,
        platform_fee_bps: settings.platform_fee_bps,
        public_base_url: settings.public_base_url.clone(),
        booking_horizon: settings.limits.booking_horizon,
        payouts_required: payments.kind() == crate::domain::payment::ProviderKind::Stripe,
        reconcile_after: settings.payment_reconcile_after,
    };
    let listings = Arc::new(ListingIndex::new(reference.clone()));
    if let Some(every) = settings.search_index_refresh {
        listings.set_max_age(every);
    }
    let domain = DomainCtx {
        db,
        auth,
        listings,
        reference,
        payments,
        events,
        policy: Arc::new(policy),
        revocations: Arc::default(),
        mailer,
        push,
        templates,
        outbox_wake: Arc::default(),
        activity,
        writer: Arc::default(),
        link_seal: Arc::new(
            crate::domain::email::LinkSeal::new(settings.jwt_secret.expose())
                .map_err(StartError::Other)?,
        ),
    };
    let state = AppState {
        settings: Arc::new(settings),
        domain,
        limiter,
        metrics,
        statements,
        review_cache: ReviewCache::default(),
        dev_mailbox,
        redis,
    };
    let schema = crate::graphql::build_schema(state.clone());
    let router = crate::http::router::router(state.clone(), schema, stop.subscribe());
    Ok(App {
        state,
        router,
        stop,
    })
}

/// Serves until `shutdown` resolves, then stops accepting and lets
/// in-flight requests finish. Background jobs stop with it.
pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The scraper's listener, bound before anything runs so a taken
    // address stops the start.
    let ops = match app.state.settings.metrics_addr {
        Some(addr) => {
            let ops_listener = TcpListener::bind(addr).await.map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot listen on METRICS_ADDR {addr}: {e}"),
                )
            })?;
            tracing::info!(%addr, "metrics listening (/metrics, /healthz, /readyz)");
            let mut stop = app.stop.subscribe();
            let router = crate::http::router::ops_router(app.state.clone());
            Some(tokio::spawn(async move {
                let served = axum::serve(ops_listener, router)
                    .with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|s| *s).await;
                    })
                    .await;
                if let Err(e) = served {
                    tracing::warn!(error = %e, "the metrics listener stopped");
                }
            }))
        }
        None => None,
    };
    let jobs = crate::jobs::spawn(app.state.clone(), app.stop.subscribe());
    let limits = app.state.settings.limits.clone();
    let result = crate::http::server::serve(listener, app.router, &limits, shutdown).await;
    let _ = app.stop.send(true);
    // Each socket sends its 1012 close frame now; let them go out before
    // the process exits (a frame still queued would be lost: 1006).
    let closing = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while app.state.metrics.websockets_open() > 0 && tokio::time::Instant::now() < closing {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // A scraper's half-sent request never holds the exit up for long.
    if let Some(ops) = ops
        && tokio::time::timeout(std::time::Duration::from_secs(5), ops)
            .await
            .is_err()
    {
        tracing::warn!("the metrics listener did not stop in 5 s; leaving it");
    }
    for job in jobs {
        let _ = job.await;
    }
    result
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received; draining in-flight requests");
}
