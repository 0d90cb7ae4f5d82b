//! Push notifications against a fake Expo push service, notification
//! preferences, and the admins' weekly report: what is pushed to whom,
//! exactly once through failures, batching, gone devices, the channels a
//! user turned off, and the report's figures.

use chrono::{Datelike, Duration, TimeZone, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::bookings::{CANCEL, confirmed, consumer, day_slot, open_coach};
use crate::emails::{due_now, settle};
use crate::fake_expo::{ACCESS_TOKEN, FakeExpo};
use crate::fake_resend::FakeResend;
use crate::helpers::{TestApp, code, field, profile_input, spawn_app_with, with_key};
use maestro_hub::domain::email::{self, Recipient};
use maestro_hub::domain::uow::UnitOfWork;
use maestro_hub::domain::{outbox, push, weekly_report};
use maestro_hub::email::Template;

const REGISTER: &str = "mutation($t: String!, $p: PushPlatform!) {
    registerPushToken(token: $t, platform: $p) { id platform registeredAt } }";
const DEVICES: &str = "{ pushDevices { id platform } }";
const PREFS: &str = "{ notificationPreferences { kind channel enabled required } }";
const SET_PREFS: &str = "mutation($p: [NotificationPreferenceInput!]!) {
    setNotificationPreferences(preferences: $p) { kind channel enabled required } }";

async fn push_app() -> (TestApp, FakeResend, FakeExpo) {
    let resend = FakeResend::start().await;
    let expo = FakeExpo::start().await;
    let (r, e) = (resend.clone(), expo.clone());
    let app = spawn_app_with(move |a| {
        r.configure(a);
        e.configure(a);
        a.rate_limit_general_per_minute = 10_000;
        a.rate_limit_register_per_hour = 1_000;
        a.rate_limit_login_per_minute = 100;
    })
    .await;
    (app, resend, expo)
}

fn token(n: usize) -> String {
    format!("ExponentPushToken[device{n:04}xxxxxxxxxxxxx]")
}

async fn register_device(app: &TestApp, user: &str, token: &str, platform: &str) -> Value {
    let v = app
        .gql_as(Some(user), REGISTER, json!({ "t": token, "p": platform }))
        .await;
    assert!(v["errors"].is_null(), "{v}");
    v["data"]["registerPushToken"].clone()
}

async fn devices(app: &TestApp, user: &str) -> Vec<Value> {
    let v = app.gql_as(Some(user), DEVICES, json!({})).await;
    v["data"]["pushDevices"].as_array().unwrap().clone()
}

async fn push_rows(app: &TestApp) -> Vec<entity::outbox::Model> {
    entity::outbox::Entity::find()
        .filter(entity::outbox::Column::Channel.eq("push"))
        .all(&app.state.domain.db)
        .await
        .unwrap()
}

async fn user_id(app: &TestApp, user: &str) -> String {
    let v = app.gql_as(Some(user), "{ me { id } }", json!({})).await;
    v["data"]["me"]["id"].as_str().unwrap().to_string()
}

/// Queues one notification of `template` to `user_id`, as a change would.
async fn notify(app: &TestApp, user_id: &str, template: Template, key: &str, data: Value) {
    let to: Recipient = email::recipient(&app.state.domain.db, user_id)
        .await
        .unwrap();
    let mut uow = UnitOfWork::begin(&app.state.domain).await.unwrap();
    email::queue(&mut uow, &to, template, key, data)
        .await
        .unwrap();
    uow.commit().await.unwrap();
}

/// A refund notification while Expo answers `status` once, then again
/// once the retry is due.
async fn refund_after_failure(
    app: &TestApp,
    expo: &FakeExpo,
    user_id: &str,
    status: u16,
    key: &str,
) {
    expo.fail(status, 1);
    notify_refund(app, user_id, key).await;
    settle(app).await;
    due_now(app).await;
    settle(app).await;
}

/// A refund notification to `user_id` under `key`.
async fn notify_refund(app: &TestApp, user_id: &str, key: &str) {
    notify(app, user_id, Template::RefundIssued, key, refund_data()).await;
}

fn refund_data() -> Value {
    json!({ "amount_minor": 2500, "currency": "USD" })
}

#[tokio::test]
async fn a_confirmed_booking_pushes_to_the_coachs_two_devices_once_each() {
    let (app, _resend, expo) = push_app().await;
    let admin = app.admin_token().await;
    let (coach_token, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    register_device(&app, &coach_token, &token(1), "IOS").await;
    register_device(&app, &coach_token, &token(2), "ANDROID").await;
    register_device(&app, &parent, &token(3), "IOS").await;
    let start = day_slot(Utc::now() + Duration::days(2));
    let booking = confirmed(&app, &parent, &coach, start).await;
    settle(&app).await;
    // Registering again at the next app start changes nothing.
    register_device(&app, &coach_token, &token(1), "IOS").await;
    settle(&app).await;

    // In the coach's zone (the US market's).
    let when = maestro_hub::email::format_time(start, chrono_tz::Tz::America__New_York);
    for t in [token(1), token(2)] {
        let got = expo.delivered_to(&t);
        assert_eq!(got.len(), 1, "one push per coach device: {got:?}");
        let m = &got[0];
        assert_eq!(m["title"], "New booking");
        assert_eq!(
            m["body"],
            format!("Test User booked 60 minutes on {when}"),
            "{m}"
        );
        assert_eq!(
            m["data"],
            json!({ "kind": "BOOKING_CONFIRMED", "bookingId": booking })
        );
        assert!(
            !m.to_string().contains("@example.com"),
            "no email address: {m}"
        );
    }
    let mut kinds: Vec<String> = expo
        .delivered_to(&token(3))
        .iter()
        .map(|m| m["data"]["kind"].as_str().unwrap().to_string())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["BOOKING_CONFIRMED", "PAYMENT_RECEIPT"]);
    assert!(
        expo.sends()
            .iter()
            .all(|r| r.authorization.as_deref() == Some(&format!("Bearer {ACCESS_TOKEN}"))),
        "the access token goes as a bearer token"
    );
    let rows = push_rows(&app).await;
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r.status == "SENT"), "{rows:?}");

    // The receipts are read some minutes later, and settle the tickets.
    let tickets = entity::push_tickets::Entity::find()
        .count(&app.state.domain.db)
        .await
        .unwrap();
    assert_eq!(tickets, 4);
    let early = push::check_receipts(&app.state.domain, Utc::now())
        .await
        .unwrap();
    assert_eq!(early, 0, "not before Expo has them");
    let settled = push::check_receipts(&app.state.domain, Utc::now() + Duration::minutes(16))
        .await
        .unwrap();
    assert_eq!(settled, 4);
    assert_eq!(expo.receipt_requests().len(), 1);
    assert_eq!(devices(&app, &coach_token).await.len(), 2);
}

#[tokio::test]
async fn expo_failing_is_retried_and_delivers_once() {
    let (app, _resend, expo) = push_app().await;
    let parent = consumer(&app, "parent@example.com").await;
    register_device(&app, &parent, &token(1), "ANDROID").await;
    let me = user_id(&app, &parent).await;

    // 500, then 200.
    refund_after_failure(&app, &expo, &me, 500, "refund:r1").await;
    assert_eq!(expo.delivered_to(&token(1)).len(), 1);
    assert_eq!(expo.sends().len(), 2, "one failed request, one delivery");
    let rows = push_rows(&app).await;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].status.as_str(), rows[0].attempts), ("SENT", 2));

    // 429 is retried too.
    refund_after_failure(&app, &expo, &me, 429, "refund:r2").await;
    assert_eq!(expo.delivered_to(&token(1)).len(), 2);

    // A refused access token is the server's configuration: kept and retried.
    refund_after_failure(&app, &expo, &me, 401, "refund:r4").await;
    assert_eq!(expo.delivered_to(&token(1)).len(), 3);

    // A 400 would be refused again: given up at once.
    refund_after_failure(&app, &expo, &me, 400, "refund:r3").await;
    assert_eq!(expo.delivered_to(&token(1)).len(), 3);
    let dead: Vec<_> = push_rows(&app)
        .await
        .into_iter()
        .filter(|r| r.status == "DEAD")
        .collect();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].last_error.as_deref().unwrap().contains("400"));

    // The same notification queued again pushes nothing more.
    notify_refund(&app, &me, "refund:r1").await;
    settle(&app).await;
    assert_eq!(expo.delivered_to(&token(1)).len(), 3);
}

#[tokio::test]
async fn a_device_not_registered_ticket_or_receipt_removes_the_token() {
    let (app, _resend, expo) = push_app().await;
    let parent = consumer(&app, "parent@example.com").await;
    register_device(&app, &parent, &token(1), "IOS").await;
    register_device(&app, &parent, &token(2), "ANDROID").await;
    let me = user_id(&app, &parent).await;
    expo.gone_at_ticket(&token(1));
    expo.gone_at_receipt(&token(2));
    notify_refund(&app, &me, "refund:r1").await;
    settle(&app).await;

    let left = devices(&app, &parent).await;
    assert_eq!(
        left.len(),
        1,
        "the uninstalled app's token is gone: {left:?}"
    );
    assert_eq!(left[0]["platform"], "ANDROID");
    let rows = push_rows(&app).await;
    let gone = rows.iter().find(|r| r.recipient == token(1)).unwrap();
    assert_eq!(gone.status, "DEAD");
    assert_eq!(gone.last_error.as_deref(), Some("DeviceNotRegistered"));

    // The other was accepted; its receipt says the app is gone.
    push::check_receipts(&app.state.domain, Utc::now() + Duration::minutes(16))
        .await
        .unwrap();
    assert!(devices(&app, &parent).await.is_empty());
    assert_eq!(app.audit_count("push.device_gone").await, 2);

    // The receipt's message names the token; the row's error does not.
    let other = push_rows(&app)
        .await
        .into_iter()
        .find(|r| r.recipient == token(2))
        .unwrap();
    let error = other.last_error.unwrap();
    assert!(error.contains("DeviceNotRegistered"), "{error}");
    assert!(!error.contains("PushToken["), "{error}");
    assert!(
        crate::helpers::log_lines()
            .iter()
            .all(|l| !l.to_string().contains("PushToken[")),
        "no push token in any log line"
    );
    let admin = app.admin_token().await;
    let v = app
        .gql_as(
            Some(&admin),
            "{ adminEmails(first: 100) { recipient lastError } }",
            json!({}),
        )
        .await;
    assert!(v["errors"].is_null(), "{v}");
    assert!(!v.to_string().contains("PushToken["), "emails only: {v}");

    // Nothing more goes to either.
    let before = expo.sends().len();
    notify_refund(&app, &me, "refund:r2").await;
    settle(&app).await;
    assert_eq!(expo.sends().len(), before);
}

#[tokio::test]
async fn two_hundred_and_fifty_devices_go_in_three_requests() {
    let (app, _resend, expo) = push_app().await;
    let mut users = Vec::new();
    for u in 0..25 {
        let t = consumer(&app, &format!("parent{u}@example.com")).await;
        for d in 0..10 {
            register_device(&app, &t, &token(u * 10 + d), "ANDROID").await;
        }
        users.push(user_id(&app, &t).await);
    }
    // One change that notifies all 25 (ten devices each).
    let mut uow = UnitOfWork::begin(&app.state.domain).await.unwrap();
    for (n, id) in users.iter().enumerate() {
        let to = email::recipient(uow.db(), id).await.unwrap();
        email::queue(
            &mut uow,
            &to,
            Template::RefundIssued,
            &format!("refund:r{n}"),
            refund_data(),
        )
        .await
        .unwrap();
    }
    uow.commit().await.unwrap();
    settle(&app).await;

    let mut sizes: Vec<usize> = expo.sends().iter().map(|r| r.messages.len()).collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [50, 100, 100]);
    for n in 0..250 {
        assert_eq!(expo.delivered_to(&token(n)).len(), 1, "device {n}");
    }
}

#[tokio::test]
async fn reminders_follow_the_preferences_and_never_follow_a_cancellation() {
    let (app, resend, expo) = push_app().await;
    let admin = app.admin_token().await;
    let (coach_token, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    register_device(&app, &coach_token, &token(1), "IOS").await;
    register_device(&app, &parent, &token(2), "IOS").await;
    let v = app
        .gql_as(
            Some(&parent),
            SET_PREFS,
            json!({ "p": [{ "kind": "REMINDER", "channel": "PUSH", "enabled": false }] }),
        )
        .await;
    assert!(v["errors"].is_null(), "{v}");
    let kept = confirmed(
        &app,
        &parent,
        &coach,
        day_slot(Utc::now() + Duration::days(3)),
    )
    .await;
    let dropped = confirmed(
        &app,
        &parent,
        &coach,
        day_slot(Utc::now() + Duration::days(4)),
    )
    .await;
    settle(&app).await;
    let now = Utc::now();
    for (i, id) in [&kept, &dropped].into_iter().enumerate() {
        let start = now + Duration::hours(23) + Duration::minutes(i as i64 * 20);
        entity::bookings::Entity::update_many()
            .col_expr(entity::bookings::Column::StartAt, Expr::value(start))
            .col_expr(
                entity::bookings::Column::EndAt,
                Expr::value(start + Duration::hours(1)),
            )
            .col_expr(
                entity::bookings::Column::StartS,
                Expr::value(start.timestamp()),
            )
            .col_expr(
                entity::bookings::Column::ConfirmedAt,
                Expr::value(now - Duration::days(2)),
            )
            .filter(entity::bookings::Column::Id.eq(id.clone()))
            .exec(&app.state.domain.db)
            .await
            .unwrap();
    }
    // Expo is down while the reminders are queued and first tried.
    expo.fail(503, 1000);
    outbox::queue_reminders(&app.state.domain, Utc::now())
        .await
        .unwrap();
    let reminder_pushes: Vec<_> = push_rows(&app)
        .await
        .into_iter()
        .filter(|r| r.template == "reminder")
        .collect();
    assert_eq!(reminder_pushes.len(), 2, "the coach's device, per booking");
    assert!(reminder_pushes.iter().all(|r| r.recipient == token(1)));
    settle(&app).await;
    // One booking is cancelled (by the coach: a full refund) before Expo
    // is back.
    let v = app
        .gql_as(
            Some(&coach_token),
            CANCEL,
            json!({ "id": dropped, "r": "ill" }),
        )
        .await;
    assert_eq!(v["data"]["cancelBooking"]["status"], "CANCELLED", "{v}");
    let refunded = v["data"]["cancelBooking"]["refundedAmount"]["amountMinor"]
        .as_i64()
        .unwrap();
    assert!(refunded > 0, "{v}");
    expo.clear_failures();
    // The app's own worker may still be failing a push it claimed while
    // Expo was down, and sets its retry after this test moved the others
    // forward: move them forward until nothing is left pending.
    for round in 0.. {
        due_now(&app).await;
        settle(&app).await;
        let pending = push_rows(&app)
            .await
            .into_iter()
            .filter(|r| r.status == "PENDING")
            .count();
        if pending == 0 {
            break;
        }
        assert!(round < 50, "{pending} pushes stay pending with Expo back");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let reminders: Vec<Value> = expo
        .delivered()
        .into_iter()
        .filter(|m| m["data"]["kind"] == "REMINDER")
        .collect();
    assert_eq!(reminders.len(), 1, "{reminders:?}");
    assert_eq!(reminders[0]["to"], token(1));
    assert_eq!(reminders[0]["data"]["bookingId"], kept.as_str());
    assert_eq!(reminders[0]["title"], "Your session starts in 24 hours");
    assert!(reminders[0]["ttl"].as_i64().unwrap() > 22 * 3600);
    let skipped = push_rows(&app)
        .await
        .into_iter()
        .filter(|r| r.template == "reminder" && r.status == "SKIPPED")
        .count();
    assert_eq!(
        skipped, 1,
        "the cancelled booking's reminder is never pushed"
    );
    // The parent, with push off for reminders, still gets them by email
    // (Resend was up: both went before the cancellation).
    let emails: Vec<Value> = resend
        .delivered_to("parent@example.com")
        .into_iter()
        .filter(|b| b["subject"].as_str().unwrap().starts_with("In 24 hours"))
        .collect();
    assert_eq!(emails.len(), 2);
    assert!(
        !expo
            .delivered_to(&token(2))
            .iter()
            .any(|m| m["data"]["kind"] == "REMINDER")
    );
    // The coach hears of the cancellation.
    assert!(
        expo.delivered_to(&token(1))
            .iter()
            .any(|m| m["data"]["kind"] == "BOOKING_CANCELLED"
                && m["data"]["bookingId"] == dropped.as_str())
    );
}

#[tokio::test]
async fn a_channel_turned_off_after_queueing_is_skipped_at_send_time() {
    let (app, resend, expo) = push_app().await;
    let parent = consumer(&app, "parent@example.com").await;
    register_device(&app, &parent, &token(1), "IOS").await;
    let me = user_id(&app, &parent).await;
    expo.fail(503, 1000);
    resend.fail(503, 1000);
    let data = json!({
        "booking_id": "b1", "start_at": "2026-12-03T15:00:00Z", "minutes": 60,
        "meeting_url": "https://meet.example.com/r/1", "amount_minor": 6000, "currency": "USD",
        "other_name": "Coach", "rating": 5, "comment": "Great",
    });
    notify(&app, &me, Template::ReviewReceived, "review:r1", data).await;
    settle(&app).await;
    let v = app
        .gql_as(
            Some(&parent),
            SET_PREFS,
            json!({ "p": [
                { "kind": "REVIEW_RECEIVED", "channel": "PUSH", "enabled": false },
                { "kind": "REVIEW_RECEIVED", "channel": "EMAIL", "enabled": false },
            ] }),
        )
        .await;
    assert!(v["errors"].is_null(), "{v}");
    expo.clear_failures();
    resend.clear_failures();
    due_now(&app).await;
    settle(&app).await;
    let statuses: Vec<(String, String)> = entity::outbox::Entity::find()
        .filter(entity::outbox::Column::Template.eq("review_received"))
        .all(&app.state.domain.db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.channel, r.status))
        .collect();
    assert_eq!(statuses.len(), 2);
    assert!(statuses.iter().all(|(_, s)| s == "SKIPPED"), "{statuses:?}");
    assert!(expo.delivered().is_empty());
}

#[tokio::test]
async fn a_push_waiting_for_a_device_that_changed_hands_is_not_sent() {
    let (app, _resend, expo) = push_app().await;
    let ann = consumer(&app, "ann@example.com").await;
    let bob = consumer(&app, "bob@example.com").await;
    register_device(&app, &ann, &token(1), "IOS").await;
    let ann_id = user_id(&app, &ann).await;
    expo.fail(503, 1000);
    notify_refund(&app, &ann_id, "refund:r1").await;
    settle(&app).await;
    // The phone is Bob's now: Ann's refund must not show on it.
    register_device(&app, &bob, &token(1), "IOS").await;
    expo.clear_failures();
    due_now(&app).await;
    settle(&app).await;
    assert!(expo.delivered().is_empty());
    let rows = push_rows(&app).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, "SKIPPED");
}

#[tokio::test]
async fn preferences_are_on_by_default_and_required_emails_stay_on() {
    let (app, _resend, _expo) = push_app().await;
    let parent = consumer(&app, "parent@example.com").await;
    let v = app.gql_as(Some(&parent), PREFS, json!({})).await;
    let list = v["data"]["notificationPreferences"].as_array().unwrap();
    assert!(list.iter().all(|p| p["enabled"] == true), "{v}");
    assert!(
        !list.iter().any(|p| p["kind"] == "WEEKLY_REPORT"),
        "admins only"
    );
    assert!(
        !list
            .iter()
            .any(|p| p["kind"] == "ACCOUNT" && p["channel"] == "PUSH")
    );
    let required: Vec<&str> = list
        .iter()
        .filter(|p| p["required"] == true)
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(required, ["ACCOUNT", "PAYMENT_RECEIPT", "REFUND"]);

    for bad in [
        json!({ "kind": "ACCOUNT", "channel": "EMAIL", "enabled": false }),
        json!({ "kind": "PAYMENT_RECEIPT", "channel": "EMAIL", "enabled": false }),
        json!({ "kind": "WEEKLY_REPORT", "channel": "EMAIL", "enabled": true }),
        json!({ "kind": "ACCOUNT", "channel": "PUSH", "enabled": true }),
    ] {
        // Each beside a valid change: all or nothing.
        let ok = json!({ "kind": "REMINDER", "channel": "EMAIL", "enabled": false });
        let v = app
            .gql_as(Some(&parent), SET_PREFS, json!({ "p": [ok, bad] }))
            .await;
        assert_eq!(code(&v), Some("BAD_USER_INPUT"), "{bad}: {v}");
        assert_eq!(field(&v), Some("preferences"));
    }
    let v = app.gql_as(Some(&parent), PREFS, json!({})).await;
    assert!(
        v["data"]["notificationPreferences"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["enabled"] == true),
        "nothing changed: {v}"
    );
    // A receipt's push can be turned off; its email cannot.
    let v = app
        .gql_as(
            Some(&parent),
            SET_PREFS,
            json!({ "p": [{ "kind": "PAYMENT_RECEIPT", "channel": "PUSH", "enabled": false }] }),
        )
        .await;
    let receipt_push = v["data"]["setNotificationPreferences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == "PAYMENT_RECEIPT" && p["channel"] == "PUSH")
        .cloned()
        .unwrap();
    assert_eq!(receipt_push["enabled"], false);
    assert_eq!(app.audit_count("notifications.changed").await, 1);
    let v = app.gql_as(None, PREFS, json!({})).await;
    assert_eq!(code(&v), Some("UNAUTHENTICATED"));
}

#[tokio::test]
async fn devices_are_expo_tokens_one_row_each_at_most_ten_and_leave_on_logout() {
    let (app, _resend, _expo) = push_app().await;
    let ann = consumer(&app, "ann@example.com").await;
    let bob = consumer(&app, "bob@example.com").await;
    for bad in [
        "not-a-token",
        "ExponentPushToken[]",
        "ExponentPushToken[abc",
        "ExponentPushToken[a b]",
        "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
    ] {
        let v = app
            .gql_as(Some(&ann), REGISTER, json!({ "t": bad, "p": "IOS" }))
            .await;
        assert_eq!(code(&v), Some("BAD_USER_INPUT"), "{bad}: {v}");
        assert_eq!(field(&v), Some("token"));
    }
    assert!(devices(&app, &ann).await.is_empty());
    let v = app
        .gql_as(None, REGISTER, json!({ "t": token(1), "p": "IOS" }))
        .await;
    assert_eq!(code(&v), Some("UNAUTHENTICATED"));

    // A token moves to whoever registers it; one row per device.
    register_device(&app, &ann, &token(1), "IOS").await;
    register_device(&app, &bob, &token(1), "IOS").await;
    assert!(devices(&app, &ann).await.is_empty());
    assert_eq!(devices(&app, &bob).await.len(), 1);
    let rows = entity::push_devices::Entity::find()
        .count(&app.state.domain.db)
        .await
        .unwrap();
    assert_eq!(rows, 1);
    // Ann cannot drop Bob's device, nor by logging out with its token.
    let session = app.login("ann@example.com", crate::helpers::PASSWORD).await;
    let v = app
        .gql_as(
            Some(session["data"]["login"]["accessToken"].as_str().unwrap()),
            "mutation($r: String!, $t: String) { logout(refreshToken: $r, pushToken: $t) }",
            json!({ "r": session["data"]["login"]["refreshToken"], "t": token(1) }),
        )
        .await;
    assert_eq!(v["data"]["logout"], true, "{v}");
    assert_eq!(devices(&app, &bob).await.len(), 1);
    let v = app
        .gql_as(
            Some(&ann),
            "mutation($t: String!) { unregisterPushToken(token: $t) }",
            json!({ "t": token(1) }),
        )
        .await;
    assert_eq!(v["data"]["unregisterPushToken"], false, "{v}");
    assert_eq!(devices(&app, &bob).await.len(), 1);

    // Ten at most: the eleventh forgets the one registered longest ago.
    for n in 10..21 {
        register_device(&app, &ann, &token(n), "ANDROID").await;
    }
    let mine: Vec<String> = entity::push_devices::Entity::find()
        .filter(entity::push_devices::Column::Token.ne(token(1)))
        .all(&app.state.domain.db)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.token)
        .collect();
    assert_eq!(mine.len(), 10);
    assert!(!mine.contains(&token(10)), "the oldest went");
    assert_eq!(devices(&app, &ann).await.len(), 10);

    // Logging out can take this phone's token with it.
    let session = app.login("ann@example.com", crate::helpers::PASSWORD).await;
    let refresh = session["data"]["login"]["refreshToken"].as_str().unwrap();
    let access = session["data"]["login"]["accessToken"].as_str().unwrap();
    let v = app
        .gql_as(
            Some(access),
            "mutation($r: String!, $t: String) { logout(refreshToken: $r, pushToken: $t) }",
            json!({ "r": refresh, "t": token(20) }),
        )
        .await;
    assert_eq!(v["data"]["logout"], true, "{v}");
    let left: Vec<String> = entity::push_devices::Entity::find()
        .all(&app.state.domain.db)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.token)
        .collect();
    assert!(!left.contains(&token(20)));
    assert_eq!(left.len(), 10, "Bob's and nine of Ann's");
}

/// The next Monday at 08:05 in `tz` after today there, and that week's
/// Monday (the start of the week the report covers).
fn next_monday_morning(tz: chrono_tz::Tz) -> (chrono::DateTime<Utc>, chrono::NaiveDate) {
    let today = Utc::now().with_timezone(&tz).date_naive();
    let this_monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
    let next = this_monday + Duration::days(7);
    let at = tz
        .from_local_datetime(&next.and_hms_opt(8, 5, 0).unwrap())
        .earliest()
        .unwrap()
        .with_timezone(&Utc);
    (at, this_monday)
}

#[tokio::test]
async fn the_weekly_report_matches_the_figures_and_goes_once() {
    let (app, resend, _expo) = push_app().await;
    let admin = app.admin_token().await;
    let quiet_admin = app.admin_token().await;
    let me = user_id(&app, &admin).await;
    let v = app
        .gql_as(
            Some(&admin),
            "mutation { updateProfile(input: { timezone: \"America/New_York\" }) { timezone } }",
            json!({}),
        )
        .await;
    assert!(v["errors"].is_null(), "{v}");
    let v = app
        .gql_as(
            Some(&admin),
            SET_PREFS,
            json!({ "p": [{ "kind": "WEEKLY_REPORT", "channel": "EMAIL", "enabled": true }] }),
        )
        .await;
    assert!(v["errors"].is_null(), "{v}");
    assert!(
        app.gql_as(Some(&quiet_admin), PREFS, json!({}))
            .await
            .to_string()
            .contains("WEEKLY_REPORT"),
        "offered to every admin"
    );

    // This week: two US bookings ($60 each, one cancelled by the coach and
    // refunded in full) and one in Britain (£40). The week before: one US.
    let (us_coach_token, us_coach) = open_coach(&app, &admin, "coach@example.com").await;
    let gb_input = with_key(
        with_key(
            profile_input("Europe/London"),
            "sessionDurations",
            json!([60]),
        ),
        "hourlyRateMinor",
        json!(4000),
    );
    let all_week: Vec<Value> = (1..=7)
        .map(|d| json!({ "weekday": d, "startTime": "00:00", "endTime": "24:00" }))
        .collect();
    let (_, gb_coach) = app
        .public_coach(
            &admin,
            "uk-coach@example.com",
            "GB",
            gb_input,
            json!(all_week),
        )
        .await;
    let us_parent = consumer(&app, "parent@example.com").await;
    let gb_parent = app
        .register("uk-parent@example.com", "CONSUMER", Some("GB"))
        .await["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let day = |n| day_slot(Utc::now() + Duration::days(n));
    confirmed(&app, &us_parent, &us_coach, day(3)).await;
    let cancelled = confirmed(&app, &us_parent, &us_coach, day(4)).await;
    let v = app
        .gql_as(
            Some(&us_coach_token),
            CANCEL,
            json!({ "id": cancelled, "r": "ill" }),
        )
        .await;
    assert_eq!(v["data"]["cancelBooking"]["status"], "CANCELLED", "{v}");
    confirmed(&app, &gb_parent, &gb_coach, day(5)).await;
    let earlier = confirmed(&app, &us_parent, &us_coach, day(6)).await;
    let db = &app.state.domain.db;
    let week_ago = Utc::now() - Duration::days(7);
    entity::bookings::Entity::update_many()
        .col_expr(entity::bookings::Column::CreatedAt, Expr::value(week_ago))
        .filter(entity::bookings::Column::Id.eq(earlier.clone()))
        .exec(db)
        .await
        .unwrap();
    entity::payments::Entity::update_many()
        .col_expr(entity::payments::Column::CreatedAt, Expr::value(week_ago))
        .filter(entity::payments::Column::BookingId.eq(earlier.clone()))
        .exec(db)
        .await
        .unwrap();
    settle(&app).await;

    let ny = chrono_tz::Tz::America__New_York;
    let (monday_morning, _) = next_monday_morning(ny);
    let too_early =
        weekly_report::queue_due(&app.state.domain, monday_morning - Duration::minutes(10))
            .await
            .unwrap();
    assert_eq!(too_early, 0, "not before 08:00 in the admin's zone");
    // Two instances run the job at once, and again later.
    let (a, b) = tokio::join!(
        weekly_report::queue_due(&app.state.domain, monday_morning),
        weekly_report::queue_due(&app.state.domain, monday_morning),
    );
    assert_eq!(a.unwrap() + b.unwrap(), 1);
    weekly_report::queue_due(&app.state.domain, monday_morning + Duration::hours(2))
        .await
        .unwrap();
    settle(&app).await;

    let reports: Vec<Value> = resend
        .delivered()
        .into_iter()
        .map(|s| s.body)
        .filter(|b| {
            b["subject"]
                .as_str()
                .unwrap()
                .starts_with("Maestro Hub weekly report")
        })
        .collect();
    assert_eq!(reports.len(), 1, "one report, to the admin who asked");
    let report = &reports[0];
    let admin_email = email::recipient(db, &me).await.unwrap().email;
    assert_eq!(report["to"][0], admin_email.as_str());
    let text = report["text"].as_str().unwrap();
    // Six accounts this week: two admins, two coaches, two parents.
    for line in [
        "Bookings: 3 (week before 1)",
        "Completed: 0 (week before 0)",
        "Cancelled: 1 (week before 0)",
        "New users: 6 (week before 0)",
        "Active coaches: 2 (week before 1)",
        "GBP: gross £40.00 (week before £0.00), platform £4.00 (week before £0.00)",
        "USD: gross $60.00 (week before $60.00), platform $6.00 (week before $6.00)",
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
}
