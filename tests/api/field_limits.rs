//! Every field that costs money, mail, a calendar or argon2 has its own
//! budget: the call past it answers `RATE_LIMITED` with `retryAfter`,
//! writes nothing, calls no provider, and is audited with its bucket. The
//! app's flows with the default budgets meet none.

use serde_json::{Value, json};

use crate::bookings::{BOOK, confirmed, consumer, day_slot, hold, open_coach};
use crate::helpers::{PASSWORD, TestApp, spawn_app, spawn_app_with};

/// Two calls per budget, so a test makes three.
fn tight(a: &mut maestro_hub::config::SettingsArgs) {
    let l = &mut a.limits;
    l.rate_limit_holds_per_minute = 2;
    l.rate_limit_checkouts_per_minute = 2;
    l.rate_limit_onboarding_per_hour = 2;
    l.rate_limit_verification_per_hour = 2;
    l.rate_limit_reset_per_hour = 2;
    l.rate_limit_refresh_per_minute = 2;
    l.rate_limit_reviews_per_hour = 2;
    l.rate_limit_exports_per_hour = 2;
    l.rate_limit_password_checks_per_15_minutes = 2;
}

fn limited(v: &Value) -> bool {
    v["errors"]
        .as_array()
        .is_some_and(|e| e.iter().any(|e| e["extensions"]["code"] == "RATE_LIMITED"))
}

/// Asserts that the first two answers passed the limiter and the third is
/// one `RATE_LIMITED` with a positive `retryAfter`.
fn third_refused(answers: &[Value]) {
    assert_eq!(answers.len(), 3);
    for a in &answers[..2] {
        assert!(!limited(a), "{a}");
    }
    let refused = &answers[2]["errors"];
    assert_eq!(refused.as_array().map(Vec::len), Some(1), "{}", answers[2]);
    assert_eq!(refused[0]["extensions"]["code"], "RATE_LIMITED");
    assert!(
        refused[0]["extensions"]["retryAfter"]
            .as_u64()
            .is_some_and(|s| s > 0),
        "{refused}"
    );
}

/// The buckets of the `auth.rate_limited` entries, in order.
async fn audited(app: &TestApp) -> Vec<String> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    entity::audit_log::Entity::find()
        .filter(entity::audit_log::Column::Action.eq("auth.rate_limited"))
        .order_by_asc(entity::audit_log::Column::CreatedAt)
        .all(&app.state.domain.db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            let d: Value = serde_json::from_str(e.detail.as_deref().unwrap_or("{}")).unwrap();
            d["bucket"].as_str().unwrap_or_default().to_string()
        })
        .collect()
}

async fn thrice(
    app: &TestApp,
    token: Option<&str>,
    query: &str,
    vars: impl Fn(usize) -> Value,
) -> Vec<Value> {
    let mut out = Vec::new();
    for i in 0..3 {
        out.push(app.gql_as(token, query, vars(i)).await);
    }
    out
}

async fn count_holds(app: &TestApp) -> u64 {
    use sea_orm::{EntityTrait, PaginatorTrait};
    entity::holds::Entity::find()
        .count(&app.state.domain.db)
        .await
        .unwrap()
}

const CREATE_HOLD: &str = "mutation($c: ID!, $s: DateTime!) { createHold(coachId: $c, startAt: $s, durationMinutes: 60) { id } }";

fn slot(days: i64) -> String {
    crate::bookings::iso(day_slot(chrono::Utc::now() + chrono::Duration::days(days)))
}

#[tokio::test]
async fn holds_per_user_also_as_aliases() {
    let app = spawn_app_with(tight).await;
    let admin = app.admin_token().await;
    let (_, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    let answers = thrice(
        &app,
        Some(&parent),
        CREATE_HOLD,
        |i| json!({ "c": coach, "s": slot(3 + i as i64) }),
    )
    .await;
    third_refused(&answers);
    assert_eq!(count_holds(&app).await, 2, "the refused call wrote no hold");
    assert_eq!(audited(&app).await, ["holds"]);

    // Three aliases in one request: the third is refused, the others run.
    let other = consumer(&app, "other@example.com").await;
    let v = app
        .gql_as(
            Some(&other),
            "mutation($c: ID!, $a: DateTime!, $b: DateTime!, $d: DateTime!) {
               a: createHold(coachId: $c, startAt: $a, durationMinutes: 60) { id }
               b: createHold(coachId: $c, startAt: $b, durationMinutes: 60) { id }
               d: createHold(coachId: $c, startAt: $d, durationMinutes: 60) { id } }",
            json!({ "c": coach, "a": slot(10), "b": slot(11), "d": slot(12) }),
        )
        .await;
    assert!(v["data"]["a"]["id"].is_string(), "{v}");
    assert!(v["data"]["b"]["id"].is_string(), "{v}");
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{v}");
    assert_eq!(errors[0]["extensions"]["code"], "RATE_LIMITED");
    assert_eq!(errors[0]["path"], json!(["d"]));
    assert_eq!(count_holds(&app).await, 4);
    assert_eq!(audited(&app).await, ["holds", "holds"]);
}

#[tokio::test]
async fn checkouts_per_user_never_reach_stripe_when_refused() {
    let stripe = crate::fake_stripe::FakeStripe::start().await;
    let s = stripe.clone();
    let app = spawn_app_with(move |a| {
        s.configure(a);
        tight(a);
        a.limits.rate_limit_holds_per_minute = 10;
    })
    .await;
    let admin = app.admin_token().await;
    let (_, coach, _) = crate::payments::payable_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    let mut holds = Vec::new();
    for i in 0..3 {
        let h = hold(
            &app,
            &parent,
            &coach,
            day_slot(chrono::Utc::now() + chrono::Duration::days(3 + i)),
            60,
        )
        .await;
        holds.push(h["data"]["createHold"]["id"].as_str().unwrap().to_string());
    }
    let answers = thrice(&app, Some(&parent), BOOK, |i| json!({ "h": holds[i] })).await;
    third_refused(&answers);
    assert_eq!(
        stripe.acted("/v1/checkout/sessions").len(),
        2,
        "no third checkout session"
    );
    use sea_orm::{EntityTrait, PaginatorTrait};
    let bookings = entity::bookings::Entity::find()
        .count(&app.state.domain.db)
        .await
        .unwrap();
    assert_eq!(bookings, 2);
    assert_eq!(audited(&app).await, ["checkouts"]);
}

#[tokio::test]
async fn payout_onboarding_per_user() {
    let stripe = crate::fake_stripe::FakeStripe::start().await;
    let s = stripe.clone();
    let app = spawn_app_with(move |a| {
        s.configure(a);
        tight(a);
    })
    .await;
    let admin = app.admin_token().await;
    let (coach_token, _) = open_coach(&app, &admin, "coach@example.com").await;
    let answers = thrice(
        &app,
        Some(&coach_token),
        "mutation { startPayoutOnboarding }",
        |_| json!({}),
    )
    .await;
    third_refused(&answers);
    assert_eq!(stripe.acted("/v1/account_links").len(), 2, "no third link");
    assert_eq!(audited(&app).await, ["payout_onboarding"]);
}

#[tokio::test]
async fn verification_emails_per_user() {
    let app = spawn_app_with(tight).await;
    let token = app
        .register_unverified("new@example.com", "CONSUMER", Some("US"))
        .await["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let outbox = || async {
        use sea_orm::{EntityTrait, PaginatorTrait};
        entity::outbox::Entity::find()
            .count(&app.state.domain.db)
            .await
            .unwrap()
    };
    let mut answers = Vec::new();
    for _ in 0..2 {
        answers.push(
            app.gql_as(
                Some(&token),
                "mutation { requestEmailVerification }",
                json!({}),
            )
            .await,
        );
    }
    let queued = outbox().await;
    answers.push(
        app.gql_as(
            Some(&token),
            "mutation { requestEmailVerification }",
            json!({}),
        )
        .await,
    );
    third_refused(&answers);
    assert_eq!(outbox().await, queued, "the refused call queued no email");
    assert_eq!(audited(&app).await, ["email_verification"]);
}

#[tokio::test]
async fn password_resets_per_client_ip() {
    let app = spawn_app_with(tight).await;
    let answers = thrice(
        &app,
        None,
        "mutation($e: String!) { requestPasswordReset(email: $e) }",
        |i| json!({ "e": format!("someone{i}@example.com") }),
    )
    .await;
    third_refused(&answers);
    assert_eq!(answers[0]["data"]["requestPasswordReset"], true);
    assert_eq!(audited(&app).await, ["reset_ip"]);
}

#[tokio::test]
async fn token_refreshes_per_client_ip() {
    let app = spawn_app_with(tight).await;
    app.register("parent@example.com", "CONSUMER", Some("US"))
        .await;
    let login = app.login("parent@example.com", PASSWORD).await;
    let mut refresh = login["data"]["login"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();
    let q = "mutation($t: String!) { refreshToken(refreshToken: $t) { refreshToken } }";
    let mut answers = Vec::new();
    for _ in 0..3 {
        let v = app.gql(q, json!({ "t": refresh })).await;
        if let Some(t) = v["data"]["refreshToken"]["refreshToken"].as_str() {
            refresh = t.to_string();
        }
        answers.push(v);
    }
    third_refused(&answers);
    assert_eq!(audited(&app).await, ["refresh_ip"]);
    // Refused, the token was not spent: it is not a reuse.
    assert_eq!(app.audit_count("auth.refresh_reused").await, 0);
}

#[tokio::test]
async fn reviews_per_user() {
    let app = spawn_app_with(tight).await;
    let admin = app.admin_token().await;
    let (coach_token, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let coach_user = app
        .gql_as(Some(&coach_token), "{ me { id } }", json!({}))
        .await["data"]["me"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let reg = app
        .register("parent@example.com", "CONSUMER", Some("US"))
        .await;
    let parent = reg["accessToken"].as_str().unwrap().to_string();
    let parent_id = reg["user"]["id"].as_str().unwrap().to_string();
    let done = crate::reviews::insert_bookings(
        &app,
        &coach,
        &coach_user,
        &parent_id,
        "COMPLETED",
        3,
        chrono::Utc::now() - chrono::Duration::days(3),
    )
    .await;
    let answers = thrice(
        &app,
        Some(&parent),
        "mutation($b: ID!) { submitReview(bookingId: $b, rating: 5, comment: \"Patient and clear.\") { id } }",
        |i| json!({ "b": done[i] }),
    )
    .await;
    third_refused(&answers);
    use sea_orm::{EntityTrait, PaginatorTrait};
    let reviews = entity::reviews::Entity::find()
        .count(&app.state.domain.db)
        .await
        .unwrap();
    assert_eq!(reviews, 2);
    assert_eq!(audited(&app).await, ["reviews"]);
}

#[tokio::test]
async fn data_exports_per_user_also_over_a_websocket() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let app = spawn_app_with(tight).await;
    let parent = consumer(&app, "parent@example.com").await;
    let mut ws = crate::live::subscribe(&app, &parent, "mutation { exportMyData }").await;
    for id in ["2", "3"] {
        ws.send(Message::text(
            json!({ "id": id, "type": "subscribe", "payload": { "query": "mutation { exportMyData }" } })
                .to_string(),
        ))
        .await
        .unwrap();
    }
    let mut answers = Vec::new();
    while answers.len() < 3 {
        let Some(m) = crate::live::next_json(&mut ws, std::time::Duration::from_secs(10)).await
        else {
            panic!("{answers:?}");
        };
        match m["type"].as_str() {
            Some("next") => answers.push(m["payload"].clone()),
            Some("error") => answers.push(json!({ "errors": m["payload"] })),
            _ => {}
        }
    }
    let refused = answers.iter().filter(|a| limited(a)).count();
    assert_eq!(refused, 1, "{answers:?}");
    assert_eq!(
        answers
            .iter()
            .filter(|a| a["data"]["exportMyData"].is_string())
            .count(),
        2,
        "{answers:?}"
    );
    assert_eq!(app.audit_count("account.exported").await, 2);
    assert_eq!(audited(&app).await, ["data_exports"]);
}

#[tokio::test]
async fn password_checks_per_user_across_both_fields() {
    let app = spawn_app_with(tight).await;
    let parent = consumer(&app, "parent@example.com").await;
    let change = "mutation($c: String!) { changePassword(currentPassword: $c, newPassword: \"Another-Strong-Pass-7\") }";
    let mut answers = Vec::new();
    for _ in 0..2 {
        answers.push(
            app.gql_as(Some(&parent), change, json!({ "c": "not-the-password-1" }))
                .await,
        );
    }
    // The third check, with the right password, is refused before argon2 runs.
    answers.push(
        app.gql_as(
            Some(&parent),
            "mutation($p: String!) { deleteMyAccount(password: $p) }",
            json!({ "p": PASSWORD }),
        )
        .await,
    );
    third_refused(&answers);
    let me = app
        .gql_as(Some(&parent), "{ me { email } }", json!({}))
        .await;
    assert_eq!(
        me["data"]["me"]["email"], "parent@example.com",
        "not deleted: {me}"
    );
    assert_eq!(audited(&app).await, ["password_checks"]);
}

/// With the defaults, the app's whole booking flow meets no limit.
#[tokio::test]
async fn the_booking_flow_meets_no_limit_with_the_defaults() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    for day in 3..6 {
        let id = confirmed(
            &app,
            &parent,
            &coach,
            day_slot(chrono::Utc::now() + chrono::Duration::days(day)),
        )
        .await;
        let v = app
            .gql_as(
                Some(&parent),
                crate::bookings::CANCEL,
                json!({ "id": id, "r": "Plans changed" }),
            )
            .await;
        assert!(v["errors"].is_null(), "{v}");
    }
    let v = app
        .gql_as(Some(&parent), "mutation { exportMyData }", json!({}))
        .await;
    assert!(v["errors"].is_null(), "{v}");
    assert!(audited(&app).await.is_empty());
}

/// The README's table of per-field limits says what the code does.
#[test]
fn the_readme_table_matches_the_code() {
    use maestro_hub::ratelimit::{FIELD_LIMITS, Key};
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let settings =
        maestro_hub::config::Settings::from_args(crate::helpers::default_args("sqlite::memory:"))
            .unwrap();
    for row in FIELD_LIMITS {
        let fields = row
            .fields
            .iter()
            .map(|f| format!("`{f}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let key = match row.key {
            Key::User => "user",
            Key::ClientIp => "client IP",
        };
        let period = match row.bucket.period().as_secs() {
            60 => "minute",
            900 => "15 minutes",
            3600 => "hour",
            other => panic!("period of {other} s"),
        };
        let line = format!(
            "| {fields} | {key} | {} per {period} | `{}` |",
            row.default, row.variable
        );
        assert!(readme.contains(&line), "README lacks: {line}");
        assert_eq!(
            settings.budget_of(row.bucket),
            row.default,
            "{}",
            row.variable
        );
        assert!(row.variable.ends_with(&match period {
            "15 minutes" => "PER_15_MINUTES".to_string(),
            p => format!("PER_{}", p.to_uppercase()),
        }));
    }
    // Every variable is documented in .env.example too.
    let env =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example")).unwrap();
    for row in FIELD_LIMITS {
        assert!(
            env.contains(&format!("{}={}", row.variable, row.default)),
            "{}",
            row.variable
        );
    }
}
