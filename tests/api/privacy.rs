//! Privacy: a user's export holds their records and of anyone else only a
//! name; deleting an account is refused while money moves, cancels future
//! sessions under the policy, and leaves no personal data behind while the
//! books stay as they were.

use chrono::{Duration, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::bookings::{BOOK, at, confirmed, consumer, hold, open_coach, shift_to_past};
use crate::helpers::{PASSWORD, TestApp, code, spawn_app};

const EXPORT: &str = "mutation { exportMyData }";
const DELETE: &str = "mutation($p: String!) { deleteMyAccount(password: $p) }";

async fn export(app: &TestApp, token: &str) -> (String, Value) {
    let v = app.gql_as(Some(token), EXPORT, json!({})).await;
    let raw = v["data"]["exportMyData"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_string();
    let doc = serde_json::from_str(&raw).unwrap();
    (raw, doc)
}

async fn completed(app: &TestApp, parent: &str, coach_token: &str, coach: &str) -> String {
    let id = confirmed(app, parent, coach, at(3, 10)).await;
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

async fn rename(app: &TestApp, token: &str, name: &str) {
    let v = app
        .gql_as(
            Some(token),
            "mutation($n: String!) { updateProfile(input: { name: $n }) { name } }",
            json!({ "n": name }),
        )
        .await;
    assert_eq!(v["data"]["updateProfile"]["name"], name, "{v}");
}

#[tokio::test]
async fn an_export_holds_the_callers_records_and_only_names_of_others() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (coach_token, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    rename(&app, &parent, "Priya Parent").await;
    let done = completed(&app, &parent, &coach_token, &coach).await;
    let v = app
        .gql_as(
            Some(&parent),
            "mutation($b: ID!) { submitReview(bookingId: $b, rating: 5, comment: \"Lovely\") { id } }",
            json!({ "b": done }),
        )
        .await;
    assert!(v["errors"].is_null(), "{v}");
    confirmed(&app, &parent, &coach, at(4, 10)).await;

    let (raw, doc) = export(&app, &parent).await;
    assert_eq!(doc["account"]["email"], "parent@example.com");
    assert_eq!(doc["account"]["name"], "Priya Parent");
    assert_eq!(doc["account"]["market"], "US");
    let bookings = doc["bookings"].as_array().unwrap();
    assert_eq!(bookings.len(), 2, "{doc}");
    assert!(
        bookings
            .iter()
            .all(|b| b["with"] == "Maya Rivers" && b["as"] == "CONSUMER")
    );
    assert_eq!(doc["payments"].as_array().unwrap().len(), 2);
    assert_eq!(doc["reviewsWritten"][0]["comment"], "Lovely");
    assert!(!doc["auditEntries"].as_array().unwrap().is_empty());
    assert!(!raw.contains("coach@example.com"), "no counterpart email");

    let (raw, doc) = export(&app, &coach_token).await;
    assert_eq!(doc["coachProfile"]["displayName"], "Maya Rivers");
    assert!(!doc["availability"].as_array().unwrap().is_empty());
    let bookings = doc["bookings"].as_array().unwrap();
    assert!(
        bookings
            .iter()
            .all(|b| b["with"] == "Priya Parent" && b["as"] == "COACH")
    );
    assert_eq!(doc["reviewsReceived"][0]["author"], "Priya Parent");
    assert!(!raw.contains("parent@example.com"), "no counterpart email");
    assert_eq!(app.audit_count("account.exported").await, 2);

    let v = app.gql(EXPORT, json!({})).await;
    assert_eq!(code(&v), Some("UNAUTHENTICATED"), "{v}");
}

#[tokio::test]
async fn deleting_a_consumer_leaves_no_personal_data_and_the_books_unchanged() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (coach_token, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    rename(&app, &parent, "Priya Parent").await;
    let done = completed(&app, &parent, &coach_token, &coach).await;
    let v = app
        .gql_as(
            Some(&parent),
            "mutation($b: ID!) { submitReview(bookingId: $b, rating: 5, comment: \"Lovely teacher\") { id } }",
            json!({ "b": done }),
        )
        .await;
    assert!(v["errors"].is_null(), "{v}");

    let v = app
        .gql_as(Some(&parent), DELETE, json!({ "p": "Wrong-password-1" }))
        .await;
    assert_eq!(code(&v), Some("UNAUTHENTICATED"), "{v}");

    // A booking awaiting payment: refused, and nothing changed.
    let h = hold(&app, &parent, &coach, at(5, 10), 60).await;
    let b = app
        .gql_as(
            Some(&parent),
            BOOK,
            json!({ "h": h["data"]["createHold"]["id"] }),
        )
        .await;
    let pending = b["data"]["bookHold"]["id"].as_str().unwrap().to_string();
    let v = app
        .gql_as(Some(&parent), DELETE, json!({ "p": PASSWORD }))
        .await;
    assert_eq!(code(&v), Some("CONFLICT"), "{v}");
    assert!(
        app.gql_as(Some(&parent), "{ me { email } }", json!({}))
            .await["errors"]
            .is_null(),
        "still signed in"
    );
    let v = app
        .gql_as(
            Some(&parent),
            "mutation($id: ID!) { cancelBooking(bookingId: $id, reason: \"later\") { status } }",
            json!({ "id": pending }),
        )
        .await;
    assert_eq!(v["data"]["cancelBooking"]["status"], "CANCELLED", "{v}");

    let stats = "query($f: DateTime!, $t: DateTime!) { adminStats(from: $f, to: $t) {
        bookingsCount completedCount cancelledCount newUsers activeCoaches
        grossRevenue { amountMinor currency } platformRevenue { amountMinor currency } } }";
    let range = json!({ "f": Utc::now() - Duration::days(1), "t": Utc::now() + Duration::days(1) });
    let before = app.gql_as(Some(&admin), stats, range.clone()).await;
    let payments_before = entity::payments::Entity::find()
        .all(&app.state.domain.db)
        .await
        .unwrap();

    let v = app
        .gql_as(Some(&parent), DELETE, json!({ "p": PASSWORD }))
        .await;
    assert_eq!(v["data"]["deleteMyAccount"], true, "{v}");

    // Old tokens are refused.
    let v = app
        .gql_as(Some(&parent), "{ me { email } }", json!({}))
        .await;
    assert_eq!(code(&v), Some("UNAUTHENTICATED"), "{v}");
    // No email, name or bio left in users, coach profiles or reviews.
    let db = &app.state.domain.db;
    for u in entity::users::Entity::find().all(db).await.unwrap() {
        assert!(!u.email.contains("parent"), "{u:?}");
        assert_ne!(u.name, "Priya Parent");
    }
    for r in entity::reviews::Entity::find().all(db).await.unwrap() {
        assert!(!r.comment.contains("Priya"));
    }
    for a in entity::audit_log::Entity::find().all(db).await.unwrap() {
        let detail = a.detail.unwrap_or_default();
        assert!(
            !detail.contains("parent@example.com"),
            "{}: {detail}",
            a.action
        );
    }
    for e in entity::outbox::Entity::find().all(db).await.unwrap() {
        assert!(!e.recipient.contains("parent@example.com"));
        assert!(!e.data.contains("Priya"));
    }
    // The review stays, by "Former user"; the books are as they were.
    let v = app
        .gql(
            "query($id: ID!) { coach(id: $id) { ratingCount reviews { nodes { authorName comment } } } }",
            json!({ "id": coach }),
        )
        .await;
    let node = &v["data"]["coach"]["reviews"]["nodes"][0];
    assert_eq!(node["authorName"], "Former user", "{v}");
    assert_eq!(node["comment"], "Lovely teacher");
    assert_eq!(v["data"]["coach"]["ratingCount"], 1);
    let after = app.gql_as(Some(&admin), stats, range).await;
    assert_eq!(after, before, "adminStats unchanged");
    let payments_after = entity::payments::Entity::find().all(db).await.unwrap();
    assert_eq!(payments_after, payments_before, "payments untouched");
    assert_eq!(app.audit_count("account.deleted").await, 1);

    // The address is free again, and the old password opens nothing.
    let v = app.login("parent@example.com", PASSWORD).await;
    assert_eq!(code(&v), Some("UNAUTHENTICATED"), "{v}");
    let again = app
        .register("parent@example.com", "CONSUMER", Some("US"))
        .await;
    assert!(again["accessToken"].is_string());
}

#[tokio::test]
async fn a_coach_who_leaves_refunds_future_sessions_in_full_and_leaves_search() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (coach_token, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    // Within 24 h: a consumer cancelling would get nothing; the coach
    // leaving refunds it in full.
    let soon = crate::bookings::day_slot(Utc::now() + Duration::hours(3));
    let future = confirmed(&app, &parent, &coach, soon).await;
    // A package bought and not used yet, and a slot held.
    let p = app
        .gql_as(
            Some(&coach_token),
            "mutation { createPackage(input: { name: \"Pair\", sessionCount: 2, priceMinor: 10000, validityDays: 30 }) { id } }",
            json!({}),
        )
        .await;
    let bought = app
        .gql_as(
            Some(&parent),
            "mutation($p: ID!) { purchasePackage(packageId: $p) { id payment { id checkoutUrl } } }",
            json!({ "p": p["data"]["createPackage"]["id"] }),
        )
        .await;
    let url = bought["data"]["purchasePackage"]["payment"]["checkoutUrl"]
        .as_str()
        .unwrap_or_else(|| panic!("{bought}"))
        .to_string();
    let package_payment = bought["data"]["purchasePackage"]["payment"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = &url[url.find("/dev/checkout/").unwrap()..];
    app.client.post(app.url(path)).send().await.unwrap();
    let held = hold(&app, &parent, &coach, at(4, 10), 60).await;
    let held = held["data"]["createHold"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let search = "{ searchCoaches(filter: { marketCode: \"US\" }) { totalCount } }";
    assert_eq!(
        app.gql(search, json!({})).await["data"]["searchCoaches"]["totalCount"],
        1
    );

    let v = app
        .gql_as(Some(&coach_token), DELETE, json!({ "p": PASSWORD }))
        .await;
    assert_eq!(v["data"]["deleteMyAccount"], true, "{v}");
    let v = app
        .gql_as(
            Some(&parent),
            "query($id: ID!) { booking(id: $id) { status refundedAmount { amountMinor } payment { status } } }",
            json!({ "id": future }),
        )
        .await;
    let b = &v["data"]["booking"];
    assert_eq!(b["status"], "CANCELLED", "{v}");
    assert_eq!(b["refundedAmount"]["amountMinor"], 6000);
    assert_eq!(b["payment"]["status"], "REFUNDED");
    assert_eq!(
        app.gql(search, json!({})).await["data"]["searchCoaches"]["totalCount"],
        0,
        "withdrawn from search"
    );
    let profile = entity::coach_profiles::Entity::find_by_id(coach.clone())
        .one(&app.state.domain.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(profile.display_name, "Former coach");
    assert!(profile.bio.is_empty() && profile.headline.is_empty());
    assert!(profile.meeting_url.is_none() && !profile.published);
    let rules = entity::availability_rules::Entity::find()
        .filter(entity::availability_rules::Column::CoachId.eq(coach.clone()))
        .all(&app.state.domain.db)
        .await
        .unwrap();
    assert!(rules.is_empty());
    let v = app
        .gql_as(Some(&coach_token), "{ me { id } }", json!({}))
        .await;
    assert_eq!(code(&v), Some("UNAUTHENTICATED"), "{v}");

    // The unused credits were refunded, and the held slot cannot be booked.
    let pay = entity::payments::Entity::find_by_id(package_payment)
        .one(&app.state.domain.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pay.refunded_minor, 10000, "both credits refunded");
    let v = app
        .gql_as(
            Some(&parent),
            "{ myPackagePurchases { status sessionsRemaining } }",
            json!({}),
        )
        .await;
    assert_eq!(
        v["data"]["myPackagePurchases"][0],
        json!({ "status": "CANCELLED", "sessionsRemaining": 0 })
    );
    let v = app.gql_as(Some(&parent), BOOK, json!({ "h": held })).await;
    assert_eq!(code(&v), Some("CONFLICT"), "{v}");
}
