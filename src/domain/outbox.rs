//! The outbox worker's rules: claim due emails and pushes with a lease,
//! send them outside any transaction, record the outcome; and the reminder
//! job that queues each session reminder once. Push rows are sent in
//! batches by `domain::push`.
//!
//! A claim is a conditional update of `locked_until` whose affected-row
//! count decides who owns the row (on PostgreSQL one statement with `FOR
//! UPDATE SKIP LOCKED`, so workers never wait on each other). A worker
//! that dies mid-send loses its lease after [`LEASE`]; the next owner
//! sends with the same idempotency key, which the provider dedupes, so an
//! email is never sent twice.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement,
};

use crate::domain::booking::BookingStatus;
use crate::domain::context::DomainCtx;
use crate::domain::email::{OutboxStatus, Outgoing};
use crate::domain::notify;
use crate::domain::payment::refund::truncate;
use crate::domain::preferences::{self, Channel, Kind};
use crate::domain::uow::UnitOfWork;
use crate::email::Template;
use crate::error::AppResult;
use entity::{bookings, outbox};

/// Attempts before an email is given up (dead): with [`backoff`], about
/// half an hour of trying.
pub const MAX_ATTEMPTS: i32 = 12;
/// How long a worker owns a claimed row.
pub const LEASE: chrono::Duration = chrono::Duration::seconds(120);

/// The wait after a failed attempt `attempts` (0-based): 2 s doubling to at
/// most 5 minutes, plus up to a fifth more at random.
pub fn backoff(attempts: i32) -> Duration {
    let base = 2u64.saturating_mul(1u64 << attempts.clamp(0, 16) as u32);
    let capped = Ord::min(base, 300);
    let jitter_ms = rand::rng().random_range(0..=capped * 200);
    Duration::from_millis(capped * 1000 + jitter_ms)
}

/// What one pass of the worker did with emails (and, in `pushes`, with
/// push messages).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub sent: usize,
    pub retried: usize,
    pub dead: usize,
    pub skipped: usize,
    pub pushes: Pushes,
}

/// What one pass did with push messages.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pushes {
    pub sent: usize,
    pub retried: usize,
    pub dead: usize,
    pub skipped: usize,
}

impl Delivery {
    pub fn handled(&self) -> usize {
        let p = &self.pushes;
        self.sent
            + self.retried
            + self.dead
            + self.skipped
            + p.sent
            + p.retried
            + p.dead
            + p.skipped
    }
}

/// Claims up to `batch` due rows of `channel` for this worker, in one
/// statement (on PostgreSQL skipping rows another worker is claiming; on
/// SQLite writes are serialised anyway).
async fn claim(
    ctx: &DomainCtx,
    now: DateTime<Utc>,
    batch: u64,
    channel: &str,
) -> AppResult<Vec<String>> {
    let until = now + LEASE;
    let backend = ctx.db.get_database_backend();
    let ph = |n| crate::domain::review::placeholder(backend, n);
    let skip_locked = if backend == DatabaseBackend::Postgres {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let sql = format!(
        "UPDATE outbox SET locked_until = {} WHERE id IN ( \
           SELECT id FROM outbox WHERE status = 'PENDING' AND channel = {} \
           AND next_attempt_at <= {} AND (locked_until IS NULL OR locked_until < {}) \
           ORDER BY next_attempt_at LIMIT {}{skip_locked}) \
         RETURNING id",
        ph(1),
        ph(2),
        ph(3),
        ph(4),
        ph(5)
    );
    let rows = ctx
        .db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [
                until.into(),
                channel.into(),
                now.into(),
                now.into(),
                (batch as i64).into(),
            ],
        ))
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.try_get::<String>("", "id").ok())
        .collect())
}

/// Push rows claimed per pass: three of Expo's requests (each renews the
/// lease of its rows before it goes, and waits at most 15 s).
const PUSH_BATCH: u64 = 300;

/// Sends what is due (one batch). Safe to run in any number of workers at
/// once.
pub async fn deliver_due(ctx: &DomainCtx, batch: u64) -> AppResult<Delivery> {
    let now = Utc::now();
    let mut done = Delivery::default();
    for id in claim(ctx, now, batch, "email").await? {
        let Some(row) = outbox::Entity::find_by_id(id).one(&ctx.db).await? else {
            continue;
        };
        // A fresh lease for this row alone, just before its send (a batch
        // can take a while at a slow pace); its time is our claim token.
        let Some(lease) = row.locked_until else {
            continue;
        };
        let until = Utc::now() + LEASE;
        let renewed = outbox::Entity::update_many()
            .col_expr(outbox::Column::LockedUntil, Expr::value(until))
            .filter(outbox::Column::Id.eq(row.id.clone()))
            .filter(outbox::Column::Status.eq(OutboxStatus::Pending.as_str()))
            .filter(outbox::Column::LockedUntil.eq(lease))
            .exec(&ctx.db)
            .await?;
        if renewed.rows_affected != 1 {
            continue;
        }
        let row = outbox::Model {
            locked_until: Some(until),
            ..row
        };
        match deliver(ctx, &row).await? {
            OutboxStatus::Sent => done.sent += 1,
            OutboxStatus::Dead => done.dead += 1,
            OutboxStatus::Skipped => done.skipped += 1,
            OutboxStatus::Pending => done.retried += 1,
        }
    }
    // Claimed now, not when the emails began: their lease starts here.
    let pushes = claim(ctx, Utc::now(), PUSH_BATCH, "push").await?;
    if !pushes.is_empty() {
        let rows = outbox::Entity::find()
            .filter(outbox::Column::Id.is_in(pushes))
            .order_by_asc(outbox::Column::NextAttemptAt)
            .all(&ctx.db)
            .await?;
        done.pushes = crate::domain::push::deliver(ctx, rows).await?;
    }
    Ok(done)
}

/// Whether the message is still true to send: not for a reminder of a
/// booking cancelled since it was queued, nor on a channel its recipient
/// has turned off since, nor (push) to a device that left its user.
pub(crate) async fn still_true(
    ctx: &DomainCtx,
    row: &outbox::Model,
    template: Template,
    data: &serde_json::Value,
) -> AppResult<bool> {
    let channel = if row.channel == "push" {
        Channel::Push
    } else {
        Channel::Email
    };
    if let Some(user_id) = &row.user_id
        && !preferences::allows(&ctx.db, user_id, Kind::of(template), channel).await?
    {
        return Ok(false);
    }
    if channel == Channel::Push
        && !crate::domain::push::still_registered(&ctx.db, row, data).await?
    {
        return Ok(false);
    }
    let booking = || async {
        match data.get("booking_id").and_then(|v| v.as_str()) {
            Some(id) => Ok::<_, crate::error::AppError>(
                bookings::Entity::find_by_id(id.to_string())
                    .one(&ctx.db)
                    .await?,
            ),
            None => Ok(None),
        }
    };
    match template {
        // A link that no longer works is not sent (used, expired, or the
        // address verified meanwhile).
        Template::VerifyEmail | Template::PasswordReset => {
            let Some(token_id) = data.get("token_id").and_then(|v| v.as_str()) else {
                return Ok(true);
            };
            let Some(token) = entity::user_tokens::Entity::find_by_id(token_id.to_string())
                .one(&ctx.db)
                .await?
            else {
                return Ok(false);
            };
            if token.used_at.is_some() || token.expires_at <= Utc::now() {
                return Ok(false);
            }
            if template == Template::VerifyEmail {
                let user = entity::users::Entity::find_by_id(token.user_id)
                    .one(&ctx.db)
                    .await?;
                return Ok(user.is_some_and(|u| !u.email_verified));
            }
            Ok(true)
        }
        // Never after the cancellation it would contradict.
        Template::BookingConfirmed => Ok(booking().await?.is_some_and(|b| {
            b.status == BookingStatus::Confirmed.as_str()
                || b.status == BookingStatus::Completed.as_str()
        })),
        Template::Reminder => Ok(booking().await?.is_some_and(|b| {
            b.status == BookingStatus::Confirmed.as_str() && b.start_at > Utc::now()
        })),
        _ => Ok(true),
    }
}

async fn deliver(ctx: &DomainCtx, row: &outbox::Model) -> AppResult<OutboxStatus> {
    let mut data: serde_json::Value = serde_json::from_str(&row.data).unwrap_or_default();
    // The link is opened only for the send.
    if let Some(sealed) = data.get("sealed_link").and_then(|l| l.as_str()) {
        let Some(link) = ctx.link_seal.open(sealed) else {
            tracing::error!(email = %row.id, "an email's link cannot be opened (the server secret changed since it was queued)");
            let why = "link sealed under another secret";
            return finish(ctx, row, OutboxStatus::Dead, None, Some(why)).await;
        };
        if let Some(map) = data.as_object_mut() {
            map.insert("link".into(), link.into());
        }
    }
    let Some(template) = Template::parse(&row.template) else {
        return finish(ctx, row, OutboxStatus::Dead, None, Some("unknown template")).await;
    };
    if !still_true(ctx, row, template, &data).await? {
        return finish(ctx, row, OutboxStatus::Skipped, None, None).await;
    }
    let rendered = match ctx.templates.render(template, &data) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(email = %row.id, error = %e, "email could not be rendered");
            return finish(ctx, row, OutboxStatus::Dead, None, Some(&e)).await;
        }
    };
    let sent = ctx
        .mailer
        .send(Outgoing {
            to: &row.recipient,
            subject: &rendered.subject,
            html: &rendered.html,
            text: &rendered.text,
            idempotency_key: &row.idempotency_key,
            link: data.get("link").and_then(|l| l.as_str()),
        })
        .await;
    match sent {
        Ok(provider_ref) => finish(ctx, row, OutboxStatus::Sent, Some(provider_ref), None).await,
        Err(e) if e.retryable && row.attempts + 1 < MAX_ATTEMPTS => {
            tracing::warn!(email = %row.id, template = %row.template, attempt = row.attempts + 1, error = %e.message, "email not sent; will retry");
            let uow = UnitOfWork::begin(ctx).await?;
            retry_in(&uow, row, &e.message).await?;
            uow.commit().await?;
            Ok(OutboxStatus::Pending)
        }
        Err(e) => {
            tracing::error!(email = %row.id, template = %row.template, attempts = row.attempts + 1, error = %e.message, "email given up");
            finish(ctx, row, OutboxStatus::Dead, None, Some(&e.message)).await
        }
    }
}

/// Puts a row back for another attempt after [`backoff`], inside `uow`.
pub(crate) async fn retry_in(uow: &UnitOfWork, row: &outbox::Model, error: &str) -> AppResult<()> {
    let next = Utc::now()
        + chrono::Duration::from_std(backoff(row.attempts)).unwrap_or(chrono::Duration::minutes(5));
    outbox::Entity::update_many()
        .col_expr(outbox::Column::Attempts, Expr::value(row.attempts + 1))
        .col_expr(outbox::Column::NextAttemptAt, Expr::value(next))
        .col_expr(
            outbox::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(outbox::Column::LastError, Expr::value(truncate(error)))
        .col_expr(outbox::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(outbox::Column::Id.eq(row.id.clone()))
        .filter(outbox::Column::Status.eq(OutboxStatus::Pending.as_str()))
        .filter(outbox::Column::LockedUntil.eq(row.locked_until))
        .exec(uow.db())
        .await?;
    Ok(())
}

/// Records a final outcome in a unit of work of its own.
pub(crate) async fn finish(
    ctx: &DomainCtx,
    row: &outbox::Model,
    status: OutboxStatus,
    provider_ref: Option<String>,
    error: Option<&str>,
) -> AppResult<OutboxStatus> {
    let uow = UnitOfWork::begin(ctx).await?;
    finish_in(&uow, row, status, provider_ref, error).await?;
    uow.commit().await?;
    Ok(status)
}

/// Records a final outcome inside `uow`; links (which carry tokens) leave
/// the row. `false` when this worker no longer held the row's lease.
pub(crate) async fn finish_in(
    uow: &UnitOfWork,
    row: &outbox::Model,
    status: OutboxStatus,
    provider_ref: Option<String>,
    error: Option<&str>,
) -> AppResult<bool> {
    let mut data: serde_json::Value = serde_json::from_str(&row.data).unwrap_or_default();
    if let Some(map) = data.as_object_mut() {
        map.remove("link");
        map.remove("sealed_link");
    }
    let now = Utc::now();
    let mut update = outbox::Entity::update_many()
        .col_expr(outbox::Column::Status, Expr::value(status.as_str()))
        .col_expr(outbox::Column::Data, Expr::value(data.to_string()))
        .col_expr(
            outbox::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(outbox::Column::UpdatedAt, Expr::value(now))
        .filter(outbox::Column::Id.eq(row.id.clone()))
        .filter(outbox::Column::Status.eq(OutboxStatus::Pending.as_str()))
        // Only the lease holder records an outcome.
        .filter(outbox::Column::LockedUntil.eq(row.locked_until));
    if status != OutboxStatus::Skipped {
        update = update.col_expr(outbox::Column::Attempts, Expr::value(row.attempts + 1));
    }
    if status == OutboxStatus::Sent {
        update = update
            .col_expr(outbox::Column::SentAt, Expr::value(now))
            .col_expr(outbox::Column::ProviderRef, Expr::value(provider_ref));
    }
    if let Some(e) = error {
        update = update.col_expr(outbox::Column::LastError, Expr::value(truncate(e)));
    }
    Ok(update.exec(uow.db()).await?.rows_affected == 1)
}

/// How many emails are in the outbox in each status (every status listed,
/// zeros included).
pub async fn count_by_status(db: &sea_orm::DatabaseConnection) -> AppResult<Vec<(String, i64)>> {
    let mut out = Vec::new();
    for status in OutboxStatus::ALL {
        let n = outbox::Entity::find()
            .filter(outbox::Column::Channel.eq("email"))
            .filter(outbox::Column::Status.eq(status.as_str()))
            .count(db)
            .await?;
        out.push((
            status.as_str().to_string(),
            i64::try_from(n).unwrap_or(i64::MAX),
        ));
    }
    Ok(out)
}

/// The two reminders: (kind, how far ahead, how the email says it, how
/// late it may still go out: past that, "in 24 hours" would be untrue).
const REMINDERS: [(&str, chrono::Duration, &str, chrono::Duration); 2] = [
    (
        "24h",
        chrono::Duration::hours(24),
        "24 hours",
        chrono::Duration::hours(2),
    ),
    (
        "1h",
        chrono::Duration::hours(1),
        "1 hour",
        chrono::Duration::minutes(20),
    ),
];

/// Queues the reminders now due, each exactly once per booking and kind
/// (a flag on the booking, set in the same unit of work, and the email's
/// unique key). A booking confirmed after a reminder's time gets no such
/// reminder. Returns how many bookings were reminded.
pub async fn queue_reminders(ctx: &DomainCtx, now: DateTime<Utc>) -> AppResult<usize> {
    let mut queued = 0;
    for (kind, ahead, lead, grace) in REMINDERS {
        let flag = if kind == "24h" {
            bookings::Column::Reminded24h
        } else {
            bookings::Column::Reminded1h
        };
        let due = bookings::Entity::find()
            .filter(bookings::Column::Status.eq(BookingStatus::Confirmed.as_str()))
            .filter(bookings::Column::StartAt.gt(now))
            .filter(bookings::Column::StartAt.lte(now + ahead))
            .filter(flag.eq(false))
            .limit(200)
            .all(&ctx.db)
            .await?;
        for b in due {
            match remind(ctx, &b, flag, kind, lead, ahead, grace, now).await {
                Ok(true) => queued += 1,
                Ok(false) => {}
                // One booking failing never holds up the others.
                Err(e) => {
                    tracing::warn!(booking = %b.id, error = ?e, "reminder not queued; will retry")
                }
            }
        }
    }
    Ok(queued)
}

/// One booking's reminder of one kind, in its own unit of work: the flag is
/// set whether or not the email goes (confirmed too late, or the job ran
/// too late for the wording).
#[allow(clippy::too_many_arguments)]
async fn remind(
    ctx: &DomainCtx,
    b: &bookings::Model,
    flag: bookings::Column,
    kind: &str,
    lead: &str,
    ahead: chrono::Duration,
    grace: chrono::Duration,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let mut uow = UnitOfWork::begin(ctx).await?;
    let marked = bookings::Entity::update_many()
        .col_expr(flag, Expr::value(true))
        .filter(bookings::Column::Id.eq(b.id.clone()))
        .filter(flag.eq(false))
        .exec(uow.db())
        .await?;
    if marked.rows_affected != 1 {
        return Ok(false);
    }
    let reminder_time = b.start_at - ahead;
    let in_time =
        b.confirmed_at.is_some_and(|c| c <= reminder_time) && now <= reminder_time + grace;
    if in_time {
        notify::reminder(&mut uow, b, kind, lead).await?;
    }
    uow.commit().await?;
    Ok(in_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_retry_comes_within_seconds_and_the_wait_is_capped() {
        let first = backoff(0);
        assert!(first >= Duration::from_secs(2) && first <= Duration::from_millis(2400));
        for n in [8, 11, 40] {
            let b = backoff(n);
            assert!(
                b >= Duration::from_secs(300) && b <= Duration::from_secs(360),
                "{n}: {b:?}"
            );
        }
    }
}
