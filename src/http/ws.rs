//! `GET /graphql/ws`: GraphQL over `graphql-transport-ws`.
//!
//! The server reads `connection_init` itself, so a missing or bad token
//! closes the socket with 4401 and a client that never initialises is
//! closed with 4408 after ten seconds. After that this module stands
//! between the socket and async-graphql's protocol engine:
//!
//! - the session is re-checked: every message to the client first asks
//!   whether the token's session ended here (suspension, password change,
//!   logout) or the token expired, and the database is asked every
//!   [`RECHECK`]; a socket whose session ended is closed with 4403 and
//!   receives nothing more (nor runs anything more);
//! - on shutdown every socket is closed with 1012 (restarting);
//! - each `subscribe` spends the client IP's HTTP-wide budget (refused
//!   with a `RATE_LIMITED` error for that id), a duplicate id closes the
//!   socket with 4409, and more than `WS_MAX_SUBSCRIPTIONS` live ones with
//!   4429; one user may hold `WS_MAX_SOCKETS_PER_USER` sockets (4429);
//! - the server pings every [`PING_EVERY`], so dead peers are noticed.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::Data;
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, WebSocketProtocols, WsMessage};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use crate::domain::auth;
use crate::graphql::loaders::{Loaders, Uncached};
use crate::graphql::{AuthState, RequestCtx};
use crate::http::graphql::client_ip;
use crate::http::router::HttpState;
use crate::metrics::{Limit, Metrics};

pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an open socket asks the database whether its session stands
/// (changes made by this instance reach it at once; this is for the
/// others'), staggered so sockets do not ask all at once.
pub const RECHECK: Duration = Duration::from_secs(4);
/// Replies a socket may have queued before it is closed as a flood.
const QUEUED_REPLIES: usize = 32;
pub const PING_EVERY: Duration = Duration::from_secs(30);

/// Open sockets per user.
#[derive(Default)]
pub struct SocketCounts(Mutex<HashMap<String, usize>>);

/// One socket's place in [`SocketCounts`]; given back when dropped.
struct SocketSlot {
    counts: Arc<SocketCounts>,
    user_id: String,
}

impl SocketCounts {
    fn take(counts: &Arc<SocketCounts>, user_id: &str, max: usize) -> Option<SocketSlot> {
        let mut map = counts.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(user_id.to_string()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(SocketSlot {
            counts: counts.clone(),
            user_id: user_id.to_string(),
        })
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut map = self.counts.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.user_id) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.user_id);
            }
        }
    }
}

pub async fn graphql_ws(
    State(http): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    // The subprotocol the client offers first among those we speak.
    let Some(protocol) = headers
        .get(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .find_map(|p| p.trim().parse::<WebSocketProtocols>().ok())
        })
    else {
        return crate::http::graphql::error_body(
            axum::http::StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            "offer the graphql-transport-ws subprotocol",
        );
    };
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

/// Why the server closes a socket.
#[derive(Debug, Clone, Copy)]
enum Closing {
    SessionEnded,
    DuplicateId,
    TooManySubscriptions,
    Restarting,
}

impl Closing {
    fn frame(self) -> Message {
        let (code, reason) = match self {
            Closing::SessionEnded => (4403, "Forbidden: the session has ended"),
            Closing::DuplicateId => (4409, "Subscriber for this id already exists"),
            Closing::TooManySubscriptions => (4429, "Too many subscriptions"),
            Closing::Restarting => (1012, "Server restarting"),
        };
        Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }))
    }
}

/// What the reading side tells the writing side.
enum Control {
    Close(Closing),
    Send(Message),
}

/// Operations the client has started and not yet seen completed.
#[derive(Default)]
struct Live {
    ids: Mutex<HashSet<String>>,
    /// Counts running operations and refusals (none in unit tests).
    metrics: Option<Arc<Metrics>>,
}

type LiveIds = Arc<Live>;

impl Live {
    fn new(metrics: Arc<Metrics>) -> LiveIds {
        Arc::new(Live {
            ids: Mutex::default(),
            metrics: Some(metrics),
        })
    }

    fn start(&self, ids: &mut HashSet<String>, id: String) {
        if ids.insert(id)
            && let Some(m) = &self.metrics
        {
            m.subscriptions().inc();
        }
    }

    fn finish(&self, id: &str) {
        if live(self).remove(id)
            && let Some(m) = &self.metrics
        {
            m.subscriptions().dec();
        }
    }

    fn refused(&self) {
        if let Some(m) = &self.metrics {
            m.rate_limited(Limit::WebSocket);
        }
    }
}

impl Drop for Live {
    /// The socket ended: whatever ran on it has stopped.
    fn drop(&mut self) {
        if let Some(m) = &self.metrics {
            m.subscriptions().sub(live(self).len() as i64);
        }
    }
}

fn live(ids: &Live) -> std::sync::MutexGuard<'_, HashSet<String>> {
    ids.ids.lock().unwrap_or_else(|e| e.into_inner())
}

/// Checks one client message before async-graphql sees it; `false` drops
/// it (the reason has been sent to the writer).
fn admit(
    text: &str,
    ids: &LiveIds,
    max_subscriptions: usize,
    budget_ok: impl FnOnce() -> bool,
    control: &mpsc::Sender<Control>,
) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
        return true; // the protocol engine answers malformed messages
    };
    let id = v["id"].as_str().unwrap_or_default().to_string();
    // `start` and `stop` are the older protocol's names, which the engine
    // also takes.
    match v["type"].as_str() {
        Some("subscribe" | "start") => {
            let live_ids = ids;
            let mut ids = live(live_ids);
            if ids.contains(&id) {
                close_with(control, Closing::DuplicateId);
                return false;
            }
            if ids.len() >= max_subscriptions {
                live_ids.refused();
                close_with(control, Closing::TooManySubscriptions);
                return false;
            }
            if !budget_ok() {
                live_ids.refused();
                let error = serde_json::json!({
                    "id": id,
                    "type": "error",
                    "payload": [{
                        "message": "too many requests; slow down",
                        "extensions": { "code": "RATE_LIMITED" }
                    }]
                });
                if control
                    .try_send(Control::Send(Message::Text(error.to_string().into())))
                    .is_err()
                {
                    // Refusals pile up faster than the client reads them.
                    close_with(control, Closing::TooManySubscriptions);
                }
                return false;
            }
            live_ids.start(&mut ids, id);
            true
        }
        Some("complete" | "stop") => {
            ids.finish(&id);
            true
        }
        _ => true,
    }
}

/// Asks the writer to close. A full queue means replies are already
/// waiting unread; the reader ends, which ends the socket all the same.
fn close_with(control: &mpsc::Sender<Control>, why: Closing) {
    let _ = control.try_send(Control::Close(why));
}

/// The server finished an operation (`complete` or `error` for its id).
fn note_finished(text: &str, ids: &LiveIds) {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text)
        && matches!(v["type"].as_str(), Some("complete" | "error"))
        && let Some(id) = v["id"].as_str()
    {
        ids.finish(id);
    }
}

async fn serve(
    http: HttpState,
    mut socket: WebSocket,
    protocol: WebSocketProtocols,
    ip: Option<IpAddr>,
) {
    let _open = http.state.metrics.websocket_opened();
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
    let state = http.state.clone();
    let ctx = state.domain.clone();
    let user = match auth::authenticate(&ctx.db, &ctx.auth, &token).await {
        Ok(u) => u,
        Err(_) => return close(socket, 4401, "Unauthorized").await,
    };
    let limits = &state.settings.limits;
    let Some(_slot) = SocketCounts::take(&http.sockets, &user.id, limits.ws_max_sockets_per_user)
    else {
        state.metrics.rate_limited(Limit::WebSocket);
        return close(socket, 4429, "Too many sockets").await;
    };

    let mut data = Data::default();
    data.insert(RequestCtx {
        ip,
        auth: AuthState::User(Box::new(user.clone())),
    });
    // The socket's loaders outlive each event: what changes per event is
    // loaded afresh.
    data.insert(Loaders::new(&ctx.db, &state.review_cache));
    data.insert(Uncached);

    let ids = Live::new(state.metrics.clone());
    let (control, mut controls) = mpsc::channel::<Control>(QUEUED_REPLIES);
    let (mut sink, stream) = socket.split();

    // Client -> engine: the init message we read, then the rest, each
    // admitted first. A message from an ended session runs nothing.
    let input = {
        let (ids, control, user, ctx, budget) = (
            ids.clone(),
            control.clone(),
            user.clone(),
            ctx.clone(),
            http.ip_budget.clone(),
        );
        let max = limits.ws_max_subscriptions;
        futures_util::stream::iter([Ok(Message::Text(text.into()))])
            .chain(stream)
            .take_while(|m| std::future::ready(m.is_ok()))
            .filter_map(move |m| {
                // Text and binary frames alike go through every check.
                let text = match m {
                    Ok(Message::Text(t)) => Some(t.to_string()),
                    Ok(Message::Binary(b)) => String::from_utf8(b.to_vec()).ok(),
                    _ => None,
                };
                let out = text.and_then(|t| {
                    if auth::session_ended_here(&ctx, &user) {
                        close_with(&control, Closing::SessionEnded);
                        None
                    } else if admit(&t, &ids, max, || ip.is_none_or(|ip| budget(ip)), &control) {
                        Some(t.into_bytes())
                    } else {
                        None
                    }
                });
                std::future::ready(out)
            })
    };
    let schema = http.schema.clone();
    let mut engine = async_graphql::http::WebSocket::new(schema, input, protocol)
        .on_connection_init(move |_| async move { Ok(data) })
        .keepalive_timeout(Duration::from_secs(60));

    let stagger = Duration::from_millis(rand::random_range(0..RECHECK.as_millis() as u64));
    let mut recheck = tokio::time::interval_at(tokio::time::Instant::now() + stagger, RECHECK);
    let mut stop = http.stop.clone();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut revoked = ctx.revocations.subscribe();
    let expires = tokio::time::Instant::now()
        + Duration::from_secs(
            u64::try_from(user.token_expires_at - chrono::Utc::now().timestamp()).unwrap_or(0),
        );
    let expiry = tokio::time::sleep_until(expires);
    tokio::pin!(expiry);

    let closing: Option<Closing> = loop {
        tokio::select! {
            out = engine.next() => match out {
                Some(WsMessage::Text(t)) => {
                    if auth::session_ended_here(&ctx, &user) {
                        break Some(Closing::SessionEnded);
                    }
                    note_finished(&t, &ids);
                    if sink.send(Message::Text(t.into())).await.is_err() {
                        break None;
                    }
                }
                Some(WsMessage::Close(code, reason)) => {
                    let _ = sink
                        .send(Message::Close(Some(CloseFrame { code, reason: reason.into() })))
                        .await;
                    break None;
                }
                None => break None,
            },
            Some(c) = controls.recv() => match c {
                Control::Close(why) => break Some(why),
                Control::Send(m) => {
                    if sink.send(m).await.is_err() {
                        break None;
                    }
                }
            },
            who = revoked.recv() => {
                let mine = match who {
                    Ok(id) => id == user.id,
                    // Missed some: look anyway.
                    Err(_) => true,
                };
                if mine && auth::session_ended_here(&ctx, &user) {
                    break Some(Closing::SessionEnded);
                }
            }
            _ = recheck.tick() => {
                match auth::still_signed_in(&ctx, &user).await {
                    Ok(true) => {}
                    Ok(false) => break Some(Closing::SessionEnded),
                    // The database is away: keep the socket, ask again.
                    Err(e) => tracing::warn!(error = ?e, "socket session check failed"),
                }
            }
            () = &mut expiry => break Some(Closing::SessionEnded),
            _ = stop.changed() => break Some(Closing::Restarting),
            _ = ping.tick() => {
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break None;
                }
            }
        }
    };
    if let Some(why) = closing {
        let _ = sink.send(why.frame()).await;
    }
    let _ = sink.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admitting_subscriptions() {
        let ids: LiveIds = Arc::default();
        let (tx, mut rx) = mpsc::channel(8);
        let sub =
            |id: &str| format!(r#"{{"id":"{id}","type":"subscribe","payload":{{"query":"x"}}}}"#);
        assert!(admit(&sub("1"), &ids, 2, || true, &tx));
        assert!(!admit(&sub("1"), &ids, 2, || true, &tx), "duplicate");
        assert!(matches!(
            rx.try_recv(),
            Ok(Control::Close(Closing::DuplicateId))
        ));
        assert!(!admit(&sub("2"), &ids, 2, || false, &tx), "over budget");
        assert!(matches!(rx.try_recv(), Ok(Control::Send(_))));
        assert!(admit(&sub("2"), &ids, 2, || true, &tx));
        assert!(!admit(&sub("3"), &ids, 2, || true, &tx), "third of two");
        assert!(matches!(
            rx.try_recv(),
            Ok(Control::Close(Closing::TooManySubscriptions))
        ));
        note_finished(r#"{"id":"1","type":"complete"}"#, &ids);
        assert!(admit(&sub("3"), &ids, 2, || true, &tx));
    }
}
