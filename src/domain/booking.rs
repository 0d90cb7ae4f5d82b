//! Holds and bookings: the state machine, prices, the cancellation and
//! no-show policy (pure, unit-tested), and the operations that move money
//! and time, each in one transaction with its audit entry. Events are
//! published and refunds executed only after the commit.

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DatabaseConnection,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, Statement,
};

use crate::app::AppState;
use crate::domain::audit::{self, Entry, action};
use crate::domain::auth::CurrentUser;
use crate::domain::availability::{self, SlotQuery};
use crate::domain::coach::{self, durations_of, parse_timezone};
use crate::domain::payment::{self, CheckoutRequest};
use crate::domain::types::Role;
use crate::error::{AppError, AppResult, on_constraint};
use crate::events::BookingEvent;
use entity::{bookings, coach_profiles, holds, payments, refunds, reservations};

pub const MAX_ACTIVE_HOLDS: u64 = 3;
/// How long a checkout stays open (Stripe's minimum session lifetime).
pub const PAYMENT_WINDOW: Duration = Duration::minutes(30);
/// Confirmed sessions nobody reports on are completed this long after the end.
pub const AUTO_COMPLETE_AFTER: Duration = Duration::hours(48);
/// A consumer cancelling at least this long before the start gets a full refund.
pub const FREE_CANCELLATION: Duration = Duration::hours(24);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingStatus {
    PendingPayment,
    Confirmed,
    Completed,
    Cancelled,
    NoShowConsumer,
    NoShowCoach,
}

impl BookingStatus {
    pub const ALL: [BookingStatus; 6] = [
        BookingStatus::PendingPayment,
        BookingStatus::Confirmed,
        BookingStatus::Completed,
        BookingStatus::Cancelled,
        BookingStatus::NoShowConsumer,
        BookingStatus::NoShowCoach,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::PendingPayment => "PENDING_PAYMENT",
            BookingStatus::Confirmed => "CONFIRMED",
            BookingStatus::Completed => "COMPLETED",
            BookingStatus::Cancelled => "CANCELLED",
            BookingStatus::NoShowConsumer => "NO_SHOW_CONSUMER",
            BookingStatus::NoShowCoach => "NO_SHOW_COACH",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.as_str() == s)
    }
}

/// What happens to a booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    PaymentSucceeded,
    PaymentExpired,
    Cancel,
    Complete,
    ConsumerNoShow,
    CoachNoShow,
}

/// The whole transition table. Anything not listed is refused.
pub fn next(from: BookingStatus, event: Event) -> AppResult<BookingStatus> {
    use BookingStatus as S;
    use Event as E;
    match (from, event) {
        (S::PendingPayment, E::PaymentSucceeded) => Ok(S::Confirmed),
        (S::PendingPayment, E::PaymentExpired) => Ok(S::Cancelled),
        (S::PendingPayment, E::Cancel) | (S::Confirmed, E::Cancel) => Ok(S::Cancelled),
        (S::Confirmed, E::Complete) => Ok(S::Completed),
        (S::Confirmed, E::ConsumerNoShow) => Ok(S::NoShowConsumer),
        (S::Confirmed, E::CoachNoShow) => Ok(S::NoShowCoach),
        (from, event) => Err(AppError::Conflict(format!(
            "a {} booking cannot take {event:?}",
            from.as_str()
        ))),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    pub price_minor: i64,
    pub platform_fee_minor: i64,
    pub coach_payout_minor: i64,
}

/// Hourly rate x duration, rounded half up to a minor unit; the platform
/// fee is `fee_bps` of it (rounded half up), the coach gets the rest.
pub fn price(hourly_rate_minor: i64, minutes: i64, fee_bps: u32) -> Price {
    let price_minor = (hourly_rate_minor * minutes + 30) / 60;
    let platform_fee_minor = (price_minor * i64::from(fee_bps) + 5_000) / 10_000;
    Price {
        price_minor,
        platform_fee_minor,
        coach_payout_minor: price_minor - platform_fee_minor,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    Consumer,
    Coach,
}

/// How much of `paid` a cancellation refunds: the coach cancelling always
/// refunds in full; the consumer gets a full refund at least 24 h before
/// the start, and nothing later.
pub fn cancellation_refund(by: Party, now: DateTime<Utc>, start: DateTime<Utc>, paid: i64) -> i64 {
    match by {
        Party::Coach => paid,
        Party::Consumer if start - now >= FREE_CANCELLATION => paid,
        Party::Consumer => 0,
    }
}

/// A no-show report: the consumer reporting the coach gets a full refund;
/// the coach reporting the consumer refunds nothing.
pub fn no_show(reporter: Party, paid: i64) -> (Event, i64) {
    match reporter {
        Party::Consumer => (Event::CoachNoShow, paid),
        Party::Coach => (Event::ConsumerNoShow, 0),
    }
}

fn conflict(msg: &str) -> AppError {
    AppError::Conflict(msg.into())
}

/// Time already taken on a coach's calendar in `[from, to)`: active
/// reservations that have not lapsed (lapsing is a time comparison).
pub async fn busy_intervals<C: ConnectionTrait>(
    db: &C,
    coach_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> AppResult<Vec<(DateTime<Utc>, DateTime<Utc>)>> {
    let now = Utc::now().timestamp();
    let rows = reservations::Entity::find()
        .filter(reservations::Column::CoachId.eq(coach_id))
        .filter(reservations::Column::Active.eq(true))
        .filter(
            Condition::any()
                .add(reservations::Column::LiveUntilS.is_null())
                .add(reservations::Column::LiveUntilS.gt(now)),
        )
        .filter(reservations::Column::StartS.lt(to.timestamp()))
        .filter(reservations::Column::EndS.gt(from.timestamp()))
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some((
                DateTime::from_timestamp(r.start_s, 0)?,
                DateTime::from_timestamp(r.end_s, 0)?,
            ))
        })
        .collect())
}

/// Frees lapsed reservations overlapping `[start, end)` so an insert can
/// take their place; the overlap rule then only sees live ones.
async fn clear_lapsed<C: ConnectionTrait>(
    db: &C,
    coach_id: &str,
    start: i64,
    end: i64,
    now: i64,
) -> AppResult<()> {
    reservations::Entity::update_many()
        .col_expr(reservations::Column::Active, Expr::value(false))
        .filter(reservations::Column::CoachId.eq(coach_id))
        .filter(reservations::Column::Active.eq(true))
        .filter(reservations::Column::LiveUntilS.lte(now))
        .filter(reservations::Column::StartS.lt(end))
        .filter(reservations::Column::EndS.gt(start))
        .exec(db)
        .await?;
    Ok(())
}

/// Serialises, on PostgreSQL, the hold creations of one consumer (for the
/// 3-hold cap) and then of one coach. The exclusion constraint alone would
/// still refuse overlaps, but concurrent inserters of overlapping rows can
/// deadlock on each other's uncommitted rows and wait for the deadlock
/// detector; taking the coach's row lock first makes them queue instead.
/// The order (user, then coach) is the same everywhere, so these locks
/// cannot deadlock. SQLite's `BEGIN IMMEDIATE` already serialises writers.
async fn lock_for_hold<C: ConnectionTrait>(db: &C, user_id: &str, coach_id: &str) -> AppResult<()> {
    if db.get_database_backend() == DatabaseBackend::Postgres {
        for (sql, id) in [
            (
                "SELECT id FROM users WHERE id = $1 FOR NO KEY UPDATE",
                user_id,
            ),
            (
                "SELECT id FROM coach_profiles WHERE id = $1 FOR NO KEY UPDATE",
                coach_id,
            ),
        ] {
            db.execute_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                sql,
                [id.into()],
            ))
            .await?;
        }
    }
    Ok(())
}

pub async fn create_hold(
    state: &AppState,
    user: &CurrentUser,
    coach_id: &str,
    start: DateTime<Utc>,
    duration_minutes: i32,
) -> AppResult<holds::Model> {
    if user.role != Role::Consumer {
        return Err(AppError::Forbidden("only consumers hold slots"));
    }
    let db = &state.db;
    let market_id = user
        .user
        .market_id
        .clone()
        .ok_or(AppError::MarketRequired)?;
    let profile = coach::find_visible(db, coach_id, None)
        .await?
        .ok_or(AppError::NotFound("coach"))?;
    if profile.market_id != market_id {
        return Err(AppError::bad_input(
            "coachId",
            "this coach is in another market",
        ));
    }
    let duration = u32::try_from(duration_minutes)
        .ok()
        .filter(|d| durations_of(&profile).contains(d))
        .ok_or_else(|| {
            AppError::bad_input("durationMinutes", "the coach does not offer this duration")
        })?;
    let now = Utc::now();
    let notice = Duration::from_std(state.settings.min_booking_notice).unwrap_or_default();
    let rules = coach::load_rules(db, &profile.id).await?;
    // Offered by the rules and the notice; taken time is the database's
    // to refuse (CONFLICT), atomically.
    let offered = availability::is_offered(
        &SlotQuery {
            rules: &rules,
            tz: parse_timezone(&profile.timezone)?,
            from: start,
            to: start + Duration::seconds(1),
            duration_minutes: duration,
            earliest_start: now + notice,
            busy: &[],
        },
        start,
    );
    if !offered {
        return Err(AppError::bad_input("startAt", "this time is not offered"));
    }
    let end = start + Duration::minutes(i64::from(duration));
    let expires =
        now + Duration::from_std(state.settings.hold_ttl).unwrap_or(Duration::minutes(10));

    let txn = crate::db::begin(db).await?;
    lock_for_hold(&txn, &user.id, &profile.id).await?;
    let active = holds::Entity::find()
        .filter(holds::Column::ConsumerId.eq(user.id.clone()))
        .filter(holds::Column::Status.eq("ACTIVE"))
        .filter(holds::Column::ExpiresAt.gt(now))
        .count(&txn)
        .await?;
    if active >= MAX_ACTIVE_HOLDS {
        return Err(conflict(
            "you already hold 3 slots; book or release one first",
        ));
    }
    clear_lapsed(
        &txn,
        &profile.id,
        start.timestamp(),
        end.timestamp(),
        now.timestamp(),
    )
    .await?;
    let hold = holds::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        coach_id: Set(profile.id.clone()),
        consumer_id: Set(user.id.clone()),
        start_at: Set(start),
        end_at: Set(end),
        expires_at: Set(expires),
        status: Set("ACTIVE".into()),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    reservations::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        coach_id: Set(profile.id.clone()),
        hold_id: Set(hold.id.clone()),
        booking_id: Set(None),
        start_s: Set(start.timestamp()),
        end_s: Set(end.timestamp()),
        live_until_s: Set(Some(expires.timestamp())),
        active: Set(true),
    }
    .insert(&txn)
    .await
    .map_err(on_constraint(
        "reservations_no_overlap",
        conflict("this time was just taken"),
    ))?;
    txn.commit().await?;
    Ok(hold)
}

async fn own_hold<C: ConnectionTrait>(
    db: &C,
    user: &CurrentUser,
    hold_id: &str,
) -> AppResult<holds::Model> {
    holds::Entity::find_by_id(hold_id.to_string())
        .one(db)
        .await?
        .filter(|h| h.consumer_id == user.id)
        .ok_or(AppError::NotFound("hold"))
}

/// Releases the caller's active hold; the time is free at once.
pub async fn release_hold(
    db: &DatabaseConnection,
    user: &CurrentUser,
    hold_id: &str,
) -> AppResult<()> {
    let hold = own_hold(db, user, hold_id).await?;
    let txn = crate::db::begin(db).await?;
    let res = holds::Entity::update_many()
        .col_expr(holds::Column::Status, Expr::value("RELEASED"))
        .filter(holds::Column::Id.eq(hold.id.clone()))
        .filter(holds::Column::Status.eq("ACTIVE"))
        .filter(holds::Column::ExpiresAt.gt(Utc::now()))
        .exec(&txn)
        .await?;
    if res.rows_affected != 1 {
        return Err(conflict("the hold is no longer active"));
    }
    reservations::Entity::update_many()
        .col_expr(reservations::Column::Active, Expr::value(false))
        .filter(reservations::Column::HoldId.eq(hold.id))
        .filter(reservations::Column::BookingId.is_null())
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(())
}

fn room_link(public_base_url: &str) -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{}/room/{}",
        public_base_url,
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Turns the caller's active hold into a PENDING_PAYMENT booking with a
/// payment to complete. The reservation row carries over, so the time is
/// never free in between; of concurrent calls on one hold exactly one wins.
pub async fn book_hold(
    state: &AppState,
    user: &CurrentUser,
    hold_id: &str,
    package_purchase_id: Option<&str>,
) -> AppResult<(bookings::Model, payments::Model)> {
    let db = &state.db;
    let hold = own_hold(db, user, hold_id).await?;
    if package_purchase_id.is_some() {
        return Err(AppError::NotFound("package purchase"));
    }
    let now = Utc::now();
    if hold.status != "ACTIVE" || hold.expires_at <= now {
        return Err(conflict("the hold has expired or was already used"));
    }
    let profile = coach::get(db, &hold.coach_id).await?;
    let minutes = (hold.end_at - hold.start_at).num_minutes();
    let p = price(
        profile.hourly_rate_minor,
        minutes,
        state.settings.platform_fee_bps,
    );
    let deadline = now + PAYMENT_WINDOW;

    let txn = crate::db::begin(db).await?;
    let converted = holds::Entity::update_many()
        .col_expr(holds::Column::Status, Expr::value("CONVERTED"))
        .filter(holds::Column::Id.eq(hold.id.clone()))
        .filter(holds::Column::Status.eq("ACTIVE"))
        .filter(holds::Column::ExpiresAt.gt(now))
        .exec(&txn)
        .await?;
    if converted.rows_affected != 1 {
        return Err(conflict("the hold has expired or was already used"));
    }
    let booking_id = uuid::Uuid::now_v7().to_string();
    let carried = reservations::Entity::update_many()
        .col_expr(
            reservations::Column::BookingId,
            Expr::value(booking_id.clone()),
        )
        .col_expr(
            reservations::Column::LiveUntilS,
            Expr::value(deadline.timestamp()),
        )
        .filter(reservations::Column::HoldId.eq(hold.id.clone()))
        .filter(reservations::Column::Active.eq(true))
        .filter(reservations::Column::LiveUntilS.gt(now.timestamp()))
        .exec(&txn)
        .await?;
    if carried.rows_affected != 1 {
        return Err(conflict("the hold has expired"));
    }
    let booking = bookings::ActiveModel {
        id: Set(booking_id.clone()),
        hold_id: Set(hold.id.clone()),
        coach_id: Set(profile.id.clone()),
        coach_user_id: Set(profile.user_id.clone()),
        consumer_id: Set(user.id.clone()),
        start_at: Set(hold.start_at),
        end_at: Set(hold.end_at),
        start_s: Set(hold.start_at.timestamp()),
        status: Set(BookingStatus::PendingPayment.as_str().into()),
        price_minor: Set(p.price_minor),
        currency: Set(profile.currency.clone()),
        platform_fee_minor: Set(p.platform_fee_minor),
        coach_payout_minor: Set(p.coach_payout_minor),
        payment_deadline: Set(deadline),
        meeting_url: Set(None),
        cancellation_reason: Set(None),
        cancelled_by: Set(None),
        refunded_minor: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let payment = payments::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        booking_id: Set(booking.id.clone()),
        status: Set("PENDING".into()),
        amount_minor: Set(p.price_minor),
        currency: Set(profile.currency.clone()),
        refunded_minor: Set(0),
        provider: Set(state.payments.name().into()),
        provider_ref: Set(None),
        checkout_url: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    audit_booking(
        &txn,
        action::BOOKING_CREATED,
        Some(&user.id),
        &booking.id,
        None,
    )
    .await?;
    txn.commit().await?;
    state.events.publish(BookingEvent {
        booking: booking.clone(),
    });

    // Outside the transaction: the provider is the outside world.
    let checkout = state
        .payments
        .create_checkout(CheckoutRequest {
            payment_id: &payment.id,
            amount_minor: payment.amount_minor,
            currency: &payment.currency,
            description: format!("{} min session with {}", minutes, profile.display_name),
            destination_account: profile.stripe_account_id.as_deref(),
            application_fee_minor: p.platform_fee_minor,
        })
        .await
        .map_err(|e| {
            tracing::warn!(error = %e.0, "checkout could not be created");
            AppError::Payment("the payment provider could not start a checkout".into())
        })?;
    let mut m: payments::ActiveModel = payment.into();
    m.provider_ref = Set(Some(checkout.provider_ref));
    m.checkout_url = Set(Some(checkout.url));
    m.updated_at = Set(Utc::now());
    let payment = m.update(db).await?;
    Ok((booking, payment))
}

async fn audit_booking<C: ConnectionTrait>(
    db: &C,
    act: &str,
    actor: Option<&str>,
    booking_id: &str,
    detail: Option<serde_json::Value>,
) -> AppResult<()> {
    audit::record(
        db,
        Entry {
            action: act,
            actor_id: actor,
            target_type: Some("booking"),
            target_id: Some(booking_id),
            ip: None,
            detail,
        },
    )
    .await
}

/// Applies `event` to a booking through the transition table, only if the
/// booking is still in the status it was read in; returns the new status.
/// Every status change goes through here, so the table is the one rule.
async fn move_status<C: ConnectionTrait>(
    db: &C,
    booking: &bookings::Model,
    event: Event,
    set: impl FnOnce(sea_orm::UpdateMany<bookings::Entity>) -> sea_orm::UpdateMany<bookings::Entity>,
) -> AppResult<BookingStatus> {
    let to = next(status_of(booking)?, event)?;
    let update = bookings::Entity::update_many()
        .col_expr(bookings::Column::Status, Expr::value(to.as_str()))
        .col_expr(bookings::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(bookings::Column::Id.eq(booking.id.clone()))
        .filter(bookings::Column::Status.eq(booking.status.clone()));
    if set(update).exec(db).await?.rows_affected != 1 {
        return Err(conflict("the booking changed meanwhile; try again"));
    }
    Ok(to)
}

async fn free_reservation<C: ConnectionTrait>(db: &C, booking_id: &str) -> AppResult<()> {
    reservations::Entity::update_many()
        .col_expr(reservations::Column::Active, Expr::value(false))
        .filter(reservations::Column::BookingId.eq(booking_id))
        .exec(db)
        .await?;
    Ok(())
}

async fn payment_of<C: ConnectionTrait>(
    db: &C,
    booking_id: &str,
) -> AppResult<Option<payments::Model>> {
    Ok(payments::Entity::find()
        .filter(payments::Column::BookingId.eq(booking_id))
        .one(db)
        .await?)
}

async fn reload(db: &DatabaseConnection, id: &str) -> AppResult<bookings::Model> {
    bookings::Entity::find_by_id(id.to_string())
        .one(db)
        .await?
        .ok_or(AppError::NotFound("booking"))
}

/// After a commit: tell subscribers, and send decided refunds.
async fn after_commit(state: &AppState, booking: &bookings::Model, refund: Option<refunds::Model>) {
    state.events.publish(BookingEvent {
        booking: booking.clone(),
    });
    if let Some(r) = refund
        && let Err(e) =
            payment::execute_pending_refunds(&state.db, state.payments.as_ref(), Some(&r.id)).await
    {
        tracing::warn!(error = ?e, "refund will be retried by the worker");
    }
}

/// A payment completed (dev checkout page now, Stripe's webhook later).
/// Confirms the booking in one transaction; a second completion of the same
/// payment changes nothing. A payment that arrives after the booking lapsed
/// and its time was taken is refunded in full, never kept.
pub async fn complete_payment(state: &AppState, payment_id: &str) -> AppResult<bool> {
    let db = &state.db;
    let payment = payments::Entity::find_by_id(payment_id.to_string())
        .one(db)
        .await?
        .ok_or(AppError::NotFound("payment"))?;
    let txn = crate::db::begin(db).await?;
    let first = payments::Entity::update_many()
        .col_expr(payments::Column::Status, Expr::value("SUCCEEDED"))
        .col_expr(payments::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(payments::Column::Id.eq(payment.id.clone()))
        .filter(payments::Column::Status.eq("PENDING"))
        .exec(&txn)
        .await?;
    if first.rows_affected != 1 {
        return Ok(false);
    }
    let payment = payments::Entity::find_by_id(payment.id.clone())
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("payment"))?;
    let booking = bookings::Entity::find_by_id(payment.booking_id.clone())
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("booking"))?;
    audit::record(
        &txn,
        Entry {
            action: action::PAYMENT_SUCCEEDED,
            actor_id: None,
            target_type: Some("payment"),
            target_id: Some(&payment.id),
            ip: None,
            detail: Some(
                serde_json::json!({ "booking": booking.id, "amountMinor": payment.amount_minor }),
            ),
        },
    )
    .await?;
    let kept = booking.status == BookingStatus::PendingPayment.as_str()
        && reservations::Entity::update_many()
            .col_expr(
                reservations::Column::LiveUntilS,
                Expr::value(Option::<i64>::None),
            )
            .filter(reservations::Column::BookingId.eq(booking.id.clone()))
            .filter(reservations::Column::Active.eq(true))
            .exec(&txn)
            .await?
            .rows_affected
            == 1;
    let mut refund = None;
    if kept {
        let profile: coach_profiles::Model = coach::get(&txn, &booking.coach_id).await?;
        let link = profile
            .meeting_url
            .clone()
            .unwrap_or_else(|| room_link(&state.settings.public_base_url));
        move_status(&txn, &booking, Event::PaymentSucceeded, |u| {
            u.col_expr(bookings::Column::MeetingUrl, Expr::value(link))
        })
        .await?;
        audit_booking(&txn, action::BOOKING_CONFIRMED, None, &booking.id, None).await?;
    } else {
        if booking.status == BookingStatus::PendingPayment.as_str() {
            move_status(&txn, &booking, Event::PaymentExpired, |u| {
                u.col_expr(bookings::Column::CancelledBy, Expr::value("SYSTEM"))
                    .col_expr(
                        bookings::Column::CancellationReason,
                        Expr::value("payment arrived after the slot was released"),
                    )
            })
            .await?;
        }
        refund =
            payment::decide_refund(&txn, &payment, payment.amount_minor, "late payment").await?;
        bookings::Entity::update_many()
            .col_expr(
                bookings::Column::RefundedMinor,
                Expr::col(bookings::Column::RefundedMinor).add(payment.amount_minor),
            )
            .filter(bookings::Column::Id.eq(booking.id.clone()))
            .exec(&txn)
            .await?;
        audit_booking(
            &txn,
            action::REFUND_CREATED,
            None,
            &booking.id,
            Some(serde_json::json!({ "amountMinor": payment.amount_minor })),
        )
        .await?;
    }
    txn.commit().await?;
    let booking = reload(db, &booking.id).await?;
    after_commit(state, &booking, refund).await;
    Ok(true)
}

/// The booking if `user` takes part in it (or is an admin); NOT_FOUND
/// otherwise, so strangers learn nothing.
pub async fn get_for(
    db: &DatabaseConnection,
    user: &CurrentUser,
    booking_id: &str,
) -> AppResult<bookings::Model> {
    if booking_id.len() > 64 {
        return Err(AppError::NotFound("booking"));
    }
    bookings::Entity::find_by_id(booking_id.to_string())
        .one(db)
        .await?
        .filter(|b| {
            user.role == Role::Admin || b.consumer_id == user.id || b.coach_user_id == user.id
        })
        .ok_or(AppError::NotFound("booking"))
}

fn party(user: &CurrentUser, b: &bookings::Model) -> AppResult<Party> {
    if b.consumer_id == user.id {
        Ok(Party::Consumer)
    } else if b.coach_user_id == user.id {
        Ok(Party::Coach)
    } else {
        Err(AppError::NotFound("booking"))
    }
}

/// A decided change of a booking, ready to apply.
struct Settlement<'a> {
    event: Event,
    refund_minor: i64,
    act: &'a str,
    /// A cancellation's reason (also records who cancelled).
    reason: Option<String>,
    /// Whether the coach's time becomes free again.
    free_time: bool,
}

/// Applies a refund-bearing transition in one transaction.
async fn settle(
    state: &AppState,
    user: &CurrentUser,
    booking: &bookings::Model,
    change: Settlement<'_>,
) -> AppResult<bookings::Model> {
    let Settlement {
        event,
        refund_minor,
        act,
        reason,
        free_time,
    } = change;
    let db = &state.db;
    let txn = crate::db::begin(db).await?;
    let cancelled_by = match party(user, booking) {
        Ok(Party::Consumer) => "CONSUMER",
        Ok(Party::Coach) => "COACH",
        Err(_) => "ADMIN",
    };
    let to = move_status(&txn, booking, event, |u| {
        let u = u.col_expr(
            bookings::Column::RefundedMinor,
            Expr::col(bookings::Column::RefundedMinor).add(refund_minor),
        );
        match &reason {
            Some(r) => u
                .col_expr(bookings::Column::CancellationReason, Expr::value(r.clone()))
                .col_expr(bookings::Column::CancelledBy, Expr::value(cancelled_by)),
            None => u,
        }
    })
    .await?;
    if free_time {
        free_reservation(&txn, &booking.id).await?;
    }
    let mut refund = None;
    if refund_minor > 0 {
        let payment = payment_of(&txn, &booking.id)
            .await?
            .ok_or_else(|| AppError::internal("paid booking without payment"))?;
        refund = payment::decide_refund(&txn, &payment, refund_minor, act).await?;
        audit_booking(
            &txn,
            action::REFUND_CREATED,
            Some(&user.id),
            &booking.id,
            Some(serde_json::json!({ "amountMinor": refund_minor })),
        )
        .await?;
    }
    audit_booking(
        &txn,
        act,
        Some(&user.id),
        &booking.id,
        Some(serde_json::json!({ "to": to.as_str(), "refundMinor": refund_minor })),
    )
    .await?;
    txn.commit().await?;
    let booking = reload(db, &booking.id).await?;
    after_commit(state, &booking, refund).await;
    Ok(booking)
}

fn status_of(b: &bookings::Model) -> AppResult<BookingStatus> {
    BookingStatus::parse(&b.status).ok_or_else(|| AppError::internal("unknown booking status"))
}

pub async fn cancel(
    state: &AppState,
    user: &CurrentUser,
    booking_id: &str,
    reason: &str,
) -> AppResult<bookings::Model> {
    let booking = get_for(&state.db, user, booking_id).await?;
    let by = party(user, &booking)?;
    let reason = reason.trim();
    if reason.chars().count() > 1000 {
        return Err(AppError::bad_input("reason", "at most 1000 characters"));
    }
    let from = status_of(&booking)?;
    next(from, Event::Cancel)?;
    let now = Utc::now();
    if from == BookingStatus::Confirmed && now >= booking.start_at {
        return Err(conflict(
            "the session has started; report a no-show instead",
        ));
    }
    let refund = if from == BookingStatus::Confirmed {
        cancellation_refund(
            by,
            now,
            booking.start_at,
            booking.price_minor - booking.refunded_minor,
        )
    } else {
        0
    };
    settle(
        state,
        user,
        &booking,
        Settlement {
            event: Event::Cancel,
            refund_minor: refund,
            act: action::BOOKING_CANCELLED,
            reason: Some(reason.to_string()),
            free_time: true,
        },
    )
    .await
}

pub async fn complete(
    state: &AppState,
    user: &CurrentUser,
    booking_id: &str,
) -> AppResult<bookings::Model> {
    let booking = get_for(&state.db, user, booking_id).await?;
    if party(user, &booking)? != Party::Coach {
        return Err(AppError::Forbidden("only the coach completes a session"));
    }
    next(status_of(&booking)?, Event::Complete)?;
    if Utc::now() < booking.end_at {
        return Err(conflict("the session has not ended yet"));
    }
    settle(
        state,
        user,
        &booking,
        Settlement {
            event: Event::Complete,
            refund_minor: 0,
            act: action::BOOKING_COMPLETED,
            reason: None,
            free_time: false,
        },
    )
    .await
}

pub async fn report_no_show(
    state: &AppState,
    user: &CurrentUser,
    booking_id: &str,
) -> AppResult<bookings::Model> {
    let booking = get_for(&state.db, user, booking_id).await?;
    let (event, refund) = no_show(
        party(user, &booking)?,
        booking.price_minor - booking.refunded_minor,
    );
    next(status_of(&booking)?, event)?;
    if Utc::now() < booking.start_at {
        return Err(conflict("the session has not started yet"));
    }
    settle(
        state,
        user,
        &booking,
        Settlement {
            event,
            refund_minor: refund,
            act: action::BOOKING_NO_SHOW,
            reason: None,
            free_time: false,
        },
    )
    .await
}

pub fn hold_status(h: &holds::Model, now: DateTime<Utc>) -> &str {
    if h.status == "ACTIVE" && h.expires_at <= now {
        "EXPIRED"
    } else {
        &h.status
    }
}

pub struct BookingPage {
    pub items: Vec<bookings::Model>,
    pub cursors: Vec<String>,
    pub has_next: bool,
    pub total_count: u64,
}

/// The caller's bookings (as consumer or as coach), newest start first.
pub async fn my_bookings(
    db: &DatabaseConnection,
    user: &CurrentUser,
    status: Option<BookingStatus>,
    first: Option<i32>,
    after: Option<&str>,
) -> AppResult<BookingPage> {
    let limit = crate::domain::search::page_size(first)?;
    let mut cond = Condition::any()
        .add(bookings::Column::ConsumerId.eq(user.id.clone()))
        .add(bookings::Column::CoachUserId.eq(user.id.clone()));
    if let Some(s) = status {
        cond = Condition::all()
            .add(cond)
            .add(bookings::Column::Status.eq(s.as_str()));
    }
    let mut q = bookings::Entity::find().filter(cond.clone());
    if let Some(a) = after {
        let bad = || AppError::bad_input("after", "this cursor does not belong to this listing");
        let raw = String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(a)
                .map_err(|_| bad())?,
        )
        .map_err(|_| bad())?;
        let (s, id) = raw.split_once(':').ok_or_else(bad)?;
        let s: i64 = s.parse().map_err(|_| bad())?;
        q = q.filter(
            Expr::tuple([
                Expr::col(bookings::Column::StartS),
                Expr::col(bookings::Column::Id),
            ])
            .lt(Expr::tuple([Expr::val(s), Expr::val(id.to_string())])),
        );
    }
    let mut items = q
        .order_by_desc(bookings::Column::StartS)
        .order_by_desc(bookings::Column::Id)
        .limit(limit + 1)
        .all(db)
        .await?;
    let has_next = items.len() as u64 > limit;
    items.truncate(limit as usize);
    let total_count = bookings::Entity::find().filter(cond).count(db).await?;
    let cursors = items
        .iter()
        .map(|b| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(format!("{}:{}", b.start_s, b.id))
        })
        .collect();
    Ok(BookingPage {
        items,
        cursors,
        has_next,
        total_count,
    })
}

/// The worker's sweep: lapsed holds become EXPIRED, unpaid bookings past
/// their deadline CANCELLED (their time was already free by the clock), and
/// confirmed sessions nobody reported on COMPLETED 48 h after their end.
pub async fn sweep(state: &AppState) -> AppResult<usize> {
    let db = &state.db;
    let now = Utc::now();
    let mut changed = holds::Entity::update_many()
        .col_expr(holds::Column::Status, Expr::value("EXPIRED"))
        .filter(holds::Column::Status.eq("ACTIVE"))
        .filter(holds::Column::ExpiresAt.lte(now))
        .exec(db)
        .await?
        .rows_affected as usize;
    reservations::Entity::update_many()
        .col_expr(reservations::Column::Active, Expr::value(false))
        .filter(reservations::Column::Active.eq(true))
        .filter(reservations::Column::LiveUntilS.lte(now.timestamp()))
        .exec(db)
        .await?;
    let unpaid = bookings::Entity::find()
        .filter(bookings::Column::Status.eq(BookingStatus::PendingPayment.as_str()))
        .filter(bookings::Column::PaymentDeadline.lte(now))
        .limit(200)
        .all(db)
        .await?;
    for b in unpaid {
        let txn = crate::db::begin(db).await?;
        let moved = move_status(&txn, &b, Event::PaymentExpired, |u| {
            u.col_expr(bookings::Column::CancelledBy, Expr::value("SYSTEM"))
                .col_expr(
                    bookings::Column::CancellationReason,
                    Expr::value("payment was not completed in time"),
                )
        })
        .await;
        if moved.is_err() {
            continue; // paid or cancelled meanwhile
        }
        free_reservation(&txn, &b.id).await?;
        payments::Entity::update_many()
            .col_expr(payments::Column::Status, Expr::value("FAILED"))
            .filter(payments::Column::BookingId.eq(b.id.clone()))
            .filter(payments::Column::Status.eq("PENDING"))
            .exec(&txn)
            .await?;
        audit_booking(
            &txn,
            action::BOOKING_CANCELLED,
            None,
            &b.id,
            Some(serde_json::json!({ "reason": "payment_timeout" })),
        )
        .await?;
        txn.commit().await?;
        after_commit(state, &reload(db, &b.id).await?, None).await;
        changed += 1;
    }
    let done = bookings::Entity::find()
        .filter(bookings::Column::Status.eq(BookingStatus::Confirmed.as_str()))
        .filter(bookings::Column::EndAt.lte(now - AUTO_COMPLETE_AFTER))
        .limit(200)
        .all(db)
        .await?;
    for b in done {
        let txn = crate::db::begin(db).await?;
        if move_status(&txn, &b, Event::Complete, |u| u).await.is_err() {
            continue;
        }
        audit_booking(
            &txn,
            action::BOOKING_COMPLETED,
            None,
            &b.id,
            Some(serde_json::json!({ "automatic": true })),
        )
        .await?;
        txn.commit().await?;
        after_commit(state, &reload(db, &b.id).await?, None).await;
        changed += 1;
    }
    payment::execute_pending_refunds(db, state.payments.as_ref(), None).await?;
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use BookingStatus as S;

    #[test]
    fn every_transition() {
        let allowed = [
            (S::PendingPayment, Event::PaymentSucceeded, S::Confirmed),
            (S::PendingPayment, Event::PaymentExpired, S::Cancelled),
            (S::PendingPayment, Event::Cancel, S::Cancelled),
            (S::Confirmed, Event::Cancel, S::Cancelled),
            (S::Confirmed, Event::Complete, S::Completed),
            (S::Confirmed, Event::ConsumerNoShow, S::NoShowConsumer),
            (S::Confirmed, Event::CoachNoShow, S::NoShowCoach),
        ];
        let events = [
            Event::PaymentSucceeded,
            Event::PaymentExpired,
            Event::Cancel,
            Event::Complete,
            Event::ConsumerNoShow,
            Event::CoachNoShow,
        ];
        for from in S::ALL {
            for e in events {
                let want = allowed
                    .iter()
                    .find(|(f, ev, _)| *f == from && *ev == e)
                    .map(|t| t.2);
                match (next(from, e), want) {
                    (Ok(to), Some(w)) => assert_eq!(to, w),
                    (Err(AppError::Conflict(_)), None) => {}
                    (got, want) => panic!(
                        "{from:?} + {e:?}: got {:?}, want {want:?}",
                        got.map_err(|e| e.code())
                    ),
                }
            }
        }
    }

    #[test]
    fn prices_and_fees() {
        assert_eq!(
            price(6000, 60, 1000),
            Price {
                price_minor: 6000,
                platform_fee_minor: 600,
                coach_payout_minor: 5400
            }
        );
        assert_eq!(
            price(5000, 45, 1000),
            Price {
                price_minor: 3750,
                platform_fee_minor: 375,
                coach_payout_minor: 3375
            }
        );
        // Rounding half up, and payout + fee always equal the price.
        let p = price(3333, 45, 1000);
        assert_eq!(p.price_minor, 2500);
        assert_eq!(p.platform_fee_minor + p.coach_payout_minor, p.price_minor);
        assert_eq!(price(999, 30, 1000).price_minor, 500);
    }

    #[test]
    fn cancellation_policy() {
        let start = Utc::now() + Duration::hours(48);
        assert_eq!(
            cancellation_refund(Party::Consumer, start - Duration::hours(24), start, 5000),
            5000
        );
        assert_eq!(
            cancellation_refund(Party::Consumer, start - Duration::hours(23), start, 5000),
            0
        );
        assert_eq!(
            cancellation_refund(Party::Coach, start - Duration::minutes(5), start, 5000),
            5000
        );
        assert_eq!(no_show(Party::Consumer, 5000), (Event::CoachNoShow, 5000));
        assert_eq!(no_show(Party::Coach, 5000), (Event::ConsumerNoShow, 0));
    }
}
