//! `bookingUpdated` over graphql-transport-ws with a real WebSocket client.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::bookings::{BOOK, at, consumer, hold, open_coach};
use crate::helpers::{TestApp, spawn_app};

type Ws =
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

async fn subscribe(app: &TestApp, token: &str, query: &str) -> Ws {
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

async fn next_json(ws: &mut Ws, wait: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(wait, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return Some(serde_json::from_str(&t).unwrap()),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            _ => return None,
        }
    }
}

async fn statuses(ws: &mut Ws, wait: Duration) -> Vec<String> {
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

async fn close_code(ws: &mut Ws) -> Option<CloseCode> {
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
