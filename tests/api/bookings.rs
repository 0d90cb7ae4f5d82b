//! Holds and bookings end to end: the happy path with the dev checkout,
//! every error of the mutations, expiry by the clock, refunds, object-level
//! checks, and races that must produce exactly one winner.

use chrono::{DateTime, Duration, DurationRound, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::helpers::{TestApp, code, field, profile_input, spawn_app, spawn_app_with, with_key};

pub const HOLD: &str = "mutation($c: ID!, $s: DateTime!, $d: Int!) {
    createHold(coachId: $c, startAt: $s, durationMinutes: $d) { id status startAt endAt expiresAt } }";
pub const BOOK: &str = "mutation($h: ID!) { bookHold(holdId: $h) {
    id status price { amountMinor currency } platformFee { amountMinor } coachPayout { amountMinor }
    payment { id status checkoutUrl } } }";
const GET: &str = "query($id: ID!) { booking(id: $id) {
    id status meetingUrl cancellationReason refundedAmount { amountMinor }
    consumer { email } payment { status refundedAmount { amountMinor } } review { id rating } } }";
pub const CANCEL: &str =
    "mutation($id: ID!, $r: String!) { cancelBooking(bookingId: $id, reason: $r) {
    status refundedAmount { amountMinor } payment { status } } }";

/// A UTC instant `days` ahead at `hour`:00.
pub fn at(days: i64, hour: u32) -> DateTime<Utc> {
    (Utc::now() + Duration::days(days))
        .duration_trunc(Duration::days(1))
        .unwrap()
        + Duration::hours(i64::from(hour))
}

pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A public US coach available around the clock (UTC), $60/h, 30/60/90 min.
pub async fn open_coach(app: &TestApp, admin: &str, email: &str) -> (String, String) {
    let input = with_key(
        with_key(
            profile_input("UTC"),
            "sessionDurations",
            json!([30, 60, 90]),
        ),
        "hourlyRateMinor",
        json!(6000),
    );
    let all_week: Vec<Value> = (1..=7)
        .map(|d| json!({ "weekday": d, "startTime": "00:00", "endTime": "24:00" }))
        .collect();
    app.public_coach(admin, email, "US", input, json!(all_week))
        .await
}

pub async fn consumer(app: &TestApp, email: &str) -> String {
    app.register(email, "CONSUMER", Some("US")).await["accessToken"]
        .as_str()
        .unwrap()
        .to_string()
}

pub async fn hold(
    app: &TestApp,
    token: &str,
    coach: &str,
    start: DateTime<Utc>,
    minutes: i32,
) -> Value {
    app.gql_as(
        Some(token),
        HOLD,
        json!({ "c": coach, "s": iso(start), "d": minutes }),
    )
    .await
}

/// The first 60-minute slot on the 30-minute grid at or after `t` that ends
/// on the day it starts (availability rules are per weekday, so an hour
/// across midnight UTC is never offered).
pub fn day_slot(t: DateTime<Utc>) -> DateTime<Utc> {
    let start = t.duration_trunc(Duration::minutes(30)).unwrap();
    let end = start + Duration::hours(1);
    if end.date_naive() != start.date_naive() && end.time() != chrono::NaiveTime::MIN {
        end.duration_trunc(Duration::days(1)).unwrap()
    } else {
        start
    }
}

/// Hold, book and pay through the dev checkout page: a confirmed booking.
pub async fn confirmed(app: &TestApp, token: &str, coach: &str, start: DateTime<Utc>) -> String {
    let h = hold(app, token, coach, start, 60).await;
    let hold_id = h["data"]["createHold"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{h}"))
        .to_string();
    let b = app.gql_as(Some(token), BOOK, json!({ "h": hold_id })).await;
    let booking = &b["data"]["bookHold"];
    let url = booking["payment"]["checkoutUrl"]
        .as_str()
        .unwrap_or_else(|| panic!("{b}"));
    let path = &url[url.find("/dev/checkout/").unwrap()..];
    let res = app.client.post(app.url(path)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    booking["id"].as_str().unwrap().to_string()
}

/// Moves a booking's session into the past (the clock cannot be waited on).
pub async fn shift_to_past(app: &TestApp, booking_id: &str, hours_ago: i64) {
    let start = Utc::now() - Duration::hours(hours_ago);
    let end = start + Duration::hours(1);
    let b = entity::bookings::Entity::find_by_id(booking_id.to_string())
        .one(&app.state.domain.db)
        .await
        .unwrap()
        .unwrap();
    let mut m: entity::bookings::ActiveModel = b.into();
    m.start_at = sea_orm::Set(start);
    m.end_at = sea_orm::Set(end);
    m.start_s = sea_orm::Set(start.timestamp());
    sea_orm::ActiveModelTrait::update(m, &app.state.domain.db)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_whole_happy_path() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (coach_token, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    let start = at(3, 15);

    let h = hold(&app, &parent, &coach, start, 90).await;
    let held = &h["data"]["createHold"];
    assert_eq!(held["status"], "ACTIVE", "{h}");
    assert_eq!(held["endAt"], iso(start + Duration::minutes(90)));
    // The held time is no longer offered.
    let slots = app
        .gql(
            "query($c: ID!, $f: DateTime!, $t: DateTime!) { availableSlots(coachId: $c, from: $f, to: $t, durationMinutes: 30) { startAt } }",
            json!({ "c": coach, "f": iso(start), "t": iso(start + Duration::hours(2)) }),
        )
        .await;
    let offered: Vec<&str> = slots["data"]["availableSlots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["startAt"].as_str().unwrap())
        .collect();
    assert_eq!(
        offered,
        [iso(start + Duration::minutes(90))],
        "only the time after the hold remains"
    );

    let b = app
        .gql_as(Some(&parent), BOOK, json!({ "h": held["id"] }))
        .await;
    let booking = &b["data"]["bookHold"];
    assert_eq!(booking["status"], "PENDING_PAYMENT", "{b}");
    assert_eq!(
        booking["price"],
        json!({ "amountMinor": 9000, "currency": "USD" }),
        "90 minutes at $60/h"
    );
    assert_eq!(booking["platformFee"]["amountMinor"], 900);
    assert_eq!(booking["coachPayout"]["amountMinor"], 8100);
    let id = booking["id"].as_str().unwrap().to_string();
    let url = booking["payment"]["checkoutUrl"].as_str().unwrap();
    let path = &url[url.find("/dev/checkout/").unwrap()..];

    let page = app
        .client
        .get(app.url(path))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<form method=\"post\"") && page.contains("90.00 USD"),
        "{page}"
    );
    assert_eq!(
        app.client
            .post(app.url(path))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Completing the same payment twice changes nothing.
    let again = app
        .client
        .post(app.url(path))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(again.contains("Already processed"));
    assert_eq!(app.audit_count("payment.succeeded").await, 1);

    let v = app.gql_as(Some(&parent), GET, json!({ "id": id })).await;
    let got = &v["data"]["booking"];
    assert_eq!(got["status"], "CONFIRMED", "{v}");
    assert_eq!(got["payment"]["status"], "SUCCEEDED");
    assert!(got["review"].is_null(), "no review before the session");
    assert!(
        got["meetingUrl"]
            .as_str()
            .unwrap()
            .starts_with("https://meet.example.com/maya"),
        "the coach's own link"
    );
    let v = app
        .gql_as(Some(&coach_token), GET, json!({ "id": id }))
        .await;
    assert_eq!(
        v["data"]["booking"]["consumer"]["email"], "parent@example.com",
        "the coach sees the consumer's email"
    );

    let listed = app
        .gql_as(
            Some(&coach_token),
            "{ myBookings { totalCount nodes { id status } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        listed["data"]["myBookings"]["nodes"][0]["id"],
        id.as_str(),
        "{listed}"
    );

    let complete = "mutation($id: ID!) { completeBooking(bookingId: $id) { status } }";
    assert_eq!(
        code(
            &app.gql_as(Some(&coach_token), complete, json!({ "id": id }))
                .await
        ),
        Some("CONFLICT"),
        "not ended yet"
    );
    shift_to_past(&app, &id, 3).await;
    assert_eq!(
        code(
            &app.gql_as(Some(&parent), complete, json!({ "id": id }))
                .await
        ),
        Some("FORBIDDEN"),
        "consumers do not complete"
    );
    let v = app
        .gql_as(Some(&coach_token), complete, json!({ "id": id }))
        .await;
    assert_eq!(v["data"]["completeBooking"]["status"], "COMPLETED", "{v}");
    assert_eq!(
        code(
            &app.gql_as(Some(&parent), CANCEL, json!({ "id": id, "r": "late" }))
                .await
        ),
        Some("CONFLICT")
    );
    for a in ["booking.created", "booking.confirmed", "booking.completed"] {
        assert_eq!(app.audit_count(a).await, 1, "{a}");
    }
}

#[tokio::test]
async fn every_hold_and_booking_error() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (coach_token, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;

    let nomarket = app.register("nomarket@example.com", "CONSUMER", None).await;
    let v = hold(
        &app,
        nomarket["accessToken"].as_str().unwrap(),
        &coach,
        at(2, 10),
        60,
    )
    .await;
    assert_eq!(code(&v), Some("MARKET_REQUIRED"));
    let gb = app.register("gb@example.com", "CONSUMER", Some("GB")).await;
    let v = hold(
        &app,
        gb["accessToken"].as_str().unwrap(),
        &coach,
        at(2, 10),
        60,
    )
    .await;
    assert_eq!(
        (code(&v), field(&v)),
        (Some("BAD_USER_INPUT"), Some("coachId"))
    );
    assert_eq!(
        code(&hold(&app, &coach_token, &coach, at(2, 10), 60).await),
        Some("FORBIDDEN")
    );
    assert_eq!(
        code(&hold(&app, &parent, "no-such-coach", at(2, 10), 60).await),
        Some("NOT_FOUND")
    );
    let v = hold(&app, &parent, &coach, at(2, 10) + Duration::minutes(15), 60).await;
    assert_eq!(
        (code(&v), field(&v)),
        (Some("BAD_USER_INPUT"), Some("startAt")),
        "off the grid"
    );
    let soon = (Utc::now() + Duration::minutes(30))
        .duration_trunc(Duration::minutes(30))
        .unwrap();
    let v = hold(&app, &parent, &coach, soon, 30).await;
    assert_eq!(
        (code(&v), field(&v)),
        (Some("BAD_USER_INPUT"), Some("startAt")),
        "inside the minimum notice"
    );
    let v = hold(&app, &parent, &coach, at(2, 10), 45).await;
    assert_eq!(
        (code(&v), field(&v)),
        (Some("BAD_USER_INPUT"), Some("durationMinutes"))
    );

    let first = hold(&app, &parent, &coach, at(2, 10), 90).await;
    assert!(first["errors"].is_null(), "{first}");
    let other = consumer(&app, "other@example.com").await;
    let v = hold(&app, &other, &coach, at(2, 11), 30).await;
    assert_eq!(code(&v), Some("CONFLICT"), "overlaps the 90-minute hold");
    assert!(hold(&app, &parent, &coach, at(2, 12), 30).await["errors"].is_null());
    assert!(hold(&app, &parent, &coach, at(2, 13), 30).await["errors"].is_null());
    assert_eq!(
        code(&hold(&app, &parent, &coach, at(2, 14), 30).await),
        Some("CONFLICT"),
        "a 4th active hold"
    );

    let hold_id = first["data"]["createHold"]["id"].as_str().unwrap();
    assert_eq!(
        code(
            &app.gql_as(Some(&other), BOOK, json!({ "h": hold_id }))
                .await
        ),
        Some("NOT_FOUND"),
        "a stranger's hold"
    );
    let release = "mutation($h: ID!) { releaseHold(holdId: $h) }";
    assert_eq!(
        code(
            &app.gql_as(Some(&other), release, json!({ "h": hold_id }))
                .await
        ),
        Some("NOT_FOUND")
    );
    let v = app
        .gql_as(
            Some(&parent),
            "mutation($h: ID!) { bookHold(holdId: $h, packagePurchaseId: \"x\") { id } }",
            json!({ "h": hold_id }),
        )
        .await;
    assert_eq!(code(&v), Some("NOT_FOUND"), "unknown package purchase");
    assert_eq!(
        app.gql_as(Some(&parent), release, json!({ "h": hold_id }))
            .await["data"]["releaseHold"],
        true
    );
    assert_eq!(
        code(
            &app.gql_as(Some(&parent), release, json!({ "h": hold_id }))
                .await
        ),
        Some("CONFLICT")
    );
    assert_eq!(
        code(
            &app.gql_as(Some(&parent), BOOK, json!({ "h": hold_id }))
                .await
        ),
        Some("CONFLICT"),
        "a released hold"
    );
    // The released time is free again for someone else at once.
    assert!(hold(&app, &other, &coach, at(2, 11), 30).await["errors"].is_null());

    let b = hold(&app, &parent, &coach, at(4, 9), 60).await;
    let id = b["data"]["createHold"]["id"].as_str().unwrap().to_string();
    assert!(app.gql_as(Some(&parent), BOOK, json!({ "h": id })).await["errors"].is_null());
    assert_eq!(
        code(&app.gql_as(Some(&parent), BOOK, json!({ "h": id })).await),
        Some("CONFLICT"),
        "booked twice"
    );
    assert_eq!(
        entity::bookings::Entity::find()
            .count(&app.state.domain.db)
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn an_expired_hold_frees_the_slot_without_waiting_for_a_job() {
    // Long enough that the conflicting hold below is tried before the
    // first lapses even on a loaded machine.
    let app = spawn_app_with(|a| a.hold_ttl_seconds = 3).await;
    let admin = app.admin_token().await;
    let (_, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let a = consumer(&app, "a@example.com").await;
    let b = consumer(&app, "b@example.com").await;
    let h = hold(&app, &a, &coach, at(2, 10), 60).await;
    let hold_id = h["data"]["createHold"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        code(&hold(&app, &b, &coach, at(2, 10), 60).await),
        Some("CONFLICT")
    );
    tokio::time::sleep(std::time::Duration::from_millis(4100)).await;
    // The record still says ACTIVE (no job has run), but the clock rules.
    let row = entity::holds::Entity::find_by_id(hold_id.clone())
        .one(&app.state.domain.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, "ACTIVE");
    let v = hold(&app, &b, &coach, at(2, 10), 60).await;
    assert!(
        v["errors"].is_null(),
        "the lapsed hold no longer blocks: {v}"
    );
    assert_eq!(
        code(&app.gql_as(Some(&a), BOOK, json!({ "h": hold_id })).await),
        Some("CONFLICT")
    );
    // The worker's sweep then brings the record in line.
    maestro_hub::domain::booking::sweep(&app.state.domain)
        .await
        .unwrap();
    let row = entity::holds::Entity::find_by_id(hold_id)
        .one(&app.state.domain.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, "EXPIRED");
}

#[tokio::test]
async fn a_hold_that_expires_while_being_booked_is_refused() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let a = consumer(&app, "a@example.com").await;
    let h = hold(&app, &a, &coach, at(2, 10), 60).await;
    let hold_id = h["data"]["createHold"]["id"].as_str().unwrap().to_string();
    // The hold row still looks active to the first read, but its
    // reservation lapsed: the conditional carry-over refuses it.
    app.state
        .domain
        .db
        .execute_unprepared(&format!(
            "UPDATE reservations SET live_until_s = {} WHERE hold_id = '{hold_id}'",
            Utc::now().timestamp() - 1
        ))
        .await
        .unwrap();
    let v = app.gql_as(Some(&a), BOOK, json!({ "h": hold_id })).await;
    assert_eq!(code(&v), Some("CONFLICT"), "{v}");
    assert_eq!(
        entity::bookings::Entity::find()
            .count(&app.state.domain.db)
            .await
            .unwrap(),
        0
    );
    let row = entity::holds::Entity::find_by_id(hold_id)
        .one(&app.state.domain.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, "ACTIVE", "the refused booking changed nothing");
}

async fn refunded(app: &TestApp, token: &str, id: &str) -> (String, i64, String) {
    let v = app.gql_as(Some(token), GET, json!({ "id": id })).await;
    let b = &v["data"]["booking"];
    (
        b["status"]
            .as_str()
            .unwrap_or_else(|| panic!("{v}"))
            .to_string(),
        b["refundedAmount"]["amountMinor"].as_i64().unwrap(),
        b["payment"]["status"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn refund_amounts_for_each_cancellation_case() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (coach_token, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;

    // Consumer, three days ahead: full refund.
    let early = confirmed(&app, &parent, &coach, at(3, 9)).await;
    let v = app
        .gql_as(
            Some(&parent),
            CANCEL,
            json!({ "id": early, "r": "Holiday" }),
        )
        .await;
    assert_eq!(v["data"]["cancelBooking"]["status"], "CANCELLED", "{v}");
    assert_eq!(
        refunded(&app, &parent, &early).await,
        ("CANCELLED".into(), 6000, "REFUNDED".into())
    );

    // Consumer, inside 24 hours: nothing back.
    let soon = day_slot(Utc::now() + Duration::hours(3));
    let late = confirmed(&app, &parent, &coach, soon).await;
    app.gql_as(Some(&parent), CANCEL, json!({ "id": late, "r": "Sick" }))
        .await;
    assert_eq!(
        refunded(&app, &parent, &late).await,
        ("CANCELLED".into(), 0, "SUCCEEDED".into())
    );

    // The coach cancelling refunds in full, however late.
    let soon2 = day_slot(soon + Duration::hours(2));
    let by_coach = confirmed(&app, &parent, &coach, soon2).await;
    let v = app
        .gql_as(
            Some(&coach_token),
            CANCEL,
            json!({ "id": by_coach, "r": "Coach unwell" }),
        )
        .await;
    assert_eq!(
        v["data"]["cancelBooking"]["refundedAmount"]["amountMinor"], 6000,
        "{v}"
    );

    // Cancelling before paying: nothing was paid, nothing refunded, and
    // the payment will never complete (the dev provider reports nothing,
    // so it fails at once).
    let h = hold(&app, &parent, &coach, at(5, 9), 60).await;
    let b = app
        .gql_as(
            Some(&parent),
            BOOK,
            json!({ "h": h["data"]["createHold"]["id"] }),
        )
        .await;
    let pending = b["data"]["bookHold"]["id"].as_str().unwrap().to_string();
    app.gql_as(
        Some(&parent),
        CANCEL,
        json!({ "id": pending, "r": "Changed my mind" }),
    )
    .await;
    assert_eq!(
        refunded(&app, &parent, &pending).await,
        ("CANCELLED".into(), 0, "FAILED".into())
    );

    // No-shows: the consumer reporting the coach is refunded; the reverse is not.
    let report = "mutation($id: ID!) { reportNoShow(bookingId: $id) { status refundedAmount { amountMinor } } }";
    let a = confirmed(&app, &parent, &coach, at(6, 9)).await;
    assert_eq!(
        code(&app.gql_as(Some(&parent), report, json!({ "id": a })).await),
        Some("CONFLICT"),
        "not started"
    );
    shift_to_past(&app, &a, 2).await;
    let v = app.gql_as(Some(&parent), report, json!({ "id": a })).await;
    assert_eq!(
        v["data"]["reportNoShow"],
        json!({ "status": "NO_SHOW_COACH", "refundedAmount": { "amountMinor": 6000 } }),
        "{v}"
    );
    let c = confirmed(&app, &parent, &coach, at(7, 9)).await;
    shift_to_past(&app, &c, 2).await;
    let v = app
        .gql_as(Some(&coach_token), report, json!({ "id": c }))
        .await;
    assert_eq!(
        v["data"]["reportNoShow"],
        json!({ "status": "NO_SHOW_CONSUMER", "refundedAmount": { "amountMinor": 0 } }),
        "{v}"
    );

    // Every decided refund reached the provider, once.
    let refunds = entity::refunds::Entity::find()
        .all(&app.state.domain.db)
        .await
        .unwrap();
    assert_eq!(refunds.len(), 3);
    assert!(
        refunds
            .iter()
            .all(|r| r.status == "SUCCEEDED" && r.provider_ref.is_some())
    );
    assert_eq!(app.audit_count("refund.created").await, 3);
}

#[tokio::test]
async fn strangers_can_neither_see_nor_touch_a_booking() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    let stranger = consumer(&app, "stranger@example.com").await;
    let id = confirmed(&app, &parent, &coach, at(3, 9)).await;
    assert_eq!(
        code(&app.gql_as(Some(&stranger), GET, json!({ "id": id })).await),
        Some("NOT_FOUND")
    );
    assert_eq!(
        code(
            &app.gql_as(Some(&stranger), CANCEL, json!({ "id": id, "r": "x" }))
                .await
        ),
        Some("NOT_FOUND")
    );
    assert_eq!(
        code(&app.gql(GET, json!({ "id": id })).await),
        Some("UNAUTHENTICATED")
    );
    let mine = app
        .gql_as(Some(&stranger), "{ myBookings { totalCount } }", json!({}))
        .await;
    assert_eq!(mine["data"]["myBookings"]["totalCount"], 0);
    assert_eq!(
        refunded(&app, &parent, &id).await,
        ("CONFIRMED".into(), 0, "SUCCEEDED".into()),
        "unchanged"
    );
    let v = app.gql_as(Some(&admin), GET, json!({ "id": id })).await;
    assert_eq!(
        v["data"]["booking"]["status"], "CONFIRMED",
        "admins see every booking"
    );
}

/// Sends all requests at once; counts successes, and fails on any error
/// other than `CONFLICT`.
async fn winners(app: &TestApp, requests: Vec<(String, Value)>) -> usize {
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|(token, body)| {
            let req = app
                .client
                .post(app.url("/graphql"))
                .bearer_auth(token)
                .json(&body);
            tokio::spawn(async move { req.send().await.unwrap().json::<Value>().await.unwrap() })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        let v = t.await.unwrap();
        match code(&v) {
            None => ok += 1,
            Some("CONFLICT") => {}
            other => panic!("unexpected {other:?}: {v}"),
        }
    }
    ok
}

#[tokio::test]
async fn fifty_racing_holds_give_exactly_one() {
    let app = spawn_app_with(|a| {
        a.rate_limit_register_per_hour = 1000;
        a.rate_limit_general_per_minute = 10_000;
    })
    .await;
    let admin = app.admin_token().await;
    let (_, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let mut tokens = Vec::new();
    for i in 0..50 {
        tokens.push(consumer(&app, &format!("racer{i}@example.com")).await);
    }
    let base = at(2, 10);
    // Mixed starts and durations, all overlapping 10:30-11:00.
    let requests: Vec<(String, Value)> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, token)| {
            let (offset, minutes) = [(0, 60), (30, 30), (0, 90), (30, 60), (0, 60)][i % 5];
            let start = base + Duration::minutes(offset);
            (token, json!({ "query": HOLD, "variables": { "c": coach, "s": iso(start), "d": minutes } }))
        })
        .collect();
    let ok = winners(&app, requests).await;
    assert_eq!(ok, 1, "exactly one hold");
    let live = entity::reservations::Entity::find()
        .filter(entity::reservations::Column::Active.eq(true))
        .count(&app.state.domain.db)
        .await
        .unwrap();
    assert_eq!(live, 1, "exactly one live reservation");
    let holds = entity::holds::Entity::find()
        .count(&app.state.domain.db)
        .await
        .unwrap();
    assert_eq!(holds, 1, "a refused hold leaves no hold row behind");
}

#[tokio::test]
async fn twelve_racing_holds_of_one_consumer_stay_within_the_cap() {
    let app = spawn_app_with(|a| {
        crate::helpers::roomy_field_limits(a);
        a.rate_limit_general_per_minute = 10_000;
    })
    .await;
    let admin = app.admin_token().await;
    let mut coaches = Vec::new();
    for i in 0..4 {
        coaches.push(
            open_coach(&app, &admin, &format!("coach{i}@example.com"))
                .await
                .1,
        );
    }
    let parent = consumer(&app, "parent@example.com").await;
    // Distinct coaches and times, so only the cap can refuse them.
    let requests: Vec<(String, Value)> = (0..12)
        .map(|i| {
            let start = at(2 + i / 4, 9);
            let coach = &coaches[i as usize % 4];
            (
                parent.clone(),
                json!({ "query": HOLD, "variables": { "c": coach, "s": iso(start), "d": 60 } }),
            )
        })
        .collect();
    assert_eq!(
        winners(&app, requests).await,
        3,
        "the cap of three open holds"
    );
    let live = entity::reservations::Entity::find()
        .filter(entity::reservations::Column::Active.eq(true))
        .count(&app.state.domain.db)
        .await
        .unwrap();
    let holds = entity::holds::Entity::find()
        .count(&app.state.domain.db)
        .await
        .unwrap();
    assert_eq!((live, holds), (3, 3), "refused holds leave nothing behind");
}

#[tokio::test]
async fn twenty_racing_bookings_of_one_hold_give_one_booking() {
    let app = spawn_app_with(crate::helpers::roomy_field_limits).await;
    let admin = app.admin_token().await;
    let (_, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    let h = hold(&app, &parent, &coach, at(2, 10), 60).await;
    let hold_id = h["data"]["createHold"]["id"].as_str().unwrap().to_string();
    let requests = (0..20)
        .map(|_| {
            (
                parent.clone(),
                json!({ "query": BOOK, "variables": { "h": hold_id } }),
            )
        })
        .collect();
    let ok = winners(&app, requests).await;
    assert_eq!(ok, 1);
    assert_eq!(
        entity::bookings::Entity::find()
            .count(&app.state.domain.db)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        entity::payments::Entity::find()
            .count(&app.state.domain.db)
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn the_worker_cancels_unpaid_and_completes_forgotten_sessions() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;

    let h = hold(&app, &parent, &coach, at(3, 9), 60).await;
    let b = app
        .gql_as(
            Some(&parent),
            BOOK,
            json!({ "h": h["data"]["createHold"]["id"] }),
        )
        .await;
    let unpaid = b["data"]["bookHold"]["id"].as_str().unwrap().to_string();
    let forgotten = confirmed(&app, &parent, &coach, at(4, 9)).await;
    let recent = confirmed(&app, &parent, &coach, at(5, 9)).await;

    // The payment window closes; the session ended 50 h (and 10 h) ago.
    app.state
        .domain
        .db
        .execute_unprepared(&format!(
            "UPDATE bookings SET payment_deadline = created_at WHERE id = '{unpaid}'"
        ))
        .await
        .unwrap();
    shift_to_past(&app, &forgotten, 51).await;
    shift_to_past(&app, &recent, 11).await;
    maestro_hub::domain::booking::sweep(&app.state.domain)
        .await
        .unwrap();

    let (status, _, payment) = refunded(&app, &parent, &unpaid).await;
    assert_eq!((status.as_str(), payment.as_str()), ("CANCELLED", "FAILED"));
    assert_eq!(refunded(&app, &parent, &forgotten).await.0, "COMPLETED");
    assert_eq!(
        refunded(&app, &parent, &recent).await.0,
        "CONFIRMED",
        "within 48 h nobody decides for them"
    );
    // The unpaid booking's time is free again.
    let other = consumer(&app, "other@example.com").await;
    assert!(hold(&app, &other, &coach, at(3, 9), 60).await["errors"].is_null());
}

const MY_PAGE: &str = "query($n: Int!) { myBookings(first: $n) { totalCount edges { node {
    id status coach { id displayName } consumer { email }
    payment { status amount { amountMinor } } review { id rating } } } } }";

#[tokio::test]
async fn a_page_of_50_bookings_runs_as_few_statements_as_a_page_of_5() {
    let app = spawn_app_with(|a| {
        a.rate_limit_general_per_minute = 10_000;
        crate::helpers::roomy_field_limits(a);
    })
    .await;
    let admin = app.admin_token().await;
    let mut coaches = Vec::new();
    for i in 0..3 {
        coaches.push(
            open_coach(&app, &admin, &format!("coach{i}@example.com"))
                .await
                .1,
        );
    }
    let parent = consumer(&app, "parent@example.com").await;
    // Paid as they go: a consumer may owe payment for only 3 at once.
    for i in 0..50 {
        let coach = &coaches[i % 3];
        confirmed(&app, &parent, coach, at(2 + (i as i64 / 3), 9)).await;
    }
    // The confirmations' emails go out first (the outbox worker's
    // statements would count too).
    while maestro_hub::domain::outbox::deliver_due(&app.state.domain, 100)
        .await
        .unwrap()
        .handled()
        > 0
    {}
    // The counter is process-wide: a background job (the sweep, the outbox
    // worker's poll) may add to one measurement, so each page size counts
    // its quietest of five runs.
    let mut counts = Vec::new();
    for n in [5, 50] {
        let mut fewest = u64::MAX;
        for _ in 0..5 {
            let before = app.statements();
            let v = app.gql_as(Some(&parent), MY_PAGE, json!({ "n": n })).await;
            fewest = fewest.min(app.statements() - before);
            assert!(v["errors"].is_null(), "{v}");
            let edges = v["data"]["myBookings"]["edges"].as_array().unwrap();
            assert_eq!(edges.len(), n);
            assert!(edges.iter().all(|e| {
                let b = &e["node"];
                b["coach"]["displayName"].is_string()
                    && b["consumer"]["email"] == "parent@example.com"
                    && b["payment"]["status"] == "SUCCEEDED"
                    && b["review"].is_null()
            }));
        }
        counts.push(fewest);
    }
    assert_eq!(
        counts[0], counts[1],
        "statements for 5 vs 50 bookings: {counts:?}"
    );
    // Authentication, the page, its count, then one per nested field.
    assert!(counts[1] <= 7, "at most 7 statements, ran {}", counts[1]);
    println!("myBookings statements, 5 vs 50 bookings: {counts:?}");
}

/// The provider failing after the booking committed leaves a payment
/// without a checkout; the sweep opens it again from the stored row.
#[tokio::test]
async fn a_checkout_that_failed_to_open_is_opened_again_by_the_sweep() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    let h = hold(&app, &parent, &coach, at(2, 9), 60).await;
    let b = app
        .gql_as(
            Some(&parent),
            BOOK,
            json!({ "h": h["data"]["createHold"]["id"] }),
        )
        .await;
    let id = b["data"]["bookHold"]["id"].as_str().unwrap().to_string();
    let first_url = b["data"]["bookHold"]["payment"]["checkoutUrl"]
        .as_str()
        .unwrap()
        .to_string();
    // As if the provider had failed: committed, no checkout, a minute ago.
    app.state
        .domain
        .db
        .execute_unprepared(&format!(
            "UPDATE payments SET checkout_url = NULL, provider_ref = NULL, \
             created_at = '{}' WHERE booking_id = '{id}'",
            (Utc::now() - Duration::minutes(1)).format("%Y-%m-%d %H:%M:%S+00:00")
        ))
        .await
        .unwrap();
    let v = app.gql_as(Some(&parent), GET, json!({ "id": id })).await;
    assert!(
        v["data"]["booking"]["payment"]["checkoutUrl"].is_null(),
        "{v}"
    );
    maestro_hub::domain::booking::sweep(&app.state.domain)
        .await
        .unwrap();
    let v = app
        .gql_as(
            Some(&parent),
            "query($id: ID!) { booking(id: $id) { payment { status checkoutUrl } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(v["data"]["booking"]["payment"]["status"], "PENDING", "{v}");
    assert_eq!(
        v["data"]["booking"]["payment"]["checkoutUrl"].as_str(),
        Some(first_url.as_str()),
        "the same checkout: the payment id is its key"
    );
}
