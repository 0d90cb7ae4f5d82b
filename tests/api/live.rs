//! `bookingUpdated` over graphql-transport-ws with a real WebSocket client.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::bookings::{BOOK, at, consumer, hold, open_coach};
use crate::helpers::{TestApp, spawn_app};

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(app: &TestApp, init: Value) -> Ws {
    let mut req = format!("ws://{}/graphql/ws", app.base.trim_start_matches("http://"))
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, res) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(
        res.headers()["sec-websocket-protocol"],
        "graphql-transport-ws"
    );
    ws.send(Message::text(init.to_string())).await.unwrap();
    ws
}

pub async fn subscribe(app: &TestApp, token: &str, query: &str) -> Ws {
    let mut ws = open(app, json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } })).await;
    let ack = next_json(&mut ws, Duration::from_secs(5))
        .await
        .expect("ack");
    assert_eq!(ack["type"], "connection_ack");
    ws.send(Message::text(
        json!({ "id": "1", "type": "subscribe", "payload": { "query": query } }).to_string(),
    ))
    .await
    .unwrap();
    // Let the server start the stream before anything happens.
    tokio::time::sleep(Duration::from_millis(300)).await;
    ws
}

pub async fn next_json(ws: &mut Ws, wait: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(wait, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return Some(serde_json::from_str(&t).unwrap()),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            _ => return None,
        }
    }
}

pub async fn statuses(ws: &mut Ws, wait: Duration) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(v) = next_json(ws, wait).await {
        if v["type"] == "next" {
            out.push(
                v["payload"]["data"]["bookingUpdated"]["status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
    }
    out
}

pub async fn close_code(ws: &mut Ws) -> Option<CloseCode> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| f.code),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

#[tokio::test]
async fn participants_see_every_change_and_strangers_nothing() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (coach_token, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    let stranger = consumer(&app, "stranger@example.com").await;
    let q = "subscription { bookingUpdated { id status } }";
    let mut mine = subscribe(&app, &parent, q).await;
    let mut coachs = subscribe(&app, &coach_token, q).await;
    let mut theirs = subscribe(&app, &stranger, q).await;

    let h = hold(&app, &parent, &coach, at(3, 9), 60).await;
    let b = app
        .gql_as(
            Some(&parent),
            BOOK,
            json!({ "h": h["data"]["createHold"]["id"] }),
        )
        .await;
    let id = b["data"]["bookHold"]["id"].as_str().unwrap().to_string();
    let url = b["data"]["bookHold"]["payment"]["checkoutUrl"]
        .as_str()
        .unwrap()
        .to_string();
    app.client
        .post(app.url(&url[url.find("/dev/").unwrap()..]))
        .send()
        .await
        .unwrap();
    app.gql_as(
        Some(&parent),
        "mutation($id: ID!) { cancelBooking(bookingId: $id, reason: \"Plans changed\") { status } }",
        json!({ "id": id }),
    )
    .await;

    let want = ["PENDING_PAYMENT", "CONFIRMED", "CANCELLED"];
    assert_eq!(statuses(&mut mine, Duration::from_secs(2)).await, want);
    assert_eq!(statuses(&mut coachs, Duration::from_secs(1)).await, want);
    assert!(
        statuses(&mut theirs, Duration::from_secs(1))
            .await
            .is_empty(),
        "a stranger sees nothing"
    );

    // Subscribing to someone else's booking by id is refused.
    let mut ws = subscribe(
        &app,
        &stranger,
        &format!("subscription {{ bookingUpdated(bookingId: \"{id}\") {{ id }} }}"),
    )
    .await;
    let v = next_json(&mut ws, Duration::from_secs(2))
        .await
        .expect("error message");
    assert_eq!(
        v["payload"]["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{v}"
    );
    assert!(v["payload"]["data"].is_null());
}

#[tokio::test]
async fn a_bad_or_missing_token_is_closed_with_4401() {
    let app = spawn_app().await;
    for init in [
        json!({ "type": "connection_init", "payload": { "authorization": "Bearer not-a-token" } }),
        json!({ "type": "connection_init", "payload": {} }),
        json!({ "type": "connection_init" }),
        json!({ "type": "subscribe", "id": "1", "payload": { "query": "subscription { bookingUpdated { id } }" } }),
    ] {
        let mut ws = open(&app, init.clone()).await;
        assert_eq!(
            close_code(&mut ws).await,
            Some(CloseCode::Library(4401)),
            "{init}"
        );
    }
}

#[tokio::test]
async fn a_booking_the_sweep_lapses_reaches_subscribers_with_fresh_fields() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    let q = "subscription { bookingUpdated { id status payment { status } } }";
    let mut ws = subscribe(&app, &parent, q).await;

    let h = hold(&app, &parent, &coach, at(3, 9), 60).await;
    let b = app
        .gql_as(
            Some(&parent),
            BOOK,
            json!({ "h": h["data"]["createHold"]["id"] }),
        )
        .await;
    let id = b["data"]["bookHold"]["id"].as_str().unwrap().to_string();
    let first = next_json(&mut ws, Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        first["payload"]["data"]["bookingUpdated"]["status"],
        "PENDING_PAYMENT"
    );

    // The payment window closes and the job's sweep cancels the booking.
    sea_orm::ConnectionTrait::execute_unprepared(
        &app.state.domain.db,
        &format!("UPDATE bookings SET payment_deadline = created_at WHERE id = '{id}'"),
    )
    .await
    .unwrap();
    maestro_hub::domain::booking::sweep(&app.state.domain)
        .await
        .unwrap();
    let event = next_json(&mut ws, Duration::from_secs(5))
        .await
        .expect("the sweep's change is published");
    let booking = &event["payload"]["data"]["bookingUpdated"];
    assert_eq!(booking["id"], id.as_str());
    assert_eq!(booking["status"], "CANCELLED");
    // Not the payment as the socket first saw it.
    assert_eq!(booking["payment"]["status"], "FAILED", "{event}");
}

/// An initialised socket of `token` (acknowledged).
async fn ready(app: &TestApp, token: &str) -> Ws {
    let mut ws = open(
        app,
        json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } }),
    )
    .await;
    let ack = next_json(&mut ws, Duration::from_secs(5))
        .await
        .expect("ack");
    assert_eq!(ack["type"], "connection_ack");
    ws
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

fn sub(id: &str) -> Value {
    json!({ "id": id, "type": "subscribe", "payload": { "query": "subscription { bookingUpdated { id status } }" } })
}

/// Waits for the close frame, failing if any event arrives first.
async fn closed_without_events(ws: &mut Ws, wait: Duration) -> Option<CloseCode> {
    loop {
        match tokio::time::timeout(wait, ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| f.code),
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                assert_ne!(v["type"], "next", "an event after the session ended: {v}");
            }
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

#[tokio::test]
async fn a_suspension_closes_the_socket_before_any_further_event() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, coach) = open_coach(&app, &admin, "coach@example.com").await;
    let parent = consumer(&app, "parent@example.com").await;
    let mut ws = ready(&app, &parent).await;
    send(&mut ws, sub("1")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let me = app.gql_as(Some(&parent), "{ me { id } }", json!({})).await;
    let id = me["data"]["me"]["id"].as_str().unwrap().to_string();
    let h = hold(&app, &parent, &coach, at(3, 9), 60).await;
    let b = app
        .gql_as(
            Some(&parent),
            BOOK,
            json!({ "h": h["data"]["createHold"]["id"] }),
        )
        .await;
    let booking = b["data"]["bookHold"]["id"].as_str().unwrap().to_string();
    let first = next_json(&mut ws, Duration::from_secs(5)).await.unwrap();
    assert_eq!(first["type"], "next");

    let started = std::time::Instant::now();
    let v = app
        .gql_as(
            Some(&admin),
            "mutation($u: ID!) { suspendUser(userId: $u, reason: \"Chargebacks\") { id } }",
            json!({ "u": id }),
        )
        .await;
    assert!(v["errors"].is_null(), "{v}");
    // The coach cancels: an event for the suspended parent's booking.
    let coach_token = app
        .login("coach@example.com", crate::helpers::PASSWORD)
        .await["data"]["login"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    app.gql_as(
        Some(&coach_token),
        "mutation($id: ID!) { cancelBooking(bookingId: $id, reason: \"Account closed\") { status } }",
        json!({ "id": booking }),
    )
    .await;
    assert_eq!(
        closed_without_events(&mut ws, Duration::from_secs(5)).await,
        Some(CloseCode::Library(4403))
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_password_change_or_logout_closes_the_socket_and_runs_nothing_more() {
    let app = spawn_app().await;
    let p = app
        .register("parent@example.com", "CONSUMER", Some("US"))
        .await;
    let token = p["accessToken"].as_str().unwrap().to_string();
    let mut ws = ready(&app, &token).await;
    send(&mut ws, sub("1")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let v = app
        .gql_as(
            Some(&token),
            "mutation { changePassword(currentPassword: \"Tangerine-Koala-42\", newPassword: \"Another-Strong-Pass-7\") }",
            json!({}),
        )
        .await;
    assert_eq!(v["data"]["changePassword"], true, "{v}");
    // A mutation sent on the old socket afterwards is not run.
    send(
        &mut ws,
        json!({ "id": "2", "type": "subscribe", "payload": { "query": "mutation { updateProfile(input: { name: \"Changed\" }) { name } }" } }),
    )
    .await;
    assert_eq!(
        closed_without_events(&mut ws, Duration::from_secs(5)).await,
        Some(CloseCode::Library(4403))
    );
    let l = app
        .login("parent@example.com", "Another-Strong-Pass-7")
        .await;
    let fresh = l["data"]["login"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let refresh = l["data"]["login"]["refreshToken"].as_str();
    let me = app.gql_as(Some(&fresh), "{ me { name } }", json!({})).await;
    assert_ne!(me["data"]["me"]["name"], "Changed", "{me}");

    // Logging out that session closes the sockets opened with its token.
    let mut ws = ready(&app, &fresh).await;
    if let Some(refresh) = refresh {
        let v = app
            .gql_as(
                Some(&fresh),
                "mutation($t: String!) { logout(refreshToken: $t) }",
                json!({ "t": refresh }),
            )
            .await;
        assert_eq!(v["data"]["logout"], true, "{v}");
        assert_eq!(
            closed_without_events(&mut ws, Duration::from_secs(5)).await,
            Some(CloseCode::Library(4403))
        );
    } else {
        panic!("login returns a refresh token: {l}");
    }
}

#[tokio::test]
async fn an_expired_token_closes_its_socket() {
    let app = crate::helpers::spawn_app_with(|a| a.limits.access_token_ttl_seconds = 2).await;
    let parent = consumer(&app, "parent@example.com").await;
    let mut ws = ready(&app, &parent).await;
    send(&mut ws, sub("1")).await;
    let started = std::time::Instant::now();
    assert_eq!(
        closed_without_events(&mut ws, Duration::from_secs(6)).await,
        Some(CloseCode::Library(4403))
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn subscriptions_per_socket_and_ids_are_policed() {
    let app = spawn_app().await;
    let parent = consumer(&app, "parent@example.com").await;
    let mut ws = ready(&app, &parent).await;
    for i in 0..20 {
        send(&mut ws, sub(&i.to_string())).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    send(&mut ws, sub("20")).await;
    assert_eq!(
        closed_without_events(&mut ws, Duration::from_secs(5)).await,
        Some(CloseCode::Library(4429)),
        "the 21st subscription"
    );

    let mut ws = ready(&app, &parent).await;
    send(&mut ws, sub("a")).await;
    send(&mut ws, sub("a")).await;
    assert_eq!(
        closed_without_events(&mut ws, Duration::from_secs(5)).await,
        Some(CloseCode::Library(4409)),
        "a duplicate id"
    );
    // The older protocol's `start`, and binary frames, are policed alike.
    let mut ws = ready(&app, &parent).await;
    let mut start = sub("b");
    start["type"] = json!("start");
    send(&mut ws, start.clone()).await;
    ws.send(Message::binary(start.to_string().into_bytes()))
        .await
        .unwrap();
    assert_eq!(
        closed_without_events(&mut ws, Duration::from_secs(5)).await,
        Some(CloseCode::Library(4409)),
        "a duplicate id by start and by a binary frame"
    );

    // An id the server completed may be used again.
    let mut ws = ready(&app, &parent).await;
    let q =
        json!({ "id": "q", "type": "subscribe", "payload": { "query": "{ markets { code } }" } });
    send(&mut ws, q.clone()).await;
    let mut completed = false;
    while let Some(v) = next_json(&mut ws, Duration::from_secs(2)).await {
        if v["type"] == "complete" {
            completed = true;
            break;
        }
    }
    assert!(completed);
    send(&mut ws, q).await;
    let v = next_json(&mut ws, Duration::from_secs(2)).await.unwrap();
    assert_eq!(v["type"], "next", "{v}");
}

#[tokio::test]
async fn operations_over_a_socket_spend_the_http_budget() {
    let app = crate::helpers::spawn_app_with(|a| a.rate_limit_general_per_minute = 20).await;
    let parent = consumer(&app, "parent@example.com").await;
    let mut ws = ready(&app, &parent).await;
    let mut limited = 0;
    for i in 0..30 {
        let q = json!({ "id": format!("q{i}"), "type": "subscribe", "payload": { "query": "{ markets { code } }" } });
        send(&mut ws, q).await;
    }
    while let Some(v) = next_json(&mut ws, Duration::from_secs(1)).await {
        if v["type"] == "error" {
            assert_eq!(v["payload"][0]["extensions"]["code"], "RATE_LIMITED", "{v}");
            limited += 1;
        }
    }
    assert!(limited >= 10, "{limited} refused of 30 over a budget of 20");
    // And the budget is the HTTP one: plain requests are refused now too.
    let res = app
        .post(json!({ "query": "{ markets { code } }" }), None)
        .await;
    assert_eq!(res.status(), 429);
}

#[tokio::test]
async fn sockets_per_user_are_capped() {
    let app = crate::helpers::spawn_app_with(|a| a.limits.ws_max_sockets_per_user = 2).await;
    let parent = consumer(&app, "parent@example.com").await;
    let _first = ready(&app, &parent).await;
    let _second = ready(&app, &parent).await;
    let mut third = open(
        &app,
        json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {parent}") } }),
    )
    .await;
    assert_eq!(close_code(&mut third).await, Some(CloseCode::Library(4429)));
}
