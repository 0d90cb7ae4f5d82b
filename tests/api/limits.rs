//! Per-field rate limits (counted per attempt, also inside batches and
//! aliases), the HTTP-wide limit, and the query limits.

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, code, spawn_app, spawn_app_with};

const LOGIN: &str =
    "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }";

#[tokio::test]
async fn the_sixth_login_in_a_minute_is_rate_limited() {
    let app = spawn_app().await;
    app.register("rl@example.com", "CONSUMER", None).await;
    for i in 0..5 {
        let v = app
            .gql(
                LOGIN,
                json!({ "e": "rl@example.com", "p": "Wrong-Password-1" }),
            )
            .await;
        assert_eq!(code(&v), Some("UNAUTHENTICATED"), "attempt {i}");
    }
    // Even the right password is refused now: the limit counts attempts.
    let v = app
        .gql(LOGIN, json!({ "e": "rl@example.com", "p": PASSWORD }))
        .await;
    assert_eq!(code(&v), Some("RATE_LIMITED"), "{v}");
    let retry = v["errors"][0]["extensions"]["retryAfter"].as_u64().unwrap();
    assert!((1..=60).contains(&retry), "retryAfter {retry}");
    assert!(app.audit_count("auth.rate_limited").await >= 1);
}

#[tokio::test]
async fn login_is_limited_per_email_across_ips() {
    let app = spawn_app_with(|a| a.trust_proxy = true).await;
    let mut codes = Vec::new();
    for i in 0..6 {
        let v: Value = app
            .client
            .post(app.url("/graphql"))
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .json(&json!({ "query": LOGIN, "variables": { "e": "victim@example.com", "p": "Guess-Number-1" } }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        codes.push(code(&v).unwrap().to_string());
    }
    assert_eq!(codes[..5], ["UNAUTHENTICATED"; 5]);
    assert_eq!(codes[5], "RATE_LIMITED");
}

#[tokio::test]
async fn a_batch_of_ten_logins_counts_ten_attempts() {
    let app = spawn_app().await;
    let batch: Vec<Value> = (0..10)
        .map(|i| json!({ "query": LOGIN, "variables": { "e": format!("u{i}@example.com"), "p": "Guess-Number-1" } }))
        .collect();
    let v: Value = app
        .post(Value::Array(batch), None)
        .await
        .json()
        .await
        .unwrap();
    let codes: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| code(r).unwrap())
        .collect();
    assert_eq!(
        codes.iter().filter(|c| **c == "RATE_LIMITED").count(),
        5,
        "{codes:?}"
    );
    assert_eq!(codes.iter().filter(|c| **c == "UNAUTHENTICATED").count(), 5);
}

#[tokio::test]
async fn ten_aliased_logins_count_ten_attempts() {
    let app = spawn_app().await;
    let fields: String = (0..10)
        .map(|i| format!("a{i}: login(email: \"a{i}@example.com\", password: \"Guess-Number-1\") {{ accessToken }} "))
        .collect();
    let v = app
        .gql(&format!("mutation {{ {fields} }}"), json!({}))
        .await;
    let errors = v["errors"].as_array().unwrap();
    let limited = errors
        .iter()
        .filter(|e| e["extensions"]["code"] == "RATE_LIMITED")
        .count();
    assert_eq!(errors.len(), 10, "{v}");
    assert_eq!(limited, 5, "{v}");
}

#[tokio::test]
async fn registration_is_limited_per_ip() {
    let app = spawn_app_with(|a| a.rate_limit_register_per_hour = 2).await;
    app.register("one@example.com", "CONSUMER", None).await;
    app.register("two@example.com", "CONSUMER", None).await;
    let v = app
        .gql(
            "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }",
            json!({ "i": { "email": "three@example.com", "password": PASSWORD, "name": "T", "role": "CONSUMER" } }),
        )
        .await;
    assert_eq!(code(&v), Some("RATE_LIMITED"));
}

#[tokio::test]
async fn the_http_wide_limit_answers_429_with_retry_after() {
    let app = spawn_app_with(|a| a.rate_limit_general_per_minute = 3).await;
    for _ in 0..3 {
        assert_eq!(
            app.post(json!({ "query": "{ markets { code } }" }), None)
                .await
                .status(),
            200
        );
    }
    let res = app
        .post(json!({ "query": "{ markets { code } }" }), None)
        .await;
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    for h in [
        "strict-transport-security",
        "x-content-type-options",
        "x-frame-options",
        "referrer-policy",
        "content-security-policy",
    ] {
        assert!(res.headers().get(h).is_some(), "429 lacks {h}");
    }
    let body: Value = res.json().await.unwrap();
    assert_eq!(code(&body), Some("RATE_LIMITED"));
    // Probes are not rate limited.
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn depth_complexity_batch_and_body_limits() {
    let app = spawn_app().await;
    let deep = "{ __type(name: \"Query\") { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } } } } }";
    let v = app.gql(deep, json!({})).await;
    assert_eq!(code(&v), Some("BAD_USER_INPUT"), "depth: {v}");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("nested too deep"),
        "{v}"
    );

    let wide: String = (0..600)
        .map(|i| format!("a{i}: markets {{ code }} "))
        .collect();
    let v = app.gql(&format!("{{ {wide} }}"), json!({})).await;
    assert_eq!(code(&v), Some("BAD_USER_INPUT"), "complexity");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("complex"),
        "{v}"
    );

    let batch: Vec<Value> = (0..11)
        .map(|_| json!({ "query": "{ markets { code } }" }))
        .collect();
    let res = app.post(Value::Array(batch), None).await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        code(&res.json::<Value>().await.unwrap()),
        Some("BAD_USER_INPUT")
    );
    let ten: Vec<Value> = (0..10)
        .map(|_| json!({ "query": "{ markets { code } }" }))
        .collect();
    assert_eq!(app.post(Value::Array(ten), None).await.status(), 200);

    let directives: String = (0..8).map(|_| " @include(if: true)").collect();
    let v = app
        .gql(&format!("{{ markets{directives} {{ code }} }}"), json!({}))
        .await;
    assert_eq!(code(&v), Some("BAD_USER_INPUT"), "directives: {v}");

    let big = format!("{{ markets {{ code }} }} #{}", "x".repeat(70 * 1024));
    let res = app.post(json!({ "query": big }), None).await;
    assert_eq!(res.status(), 413);
}
