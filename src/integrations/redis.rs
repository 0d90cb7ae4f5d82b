//! Redis, for several instances behind one load balancer (`REDIS_URL`):
//!
//! - [`RedisRateLimiter`]: every per-field budget (sign-in, registration,
//!   resets, and the fields of `ratelimit::FIELD_LIMITS`) is one GCRA step
//!   per attempt in a Lua script: one round trip, atomic across instances,
//!   on Redis's own clock, with a key that expires when its budget is full
//!   again. While Redis does not answer, each instance spends its own
//!   in-memory budgets instead (never no limit), says so once in the log,
//!   counts it in `/metrics`, and goes back to Redis when it answers.
//! - [`RedisBus`]: booking events are delivered to this instance's
//!   subscribers at once, and published on a channel as a small message
//!   (ids, participants, status) that every other instance delivers to its
//!   own. Losing Redis loses no local delivery; other instances' subscribers
//!   get the latest state with the next event.
//!
//! The `redis` crate (1.x): its `ConnectionManager` is one multiplexed
//! connection that reconnects by itself (Redis pipelines requests, so one
//! connection serves the whole instance); pub/sub has a connection of its
//! own, reopened after a loss.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::Digest;
use tokio::sync::{broadcast, mpsc, watch};

use entity::bookings;
use sea_orm::EntityTrait;

use crate::events::{BookingEvent, EventBus, InProcessBus, WireEvent};
use crate::ratelimit::{Bucket, InMemoryRateLimiter, RateLimiter};

/// The channel booking events travel on.
pub const CHANNEL: &str = "maestro:booking-events";
/// A call that takes longer counts as Redis not answering.
const TIMEOUT: Duration = Duration::from_millis(500);
/// After a failure, Redis is tried again this much later (meanwhile the
/// in-memory limiter answers at once instead of waiting on timeouts).
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The connection to Redis, opened in the background and kept open.
pub struct RedisLink {
    client: redis::Client,
    manager: RwLock<Option<ConnectionManager>>,
    /// Whether other instances' booking events are being received (the
    /// pub/sub connection is subscribed and answered its last ping).
    receiving: AtomicBool,
}

/// How often the pub/sub connection is pinged: a connection dropped
/// silently (an idle timeout in the network) is found within this.
const PUBSUB_PING: Duration = Duration::from_secs(10);

impl RedisLink {
    /// Connects in the background (retrying every second until it
    /// answers, until `stop`); meanwhile [`RedisLink::connection`] is `None`.
    pub fn start(url: &str, mut stop: watch::Receiver<bool>) -> Result<Arc<RedisLink>, String> {
        let client = redis::Client::open(url).map_err(|e| format!("REDIS_URL: {e}"))?;
        let link = Arc::new(RedisLink {
            client: client.clone(),
            manager: RwLock::new(None),
            receiving: AtomicBool::new(false),
        });
        let filled = link.clone();
        tokio::spawn(async move {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(TIMEOUT))
                .set_response_timeout(Some(TIMEOUT))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_secs(2));
            let mut logged = false;
            loop {
                let attempt = tokio::time::timeout(
                    Duration::from_secs(3),
                    ConnectionManager::new_with_config(client.clone(), config.clone()),
                );
                tokio::select! {
                    r = attempt => match r {
                        Ok(Ok(m)) => {
                            *filled.manager.write().unwrap_or_else(|e| e.into_inner()) = Some(m);
                            tracing::info!("connected to Redis");
                            return;
                        }
                        other => {
                            if !logged {
                                let why = match other {
                                    Ok(Err(e)) => e.to_string(),
                                    _ => "timed out".to_string(),
                                };
                                tracing::warn!(error = %why, "Redis does not answer yet; limits stay per instance until it does");
                                logged = true;
                            }
                        }
                    },
                    _ = stop.changed() => return,
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => return,
                }
            }
        });
        Ok(link)
    }

    pub fn connection(&self) -> Option<ConnectionManager> {
        self.manager
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether Redis answers a PING now and other instances' events are
    /// being received (for `/readyz`).
    pub async fn healthy(&self) -> bool {
        self.receiving.load(Ordering::Relaxed) && self.ping().await
    }

    /// Whether Redis answers a PING now.
    pub async fn ping(&self) -> bool {
        let Some(mut c) = self.connection() else {
            return false;
        };
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut c);
        matches!(tokio::time::timeout(TIMEOUT, ping).await, Ok(Ok(_)))
    }
}

/// One GCRA step: KEYS[1] the key; ARGV[1] microseconds per call (the
/// period over the budget), ARGV[2] the budget. Returns {1, 0} when
/// allowed, {0, microseconds to wait} when not. The key holds the
/// theoretical arrival time and expires when the budget is whole again.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local each = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next_tat = tat + each
local allowed_at = next_tat - each * burst
if allowed_at > now then
  return {0, allowed_at - now}
end
redis.call('SET', KEYS[1], next_tat, 'PX', math.ceil((next_tat - now) / 1000) + 1)
return {1, 0}
";

/// Per-field limits shared by every instance through Redis, with the
/// in-memory limiter as the fallback.
pub struct RedisRateLimiter {
    link: Arc<RedisLink>,
    script: redis::Script,
    local: InMemoryRateLimiter,
    /// (microseconds per call, budget) of each bucket.
    quotas: HashMap<Bucket, (u64, u64)>,
    /// Redis is not tried before this instant after a failure.
    resting_until: Mutex<Option<Instant>>,
    degraded: AtomicBool,
    fallbacks: AtomicU64,
}

impl RedisRateLimiter {
    pub fn new(link: Arc<RedisLink>, budget_of: impl Fn(Bucket) -> u32) -> Self {
        let quotas = Bucket::ALL
            .into_iter()
            .map(|b| {
                let budget = u64::from(budget_of(b).max(1));
                let each = (b.period().as_micros() as u64 / budget).max(1);
                (b, (each, budget))
            })
            .collect();
        RedisRateLimiter {
            link,
            script: redis::Script::new(GCRA),
            local: InMemoryRateLimiter::new(&budget_of),
            quotas,
            resting_until: Mutex::new(None),
            degraded: AtomicBool::new(false),
            fallbacks: AtomicU64::new(0),
        }
    }

    fn resting(&self) -> bool {
        let until = self.resting_until.lock().unwrap_or_else(|e| e.into_inner());
        until.is_some_and(|t| Instant::now() < t)
    }

    fn failed(&self, why: &str) {
        *self.resting_until.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Instant::now() + RETRY_AFTER);
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                error = why,
                "Redis does not answer: rate limits are per instance until it does"
            );
        }
    }

    fn answered(&self) {
        if self.degraded.swap(false, Ordering::Relaxed) {
            tracing::info!("Redis answers again: rate limits are shared again");
        }
    }

    async fn shared(&self, bucket: Bucket, key: &str) -> Option<Result<(), Duration>> {
        if self.resting() {
            return None;
        }
        let Some(mut conn) = self.link.connection() else {
            self.failed("not connected");
            return None;
        };
        let (each, budget) = self.quotas.get(&bucket).copied()?;
        // Hashed: no email address or IP is stored in Redis, and keys stay short.
        let digest = hex::encode(sha2::Sha256::digest(key.as_bytes()));
        let redis_key = format!("maestro:rl:{}:{}", bucket.as_str(), &digest[..32]);
        let mut call = self.script.key(redis_key);
        call.arg(each).arg(budget);
        let step = call.invoke_async::<(i64, i64)>(&mut conn);
        match tokio::time::timeout(TIMEOUT, step).await {
            Ok(Ok((1, _))) => {
                self.answered();
                Some(Ok(()))
            }
            Ok(Ok((_, wait_us))) => {
                self.answered();
                Some(Err(Duration::from_micros(wait_us.max(1) as u64)))
            }
            Ok(Err(e)) => {
                self.failed(&e.to_string());
                None
            }
            Err(_) => {
                self.failed("timed out");
                None
            }
        }
    }
}

#[async_trait::async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn hit(&self, bucket: Bucket, key: &str) -> Result<(), Duration> {
        if let Some(answer) = self.shared(bucket, key).await {
            return answer;
        }
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        self.local.hit(bucket, key).await
    }

    fn sweep(&self) {
        self.local.sweep();
    }

    fn shared_state(&self) -> Option<(bool, u64)> {
        Some((
            self.link.connection().is_some() && !self.degraded.load(Ordering::Relaxed),
            self.fallbacks.load(Ordering::Relaxed),
        ))
    }
}

/// Booking events shared by every instance through Redis pub/sub.
pub struct RedisBus {
    local: Arc<InProcessBus>,
    outgoing: mpsc::Sender<String>,
    origin: String,
    /// The outgoing queue overflowed (said once until it drains).
    overflowing: AtomicBool,
}

/// Events waiting to be published; past this a burst is dropped for other
/// instances (never for this one's subscribers).
const OUTGOING: usize = 4096;

impl RedisBus {
    /// `db` reads each remote event's booking once for all this
    /// instance's subscribers.
    pub fn start(
        link: Arc<RedisLink>,
        db: sea_orm::DatabaseConnection,
        stop: watch::Receiver<bool>,
    ) -> Arc<RedisBus> {
        let local = Arc::new(InProcessBus::new());
        let origin = uuid::Uuid::new_v4().to_string();
        let (outgoing, rx) = mpsc::channel(OUTGOING);
        tokio::spawn(publish(link.clone(), rx, stop.clone()));
        tokio::spawn(receive(link, db, local.clone(), origin.clone(), stop));
        Arc::new(RedisBus {
            local,
            outgoing,
            origin,
            overflowing: AtomicBool::new(false),
        })
    }
}

impl EventBus for RedisBus {
    fn publish(&self, event: BookingEvent) {
        if let Ok(text) = serde_json::to_string(&event.wire(&self.origin)) {
            if self.outgoing.try_send(text).is_err() {
                if !self.overflowing.swap(true, Ordering::Relaxed) {
                    tracing::warn!("booking events pile up for Redis; some are not shared");
                }
            } else {
                self.overflowing.store(false, Ordering::Relaxed);
            }
        }
        self.local.publish(event);
    }

    fn subscribe(&self) -> broadcast::Receiver<BookingEvent> {
        self.local.subscribe()
    }
}

async fn publish(
    link: Arc<RedisLink>,
    mut rx: mpsc::Receiver<String>,
    mut stop: watch::Receiver<bool>,
) {
    let mut resting_until: Option<Instant> = None;
    loop {
        let text = tokio::select! {
            m = rx.recv() => match m { Some(t) => t, None => return },
            _ = stop.changed() => return,
        };
        // After a failure, events are dropped at once for a second rather
        // than each waiting out a timeout (other instances' subscribers
        // get the latest state with the next one).
        if resting_until.is_some_and(|t| Instant::now() < t) {
            continue;
        }
        let Some(mut conn) = link.connection() else {
            continue;
        };
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(CHANNEL).arg(text);
        let sent = cmd.query_async::<i64>(&mut conn);
        match tokio::time::timeout(TIMEOUT, sent).await {
            Ok(Ok(_)) => {
                if resting_until.take().is_some() {
                    tracing::info!("sharing booking events through Redis again");
                }
            }
            failed => {
                if resting_until.is_none() {
                    let why = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => "timed out".into(),
                    };
                    tracing::warn!(error = %why, "booking events are not reaching other instances");
                }
                resting_until = Some(Instant::now() + RETRY_AFTER);
            }
        }
    }
}

async fn receive(
    link: Arc<RedisLink>,
    db: sea_orm::DatabaseConnection,
    local: Arc<InProcessBus>,
    origin: String,
    mut stop: watch::Receiver<bool>,
) {
    let mut logged = false;
    // The last state delivered per booking: a remote event's row is read
    // as it is now, so two quick changes could otherwise show one twice.
    let mut delivered: HashMap<String, (String, chrono::DateTime<chrono::Utc>)> = HashMap::new();
    loop {
        let opened = async {
            let mut pubsub = link.client.get_async_pubsub().await?;
            pubsub.subscribe(CHANNEL).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::select! {
            r = tokio::time::timeout(Duration::from_secs(3), opened) => r,
            _ = stop.changed() => return,
        };
        if let Ok(Ok(pubsub)) = pubsub {
            if logged {
                tracing::info!("receiving other instances' booking events again");
            }
            logged = false;
            link.receiving.store(true, Ordering::Relaxed);
            let (mut sink, mut messages) = pubsub.split();
            let mut ping = tokio::time::interval(PUBSUB_PING);
            ping.tick().await;
            loop {
                let msg = tokio::select! {
                    m = messages.next() => m,
                    _ = ping.tick() => {
                        // A connection dropped silently never ends the
                        // stream: ask it to answer.
                        let answered = tokio::time::timeout(Duration::from_secs(3), sink.ping::<String>()).await;
                        if matches!(answered, Ok(Ok(_))) {
                            continue;
                        }
                        break;
                    }
                    _ = stop.changed() => return,
                };
                let Some(msg) = msg else { break };
                let Ok(text) = msg.get_payload::<String>() else {
                    continue;
                };
                let wire = match serde_json::from_str::<WireEvent>(&text) {
                    Ok(w) if w.origin != origin => w,
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "an unreadable booking event on Redis");
                        continue;
                    }
                };
                // Read once here, in order, rather than by every subscriber;
                // who may see it comes from the row, never from the message.
                let row = match bookings::Entity::find_by_id(wire.booking_id.clone())
                    .one(&db)
                    .await
                {
                    Ok(Some(row)) => row,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(error = ?e, "a remote booking event could not be read; its subscribers get the next one");
                        continue;
                    }
                };
                let state = (row.status.clone(), row.updated_at);
                if delivered.get(&row.id) == Some(&state) {
                    continue;
                }
                if delivered.len() >= 10_000 {
                    delivered.clear();
                }
                delivered.insert(row.id.clone(), state);
                local.publish(BookingEvent::of(row));
            }
        }
        link.receiving.store(false, Ordering::Relaxed);
        if !logged {
            tracing::warn!("not receiving other instances' booking events; reconnecting to Redis");
            logged = true;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
}
