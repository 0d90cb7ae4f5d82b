//! Registration, sign-in, refresh rotation, logout, password change and the
//! profile mutations, end to end over HTTP.

use serde_json::json;

use crate::helpers::{PASSWORD, code, field, spawn_app};

const ME: &str = "{ me { id email name role market { code currency } } }";

#[tokio::test]
async fn register_then_me_shows_the_account() {
    let app = spawn_app().await;
    let p = app
        .register("Ana@Example.com", "CONSUMER", Some("GB"))
        .await;
    assert_eq!(p["user"]["email"], "ana@example.com");
    assert!(p["accessTokenExpiresAt"].as_str().unwrap().ends_with('Z'));
    let me = app.gql_as(p["accessToken"].as_str(), ME, json!({})).await;
    assert_eq!(me["data"]["me"]["role"], "CONSUMER");
    assert_eq!(me["data"]["me"]["market"]["currency"], "GBP");
    assert_eq!(app.audit_count("auth.registered").await, 1);
}

#[tokio::test]
async fn register_refuses_admin_duplicates_and_bad_input() {
    let app = spawn_app().await;
    let q = "mutation($input: RegisterInput!) { register(input: $input) { accessToken } }";
    let input = |email: &str, role: &str, password: &str, market: Option<&str>| json!({ "input": { "email": email, "password": password, "name": "X", "role": role, "marketCode": market } });
    let v = app
        .gql(q, input("boss@example.com", "ADMIN", PASSWORD, None))
        .await;
    assert_eq!(code(&v), Some("BAD_USER_INPUT"));
    assert_eq!(field(&v), Some("role"));

    app.register("dup@example.com", "COACH", None).await;
    let v = app
        .gql(q, input("DUP@Example.COM", "CONSUMER", PASSWORD, None))
        .await;
    assert_eq!(code(&v), Some("CONFLICT"), "{v}");

    let v = app
        .gql(q, input("not-an-email", "CONSUMER", PASSWORD, None))
        .await;
    assert_eq!(
        (code(&v), field(&v)),
        (Some("BAD_USER_INPUT"), Some("email"))
    );
    let v = app
        .gql(q, input("m@example.com", "CONSUMER", PASSWORD, Some("ZZ")))
        .await;
    assert_eq!(
        (code(&v), field(&v)),
        (Some("BAD_USER_INPUT"), Some("marketCode"))
    );

    // Nothing was created by the refused calls.
    let v = app.login("boss@example.com", PASSWORD).await;
    assert_eq!(code(&v), Some("UNAUTHENTICATED"));
    assert_eq!(app.audit_count("auth.registered").await, 1);
}

#[tokio::test]
async fn every_weak_password_rule_is_enforced() {
    let app = spawn_app().await;
    let q = "mutation($input: RegisterInput!) { register(input: $input) { accessToken } }";
    let long = format!("Aa1{}", "x".repeat(126));
    for (password, why) in [
        ("Ab1", "too short"),
        ("Abcde12", "7 characters"),
        (long.as_str(), "129 characters"),
        ("alllowercase1", "no upper-case letter"),
        ("ALLUPPERCASE1", "no lower-case letter"),
        ("NoDigitsAtAll", "no digit"),
        ("Password1", "common password"),
        ("Iloveyou1", "common password"),
        ("Qwerty123", "common password"),
    ] {
        let v = app
            .gql(
                q,
                json!({ "input": { "email": "p@example.com", "password": password,
                "name": "P", "role": "CONSUMER" } }),
            )
            .await;
        assert_eq!(code(&v), Some("BAD_USER_INPUT"), "{why}: {v}");
        assert_eq!(field(&v), Some("password"), "{why}");
    }
    let v = app
        .gql(
            q,
            json!({ "input": { "email": "p@example.com", "password": "Aa1xxxxx",
            "name": "P", "role": "CONSUMER" } }),
        )
        .await;
    assert!(
        v["errors"].is_null(),
        "8 characters meeting every rule is fine: {v}"
    );
}

#[tokio::test]
async fn wrong_password_and_unknown_email_look_the_same() {
    let app = spawn_app().await;
    app.register("known@example.com", "CONSUMER", None).await;
    let wrong = app.login("known@example.com", "Wrong-Password-1").await;
    let unknown = app.login("nobody@example.com", PASSWORD).await;
    assert_eq!(code(&wrong), Some("UNAUTHENTICATED"));
    assert_eq!(code(&unknown), Some("UNAUTHENTICATED"));
    assert_eq!(
        wrong["errors"][0]["message"],
        unknown["errors"][0]["message"]
    );
    let ok = app.login("KNOWN@example.com", PASSWORD).await;
    assert!(ok["errors"].is_null(), "{ok}");
    assert_eq!(app.audit_count("auth.login_failed").await, 2);
    assert_eq!(app.audit_count("auth.login_succeeded").await, 1);

    // The failure is audited with the email and IP, never the password.
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let rows = entity::audit_log::Entity::find()
        .filter(entity::audit_log::Column::Action.eq("auth.login_failed"))
        .all(&app.state.domain.db)
        .await
        .unwrap();
    for row in rows {
        let detail = row.detail.unwrap_or_default();
        assert!(!detail.contains("Wrong-Password-1") && !detail.contains(PASSWORD));
        assert_eq!(row.ip.as_deref(), Some("127.0.0.1"));
    }
}

const REFRESH: &str =
    "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken } }";

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = spawn_app().await;
    let p = app.register("r@example.com", "CONSUMER", None).await;
    let r1 = p["refreshToken"].as_str().unwrap().to_string();

    let v = app.gql(REFRESH, json!({ "t": r1 })).await;
    let r2 = v["data"]["refreshToken"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(r1, r2);
    let a2 = v["data"]["refreshToken"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(app.gql_as(Some(&a2), ME, json!({})).await["errors"].is_null());

    // r1 is spent: presenting it again is theft, and kills r2 as well.
    let v = app.gql(REFRESH, json!({ "t": r1 })).await;
    assert_eq!(code(&v), Some("UNAUTHENTICATED"));
    assert_eq!(app.audit_count("auth.refresh_reused").await, 1);
    let v = app.gql(REFRESH, json!({ "t": r2 })).await;
    assert_eq!(code(&v), Some("UNAUTHENTICATED"), "family revoked: {v}");

    // Garbage is refused too.
    let v = app.gql(REFRESH, json!({ "t": "not-a-token" })).await;
    assert_eq!(code(&v), Some("UNAUTHENTICATED"));
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_yield_one_new_token() {
    let app = spawn_app().await;
    let p = app.register("race@example.com", "CONSUMER", None).await;
    let r1 = p["refreshToken"].as_str().unwrap().to_string();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = app.client.clone();
        let url = app.url("/graphql");
        let r1 = r1.clone();
        tasks.push(tokio::spawn(async move {
            let v: serde_json::Value = client
                .post(url)
                .json(&json!({ "query": REFRESH, "variables": { "t": r1 } }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap()["errors"].is_null() {
            ok += 1;
        }
    }
    assert_eq!(
        ok, 1,
        "a refresh token is spent exactly once: {ok} successes"
    );
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = spawn_app().await;
    let p = app.register("out@example.com", "CONSUMER", None).await;
    let (access, refresh) = (
        p["accessToken"].as_str().unwrap(),
        p["refreshToken"].as_str().unwrap(),
    );
    let v = app
        .gql_as(
            Some(access),
            "mutation($t: String!) { logout(refreshToken: $t) }",
            json!({ "t": refresh }),
        )
        .await;
    assert_eq!(v["data"]["logout"], true);
    let v = app.gql(REFRESH, json!({ "t": refresh })).await;
    assert_eq!(code(&v), Some("UNAUTHENTICATED"));
    let v = app
        .gql("mutation { logout(refreshToken: \"x\") }", json!({}))
        .await;
    assert_eq!(
        code(&v),
        Some("UNAUTHENTICATED"),
        "logout needs a signed-in caller"
    );
}

#[tokio::test]
async fn change_password_kills_every_earlier_token() {
    let app = spawn_app().await;
    let p = app.register("cp@example.com", "COACH", None).await;
    let (access, refresh) = (
        p["accessToken"].as_str().unwrap(),
        p["refreshToken"].as_str().unwrap(),
    );
    let change = "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }";

    let v = app
        .gql_as(
            Some(access),
            change,
            json!({ "c": "Wrong-Password-9", "n": "Another-Strong-77" }),
        )
        .await;
    assert_eq!(
        (code(&v), field(&v)),
        (Some("BAD_USER_INPUT"), Some("currentPassword"))
    );
    let v = app
        .gql_as(Some(access), change, json!({ "c": PASSWORD, "n": "weak" }))
        .await;
    assert_eq!(
        (code(&v), field(&v)),
        (Some("BAD_USER_INPUT"), Some("newPassword"))
    );
    // The refused attempts changed nothing.
    assert!(app.gql_as(Some(access), ME, json!({})).await["errors"].is_null());

    let v = app
        .gql_as(
            Some(access),
            change,
            json!({ "c": PASSWORD, "n": "Another-Strong-77" }),
        )
        .await;
    assert_eq!(v["data"]["changePassword"], true, "{v}");
    assert_eq!(
        code(&app.gql_as(Some(access), ME, json!({})).await),
        Some("UNAUTHENTICATED")
    );
    assert_eq!(
        code(&app.gql(REFRESH, json!({ "t": refresh })).await),
        Some("UNAUTHENTICATED")
    );
    assert_eq!(
        code(&app.login("cp@example.com", PASSWORD).await),
        Some("UNAUTHENTICATED")
    );
    assert!(app.login("cp@example.com", "Another-Strong-77").await["errors"].is_null());
    assert_eq!(app.audit_count("auth.password_changed").await, 1);
}

#[tokio::test]
async fn set_market_and_update_profile() {
    let app = spawn_app().await;
    let p = app.register("m@example.com", "CONSUMER", None).await;
    let t = p["accessToken"].as_str();
    let v = app
        .gql_as(
            t,
            "mutation { setMarket(marketCode: \"in\") { market { code currency } } }",
            json!({}),
        )
        .await;
    assert_eq!(v["data"]["setMarket"]["market"]["currency"], "INR", "{v}");
    let v = app
        .gql_as(
            t,
            "mutation { setMarket(marketCode: \"FR\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        (code(&v), field(&v)),
        (Some("BAD_USER_INPUT"), Some("marketCode"))
    );
    let v = app
        .gql_as(
            t,
            "mutation { updateProfile(input: { name: \"  Priya  \" }) { name } }",
            json!({}),
        )
        .await;
    assert_eq!(v["data"]["updateProfile"]["name"], "Priya");
    let v = app
        .gql_as(
            t,
            "mutation { updateProfile(input: { name: \"   \" }) { name } }",
            json!({}),
        )
        .await;
    assert_eq!(
        (code(&v), field(&v)),
        (Some("BAD_USER_INPUT"), Some("name"))
    );
    let v = app
        .gql(
            "mutation { setMarket(marketCode: \"US\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&v), Some("UNAUTHENTICATED"));
}

#[tokio::test]
async fn reference_data_is_seeded() {
    let app = spawn_app().await;
    let v = app
        .gql(
            "{ markets { code currency } categories { slug name } }",
            json!({}),
        )
        .await;
    let markets: Vec<(String, String)> = v["data"]["markets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["code"].as_str().unwrap().into(),
                m["currency"].as_str().unwrap().into(),
            )
        })
        .collect();
    for pair in [("US", "USD"), ("IN", "INR"), ("GB", "GBP")] {
        assert!(
            markets.contains(&(pair.0.into(), pair.1.into())),
            "{pair:?}"
        );
    }
    assert!(v["data"]["categories"].as_array().unwrap().len() >= 10);
}
