//! A crash in the middle of the money path loses nothing, and a database
//! that goes away takes the instance out of rotation until it is back.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::bookings::{BOOK, HOLD, at, consumer, iso, open_coach};
use crate::helpers::{default_args, free_port, fresh_database, spawn_with_settings};

/// The real binary on `url`, with the test's secret so tokens carry over.
fn start(url: &str, port: u16, secret: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_maestro-hub"))
        .arg("serve")
        .env_clear()
        .env("DATABASE_URL", url)
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("JWT_SECRET", secret)
        .env("HOLD_TTL_SECONDS", "3")
        .env("RATE_LIMIT_GENERAL_PER_MINUTE", "100000")
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_ready(base: &str) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok(r) = reqwest::get(format!("{base}/readyz")).await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server did not become ready");
}

#[derive(Default)]
struct Seen {
    /// Booking id -> whether the checkout page said it was paid.
    bookings: HashMap<String, bool>,
}

#[tokio::test]
async fn a_kill_in_the_middle_of_a_burst_loses_no_booking_or_payment() {
    let (url, _tmp) = fresh_database().await;
    let mut args = default_args(&url);
    args.rate_limit_register_per_hour = 1000;
    let secret = args.jwt_secret.clone().unwrap();
    let settings = maestro_hub::config::Settings::from_args(args).unwrap();
    // Accounts and a coach, made through the API of an in-process server.
    let (coach, parents) = {
        let app = spawn_with_settings(settings, url.clone(), secret.clone(), None).await;
        let admin = app.admin_token().await;
        let (_, coach) = open_coach(&app, &admin, "coach@example.com").await;
        let mut parents = Vec::new();
        for i in 0..6 {
            parents.push(consumer(&app, &format!("parent{i}@example.com")).await);
        }
        (coach, parents)
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = start(&url, port, &secret);
    wait_ready(&base).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for (i, token) in parents.iter().enumerate() {
        let (seen, client, base, token, coach) = (
            seen.clone(),
            client.clone(),
            base.clone(),
            token.clone(),
            coach.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let gql = |q: &'static str, v: Value| {
                let (client, base, token) = (client.clone(), base.clone(), token.clone());
                async move {
                    client
                        .post(format!("{base}/graphql"))
                        .bearer_auth(token)
                        .json(&json!({ "query": q, "variables": v }))
                        .send()
                        .await
                        .ok()?
                        .json::<Value>()
                        .await
                        .ok()
                }
            };
            for n in 0..200i64 {
                // Every parent takes its own hours; some are left as holds.
                let start = at(2 + n, (i as u32) * 3);
                let Some(h) = gql(HOLD, json!({ "c": coach, "s": iso(start), "d": 60 })).await
                else {
                    return;
                };
                let Some(hold_id) = h["data"]["createHold"]["id"].as_str() else {
                    continue;
                };
                if n % 10 == 9 {
                    continue; // a hold nobody books: it must lapse
                }
                let Some(b) = gql(BOOK, json!({ "h": hold_id })).await else {
                    return;
                };
                let Some(id) = b["data"]["bookHold"]["id"].as_str() else {
                    continue;
                };
                seen.lock().unwrap().bookings.insert(id.to_string(), false);
                let url = b["data"]["bookHold"]["payment"]["checkoutUrl"]
                    .as_str()
                    .unwrap_or_default();
                let path = &url[url.find("/dev/").unwrap_or(0)..];
                if n % 10 == 8 {
                    // Changed their mind before paying: the time is free again.
                    let id = id.to_string();
                    let _ = gql(
                        "mutation($id: ID!) { cancelBooking(bookingId: $id, reason: \"Changed plans\") { id } }",
                        json!({ "id": id }),
                    )
                    .await;
                    continue;
                }
                let Ok(paid) = client.post(format!("{base}{path}")).send().await else {
                    return;
                };
                if paid.status() == 200 && paid.text().await.unwrap_or_default().contains("Paid") {
                    seen.lock().unwrap().bookings.insert(id.to_string(), true);
                }
            }
        }));
    }
    // Let the burst run, then pull the plug while it is still going.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let running = tasks.iter().filter(|t| !t.is_finished()).count();
    assert_eq!(
        running,
        parents.len(),
        "every parent is mid-burst at the kill"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    for t in tasks {
        let _ = t.await;
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(
        seen.bookings.len() >= 5,
        "the burst made bookings: {}",
        seen.bookings.len()
    );
    assert!(seen.bookings.values().any(|p| *p), "and paid some");
    println!(
        "killed after {} bookings, {} of them paid",
        seen.bookings.len(),
        seen.bookings.values().filter(|p| **p).count()
    );

    let restarted_at = Utc::now();
    let mut child = start(&url, port, &secret);
    wait_ready(&base).await;
    // The sweep runs as the jobs start.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let db = maestro_hub::db::connect(&url, 2).await.unwrap();
    for (id, paid) in &seen.bookings {
        let b = entity::bookings::Entity::find_by_id(id.clone())
            .one(&db)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("booking {id} was answered but is gone"));
        let p = entity::payments::Entity::find()
            .filter(entity::payments::Column::BookingId.eq(id.clone()))
            .one(&db)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("booking {id} lost its payment"));
        if *paid {
            assert_eq!(
                (b.status.as_str(), p.status.as_str()),
                ("CONFIRMED", "SUCCEEDED"),
                "paid booking {id}"
            );
        }
    }
    // Money and status agree everywhere, not only where the client looked.
    for b in entity::bookings::Entity::find().all(&db).await.unwrap() {
        let p = entity::payments::Entity::find()
            .filter(entity::payments::Column::BookingId.eq(b.id.clone()))
            .one(&db)
            .await
            .unwrap()
            .expect("every booking has its payment");
        let confirmed = b.status == "CONFIRMED";
        assert_eq!(
            confirmed,
            p.status == "SUCCEEDED",
            "{} / {}",
            b.status,
            p.status
        );
    }
    // No hold outlives its expiry.
    let stuck = entity::holds::Entity::find()
        .filter(entity::holds::Column::Status.eq("ACTIVE"))
        .filter(entity::holds::Column::ExpiresAt.lt(restarted_at))
        .all(&db)
        .await
        .unwrap();
    assert!(stuck.is_empty(), "{} holds stuck past expiry", stuck.len());
    // The overlap rule still holds over what is live.
    let now = Utc::now().timestamp();
    let live: Vec<_> = entity::reservations::Entity::find()
        .filter(entity::reservations::Column::Active.eq(true))
        .all(&db)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.live_until_s.is_none_or(|t| t > now))
        .collect();
    for (i, a) in live.iter().enumerate() {
        for b in &live[i + 1..] {
            assert!(
                a.coach_id != b.coach_id || a.end_s <= b.start_s || b.end_s <= a.start_s,
                "overlapping reservations {} and {}",
                a.id,
                b.id
            );
        }
    }
    if db.get_database_backend() == sea_orm::DatabaseBackend::Sqlite {
        let ok = db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DatabaseBackend::Sqlite,
                "PRAGMA integrity_check",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ok.try_get::<String>("", "integrity_check").unwrap(), "ok");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A TCP relay to PostgreSQL that the test can cut and restore, as if the
/// database stopped and started again (without stopping the machine's
/// PostgreSQL under the other tests).
struct Relay {
    port: u16,
    up: Arc<std::sync::atomic::AtomicBool>,
    live: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Relay {
    async fn start(target: String) -> Relay {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let live: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (up2, live2) = (up.clone(), live.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                live2.lock().unwrap().push(task.abort_handle());
            }
        });
        Relay { port, up, live }
    }

    fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for t in self.live.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn readiness_follows_the_database_without_a_restart() {
    let (url, _tmp) = fresh_database().await;
    if !url.starts_with("postgres") {
        crate::helpers::skip(
            "readiness_follows_the_database_without_a_restart",
            "an SQLite file cannot stop answering",
        );
        return;
    }
    let mut relayed = url::Url::parse(&url).unwrap();
    let target = format!(
        "{}:{}",
        relayed.host_str().unwrap(),
        relayed.port().unwrap_or(5432)
    );
    let relay = Relay::start(target).await;
    relayed.set_host(Some("127.0.0.1")).unwrap();
    relayed.set_port(Some(relay.port)).unwrap();
    let relayed = relayed.to_string();
    let args = default_args(&relayed);
    let secret = args.jwt_secret.clone().unwrap();
    let settings = maestro_hub::config::Settings::from_args(args).unwrap();
    let app = spawn_with_settings(settings, relayed.clone(), secret, None).await;
    let ready = || async {
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(ready().await, 200);

    relay.cut();
    let started = Instant::now();
    let mut status = ready().await;
    while status != 503 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = ready().await;
    }
    assert_eq!(status, 503, "not ready while the database is away");
    // Liveness is another matter: the process is fine.
    let h = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(h.status(), 200);

    relay.restore();
    let started = Instant::now();
    let mut status = ready().await;
    while status != 200 && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        status = ready().await;
    }
    assert_eq!(status, 200, "ready again once the database is back");
    let v = app.gql("{ markets { code } }", json!({})).await;
    assert!(v["errors"].is_null(), "{v}");
}
