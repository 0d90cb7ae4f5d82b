//! Push notifications to the Expo app, through the same outbox as email.
//!
//! - A phone registers its Expo push token ([`register`]); a token is one
//!   device, owned by whoever registered it last, and a user keeps at most
//!   [`MAX_DEVICES`] (registering another forgets the one registered
//!   longest ago).
//! - Whenever an email is queued for a kind that also goes by push, one
//!   outbox row per device of the recipient is written in the same
//!   transaction ([`queue`]), with a key per notification and device, so a
//!   retried change never pushes twice.
//! - The outbox worker sends due push rows in requests of at most
//!   [`MAX_PER_REQUEST`] messages ([`deliver`]), outside any transaction,
//!   and records each message's ticket. A request refused with a 5xx or
//!   429 (or not answered) is retried with the outbox's backoff; Expo has
//!   no idempotency key, so the one case that can push twice is a worker
//!   that dies after Expo accepted a request and before the tickets were
//!   recorded (its lease runs out and the batch is sent again).
//! - Some minutes later the receipts are read ([`check_receipts`]). A
//!   `DeviceNotRegistered` ticket or receipt (the app was removed) deletes
//!   the device.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use crate::domain::audit::{Entry, action};
use crate::domain::auth::CurrentUser;
use crate::domain::context::DomainCtx;
use crate::domain::email::{OutboxStatus, Recipient};
use crate::domain::outbox::{self, Pushes};
use crate::domain::preferences::{Channel, Choices, Kind};
use crate::domain::uow::UnitOfWork;
use crate::email::{Template, format_money, format_time};
use crate::error::{AppError, AppResult};
use entity::{outbox as outbox_rows, push_devices, push_tickets, users};

/// Devices one user can have.
pub const MAX_DEVICES: u64 = 10;
/// Expo takes at most 100 messages per send request.
pub const MAX_PER_REQUEST: usize = 100;
/// And at most 1,000 receipt ids per receipts request.
pub const MAX_RECEIPTS_PER_REQUEST: u64 = 1000;
/// Expo has a receipt some minutes after the ticket; its docs suggest
/// asking after 15.
pub const RECEIPT_DELAY: chrono::Duration = chrono::Duration::minutes(15);
/// Expo keeps receipts for a day.
const RECEIPT_KEPT: chrono::Duration = chrono::Duration::hours(24);

/// Where the app runs (as `expo-device` or `Platform.OS` tell it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Ios,
    Android,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Ios => "IOS",
            Platform::Android => "ANDROID",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "IOS" => Some(Platform::Ios),
            "ANDROID" => Some(Platform::Android),
            _ => None,
        }
    }
}

/// An Expo push token: `ExponentPushToken[...]` or `ExpoPushToken[...]`
/// around 1 to 128 letters, digits, `-` or `_`.
pub fn parse_token(token: &str) -> AppResult<&str> {
    let inner = ["ExponentPushToken[", "ExpoPushToken["]
        .iter()
        .find_map(|p| token.strip_prefix(p))
        .and_then(|rest| rest.strip_suffix(']'));
    match inner {
        Some(id)
            if (1..=128).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Ok(token)
        }
        _ => Err(AppError::bad_input(
            "token",
            "must be an Expo push token (ExponentPushToken[...] from getExpoPushTokenAsync)",
        )),
    }
}

/// Expo's message with any push token in it replaced: a token reaches a
/// phone, so it stays out of logs and the outbox's errors.
pub fn scrub(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = ["ExponentPushToken[", "ExpoPushToken["]
        .iter()
        .filter_map(|p| rest.find(p))
        .min()
    {
        out.push_str(&rest[..at]);
        match rest[at..].find(']') {
            Some(end) => {
                out.push_str("<push token>");
                rest = &rest[at + end + 1..];
            }
            None => {
                out.push_str("<push token>");
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out.chars().take(300).collect()
}

/// One message for Expo.
#[derive(Debug, Clone, PartialEq)]
pub struct PushMessage {
    pub to: String,
    pub title: String,
    pub body: String,
    /// What the app routes on: `{kind, bookingId}`.
    pub data: serde_json::Value,
    /// Seconds Expo may keep trying to reach the phone (a reminder is
    /// worthless after its session started).
    pub ttl_seconds: Option<i64>,
}

/// Expo's answer for one message (a ticket) or, later, its receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// Accepted; the ticket's receipt id (none on a receipt).
    Ok(Option<String>),
    Failed {
        message: String,
        /// Expo's `details.error`: `DeviceNotRegistered`,
        /// `MessageTooBig`, `MessageRateExceeded`, ...
        error: Option<String>,
    },
}

/// A request that failed as a whole.
#[derive(Debug, Clone)]
pub struct PushError {
    pub message: String,
    /// A 5xx, a 429 or no answer: worth trying again later.
    pub retryable: bool,
}

#[async_trait::async_trait]
pub trait PushSender: Send + Sync {
    /// Sends at most [`MAX_PER_REQUEST`] messages in one request; one
    /// outcome per message, in order.
    async fn send(&self, messages: &[PushMessage]) -> Result<Vec<PushOutcome>, PushError>;
    /// The receipts Expo has for these ticket ids (at most
    /// [`MAX_RECEIPTS_PER_REQUEST`]); an id not yet ready is absent.
    async fn receipts(&self, ids: &[String]) -> Result<HashMap<String, PushOutcome>, PushError>;
}

/// Registers the signed-in user's device. A token already known moves to
/// this user (the phone changed hands or accounts); past
/// [`MAX_DEVICES`], the device registered longest ago is forgotten.
pub async fn register(
    ctx: &DomainCtx,
    user: &CurrentUser,
    token: &str,
    platform: Platform,
) -> AppResult<push_devices::Model> {
    let token = parse_token(token)?;
    let uow = UnitOfWork::begin(ctx).await?;
    // Holds the user's row so two registrations at once count each other.
    users::Entity::update_many()
        .col_expr(users::Column::Id, Expr::col(users::Column::Id))
        .filter(users::Column::Id.eq(user.id.clone()))
        .exec(uow.db())
        .await?;
    let previous = push_devices::Entity::find()
        .filter(push_devices::Column::Token.eq(token))
        .one(uow.db())
        .await?;
    let now = Utc::now();
    push_devices::Entity::insert(push_devices::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        user_id: Set(user.id.clone()),
        token: Set(token.to_string()),
        platform: Set(platform.as_str().into()),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::column(push_devices::Column::Token)
            .update_columns([
                push_devices::Column::UserId,
                push_devices::Column::Platform,
                push_devices::Column::UpdatedAt,
            ])
            .to_owned(),
    )
    .exec_without_returning(uow.db())
    .await?;
    let count = push_devices::Entity::find()
        .filter(push_devices::Column::UserId.eq(user.id.clone()))
        .count(uow.db())
        .await?;
    let mut forgotten = Vec::new();
    if count > MAX_DEVICES {
        let oldest: Vec<String> = push_devices::Entity::find()
            .select_only()
            .column(push_devices::Column::Id)
            .filter(push_devices::Column::UserId.eq(user.id.clone()))
            .filter(push_devices::Column::Token.ne(token))
            .order_by_asc(push_devices::Column::UpdatedAt)
            .order_by_asc(push_devices::Column::Id)
            .limit(count - MAX_DEVICES)
            .into_tuple()
            .all(uow.db())
            .await?;
        push_devices::Entity::delete_many()
            .filter(push_devices::Column::Id.is_in(oldest.clone()))
            .exec(uow.db())
            .await?;
        forgotten = oldest;
    }
    let device = push_devices::Entity::find()
        .filter(push_devices::Column::Token.eq(token))
        .one(uow.db())
        .await?
        .ok_or_else(|| AppError::internal("registered device not found"))?;
    uow.audit(Entry {
        action: action::PUSH_REGISTERED,
        actor_id: Some(&user.id),
        target_type: Some("push_device"),
        target_id: Some(&device.id),
        ip: None,
        detail: Some(serde_json::json!({
            "platform": platform.as_str(),
            "movedFrom": previous.filter(|p| p.user_id != user.id).map(|p| p.user_id),
            "forgotten": forgotten,
        })),
    })
    .await?;
    uow.commit().await?;
    Ok(device)
}

/// Forgets the user's device with this token; `false` when the user has
/// no such device (another user's token is not touched).
pub async fn unregister(ctx: &DomainCtx, user: &CurrentUser, token: &str) -> AppResult<bool> {
    let token = parse_token(token)?;
    let uow = UnitOfWork::begin(ctx).await?;
    let dropped = drop_device(&uow, &user.id, token).await?;
    uow.commit().await?;
    Ok(dropped)
}

/// Inside a unit of work (unregistering, a logout that names its token).
pub async fn drop_device(uow: &UnitOfWork, user_id: &str, token: &str) -> AppResult<bool> {
    let gone = push_devices::Entity::delete_many()
        .filter(push_devices::Column::Token.eq(token))
        .filter(push_devices::Column::UserId.eq(user_id))
        .exec(uow.db())
        .await?;
    if gone.rows_affected == 0 {
        return Ok(false);
    }
    uow.audit(Entry {
        action: action::PUSH_UNREGISTERED,
        actor_id: Some(user_id),
        target_type: Some("user"),
        target_id: Some(user_id),
        ip: None,
        detail: None,
    })
    .await?;
    Ok(true)
}

/// The user's devices, last registered first.
pub async fn devices<C: ConnectionTrait>(
    db: &C,
    user_id: &str,
) -> AppResult<Vec<push_devices::Model>> {
    Ok(push_devices::Entity::find()
        .filter(push_devices::Column::UserId.eq(user_id))
        .order_by_desc(push_devices::Column::UpdatedAt)
        .all(db)
        .await?)
}

/// Whether `template` has a push form.
pub fn pushed(template: Template) -> bool {
    Kind::of(template).offered(Channel::Push)
}

/// Queues the push form of an email being queued (same key, same data),
/// one outbox row per device of the recipient, unless the recipient
/// turned push off for its kind. Returns how many rows were written.
pub async fn queue(
    uow: &mut UnitOfWork,
    to: &Recipient,
    choices: &Choices,
    template: Template,
    key: &str,
    data: &serde_json::Value,
) -> AppResult<usize> {
    if !pushed(template) || !choices.allows(Kind::of(template), Channel::Push) {
        return Ok(0);
    }
    let devices = devices(uow.db(), &to.user_id).await?;
    if devices.is_empty() {
        return Ok(0);
    }
    let rows = devices.iter().map(|d| {
        let mut data = data.clone();
        if let Some(map) = data.as_object_mut() {
            map.insert("device_id".into(), d.id.clone().into());
        }
        crate::domain::email::pending_row(
            "push",
            &d.token,
            &to.user_id,
            template,
            &data,
            &format!("push:{key}:{}", d.id),
        )
    });
    let inserted = outbox_rows::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::column(outbox_rows::Column::IdempotencyKey)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(uow.db())
        .await?;
    if inserted > 0 {
        uow.email_queued();
    }
    Ok(usize::try_from(inserted).unwrap_or(usize::MAX))
}

/// Whether the device a push row was queued for still belongs to its user.
pub(crate) async fn still_registered<C: ConnectionTrait>(
    db: &C,
    row: &outbox_rows::Model,
    data: &serde_json::Value,
) -> AppResult<bool> {
    let Some(device_id) = data.get("device_id").and_then(|d| d.as_str()) else {
        return Ok(false);
    };
    let device = push_devices::Entity::find_by_id(device_id.to_string())
        .one(db)
        .await?;
    Ok(
        device
            .is_some_and(|d| Some(&d.user_id) == row.user_id.as_ref() && d.token == row.recipient),
    )
}

fn text(data: &serde_json::Value, key: &str) -> String {
    match data.get(key) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn when(data: &serde_json::Value) -> String {
    let tz = text(data, "tz").parse().unwrap_or(chrono_tz::Tz::UTC);
    DateTime::parse_from_rfc3339(&text(data, "start_at"))
        .map(|t| format_time(t.with_timezone(&Utc), tz))
        .unwrap_or_default()
}

fn money(data: &serde_json::Value, key: &str) -> String {
    let amount = data.get(key).and_then(|a| a.as_i64()).unwrap_or_default();
    format_money(amount, &text(data, "currency"))
}

/// What the phone shows, from the row's data: a title and a body with the
/// other side's name and the time in the recipient's zone, and the `data`
/// the app routes on. `None` for a template without a push form.
pub fn render(
    template: Template,
    data: &serde_json::Value,
    now: DateTime<Utc>,
) -> Option<(String, String, serde_json::Value, Option<i64>)> {
    let other = text(data, "other_name");
    let minutes = text(data, "minutes");
    let (title, body) = match template {
        Template::BookingConfirmed if text(data, "role") == "coach" => (
            "New booking".to_string(),
            format!("{other} booked {minutes} minutes on {}", when(data)),
        ),
        Template::BookingConfirmed => (
            "Booking confirmed".to_string(),
            format!("{minutes} minutes with {other} on {}", when(data)),
        ),
        Template::BookingCancelled => {
            let mut body = format!("Your session with {other} on {} was cancelled.", when(data));
            if data
                .get("refund_minor")
                .and_then(|r| r.as_i64())
                .unwrap_or(0)
                > 0
            {
                body.push_str(&format!(
                    " A refund of {} is on its way.",
                    money(data, "refund_minor")
                ));
            }
            ("Booking cancelled".to_string(), body)
        }
        Template::Reminder => (
            format!("Your session starts in {}", text(data, "lead")),
            format!("With {other}, {}", when(data)),
        ),
        Template::PaymentReceipt => (
            "Payment received".to_string(),
            format!(
                "{} for your session with {other}",
                money(data, "amount_minor")
            ),
        ),
        Template::PurchaseReceipt => (
            "Payment received".to_string(),
            format!("{} for {}", money(data, "amount_minor"), text(data, "item")),
        ),
        Template::RefundIssued => (
            "Refund on its way".to_string(),
            format!("{} back to the card that paid", money(data, "amount_minor")),
        ),
        Template::ReviewReceived => (
            "New review".to_string(),
            format!(
                "{other} rated your session {} out of 5",
                text(data, "rating")
            ),
        ),
        _ => return None,
    };
    let mut payload = serde_json::json!({ "kind": Kind::of(template).as_str() });
    if let Some(id) = data.get("booking_id").and_then(|b| b.as_str()) {
        payload["bookingId"] = id.into();
    }
    let ttl = (template == Template::Reminder)
        .then(|| {
            DateTime::parse_from_rfc3339(&text(data, "start_at"))
                .ok()
                .map(|s| (s.with_timezone(&Utc) - now).num_seconds().max(0))
        })
        .flatten();
    Some((title, body, payload, ttl))
}

/// What to do with one row once its request was answered.
enum Next {
    Sent(Option<String>),
    Gone(String),
    Retry(String),
    Dead(String),
}

/// Sends claimed push rows (each leased by this worker), in requests of at
/// most [`MAX_PER_REQUEST`].
pub(crate) async fn deliver(ctx: &DomainCtx, rows: Vec<outbox_rows::Model>) -> AppResult<Pushes> {
    let mut done = Pushes::default();
    let now = Utc::now();
    let mut ready: Vec<(outbox_rows::Model, PushMessage)> = Vec::new();
    for row in rows {
        let data: serde_json::Value = serde_json::from_str(&row.data).unwrap_or_default();
        let Some(template) = Template::parse(&row.template) else {
            outbox::finish(
                ctx,
                &row,
                OutboxStatus::Dead,
                None,
                Some("unknown template"),
            )
            .await?;
            done.dead += 1;
            continue;
        };
        if !outbox::still_true(ctx, &row, template, &data).await? {
            outbox::finish(ctx, &row, OutboxStatus::Skipped, None, None).await?;
            done.skipped += 1;
            continue;
        }
        let Some((title, body, payload, ttl)) = render(template, &data, now) else {
            outbox::finish(ctx, &row, OutboxStatus::Dead, None, Some("no push form")).await?;
            done.dead += 1;
            continue;
        };
        let message = PushMessage {
            to: row.recipient.clone(),
            title,
            body,
            data: payload,
            ttl_seconds: ttl,
        };
        ready.push((row, message));
    }
    for chunk in ready.chunks(MAX_PER_REQUEST) {
        // A fresh lease for the rows of this request, just before it goes;
        // a row whose lease ran out meanwhile belongs to another worker.
        let chunk = renew(ctx, chunk).await?;
        if chunk.is_empty() {
            continue;
        }
        let chunk = &chunk[..];
        let messages: Vec<PushMessage> = chunk.iter().map(|(_, m)| m.clone()).collect();
        let answer = ctx.push.send(&messages).await;
        let next: Vec<Next> = match answer {
            Ok(outcomes) if outcomes.len() == chunk.len() => outcomes
                .into_iter()
                .map(|o| match o {
                    PushOutcome::Ok(id) => Next::Sent(id),
                    PushOutcome::Failed { error, .. }
                        if error.as_deref() == Some("DeviceNotRegistered") =>
                    {
                        Next::Gone("DeviceNotRegistered".into())
                    }
                    PushOutcome::Failed { message, error }
                        if error.as_deref() == Some("MessageRateExceeded") =>
                    {
                        Next::Retry(format!("Expo: {message}"))
                    }
                    PushOutcome::Failed { message, error } => {
                        Next::Dead(format!("Expo: {} {message}", error.unwrap_or_default()))
                    }
                })
                .collect(),
            Ok(outcomes) => {
                let why = format!(
                    "Expo answered {} tickets for {} messages",
                    outcomes.len(),
                    chunk.len()
                );
                tracing::error!("{why}");
                chunk.iter().map(|_| Next::Dead(why.clone())).collect()
            }
            Err(e) if e.retryable => chunk
                .iter()
                .map(|_| Next::Retry(e.message.clone()))
                .collect(),
            Err(e) => chunk
                .iter()
                .map(|_| Next::Dead(e.message.clone()))
                .collect(),
        };
        record(ctx, chunk, next, &mut done).await?;
    }
    Ok(done)
}

/// Renews the lease of `chunk`'s rows (one statement); returns those this
/// worker still holds, with their new lease.
async fn renew(
    ctx: &DomainCtx,
    chunk: &[(outbox_rows::Model, PushMessage)],
) -> AppResult<Vec<(outbox_rows::Model, PushMessage)>> {
    use sea_orm::Statement;
    let backend = ctx.db.get_database_backend();
    let ph = |n| crate::domain::review::placeholder(backend, n);
    let until = Utc::now() + outbox::LEASE;
    let mut values: Vec<sea_orm::Value> = vec![until.into()];
    let mut holds = Vec::new();
    for (i, (row, _)) in chunk.iter().enumerate() {
        holds.push(format!(
            "(id = {} AND locked_until = {})",
            ph(2 + 2 * i),
            ph(3 + 2 * i)
        ));
        values.push(row.id.clone().into());
        values.push(row.locked_until.into());
    }
    let sql = format!(
        "UPDATE outbox SET locked_until = {} WHERE status = 'PENDING' AND ({}) RETURNING id",
        ph(1),
        holds.join(" OR ")
    );
    let kept: std::collections::HashSet<String> = ctx
        .db
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?
        .iter()
        .filter_map(|r| r.try_get::<String>("", "id").ok())
        .collect();
    Ok(chunk
        .iter()
        .filter(|(row, _)| kept.contains(&row.id))
        .map(|(row, m)| {
            (
                outbox_rows::Model {
                    locked_until: Some(until),
                    ..row.clone()
                },
                m.clone(),
            )
        })
        .collect())
}

/// Records one request's outcomes in one unit of work: tickets to read
/// later, devices that are gone, retries.
async fn record(
    ctx: &DomainCtx,
    chunk: &[(outbox_rows::Model, PushMessage)],
    next: Vec<Next>,
    done: &mut Pushes,
) -> AppResult<()> {
    let uow = UnitOfWork::begin(ctx).await?;
    let now = Utc::now();
    for ((row, _), next) in chunk.iter().zip(next) {
        match next {
            Next::Sent(ticket) => {
                if outbox::finish_in(&uow, row, OutboxStatus::Sent, ticket.clone(), None).await? {
                    if let Some(id) = ticket {
                        push_tickets::Entity::insert(push_tickets::ActiveModel {
                            id: Set(id),
                            outbox_id: Set(row.id.clone()),
                            token: Set(row.recipient.clone()),
                            check_after: Set(now + RECEIPT_DELAY),
                            created_at: Set(now),
                        })
                        .on_conflict(
                            OnConflict::column(push_tickets::Column::Id)
                                .do_nothing()
                                .to_owned(),
                        )
                        .exec_without_returning(uow.db())
                        .await?;
                    }
                    done.sent += 1;
                }
            }
            Next::Gone(why) => {
                if outbox::finish_in(&uow, row, OutboxStatus::Dead, None, Some(&why)).await? {
                    device_gone(&uow, &row.recipient, now).await?;
                }
                done.dead += 1;
            }
            Next::Retry(why) if row.attempts + 1 < outbox::MAX_ATTEMPTS => {
                tracing::warn!(push = %row.id, attempt = row.attempts + 1, error = %why, "push not sent; will retry");
                outbox::retry_in(&uow, row, &why).await?;
                done.retried += 1;
            }
            Next::Retry(why) | Next::Dead(why) => {
                tracing::error!(push = %row.id, attempts = row.attempts + 1, error = %why, "push given up");
                outbox::finish_in(&uow, row, OutboxStatus::Dead, None, Some(&why)).await?;
                done.dead += 1;
            }
        }
    }
    uow.commit().await
}

/// Expo says the token no longer reaches an app: forget the device, unless
/// it was registered again after `said_at` (the app was reinstalled).
async fn device_gone(uow: &UnitOfWork, token: &str, said_at: DateTime<Utc>) -> AppResult<()> {
    let Some(device) = push_devices::Entity::find()
        .filter(push_devices::Column::Token.eq(token))
        .filter(push_devices::Column::UpdatedAt.lte(said_at))
        .one(uow.db())
        .await?
    else {
        return Ok(());
    };
    let gone = push_devices::Entity::delete_many()
        .filter(push_devices::Column::Id.eq(device.id.clone()))
        .filter(push_devices::Column::UpdatedAt.lte(said_at))
        .exec(uow.db())
        .await?;
    if gone.rows_affected == 0 {
        return Ok(());
    }
    uow.audit(Entry {
        action: action::PUSH_DEVICE_GONE,
        actor_id: None,
        target_type: Some("user"),
        target_id: Some(&device.user_id),
        ip: None,
        detail: Some(serde_json::json!({ "device": device.id })),
    })
    .await
}

/// Reads the receipts now due (one request of at most
/// [`MAX_RECEIPTS_PER_REQUEST`]); returns how many tickets were settled.
/// Safe to run on several instances at once: reading a receipt twice
/// changes nothing.
pub async fn check_receipts(ctx: &DomainCtx, now: DateTime<Utc>) -> AppResult<usize> {
    let due = push_tickets::Entity::find()
        .filter(push_tickets::Column::CheckAfter.lte(now))
        .order_by_asc(push_tickets::Column::CheckAfter)
        .limit(MAX_RECEIPTS_PER_REQUEST)
        .all(&ctx.db)
        .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let ids: Vec<String> = due.iter().map(|t| t.id.clone()).collect();
    let receipts = match ctx.push.receipts(&ids).await {
        Ok(r) => r,
        Err(e) => {
            // Asked again later; what Expo no longer keeps is dropped.
            if !e.retryable {
                tracing::error!(error = %e.message, "Expo refused to give push receipts; check EXPO_ACCESS_TOKEN");
            }
            let uow = UnitOfWork::begin(ctx).await?;
            push_tickets::Entity::update_many()
                .col_expr(
                    push_tickets::Column::CheckAfter,
                    Expr::value(now + chrono::Duration::minutes(5)),
                )
                .filter(push_tickets::Column::Id.is_in(ids))
                .exec(uow.db())
                .await?;
            push_tickets::Entity::delete_many()
                .filter(push_tickets::Column::CreatedAt.lt(now - RECEIPT_KEPT))
                .exec(uow.db())
                .await?;
            uow.commit().await?;
            return Err(AppError::internal(format!(
                "push receipts could not be read: {}",
                e.message
            )));
        }
    };
    let uow = UnitOfWork::begin(ctx).await?;
    let mut settled = 0;
    for ticket in due {
        match receipts.get(&ticket.id) {
            Some(outcome) => {
                if let PushOutcome::Failed { message, error } = outcome {
                    let why = format!(
                        "receipt: {} {}",
                        error.clone().unwrap_or_default(),
                        scrub(message)
                    );
                    tracing::warn!(push = %ticket.outbox_id, error = %why, "Expo could not deliver a push");
                    let mut update = outbox_rows::Entity::update_many()
                        .col_expr(outbox_rows::Column::LastError, Expr::value(why))
                        .filter(outbox_rows::Column::Id.eq(ticket.outbox_id.clone()));
                    if error.as_deref() == Some("MessageRateExceeded") {
                        // Expo asks for it to be sent again, later.
                        update = update
                            .col_expr(
                                outbox_rows::Column::Status,
                                Expr::value(OutboxStatus::Pending.as_str()),
                            )
                            .col_expr(
                                outbox_rows::Column::NextAttemptAt,
                                Expr::value(now + chrono::Duration::minutes(1)),
                            )
                            .filter(outbox_rows::Column::Status.eq(OutboxStatus::Sent.as_str()));
                    }
                    update.exec(uow.db()).await?;
                    if error.as_deref() == Some("DeviceNotRegistered") {
                        device_gone(&uow, &ticket.token, ticket.created_at).await?;
                    }
                }
                push_tickets::Entity::delete_by_id(ticket.id.clone())
                    .exec(uow.db())
                    .await?;
                settled += 1;
            }
            // Expo no longer has it.
            None if ticket.created_at + RECEIPT_KEPT < now => {
                push_tickets::Entity::delete_by_id(ticket.id.clone())
                    .exec(uow.db())
                    .await?;
                settled += 1;
            }
            None => {
                push_tickets::Entity::update_many()
                    .col_expr(
                        push_tickets::Column::CheckAfter,
                        Expr::value(now + chrono::Duration::minutes(5)),
                    )
                    .filter(push_tickets::Column::Id.eq(ticket.id.clone()))
                    .exec(uow.db())
                    .await?;
            }
        }
    }
    uow.commit().await?;
    Ok(settled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_expo_push_tokens_are_taken() {
        for ok in [
            "ExponentPushToken[xxxxxxxxxxxxxxxxxxxxxx]",
            "ExpoPushToken[AbC-12_z]",
        ] {
            assert!(parse_token(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ExponentPushToken[]",
            "ExponentPushToken[abc",
            "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
            "ExponentPushToken[a b]",
            "ExponentPushToken[abc]]",
            "FakePushToken[abc]",
            &format!("ExponentPushToken[{}]", "a".repeat(129)),
        ] {
            assert!(parse_token(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_push_shows_the_time_in_the_recipients_zone_and_routes_by_kind() {
        let data = serde_json::json!({
            "booking_id": "b1",
            "start_at": "2026-12-03T15:00:00Z",
            "tz": "America/New_York",
            "minutes": 60,
            "role": "coach",
            "other_name": "Ann",
            "amount_minor": 6000,
            "currency": "USD",
            "email": "never@example.com",
        });
        let now = "2026-12-03T14:00:00Z".parse().unwrap();
        let (title, body, payload, ttl) = render(Template::BookingConfirmed, &data, now).unwrap();
        assert_eq!(title, "New booking");
        assert_eq!(
            body,
            "Ann booked 60 minutes on Thursday 3 December 2026, 10:00 EST"
        );
        assert_eq!(
            payload,
            serde_json::json!({"kind": "BOOKING_CONFIRMED", "bookingId": "b1"})
        );
        assert_eq!(ttl, None);
        let (_, _, payload, ttl) = render(Template::Reminder, &data, now).unwrap();
        assert_eq!(payload["kind"], "REMINDER");
        assert_eq!(ttl, Some(3600));
        assert!(render(Template::VerifyEmail, &data, now).is_none());
    }
}
