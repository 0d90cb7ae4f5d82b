//! Real money against a fake Stripe (its HTTP boundary only): checkout as a
//! destination charge, fulfilment by signed webhooks, Connect onboarding,
//! refunds that reverse transfer and fee, retries, reconciliation of a
//! lost webhook, disputes, and every way a webhook can be forged, repeated
//! or reordered.

use chrono::Utc;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::bookings::{BOOK, at, consumer, hold, open_coach};
use crate::fake_stripe::{
    self, CONNECT_WEBHOOK_SECRET, Failure, FakeStripe, WEBHOOK_SECRET, event, sign,
};
use crate::helpers::{TestApp, code, field, spawn_app_with};

const ONBOARD: &str = "mutation { startPayoutOnboarding }";
const GET: &str = "query($id: ID!) { booking(id: $id) {
    id status meetingUrl refundedAmount { amountMinor }
    coachPayoutNet { amountMinor } platformFeeNet { amountMinor }
    payment { id status disputed refundedAmount { amountMinor }
      refunds { status amount { amountMinor } attempts lastError } } } }";

pub async fn stripe_app() -> (TestApp, FakeStripe) {
    let stripe = FakeStripe::start().await;
    let s = stripe.clone();
    let app = spawn_app_with(move |a| s.configure(a)).await;
    (app, stripe)
}

pub async fn post_event(app: &TestApp, payload: &str, signature: Option<String>) -> u16 {
    let mut req = app
        .client
        .post(app.url("/webhooks/stripe"))
        .header("content-type", "application/json")
        .body(payload.to_string());
    if let Some(s) = signature {
        req = req.header("Stripe-Signature", s);
    }
    req.send().await.unwrap().status().as_u16()
}

/// Sends `object` as a `kind` event signed with the platform secret.
pub async fn deliver(app: &TestApp, id: &str, kind: &str, object: Value) -> u16 {
    let payload = event(id, kind, object);
    let sig = sign(&payload, WEBHOOK_SECRET, Utc::now().timestamp());
    post_event(app, &payload, Some(sig)).await
}

/// An open coach whose payouts Stripe has enabled: (token, coach id, account).
pub async fn payable_coach(app: &TestApp, admin: &str, email: &str) -> (String, String, String) {
    let (token, coach) = open_coach(app, admin, email).await;
    let v = app.gql_as(Some(&token), ONBOARD, json!({})).await;
    assert!(v["errors"].is_null(), "{v}");
    let account = app_account(app, &coach).await;
    // Connect events come signed with the Connect endpoint's secret.
    let payload = event(
        &format!("evt_acct_{account}"),
        "account.updated",
        fake_stripe::account(&account, true),
    );
    let sig = sign(&payload, CONNECT_WEBHOOK_SECRET, Utc::now().timestamp());
    assert_eq!(post_event(app, &payload, Some(sig)).await, 200);
    (token, coach, account)
}

pub async fn app_account(app: &TestApp, coach: &str) -> String {
    entity::coach_profiles::Entity::find_by_id(coach.to_string())
        .one(&app.state.domain.db)
        .await
        .unwrap()
        .unwrap()
        .stripe_account_id
        .expect("an account was stored")
}

struct Booked {
    booking: String,
    payment: String,
    session: String,
}

async fn book(app: &TestApp, parent: &str, coach: &str, days: i64, hour: u32) -> Booked {
    let h = hold(app, parent, coach, at(days, hour), 60).await;
    let hold_id = h["data"]["createHold"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{h}"))
        .to_string();
    let b = app
        .gql_as(Some(parent), BOOK, json!({ "h": hold_id }))
        .await;
    let booking = &b["data"]["bookHold"];
    let url = booking["payment"]["checkoutUrl"]
        .as_str()
        .unwrap_or_else(|| panic!("{b}"));
    Booked {
        booking: booking["id"].as_str().unwrap().into(),
        payment: booking["payment"]["id"].as_str().unwrap().into(),
        session: url.rsplit('/').next().unwrap().into(),
    }
}

/// The customer pays and Stripe says so.
async fn pay(app: &TestApp, stripe: &FakeStripe, b: &Booked) -> String {
    let session = stripe.pay(&b.session);
    let status = deliver(
        app,
        &format!("evt_paid_{}", b.session),
        "checkout.session.completed",
        session.clone(),
    )
    .await;
    assert_eq!(status, 200);
    session["payment_intent"].as_str().unwrap().to_string()
}

async fn get(app: &TestApp, token: &str, id: &str) -> Value {
    let v = app.gql_as(Some(token), GET, json!({ "id": id })).await;
    assert!(v["errors"].is_null(), "{v}");
    v["data"]["booking"].clone()
}

async fn refunds_of(app: &TestApp, payment: &str) -> Vec<entity::refunds::Model> {
    entity::refunds::Entity::find()
        .filter(entity::refunds::Column::PaymentId.eq(payment))
        .all(&app.state.domain.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn onboarding_makes_one_account_and_a_coach_without_payouts_is_not_bookable() {
    let (app, stripe) = stripe_app().await;
    let admin = app.admin_token().await;
    let (token, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;

    // Not payable yet: left out of search, and not holdable.
    let search = "{ searchCoaches(filter: { marketCode: \"US\" }) { totalCount } }";
    assert_eq!(
        app.gql(search, json!({})).await["data"]["searchCoaches"]["totalCount"],
        0
    );
    let h = hold(&app, &parent, &coach, at(2, 10), 60).await;
    assert_eq!(code(&h), Some("BAD_USER_INPUT"), "{h}");
    assert_eq!(field(&h), Some("coachId"));

    // Two onboarding calls: one account, two fresh links.
    let one = app.gql_as(Some(&token), ONBOARD, json!({})).await;
    let two = app.gql_as(Some(&token), ONBOARD, json!({})).await;
    let (one, two) = (
        one["data"]["startPayoutOnboarding"].as_str().unwrap(),
        two["data"]["startPayoutOnboarding"].as_str().unwrap(),
    );
    assert!(one.starts_with(&stripe.base) && one != two);
    let accounts = stripe.acted("/v1/accounts");
    assert_eq!(accounts.len(), 1, "one account");
    assert_eq!(
        accounts[0].idempotency_key.as_deref(),
        Some(format!("account-{coach}").as_str())
    );
    assert_eq!(accounts[0].get("type"), Some("express"));
    assert_eq!(accounts[0].get("country"), Some("US"));
    assert_eq!(
        accounts[0].get("capabilities[transfers][requested]"),
        Some("true")
    );
    let account = app_account(&app, &coach).await;
    let links = stripe.acted("/v1/account_links");
    assert_eq!(links.len(), 2);
    assert!(links.iter().all(|l| {
        l.get("account") == Some(account.as_str())
            && l.get("type") == Some("account_onboarding")
            && l.get("return_url")
                .unwrap()
                .starts_with("http://127.0.0.1:8080/")
    }));

    // Stripe reports charges but not yet payouts: still not bookable.
    let mut partial = fake_stripe::account(&account, true);
    partial["payouts_enabled"] = json!(false);
    assert_eq!(
        deliver(&app, "evt_a1", "account.updated", partial).await,
        200
    );
    let coach_q = "query($id: ID!) { coach(id: $id) { payoutsEnabled } }";
    let v = app.gql(coach_q, json!({ "id": coach })).await;
    assert_eq!(v["data"]["coach"]["payoutsEnabled"], false, "{v}");

    // Both enabled: listed and holdable.
    assert_eq!(
        deliver(
            &app,
            "evt_a2",
            "account.updated",
            fake_stripe::account(&account, true)
        )
        .await,
        200
    );
    assert_eq!(
        app.gql(coach_q, json!({ "id": coach })).await["data"]["coach"]["payoutsEnabled"],
        true
    );
    assert_eq!(
        app.gql(search, json!({})).await["data"]["searchCoaches"]["totalCount"],
        1
    );
    assert!(
        hold(&app, &parent, &coach, at(2, 10), 60).await["errors"].is_null(),
        "holdable once payouts are on"
    );
    // An older account state arriving late changes nothing.
    let stale = event(
        "evt_a0",
        "account.updated",
        fake_stripe::account(&account, false),
    )
    .replace(
        &format!("\"created\":{}", Utc::now().timestamp()),
        "\"created\":1000",
    );
    let sig = sign(&stale, WEBHOOK_SECRET, Utc::now().timestamp());
    assert_eq!(post_event(&app, &stale, Some(sig)).await, 200);
    assert_eq!(
        app.gql(coach_q, json!({ "id": coach })).await["data"]["coach"]["payoutsEnabled"],
        true
    );
}

#[tokio::test]
async fn pay_confirm_cancel_and_refund_through_stripe() {
    let (app, stripe) = stripe_app().await;
    let admin = app.admin_token().await;
    let (_, coach, account) = payable_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    let b = book(&app, &parent, &coach, 3, 10).await;

    // The checkout session Stripe was asked for.
    let sessions = stripe.acted("/v1/checkout/sessions");
    assert_eq!(sessions.len(), 1);
    let s = &sessions[0];
    assert_eq!(
        s.idempotency_key.as_deref(),
        Some(format!("checkout-{}", b.payment).as_str())
    );
    assert_eq!(s.get("mode"), Some("payment"));
    assert_eq!(
        s.get("line_items[0][price_data][unit_amount]"),
        Some("6000")
    );
    assert_eq!(s.get("line_items[0][quantity]"), Some("1"));
    assert_eq!(s.get("line_items[0][price_data][currency]"), Some("usd"));
    assert_eq!(
        s.get("payment_intent_data[application_fee_amount]"),
        Some("600")
    );
    assert_eq!(
        s.get("payment_intent_data[transfer_data][destination]"),
        Some(account.as_str())
    );
    assert_eq!(s.get("client_reference_id"), Some(b.payment.as_str()));
    assert_eq!(s.get("metadata[payment_id]"), Some(b.payment.as_str()));
    assert_eq!(s.get("metadata[booking_id]"), Some(b.booking.as_str()));
    assert_eq!(
        s.get("payment_intent_data[metadata][payment_id]"),
        Some(b.payment.as_str())
    );
    assert!(
        s.get("success_url")
            .unwrap()
            .starts_with("http://127.0.0.1:8080/")
    );
    assert!(
        s.get("cancel_url")
            .unwrap()
            .starts_with("http://127.0.0.1:8080/")
    );
    let booking = entity::bookings::Entity::find_by_id(b.booking.clone())
        .one(&app.state.domain.db)
        .await
        .unwrap()
        .unwrap();
    let expires: i64 = s.get("expires_at").unwrap().parse().unwrap();
    assert_eq!(expires, booking.payment_deadline.timestamp());
    let lifetime = expires - Utc::now().timestamp();
    assert!(
        (30 * 60..24 * 3600).contains(&lifetime),
        "Stripe's allowed range: {lifetime}"
    );
    assert!(
        s.authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("Bearer sk_test_"))
    );

    // The customer's redirect does not confirm; the webhook does.
    assert_eq!(
        get(&app, &parent, &b.booking).await["status"],
        "PENDING_PAYMENT"
    );
    let pi = pay(&app, &stripe, &b).await;
    let v = get(&app, &parent, &b.booking).await;
    assert_eq!(v["status"], "CONFIRMED", "{v}");
    assert!(v["meetingUrl"].as_str().is_some());
    assert_eq!(v["payment"]["status"], "SUCCEEDED");
    assert_eq!(v["coachPayoutNet"]["amountMinor"], 5400);
    assert_eq!(v["platformFeeNet"]["amountMinor"], 600);
    assert_eq!(app.audit_count("payment.succeeded").await, 1);

    // Cancelled three days ahead: one full refund request that reverses
    // the transfer and the fee.
    let c = app
        .gql_as(
            Some(&parent),
            "mutation($id: ID!) { cancelBooking(bookingId: $id, reason: \"ill\") { status refundedAmount { amountMinor } } }",
            json!({ "id": b.booking }),
        )
        .await;
    assert_eq!(c["data"]["cancelBooking"]["status"], "CANCELLED", "{c}");
    let sent = stripe.acted("/v1/refunds");
    assert_eq!(sent.len(), 1, "one refund request");
    let r = &sent[0];
    let row = &refunds_of(&app, &b.payment).await[0];
    assert_eq!(
        r.idempotency_key.as_deref(),
        Some(format!("refund-{}", row.id).as_str())
    );
    assert_eq!(r.get("payment_intent"), Some(pi.as_str()));
    assert_eq!(r.get("amount"), Some("6000"));
    assert_eq!(r.get("reverse_transfer"), Some("true"));
    assert_eq!(r.get("refund_application_fee"), Some("true"));
    assert_eq!(r.get("metadata[refund_id]"), Some(row.id.as_str()));
    assert_eq!(row.status, "SUBMITTED");
    assert_eq!(app.audit_count("refund.created").await, 1);
    // Stripe has not confirmed yet: the payment shows what it confirmed,
    // and the shares already count the refund on its way.
    let v = get(&app, &parent, &b.booking).await;
    assert_eq!(v["payment"]["status"], "SUCCEEDED");
    assert_eq!(v["payment"]["refundedAmount"]["amountMinor"], 0);
    assert_eq!(v["coachPayoutNet"]["amountMinor"], 0);

    // charge.refunded: the refunded amount and status follow.
    let charge = fake_stripe::charge(&pi, 6000, 6000, &b.payment);
    assert_eq!(
        deliver(&app, "evt_r1", "charge.refunded", charge).await,
        200
    );
    let v = get(&app, &parent, &b.booking).await;
    assert_eq!(v["payment"]["status"], "REFUNDED", "{v}");
    assert_eq!(v["payment"]["refundedAmount"]["amountMinor"], 6000);
    assert_eq!(v["payment"]["refunds"][0]["status"], "SUCCEEDED");
    assert_eq!(v["platformFeeNet"]["amountMinor"], 0);
    // A late refund.updated of the same refund changes nothing more.
    let provider_ref = refunds_of(&app, &b.payment).await[0]
        .provider_ref
        .clone()
        .unwrap();
    let refund = fake_stripe::refund(&provider_ref, &row.id, &pi, 6000, "succeeded");
    assert_eq!(deliver(&app, "evt_r2", "refund.updated", refund).await, 200);
    let v = get(&app, &parent, &b.booking).await;
    assert_eq!(v["payment"]["refundedAmount"]["amountMinor"], 6000);
    assert_eq!(stripe.acted("/v1/refunds").len(), 1);
}

#[tokio::test]
async fn an_admin_refunds_part_and_never_more_than_remains() {
    let (app, stripe) = stripe_app().await;
    let admin = app.admin_token().await;
    let (coach_token, coach, _) = payable_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    let b = book(&app, &parent, &coach, 3, 10).await;
    let pi = pay(&app, &stripe, &b).await;
    let refund = "mutation($id: ID!, $a: Int!) { refundBooking(bookingId: $id, amountMinor: $a) {
        status refundedAmount { amountMinor } coachPayoutNet { amountMinor } platformFeeNet { amountMinor } } }";

    for who in [&parent, &coach_token] {
        let v = app
            .gql_as(Some(who), refund, json!({ "id": b.booking, "a": 100 }))
            .await;
        assert_eq!(code(&v), Some("FORBIDDEN"), "{v}");
    }
    let v = app
        .gql_as(Some(&admin), refund, json!({ "id": b.booking, "a": 2000 }))
        .await;
    let r = &v["data"]["refundBooking"];
    assert_eq!(r["status"], "CONFIRMED", "{v}");
    assert_eq!(r["refundedAmount"]["amountMinor"], 2000);
    // A third of the price back: a third of the fee and of the transfer.
    assert_eq!(r["platformFeeNet"]["amountMinor"], 400);
    assert_eq!(r["coachPayoutNet"]["amountMinor"], 3600);
    let sent = stripe.acted("/v1/refunds");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].get("amount"), Some("2000"));

    for bad in [4001, 0, -5] {
        let v = app
            .gql_as(Some(&admin), refund, json!({ "id": b.booking, "a": bad }))
            .await;
        assert_eq!(code(&v), Some("BAD_USER_INPUT"), "{bad}: {v}");
        assert_eq!(field(&v), Some("amountMinor"));
    }
    assert_eq!(stripe.acted("/v1/refunds").len(), 1, "nothing more sent");

    let charge = fake_stripe::charge(&pi, 6000, 2000, &b.payment);
    assert_eq!(
        deliver(&app, "evt_p1", "charge.refunded", charge).await,
        200
    );
    let v = get(&app, &admin, &b.booking).await;
    assert_eq!(v["payment"]["status"], "PARTIALLY_REFUNDED", "{v}");
    assert_eq!(v["payment"]["refundedAmount"]["amountMinor"], 2000);
    // The rest can still go back, exactly.
    let v = app
        .gql_as(Some(&admin), refund, json!({ "id": b.booking, "a": 4000 }))
        .await;
    assert!(v["errors"].is_null(), "{v}");
    assert_eq!(
        v["data"]["refundBooking"]["coachPayoutNet"]["amountMinor"],
        0
    );
}

#[tokio::test]
async fn webhook_signatures_are_checked_before_anything_happens() {
    let (app, stripe) = stripe_app().await;
    let admin = app.admin_token().await;
    let (_, coach, _) = payable_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    let b = book(&app, &parent, &coach, 3, 10).await;
    let session = stripe.pay(&b.session);
    let payload = event("evt_sig", "checkout.session.completed", session);
    let now = Utc::now().timestamp();

    let tampered = payload.replace("\"livemode\":false", "\"livemode\":true");
    assert_eq!(
        post_event(&app, &tampered, Some(sign(&payload, WEBHOOK_SECRET, now))).await,
        400,
        "tampered body"
    );
    assert_eq!(
        post_event(
            &app,
            &payload,
            Some(sign(&payload, "whsec_someone_elses_secret_000", now))
        )
        .await,
        400,
        "wrong secret"
    );
    assert_eq!(post_event(&app, &payload, None).await, 400, "no header");
    assert_eq!(
        post_event(&app, &payload, Some("garbage".into())).await,
        400,
        "garbage header"
    );
    assert_eq!(
        post_event(&app, &payload, Some("t=abc,v1=zz".into())).await,
        400,
        "malformed header"
    );
    assert_eq!(
        post_event(
            &app,
            &payload,
            Some(sign(&payload, WEBHOOK_SECRET, now - 600))
        )
        .await,
        400,
        "signed 600 s ago"
    );
    assert_eq!(
        get(&app, &parent, &b.booking).await["status"],
        "PENDING_PAYMENT",
        "no refused request changed anything"
    );
    assert_eq!(
        entity::provider_events::Entity::find()
            .filter(entity::provider_events::Column::Id.eq("evt_sig"))
            .count(&app.state.domain.db)
            .await
            .unwrap(),
        0
    );

    // Any v1 of the header may match (Stripe sends several while a secret
    // is being rolled).
    let good = sign(&payload, WEBHOOK_SECRET, now);
    let v1 = good.split_once(",v1=").unwrap().1;
    let rolled = format!("t={now},v1={},v1={v1}", "0".repeat(64));
    assert_eq!(post_event(&app, &payload, Some(rolled)).await, 200);
    assert_eq!(get(&app, &parent, &b.booking).await["status"], "CONFIRMED");

    // A type we do not use: 200, ignored.
    let other = event(
        "evt_other",
        "customer.created",
        json!({ "id": "cus_1", "object": "customer" }),
    );
    let sig = sign(&other, WEBHOOK_SECRET, now);
    assert_eq!(post_event(&app, &other, Some(sig)).await, 200);
}

#[tokio::test]
async fn twenty_concurrent_copies_of_an_event_act_once_and_duplicates_change_nothing() {
    let (app, stripe) = stripe_app().await;
    let admin = app.admin_token().await;
    let (_, coach, _) = payable_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    let b = book(&app, &parent, &coach, 3, 10).await;
    let session = stripe.pay(&b.session);
    let payload = event("evt_dup", "checkout.session.completed", session);
    let sig = sign(&payload, WEBHOOK_SECRET, Utc::now().timestamp());
    let copies = (0..20).map(|_| post_event(&app, &payload, Some(sig.clone())));
    let statuses = futures_util::future::join_all(copies).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(get(&app, &parent, &b.booking).await["status"], "CONFIRMED");
    assert_eq!(app.audit_count("payment.succeeded").await, 1);
    assert_eq!(app.audit_count("booking.confirmed").await, 1);

    // The same event again later, and another event for the same payment.
    assert_eq!(post_event(&app, &payload, Some(sig)).await, 200);
    let again = stripe.pay(&b.session);
    assert_eq!(
        deliver(
            &app,
            "evt_dup_2",
            "checkout.session.async_payment_succeeded",
            again
        )
        .await,
        200
    );
    assert_eq!(app.audit_count("payment.succeeded").await, 1);
    assert_eq!(stripe.acted("/v1/refunds").len(), 0);
}

#[tokio::test]
async fn events_out_of_order_never_move_a_state_back() {
    let (app, stripe) = stripe_app().await;
    let admin = app.admin_token().await;
    let (_, coach, _) = payable_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    let b = book(&app, &parent, &coach, 3, 10).await;
    let session = stripe.pay(&b.session);
    let pi = session["payment_intent"].as_str().unwrap().to_string();

    // A partial refund (made at Stripe's dashboard) reported before the
    // payment itself.
    let charge = fake_stripe::charge(&pi, 6000, 1500, &b.payment);
    assert_eq!(
        deliver(&app, "evt_o1", "charge.refunded", charge).await,
        200
    );
    assert_eq!(
        deliver(&app, "evt_o2", "checkout.session.completed", session).await,
        200
    );
    let v = get(&app, &parent, &b.booking).await;
    assert_eq!(v["status"], "CONFIRMED", "{v}");
    assert_eq!(v["payment"]["status"], "PARTIALLY_REFUNDED");
    assert_eq!(v["payment"]["refundedAmount"]["amountMinor"], 1500);

    // The session's expiry after its completion: nothing changes.
    let expired = stripe.expire(&b.session);
    assert_eq!(
        deliver(&app, "evt_o3", "checkout.session.expired", expired).await,
        200
    );
    // A lower refunded total reported late does not lower it.
    let older = fake_stripe::charge(&pi, 6000, 500, &b.payment);
    assert_eq!(deliver(&app, "evt_o4", "charge.refunded", older).await, 200);
    let v = get(&app, &parent, &b.booking).await;
    assert_eq!(v["status"], "CONFIRMED");
    assert_eq!(v["payment"]["status"], "PARTIALLY_REFUNDED");
    assert_eq!(v["payment"]["refundedAmount"]["amountMinor"], 1500);

    // A failed attempt is audited and changes no state.
    let failed = fake_stripe::payment_intent(&pi, &b.payment);
    assert_eq!(
        deliver(&app, "evt_o5", "payment_intent.payment_failed", failed).await,
        200
    );
    assert_eq!(app.audit_count("payment.failed").await, 1);
    assert_eq!(get(&app, &parent, &b.booking).await["status"], "CONFIRMED");
}

#[tokio::test]
async fn an_expired_checkout_frees_the_time_and_a_late_payment_is_refunded_in_full() {
    let (app, stripe) = stripe_app().await;
    let admin = app.admin_token().await;
    let (_, coach, _) = payable_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    let other = consumer(&app, "other@example.com").await;

    // Expired: cancelled, the time free at once.
    let b = book(&app, &parent, &coach, 3, 10).await;
    let expired = stripe.expire(&b.session);
    assert_eq!(
        deliver(&app, "evt_e1", "checkout.session.expired", expired).await,
        200
    );
    let v = get(&app, &parent, &b.booking).await;
    assert_eq!(v["status"], "CANCELLED", "{v}");
    assert_eq!(v["payment"]["status"], "FAILED");
    assert!(
        hold(&app, &other, &coach, at(3, 10), 60).await["errors"].is_null(),
        "the time is free again"
    );

    // Cancelled by the parent before paying, then paid anyway: the money
    // goes back in full, automatically, audited.
    let c = book(&app, &parent, &coach, 4, 10).await;
    let v = app
        .gql_as(
            Some(&parent),
            "mutation($id: ID!) { cancelBooking(bookingId: $id, reason: \"changed my mind\") { status } }",
            json!({ "id": c.booking }),
        )
        .await;
    assert_eq!(v["data"]["cancelBooking"]["status"], "CANCELLED", "{v}");
    pay(&app, &stripe, &c).await;
    let v = get(&app, &parent, &c.booking).await;
    assert_eq!(v["status"], "CANCELLED");
    assert_eq!(v["payment"]["status"], "SUCCEEDED");
    assert_eq!(v["refundedAmount"]["amountMinor"], 6000);
    let sent = stripe.acted("/v1/refunds");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].get("amount"), Some("6000"));
    assert_eq!(app.audit_count("refund.created").await, 1);

    // Paid after the server let the checkout lapse: refunded the same way.
    let d = book(&app, &parent, &coach, 5, 10).await;
    app.state
        .domain
        .db
        .execute_unprepared(&format!(
            "UPDATE bookings SET payment_deadline = created_at WHERE id = '{}'",
            d.booking
        ))
        .await
        .unwrap();
    maestro_hub::domain::booking::sweep(&app.state.domain)
        .await
        .unwrap();
    assert_eq!(get(&app, &parent, &d.booking).await["status"], "CANCELLED");
    pay(&app, &stripe, &d).await;
    assert_eq!(stripe.acted("/v1/refunds").len(), 2);
    assert_eq!(
        get(&app, &parent, &d.booking).await["refundedAmount"]["amountMinor"],
        6000
    );
}

#[tokio::test]
async fn a_failing_or_silent_stripe_leaves_the_hold_bookable_and_the_retry_succeeds() {
    let (app, stripe) = stripe_app().await;
    let admin = app.admin_token().await;
    let (_, coach, _) = payable_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    let h = hold(&app, &parent, &coach, at(3, 10), 60).await;
    let hold_id = h["data"]["createHold"]["id"].as_str().unwrap().to_string();
    let hold_q = "query { myBookings { totalCount } }";
    let other = consumer(&app, "other@example.com").await;

    for failure in [Failure::Status(500), Failure::Hang] {
        stripe.fail("/v1/checkout/sessions", failure, 1);
        let v = app
            .gql_as(Some(&parent), BOOK, json!({ "h": hold_id }))
            .await;
        assert_eq!(code(&v), Some("PAYMENT_ERROR"), "{failure:?}: {v}");
        let held = entity::holds::Entity::find_by_id(hold_id.clone())
            .one(&app.state.domain.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            held.status, "ACTIVE",
            "{failure:?}: the hold is bookable again"
        );
        assert_eq!(
            app.gql_as(Some(&parent), hold_q, json!({})).await["data"]["myBookings"]["totalCount"],
            0,
            "no booking holds the time"
        );
        assert_eq!(
            entity::payments::Entity::find()
                .count(&app.state.domain.db)
                .await
                .unwrap(),
            0
        );
        // The time stays the parent's: nobody else can hold it meanwhile.
        let taken = hold(&app, &other, &coach, at(3, 10), 60).await;
        assert_eq!(code(&taken), Some("CONFLICT"), "{taken}");
    }
    let v = app
        .gql_as(Some(&parent), BOOK, json!({ "h": hold_id }))
        .await;
    assert!(v["errors"].is_null(), "the retry succeeds: {v}");
    assert_eq!(v["data"]["bookHold"]["status"], "PENDING_PAYMENT");
    // Calling again never opens a second session.
    let again = app
        .gql_as(Some(&parent), BOOK, json!({ "h": hold_id }))
        .await;
    assert_eq!(code(&again), Some("CONFLICT"));
    assert_eq!(stripe.acted("/v1/checkout/sessions").len(), 1);
    assert_eq!(app.audit_count("booking.checkout_failed").await, 2);
}

#[tokio::test]
async fn a_refund_stripe_refuses_is_retried_with_backoff_and_made_once() {
    let (app, stripe) = stripe_app().await;
    let admin = app.admin_token().await;
    let (_, coach, _) = payable_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    let b = book(&app, &parent, &coach, 3, 10).await;
    pay(&app, &stripe, &b).await;

    // Stripe fails mid-way (its 500 is stored under the key), then does the
    // refund but the answer is lost.
    stripe.fail("/v1/refunds", Failure::Status(500), 1);
    stripe.fail("/v1/refunds", Failure::LoseAnswer, 1);
    let v = app
        .gql_as(
            Some(&parent),
            "mutation($id: ID!) { cancelBooking(bookingId: $id, reason: \"ill\") { status } }",
            json!({ "id": b.booking }),
        )
        .await;
    assert_eq!(v["data"]["cancelBooking"]["status"], "CANCELLED", "{v}");
    let row = refunds_of(&app, &b.payment).await.remove(0);
    assert_eq!((row.status.as_str(), row.attempts), ("PENDING", 1));
    assert!(row.outcome_unknown, "a 500 leaves the outcome unknown");
    assert!(row.last_error.as_deref().unwrap().contains("500"));
    let wait = row.next_attempt_at.unwrap() - Utc::now();
    assert!(
        (3..=7).contains(&wait.num_seconds()),
        "the first retry within seconds: {wait}"
    );
    // Admins see why; the parent sees only the status.
    let v = get(&app, &admin, &b.booking).await;
    let r = &v["payment"]["refunds"][0];
    assert_eq!(r["status"], "PENDING");
    assert!(r["lastError"].as_str().unwrap().contains("500"), "{v}");
    let v = get(&app, &parent, &b.booking).await;
    assert!(v["payment"]["refunds"][0]["lastError"].is_null());

    // Not due yet: the job leaves it.
    let ctx = &app.state.domain;
    maestro_hub::domain::payment::execute_pending_refunds(ctx, None)
        .await
        .unwrap();
    assert_eq!(refunds_of(&app, &b.payment).await[0].attempts, 1);
    // Due: the job looks for a refund made under our id (none), sends under
    // a new key (the old one would replay the 500), loses the answer, and
    // sends again under that same key, which Stripe answers from its
    // idempotency layer.
    for _ in 0..2 {
        ctx.db
            .execute_unprepared("UPDATE refunds SET next_attempt_at = NULL")
            .await
            .unwrap();
        maestro_hub::domain::payment::execute_pending_refunds(ctx, None)
            .await
            .unwrap();
    }
    let row = refunds_of(&app, &b.payment).await.remove(0);
    assert_eq!((row.status.as_str(), row.attempts), ("SUBMITTED", 3));
    assert_eq!(stripe.requests("GET /v1/refunds").len(), 1, "one look-up");
    let keys: Vec<String> = stripe
        .requests("/v1/refunds")
        .iter()
        .map(|r| r.idempotency_key.clone().unwrap())
        .collect();
    let first = format!("refund-{}", row.id);
    let second = format!("refund-{}-1", row.id);
    assert_eq!(keys, [first.clone(), second.clone(), second]);
    assert_eq!(stripe.acted("/v1/refunds").len(), 1, "one refund at Stripe");
    let stored = refunds_of(&app, &b.payment).await.remove(0);
    assert!(
        stored
            .provider_ref
            .as_deref()
            .is_some_and(|r| r.starts_with("re_"))
    );

    // A refund that succeeded and then failed at the bank is taken back:
    // the payment and booking no longer count it, and admins can refund
    // again.
    let pi = entity::payments::Entity::find_by_id(b.payment.clone())
        .one(&ctx.db)
        .await
        .unwrap()
        .unwrap()
        .provider_payment_intent
        .unwrap();
    let provider_ref = stored.provider_ref.clone().unwrap();
    let ok = fake_stripe::refund(&provider_ref, &row.id, &pi, 6000, "succeeded");
    assert_eq!(deliver(&app, "evt_rf1", "refund.updated", ok).await, 200);
    assert_eq!(
        get(&app, &admin, &b.booking).await["payment"]["status"],
        "REFUNDED"
    );
    let bad = fake_stripe::refund(&provider_ref, &row.id, &pi, 6000, "failed");
    assert_eq!(deliver(&app, "evt_rf2", "refund.failed", bad).await, 200);
    let v = get(&app, &admin, &b.booking).await;
    assert_eq!(v["payment"]["status"], "SUCCEEDED", "{v}");
    assert_eq!(v["payment"]["refundedAmount"]["amountMinor"], 0);
    assert_eq!(v["refundedAmount"]["amountMinor"], 0);
    assert_eq!(v["payment"]["refunds"][0]["status"], "FAILED");
    assert_eq!(app.audit_count("refund.failed").await, 1);
    let again = app
        .gql_as(
            Some(&admin),
            "mutation($id: ID!) { refundBooking(bookingId: $id, amountMinor: 6000) { refundedAmount { amountMinor } } }",
            json!({ "id": b.booking }),
        )
        .await;
    assert!(again["errors"].is_null(), "{again}");
    assert_eq!(stripe.acted("/v1/refunds").len(), 2);
}

#[tokio::test]
async fn a_lost_webhook_is_reconciled_and_the_late_one_changes_nothing() {
    let (app, stripe) = stripe_app().await;
    let admin = app.admin_token().await;
    let (_, coach, _) = payable_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    let paid = book(&app, &parent, &coach, 3, 10).await;
    let lapsed = book(&app, &parent, &coach, 4, 10).await;
    let fresh = book(&app, &parent, &coach, 5, 10).await;
    let session = stripe.pay(&paid.session);
    stripe.expire(&lapsed.session);
    stripe.pay(&fresh.session);
    let ctx = &app.state.domain;
    entity::payments::Entity::update_many()
        .col_expr(
            entity::payments::Column::CheckoutOpenedAt,
            sea_orm::sea_query::Expr::value(Utc::now() - chrono::Duration::minutes(11)),
        )
        .filter(entity::payments::Column::Id.is_in([paid.payment.clone(), lapsed.payment.clone()]))
        .exec(&ctx.db)
        .await
        .unwrap();

    let applied = maestro_hub::domain::payment::events::reconcile(ctx, Utc::now())
        .await
        .unwrap();
    assert_eq!(applied, 2);
    assert_eq!(
        get(&app, &parent, &paid.booking).await["status"],
        "CONFIRMED"
    );
    assert_eq!(
        get(&app, &parent, &lapsed.booking).await["status"],
        "CANCELLED"
    );
    assert_eq!(
        get(&app, &parent, &fresh.booking).await["status"],
        "PENDING_PAYMENT",
        "not looked at before PAYMENT_RECONCILE_AFTER_SECONDS"
    );
    let looked_up = stripe.requests(&format!("/v1/checkout/sessions/{}", paid.session));
    assert_eq!(looked_up.len(), 1);
    // Run again: nothing new is asked or applied.
    assert_eq!(
        maestro_hub::domain::payment::events::reconcile(ctx, Utc::now())
            .await
            .unwrap(),
        0
    );
    // The webhook arrives after all: changes nothing.
    assert_eq!(
        deliver(&app, "evt_late", "checkout.session.completed", session).await,
        200
    );
    assert_eq!(app.audit_count("payment.succeeded").await, 1);
    assert_eq!(app.audit_count("booking.confirmed").await, 1);
}

#[tokio::test]
async fn disputes_are_recorded_visible_and_never_reopened_by_a_late_event() {
    let (app, stripe) = stripe_app().await;
    let admin = app.admin_token().await;
    let (_, coach, _) = payable_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    let b = book(&app, &parent, &coach, 3, 10).await;
    let pi = pay(&app, &stripe, &b).await;

    let created = fake_stripe::dispute("dp_1", &pi, 6000, "needs_response");
    assert_eq!(
        deliver(&app, "evt_d1", "charge.dispute.created", created.clone()).await,
        200
    );
    assert_eq!(
        get(&app, &admin, &b.booking).await["payment"]["disputed"],
        true
    );
    assert_eq!(app.audit_count("payment.disputed").await, 1);
    let won = fake_stripe::dispute("dp_1", &pi, 6000, "won");
    assert_eq!(
        deliver(&app, "evt_d2", "charge.dispute.closed", won).await,
        200
    );
    assert_eq!(
        get(&app, &admin, &b.booking).await["payment"]["disputed"],
        false
    );
    // The creation delivered again under another event id, late.
    assert_eq!(
        deliver(&app, "evt_d3", "charge.dispute.created", created).await,
        200
    );
    assert_eq!(
        get(&app, &admin, &b.booking).await["payment"]["disputed"],
        false
    );
    let rows = entity::disputes::Entity::find()
        .all(&app.state.domain.db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].status.as_str(), rows[0].amount_minor),
        ("won", 6000)
    );
    assert_eq!(app.audit_count("payment.dispute_closed").await, 1);
}

#[tokio::test]
async fn production_starts_with_stripe_keys_and_takes_signed_webhooks() {
    let (database_url, _tmp) = crate::helpers::fresh_database().await;
    if !database_url.starts_with("postgres") {
        crate::helpers::skip(
            "production_starts_with_stripe_keys_and_takes_signed_webhooks",
            "production runs on PostgreSQL only",
        );
        return;
    }
    let stripe = FakeStripe::start().await;
    let port = crate::helpers::free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_maestro-hub"))
        .arg("serve")
        .env_clear()
        .env("APP_ENV", "production")
        .env("DATABASE_URL", &database_url)
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("JWT_SECRET", crate::helpers::random_secret())
        .env("CORS_ALLOWED_ORIGINS", "https://app.maestrohub.example")
        .env("PUBLIC_BASE_URL", "https://maestrohub.example")
        .env("STRIPE_SECRET_KEY", fake_stripe::SECRET_KEY)
        .env("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("STRIPE_API_BASE", format!("{}/", stripe.base))
        .env("RESEND_API_KEY", crate::fake_resend::API_KEY)
        .env("RESEND_BASE_URL", "http://127.0.0.1:9")
        .env("EMAIL_FROM", crate::fake_resend::FROM)
        .current_dir(std::env::temp_dir())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..300 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status() == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let post = |payload: String, sig: Option<String>| {
        let mut req = client.post(format!("{base}/webhooks/stripe")).body(payload);
        if let Some(s) = sig {
            req = req.header("Stripe-Signature", s);
        }
        req.send()
    };
    let payload = event(
        "evt_prod",
        "account.updated",
        fake_stripe::account("acct_x", true),
    );
    let unsigned = post(payload.clone(), None)
        .await
        .map(|r| r.status().as_u16());
    let sig = sign(&payload, WEBHOOK_SECRET, Utc::now().timestamp());
    let signed = post(payload, Some(sig)).await.map(|r| r.status().as_u16());
    // No development checkout in production.
    let dev = client
        .get(format!("{base}/dev/checkout/x"))
        .send()
        .await
        .map(|r| r.status().as_u16());
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready, "production did not start with valid Stripe settings");
    assert_eq!(unsigned.unwrap(), 400);
    assert_eq!(signed.unwrap(), 200);
    assert_eq!(dev.unwrap(), 404);
}

#[tokio::test]
async fn the_development_provider_onboards_payouts_locally() {
    let app = crate::helpers::spawn_app().await;
    let admin = app.admin_token().await;
    let (token, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let v = app.gql_as(Some(&token), ONBOARD, json!({})).await;
    let link = v["data"]["startPayoutOnboarding"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"));
    let path = &link[link.find("/dev/payouts/").unwrap()..];
    assert_eq!(
        app.client.get(app.url(path)).send().await.unwrap().status(),
        200
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
    let v = app
        .gql(
            "query($id: ID!) { coach(id: $id) { payoutsEnabled } }",
            json!({ "id": coach }),
        )
        .await;
    assert_eq!(v["data"]["coach"]["payoutsEnabled"], true, "{v}");
    // No webhook endpoint without Stripe.
    let r = app
        .client
        .post(app.url("/webhooks/stripe"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
