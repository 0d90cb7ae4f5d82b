//! Every forged or stale access token is refused with `UNAUTHENTICATED`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, code, spawn_app};

const ME: &str = "{ me { id role } }";

fn claims(user_id: &str) -> Value {
    let now = Utc::now().timestamp();
    json!({
        "sub": user_id, "role": "CONSUMER", "iat": now, "exp": now + 600,
        "iss": "maestro-hub", "aud": "maestro-hub-api", "jti": "j-1", "sv": 0
    })
}

fn sign(alg: Algorithm, secret: &str, claims: &Value) -> String {
    encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

async fn me_code(app: &TestApp, token: &str) -> Option<String> {
    code(&app.gql_as(Some(token), ME, json!({})).await).map(str::to_string)
}

#[tokio::test]
async fn forged_tokens_are_refused() {
    let app = spawn_app().await;
    let p = app.register("t@example.com", "CONSUMER", None).await;
    let id = p["user"]["id"].as_str().unwrap();
    let good = sign(Algorithm::HS256, &app.jwt_secret, &claims(id));
    assert_eq!(
        me_code(&app, &good).await,
        None,
        "a correctly made token works"
    );

    let unauth = Some("UNAUTHENTICATED".to_string());
    // alg: none, no signature.
    let none = format!(
        "{}.{}.",
        B64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        B64.encode(claims(id).to_string())
    );
    assert_eq!(me_code(&app, &none).await, unauth, "alg none");
    // Another algorithm with the same secret.
    assert_eq!(
        me_code(&app, &sign(Algorithm::HS512, &app.jwt_secret, &claims(id))).await,
        unauth,
        "HS512"
    );
    // A wrong secret.
    let other = crate::helpers::random_secret();
    assert_eq!(
        me_code(&app, &sign(Algorithm::HS256, &other, &claims(id))).await,
        unauth,
        "wrong secret"
    );
    // A tampered payload under the original signature.
    let parts: Vec<&str> = good.split('.').collect();
    let mut c = claims(id);
    c["role"] = json!("ADMIN");
    let tampered = format!("{}.{}.{}", parts[0], B64.encode(c.to_string()), parts[2]);
    assert_eq!(me_code(&app, &tampered).await, unauth, "tampered");
    // Expired (beyond the leeway).
    let mut c = claims(id);
    c["exp"] = json!(Utc::now().timestamp() - 120);
    c["iat"] = json!(Utc::now().timestamp() - 1000);
    assert_eq!(
        me_code(&app, &sign(Algorithm::HS256, &app.jwt_secret, &c)).await,
        unauth,
        "expired"
    );
    // Wrong issuer, wrong audience.
    let mut c = claims(id);
    c["iss"] = json!("someone-else");
    assert_eq!(
        me_code(&app, &sign(Algorithm::HS256, &app.jwt_secret, &c)).await,
        unauth,
        "iss"
    );
    let mut c = claims(id);
    c["aud"] = json!("another-api");
    assert_eq!(
        me_code(&app, &sign(Algorithm::HS256, &app.jwt_secret, &c)).await,
        unauth,
        "aud"
    );
    // Required claims missing.
    for missing in ["exp", "iat", "jti", "sv", "sub", "iss", "aud"] {
        let mut c = claims(id);
        c.as_object_mut().unwrap().remove(missing);
        assert_eq!(
            me_code(&app, &sign(Algorithm::HS256, &app.jwt_secret, &c)).await,
            unauth,
            "no {missing}"
        );
    }
    // A role claim that does not match the account.
    let mut c = claims(id);
    c["role"] = json!("ADMIN");
    assert_eq!(
        me_code(&app, &sign(Algorithm::HS256, &app.jwt_secret, &c)).await,
        unauth,
        "role mismatch"
    );
    // Not a bearer token at all.
    let v = app
        .client
        .post(app.url("/graphql"))
        .header("authorization", format!("Basic {good}"))
        .json(&json!({ "query": ME }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(code(&v), Some("UNAUTHENTICATED"));
}

#[tokio::test]
async fn a_token_from_before_a_password_change_is_refused() {
    let app = spawn_app().await;
    let p = app.register("pc@example.com", "CONSUMER", None).await;
    let old = p["accessToken"].as_str().unwrap();
    let v = app
        .gql_as(
            Some(old),
            "mutation { changePassword(currentPassword: \"Tangerine-Koala-42\", newPassword: \"Fresh-Password-8\") }",
            json!({}),
        )
        .await;
    assert_eq!(v["data"]["changePassword"], true);
    assert_eq!(me_code(&app, old).await.as_deref(), Some("UNAUTHENTICATED"));
    let fresh = app.login("pc@example.com", "Fresh-Password-8").await;
    let t = fresh["data"]["login"]["accessToken"].as_str().unwrap();
    assert_eq!(me_code(&app, t).await, None);
    let _ = PASSWORD;
}

#[tokio::test]
async fn public_fields_still_answer_with_a_bad_token() {
    let app = spawn_app().await;
    let v = app
        .gql_as(Some("garbage"), "{ markets { code } }", json!({}))
        .await;
    assert!(v["errors"].is_null(), "{v}");
    let v = app.gql_as(Some("garbage"), ME, json!({})).await;
    assert_eq!(code(&v), Some("UNAUTHENTICATED"));
}
