//! Packages and sponsorships end to end: what coaches sell besides single
//! sessions, paid through the same checkout as bookings (the fake Stripe
//! at its HTTP boundary, or the dev checkout page), credits spent and
//! given back, and sponsored placement in search that is labelled,
//! time-boxed, queued and never lifts a coach the public cannot book.

use chrono::{Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::bookings::{at, consumer, hold, open_coach};
use crate::fake_stripe::FakeStripe;
use crate::helpers::{TestApp, code, field, spawn_app};
use crate::payments::{deliver, payable_coach, stripe_app};

const CREATE: &str = "mutation($i: PackageCreateInput!) { createPackage(input: $i) {
    id name sessionCount price { amountMinor currency } validityDays active coach { id } } }";
const SET_ACTIVE: &str =
    "mutation($p: ID!, $a: Boolean!) { setPackageActive(packageId: $p, active: $a) { id active } }";
const PURCHASE: &str = "mutation($p: ID!) { purchasePackage(packageId: $p) {
    id status sessionCount sessionsRemaining expiresAt package { id }
    payment { id status amount { amountMinor currency } checkoutUrl } } }";
const MINE: &str = "{ myPackagePurchases { id status sessionsRemaining expiresAt
    payment { status refundedAmount { amountMinor } } } }";
const BOOK_WITH: &str = "mutation($h: ID!, $p: ID) { bookHold(holdId: $h, packagePurchaseId: $p) {
    id status meetingUrl price { amountMinor currency } platformFee { amountMinor }
    coachPayout { amountMinor } packagePurchaseId creditReturned payment { id } } }";
const CANCEL: &str =
    "mutation($id: ID!) { cancelBooking(bookingId: $id, reason: \"plans changed\") {
    status creditReturned refundedAmount { amountMinor } } }";
const PLANS: &str = "query($m: String!) { sponsorshipPlans(marketCode: $m) {
    id name durationDays price { amountMinor currency } market { code } } }";
const SPONSOR: &str = "mutation($p: ID!) { purchaseSponsorship(planId: $p) {
    id status startsAt endsAt plan { durationDays } payment { id checkoutUrl amount { amountMinor } } } }";
const MY_SPONSORSHIPS: &str = "{ mySponsorships { id status startsAt endsAt } }";
const SEARCH: &str =
    "query($s: CoachSort) { searchCoaches(filter: { marketCode: \"US\" }, sort: $s) {
    nodes { id displayName isSponsored } } }";

pub fn package_input(name: &str, sessions: i32, price: i64, days: i32) -> Value {
    json!({ "name": name, "sessionCount": sessions, "priceMinor": price, "validityDays": days })
}

pub async fn create_package(app: &TestApp, coach: &str, input: Value) -> String {
    let v = app.gql_as(Some(coach), CREATE, json!({ "i": input })).await;
    v["data"]["createPackage"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_string()
}

async fn purchase(app: &TestApp, parent: &str, package: &str) -> Value {
    let v = app
        .gql_as(Some(parent), PURCHASE, json!({ "p": package }))
        .await;
    assert!(v["errors"].is_null(), "{v}");
    v["data"]["purchasePackage"].clone()
}

/// Pays through the dev checkout page.
async fn pay_dev(app: &TestApp, checkout_url: &str) {
    let path = &checkout_url[checkout_url.find("/dev/checkout/").unwrap()..];
    let res = app.client.post(app.url(path)).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

/// A paid purchase (dev checkout): its id.
async fn bought(app: &TestApp, parent: &str, package: &str) -> String {
    let p = purchase(app, parent, package).await;
    pay_dev(app, p["payment"]["checkoutUrl"].as_str().unwrap()).await;
    p["id"].as_str().unwrap().to_string()
}

async fn purchase_row(app: &TestApp, id: &str) -> entity::package_purchases::Model {
    entity::package_purchases::Entity::find_by_id(id.to_string())
        .one(&app.state.domain.db)
        .await
        .unwrap()
        .unwrap()
}

async fn hold_id(app: &TestApp, parent: &str, coach: &str, start: chrono::DateTime<Utc>) -> String {
    let h = hold(app, parent, coach, start, 60).await;
    h["data"]["createHold"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{h}"))
        .to_string()
}

async fn book_with(app: &TestApp, parent: &str, hold: &str, purchase: &str) -> Value {
    app.gql_as(Some(parent), BOOK_WITH, json!({ "h": hold, "p": purchase }))
        .await
}

async fn hold_status(app: &TestApp, hold: &str) -> String {
    entity::holds::Entity::find_by_id(hold.to_string())
        .one(&app.state.domain.db)
        .await
        .unwrap()
        .unwrap()
        .status
}

/// The session id of a Stripe checkout URL.
fn session_of(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_string()
}

/// Stripe reports the checkout paid (the webhook, once).
async fn stripe_paid(app: &TestApp, stripe: &FakeStripe, session: &str) {
    let object = stripe.pay(session);
    let status = deliver(
        app,
        &format!("evt_paid_{session}"),
        "checkout.session.completed",
        object,
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn packages_are_validated_owned_and_taken_off_sale() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (coach, coach_id) = open_coach(&app, &admin, "coach@example.com").await;
    let (other, _) = open_coach(&app, &admin, "other@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;

    for (input, bad) in [
        (package_input("X", 5, 25_000, 90), "name"),
        (package_input(&"n".repeat(81), 5, 25_000, 90), "name"),
        (package_input("Five <b>", 5, 25_000, 90), "name"),
        (package_input("Single", 1, 25_000, 90), "sessionCount"),
        (package_input("Huge", 51, 25_000, 90), "sessionCount"),
        (package_input("Free", 5, 0, 90), "priceMinor"),
        (package_input("Pennies", 5, 4, 90), "priceMinor"),
        (package_input("Dear", 5, 100_001, 90), "priceMinor"),
        (package_input("Short", 5, 25_000, 6), "validityDays"),
        (package_input("Long", 5, 25_000, 366), "validityDays"),
    ] {
        let v = app
            .gql_as(Some(&coach), CREATE, json!({ "i": input }))
            .await;
        assert_eq!(code(&v), Some("BAD_USER_INPUT"), "{v}");
        assert_eq!(field(&v), Some(bad), "{v}");
    }
    let v = app
        .gql_as(
            Some(&parent),
            CREATE,
            json!({ "i": package_input("Mine", 5, 25_000, 90) }),
        )
        .await;
    assert_eq!(code(&v), Some("FORBIDDEN"), "{v}");
    assert_eq!(app.audit_count("package.created").await, 0, "nothing made");

    let v = app
        .gql_as(
            Some(&coach),
            CREATE,
            json!({ "i": package_input("  Five sessions  ", 5, 25_000, 90) }),
        )
        .await;
    let p = &v["data"]["createPackage"];
    assert_eq!(p["name"], "Five sessions", "{v}");
    assert_eq!(
        p["price"],
        json!({ "amountMinor": 25_000, "currency": "USD" })
    );
    assert_eq!(p["coach"]["id"], coach_id.as_str());
    assert_eq!(p["active"], true);
    let package = p["id"].as_str().unwrap().to_string();

    // Only the owner changes it; to anyone else it does not exist.
    for token in [&other, &parent] {
        let v = app
            .gql_as(Some(token), SET_ACTIVE, json!({ "p": package, "a": false }))
            .await;
        assert!(
            matches!(code(&v), Some("NOT_FOUND") | Some("FORBIDDEN")),
            "{v}"
        );
    }
    let v = app
        .gql_as(
            Some(&coach),
            SET_ACTIVE,
            json!({ "p": package, "a": false }),
        )
        .await;
    assert_eq!(v["data"]["setPackageActive"]["active"], false, "{v}");
    assert_eq!(app.audit_count("package.deactivated").await, 1);

    // Off sale: gone from the public profile, still listed for the owner,
    // and not for sale.
    let q = "query($id: ID!) { coach(id: $id) { packages { id active } } }";
    let public = app.gql(q, json!({ "id": coach_id })).await;
    assert_eq!(public["data"]["coach"]["packages"], json!([]), "{public}");
    let own = app.gql_as(Some(&coach), q, json!({ "id": coach_id })).await;
    assert_eq!(
        own["data"]["coach"]["packages"],
        json!([{ "id": package, "active": false }])
    );
    let v = app
        .gql_as(Some(&parent), PURCHASE, json!({ "p": package }))
        .await;
    assert_eq!(code(&v), Some("BAD_USER_INPUT"), "{v}");
    assert_eq!(field(&v), Some("packageId"));

    // A consumer of another market cannot buy it.
    let gb = app.register("gb@example.com", "CONSUMER", Some("GB")).await["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    app.gql_as(Some(&coach), SET_ACTIVE, json!({ "p": package, "a": true }))
        .await;
    let v = app
        .gql_as(Some(&gb), PURCHASE, json!({ "p": package }))
        .await;
    assert_eq!(code(&v), Some("BAD_USER_INPUT"), "{v}");
    assert_eq!(field(&v), Some("packageId"));
}

#[tokio::test]
async fn a_package_checkout_is_a_destination_charge_and_twenty_webhooks_grant_its_credits_once() {
    let (app, stripe) = stripe_app().await;
    let admin = app.admin_token().await;
    let (coach, _, account) = payable_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    let package = create_package(&app, &coach, package_input("Ten", 10, 50_000, 60)).await;

    let p = purchase(&app, &parent, &package).await;
    assert_eq!(p["status"], "PENDING");
    assert_eq!(p["sessionsRemaining"], 0);
    assert!(p["expiresAt"].is_null());
    let payment = p["payment"]["id"].as_str().unwrap().to_string();
    let url = p["payment"]["checkoutUrl"].as_str().unwrap().to_string();
    // Asking again while it awaits payment gives the same purchase.
    let again = purchase(&app, &parent, &package).await;
    assert_eq!(again["id"], p["id"]);

    let sessions = stripe.acted("/v1/checkout/sessions");
    assert_eq!(sessions.len(), 1, "one checkout");
    let s = &sessions[0];
    assert_eq!(
        s.idempotency_key.as_deref(),
        Some(format!("checkout-{payment}").as_str())
    );
    assert_eq!(
        s.get("line_items[0][price_data][unit_amount]"),
        Some("50000")
    );
    assert_eq!(s.get("line_items[0][price_data][currency]"), Some("usd"));
    assert_eq!(
        s.get("payment_intent_data[application_fee_amount]"),
        Some("5000")
    );
    assert_eq!(
        s.get("payment_intent_data[transfer_data][destination]"),
        Some(account.as_str())
    );
    assert_eq!(s.get("metadata[purpose]"), Some("PACKAGE_PURCHASE"));
    assert_eq!(s.get("client_reference_id"), Some(payment.as_str()));

    // Stripe delivers the same event twenty times at once.
    let session = session_of(&url);
    let object = stripe.pay(&session);
    let deliveries = (0..20).map(|_| {
        let app = &app;
        let object = object.clone();
        let id = format!("evt_paid_{session}");
        async move { deliver(app, &id, "checkout.session.completed", object).await }
    });
    let statuses = futures_util::future::join_all(deliveries).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // And once more under another event id (reconciliation's key).
    assert_eq!(
        deliver(
            &app,
            "evt_other",
            "checkout.session.completed",
            object.clone()
        )
        .await,
        200
    );

    let mine = app.gql_as(Some(&parent), MINE, json!({})).await;
    let m = &mine["data"]["myPackagePurchases"][0];
    assert_eq!(m["status"], "ACTIVE", "{mine}");
    assert_eq!(m["sessionsRemaining"], 10, "credits granted once");
    assert_eq!(m["payment"]["status"], "SUCCEEDED");
    assert_eq!(app.audit_count("package.purchased").await, 1);
    assert_eq!(app.audit_count("payment.succeeded").await, 1);
    let row = purchase_row(&app, p["id"].as_str().unwrap()).await;
    let valid = row.expires_at.unwrap() - row.paid_at.unwrap();
    assert_eq!(valid, Duration::days(60), "valid from payment");
    let receipts = entity::outbox::Entity::find()
        .filter(entity::outbox::Column::Template.eq("purchase_receipt"))
        .all(&app.state.domain.db)
        .await
        .unwrap();
    assert_eq!(receipts.len(), 1, "one receipt");
}

#[tokio::test]
async fn credits_are_spent_down_to_zero_and_a_full_refund_cancellation_gives_one_back() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (coach, coach_id) = open_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    // Two sessions for 100.01 USD: the share rounds down.
    let package = create_package(&app, &coach, package_input("Pair", 2, 10_001, 30)).await;
    let purchase_id = bought(&app, &parent, &package).await;
    assert_eq!(purchase_row(&app, &purchase_id).await.sessions_remaining, 2);

    let h1 = hold_id(&app, &parent, &coach_id, at(3, 9)).await;
    let b1 = book_with(&app, &parent, &h1, &purchase_id).await;
    let b1 = &b1["data"]["bookHold"];
    assert_eq!(b1["status"], "CONFIRMED", "{b1}");
    assert!(b1["meetingUrl"].as_str().is_some());
    assert!(b1["payment"].is_null(), "no payment of its own");
    assert_eq!(
        b1["price"],
        json!({ "amountMinor": 5000, "currency": "USD" })
    );
    assert_eq!(b1["platformFee"]["amountMinor"], 500);
    assert_eq!(b1["coachPayout"]["amountMinor"], 4500);
    assert_eq!(b1["packagePurchaseId"], purchase_id.as_str());
    let b1 = b1["id"].as_str().unwrap().to_string();

    // A session within 24 h: cancelling it refunds nothing, so the credit
    // stays spent.
    let soon = crate::bookings::day_slot(Utc::now() + Duration::hours(3));
    let h2 = hold_id(&app, &parent, &coach_id, soon).await;
    let b2 = book_with(&app, &parent, &h2, &purchase_id).await;
    assert_eq!(b2["data"]["bookHold"]["status"], "CONFIRMED", "{b2}");
    let b2 = b2["data"]["bookHold"]["id"].as_str().unwrap().to_string();
    assert_eq!(purchase_row(&app, &purchase_id).await.sessions_remaining, 0);
    assert_eq!(app.audit_count("package.credit_spent").await, 2);

    // None left: refused, and the hold is still the consumer's.
    let h3 = hold_id(&app, &parent, &coach_id, at(4, 9)).await;
    let v = book_with(&app, &parent, &h3, &purchase_id).await;
    assert_eq!(code(&v), Some("CONFLICT"), "{v}");
    assert_eq!(hold_status(&app, &h3).await, "ACTIVE");

    let late = app.gql_as(Some(&parent), CANCEL, json!({ "id": b2 })).await;
    let late = &late["data"]["cancelBooking"];
    assert_eq!(late["status"], "CANCELLED", "{late}");
    assert_eq!(late["creditReturned"], false);
    assert_eq!(purchase_row(&app, &purchase_id).await.sessions_remaining, 0);

    // Three days ahead: a full refund under the policy, so the credit
    // comes back instead of money.
    let early = app.gql_as(Some(&parent), CANCEL, json!({ "id": b1 })).await;
    let early = &early["data"]["cancelBooking"];
    assert_eq!(early["status"], "CANCELLED", "{early}");
    assert_eq!(early["creditReturned"], true);
    assert_eq!(early["refundedAmount"]["amountMinor"], 0, "no money back");
    assert_eq!(purchase_row(&app, &purchase_id).await.sessions_remaining, 1);
    assert_eq!(app.audit_count("package.credit_returned").await, 1);
    let refunds = entity::refunds::Entity::find()
        .all(&app.state.domain.db)
        .await
        .unwrap();
    assert!(refunds.is_empty(), "the package payment is not refunded");

    // The returned credit books the held slot.
    let v = book_with(&app, &parent, &h3, &purchase_id).await;
    assert_eq!(v["data"]["bookHold"]["status"], "CONFIRMED", "{v}");
    assert_eq!(purchase_row(&app, &purchase_id).await.sessions_remaining, 0);
}

#[tokio::test]
async fn a_purchase_that_cannot_pay_is_refused_and_spends_nothing() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (coach, coach_id) = open_coach(&app, &admin, "coach@example.com").await;
    let (other, other_id) = open_coach(&app, &admin, "other@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    let stranger = consumer(&app, "stranger@example.com").await;
    let package = create_package(&app, &coach, package_input("Five", 5, 25_000, 30)).await;
    let other_package = create_package(&app, &other, package_input("Five", 5, 25_000, 30)).await;

    let paid = bought(&app, &parent, &package).await;
    let for_other = bought(&app, &parent, &other_package).await;
    let strangers = bought(&app, &stranger, &package).await;
    let unpaid = purchase(&app, &parent, &package).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let hold = hold_id(&app, &parent, &coach_id, at(3, 9)).await;

    for (purchase, expected, what) in [
        (
            for_other.as_str(),
            "BAD_USER_INPUT",
            "another coach's package",
        ),
        (strangers.as_str(), "NOT_FOUND", "someone else's purchase"),
        (unpaid.as_str(), "BAD_USER_INPUT", "an unpaid purchase"),
        ("no-such-purchase", "NOT_FOUND", "an unknown purchase"),
    ] {
        let v = book_with(&app, &parent, &hold, purchase).await;
        assert_eq!(code(&v), Some(expected), "{what}: {v}");
        if expected == "BAD_USER_INPUT" {
            assert_eq!(field(&v), Some("packagePurchaseId"), "{what}");
        }
    }
    // Expired (moved into the past behind the app's back).
    entity::package_purchases::Entity::update_many()
        .col_expr(
            entity::package_purchases::Column::ExpiresAt,
            Expr::value(Utc::now() - Duration::minutes(1)),
        )
        .filter(entity::package_purchases::Column::Id.eq(paid.clone()))
        .exec(&app.state.domain.db)
        .await
        .unwrap();
    let v = book_with(&app, &parent, &hold, &paid).await;
    assert_eq!(code(&v), Some("CONFLICT"), "expired: {v}");
    let mine = app.gql_as(Some(&parent), MINE, json!({})).await;
    let statuses: Vec<&str> = mine["data"]["myPackagePurchases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["PENDING", "ACTIVE", "EXPIRED"], "{mine}");
    let _ = &other;

    // A session that starts after the purchase expires cannot use it.
    entity::package_purchases::Entity::update_many()
        .col_expr(
            entity::package_purchases::Column::ExpiresAt,
            Expr::value(at(3, 9)),
        )
        .filter(entity::package_purchases::Column::Id.eq(for_other.clone()))
        .exec(&app.state.domain.db)
        .await
        .unwrap();
    let other_hold = hold_id(&app, &parent, &other_id, at(3, 9)).await;
    let v = book_with(&app, &parent, &other_hold, &for_other).await;
    assert_eq!(code(&v), Some("BAD_USER_INPUT"), "after expiry: {v}");
    assert_eq!(field(&v), Some("packagePurchaseId"));

    // Nothing was spent and the hold is untouched.
    for id in [&paid, &for_other, &strangers] {
        assert_eq!(purchase_row(&app, id).await.sessions_remaining, 5);
    }
    assert_eq!(hold_status(&app, &hold).await, "ACTIVE");
    assert_eq!(app.audit_count("package.credit_spent").await, 0);

    // The job records the expiry, audited.
    maestro_hub::domain::booking::sweep(&app.state.domain)
        .await
        .unwrap();
    assert_eq!(purchase_row(&app, &paid).await.status, "EXPIRED");
    assert_eq!(app.audit_count("package.expired").await, 1);
}

#[tokio::test]
async fn the_last_credit_raced_by_two_book_holds_gives_one_booking() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (coach, coach_id) = open_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    let package = create_package(&app, &coach, package_input("Pair", 2, 12_000, 30)).await;
    let purchase_id = bought(&app, &parent, &package).await;
    let first = hold_id(&app, &parent, &coach_id, at(3, 8)).await;
    let v = book_with(&app, &parent, &first, &purchase_id).await;
    assert_eq!(v["data"]["bookHold"]["status"], "CONFIRMED", "{v}");

    // One credit left, two holds booked with it at once.
    let a = hold_id(&app, &parent, &coach_id, at(3, 10)).await;
    let b = hold_id(&app, &parent, &coach_id, at(3, 12)).await;
    let (ra, rb) = tokio::join!(
        book_with(&app, &parent, &a, &purchase_id),
        book_with(&app, &parent, &b, &purchase_id)
    );
    let won: Vec<&Value> = [&ra, &rb]
        .into_iter()
        .filter(|r| r["errors"].is_null())
        .collect();
    assert_eq!(won.len(), 1, "one booking: {ra} {rb}");
    let lost = if ra["errors"].is_null() { &rb } else { &ra };
    assert_eq!(code(lost), Some("CONFLICT"), "{lost}");
    assert_eq!(purchase_row(&app, &purchase_id).await.sessions_remaining, 0);
    let confirmed = entity::bookings::Entity::find()
        .filter(entity::bookings::Column::PackagePurchaseId.eq(purchase_id.clone()))
        .all(&app.state.domain.db)
        .await
        .unwrap();
    assert_eq!(confirmed.len(), 2, "two credits, two bookings");
    // The loser's hold is still its own, to pay for normally.
    let loser_hold = if ra["errors"].is_null() { &b } else { &a };
    assert_eq!(hold_status(&app, loser_hold).await, "ACTIVE");
}

#[tokio::test]
async fn a_payment_for_a_package_taken_off_sale_is_refunded_in_full() {
    let (app, stripe) = stripe_app().await;
    let admin = app.admin_token().await;
    let (coach, _, _) = payable_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    let package = create_package(&app, &coach, package_input("Five", 5, 25_000, 30)).await;
    let p = purchase(&app, &parent, &package).await;
    app.gql_as(
        Some(&coach),
        SET_ACTIVE,
        json!({ "p": package, "a": false }),
    )
    .await;

    let session = session_of(p["payment"]["checkoutUrl"].as_str().unwrap());
    stripe_paid(&app, &stripe, &session).await;
    let mine = app.gql_as(Some(&parent), MINE, json!({})).await;
    let m = &mine["data"]["myPackagePurchases"][0];
    assert_eq!(m["status"], "CANCELLED", "{mine}");
    assert_eq!(m["sessionsRemaining"], 0, "no credits");
    let sent = stripe.acted("/v1/refunds");
    assert_eq!(sent.len(), 1, "refunded");
    assert_eq!(sent[0].get("amount"), Some("25000"), "in full");
    assert_eq!(sent[0].get("reverse_transfer"), Some("true"));
    assert_eq!(sent[0].get("refund_application_fee"), Some("true"));
    assert_eq!(app.audit_count("package.purchase_refunded").await, 1);
}

/// The week plan of the US market.
async fn us_week_plan(app: &TestApp) -> (String, String) {
    let v = app.gql(PLANS, json!({ "m": "US" })).await;
    let plans = v["data"]["sponsorshipPlans"].as_array().unwrap().clone();
    assert_eq!(plans.len(), 2, "{v}");
    assert_eq!(plans[0]["durationDays"], 7);
    assert_eq!(
        plans[0]["price"],
        json!({ "amountMinor": 4900, "currency": "USD" })
    );
    assert_eq!(plans[0]["market"]["code"], "US");
    assert_eq!(plans[1]["durationDays"], 30);
    (
        plans[0]["id"].as_str().unwrap().to_string(),
        plans[1]["id"].as_str().unwrap().to_string(),
    )
}

async fn search(app: &TestApp, sort: &str) -> Vec<(String, bool)> {
    let v = app.gql(SEARCH, json!({ "s": sort })).await;
    v["data"]["searchCoaches"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|n| {
            (
                n["id"].as_str().unwrap().to_string(),
                n["isSponsored"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// Gives a coach a strong rating behind the app's back.
async fn rate(app: &TestApp, coach_id: &str) {
    let score = maestro_hub::domain::review::rating_score(40, 196);
    app.state
        .domain
        .db
        .execute_unprepared(&format!(
            "UPDATE coach_profiles SET rating_count = 40, rating_sum = 196, rating_score = {score} \
             WHERE id = '{coach_id}'"
        ))
        .await
        .unwrap();
    app.state.domain.listings.invalidate_coach(coach_id);
}

#[tokio::test]
async fn a_sponsorship_is_a_plain_charge_that_ranks_the_coach_first_and_queues_the_next() {
    let (app, stripe) = stripe_app().await;
    let admin = app.admin_token().await;
    let (star, star_id, _) = payable_coach(&app, &admin, "star@example.com").await;
    let (coach, coach_id, _) = payable_coach(&app, &admin, "coach@example.com").await;
    let _ = star;
    rate(&app, &star_id).await;
    let (week, month) = us_week_plan(&app).await;
    assert_eq!(
        search(&app, "RELEVANCE").await,
        [(star_id.clone(), false), (coach_id.clone(), false)]
    );

    let v = app
        .gql_as(Some(&coach), SPONSOR, json!({ "p": week }))
        .await;
    let s = &v["data"]["purchaseSponsorship"];
    assert_eq!(s["status"], "PENDING_PAYMENT", "{v}");
    assert!(s["startsAt"].is_null());
    let payment = s["payment"]["id"].as_str().unwrap().to_string();
    let sessions = stripe.acted("/v1/checkout/sessions");
    let req = sessions.last().unwrap();
    assert_eq!(
        req.idempotency_key.as_deref(),
        Some(format!("checkout-{payment}").as_str())
    );
    assert_eq!(
        req.get("line_items[0][price_data][unit_amount]"),
        Some("4900")
    );
    assert_eq!(req.get("line_items[0][price_data][currency]"), Some("usd"));
    assert_eq!(req.get("metadata[purpose]"), Some("SPONSORSHIP"));
    assert_eq!(
        req.get("payment_intent_data[transfer_data][destination]"),
        None,
        "the platform keeps it all"
    );
    assert_eq!(req.get("payment_intent_data[application_fee_amount]"), None);
    // Unpaid: no placement yet.
    assert_eq!(search(&app, "RELEVANCE").await[0].0, star_id);

    let session = session_of(s["payment"]["checkoutUrl"].as_str().unwrap());
    stripe_paid(&app, &stripe, &session).await;
    // At once (the unit of work marked the listing stale): first under
    // RELEVANCE, and labelled in every sort.
    assert_eq!(
        search(&app, "RELEVANCE").await,
        [(coach_id.clone(), true), (star_id.clone(), false)]
    );
    assert_eq!(
        search(&app, "RATING").await,
        [(star_id.clone(), false), (coach_id.clone(), true)]
    );
    let mine = app.gql_as(Some(&coach), MY_SPONSORSHIPS, json!({})).await;
    let first = mine["data"]["mySponsorships"][0].clone();
    assert_eq!(first["status"], "ACTIVE", "{mine}");
    let starts: chrono::DateTime<Utc> = first["startsAt"].as_str().unwrap().parse().unwrap();
    let ends: chrono::DateTime<Utc> = first["endsAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(ends - starts, Duration::days(7));
    assert_eq!(app.audit_count("sponsorship.activated").await, 1);

    // A second one bought while the first runs is queued right after it.
    let v = app
        .gql_as(Some(&coach), SPONSOR, json!({ "p": month }))
        .await;
    let second = &v["data"]["purchaseSponsorship"];
    let session = session_of(second["payment"]["checkoutUrl"].as_str().unwrap());
    stripe_paid(&app, &stripe, &session).await;
    let mine = app.gql_as(Some(&coach), MY_SPONSORSHIPS, json!({})).await;
    let queued = &mine["data"]["mySponsorships"][0];
    assert_eq!(queued["status"], "ACTIVE", "{mine}");
    assert_eq!(queued["startsAt"], first["endsAt"], "never overlapping");
    let q_ends: chrono::DateTime<Utc> = queued["endsAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(q_ends - ends, Duration::days(30));
    let profile = entity::coach_profiles::Entity::find_by_id(coach_id.clone())
        .one(&app.state.domain.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        profile.sponsored_until.map(|t| t.timestamp()),
        Some(q_ends.timestamp())
    );

    // An admin cancels the running one, refunding part: the queued one
    // moves up to start now, and the refund takes nothing from a coach.
    let first_id = first["id"].as_str().unwrap();
    let cancel = "mutation($s: ID!) { cancelSponsorship(sponsorshipId: $s, reason: \"Misleading profile\", refundMinor: 2000) {
        status endsAt cancellationReason payment { refunds { amount { amountMinor } } } } }";
    let v = app
        .gql_as(Some(&coach), cancel, json!({ "s": first_id }))
        .await;
    assert_eq!(code(&v), Some("FORBIDDEN"), "{v}");
    let v = app
        .gql_as(Some(&admin), cancel, json!({ "s": first_id }))
        .await;
    let c = &v["data"]["cancelSponsorship"];
    assert_eq!(c["status"], "CANCELLED", "{v}");
    assert_eq!(c["cancellationReason"], "Misleading profile");
    let sent = stripe.acted("/v1/refunds");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].get("amount"), Some("2000"));
    assert_eq!(sent[0].get("reverse_transfer"), None);
    let mine = app.gql_as(Some(&coach), MY_SPONSORSHIPS, json!({})).await;
    let moved: chrono::DateTime<Utc> = mine["data"]["mySponsorships"][0]["startsAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((moved - Utc::now()).num_seconds().abs() < 60, "moved up");
    assert_eq!(app.audit_count("sponsorship.cancelled").await, 1);
    assert_eq!(
        search(&app, "RELEVANCE").await[0],
        (coach_id.clone(), true),
        "still sponsored by the second"
    );

    // Past its end (moved behind the app's back) neither holds: not first,
    // not labelled; the job records it EXPIRED.
    let past = Utc::now() - Duration::seconds(1);
    entity::sponsorships::Entity::update_many()
        .col_expr(
            entity::sponsorships::Column::StartsAt,
            Expr::value(past - Duration::days(30)),
        )
        .col_expr(entity::sponsorships::Column::EndsAt, Expr::value(past))
        .filter(entity::sponsorships::Column::CoachId.eq(coach_id.clone()))
        .filter(entity::sponsorships::Column::Status.eq("ACTIVE"))
        .exec(&app.state.domain.db)
        .await
        .unwrap();
    entity::coach_profiles::Entity::update_many()
        .col_expr(
            entity::coach_profiles::Column::SponsoredUntil,
            Expr::value(Some(past)),
        )
        .filter(entity::coach_profiles::Column::Id.eq(coach_id.clone()))
        .exec(&app.state.domain.db)
        .await
        .unwrap();
    app.state.domain.listings.invalidate_coach(&coach_id);
    assert_eq!(
        search(&app, "RELEVANCE").await,
        [(star_id.clone(), false), (coach_id.clone(), false)]
    );
    let mine = app.gql_as(Some(&coach), MY_SPONSORSHIPS, json!({})).await;
    assert_eq!(mine["data"]["mySponsorships"][0]["status"], "EXPIRED");
    maestro_hub::domain::booking::sweep(&app.state.domain)
        .await
        .unwrap();
    assert_eq!(app.audit_count("sponsorship.expired").await, 1);
}

#[tokio::test]
async fn a_suspended_coach_is_never_lifted_and_a_cancelled_sponsorships_payment_is_refunded() {
    let (app, stripe) = stripe_app().await;
    let admin = app.admin_token().await;
    let (_, star_id, _) = payable_coach(&app, &admin, "star@example.com").await;
    let (coach, coach_id, _) = payable_coach(&app, &admin, "coach@example.com").await;
    rate(&app, &star_id).await;
    let (week, month) = us_week_plan(&app).await;

    // Only an approved coach of the plan's market buys.
    let (gb_coach, _) = app
        .draft_coach(
            "gb@example.com",
            "GB",
            crate::helpers::profile_input("Europe/London"),
        )
        .await;
    let v = app
        .gql_as(Some(&gb_coach), SPONSOR, json!({ "p": week }))
        .await;
    assert_eq!(code(&v), Some("FORBIDDEN"), "not approved: {v}");

    let v = app
        .gql_as(Some(&coach), SPONSOR, json!({ "p": week }))
        .await;
    let session = session_of(
        v["data"]["purchaseSponsorship"]["payment"]["checkoutUrl"]
            .as_str()
            .unwrap_or_else(|| panic!("{v}")),
    );
    stripe_paid(&app, &stripe, &session).await;
    assert_eq!(search(&app, "RELEVANCE").await[0], (coach_id.clone(), true));

    // Suspended: out of search altogether, and never labelled.
    let user_id = entity::coach_profiles::Entity::find_by_id(coach_id.clone())
        .one(&app.state.domain.db)
        .await
        .unwrap()
        .unwrap()
        .user_id;
    let v = app
        .gql_as(
            Some(&admin),
            "mutation($u: ID!) { suspendUser(userId: $u, reason: \"Chargebacks\") { id } }",
            json!({ "u": user_id }),
        )
        .await;
    assert!(v["errors"].is_null(), "{v}");
    assert_eq!(search(&app, "RELEVANCE").await, [(star_id.clone(), false)]);
    let v = app
        .gql_as(
            Some(&admin),
            "query($id: ID!) { coach(id: $id) { status isSponsored } }",
            json!({ "id": coach_id }),
        )
        .await;
    assert_eq!(v["data"]["coach"]["isSponsored"], false, "{v}");

    // A sponsorship an admin cancels before its payment arrives: the
    // payment is refunded in full, and nothing is scheduled.
    let (other, other_id, _) = payable_coach(&app, &admin, "other@example.com").await;
    let v = app
        .gql_as(Some(&other), SPONSOR, json!({ "p": month }))
        .await;
    let s = &v["data"]["purchaseSponsorship"];
    let id = s["id"].as_str().unwrap();
    let c = app
        .gql_as(
            Some(&admin),
            "mutation($s: ID!) { cancelSponsorship(sponsorshipId: $s, reason: \"Requested\") { status } }",
            json!({ "s": id }),
        )
        .await;
    assert_eq!(c["data"]["cancelSponsorship"]["status"], "CANCELLED", "{c}");
    let session = session_of(s["payment"]["checkoutUrl"].as_str().unwrap());
    stripe_paid(&app, &stripe, &session).await;
    let refunds: Vec<_> = stripe
        .acted("/v1/refunds")
        .into_iter()
        .filter(|r| r.get("amount") == Some("14900"))
        .collect();
    assert_eq!(refunds.len(), 1, "refunded in full");
    let mine = app.gql_as(Some(&other), MY_SPONSORSHIPS, json!({})).await;
    assert_eq!(mine["data"]["mySponsorships"][0]["status"], "CANCELLED");
    assert!(mine["data"]["mySponsorships"][0]["startsAt"].is_null());
    assert!(
        search(&app, "RELEVANCE")
            .await
            .iter()
            .all(|(id, sponsored)| id != &other_id || !sponsored)
    );
}

#[tokio::test]
async fn a_purchase_refunded_before_its_payment_is_reported_grants_nothing() {
    let (app, stripe) = stripe_app().await;
    let admin = app.admin_token().await;
    let (coach, _, _) = payable_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    let package = create_package(&app, &coach, package_input("Five", 5, 25_000, 30)).await;
    let p = purchase(&app, &parent, &package).await;
    let payment = p["payment"]["id"].as_str().unwrap().to_string();
    let session = session_of(p["payment"]["checkoutUrl"].as_str().unwrap());
    // Refunded in full from Stripe's dashboard; that report overtakes the
    // payment's.
    let object = stripe.pay(&session);
    let pi = object["payment_intent"].as_str().unwrap().to_string();
    let charge = crate::fake_stripe::charge(&pi, 25_000, 25_000, &payment);
    assert_eq!(deliver(&app, "evt_r", "charge.refunded", charge).await, 200);
    assert_eq!(
        deliver(&app, "evt_p", "checkout.session.completed", object).await,
        200
    );
    let mine = app.gql_as(Some(&parent), MINE, json!({})).await;
    let m = &mine["data"]["myPackagePurchases"][0];
    assert_eq!(m["status"], "CANCELLED", "{mine}");
    assert_eq!(m["sessionsRemaining"], 0, "no credits for refunded money");
    assert_eq!(app.audit_count("package.purchased").await, 0);
    assert!(
        stripe.acted("/v1/refunds").is_empty(),
        "nothing refunded twice"
    );
}
