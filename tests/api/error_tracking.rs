//! `SENTRY_DSN`: an internal error reaches a (fake) Sentry as an envelope
//! tagged with the request id and operation name, and carries no personal
//! data.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;

type Envelopes = Arc<Mutex<Vec<String>>>;

async fn envelope(State(seen): State<Envelopes>, body: Bytes) -> &'static str {
    seen.lock()
        .unwrap()
        .push(String::from_utf8_lossy(&body).into_owned());
    "{}"
}

#[tokio::test]
async fn an_internal_error_is_reported_without_personal_data() {
    let seen: Envelopes = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sentry = listener.local_addr().unwrap();
    let router = Router::new()
        .route("/api/{project}/envelope/", post(envelope))
        .with_state(seen.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("app.db").display());
    let email = "admin.person@example.com";
    let (mut child, port, password) = crate::helpers::start_binary(
        &url,
        email,
        &[("SENTRY_DSN", format!("http://0123456789abcdef@{sentry}/42"))],
    );
    let client = reqwest::Client::new();
    let gql = |query: &str, vars: serde_json::Value, token: Option<&str>| {
        let mut req = client
            .post(format!("http://127.0.0.1:{port}/graphql"))
            .json(&serde_json::json!({ "query": query, "variables": vars }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let login: serde_json::Value = gql(
        "mutation SignIn($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken user { id } } }",
        serde_json::json!({ "e": email, "p": password }),
        None,
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let token = login["data"]["login"]["accessToken"].as_str().unwrap();
    let user_id = login["data"]["login"]["user"]["id"].as_str().unwrap();

    // The coach profiles' table goes away under the running server: the
    // admin's list fails inside, as a lost table or a broken disk would.
    {
        use sea_orm::ConnectionTrait;
        let db = sea_orm::Database::connect(&url).await.unwrap();
        db.execute_unprepared("ALTER TABLE coach_profiles RENAME TO coach_profiles_gone")
            .await
            .unwrap();
    }
    let res = gql(
        "query PendingCoaches { adminCoaches(first: 5) { totalCount } }",
        serde_json::json!({}),
        Some(token),
    )
    .await
    .unwrap();
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "INTERNAL_SERVER_ERROR",
        "{body}"
    );

    let deadline = Instant::now() + Duration::from_secs(15);
    let report = loop {
        let found = seen
            .lock()
            .unwrap()
            .iter()
            .find(|e| e.contains("\"type\":\"event\""))
            .cloned();
        if let Some(e) = found {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "no event reached the fake Sentry"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    // An envelope: its header, then each item's header and payload.
    let event: serde_json::Value = report
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v.get("message").is_some())
        .unwrap_or_else(|| panic!("{report}"));
    // Sentry leaves out the default level, `error`.
    assert!(event.get("level").is_none_or(|l| l == "error"), "{event}");
    assert!(
        event["message"]
            .as_str()
            .is_some_and(|m| m.contains("no such table")),
        "{event}"
    );
    assert_eq!(event["tags"]["request_id"], request_id.as_str(), "{event}");
    assert_eq!(event["tags"]["operation"], "PendingCoaches", "{event}");
    assert!(
        event["release"]
            .as_str()
            .is_some_and(|r| r.starts_with("maestro-hub@")),
        "{event}"
    );
    let text = event.to_string();
    for personal in [email, user_id, "127.0.0.1", token] {
        assert!(!text.contains(personal), "{personal} in {text}");
    }
}
