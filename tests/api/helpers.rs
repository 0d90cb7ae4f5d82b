//! `spawn_app()` and small helpers for talking GraphQL to it.

use std::sync::atomic::{AtomicUsize, Ordering};

use maestro_hub::app;
use maestro_hub::config::{Settings, SettingsArgs};
use maestro_hub::state::AppState;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use tokio::sync::{OnceCell, oneshot};
use tokio::task::JoinHandle;

pub const PASSWORD: &str = "Tangerine-Koala-42";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub jwt_secret: String,
    pub database_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    _server: JoinHandle<std::io::Result<()>>,
    _tmp: Option<tempfile::TempDir>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn random_secret() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Development defaults, as an operator with no variables set would get.
pub fn default_args(database_url: &str) -> SettingsArgs {
    SettingsArgs {
        app_env: "development".into(),
        bind_addr: "127.0.0.1:0".into(),
        database_url: database_url.into(),
        public_base_url: "http://127.0.0.1:8080".into(),
        jwt_secret: Some(random_secret()),
        cors_allowed_origins: "http://localhost:8081,http://localhost:19006".into(),
        trust_proxy: false,
        log_format: None,
        playground_enabled: None,
        hold_ttl_seconds: 600,
        search_index_refresh_seconds: None,
        min_booking_notice_minutes: 60,
        platform_fee_bps: 1000,
        rate_limit_general_per_minute: 100,
        rate_limit_login_per_minute: 5,
        rate_limit_register_per_hour: 20,
        request_timeout_seconds: 30,
        database_max_connections: 10,
        stripe_secret_key: None,
        stripe_webhook_secret: None,
        stripe_connect_webhook_secret: None,
        stripe_api_base: "https://api.stripe.com/".into(),
        stripe_timeout_seconds: 15,
        payment_reconcile_after_seconds: 600,
        resend_api_key: None,
        resend_base_url: "https://api.resend.com".into(),
        // Nothing reaches Expo from a test that did not start a fake.
        expo_push_url: "http://127.0.0.1:9".into(),
        expo_access_token: None,
        email_from: None,
        resend_rate_limit: None,
        metrics_addr: None,
        metrics_token: None,
        sentry_dsn: None,
        redis_url: None,
        limits: maestro_hub::config::LimitArgs::defaults(),
    }
}

static PG_CLEANED: OnceCell<()> = OnceCell::const_new();
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh, empty database for one test.
pub async fn fresh_database() -> (String, Option<tempfile::TempDir>) {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(admin_url) if !admin_url.is_empty() => {
            let admin = Database::connect(&admin_url)
                .await
                .expect("connect TEST_DATABASE_URL");
            PG_CLEANED
                .get_or_init(|| async {
                    // Databases left by earlier runs (a test binary cannot
                    // drop them on exit); none is in use by this run yet.
                    let rows = admin
                        .query_all_raw(sea_orm::Statement::from_string(
                            sea_orm::DatabaseBackend::Postgres,
                            "SELECT datname FROM pg_database WHERE datname LIKE 'maestro_test_%'",
                        ))
                        .await
                        .expect("list test databases");
                    for row in rows {
                        let name: String = row.try_get("", "datname").expect("datname");
                        let _ = admin
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                            ))
                            .await;
                    }
                })
                .await;
            let name = format!(
                "maestro_test_{}_{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::SeqCst)
            );
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .expect("create test database");
            let base = admin_url
                .rsplit_once('/')
                .map_or(admin_url.as_str(), |(b, _)| b);
            (format!("{base}/{name}"), None)
        }
        _ => {
            let dir = tempfile::tempdir().expect("tempdir");
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
            (url, Some(dir))
        }
    }
}

/// Every log line of this test run (JSON, one per line), as the server
/// writes them at the default level: tests read their access lines, and
/// one checks that no line ever holds a token or a password.
pub fn logs() -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    use std::sync::{Arc, Mutex, OnceLock};
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Arc::new(Mutex::new(Vec::new()));
        let b = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                maestro_hub::cli::DEFAULT_LOG_FILTER,
            ))
            .with_writer(move || Sink(b.clone()))
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buf
    })
    .clone()
}

/// The log lines written so far, parsed.
pub fn log_lines() -> Vec<Value> {
    let raw = logs().lock().unwrap().clone();
    String::from_utf8_lossy(&raw)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the app with the default settings changed by `tweak`.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut SettingsArgs)) -> TestApp {
    let (database_url, tmp) = fresh_database().await;
    let mut args = default_args(&database_url);
    tweak(&mut args);
    let jwt_secret = args.jwt_secret.clone().unwrap_or_default();
    let settings = Settings::from_args(args).expect("valid test settings");
    spawn_with_settings(settings, database_url, jwt_secret, tmp).await
}

pub async fn spawn_with_settings(
    settings: Settings,
    database_url: String,
    jwt_secret: String,
    tmp: Option<tempfile::TempDir>,
) -> TestApp {
    logs();
    let db = app::connect_and_migrate(&settings).await.expect("migrate");
    let built = app::build(settings, db).await.expect("build app");
    let state = built.state.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app::serve(built, listener, async {
        let _ = rx.await;
    }));
    // On PostgreSQL, wait until other writers' listing changes are heard, so
    // a test's first search is not reloaded under it when listening starts.
    if state.domain.db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        for _ in 0..500 {
            if state.domain.listings.is_listening() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(
            state.domain.listings.is_listening(),
            "search index listener"
        );
    }
    TestApp {
        base: format!("http://{addr}"),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        state,
        jwt_secret,
        database_url,
        shutdown: Some(tx),
        _server: server,
        _tmp: tmp,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Posts any JSON body to `/graphql`.
    pub async fn post(&self, body: Value, token: Option<&str>) -> reqwest::Response {
        let mut req = self.client.post(self.url("/graphql")).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        self.gql_as(None, query, variables).await
    }

    pub async fn gql_as(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let res = self
            .post(json!({ "query": query, "variables": variables }), token)
            .await;
        res.json().await.expect("json body")
    }

    /// Registers an account with a verified email (as after following the
    /// verification link; `emails.rs` tests that link itself) and returns
    /// its sign-in payload.
    pub async fn register(&self, email: &str, role: &str, market: Option<&str>) -> Value {
        let payload = self.register_unverified(email, role, market).await;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        entity::users::Entity::update_many()
            .col_expr(
                entity::users::Column::EmailVerified,
                sea_orm::sea_query::Expr::value(true),
            )
            .filter(entity::users::Column::Email.eq(email.trim().to_lowercase()))
            .exec(&self.state.domain.db)
            .await
            .unwrap();
        payload
    }

    /// Registers an account as a new user does: email not verified yet.
    pub async fn register_unverified(
        &self,
        email: &str,
        role: &str,
        market: Option<&str>,
    ) -> Value {
        let v = self
            .gql(
                "mutation($input: RegisterInput!) { register(input: $input) {
                    accessToken refreshToken accessTokenExpiresAt user { id email role } } }",
                json!({ "input": {
                    "email": email, "password": PASSWORD, "name": "Test User",
                    "role": role, "marketCode": market } }),
            )
            .await;
        assert!(v["errors"].is_null(), "register failed: {v}");
        v["data"]["register"].clone()
    }

    pub async fn login(&self, email: &str, password: &str) -> Value {
        self.gql(
            "mutation($e: String!, $p: String!) { login(email: $e, password: $p) {
                accessToken refreshToken user { id role } } }",
            json!({ "e": email, "p": password }),
        )
        .await
    }

    pub async fn audit_count(&self, action: &str) -> usize {
        use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
        entity::audit_log::Entity::find()
            .filter(entity::audit_log::Column::Action.eq(action))
            .count(&self.state.domain.db)
            .await
            .expect("count") as usize
    }
}

/// `extensions.code` of the first error, if any.
pub fn code(v: &Value) -> Option<&str> {
    v["errors"][0]["extensions"]["code"].as_str()
}

pub fn field(v: &Value) -> Option<&str> {
    v["errors"][0]["extensions"]["field"].as_str()
}

/// `input` with one key replaced.
pub fn with_key(mut input: Value, key: &str, value: Value) -> Value {
    input[key] = value;
    input
}

/// A profile input that passes every rule; tests change one field at a time.
pub fn profile_input(timezone: &str) -> Value {
    json!({
        "displayName": "Maya Rivers",
        "headline": "Patient piano coach for beginners",
        "bio": "<p>Twenty years of teaching.</p>",
        "categorySlugs": ["piano"],
        "hourlyRateMinor": 4500,
        "sessionDurations": [30, 60],
        "timezone": timezone,
        "meetingUrl": "https://meet.example.com/maya"
    })
}

pub const UPSERT: &str =
    "mutation($input: CoachProfileInput!) { upsertCoachProfile(input: $input) {
    id status published displayName bio meetingUrl } }";

impl TestApp {
    /// An admin made the only way there is (`create_admin`), signed in.
    pub async fn admin_token(&self) -> String {
        let email = format!("admin-{}@example.com", uuid::Uuid::new_v4().simple());
        maestro_hub::domain::auth::create_admin(
            &self.state.domain.db,
            &email,
            "Admin-Strong-Pass-1",
        )
        .await
        .expect("create admin");
        let v = self.login(&email, "Admin-Strong-Pass-1").await;
        v["data"]["login"]["accessToken"]
            .as_str()
            .expect("admin token")
            .to_string()
    }

    /// A registered coach with a market and a DRAFT profile: (token, coach id).
    pub async fn draft_coach(&self, email: &str, market: &str, input: Value) -> (String, String) {
        let p = self.register(email, "COACH", Some(market)).await;
        let token = p["accessToken"].as_str().unwrap().to_string();
        let v = self
            .gql_as(Some(&token), UPSERT, json!({ "input": input }))
            .await;
        assert!(v["errors"].is_null(), "upsert: {v}");
        (
            token,
            v["data"]["upsertCoachProfile"]["id"]
                .as_str()
                .unwrap()
                .to_string(),
        )
    }

    /// A coach that is approved and published, with the given weekly rules.
    pub async fn public_coach(
        &self,
        admin: &str,
        email: &str,
        market: &str,
        input: Value,
        rules: Value,
    ) -> (String, String) {
        let (token, id) = self.draft_coach(email, market, input).await;
        let v = self
            .gql_as(
                Some(&token),
                "mutation($r: [AvailabilityRuleInput!]!) { setAvailability(rules: $r) { id } }",
                json!({ "r": rules }),
            )
            .await;
        assert!(v["errors"].is_null(), "availability: {v}");
        let v = self
            .gql_as(
                Some(&token),
                "mutation { submitCoachProfile { status } }",
                json!({}),
            )
            .await;
        assert_eq!(
            v["data"]["submitCoachProfile"]["status"], "PENDING_REVIEW",
            "{v}"
        );
        let v = self
            .gql_as(
                Some(admin),
                "mutation($id: ID!) { approveCoach(coachId: $id) { status } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(v["data"]["approveCoach"]["status"], "APPROVED", "{v}");
        let v = self
            .gql_as(
                Some(&token),
                "mutation { publishCoachProfile(published: true) { published } }",
                json!({}),
            )
            .await;
        assert_eq!(v["data"]["publishCoachProfile"]["published"], true, "{v}");
        (token, id)
    }

    pub fn statements(&self) -> u64 {
        self.state.statements.load(Ordering::SeqCst)
    }
}

/// Says, where the test run shows it, that a test does not apply to this
/// run's database. Written to the process's stderr directly, which the
/// test harness does not capture, so a skip is never a silent pass.
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// A port nothing listens on now, for a server the test starts itself.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Per-field budgets out of the way, for tests that race or repeat many
/// calls of one user to prove something else (the limits have tests of
/// their own in `field_limits`).
pub fn roomy_field_limits(a: &mut SettingsArgs) {
    let l = &mut a.limits;
    for budget in [
        &mut l.rate_limit_holds_per_minute,
        &mut l.rate_limit_checkouts_per_minute,
        &mut l.rate_limit_reviews_per_hour,
    ] {
        *budget = 10_000;
    }
}

/// `create-admin` through the real binary, with the password on stdin.
pub fn create_admin_with_binary(database_url: &str, email: &str, password: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut admin = Command::new(env!("CARGO_BIN_EXE_maestro-hub"))
        .args(["create-admin", "--email", email, "--password-stdin"])
        .env_clear()
        .env("DATABASE_URL", database_url)
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    admin
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    assert!(admin.wait().unwrap().success());
}

/// Starts the real binary on `url` with an admin (`admin_email`) and the
/// `extra` variables, and waits until it takes connections. Returns the
/// child, its port and the admin's password.
pub fn start_binary(
    url: &str,
    admin_email: &str,
    extra: &[(&str, String)],
) -> (std::process::Child, u16, String) {
    use std::net::TcpStream;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let password = format!("Binary-{}-A1!", random_secret());
    create_admin_with_binary(url, admin_email, &password);
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_maestro-hub"));
    cmd.arg("serve")
        .env_clear()
        .env("DATABASE_URL", url)
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, port, password)
}
