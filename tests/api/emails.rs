//! Email through the outbox, against a fake Resend: every email of the
//! product with its content, delivery exactly once through failures and
//! racing workers, nothing for a rolled-back change, verification and
//! password reset end to end, and reminders.

use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::bookings::{BOOK, at, confirmed, consumer, hold, open_coach};
use crate::fake_resend::{FROM, FakeResend};
use crate::helpers::{PASSWORD, TestApp, code, field, spawn_app_with};
use maestro_hub::domain::outbox;

pub async fn mail_app() -> (TestApp, FakeResend) {
    let resend = FakeResend::start().await;
    let r = resend.clone();
    let app = spawn_app_with(move |a| {
        r.configure(a);
        a.rate_limit_general_per_minute = 10_000;
        a.rate_limit_register_per_hour = 1_000;
        a.rate_limit_login_per_minute = 100;
    })
    .await;
    (app, resend)
}

/// Waits until nothing due is left in the outbox (the worker runs in the
/// background; this helps it along).
pub async fn settle(app: &TestApp) {
    // resend-rs paces its requests (9 per 1.1 s by default), so 100 emails
    // take about 12 s.
    for _ in 0..3000 {
        outbox::deliver_due(&app.state.domain, 100).await.unwrap();
        let due = entity::outbox::Entity::find()
            .filter(entity::outbox::Column::Status.eq("PENDING"))
            .filter(entity::outbox::Column::NextAttemptAt.lte(Utc::now()))
            .count(&app.state.domain.db)
            .await
            .unwrap();
        if due == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left: Vec<(String, i32, Option<String>)> = entity::outbox::Entity::find()
        .filter(entity::outbox::Column::Status.eq("PENDING"))
        .all(&app.state.domain.db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.recipient, r.attempts, r.last_error))
        .collect();
    panic!("the outbox did not settle: {left:?}");
}

/// Makes every pending email due now (a retry's wait cannot be waited on).
pub async fn due_now(app: &TestApp) {
    entity::outbox::Entity::update_many()
        .col_expr(
            entity::outbox::Column::NextAttemptAt,
            Expr::value(Utc::now() - chrono::Duration::seconds(1)),
        )
        .filter(entity::outbox::Column::Status.eq("PENDING"))
        .exec(&app.state.domain.db)
        .await
        .unwrap();
}

fn link_in(email: &Value) -> String {
    let text = email["text"].as_str().unwrap();
    let start = text.find("http").expect("a link");
    text[start..].split_whitespace().next().unwrap().to_string()
}

fn token_of(link: &str) -> String {
    link.split("token=").nth(1).unwrap().to_string()
}

async fn rows(app: &TestApp, template: &str) -> Vec<entity::outbox::Model> {
    entity::outbox::Entity::find()
        .filter(entity::outbox::Column::Template.eq(template))
        .all(&app.state.domain.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn every_email_goes_out_once_with_its_content_escaped() {
    let (app, resend) = mail_app().await;
    let admin = app.admin_token().await;

    // Registration: the verification email, with the name escaped.
    app.register_unverified("ann@example.com", "CONSUMER", Some("GB"))
        .await;
    let v = app
        .gql(
            "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }",
            json!({ "i": { "email": "mark@example.com", "password": PASSWORD,
                "name": "<b>Mark</b> & <script>x()</script>", "role": "CONSUMER", "marketCode": "GB" } }),
        )
        .await;
    assert!(v["errors"].is_null(), "{v}");
    settle(&app).await;
    let mail = resend.delivered_to("mark@example.com");
    assert_eq!(mail.len(), 1, "one verification email");
    let m = &mail[0];
    assert_eq!(m["from"], FROM);
    assert_eq!(m["subject"], "Confirm your email address");
    let html = m["html"].as_str().unwrap();
    assert!(html.contains("Hello &lt;b&gt;Mark&lt;"), "{html}");
    assert!(html.contains("&amp; &lt;script&gt;x()"), "{html}");
    assert!(!html.contains("<script>"));
    let link = link_in(m);
    assert!(
        link.starts_with("http://127.0.0.1:8080/verify-email?token="),
        "{link}"
    );
    assert!(token_of(&link).len() >= 43, "32 random bytes");
    let sent = &resend.requests()[0];
    assert_eq!(
        sent.authorization.as_deref(),
        Some(format!("Bearer {}", crate::fake_resend::API_KEY).as_str())
    );
    assert!(sent.key.as_deref().unwrap().starts_with("verify:"));
    // Once sent, the link (and its token) leaves the outbox.
    assert!(
        rows(&app, "verify_email")
            .await
            .iter()
            .all(|r| !r.data.contains("token="))
    );

    // A coach approved, another rejected with the reason.
    let (_, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let (rejected_token, _) = app
        .draft_coach(
            "other@example.com",
            "US",
            crate::helpers::profile_input("UTC"),
        )
        .await;
    let v = app
        .gql_as(
            Some(&rejected_token),
            "mutation { submitCoachProfile { id } }",
            json!({}),
        )
        .await;
    let other_id = v["data"]["submitCoachProfile"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let v = app
        .gql_as(
            Some(&admin),
            "mutation($id: ID!) { rejectCoach(coachId: $id, reason: \"Add a real photo & a bio\") { id } }",
            json!({ "id": other_id }),
        )
        .await;
    assert!(v["errors"].is_null(), "{v}");
    settle(&app).await;
    let approved = resend.delivered_to("coach@example.com");
    assert!(
        approved
            .iter()
            .any(|m| m["subject"] == "Your coach profile is approved")
    );
    let rejected = resend.delivered_to("other@example.com");
    let r = rejected
        .iter()
        .find(|m| m["subject"] == "Your coach profile needs changes")
        .expect("rejection email");
    assert!(
        r["html"]
            .as_str()
            .unwrap()
            .contains("Add a real photo &amp; a bio")
    );
    assert!(
        r["text"]
            .as_str()
            .unwrap()
            .contains("Add a real photo & a bio")
    );

    // A booking: confirmation to both sides with the link, the receipt,
    // then a cancellation with the refund.
    let parent = consumer(&app, "parent@example.com").await;
    app.gql_as(
        Some(&parent),
        "mutation { updateProfile(input: { timezone: \"Asia/Kolkata\" }) { id } }",
        json!({}),
    )
    .await;
    let start = at(4, 10);
    let booking = confirmed(&app, &parent, &coach, start).await;
    settle(&app).await;
    let to_parent = resend.delivered_to("parent@example.com");
    let confirmation = to_parent
        .iter()
        .find(|m| {
            m["subject"]
                .as_str()
                .unwrap()
                .starts_with("Booking confirmed")
        })
        .expect("confirmation");
    let text = confirmation["text"].as_str().unwrap();
    let local = start.with_timezone(&chrono_tz::Asia::Kolkata);
    assert!(
        text.contains(&local.format("%H:%M IST").to_string()),
        "the parent's time zone: {text}"
    );
    assert!(text.contains("$60.00"), "{text}");
    assert!(
        text.contains("Join here when it starts: https://"),
        "the meeting link: {text}"
    );
    let receipt = to_parent
        .iter()
        .find(|m| m["subject"].as_str().unwrap().starts_with("Receipt"))
        .expect("receipt");
    assert!(receipt["text"].as_str().unwrap().contains("$60.00"));
    assert!(
        resend
            .delivered_to("coach@example.com")
            .iter()
            .any(|m| m["subject"]
                .as_str()
                .unwrap()
                .starts_with("Booking confirmed")),
        "the coach's confirmation"
    );
    let v = app
        .gql_as(
            Some(&parent),
            "mutation($id: ID!) { cancelBooking(bookingId: $id, reason: \"ill\") { status } }",
            json!({ "id": booking }),
        )
        .await;
    assert_eq!(v["data"]["cancelBooking"]["status"], "CANCELLED", "{v}");
    settle(&app).await;
    let cancelled = resend
        .delivered_to("parent@example.com")
        .into_iter()
        .find(|m| {
            m["subject"]
                .as_str()
                .unwrap()
                .starts_with("Booking cancelled")
        })
        .expect("cancellation");
    assert!(
        cancelled["text"]
            .as_str()
            .unwrap()
            .contains("A refund of $60.00")
    );

    // An admin's refund on another booking.
    let second = confirmed(&app, &parent, &coach, at(5, 10)).await;
    app.gql_as(
        Some(&admin),
        "mutation($id: ID!) { refundBooking(bookingId: $id, amountMinor: 1500) { id } }",
        json!({ "id": second }),
    )
    .await;
    settle(&app).await;
    assert!(
        resend
            .delivered_to("parent@example.com")
            .iter()
            .any(|m| m["subject"] == "Refund of $15.00")
    );
    // Nothing was sent twice.
    let keys: Vec<String> = resend
        .delivered()
        .iter()
        .filter_map(|s| s.key.clone())
        .collect();
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(keys.len(), unique.len());
}

#[tokio::test]
async fn a_new_email_wakes_the_worker_at_once() {
    let (app, resend) = mail_app().await;
    // Let the worker's first poll pass, so only a wake-up can send at once.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    app.register_unverified("ann@example.com", "CONSUMER", Some("US"))
        .await;
    while resend.delivered_to("ann@example.com").is_empty() {
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "not sent within 1.5 s: the worker waited for its 3 s poll"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn resend_failing_twice_then_answering_delivers_once() {
    let (app, resend) = mail_app().await;
    resend.fail(500, 2);
    app.register_unverified("ann@example.com", "CONSUMER", Some("US"))
        .await;
    settle(&app).await;
    let row = rows(&app, "verify_email").await.remove(0);
    assert_eq!(row.status, "PENDING");
    assert!(row.last_error.as_deref().unwrap().contains("500"));
    // While it waits, the database holds no usable link.
    assert!(!row.data.contains("token=") && row.data.contains("sealed_link"));
    // The first retry within seconds, not minutes.
    assert!(row.next_attempt_at - Utc::now() <= chrono::Duration::seconds(5));
    for _ in 0..2 {
        due_now(&app).await;
        settle(&app).await;
    }
    let row = rows(&app, "verify_email").await.remove(0);
    assert_eq!((row.status.as_str(), row.attempts), ("SENT", 3));
    assert_eq!(resend.requests().len(), 3);
    assert_eq!(resend.delivered_to("ann@example.com").len(), 1);
    let keys: Vec<_> = resend.requests().iter().map(|s| s.key.clone()).collect();
    assert!(keys.windows(2).all(|w| w[0] == w[1]), "one key throughout");
}

#[tokio::test]
async fn resend_down_past_the_last_attempt_marks_the_email_dead_and_visible() {
    let (app, resend) = mail_app().await;
    let admin = app.admin_token().await;
    resend.fail(503, 1000);
    app.register_unverified("ann@example.com", "CONSUMER", Some("US"))
        .await;
    for _ in 0..outbox::MAX_ATTEMPTS {
        due_now(&app).await;
        settle(&app).await;
    }
    let row = rows(&app, "verify_email").await.remove(0);
    assert_eq!(
        (row.status.as_str(), row.attempts),
        ("DEAD", outbox::MAX_ATTEMPTS)
    );
    assert!(!row.data.contains("token="), "a dead email keeps no token");
    let v = app
        .gql_as(
            Some(&admin),
            "{ adminEmails(status: DEAD) { recipient template status attempts lastError } }",
            json!({}),
        )
        .await;
    let dead = &v["data"]["adminEmails"];
    assert_eq!(dead.as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(dead[0]["recipient"], "ann@example.com");
    assert!(dead[0]["lastError"].as_str().unwrap().contains("503"));
    let parent = consumer(&app, "p@example.com").await;
    let v = app
        .gql_as(Some(&parent), "{ adminEmails { id } }", json!({}))
        .await;
    assert_eq!(code(&v), Some("FORBIDDEN"));
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("maestro_outbox_emails{status=\"dead\"} 1"),
        "{metrics}"
    );

    // A refusal that would refuse again (a 4xx other than 429) is not retried.
    resend.clear_failures();
    due_now(&app).await;
    settle(&app).await;
    resend.fail(422, 1);
    app.register_unverified("bo@example.com", "CONSUMER", Some("US"))
        .await;
    settle(&app).await;
    let row = rows(&app, "verify_email")
        .await
        .into_iter()
        .find(|r| r.recipient == "bo@example.com")
        .unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("DEAD", 1));
    // A 429 is.
    resend.fail(429, 1);
    app.register_unverified("cy@example.com", "CONSUMER", Some("US"))
        .await;
    settle(&app).await;
    due_now(&app).await;
    settle(&app).await;
    assert_eq!(resend.delivered_to("cy@example.com").len(), 1);
}

#[tokio::test]
async fn racing_workers_send_each_of_100_emails_exactly_once() {
    let (app, resend) = mail_app().await;
    let ctx = app.state.domain.clone();
    // 100 users, each with a queued verification email (one transaction each).
    let app_ref = &app;
    for chunk in 0..10 {
        let batch = (0..10).map(|i| {
            let email = format!("u{}@example.com", chunk * 10 + i);
            async move {
                app_ref
                    .register_unverified(&email, "CONSUMER", Some("US"))
                    .await
            }
        });
        futures_util::future::join_all(batch).await;
    }
    // Two more workers race the server's own.
    let worker = |ctx: maestro_hub::domain::DomainCtx| async move {
        let mut sent = 0;
        for _ in 0..200 {
            let d = outbox::deliver_due(&ctx, 7).await.unwrap();
            sent += d.sent;
            if d.handled() == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        sent
    };
    let (a, b) = tokio::join!(worker(ctx.clone()), worker(ctx.clone()));
    settle(&app).await;
    let delivered = resend.delivered();
    let mut all: Vec<String> = resend
        .requests()
        .iter()
        .filter_map(|s| s.key.clone())
        .collect();
    all.sort();
    let dups: Vec<&String> = all
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| &w[0])
        .collect();
    if !dups.is_empty() {
        for d in &dups {
            let r = entity::outbox::Entity::find()
                .filter(entity::outbox::Column::IdempotencyKey.eq(d.as_str()))
                .one(&app.state.domain.db)
                .await
                .unwrap();
            eprintln!("DUP {d}: {r:?}");
        }
    }
    assert_eq!(delivered.len(), 100, "every email once");
    assert_eq!(
        resend.requests().len(),
        100,
        "never sent twice, not even as a replay"
    );
    let mut keys: Vec<String> = delivered.iter().filter_map(|s| s.key.clone()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 100);
    println!("racing workers sent {a} and {b}; the server's worker the rest");
}

#[tokio::test]
async fn a_rolled_back_change_sends_nothing() {
    let (app, resend) = mail_app().await;
    let user = app
        .register_unverified("ann@example.com", "CONSUMER", Some("US"))
        .await;
    settle(&app).await;
    let before = resend.requests().len();
    let ctx = &app.state.domain;
    let user_id = user["user"]["id"].as_str().unwrap();
    {
        let mut uow = maestro_hub::domain::uow::UnitOfWork::begin(ctx)
            .await
            .unwrap();
        let to = maestro_hub::domain::email::recipient(uow.db(), user_id)
            .await
            .unwrap();
        maestro_hub::domain::email::queue(
            &mut uow,
            &to,
            maestro_hub::email::Template::CoachApproved,
            "rolled-back",
            json!({}),
        )
        .await
        .unwrap();
        // Dropped without commit: rolled back.
    }
    settle(&app).await;
    assert_eq!(resend.requests().len(), before);
    assert!(rows(&app, "coach_approved").await.is_empty());
}

#[tokio::test]
async fn verification_gates_holds_and_its_link_works_once() {
    let (app, resend) = mail_app().await;
    let admin = app.admin_token().await;
    let (_, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let p = app
        .register_unverified("ann@example.com", "CONSUMER", Some("US"))
        .await;
    let token = p["accessToken"].as_str().unwrap().to_string();
    let h = hold(&app, &token, &coach, at(2, 10), 60).await;
    assert_eq!(code(&h), Some("FORBIDDEN"), "{h}");
    assert!(
        h["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("verify")
    );
    // Browsing still works.
    let me = app
        .gql_as(Some(&token), "{ me { emailVerified timezone } }", json!({}))
        .await;
    assert_eq!(me["data"]["me"]["emailVerified"], false);
    assert_eq!(
        me["data"]["me"]["timezone"], "America/New_York",
        "the market's zone"
    );

    // A second email on request; either link works, each once.
    let v = app
        .gql_as(
            Some(&token),
            "mutation { requestEmailVerification }",
            json!({}),
        )
        .await;
    assert_eq!(v["data"]["requestEmailVerification"], true);
    settle(&app).await;
    let mails = resend.delivered_to("ann@example.com");
    assert_eq!(mails.len(), 2);
    let verify = "mutation($t: String!) { verifyEmail(token: $t) }";
    let t = token_of(&link_in(&mails[1]));
    let v = app.gql(verify, json!({ "t": t })).await;
    assert_eq!(v["data"]["verifyEmail"], true, "{v}");
    let again = app.gql(verify, json!({ "t": t })).await;
    assert_eq!(code(&again), Some("BAD_USER_INPUT"), "single use");
    assert_eq!(field(&again), Some("token"));
    assert_eq!(
        app.gql(verify, json!({ "t": "forged" })).await["errors"][0]["extensions"]["code"],
        "BAD_USER_INPUT"
    );
    assert!(hold(&app, &token, &coach, at(2, 10), 60).await["errors"].is_null());
    assert_eq!(app.audit_count("auth.email_verified").await, 1);

    // An expired link is refused.
    let p = app
        .register_unverified("bo@example.com", "CONSUMER", Some("US"))
        .await;
    settle(&app).await;
    entity::user_tokens::Entity::update_many()
        .col_expr(
            entity::user_tokens::Column::ExpiresAt,
            Expr::value(Utc::now() - chrono::Duration::seconds(1)),
        )
        .exec(&app.state.domain.db)
        .await
        .unwrap();
    let t = token_of(&link_in(&resend.delivered_to("bo@example.com")[0]));
    assert_eq!(
        code(&app.gql(verify, json!({ "t": t })).await),
        Some("BAD_USER_INPUT")
    );
    let bo = p["accessToken"].as_str().unwrap();
    assert_eq!(
        code(&app.gql_as(Some(bo), BOOK, json!({ "h": "x" })).await),
        Some("FORBIDDEN")
    );
}

/// The reset emails delivered to ann, once there are at least `n` (they
/// are queued after the answer, by design).
async fn wait_for_resets(app: &TestApp, resend: &FakeResend, n: usize) -> Vec<Value> {
    for _ in 0..250 {
        settle(app).await;
        let resets: Vec<Value> = resend
            .delivered_to("ann@example.com")
            .into_iter()
            .filter(|m| m["subject"] == "Reset your password")
            .collect();
        if resets.len() >= n {
            return resets;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("fewer than {n} reset emails");
}

#[tokio::test]
async fn password_reset_end_to_end_and_it_tells_nobody_who_has_an_account() {
    let (app, resend) = mail_app().await;
    let old = app
        .register("ann@example.com", "CONSUMER", Some("US"))
        .await;
    let old_access = old["accessToken"].as_str().unwrap().to_string();
    settle(&app).await;
    let ask = "mutation($e: String!) { requestPasswordReset(email: $e) }";

    let known = app
        .post(
            json!({ "query": ask, "variables": { "e": "Ann@Example.com" } }),
            None,
        )
        .await
        .text()
        .await
        .unwrap();
    let unknown = app
        .post(
            json!({ "query": ask, "variables": { "e": "nobody@example.com" } }),
            None,
        )
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(known, unknown, "the same answer");
    assert_eq!(known, r#"{"data":{"requestPasswordReset":true}}"#);
    let resets = wait_for_resets(&app, &resend, 1).await;
    assert!(resend.delivered_to("nobody@example.com").is_empty());
    let link = link_in(&resets[0]);
    assert!(link.starts_with("http://127.0.0.1:8080/reset-password?token="));

    // Three an hour per address; the fourth answers the same and sends nothing.
    for _ in 0..3 {
        let v = app.gql(ask, json!({ "e": "ann@example.com" })).await;
        assert_eq!(v["data"]["requestPasswordReset"], true);
    }
    wait_for_resets(&app, &resend, 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    settle(&app).await;
    assert_eq!(
        wait_for_resets(&app, &resend, 3).await.len(),
        3,
        "not a fourth"
    );

    let reset = "mutation($t: String!, $p: String!) { resetPassword(token: $t, newPassword: $p) }";
    let token = token_of(&link);
    let weak = app.gql(reset, json!({ "t": token, "p": "password" })).await;
    assert_eq!(field(&weak), Some("newPassword"), "{weak}");
    let v = app
        .gql(reset, json!({ "t": token, "p": "Brand-New-Pass-9" }))
        .await;
    assert_eq!(v["data"]["resetPassword"], true, "{v}");
    assert_eq!(app.audit_count("auth.password_reset").await, 1);
    // Every session ended; the new password signs in.
    let me = app
        .gql_as(Some(&old_access), "{ me { id } }", json!({}))
        .await;
    assert_eq!(code(&me), Some("UNAUTHENTICATED"));
    assert!(app.login("ann@example.com", PASSWORD).await["errors"][0].is_object());
    assert!(app.login("ann@example.com", "Brand-New-Pass-9").await["errors"].is_null());
    // The link, and the other reset links, are spent.
    let reuse = app
        .gql(reset, json!({ "t": token, "p": "Another-Pass-77" }))
        .await;
    assert_eq!(code(&reuse), Some("BAD_USER_INPUT"));
    let other = token_of(&link_in(
        &resend
            .delivered_to("ann@example.com")
            .into_iter()
            .rfind(|m| m["subject"] == "Reset your password")
            .unwrap(),
    ));
    let v = app
        .gql(reset, json!({ "t": other, "p": "Another-Pass-77" }))
        .await;
    assert_eq!(
        code(&v),
        Some("BAD_USER_INPUT"),
        "earlier links stop working too"
    );
}

#[tokio::test]
async fn reminders_go_once_and_never_for_a_cancelled_booking() {
    let (app, resend) = mail_app().await;
    let admin = app.admin_token().await;
    let (_, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    let kept = confirmed(&app, &parent, &coach, at(3, 10)).await;
    let cancelled = confirmed(&app, &parent, &coach, at(4, 10)).await;
    let late = confirmed(&app, &parent, &coach, at(5, 10)).await;
    settle(&app).await;
    let db = &app.state.domain.db;
    let now = Utc::now();
    // All three start in 23 hours; two were confirmed days ago, one just now.
    for (id, confirmed_at) in [
        (&kept, now - chrono::Duration::days(2)),
        (&cancelled, now - chrono::Duration::days(2)),
        (&late, now),
    ] {
        let start = now + chrono::Duration::hours(23);
        entity::bookings::Entity::update_many()
            .col_expr(entity::bookings::Column::StartAt, Expr::value(start))
            .col_expr(
                entity::bookings::Column::EndAt,
                Expr::value(start + chrono::Duration::hours(1)),
            )
            .col_expr(
                entity::bookings::Column::StartS,
                Expr::value(start.timestamp()),
            )
            .col_expr(
                entity::bookings::Column::ConfirmedAt,
                Expr::value(confirmed_at),
            )
            .filter(entity::bookings::Column::Id.eq(id.clone()))
            .exec(db)
            .await
            .unwrap();
    }
    // Resend is down while the reminders are queued.
    resend.fail(503, 1000);
    for _ in 0..3 {
        outbox::queue_reminders(&app.state.domain, Utc::now())
            .await
            .unwrap();
    }
    let reminders = rows(&app, "reminder").await;
    assert_eq!(
        reminders.len(),
        4,
        "24 h reminders to both sides of two bookings, once"
    );
    assert!(
        reminders.iter().all(|r| !r.data.contains(&late)),
        "none for the late confirmation"
    );
    settle(&app).await;
    // Cancelled after queueing, before sending.
    let v = app
        .gql_as(
            Some(&parent),
            "mutation($id: ID!) { cancelBooking(bookingId: $id, reason: \"ill\") { status } }",
            json!({ "id": cancelled }),
        )
        .await;
    assert_eq!(v["data"]["cancelBooking"]["status"], "CANCELLED", "{v}");
    resend.clear_failures();
    due_now(&app).await;
    settle(&app).await;
    let sent: Vec<Value> = resend
        .delivered()
        .into_iter()
        .map(|s| s.body)
        .filter(|b| b["subject"].as_str().unwrap().starts_with("In 24 hours"))
        .collect();
    assert_eq!(
        sent.len(),
        2,
        "the kept booking's two reminders only: {sent:?}"
    );
    let skipped = rows(&app, "reminder")
        .await
        .into_iter()
        .filter(|r| r.status == "SKIPPED")
        .count();
    assert_eq!(skipped, 2);
    // The 1 h reminder comes later, once.
    let start = now + chrono::Duration::minutes(50);
    entity::bookings::Entity::update_many()
        .col_expr(entity::bookings::Column::StartAt, Expr::value(start))
        .filter(entity::bookings::Column::Id.eq(kept.clone()))
        .exec(db)
        .await
        .unwrap();
    outbox::queue_reminders(&app.state.domain, Utc::now())
        .await
        .unwrap();
    outbox::queue_reminders(&app.state.domain, Utc::now())
        .await
        .unwrap();
    settle(&app).await;
    let hour: Vec<Value> = resend
        .delivered()
        .into_iter()
        .map(|s| s.body)
        .filter(|b| b["subject"].as_str().unwrap().starts_with("In 1 hour"))
        .collect();
    assert_eq!(hour.len(), 2);
}

#[tokio::test]
async fn an_email_no_longer_true_when_its_turn_comes_is_skipped() {
    let (app, resend) = mail_app().await;
    // Resend is down when the verification email is first tried...
    resend.fail(503, 1);
    app.register("ann@example.com", "CONSUMER", Some("US"))
        .await;
    settle(&app).await;
    // ...and the address was verified (another link) before the retry.
    due_now(&app).await;
    settle(&app).await;
    let row = rows(&app, "verify_email").await.remove(0);
    assert_eq!(row.status, "SKIPPED");
    assert!(resend.delivered_to("ann@example.com").is_empty());
}
