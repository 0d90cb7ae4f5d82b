//! Holds: a consumer keeps a slot for `HOLD_TTL_SECONDS` while deciding.
//! A hold takes its time through a reservation, so the database refuses a
//! second hold of the same time.

use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;

use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, PaginatorTrait,
    QueryFilter, Set, Statement,
};

use crate::domain::activity::Happened;
use crate::domain::auth::CurrentUser;
use crate::domain::availability::{self, SlotQuery};
use crate::domain::coach::{self, durations_of, parse_timezone};
use crate::domain::context::DomainCtx;
use crate::domain::reservation;
use crate::domain::types::Role;
use crate::domain::uow::UnitOfWork;
use crate::error::{AppError, AppResult, on_constraint};
use entity::{holds, reservations};

/// Live holds plus unpaid bookings one consumer may have at once: a hold
/// turned into a booking awaiting payment still keeps the coach's time, so
/// both count, or one consumer could squat a whole calendar.
pub const MAX_OPEN_RESERVATIONS: u64 = 3;

/// A hold's stored status. An ACTIVE hold past its expiry reads EXPIRED
/// (see [`status_at`]) before the sweep writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldStatus {
    Active,
    Converted,
    Released,
    Expired,
}

impl HoldStatus {
    pub const ALL: [HoldStatus; 4] = [
        HoldStatus::Active,
        HoldStatus::Converted,
        HoldStatus::Released,
        HoldStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HoldStatus::Active => "ACTIVE",
            HoldStatus::Converted => "CONVERTED",
            HoldStatus::Released => "RELEASED",
            HoldStatus::Expired => "EXPIRED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.as_str() == s)
    }
}

/// The hold's status as of `now`.
pub fn status_at(h: &holds::Model, now: DateTime<Utc>) -> HoldStatus {
    match HoldStatus::parse(&h.status) {
        Some(HoldStatus::Active) if h.expires_at <= now => HoldStatus::Expired,
        Some(s) => s,
        None => HoldStatus::Expired,
    }
}

fn conflict(msg: &str) -> AppError {
    AppError::Conflict(msg.into())
}

/// Browsing and signing in need no verified email; holding time and paying
/// do.
pub fn require_verified(user: &CurrentUser) -> AppResult<()> {
    if user.user.email_verified {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "verify your email address first: follow the link we sent (requestEmailVerification sends a new one)",
        ))
    }
}

pub async fn create_hold(
    ctx: &DomainCtx,
    user: &CurrentUser,
    coach_id: &str,
    start: DateTime<Utc>,
    duration_minutes: i32,
) -> AppResult<holds::Model> {
    if user.role != Role::Consumer {
        return Err(AppError::Forbidden("only consumers hold slots"));
    }
    require_verified(user)?;
    let market_id = user
        .user
        .market_id
        .clone()
        .ok_or(AppError::MarketRequired)?;
    // The public listing and its weekly rules: from the search index while
    // it follows every commit (this process's at once; on PostgreSQL other
    // instances' through its listener, within milliseconds), else from the
    // database. Taken time is refused by the database below either way.
    let (profile, rules) = listing_of(ctx, coach_id).await?;
    let profile = &profile;
    if profile.market_id != market_id {
        return Err(AppError::bad_input(
            "coachId",
            "this coach is in another market",
        ));
    }
    if ctx.policy.payouts_required && !coach::can_be_paid(profile) {
        return Err(AppError::bad_input(
            "coachId",
            "this coach cannot take bookings until their payouts are set up",
        ));
    }
    let duration = u32::try_from(duration_minutes)
        .ok()
        .filter(|d| durations_of(profile).contains(d))
        .ok_or_else(|| {
            AppError::bad_input("durationMinutes", "the coach does not offer this duration")
        })?;
    let now = Utc::now();
    // Offered by the rules and the notice; taken time is the database's
    // to refuse (CONFLICT), atomically.
    let offered = availability::is_offered(
        &SlotQuery {
            rules: &rules,
            tz: parse_timezone(&profile.timezone)?,
            from: start,
            to: start + Duration::seconds(1),
            duration_minutes: duration,
            earliest_start: now + ctx.policy.min_booking_notice(),
            busy: &[],
        },
        start,
    );
    if !offered {
        return Err(AppError::bad_input("startAt", "this time is not offered"));
    }
    if start > now + ctx.policy.booking_horizon() {
        return Err(AppError::bad_input(
            "startAt",
            format!(
                "bookings open at most {} days ahead",
                ctx.policy.booking_horizon().num_days()
            ),
        ));
    }
    let end = start + Duration::minutes(i64::from(duration));
    let expires = now + ctx.policy.hold_ttl();

    let hold = holds::Model {
        id: uuid::Uuid::now_v7().to_string(),
        coach_id: profile.id.clone(),
        consumer_id: user.id.clone(),
        start_at: start,
        end_at: end,
        expires_at: expires,
        status: HoldStatus::Active.as_str().into(),
        created_at: now,
    };
    if ctx.db.get_database_backend() == DatabaseBackend::Postgres {
        take_hold_postgres(&ctx.db, &hold, now).await?;
        ctx.activity.happened(Happened::HoldCreated);
        return Ok(hold);
    }
    // SQLite: `BEGIN IMMEDIATE` serialises writers, so the steps can be
    // taken one by one.
    let uow = UnitOfWork::begin(ctx).await?;
    uow.happened(Happened::HoldCreated);
    take_time(uow.db(), &hold, now).await?;
    uow.commit().await?;
    Ok(hold)
}

fn too_many_open() -> AppError {
    conflict("you already hold or owe payment for 3 sessions; pay for, cancel or release one first")
}

fn just_taken() -> AppError {
    conflict("this time was just taken")
}

/// The new hold's reservation row.
fn reservation_of(hold: &holds::Model) -> reservations::ActiveModel {
    reservations::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        coach_id: Set(hold.coach_id.clone()),
        hold_id: Set(hold.id.clone()),
        booking_id: Set(None),
        start_s: Set(hold.start_at.timestamp()),
        end_s: Set(hold.end_at.timestamp()),
        live_until_s: Set(Some(hold.expires_at.timestamp())),
        active: Set(true),
    }
}

/// Writes the hold and takes its time (on SQLite, whose `BEGIN IMMEDIATE`
/// has already serialised writers): refused past the cap, or where live
/// time overlaps.
async fn take_time<C: ConnectionTrait>(
    txn: &C,
    hold: &holds::Model,
    now: DateTime<Utc>,
) -> AppResult<()> {
    if open_reservations(txn, &hold.consumer_id, now).await? >= MAX_OPEN_RESERVATIONS {
        return Err(too_many_open());
    }
    reservation::clear_lapsed(
        txn,
        &hold.coach_id,
        hold.start_at.timestamp(),
        hold.end_at.timestamp(),
        now.timestamp(),
    )
    .await?;
    holds::ActiveModel::from(hold.clone()).insert(txn).await?;
    reservation_of(hold)
        .insert(txn)
        .await
        .map_err(on_constraint(reservation::NO_OVERLAP, just_taken()))?;
    Ok(())
}

/// [`take_time`] on PostgreSQL, the hot path of booking: one call of the
/// `take_hold` function (migration 12, which documents its steps) outside
/// any explicit transaction, so one round trip and one transaction.
async fn take_hold_postgres<C: ConnectionTrait>(
    db: &C,
    hold: &holds::Model,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT take_hold($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) AS outcome",
            [
                hold.id.clone().into(),
                hold.coach_id.clone().into(),
                hold.consumer_id.clone().into(),
                hold.start_at.into(),
                hold.end_at.into(),
                hold.expires_at.into(),
                hold.created_at.into(),
                now.timestamp().into(),
                (MAX_OPEN_RESERVATIONS as i64).into(),
                uuid::Uuid::now_v7().to_string().into(),
                hold.start_at.timestamp().into(),
                hold.end_at.timestamp().into(),
                hold.expires_at.timestamp().into(),
            ],
        ))
        .await
        .map_err(on_constraint(reservation::NO_OVERLAP, just_taken()))?
        .ok_or_else(|| AppError::internal("the hold statement returned no row"))?;
    match row.try_get::<String>("", "outcome")?.as_str() {
        "TAKEN" => Ok(()),
        "CAP" => Err(too_many_open()),
        "TAKEN_BY_OTHER" => Err(just_taken()),
        other => Err(AppError::internal(format!("take_hold answered {other}"))),
    }
}

/// A public coach's profile and weekly rules, for a hold.
async fn listing_of(
    ctx: &DomainCtx,
    coach_id: &str,
) -> AppResult<(Arc<entity::coach_profiles::Model>, Vec<availability::Rule>)> {
    let follows_commits = ctx.listings.is_listening()
        || ctx.db.get_database_backend() == sea_orm::DatabaseBackend::Sqlite;
    if follows_commits {
        let listing = ctx.listings.snapshot(&ctx.db).await?;
        let row = listing.get(coach_id).ok_or(AppError::NotFound("coach"))?;
        let rules = row.availability.iter().map(availability::rule_of).collect();
        return Ok((row.profile.clone(), rules));
    }
    let profile = coach::find_visible(&ctx.db, coach_id, None)
        .await?
        .ok_or(AppError::NotFound("coach"))?;
    let rules = availability::load_rules(&ctx.db, &profile.id).await?;
    Ok((Arc::new(profile), rules))
}

/// The consumer's reservations that still keep a coach's time and can
/// lapse: live holds, and bookings made from them that await payment (a
/// confirmed booking's reservation no longer lapses).
pub async fn open_reservations<C: ConnectionTrait>(
    db: &C,
    consumer_id: &str,
    now: DateTime<Utc>,
) -> AppResult<u64> {
    // Only an ACTIVE hold or one CONVERTED into a booking can still keep
    // time (releasing or expiring a hold frees its reservation): the index
    // on (consumer, status) then skips the consumer's history.
    let own_holds = Query::select()
        .column(holds::Column::Id)
        .from(holds::Entity)
        .and_where(holds::Column::ConsumerId.eq(consumer_id))
        .and_where(
            holds::Column::Status
                .is_in([HoldStatus::Active.as_str(), HoldStatus::Converted.as_str()]),
        )
        .to_owned();
    Ok(reservations::Entity::find()
        .filter(reservations::Column::Active.eq(true))
        .filter(reservations::Column::LiveUntilS.gt(now.timestamp()))
        .filter(reservations::Column::HoldId.in_subquery(own_holds))
        .count(db)
        .await?)
}

pub async fn own_hold<C: ConnectionTrait>(
    db: &C,
    user: &CurrentUser,
    hold_id: &str,
) -> AppResult<holds::Model> {
    if hold_id.len() > 64 {
        return Err(AppError::NotFound("hold"));
    }
    holds::Entity::find_by_id(hold_id.to_string())
        .one(db)
        .await?
        .filter(|h| h.consumer_id == user.id)
        .ok_or(AppError::NotFound("hold"))
}

/// Moves an ACTIVE, unexpired hold to `to`; false when it was not active.
pub async fn take_active<C: ConnectionTrait>(
    db: &C,
    hold_id: &str,
    to: HoldStatus,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let res = holds::Entity::update_many()
        .col_expr(holds::Column::Status, Expr::value(to.as_str()))
        .filter(holds::Column::Id.eq(hold_id))
        .filter(holds::Column::Status.eq(HoldStatus::Active.as_str()))
        .filter(holds::Column::ExpiresAt.gt(now))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Releases the caller's active hold; the time is free at once.
pub async fn release_hold(ctx: &DomainCtx, user: &CurrentUser, hold_id: &str) -> AppResult<()> {
    if ctx.db.get_database_backend() == DatabaseBackend::Postgres {
        return release_hold_postgres(ctx, user, hold_id).await;
    }
    let hold = own_hold(&ctx.db, user, hold_id).await?;
    let uow = UnitOfWork::begin(ctx).await?;
    if !take_active(uow.db(), &hold.id, HoldStatus::Released, Utc::now()).await? {
        return Err(conflict("the hold is no longer active"));
    }
    reservations::Entity::update_many()
        .col_expr(reservations::Column::Active, Expr::value(false))
        .filter(reservations::Column::HoldId.eq(hold.id))
        .filter(reservations::Column::BookingId.is_null())
        .exec(uow.db())
        .await?;
    uow.commit().await
}

/// [`release_hold`] as one statement, so one transaction with nothing
/// else to record: the hold (the caller's, still active) and its time
/// together. Only a refusal looks further, to say which it is.
async fn release_hold_postgres(
    ctx: &DomainCtx,
    user: &CurrentUser,
    hold_id: &str,
) -> AppResult<()> {
    if hold_id.len() > 64 {
        return Err(AppError::NotFound("hold"));
    }
    let row = ctx
        .db
        .query_one_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "WITH released AS ( \
               UPDATE holds SET status = $4 \
               WHERE id = $1 AND consumer_id = $2 AND status = $5 AND expires_at > $3 RETURNING id), \
             freed AS ( \
               UPDATE reservations SET active = false \
               WHERE hold_id = $1 AND booking_id IS NULL AND EXISTS (SELECT 1 FROM released)) \
             SELECT count(*) AS released FROM released",
            [
                hold_id.into(),
                user.id.clone().into(),
                Utc::now().into(),
                HoldStatus::Released.as_str().into(),
                HoldStatus::Active.as_str().into(),
            ],
        ))
        .await?
        .ok_or_else(|| AppError::internal("the release statement returned no row"))?;
    if row.try_get::<i64>("", "released")? == 1 {
        return Ok(());
    }
    own_hold(&ctx.db, user, hold_id).await?;
    Err(conflict("the hold is no longer active"))
}

/// Lapsed holds become EXPIRED, and lapsed reservations inactive (their
/// time was already free by the clock; this brings the records in line).
pub async fn expire_lapsed(ctx: &DomainCtx, now: DateTime<Utc>) -> AppResult<usize> {
    let uow = UnitOfWork::begin(ctx).await?;
    // Conditional on the status: of two instances sweeping at once, each
    // hold is expired (and audited) by the one whose update took it.
    let expired = holds::Entity::update_many()
        .col_expr(
            holds::Column::Status,
            Expr::value(HoldStatus::Expired.as_str()),
        )
        .filter(holds::Column::Status.eq(HoldStatus::Active.as_str()))
        .filter(holds::Column::ExpiresAt.lte(now))
        .exec_with_returning(uow.db())
        .await?;
    for h in &expired {
        uow.audit(crate::domain::audit::Entry {
            action: crate::domain::audit::action::HOLD_EXPIRED,
            target_type: Some("hold"),
            target_id: Some(&h.id),
            ..Default::default()
        })
        .await?;
    }
    let changed = expired.len();
    reservations::Entity::update_many()
        .col_expr(reservations::Column::Active, Expr::value(false))
        .filter(reservations::Column::Active.eq(true))
        .filter(reservations::Column::LiveUntilS.lte(now.timestamp()))
        .exec(uow.db())
        .await?;
    uow.commit().await?;
    Ok(changed)
}
