//! The HTTP surface: security headers, CORS, health, metrics, the
//! playground, generic internal errors, production hardening of the schema.

use maestro_hub::config::{Environment, Settings};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::helpers::{
    PASSWORD, code, default_args, fresh_database, spawn_app, spawn_app_with, spawn_with_settings,
};

fn assert_security_headers(res: &reqwest::Response, what: &str) {
    let h = res.headers();
    assert_eq!(
        h.get("strict-transport-security")
            .map(|v| v.to_str().unwrap()),
        Some("max-age=31536000; includeSubDomains"),
        "{what}"
    );
    assert_eq!(
        h.get("x-content-type-options").unwrap(),
        "nosniff",
        "{what}"
    );
    assert_eq!(h.get("x-frame-options").unwrap(), "DENY", "{what}");
    assert_eq!(h.get("referrer-policy").unwrap(), "no-referrer", "{what}");
    assert!(h.get("content-security-policy").is_some(), "{what}");
    assert!(h.get("x-request-id").is_some(), "{what}");
}

#[tokio::test]
async fn security_headers_on_success_error_and_404() {
    let app = spawn_app().await;
    let ok = app
        .post(json!({ "query": "{ markets { code } }" }), None)
        .await;
    assert_eq!(ok.status(), 200);
    assert_security_headers(&ok, "200");
    assert_eq!(
        ok.headers()["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );

    let err = app.post(json!({ "query": "{ me { id } }" }), None).await;
    assert_security_headers(&err, "GraphQL error");
    let body: Value = err.json().await.unwrap();
    assert_eq!(code(&body), Some("UNAUTHENTICATED"));

    let missing = app
        .client
        .get(app.url("/no/such/page"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_security_headers(&missing, "404");
    let body: Value = missing.json().await.unwrap();
    assert_eq!(code(&body), Some("NOT_FOUND"));
}

#[tokio::test]
async fn request_id_is_echoed_or_made() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "bad id\twith junk")
        .send()
        .await
        .unwrap();
    assert_ne!(res.headers()["x-request-id"], "bad id\twith junk");
}

#[tokio::test]
async fn cors_preflight_allows_listed_origins_only() {
    let app = spawn_app().await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/graphql"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let ok = preflight("http://localhost:8081").await.unwrap();
    assert!(ok.status().is_success());
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "http://localhost:8081"
    );
    assert_security_headers(&ok, "preflight");

    let refused = preflight("https://evil.example").await.unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = spawn_app().await;
    let h = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(h.status(), 200);
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);

    app.post(
        json!({ "query": "query Markets { markets { code } }", "operationName": "Markets" }),
        None,
    )
    .await;
    let m = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("maestro_graphql_requests_total{operation=\"Markets\",outcome=\"ok\"} 1"),
        "{m}"
    );
    assert!(m.contains("maestro_graphql_request_duration_seconds_bucket{operation=\"Markets\""));
    assert!(m.contains("maestro_db_pool_connections"));
    assert!(
        m.contains("maestro_search_index_loads_total{kind=\"full\"}"),
        "{m}"
    );
    assert!(m.contains("maestro_search_index_listening"), "{m}");

    // A database that stops answering makes the instance not ready.
    app.state.domain.db.clone().close().await.unwrap();
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
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
async fn an_internal_error_reaches_the_client_as_a_generic_message() {
    let app = spawn_app().await;
    app.register("ie@example.com", "CONSUMER", None).await;
    // Break the database under the app: the audit table is gone.
    app.state
        .domain
        .db
        .execute_unprepared("DROP TABLE audit_log")
        .await
        .unwrap();
    let v = app.login("ie@example.com", PASSWORD).await;
    assert_eq!(code(&v), Some("INTERNAL_SERVER_ERROR"), "{v}");
    assert_eq!(v["errors"][0]["message"], "internal error");
    let text = v.to_string().to_lowercase();
    for leak in [
        "audit_log",
        "sqlite",
        "postgres",
        "select",
        "insert",
        "src/",
        ".rs",
        "relation",
    ] {
        assert!(!text.contains(leak), "leaked `{leak}`: {text}");
    }
}

#[tokio::test]
async fn bad_bodies_get_clear_errors() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        code(&res.json::<Value>().await.unwrap()),
        Some("BAD_USER_INPUT")
    );
    let res = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "text/plain")
        .body(r#"{"query":"{ markets { code } }"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    let v = app.gql("{ markets { code ", json!({})).await;
    assert_eq!(code(&v), Some("BAD_USER_INPUT"), "syntax error: {v}");
    let v = app
        .gql("query($n: Int!) { markets { code } }", json!({ "n": "x" }))
        .await;
    assert_eq!(code(&v), Some("BAD_USER_INPUT"), "bad variable: {v}");
}

#[tokio::test]
async fn playground_is_self_contained_and_limited_by_its_own_csp() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/playground")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"));
    assert!(!csp.contains("unsafe-inline") && !csp.contains("http"));
    let html = res.text().await.unwrap();
    assert!(html.contains("/playground/app.js"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no CDN"
    );
    let js = app
        .client
        .get(app.url("/playground/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    let js = js.text().await.unwrap();
    assert!(js.contains("/graphql") && js.contains("login"));

    let off = spawn_app_with(|a| a.playground_enabled = Some(false)).await;
    let res = off.client.get(off.url("/playground")).send().await.unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn production_hides_the_schema() {
    let dev = spawn_app().await;
    let v = dev
        .gql("{ __schema { queryType { name } } }", json!({}))
        .await;
    assert_eq!(
        v["data"]["__schema"]["queryType"]["name"], "Query",
        "introspection on in development"
    );
    let v = dev.gql("{ market { code } }", json!({})).await;
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Did you mean"),
        "{v}"
    );

    let (url, tmp) = fresh_database().await;
    let args = default_args(&url);
    let secret = args.jwt_secret.clone().unwrap();
    let mut settings = Settings::from_args(args).unwrap();
    // Production proper needs PostgreSQL; the schema switch is what is under test.
    settings.env = Environment::Production;
    let prod = spawn_with_settings(settings, url, secret, tmp).await;
    let v = prod
        .gql("{ __schema { queryType { name } } }", json!({}))
        .await;
    assert!(
        v["data"]["__schema"].is_null(),
        "introspection answers nothing: {v}"
    );
    let v = prod
        .gql(
            "{ __type(name: \"User\") { name fields { name } } }",
            json!({}),
        )
        .await;
    assert!(v["data"]["__type"].is_null(), "{v}");
    let v = prod.gql("{ market { code } }", json!({})).await;
    let msg = v["errors"][0]["message"].as_str().unwrap();
    assert!(
        !msg.contains("Did you mean") && !msg.contains("markets"),
        "{msg}"
    );
}

#[tokio::test]
async fn schema_file_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let on_disk = std::fs::read_to_string(path).expect("schema.graphql exists");
    assert!(
        on_disk == maestro_hub::graphql::sdl(),
        "schema.graphql is out of date: run `cargo run -- export-schema`"
    );
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode_with_foreign_keys() {
    let app = spawn_app().await;
    let db = &app.state.domain.db;
    if db.get_database_backend() != sea_orm::DatabaseBackend::Sqlite {
        crate::helpers::skip(
            "sqlite_runs_in_wal_mode_with_foreign_keys",
            "PostgreSQL has neither setting",
        );
        return;
    }
    let one = |sql: &'static str| async move {
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DatabaseBackend::Sqlite,
                sql,
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index::<String>(0)
            .or_else(|_| row.try_get_by_index::<i64>(0).map(|v| v.to_string()))
            .unwrap()
    };
    assert_eq!(one("PRAGMA journal_mode").await, "wal");
    assert_eq!(one("PRAGMA foreign_keys").await, "1");
    assert!(one("PRAGMA busy_timeout").await.parse::<i64>().unwrap() >= 1000);
}

/// A token that cannot be checked because the database is down is not
/// "invalid": the app must not sign its user out over an outage.
#[tokio::test]
async fn a_sign_in_that_cannot_be_checked_is_an_internal_error_not_unauthenticated() {
    let app = spawn_app().await;
    let token = app
        .register("parent@example.com", "CONSUMER", Some("US"))
        .await["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    app.state.domain.db.clone().close().await.unwrap();
    let v = app.gql_as(Some(&token), "{ me { id } }", json!({})).await;
    assert_eq!(code(&v), Some("INTERNAL_SERVER_ERROR"), "{v}");
}
