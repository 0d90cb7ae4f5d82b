//! SIGTERM stops the real binary gracefully: a request already in flight
//! is answered, new connections are refused, and the process exits 0.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{free_port, fresh_database};

#[tokio::test]
async fn sigterm_drains_an_in_flight_request() {
    let (url, _tmp) = fresh_database().await;
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_maestro-hub"))
        .arg("serve")
        .env_clear()
        .env("DATABASE_URL", &url)
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let started = Instant::now();
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(_) if started.elapsed() < Duration::from_secs(30) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("server did not start: {e}"),
        }
    };

    // Half a request: headers and the first part of the body.
    let body = r#"{"query":"{ markets { code } }"}"#;
    let (head, tail) = body.split_at(10);
    write!(
        stream,
        "POST /graphql HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{head}",
        body.len()
    )
    .unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(300));

    // The listener is closed to newcomers...
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "new connections refused after SIGTERM"
    );
    // ...but the request in flight completes.
    stream.write_all(tail.as_bytes()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"code\":\"US\""), "{response}");

    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "did not exit after draining");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "exit status {exit:?}");
}

/// Every background task (jobs, the HTTP-wide limiter's cleanup) ends with
/// the server: none outlives the shutdown signal.
#[tokio::test]
async fn no_background_task_outlives_shutdown() {
    use maestro_hub::app;
    let metrics = tokio::runtime::Handle::current().metrics();
    let (url, _tmp) = fresh_database().await;
    let settings =
        maestro_hub::config::Settings::from_args(crate::helpers::default_args(&url)).unwrap();
    let db = app::connect_and_migrate(&settings).await.unwrap();
    let built = app::build(settings, db).await.unwrap();
    let state = built.state.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app::serve(built, listener, async {
        let _ = rx.await;
    }));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        metrics.num_alive_tasks() >= 3,
        "the jobs and the cleanup run"
    );
    tx.send(()).unwrap();
    server.await.unwrap().unwrap();
    state.domain.db.clone().close().await.unwrap();
    drop(state);
    let deadline = Instant::now() + Duration::from_secs(5);
    while metrics.num_alive_tasks() > 0 {
        assert!(
            Instant::now() < deadline,
            "{} tasks still alive after shutdown",
            metrics.num_alive_tasks()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn sign_in(port: u16, password: &str) -> String {
    let v: serde_json::Value = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/graphql"))
        .json(&serde_json::json!({
            "query": "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }",
            "variables": { "e": "admin@example.com", "p": password }
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["data"]["login"]["accessToken"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_string()
}

/// On SIGTERM an open subscription gets a close frame with 1012 (service
/// restart), which `graphql-ws` clients answer by reconnecting.
#[tokio::test]
async fn sigterm_closes_an_open_subscription_with_1012() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("app.db").display());
    let (mut child, port, password) = crate::helpers::start_binary(&url, "admin@example.com", &[]);
    let token = sign_in(port, &password).await;

    let mut req = format!("ws://127.0.0.1:{port}/graphql/ws")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let init = serde_json::json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } });
    ws.send(Message::text(init.to_string())).await.unwrap();
    let ack = ws.next().await.unwrap().unwrap();
    assert!(ack.to_text().unwrap().contains("connection_ack"), "{ack}");
    let sub = serde_json::json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { bookingUpdated { id status } }" } });
    ws.send(Message::text(sub.to_string())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(code, Some(1012));
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "did not exit");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "exit status {exit:?}");
}

/// A production start with a bad configuration stops before it connects:
/// the database it was given stays empty (PostgreSQL) or is never created
/// (SQLite, which production refuses anyway).
#[tokio::test]
async fn a_refused_production_start_touches_no_database() {
    let (url, tmp) = fresh_database().await;
    let out = Command::new(env!("CARGO_BIN_EXE_maestro-hub"))
        .arg("serve")
        .env_clear()
        .env("APP_ENV", "production")
        .env("DATABASE_URL", &url)
        .env("JWT_SECRET", crate::helpers::random_secret())
        .env("CORS_ALLOWED_ORIGINS", "https://app.maestrohub.example")
        // No Stripe or Resend keys: refused.
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("STRIPE_SECRET_KEY"), "{stderr}");
    match tmp {
        Some(dir) => assert!(
            std::fs::read_dir(dir.path()).unwrap().next().is_none(),
            "no SQLite file was created"
        ),
        None => {
            use sea_orm::ConnectionTrait;
            let db = sea_orm::Database::connect(&url).await.unwrap();
            let rows = db
                .query_all_raw(sea_orm::Statement::from_string(
                    sea_orm::DatabaseBackend::Postgres,
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
                ))
                .await
                .unwrap();
            assert!(rows.is_empty(), "{} tables were created", rows.len());
        }
    }
}
