//! Typed settings, read from the environment (and `.env`) or CLI flags, and
//! validated once at start-up. Production refuses weak or missing secrets;
//! development needs no variables at all.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use rand::RngCore;

/// Every setting, as the CLI and environment give it. Names are fixed by
/// `api.md` ("Operating the server").
#[derive(Debug, Clone, Args)]
pub struct SettingsArgs {
    /// `development` or `production`.
    #[arg(long, env = "APP_ENV", default_value = "development", global = true)]
    pub app_env: String,
    #[arg(
        long,
        env = "BIND_ADDR",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub bind_addr: String,
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://maestro-hub.db?mode=rwc",
        global = true
    )]
    pub database_url: String,
    #[arg(
        long,
        env = "PUBLIC_BASE_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub public_base_url: String,
    /// At least 32 bytes; generated per process in development when unset.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<String>,
    #[arg(
        long,
        env = "CORS_ALLOWED_ORIGINS",
        default_value = "http://localhost:8081,http://localhost:19006",
        global = true
    )]
    pub cors_allowed_origins: String,
    #[arg(long, env = "TRUST_PROXY", default_value_t = false, global = true)]
    pub trust_proxy: bool,
    /// `pretty` or `json`; production defaults to `json`.
    #[arg(long, env = "LOG_FORMAT", global = true)]
    pub log_format: Option<String>,
    /// Defaults to on outside production and off in production.
    #[arg(long, env = "PLAYGROUND_ENABLED", global = true)]
    pub playground_enabled: Option<bool>,
    #[arg(long, env = "HOLD_TTL_SECONDS", default_value_t = 600, global = true)]
    pub hold_ttl_seconds: u64,
    /// How often the whole search index is read again in the background
    /// (the safety net for changes nobody announced). Unset: every 60 s, or
    /// every 15 minutes while PostgreSQL announces each change.
    #[arg(long, env = "SEARCH_INDEX_REFRESH_SECONDS", global = true)]
    pub search_index_refresh_seconds: Option<u64>,
    #[arg(
        long,
        env = "MIN_BOOKING_NOTICE_MINUTES",
        default_value_t = 60,
        global = true
    )]
    pub min_booking_notice_minutes: u64,
    #[arg(long, env = "PLATFORM_FEE_BPS", default_value_t = 1000, global = true)]
    pub platform_fee_bps: u32,
    #[arg(
        long,
        env = "RATE_LIMIT_GENERAL_PER_MINUTE",
        default_value_t = 100,
        global = true
    )]
    pub rate_limit_general_per_minute: u32,
    #[arg(
        long,
        env = "RATE_LIMIT_LOGIN_PER_MINUTE",
        default_value_t = 5,
        global = true
    )]
    pub rate_limit_login_per_minute: u32,
    #[arg(
        long,
        env = "RATE_LIMIT_REGISTER_PER_HOUR",
        default_value_t = 20,
        global = true
    )]
    pub rate_limit_register_per_hour: u32,
    /// How long one HTTP request may take before it is answered with 408.
    #[arg(
        long,
        env = "REQUEST_TIMEOUT_SECONDS",
        default_value_t = 30,
        global = true
    )]
    pub request_timeout_seconds: u64,
    #[arg(
        long,
        env = "DATABASE_MAX_CONNECTIONS",
        default_value_t = 20,
        global = true
    )]
    pub database_max_connections: u32,
    /// Unset outside production: the development payment provider is used.
    #[arg(long, env = "STRIPE_SECRET_KEY", hide_env_values = true, global = true)]
    pub stripe_secret_key: Option<String>,
    #[arg(
        long,
        env = "STRIPE_WEBHOOK_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub stripe_webhook_secret: Option<String>,
    /// The Connect endpoint's signing secret (`account.updated` from
    /// connected accounts); either secret is accepted.
    #[arg(
        long,
        env = "STRIPE_CONNECT_WEBHOOK_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub stripe_connect_webhook_secret: Option<String>,
    #[arg(
        long,
        env = "STRIPE_API_BASE",
        default_value = "https://api.stripe.com/",
        global = true
    )]
    pub stripe_api_base: String,
    /// Longest wait for one Stripe API call; a checkout that times out
    /// answers PAYMENT_ERROR and a refund is retried.
    #[arg(
        long,
        env = "STRIPE_TIMEOUT_SECONDS",
        default_value_t = 15,
        global = true
    )]
    pub stripe_timeout_seconds: u64,
    /// A payment still pending this long after its checkout opened is
    /// looked up at Stripe (a lost webhook).
    #[arg(
        long,
        env = "PAYMENT_RECONCILE_AFTER_SECONDS",
        default_value_t = 600,
        global = true
    )]
    pub payment_reconcile_after_seconds: u64,
    /// Unset outside production: emails are logged, not sent.
    #[arg(long, env = "RESEND_API_KEY", hide_env_values = true, global = true)]
    pub resend_api_key: Option<String>,
    #[arg(
        long,
        env = "RESEND_BASE_URL",
        default_value = "https://api.resend.com",
        global = true
    )]
    pub resend_base_url: String,
    /// The sender of every email, e.g. `Maestro Hub <hello@maestrohub.example>`
    /// (a domain verified at Resend).
    #[arg(long, env = "EMAIL_FROM", global = true)]
    pub email_from: Option<String>,
    /// Emails sent per second by one instance: set it to the Resend
    /// account's limit (Resend's default is 2). resend-rs reads the same
    /// variable for its own burst size, so a bad value is refused here at
    /// start rather than panicking at the first email.
    #[arg(long, env = "RESEND_RATE_LIMIT", global = true)]
    pub resend_rate_limit: Option<u32>,
    /// Expo's push service (tests point it at a local fake).
    #[arg(
        long,
        env = "EXPO_PUSH_URL",
        default_value = "https://exp.host",
        global = true
    )]
    pub expo_push_url: String,
    /// Sent as a bearer token when the Expo project requires one
    /// ("enhanced push security").
    #[arg(long, env = "EXPO_ACCESS_TOKEN", hide_env_values = true, global = true)]
    pub expo_access_token: Option<String>,
    /// A second listener for `/metrics` (and the probes), e.g.
    /// `127.0.0.1:9100`, for the scraper only.
    #[arg(long, env = "METRICS_ADDR", global = true)]
    pub metrics_addr: Option<SocketAddr>,
    /// With it, `/metrics` on the main port answers only
    /// `Authorization: Bearer <token>` (at least 32 characters).
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true, global = true)]
    pub metrics_token: Option<String>,
    /// Shared rate limits and live updates for several instances, e.g.
    /// `redis://127.0.0.1:6379`. Unset: both stay in this process.
    #[arg(long, env = "REDIS_URL", hide_env_values = true, global = true)]
    pub redis_url: Option<String>,
    /// Internal errors go to this Sentry (or compatible) project.
    #[arg(long, env = "SENTRY_DSN", hide_env_values = true, global = true)]
    pub sentry_dsn: Option<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// The limits that keep one client from exhausting the server. Each is
/// listed with its variable and default in the README's security section.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Most a request may cost: every field resolved, list sizes included.
    #[arg(
        long,
        env = "GRAPHQL_MAX_COST",
        default_value_t = 20_000,
        global = true
    )]
    pub graphql_max_cost: u64,
    /// Most field selections a request may hold once fragments are expanded.
    #[arg(
        long,
        env = "GRAPHQL_MAX_FIELDS",
        default_value_t = 1_000,
        global = true
    )]
    pub graphql_max_fields: u64,
    /// Holds and slots start at most this many days ahead.
    #[arg(
        long,
        env = "BOOKING_HORIZON_DAYS",
        default_value_t = 180,
        global = true
    )]
    pub booking_horizon_days: u32,
    /// Lifetime of an access token; a token claiming a longer one is refused.
    #[arg(
        long,
        env = "ACCESS_TOKEN_TTL_SECONDS",
        default_value_t = 900,
        global = true
    )]
    pub access_token_ttl_seconds: u64,
    /// A client must send a request's headers within this time, also on a
    /// kept-alive connection waiting for its next request.
    #[arg(
        long,
        env = "HEADER_READ_TIMEOUT_SECONDS",
        default_value_t = 10,
        global = true
    )]
    pub header_read_timeout_seconds: u64,
    /// Open connections at once, in all.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 4096, global = true)]
    pub max_connections: u32,
    /// Open connections at once from one client IP.
    #[arg(
        long,
        env = "MAX_CONNECTIONS_PER_IP",
        default_value_t = 256,
        global = true
    )]
    pub max_connections_per_ip: u32,
    /// Live subscriptions on one WebSocket (beyond it: close 4429).
    #[arg(
        long,
        env = "WS_MAX_SUBSCRIPTIONS",
        default_value_t = 20,
        global = true
    )]
    pub ws_max_subscriptions: u32,
    /// Open WebSockets of one user (beyond it: close 4429).
    #[arg(
        long,
        env = "WS_MAX_SOCKETS_PER_USER",
        default_value_t = 10,
        global = true
    )]
    pub ws_max_sockets_per_user: u32,
    /// `createHold`, `releaseHold` per user, per minute.
    #[arg(
        long,
        env = "RATE_LIMIT_HOLDS_PER_MINUTE",
        default_value_t = crate::ratelimit::default_of(crate::ratelimit::Bucket::Holds),
        global = true
    )]
    pub rate_limit_holds_per_minute: u32,
    /// `bookHold`, `purchasePackage`, `purchaseSponsorship` per user, per minute.
    #[arg(
        long,
        env = "RATE_LIMIT_CHECKOUTS_PER_MINUTE",
        default_value_t = crate::ratelimit::default_of(crate::ratelimit::Bucket::Checkouts),
        global = true
    )]
    pub rate_limit_checkouts_per_minute: u32,
    /// `startPayoutOnboarding` per user, per hour.
    #[arg(
        long,
        env = "RATE_LIMIT_ONBOARDING_PER_HOUR",
        default_value_t = crate::ratelimit::default_of(crate::ratelimit::Bucket::Onboarding),
        global = true
    )]
    pub rate_limit_onboarding_per_hour: u32,
    /// `requestEmailVerification` per user, per hour.
    #[arg(
        long,
        env = "RATE_LIMIT_VERIFICATION_PER_HOUR",
        default_value_t = crate::ratelimit::default_of(crate::ratelimit::Bucket::Verification),
        global = true
    )]
    pub rate_limit_verification_per_hour: u32,
    /// `requestPasswordReset` per client IP, per hour.
    #[arg(
        long,
        env = "RATE_LIMIT_RESET_PER_HOUR",
        default_value_t = crate::ratelimit::default_of(crate::ratelimit::Bucket::ResetIp),
        global = true
    )]
    pub rate_limit_reset_per_hour: u32,
    /// `refreshToken` per client IP, per minute.
    #[arg(
        long,
        env = "RATE_LIMIT_REFRESH_PER_MINUTE",
        default_value_t = crate::ratelimit::default_of(crate::ratelimit::Bucket::Refresh),
        global = true
    )]
    pub rate_limit_refresh_per_minute: u32,
    /// `submitReview`, `respondToReview` per user, per hour.
    #[arg(
        long,
        env = "RATE_LIMIT_REVIEWS_PER_HOUR",
        default_value_t = crate::ratelimit::default_of(crate::ratelimit::Bucket::Reviews),
        global = true
    )]
    pub rate_limit_reviews_per_hour: u32,
    /// `exportMyData` per user, per hour.
    #[arg(
        long,
        env = "RATE_LIMIT_EXPORTS_PER_HOUR",
        default_value_t = crate::ratelimit::default_of(crate::ratelimit::Bucket::DataExports),
        global = true
    )]
    pub rate_limit_exports_per_hour: u32,
    /// `changePassword`, `deleteMyAccount` per user, per 15 minutes.
    #[arg(
        long,
        env = "RATE_LIMIT_PASSWORD_CHECKS_PER_15_MINUTES",
        default_value_t = crate::ratelimit::default_of(crate::ratelimit::Bucket::PasswordChecks),
        global = true
    )]
    pub rate_limit_password_checks_per_15_minutes: u32,
}

impl LimitArgs {
    /// The limits as clap gives them with no flags (the environment is read).
    pub fn defaults() -> Self {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            limits: LimitArgs,
        }
        <Only as clap::Parser>::parse_from(["maestro-hub"]).limits
    }
}

/// Validated limits (see [`LimitArgs`]).
#[derive(Debug, Clone)]
pub struct Limits {
    pub graphql_max_cost: u64,
    pub graphql_max_fields: u64,
    pub booking_horizon: Duration,
    pub access_token_ttl: Duration,
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub ws_max_subscriptions: usize,
    pub ws_max_sockets_per_user: usize,
    /// The budget of each per-field bucket of [`crate::ratelimit::FIELD_LIMITS`].
    pub field_budgets: Vec<(crate::ratelimit::Bucket, u32)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Validated settings. Built only through [`Settings::from_args`].
#[derive(Clone)]
pub struct Settings {
    pub env: Environment,
    pub bind_addr: SocketAddr,
    pub database_url: String,
    pub public_base_url: String,
    pub jwt_secret: Secret,
    pub cors_allowed_origins: Vec<String>,
    pub trust_proxy: bool,
    pub log_format: LogFormat,
    pub playground_enabled: bool,
    pub hold_ttl: Duration,
    /// `SEARCH_INDEX_REFRESH_SECONDS`, if set.
    pub search_index_refresh: Option<Duration>,
    pub min_booking_notice: Duration,
    pub platform_fee_bps: u32,
    pub rate_limit_general_per_minute: u32,
    pub rate_limit_login_per_minute: u32,
    pub rate_limit_register_per_hour: u32,
    pub request_timeout: Duration,
    pub database_max_connections: u32,
    pub stripe_secret_key: Option<Secret>,
    pub stripe_webhook_secret: Option<Secret>,
    pub stripe_connect_webhook_secret: Option<Secret>,
    /// With a trailing slash, as the Stripe client expects.
    pub stripe_api_base: String,
    pub stripe_timeout: Duration,
    pub payment_reconcile_after: Duration,
    pub resend_api_key: Option<Secret>,
    pub resend_base_url: String,
    pub email_from: String,
    pub resend_rate_limit: u32,
    pub expo_push_url: String,
    pub expo_access_token: Option<Secret>,
    pub metrics_addr: Option<SocketAddr>,
    pub metrics_token: Option<Secret>,
    pub sentry_dsn: Option<Secret>,
    /// May hold a password, so it is kept like a secret.
    pub redis_url: Option<Secret>,
    pub limits: Limits,
}

/// See [`Settings::metrics_on_main_port`].
#[derive(Debug)]
pub enum MainPortMetrics<'a> {
    WithToken(&'a Secret),
    Hidden,
    Open,
}

/// A secret value whose `Debug` never prints it.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Why the settings were refused. The message names the variable at fault.
#[derive(Debug, thiserror::Error)]
#[error("configuration refused: {0}")]
pub struct ConfigError(pub String);

/// Values seen in tutorials and templates; a secret equal to (or built from)
/// one of them is as good as public.
const PLACEHOLDER_SECRETS: &[&str] = &[
    "secret",
    "changeme",
    "change-me",
    "change_me",
    "changethis",
    "placeholder",
    "your-secret",
    "your_secret",
    "yoursecret",
    "jwt_secret",
    "jwt-secret",
    "jwtsecret",
    "supersecret",
    "super-secret",
    "mysecret",
    "development",
    "example",
    "password",
    "default",
    "replace-me",
    "replaceme",
    "xxxxxxxx",
    "12345678",
];

pub const MIN_SECRET_BYTES: usize = 32;

/// An outside API's base URL (Stripe, Resend): https, or plain http only
/// outside production or to this machine (a local mock or egress proxy),
/// so keys never cross a network in clear.
fn api_base_allowed(url: &str, production: bool) -> bool {
    let loopback = ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"]
        .iter()
        .any(|p| url.starts_with(p));
    url.starts_with("https://") || loopback || (!production && url.starts_with("http://"))
}

/// Stripe's keys, whenever one is set: a secret key needs its webhook
/// secret (payments would never confirm without it), and each must look
/// like what Stripe issues, so a placeholder or a swapped pair is caught
/// at start rather than at the first payment.
fn check_stripe(
    key: Option<&Secret>,
    webhook: Option<&Secret>,
    connect: Option<&Secret>,
) -> Vec<String> {
    let text = |s: &Secret| String::from_utf8_lossy(s.expose()).into_owned();
    let mut problems = Vec::new();
    if let Some(key) = key.map(text) {
        let ok_prefix = ["sk_live_", "sk_test_", "rk_live_", "rk_test_"]
            .iter()
            .any(|p| key.starts_with(p));
        if !ok_prefix || key.len() < 24 {
            problems.push(
                "STRIPE_SECRET_KEY must be a Stripe secret or restricted key (sk_... or rk_...)"
                    .into(),
            );
        }
        if webhook.is_none() {
            problems.push("STRIPE_WEBHOOK_SECRET is required with STRIPE_SECRET_KEY".into());
        }
    } else if webhook.is_some() || connect.is_some() {
        problems.push("a Stripe webhook secret is set without STRIPE_SECRET_KEY".into());
    }
    for (name, s) in [
        ("STRIPE_WEBHOOK_SECRET", webhook),
        ("STRIPE_CONNECT_WEBHOOK_SECRET", connect),
    ] {
        if let Some(s) = s.map(text)
            && (!s.starts_with("whsec_") || s.len() < 20)
        {
            problems.push(format!(
                "{name} must be a webhook signing secret (whsec_...)"
            ));
        }
    }
    problems
}

/// Checks a JWT secret for production: long enough, not a template value,
/// and not a trivially repetitive string.
pub fn check_jwt_secret(secret: &str) -> Result<(), String> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes (got {})",
            secret.len()
        ));
    }
    let folded: String = secret
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    if PLACEHOLDER_SECRETS.iter().any(|p| {
        let p: String = p.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        folded.contains(&p)
    }) {
        return Err("JWT_SECRET is a known placeholder value".into());
    }
    let mut distinct: Vec<u8> = secret.bytes().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 10 {
        return Err("JWT_SECRET is too repetitive to be random".into());
    }
    Ok(())
}

impl Settings {
    pub fn from_args(args: SettingsArgs) -> Result<Self, ConfigError> {
        let env = match args.app_env.trim().to_ascii_lowercase().as_str() {
            "development" | "dev" | "test" => Environment::Development,
            "production" | "prod" => Environment::Production,
            other => {
                return Err(ConfigError(format!(
                    "APP_ENV must be `development` or `production`, not `{other}`"
                )));
            }
        };
        let production = env == Environment::Production;
        // Every problem is reported at once, so an operator fixes them in one go.
        let mut problems: Vec<String> = Vec::new();
        let bind_addr: SocketAddr = args.bind_addr.parse().map_err(|_| {
            ConfigError(format!(
                "BIND_ADDR `{}` is not an address:port",
                args.bind_addr
            ))
        })?;

        let database_url = args.database_url.trim().to_string();
        let is_sqlite = database_url.starts_with("sqlite:");
        let is_postgres =
            database_url.starts_with("postgres://") || database_url.starts_with("postgresql://");
        if !is_sqlite && !is_postgres {
            problems.push("DATABASE_URL must be a sqlite:// or postgres:// URL".into());
        }
        if production && is_sqlite {
            problems.push("DATABASE_URL must point at PostgreSQL in production, not SQLite".into());
        }

        let jwt_secret = match (args.jwt_secret.as_deref().map(str::trim), production) {
            (Some(s), _) if !s.is_empty() => {
                if let Err(problem) = check_jwt_secret(s) {
                    problems.push(problem);
                }
                Secret(s.as_bytes().to_vec())
            }
            (_, true) => {
                problems.push("JWT_SECRET is required in production".into());
                Secret(Vec::new())
            }
            (_, false) => {
                // Development only: a fresh random secret per process. Tokens
                // die with the process, which is what a developer expects.
                let mut bytes = vec![0u8; 48];
                rand::rng().fill_bytes(&mut bytes);
                Secret(bytes)
            }
        };

        let cors_allowed_origins: Vec<String> = args
            .cors_allowed_origins
            .split(',')
            .map(|s| s.trim().trim_end_matches('/').to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if cors_allowed_origins.iter().any(|o| o == "*") {
            if production {
                problems
                    .push("CORS_ALLOWED_ORIGINS must list origins in production, not `*`".into());
            }
        } else if production && cors_allowed_origins.is_empty() {
            problems.push("CORS_ALLOWED_ORIGINS must not be empty in production".into());
        }
        for origin in &cors_allowed_origins {
            if origin != "*" && http::HeaderValue::from_str(origin).is_err() {
                return Err(ConfigError(format!(
                    "CORS_ALLOWED_ORIGINS has an invalid origin `{origin}`"
                )));
            }
        }

        let log_format = match args.log_format.as_deref().map(str::trim) {
            Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            None | Some("") => {
                if production {
                    LogFormat::Json
                } else {
                    LogFormat::Pretty
                }
            }
            Some(other) => {
                return Err(ConfigError(format!(
                    "LOG_FORMAT must be `pretty` or `json`, not `{other}`"
                )));
            }
        };

        if args.platform_fee_bps > 10_000 {
            return Err(ConfigError("PLATFORM_FEE_BPS must be at most 10000".into()));
        }
        for (name, value) in [
            (
                "RATE_LIMIT_GENERAL_PER_MINUTE",
                args.rate_limit_general_per_minute,
            ),
            (
                "RATE_LIMIT_LOGIN_PER_MINUTE",
                args.rate_limit_login_per_minute,
            ),
            (
                "RATE_LIMIT_REGISTER_PER_HOUR",
                args.rate_limit_register_per_hour,
            ),
            ("DATABASE_MAX_CONNECTIONS", args.database_max_connections),
            ("BOOKING_HORIZON_DAYS", args.limits.booking_horizon_days),
            ("MAX_CONNECTIONS", args.limits.max_connections),
            ("MAX_CONNECTIONS_PER_IP", args.limits.max_connections_per_ip),
            ("WS_MAX_SUBSCRIPTIONS", args.limits.ws_max_subscriptions),
            (
                "WS_MAX_SOCKETS_PER_USER",
                args.limits.ws_max_sockets_per_user,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError(format!("{name} must be greater than 0")));
            }
        }
        let l = &args.limits;
        let field_budgets = {
            use crate::ratelimit::Bucket;
            vec![
                (Bucket::Holds, l.rate_limit_holds_per_minute),
                (Bucket::Checkouts, l.rate_limit_checkouts_per_minute),
                (Bucket::Onboarding, l.rate_limit_onboarding_per_hour),
                (Bucket::Verification, l.rate_limit_verification_per_hour),
                (Bucket::ResetIp, l.rate_limit_reset_per_hour),
                (Bucket::Refresh, l.rate_limit_refresh_per_minute),
                (Bucket::Reviews, l.rate_limit_reviews_per_hour),
                (Bucket::DataExports, l.rate_limit_exports_per_hour),
                (
                    Bucket::PasswordChecks,
                    l.rate_limit_password_checks_per_15_minutes,
                ),
            ]
        };
        for (bucket, budget) in &field_budgets {
            if *budget == 0
                && let Some(row) = crate::ratelimit::FIELD_LIMITS
                    .iter()
                    .find(|r| r.bucket == *bucket)
            {
                return Err(ConfigError(format!(
                    "{} must be greater than 0",
                    row.variable
                )));
            }
        }
        if l.graphql_max_cost == 0
            || l.graphql_max_fields == 0
            || l.access_token_ttl_seconds == 0
            || l.header_read_timeout_seconds == 0
        {
            return Err(ConfigError(
                "GRAPHQL_MAX_COST, GRAPHQL_MAX_FIELDS, ACCESS_TOKEN_TTL_SECONDS and \
                 HEADER_READ_TIMEOUT_SECONDS must be greater than 0"
                    .into(),
            ));
        }
        let limits = Limits {
            graphql_max_cost: l.graphql_max_cost,
            graphql_max_fields: l.graphql_max_fields,
            booking_horizon: Duration::from_secs(u64::from(l.booking_horizon_days) * 86_400),
            access_token_ttl: Duration::from_secs(l.access_token_ttl_seconds),
            header_read_timeout: Duration::from_secs(l.header_read_timeout_seconds),
            max_connections: l.max_connections as usize,
            max_connections_per_ip: l.max_connections_per_ip as usize,
            ws_max_subscriptions: l.ws_max_subscriptions as usize,
            ws_max_sockets_per_user: l.ws_max_sockets_per_user as usize,
            field_budgets,
        };
        if args.hold_ttl_seconds == 0
            || args.request_timeout_seconds == 0
            || args.search_index_refresh_seconds == Some(0)
        {
            return Err(ConfigError(
                "HOLD_TTL_SECONDS, REQUEST_TIMEOUT_SECONDS and SEARCH_INDEX_REFRESH_SECONDS must be greater than 0".into(),
            ));
        }
        let public_base_url = args
            .public_base_url
            .trim()
            .trim_end_matches('/')
            .to_string();
        if !(public_base_url.starts_with("http://") || public_base_url.starts_with("https://")) {
            return Err(ConfigError("PUBLIC_BASE_URL must be an http(s) URL".into()));
        }

        let secret = |v: Option<String>| {
            v.map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .map(|s| Secret(s.into_bytes()))
        };
        let stripe_secret_key = secret(args.stripe_secret_key);
        let stripe_webhook_secret = secret(args.stripe_webhook_secret);
        let stripe_connect_webhook_secret = secret(args.stripe_connect_webhook_secret);
        if production && (stripe_secret_key.is_none() || stripe_webhook_secret.is_none()) {
            problems.push(
                "STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET are required in production \
                 (the development payment provider is refused)"
                    .into(),
            );
        }
        problems.extend(check_stripe(
            stripe_secret_key.as_ref(),
            stripe_webhook_secret.as_ref(),
            stripe_connect_webhook_secret.as_ref(),
        ));
        let mut stripe_api_base = args.stripe_api_base.trim().to_string();
        if !api_base_allowed(&stripe_api_base, production) {
            problems.push("STRIPE_API_BASE must be an https URL".into());
        }
        if !stripe_api_base.ends_with('/') {
            stripe_api_base.push('/');
        }
        let resend_api_key = secret(args.resend_api_key);
        let email_from = args
            .email_from
            .map(|f| f.trim().to_string())
            .filter(|f| !f.is_empty());
        if production && resend_api_key.is_none() {
            problems.push(
                "RESEND_API_KEY is required in production (emails would only be logged)".into(),
            );
        }
        if production && email_from.is_none() {
            problems.push("EMAIL_FROM is required in production".into());
        }
        if let Some(from) = &email_from
            && (!from.contains('@') || from.contains(['\r', '\n']))
        {
            problems.push(
                "EMAIL_FROM must be an address, e.g. `Maestro Hub <hello@example.com>`".into(),
            );
        }
        if args.resend_rate_limit == Some(0) {
            problems.push("RESEND_RATE_LIMIT must be greater than 0".into());
        }
        let resend_base_url = args.resend_base_url.trim().to_string();
        if url::Url::parse(&resend_base_url).is_err()
            || !api_base_allowed(&resend_base_url, production)
        {
            problems.push("RESEND_BASE_URL must be an https URL".into());
        }
        let expo_push_url = args.expo_push_url.trim().to_string();
        if url::Url::parse(&expo_push_url).is_err() || !api_base_allowed(&expo_push_url, production)
        {
            problems.push("EXPO_PUSH_URL must be an https URL".into());
        }
        let expo_access_token = secret(args.expo_access_token);
        if expo_access_token
            .as_ref()
            .is_some_and(|t| t.expose().len() < 16)
        {
            problems.push("EXPO_ACCESS_TOKEN is too short to be an Expo access token".into());
        }
        if args.stripe_timeout_seconds >= args.request_timeout_seconds {
            problems.push(
                "STRIPE_TIMEOUT_SECONDS must be shorter than REQUEST_TIMEOUT_SECONDS \
                 (a checkout that fails must be undone within the request)"
                    .into(),
            );
        }
        if args.stripe_timeout_seconds == 0 || args.payment_reconcile_after_seconds == 0 {
            problems.push(
                "STRIPE_TIMEOUT_SECONDS and PAYMENT_RECONCILE_AFTER_SECONDS must be greater than 0"
                    .into(),
            );
        }
        let metrics_token = secret(args.metrics_token);
        if metrics_token
            .as_ref()
            .is_some_and(|t| t.expose().len() < 32)
        {
            problems.push("METRICS_TOKEN must be at least 32 characters".into());
        }
        if args.metrics_addr.is_some_and(|a| a == bind_addr) {
            problems.push("METRICS_ADDR must differ from BIND_ADDR".into());
        }
        let redis_url = secret(args.redis_url);
        if let Some(url) = &redis_url
            && redis::Client::open(String::from_utf8_lossy(url.expose()).as_ref()).is_err()
        {
            problems.push("REDIS_URL is not a redis:// or rediss:// URL".into());
        }
        let sentry_dsn = secret(args.sentry_dsn);
        if let Some(dsn) = &sentry_dsn
            && String::from_utf8_lossy(dsn.expose())
                .parse::<sentry::types::Dsn>()
                .is_err()
        {
            problems.push("SENTRY_DSN is not a valid DSN".into());
        }
        if !problems.is_empty() {
            return Err(ConfigError(problems.join("; ")));
        }
        Ok(Settings {
            env,
            bind_addr,
            database_url,
            public_base_url,
            jwt_secret,
            cors_allowed_origins,
            trust_proxy: args.trust_proxy,
            log_format,
            playground_enabled: args.playground_enabled.unwrap_or(!production),
            hold_ttl: Duration::from_secs(args.hold_ttl_seconds),
            search_index_refresh: args.search_index_refresh_seconds.map(Duration::from_secs),
            min_booking_notice: Duration::from_secs(args.min_booking_notice_minutes * 60),
            platform_fee_bps: args.platform_fee_bps,
            rate_limit_general_per_minute: args.rate_limit_general_per_minute,
            rate_limit_login_per_minute: args.rate_limit_login_per_minute,
            rate_limit_register_per_hour: args.rate_limit_register_per_hour,
            request_timeout: Duration::from_secs(args.request_timeout_seconds),
            database_max_connections: args.database_max_connections,
            stripe_secret_key,
            stripe_webhook_secret,
            stripe_connect_webhook_secret,
            stripe_api_base,
            stripe_timeout: Duration::from_secs(args.stripe_timeout_seconds),
            payment_reconcile_after: Duration::from_secs(args.payment_reconcile_after_seconds),
            resend_api_key,
            resend_base_url,
            email_from: email_from
                .unwrap_or_else(|| "Maestro Hub <no-reply@maestrohub.localhost>".into()),
            resend_rate_limit: args.resend_rate_limit.unwrap_or(2),
            expo_push_url,
            expo_access_token,
            metrics_addr: args.metrics_addr,
            metrics_token,
            sentry_dsn,
            redis_url,
            limits,
        })
    }

    pub fn is_production(&self) -> bool {
        self.env == Environment::Production
    }

    /// The calls a rate-limit bucket allows per its period.
    pub fn budget_of(&self, bucket: crate::ratelimit::Bucket) -> u32 {
        use crate::ratelimit::Bucket;
        match bucket {
            Bucket::LoginIp | Bucket::LoginEmail => self.rate_limit_login_per_minute,
            Bucket::Register => self.rate_limit_register_per_hour,
            Bucket::ResetEmail => 3,
            other => self
                .limits
                .field_budgets
                .iter()
                .find(|(b, _)| *b == other)
                .map_or(crate::ratelimit::default_of(other), |(_, n)| *n),
        }
    }

    /// Whether `/metrics` answers on the main port: with `METRICS_TOKEN`
    /// only to that bearer token; without one, not when `METRICS_ADDR`
    /// serves it or in production; otherwise (development) to anyone.
    pub fn metrics_on_main_port(&self) -> MainPortMetrics<'_> {
        match (&self.metrics_token, self.metrics_addr) {
            (Some(token), _) => MainPortMetrics::WithToken(token),
            (None, Some(_)) => MainPortMetrics::Hidden,
            (None, None) if self.is_production() => MainPortMetrics::Hidden,
            (None, None) => MainPortMetrics::Open,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_settings_are_checked_together() {
        let s = |v: &str| Secret(v.as_bytes().to_vec());
        let (key, hook) = (
            s("sk_test_0123456789abcdefghijkl"),
            s("whsec_0123456789abcdefghij"),
        );
        assert!(check_stripe(Some(&key), Some(&hook), None).is_empty());
        assert!(check_stripe(None, None, None).is_empty());
        let missing = check_stripe(Some(&key), None, None).join(";");
        assert!(missing.contains("STRIPE_WEBHOOK_SECRET"), "{missing}");
        let swapped = check_stripe(Some(&hook), Some(&key), None).join(";");
        assert!(
            swapped.contains("STRIPE_SECRET_KEY") && swapped.contains("STRIPE_WEBHOOK_SECRET"),
            "{swapped}"
        );
        assert!(
            !check_stripe(Some(&s("pk_live_0123456789abcdefghij")), Some(&hook), None).is_empty()
        );
        assert!(!check_stripe(None, Some(&hook), None).is_empty());
        assert!(!check_stripe(Some(&key), Some(&hook), Some(&s("changeme"))).is_empty());
    }

    #[test]
    fn secrets_are_checked() {
        assert!(check_jwt_secret("short").is_err());
        assert!(check_jwt_secret("changeme-changeme-changeme-changeme").is_err());
        assert!(check_jwt_secret(&"a".repeat(40)).is_err());
        assert!(check_jwt_secret("q8Jx2LrT0vNw5ZpYc3HkF9sBm1GdUeAo7iRt").is_ok());
    }
}
