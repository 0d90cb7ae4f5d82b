//! `GET /graphql/ws`: GraphQL subscriptions over `graphql-transport-ws`.
//!
//! The server reads the `connection_init` message itself before handing the
//! socket to async-graphql, so that a missing or bad token closes the socket
//! with 4401 (Unauthorized), as the `graphql-ws` client expects, and a
//! client that never initialises is closed with 4408 after ten seconds.

use std::net::SocketAddr;
use std::time::Duration;

use async_graphql::Data;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::StreamExt;

use crate::domain::auth;
use crate::graphql::loaders::{Loaders, Uncached};
use crate::graphql::{AuthState, RequestCtx};
use crate::http::graphql::client_ip;
use crate::http::router::HttpState;

pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn graphql_ws(
    State(http): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let ip = client_ip(&headers, Some(peer.ip()), http.state.settings.trust_proxy);
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        // Subscription messages are small; a large frame is an attack.
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| serve(http, socket, protocol, ip))
}

async fn close(mut socket: WebSocket, code: u16, reason: &'static str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

/// The bearer token of a `connection_init` message, if that is what it is.
fn init_token(text: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    if v["type"] != "connection_init" {
        return None;
    }
    let raw = v["payload"]["authorization"]
        .as_str()
        .or_else(|| v["payload"]["Authorization"].as_str())?;
    raw.strip_prefix("Bearer ").map(|t| t.trim().to_string())
}

async fn serve(
    http: HttpState,
    mut socket: WebSocket,
    protocol: GraphQLProtocol,
    ip: Option<std::net::IpAddr>,
) {
    let first = tokio::time::timeout(INIT_TIMEOUT, async {
        loop {
            match socket.recv().await {
                Some(Ok(Message::Text(t))) => return Some(t.to_string()),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                _ => return None,
            }
        }
    })
    .await;
    let text = match first {
        Ok(Some(t)) => t,
        Ok(None) => return,
        Err(_) => return close(socket, 4408, "Connection initialisation timeout").await,
    };
    let Some(token) = init_token(&text) else {
        return close(socket, 4401, "Unauthorized").await;
    };
    let state = &http.state;
    let user = match auth::authenticate(&state.domain.db, &state.domain.auth, &token).await {
        Ok(u) => u,
        Err(_) => return close(socket, 4401, "Unauthorized").await,
    };
    let mut data = Data::default();
    data.insert(RequestCtx {
        ip,
        auth: AuthState::User(Box::new(user)),
    });
    // The socket's loaders outlive each event: what changes per event is
    // loaded afresh.
    data.insert(Loaders::new(&state.domain.db, &state.review_cache));
    data.insert(Uncached);
    let (sink, stream) = socket.split();
    // Hand async-graphql the init message we read, then the rest.
    let replay =
        futures_util::stream::once(async move { Ok(Message::Text(text.into())) }).chain(stream);
    GraphQLWebSocket::new_with_pair(sink, replay, http.schema.clone(), protocol)
        .on_connection_init(move |_| async move { Ok(data) })
        .keepalive_timeout(Duration::from_secs(60))
        .serve()
        .await;
}
