//! Reviews, the admin console's figures and lists, and the CSV exports:
//! every review rule and refusal, rating figures that survive 50
//! concurrent reviews, moderation, hand-computed revenue in two
//! currencies, role checks on every admin field, and exports that are
//! streamed and safe to open in a spreadsheet.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ConnectionTrait, EntityTrait, Statement};
use serde_json::{Value, json};

use crate::bookings::{at, confirmed, consumer, open_coach, shift_to_past};
use crate::helpers::{TestApp, code, field, profile_input, spawn_app, spawn_app_with, with_key};

const SUBMIT: &str = "mutation($b: ID!, $r: Int!, $c: String!) {
    submitReview(bookingId: $b, rating: $r, comment: $c) { id rating comment authorName coachResponse } }";
const RESPOND: &str = "mutation($r: ID!, $t: String!) { respondToReview(reviewId: $r, response: $t) { id coachResponse } }";
const HIDE: &str =
    "mutation($r: ID!) { hideReview(reviewId: $r, reason: \"Abusive\") { id hidden } }";
const UNHIDE: &str = "mutation($r: ID!) { unhideReview(reviewId: $r) { id hidden } }";
const COACH: &str = "query($id: ID!) { coach(id: $id) { ratingAverage ratingCount
    reviews(first: 10) { totalCount nodes { id rating } } } }";

/// A booking of `parent` with the coach, completed an hour ago.
async fn completed(
    app: &TestApp,
    parent: &str,
    coach_token: &str,
    coach: &str,
    day: i64,
) -> String {
    let id = confirmed(app, parent, coach, at(day, 10)).await;
    shift_to_past(app, &id, 3).await;
    let v = app
        .gql_as(
            Some(coach_token),
            "mutation($id: ID!) { completeBooking(bookingId: $id) { status } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(v["data"]["completeBooking"]["status"], "COMPLETED", "{v}");
    id
}

async fn review(app: &TestApp, parent: &str, booking: &str, rating: i64, comment: &str) -> Value {
    app.gql_as(
        Some(parent),
        SUBMIT,
        json!({ "b": booking, "r": rating, "c": comment }),
    )
    .await
}

#[tokio::test]
async fn every_review_rule_and_refusal() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (coach_token, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let (other_coach, _) = open_coach(&app, &admin, "other@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    let stranger = consumer(&app, "stranger@example.com").await;

    // Not completed yet.
    let upcoming = confirmed(&app, &parent, &coach, at(5, 10)).await;
    let v = review(&app, &parent, &upcoming, 5, "Great").await;
    assert_eq!(code(&v), Some("CONFLICT"), "{v}");

    let done = completed(&app, &parent, &coach_token, &coach, 3).await;
    // Not yours: someone else's booking does not exist for you.
    let v = review(&app, &stranger, &done, 5, "Great").await;
    assert_eq!(code(&v), Some("NOT_FOUND"), "{v}");
    // The coach cannot review their own session.
    let v = review(&app, &coach_token, &done, 5, "Great").await;
    assert_eq!(code(&v), Some("FORBIDDEN"), "{v}");
    for bad in [0, 6, -1] {
        let v = review(&app, &parent, &done, bad, "x").await;
        assert_eq!(code(&v), Some("BAD_USER_INPUT"), "{v}");
        assert_eq!(field(&v), Some("rating"));
    }
    let v = review(&app, &parent, &done, 4, &"a".repeat(2001)).await;
    assert_eq!(field(&v), Some("comment"), "{v}");

    // Hostile markup is sanitised like a bio.
    let v = review(
        &app,
        &parent,
        &done,
        4,
        "<script>alert(1)</script><b onclick=\"x()\">Patient</b> and kind",
    )
    .await;
    let r = &v["data"]["submitReview"];
    assert_eq!(r["comment"], "<b>Patient</b> and kind", "{v}");
    assert_eq!(r["rating"], 4);
    let review_id = r["id"].as_str().unwrap().to_string();
    // Twice: CONFLICT.
    let v = review(&app, &parent, &done, 5, "Again").await;
    assert_eq!(code(&v), Some("CONFLICT"), "{v}");
    assert_eq!(app.audit_count("review.created").await, 1);

    // The figures changed with it, and the coach was told.
    let v = app.gql(COACH, json!({ "id": coach })).await;
    assert_eq!(v["data"]["coach"]["ratingCount"], 1, "{v}");
    assert_eq!(v["data"]["coach"]["ratingAverage"], 4.0);
    let emails = entity::outbox::Entity::find()
        .all(&app.state.domain.db)
        .await
        .unwrap();
    let to_coach: Vec<_> = emails
        .iter()
        .filter(|e| e.template == "review_received")
        .collect();
    assert_eq!(to_coach.len(), 1);
    assert_eq!(to_coach[0].recipient, "coach@example.com");

    // Another coach cannot answer it; the reviewed coach answers once.
    let v = app
        .gql_as(
            Some(&other_coach),
            RESPOND,
            json!({ "r": review_id, "t": "Thanks" }),
        )
        .await;
    assert_eq!(code(&v), Some("NOT_FOUND"), "{v}");
    let v = app
        .gql_as(
            Some(&coach_token),
            RESPOND,
            json!({ "r": review_id, "t": "Thank you! <img src=x onerror=alert(1)>" }),
        )
        .await;
    assert_eq!(
        v["data"]["respondToReview"]["coachResponse"], "Thank you! ",
        "{v}"
    );
    let v = app
        .gql_as(
            Some(&coach_token),
            RESPOND,
            json!({ "r": review_id, "t": "Again" }),
        )
        .await;
    assert_eq!(code(&v), Some("CONFLICT"), "{v}");
    // Shown on the booking.
    let v = app
        .gql_as(
            Some(&parent),
            "query($id: ID!) { booking(id: $id) { review { id coachResponse } } }",
            json!({ "id": done }),
        )
        .await;
    assert_eq!(v["data"]["booking"]["review"]["id"], review_id.as_str());
}

#[tokio::test]
async fn fifty_concurrent_reviews_leave_figures_equal_to_a_recount_and_hiding_removes_one() {
    let app = spawn_app_with(crate::helpers::roomy_field_limits).await;
    let admin = app.admin_token().await;
    let (coach_token, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    let coach_user = entity::coach_profiles::Entity::find_by_id(coach.clone())
        .one(&app.state.domain.db)
        .await
        .unwrap()
        .unwrap()
        .user_id;
    let parent_id = app.gql_as(Some(&parent), "{ me { id } }", json!({})).await["data"]["me"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let _ = coach_token;
    // Fifty completed sessions, written directly (the API path is proven
    // above; this is about the figures).
    let ids = insert_bookings(
        &app,
        &coach,
        &coach_user,
        &parent_id,
        "COMPLETED",
        50,
        Utc::now() - Duration::days(2),
    )
    .await;
    let reviews = ids.iter().enumerate().map(|(i, b)| {
        let app = &app;
        let parent = parent.clone();
        let rating = (i % 5) as i64 + 1;
        async move { review(app, &parent, b, rating, "ok").await }
    });
    let results = futures_util::future::join_all(reviews).await;
    let ok: Vec<&Value> = results.iter().filter(|r| r["errors"].is_null()).collect();
    assert_eq!(
        ok.len(),
        50,
        "{:?}",
        results.iter().find(|r| !r["errors"].is_null())
    );

    let profile = entity::coach_profiles::Entity::find_by_id(coach.clone())
        .one(&app.state.domain.db)
        .await
        .unwrap()
        .unwrap();
    // 10 of each rating 1..5: 150 in all.
    assert_eq!((profile.rating_count, profile.rating_sum), (50, 150));
    assert_eq!(
        profile.rating_score,
        maestro_hub::domain::review::rating_score(50, 150)
    );
    maestro_hub::domain::review::refresh_rating(&app.state.domain.db, &coach)
        .await
        .unwrap();
    let recount = entity::coach_profiles::Entity::find_by_id(coach.clone())
        .one(&app.state.domain.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            recount.rating_count,
            recount.rating_sum,
            recount.rating_score
        ),
        (
            profile.rating_count,
            profile.rating_sum,
            profile.rating_score
        ),
        "equal to a recomputation"
    );
    let v = app.gql(COACH, json!({ "id": coach })).await;
    assert_eq!(v["data"]["coach"]["ratingCount"], 50, "search sees it: {v}");

    // Hidden: out of the public list and the figures; only admins may.
    let first = ok[0]["data"]["submitReview"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let rating = ok[0]["data"]["submitReview"]["rating"].as_i64().unwrap();
    let v = app.gql_as(Some(&parent), HIDE, json!({ "r": first })).await;
    assert_eq!(code(&v), Some("FORBIDDEN"), "{v}");
    let v = app.gql_as(Some(&admin), HIDE, json!({ "r": first })).await;
    assert_eq!(v["data"]["hideReview"]["hidden"], true, "{v}");
    assert_eq!(app.audit_count("review.hidden").await, 1);
    let v = app.gql(COACH, json!({ "id": coach })).await;
    let c = &v["data"]["coach"];
    assert_eq!(c["ratingCount"], 49, "{v}");
    assert_eq!(c["reviews"]["totalCount"], 49);
    assert!(
        c["reviews"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["id"] != first.as_str()),
        "left the public list"
    );
    let p = entity::coach_profiles::Entity::find_by_id(coach.clone())
        .one(&app.state.domain.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.rating_sum, 150 - rating);
    let v = app
        .gql_as(Some(&admin), UNHIDE, json!({ "r": first }))
        .await;
    assert_eq!(v["data"]["unhideReview"]["hidden"], false, "{v}");
    let v = app.gql(COACH, json!({ "id": coach })).await;
    assert_eq!(v["data"]["coach"]["ratingCount"], 50);
}

/// `n` bookings (and their holds) of one coach and consumer, written
/// directly; returns their ids.
pub async fn insert_bookings(
    app: &TestApp,
    coach: &str,
    coach_user: &str,
    consumer: &str,
    status: &str,
    n: usize,
    start: DateTime<Utc>,
) -> Vec<String> {
    let db = &app.state.domain.db;
    let backend = db.get_database_backend();
    // Numbered placeholders: each is used more than once.
    let ph = |i: usize| match backend {
        sea_orm::DatabaseBackend::Postgres => format!("${i}"),
        _ => format!("?{i}"),
    };
    let prefix = uuid::Uuid::now_v7().to_string();
    let now = Utc::now();
    let end = start + Duration::hours(1);
    let series =
        format!("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n})");
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        format!(
            "{series} INSERT INTO holds (id, coach_id, consumer_id, start_at, end_at, expires_at, status, created_at)
             SELECT {p1} || '-h' || i, {p2}, {p3}, {p4}, {p5}, {p4}, 'CONVERTED', {p6} FROM n",
            p1 = ph(1), p2 = ph(2), p3 = ph(3), p4 = ph(4), p5 = ph(5), p6 = ph(6)
        ),
        [
            prefix.clone().into(),
            coach.into(),
            consumer.into(),
            start.into(),
            end.into(),
            now.into(),
        ],
    ))
    .await
    .unwrap();
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        format!(
            "{series} INSERT INTO bookings (id, hold_id, coach_id, coach_user_id, consumer_id, start_at, end_at,
               start_s, status, price_minor, currency, platform_fee_minor, coach_payout_minor,
               payment_deadline, confirmed_at, reminded_24h, reminded_1h, meeting_url,
               cancellation_reason, cancelled_by, refunded_minor, package_purchase_id, credit_returned,
               created_at, updated_at)
             SELECT {p1} || '-b' || i, {p1} || '-h' || i, {p2}, {p3}, {p4}, {p5}, {p6}, {p7}, {p8},
               6000, 'USD', 600, 5400, {p5}, {p5}, {p9}, {p9}, NULL, NULL, NULL, 0, NULL, {p9},
               {p10}, {p10} FROM n",
            p1 = ph(1), p2 = ph(2), p3 = ph(3), p4 = ph(4), p5 = ph(5), p6 = ph(6),
            p7 = ph(7), p8 = ph(8), p9 = ph(9), p10 = ph(10)
        ),
        [
            prefix.clone().into(),
            coach.into(),
            coach_user.into(),
            consumer.into(),
            start.into(),
            end.into(),
            start.timestamp().into(),
            status.into(),
            false.into(),
            now.into(),
        ],
    ))
    .await
    .unwrap();
    (1..=n).map(|i| format!("{prefix}-b{i}")).collect()
}

#[tokio::test]
async fn admin_stats_match_hand_computed_totals_in_two_currencies() {
    let app = spawn_app().await;
    let from = Utc::now() - Duration::minutes(1);
    let admin = app.admin_token().await;
    let (us_token, us) = open_coach(&app, &admin, "us@example.com").await;
    let all_week: Vec<Value> = (1..=7)
        .map(|d| json!({ "weekday": d, "startTime": "00:00", "endTime": "24:00" }))
        .collect();
    let gb_input = with_key(
        with_key(profile_input("UTC"), "hourlyRateMinor", json!(5000)),
        "sessionDurations",
        json!([60]),
    );
    let (_, gb) = app
        .public_coach(&admin, "gb@example.com", "GB", gb_input, json!(all_week))
        .await;
    let parent = consumer(&app, "parent@example.com").await;
    let gb_parent = app
        .register("gbparent@example.com", "CONSUMER", Some("GB"))
        .await["accessToken"]
        .as_str()
        .unwrap()
        .to_string();

    // USD: two sessions of 60.00 (fee 6.00 each), one refunded 15.00 by an
    // admin; a package of 100.00 (fee 10.00); a sponsorship week of 49.00.
    let refunded = confirmed(&app, &parent, &us, at(3, 9)).await;
    confirmed(&app, &parent, &us, at(3, 11)).await;
    let v = app
        .gql_as(
            Some(&admin),
            "mutation($b: ID!) { refundBooking(bookingId: $b, amountMinor: 1500) { refundedAmount { amountMinor } } }",
            json!({ "b": refunded }),
        )
        .await;
    assert!(v["errors"].is_null(), "{v}");
    let p = app
        .gql_as(
            Some(&us_token),
            "mutation { createPackage(input: { name: \"Pair\", sessionCount: 2, priceMinor: 10000, validityDays: 30 }) { id } }",
            json!({}),
        )
        .await;
    let package = p["data"]["createPackage"]["id"].as_str().unwrap();
    let bought = app
        .gql_as(
            Some(&parent),
            "mutation($p: ID!) { purchasePackage(packageId: $p) { payment { checkoutUrl } } }",
            json!({ "p": package }),
        )
        .await;
    pay_dev(
        &app,
        &bought["data"]["purchasePackage"]["payment"]["checkoutUrl"],
    )
    .await;
    let plans = app
        .gql(
            "{ sponsorshipPlans(marketCode: \"US\") { id durationDays } }",
            json!({}),
        )
        .await;
    let week = plans["data"]["sponsorshipPlans"][0]["id"].as_str().unwrap();
    let s = app
        .gql_as(
            Some(&us_token),
            "mutation($p: ID!) { purchaseSponsorship(planId: $p) { payment { checkoutUrl } } }",
            json!({ "p": week }),
        )
        .await;
    pay_dev(
        &app,
        &s["data"]["purchaseSponsorship"]["payment"]["checkoutUrl"],
    )
    .await;
    // GBP: one session of 50.00 (fee 5.00).
    confirmed(&app, &gb_parent, &gb, at(3, 9)).await;

    let to = Utc::now() + Duration::minutes(1);
    let q = "query($f: DateTime!, $t: DateTime!) { adminStats(from: $f, to: $t) {
        bookingsCount completedCount cancelledCount newUsers activeCoaches
        grossRevenue { amountMinor currency } platformRevenue { amountMinor currency } } }";
    let v = app
        .gql_as(Some(&admin), q, json!({ "f": from, "t": to }))
        .await;
    let s = &v["data"]["adminStats"];
    assert_eq!(s["bookingsCount"], 3, "{v}");
    assert_eq!(s["completedCount"], 0);
    assert_eq!(s["cancelledCount"], 0);
    // The admin, two coaches and two parents.
    assert_eq!(s["newUsers"], 5);
    assert_eq!(s["activeCoaches"], 2);
    // Gross: 60 - 15 + 60 + 100 + 49 = 254.00 USD; 50.00 GBP.
    assert_eq!(
        s["grossRevenue"],
        json!([
            { "amountMinor": 5000, "currency": "GBP" },
            { "amountMinor": 25400, "currency": "USD" },
        ])
    );
    // Platform: the fee of the refunded session shrinks in proportion
    // (6.00 - 1.50 = 4.50), + 6.00 + 10.00 + all of the sponsorship 49.00.
    assert_eq!(
        s["platformRevenue"],
        json!([
            { "amountMinor": 500, "currency": "GBP" },
            { "amountMinor": 6950, "currency": "USD" },
        ])
    );
    // A range in the past has none of it.
    let v = app
        .gql_as(
            Some(&admin),
            q,
            json!({ "f": from - Duration::days(2), "t": from - Duration::days(1) }),
        )
        .await;
    assert_eq!(v["data"]["adminStats"]["grossRevenue"], json!([]), "{v}");
    let v = app
        .gql_as(Some(&admin), q, json!({ "f": to, "t": from }))
        .await;
    assert_eq!(code(&v), Some("BAD_USER_INPUT"), "{v}");
}

async fn pay_dev(app: &TestApp, url: &Value) {
    let url = url
        .as_str()
        .unwrap_or_else(|| panic!("no checkout url: {url}"));
    let path = &url[url.find("/dev/checkout/").unwrap()..];
    assert_eq!(
        app.client
            .post(app.url(path))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn every_admin_field_and_export_is_refused_to_others_and_the_audit_log_filters() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (coach, _) = open_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    let range = json!({ "f": Utc::now() - Duration::days(1), "t": Utc::now() + Duration::days(1) });
    let fields = [
        "{ adminCoaches { totalCount } }",
        "{ adminUsers { totalCount } }",
        "{ auditLog { totalCount } }",
        "{ adminSponsorships { id } }",
        "{ adminEmails { id } }",
        "{ adminRefunds { id } }",
        "query($f: DateTime!, $t: DateTime!) { adminStats(from: $f, to: $t) { bookingsCount } }",
        "mutation { hideReview(reviewId: \"x\", reason: \"r\") { id } }",
        "mutation { unhideReview(reviewId: \"x\") { id } }",
        "mutation { approveCoach(coachId: \"x\") { id } }",
        "mutation { suspendUser(userId: \"x\", reason: \"r\") { id } }",
        "mutation { refundBooking(bookingId: \"x\", amountMinor: 1) { id } }",
        "mutation { cancelSponsorship(sponsorshipId: \"x\", reason: \"r\") { id } }",
    ];
    for token in [&coach, &parent] {
        for q in fields {
            let v = app.gql_as(Some(token), q, range.clone()).await;
            assert_eq!(code(&v), Some("FORBIDDEN"), "{q}: {v}");
        }
    }
    for path in ["bookings", "payments"] {
        let url = app.url(&format!(
            "/admin/exports/{path}.csv?from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z"
        ));
        let none = app.client.get(&url).send().await.unwrap();
        assert_eq!(none.status(), 401);
        let bad = app
            .client
            .get(&url)
            .bearer_auth("not-a-token")
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 401);
        for token in [&coach, &parent] {
            let r = app
                .client
                .get(&url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "{path}");
        }
        let r = app
            .client
            .get(app.url(&format!("/admin/exports/{path}.csv?from=yesterday")))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    }
    assert_eq!(
        app.audit_count("admin.exported").await,
        0,
        "nothing exported"
    );

    // The audit log, newest first, filtered by action and actor.
    let log = "query($a: String, $u: ID, $n: Int, $c: String) {
        auditLog(action: $a, actorId: $u, first: $n, after: $c) {
        totalCount pageInfo { hasNextPage endCursor } nodes { action actorId createdAt } } }";
    let v = app
        .gql_as(Some(&admin), log, json!({ "a": "auth.registered", "n": 1 }))
        .await;
    let page = &v["data"]["auditLog"];
    assert_eq!(page["totalCount"], 2, "{v}");
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    let first_actor = page["nodes"][0]["actorId"].clone();
    let v = app
        .gql_as(
            Some(&admin),
            log,
            json!({ "a": "auth.registered", "n": 1, "c": page["pageInfo"]["endCursor"] }),
        )
        .await;
    let second = &v["data"]["auditLog"];
    assert_eq!(second["pageInfo"]["hasNextPage"], false, "{v}");
    assert_ne!(second["nodes"][0]["actorId"], first_actor);
    // The parent registered last, so comes first.
    let me = app.gql_as(Some(&parent), "{ me { id } }", json!({})).await;
    assert_eq!(first_actor, me["data"]["me"]["id"]);
    let v = app
        .gql_as(Some(&admin), log, json!({ "u": me["data"]["me"]["id"] }))
        .await;
    assert!(
        v["data"]["auditLog"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["actorId"] == me["data"]["me"]["id"]),
        "{v}"
    );
}

#[tokio::test]
async fn exports_stream_ten_thousand_bookings_with_formula_safe_cells() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (coach_token, coach) = open_coach(&app, &admin, "coach@example.com").await;
    // A display name that a spreadsheet would run as a formula.
    let hostile = "=HYPERLINK(\"http://evil.example\",\"Click\")";
    let v = app
        .gql_as(
            Some(&coach_token),
            "mutation($i: CoachProfileInput!) { upsertCoachProfile(input: $i) { displayName } }",
            json!({ "i": with_key(
                with_key(with_key(profile_input("UTC"), "displayName", json!(hostile)), "hourlyRateMinor", json!(6000)),
                "sessionDurations", json!([30, 60, 90])) }),
        )
        .await;
    assert_eq!(
        v["data"]["upsertCoachProfile"]["displayName"], hostile,
        "{v}"
    );
    let parent = consumer(&app, "parent@example.com").await;
    let booked = confirmed(&app, &parent, &coach, at(3, 10)).await;
    let profile = entity::coach_profiles::Entity::find_by_id(coach.clone())
        .one(&app.state.domain.db)
        .await
        .unwrap()
        .unwrap();
    let parent_id = app.gql_as(Some(&parent), "{ me { id } }", json!({})).await["data"]["me"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    insert_bookings(
        &app,
        &coach,
        &profile.user_id,
        &parent_id,
        "COMPLETED",
        10_000,
        Utc::now() - Duration::days(30),
    )
    .await;

    let from = (Utc::now() - Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let to = (Utc::now() + Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut r = app
        .client
        .get(app.url(&format!("/admin/exports/bookings.csv?from={from}&to={to}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        r.headers().get("content-length").is_none(),
        "streamed, not buffered"
    );
    let mut chunks = 0;
    let mut body = Vec::new();
    while let Some(c) = r.chunk().await.unwrap() {
        chunks += 1;
        body.extend_from_slice(&c);
    }
    assert!(chunks > 2, "arrived in pieces: {chunks}");
    let text = String::from_utf8(body).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    assert_eq!(&headers[0], "booking_id");
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 10_001, "every booking of the range");
    let coach_col = headers.iter().position(|h| h == "coach_name").unwrap();
    assert!(
        rows.iter().all(|r| r[coach_col] == format!("'{hostile}")),
        "the formula is defused in every row"
    );
    let mine = rows.iter().find(|r| r[0] == booked).unwrap();
    let price_col = headers.iter().position(|h| h == "price_minor").unwrap();
    let cur_col = headers.iter().position(|h| h == "currency").unwrap();
    assert_eq!((&mine[price_col], &mine[cur_col]), ("6000", "USD"));

    let r = app
        .client
        .get(app.url(&format!("/admin/exports/payments.csv?from={from}&to={to}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let payments: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(payments.len(), 1, "{text}");
    assert_eq!(app.audit_count("admin.exported").await, 2);
}
