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
