//! `/metrics`: every figure moves when its event happens, counters are
//! typed as counters, labels stay bounded, and the endpoint is closed where
//! it must be.

use std::time::Duration;

use serde_json::json;

use crate::bookings::{CANCEL, confirmed, consumer, day_slot, hold, open_coach};
use crate::helpers::{TestApp, free_port, random_secret, spawn_app, spawn_app_with};
use crate::live::{close_code, subscribe};

pub async fn scrape(app: &TestApp) -> String {
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

/// The value of one series (0 when it is not there yet).
pub fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

fn typed(text: &str, name: &str, kind: &str) -> bool {
    text.contains(&format!("# TYPE {name} {kind}\n"))
}

#[tokio::test]
async fn each_figure_moves_when_its_event_happens() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    let before = scrape(&app).await;

    // A hold, a paid booking, and its cancellation with a full refund.
    let id = confirmed(
        &app,
        &parent,
        &coach,
        day_slot(chrono::Utc::now() + chrono::Duration::days(4)),
    )
    .await;
    let v = app
        .gql_as(
            Some(&parent),
            CANCEL,
            json!({ "id": id, "r": "Change of plans" }),
        )
        .await;
    assert_eq!(v["data"]["cancelBooking"]["status"], "CANCELLED", "{v}");
    // A hold refused changes no business figure.
    let refused = hold(&app, &parent, "no-such-coach", chrono::Utc::now(), 60).await;
    assert!(refused["errors"].is_array(), "{refused}");
    // An unknown route.
    let r = app.client.get(app.url("/nowhere")).send().await.unwrap();
    assert_eq!(r.status(), 404);

    let after = scrape(&app).await;
    let moved = |series: &str| value(&after, series) - value(&before, series);
    assert_eq!(moved("maestro_holds_created_total"), 1.0, "{after}");
    for change in ["created", "confirmed", "cancelled"] {
        assert_eq!(
            moved(&format!(
                "maestro_booking_changes_total{{change=\"{change}\"}}"
            )),
            1.0,
            "{change}: {after}"
        );
    }
    assert_eq!(
        moved("maestro_payments_total{outcome=\"succeeded\"}"),
        1.0,
        "{after}"
    );
    assert_eq!(
        moved("maestro_refunds_total{outcome=\"decided\"}"),
        1.0,
        "{after}"
    );
    assert_eq!(
        moved("maestro_refunds_total{outcome=\"accepted\"}"),
        1.0,
        "{after}"
    );
    assert!(
        moved("maestro_http_requests_total{route=\"/graphql\",status=\"200\"}") >= 4.0,
        "{after}"
    );
    assert_eq!(
        moved("maestro_http_requests_total{route=\"/dev/checkout/{payment_id}\",status=\"200\"}"),
        1.0,
        "{after}"
    );
    assert_eq!(
        moved("maestro_http_requests_total{route=\"unmatched\",status=\"404\"}"),
        1.0,
        "{after}"
    );
    assert!(after.contains("maestro_http_request_duration_seconds_bucket{route=\"/graphql\""));

    // Counters are counters, gauges gauges.
    for name in [
        "maestro_http_requests_total",
        "maestro_graphql_requests_total",
        "maestro_db_statements_total",
        "maestro_search_index_loads_total",
        "maestro_holds_created_total",
        "maestro_booking_changes_total",
        "maestro_payments_total",
        "maestro_refunds_total",
        "process_cpu_seconds_total",
    ] {
        assert!(typed(&after, name, "counter"), "{name}: {after}");
    }
    for name in [
        "maestro_websockets_open",
        "maestro_subscriptions_active",
        "maestro_db_pool_connections",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(typed(&after, name, "gauge"), "{name}: {after}");
    }
    assert!(value(&after, "process_resident_memory_bytes") > 1e6);
    assert!(
        after.contains(&format!(
            "maestro_build_info{{revision=\"{}\",version=\"{}\"}} 1",
            maestro_hub::GIT_REVISION,
            env!("CARGO_PKG_VERSION")
        )),
        "{after}"
    );
    assert_ne!(maestro_hub::GIT_REVISION, "", "a revision or `unknown`");
}

#[tokio::test]
async fn sockets_and_subscriptions_are_counted_while_open() {
    let app = spawn_app().await;
    let parent = consumer(&app, "parent@example.com").await;
    let open = |t: &str| value(t, "maestro_websockets_open");
    let running = |t: &str| value(t, "maestro_subscriptions_active");
    let mut ws = subscribe(&app, &parent, "subscription { bookingUpdated { id } }").await;
    let during = scrape(&app).await;
    assert_eq!(open(&during), 1.0, "{during}");
    assert_eq!(running(&during), 1.0, "{during}");
    futures_util::SinkExt::close(&mut ws).await.unwrap();
    let _ = close_code(&mut ws).await;
    let mut after = String::new();
    for _ in 0..50 {
        after = scrape(&app).await;
        if open(&after) == 0.0 && running(&after) == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(open(&after), 0.0, "{after}");
    assert_eq!(running(&after), 0.0, "{after}");
}

#[tokio::test]
async fn refusals_are_counted_by_limit() {
    // The sign-in bucket (5 a minute) refuses the sixth to eighth attempt.
    let app = spawn_app_with(|a| a.rate_limit_general_per_minute = 1000).await;
    let mut field_refusals = 0;
    for _ in 0..8 {
        let v = app
            .gql(
                "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }",
                json!({ "e": "nobody@example.com", "p": "wrong-password-123" }),
            )
            .await;
        if v["errors"][0]["extensions"]["code"] == "RATE_LIMITED" {
            assert!(v["errors"][0]["path"].is_array(), "{v}");
            field_refusals += 1;
        }
    }
    assert_eq!(field_refusals, 3);
    let m = scrape(&app).await;
    assert_eq!(
        value(&m, "maestro_rate_limited_total{limit=\"login_email\"}")
            + value(&m, "maestro_rate_limited_total{limit=\"login_ip\"}"),
        3.0,
        "{m}"
    );
    assert_eq!(value(&m, "maestro_rate_limited_total{limit=\"http\"}"), 0.0);

    // Past five requests a minute the HTTP-wide limit answers 429.
    let app = spawn_app_with(|a| a.rate_limit_general_per_minute = 5).await;
    for _ in 0..8 {
        app.post(json!({ "query": "{ markets { code } }" }), None)
            .await;
    }
    let m = scrape(&app).await;
    assert_eq!(
        value(&m, "maestro_rate_limited_total{limit=\"http\"}"),
        3.0,
        "{m}"
    );
    assert_eq!(
        value(
            &m,
            "maestro_http_requests_total{route=\"/graphql\",status=\"429\"}"
        ),
        3.0,
        "{m}"
    );
}

#[tokio::test]
async fn invented_operation_names_cannot_crowd_out_known_ones() {
    let app = spawn_app_with(|a| a.rate_limit_general_per_minute = 1000).await;
    for i in 0..130 {
        app.post(
            json!({ "query": format!("query Invented{i} {{ markets {{ code }} }}") }),
            None,
        )
        .await;
    }
    // A name of the shipped operations still has its own label.
    app.post(
        json!({ "query": "query Reference { markets { code } categories { slug } }" }),
        None,
    )
    .await;
    let m = scrape(&app).await;
    assert!(
        m.contains("maestro_graphql_requests_total{operation=\"Reference\",outcome=\"ok\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("maestro_graphql_requests_total{operation=\"other\",outcome=\"ok\"} 30"),
        "{m}"
    );
    let labels = m
        .lines()
        .filter(|l| l.starts_with("maestro_graphql_requests_total{"))
        .count();
    assert!(labels <= 102, "{labels} labels");
}

#[tokio::test]
async fn the_main_port_serves_metrics_only_with_the_token() {
    let token = random_secret();
    let t = token.clone();
    let app = spawn_app_with(move |a| a.metrics_token = Some(t)).await;
    let url = app.url("/metrics");
    let none = app.client.get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    let wrong = app
        .client
        .get(&url)
        .bearer_auth(format!("{token}x"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = app
        .client
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    assert!(
        right
            .text()
            .await
            .unwrap()
            .contains("maestro_http_requests_total")
    );

    // A short token is refused at start.
    let mut args = crate::helpers::default_args("sqlite::memory:");
    args.metrics_token = Some("short".into());
    let e = maestro_hub::config::Settings::from_args(args)
        .err()
        .unwrap();
    assert!(e.to_string().contains("METRICS_TOKEN"), "{e}");
}

#[tokio::test]
async fn a_metrics_listener_of_its_own_closes_the_main_port() {
    let port = free_port();
    let app = spawn_app_with(move |a| {
        a.metrics_addr = Some(format!("127.0.0.1:{port}").parse().unwrap())
    })
    .await;
    let main = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(main.status(), 404);
    let mut own = None;
    for _ in 0..50 {
        if let Ok(r) = app
            .client
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
        {
            own = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let own = own.expect("the metrics listener answers");
    assert_eq!(own.status(), 200);
    assert!(own.text().await.unwrap().contains("maestro_build_info"));
    // The API is not on it.
    let api = app
        .client
        .post(format!("http://127.0.0.1:{port}/graphql"))
        .json(&json!({ "query": "{ markets { code } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 404);
}
