//! Several instances on one PostgreSQL database and one Redis behave as
//! one server: live updates cross instances, limits are shared, jobs act
//! once, and losing Redis degrades to per-instance limits and local
//! events, never to no limit. Each test starts a Redis of its own on a
//! free port, so tests neither share budgets nor touch the machine's Redis.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::bookings::{BOOK, CANCEL, consumer, day_slot, hold, open_coach};
use crate::helpers::{TestApp, default_args, free_port, fresh_database, skip, spawn_with_settings};
use crate::live::{statuses, subscribe};

/// A Redis server of the test's own; stopped when dropped.
struct OwnRedis {
    child: Child,
    port: u16,
}

impl OwnRedis {
    fn start_on(port: u16) -> OwnRedis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        OwnRedis { child, port }
    }

    fn start() -> OwnRedis {
        OwnRedis::start_on(free_port())
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn on_postgres(test: &str) -> bool {
    let pg = std::env::var("TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty());
    if !pg {
        skip(test, "several instances share a PostgreSQL database");
    }
    pg
}

/// Two instances on one fresh database and `redis`.
async fn pair(
    redis: &OwnRedis,
    tweak: impl Fn(&mut maestro_hub::config::SettingsArgs),
) -> (TestApp, TestApp) {
    let (url, _) = fresh_database().await;
    let mut args = default_args(&url);
    args.redis_url = Some(redis.url());
    tweak(&mut args);
    let secret = args.jwt_secret.clone().unwrap_or_default();
    let settings = || maestro_hub::config::Settings::from_args(args.clone()).unwrap();
    let a = spawn_with_settings(settings(), url.clone(), secret.clone(), None).await;
    let b = spawn_with_settings(settings(), url, secret, None).await;
    wait_shared(&a).await;
    wait_shared(&b).await;
    (a, b)
}

async fn metric(app: &TestApp, series: &str) -> f64 {
    crate::metrics::value(&crate::metrics::scrape(app).await, series)
}

async fn ready(app: &TestApp) -> Value {
    app.client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits until the instance reaches Redis and receives other instances'
/// events (readiness says so).
async fn wait_shared(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = ready(app).await;
        if r["redis"] == "ok" {
            return;
        }
        assert!(Instant::now() < deadline, "never reached Redis: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Books, pays and cancels a session through `on`; returns the booking id.
async fn book_pay_cancel(on: &TestApp, parent: &str, coach: &str, days: i64) -> String {
    let h = hold(
        on,
        parent,
        coach,
        day_slot(chrono::Utc::now() + chrono::Duration::days(days)),
        60,
    )
    .await;
    let b = on
        .gql_as(
            Some(parent),
            BOOK,
            json!({ "h": h["data"]["createHold"]["id"] }),
        )
        .await;
    let id = b["data"]["bookHold"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{b}"))
        .to_string();
    let url = b["data"]["bookHold"]["payment"]["checkoutUrl"]
        .as_str()
        .unwrap();
    let path = &url[url.find("/dev/checkout/").unwrap()..];
    assert_eq!(
        on.client.post(on.url(path)).send().await.unwrap().status(),
        200
    );
    let v = on
        .gql_as(
            Some(parent),
            CANCEL,
            json!({ "id": id, "r": "Plans changed" }),
        )
        .await;
    assert_eq!(v["data"]["cancelBooking"]["status"], "CANCELLED", "{v}");
    id
}

#[tokio::test]
async fn a_subscriber_on_one_instance_sees_changes_made_on_another() {
    if !on_postgres("a_subscriber_on_one_instance_sees_changes_made_on_another") {
        return;
    }
    let redis = OwnRedis::start();
    let (a, b) = pair(&redis, |_| {}).await;
    let admin = a.admin_token().await;
    let (_, coach) = open_coach(&a, &admin, "coach@example.com").await;
    let parent = consumer(&a, "parent@example.com").await;
    let stranger = consumer(&a, "stranger@example.com").await;
    let q = "subscription { bookingUpdated { id status } }";
    let mut mine = subscribe(&a, &parent, q).await;
    let mut theirs = subscribe(&a, &stranger, q).await;
    book_pay_cancel(&b, &parent, &coach, 4).await;
    assert_eq!(
        statuses(&mut mine, Duration::from_secs(3)).await,
        ["PENDING_PAYMENT", "CONFIRMED", "CANCELLED"]
    );
    assert!(
        statuses(&mut theirs, Duration::from_millis(500))
            .await
            .is_empty()
    );
}

const LOGIN: &str =
    "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }";

async fn login_from(app: &TestApp, ip: &str, email: &str) -> Value {
    app.client
        .post(app.url("/graphql"))
        .header("x-forwarded-for", ip)
        .json(&json!({ "query": LOGIN, "variables": { "e": email, "p": "Wrong-Password-99" } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn refused(v: &Value) -> bool {
    v["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
}

#[tokio::test]
async fn five_failed_logins_across_instances_spend_one_budget() {
    if !on_postgres("five_failed_logins_across_instances_spend_one_budget") {
        return;
    }
    let redis = OwnRedis::start();
    let (a, b) = pair(&redis, |a| a.trust_proxy = true).await;
    // One email from six addresses: the email's budget is shared.
    for i in 0..5 {
        let on = if i % 2 == 0 { &a } else { &b };
        let v = login_from(on, &format!("10.0.0.{i}"), "victim@example.com").await;
        assert!(!refused(&v), "{i}: {v}");
    }
    assert!(refused(
        &login_from(&b, "10.0.0.9", "victim@example.com").await
    ));
    assert!(refused(
        &login_from(&a, "10.0.0.8", "victim@example.com").await
    ));
    // One address trying six emails: the address's budget is shared.
    for i in 0..5 {
        let on = if i % 2 == 0 { &b } else { &a };
        let v = login_from(on, "10.9.9.9", &format!("guess{i}@example.com")).await;
        assert!(!refused(&v), "{i}: {v}");
    }
    assert!(refused(
        &login_from(&a, "10.9.9.9", "guess9@example.com").await
    ));
    assert_eq!(metric(&a, "maestro_rate_limits_shared").await, 1.0);
    assert_eq!(metric(&a, "maestro_rate_limit_fallbacks_total").await, 0.0);
}

#[tokio::test]
async fn jobs_on_two_instances_act_once_on_each_row() {
    if !on_postgres("jobs_on_two_instances_act_once_on_each_row") {
        return;
    }
    let redis = OwnRedis::start();
    let resend = crate::fake_resend::FakeResend::start().await;
    let r = resend.clone();
    let (a, b) = pair(&redis, move |args| {
        r.configure(args);
        crate::helpers::roomy_field_limits(args);
        args.rate_limit_register_per_hour = 1000;
        args.rate_limit_general_per_minute = 10_000;
    })
    .await;
    // 100 queued emails; both instances' workers send.
    for chunk in 0..10 {
        let on = if chunk % 2 == 0 { &a } else { &b };
        futures_util::future::join_all((0..10).map(|i| {
            let email = format!("u{}@example.com", chunk * 10 + i);
            async move { on.register_unverified(&email, "CONSUMER", Some("US")).await }
        }))
        .await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while resend.delivered().len() < 100 {
        assert!(
            Instant::now() < deadline,
            "{} of 100 sent",
            resend.delivered().len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut keys: Vec<String> = resend
        .requests()
        .iter()
        .filter_map(|s| s.key.clone())
        .collect();
    let total = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(resend.delivered().len(), 100, "each email sent once");
    assert_eq!(total, keys.len(), "no email was asked of Resend twice");

    // Holds that lapsed, swept by both instances at once.
    let admin = a.admin_token().await;
    let (_, coach) = open_coach(&a, &admin, "coach@example.com").await;
    let mut held = 0;
    for p in 0..4 {
        let parent = consumer(&a, &format!("parent{p}@example.com")).await;
        for d in 0..3 {
            let h = hold(
                &a,
                &parent,
                &coach,
                day_slot(chrono::Utc::now() + chrono::Duration::days(3 + p * 3 + d)),
                60,
            )
            .await;
            assert!(h["data"]["createHold"]["id"].is_string(), "{h}");
            held += 1;
        }
    }
    use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};
    a.state
        .domain
        .db
        .execute_unprepared("UPDATE holds SET expires_at = expires_at - INTERVAL '1 day'")
        .await
        .unwrap();
    let (x, y) = tokio::join!(
        maestro_hub::domain::booking::sweep(&a.state.domain),
        maestro_hub::domain::booking::sweep(&b.state.domain)
    );
    x.unwrap();
    y.unwrap();
    let expired = entity::holds::Entity::find()
        .filter(entity::holds::Column::Status.eq("EXPIRED"))
        .count(&a.state.domain.db)
        .await
        .unwrap();
    assert_eq!(expired, held);
    assert_eq!(
        a.audit_count("hold.expired").await as u64,
        held,
        "each audited once"
    );
}

#[tokio::test]
async fn without_redis_limits_stay_per_instance_and_local_events_flow() {
    if !on_postgres("without_redis_limits_stay_per_instance_and_local_events_flow") {
        return;
    }
    let mut redis = OwnRedis::start();
    let port = redis.port;
    let (a, b) = pair(&redis, |_| {}).await;
    let admin = a.admin_token().await;
    let (_, coach) = open_coach(&a, &admin, "coach@example.com").await;
    let parent = consumer(&a, "parent@example.com").await;
    let q = "subscription { bookingUpdated { id status } }";
    let mut on_a = subscribe(&a, &parent, q).await;

    redis.stop();
    // Still limited: five failures on A, the sixth refused by A's own budget.
    let wrong = json!({ "e": "someone@example.com", "p": "Wrong-Password-99" });
    for _ in 0..5 {
        assert!(!refused(&a.gql(LOGIN, wrong.clone()).await));
    }
    assert!(
        refused(&a.gql(LOGIN, wrong.clone()).await),
        "never no limit"
    );
    assert!(metric(&a, "maestro_rate_limit_fallbacks_total").await >= 6.0);
    assert_eq!(metric(&a, "maestro_rate_limits_shared").await, 0.0);
    let ready = ready(&a).await;
    assert_eq!(
        ready["status"], "ready",
        "Redis down keeps the instance in rotation"
    );
    assert_eq!(ready["redis"], "degraded");
    // Local delivery does not need Redis.
    book_pay_cancel(&a, &parent, &coach, 4).await;
    assert_eq!(
        statuses(&mut on_a, Duration::from_secs(3)).await,
        ["PENDING_PAYMENT", "CONFIRMED", "CANCELLED"]
    );

    // Redis back: shared again, and changes on B reach A's subscriber.
    let _again = OwnRedis::start_on(port);
    wait_shared(&a).await;
    wait_shared(&b).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        // Any limited call tries Redis again.
        a.gql(
            "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }",
            json!({ "t": "not-a-token" }),
        )
        .await;
        if metric(&a, "maestro_rate_limits_shared").await == 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "limits never shared again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Readiness says "ok" only once other instances' events are received again.
    book_pay_cancel(&b, &parent, &coach, 5).await;
    assert_eq!(
        statuses(&mut on_a, Duration::from_secs(3)).await,
        ["PENDING_PAYMENT", "CONFIRMED", "CANCELLED"]
    );
}

#[tokio::test]
async fn two_instances_starting_together_on_an_empty_database_both_come_up() {
    if !on_postgres("two_instances_starting_together_on_an_empty_database_both_come_up") {
        return;
    }
    let (url, _) = fresh_database().await;
    let args = default_args(&url);
    let start = || {
        let settings = maestro_hub::config::Settings::from_args(args.clone()).unwrap();
        async move { maestro_hub::app::connect_and_migrate(&settings).await }
    };
    let (x, y) = tokio::join!(start(), start());
    let (x, y) = (x.expect("first instance"), y.expect("second instance"));
    use sea_orm::ConnectionTrait;
    for db in [&x, &y] {
        db.execute_unprepared("SELECT count(*) FROM bookings")
            .await
            .unwrap();
    }
}
