//! The booking lifecycle: a hold becomes a booking awaiting payment, which
//! is confirmed when paid, then cancelled, completed or reported as a
//! no-show. Each change is one unit of work with its audit entry; events
//! are published and refunds sent only after the commit.

use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use crate::domain::audit::{Entry, action};
use crate::domain::auth::CurrentUser;
use crate::domain::booking::policy::{self, PAYMENT_WINDOW, Party};
use crate::domain::booking::status::{BookingStatus, Event, next};
use crate::domain::coach;
use crate::domain::context::DomainCtx;
use crate::domain::hold::{self, HoldStatus};
use crate::domain::package;
use crate::domain::payment::{self, CheckoutTerms, Purpose};
use crate::domain::reservation;
use crate::domain::types::Role;
use crate::domain::uow::UnitOfWork;
use crate::error::{AppError, AppResult};
use entity::{bookings, payments, reservations};

fn conflict(msg: &str) -> AppError {
    AppError::Conflict(msg.into())
}

/// Who cancelled a booking, as stored in `bookings.cancelled_by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelledBy {
    Consumer,
    Coach,
    Admin,
    /// The server itself (an unpaid booking lapsing).
    System,
}

impl CancelledBy {
    pub fn as_str(self) -> &'static str {
        match self {
            CancelledBy::Consumer => "CONSUMER",
            CancelledBy::Coach => "COACH",
            CancelledBy::Admin => "ADMIN",
            CancelledBy::System => "SYSTEM",
        }
    }
}

fn room_link(public_base_url: &str) -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{}/room/{}",
        public_base_url.trim_end_matches('/'),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Turns the caller's active hold into a PENDING_PAYMENT booking with a
/// payment to complete (`None` with a package credit: see
/// [`book_with_credit`]). The reservation row carries over, so the time is
/// never free in between; of concurrent calls on one hold exactly one wins.
pub async fn book_hold(
    ctx: &DomainCtx,
    user: &CurrentUser,
    hold_id: &str,
    package_purchase_id: Option<&str>,
) -> AppResult<(bookings::Model, Option<payments::Model>)> {
    let db = &ctx.db;
    hold::require_verified(user)?;
    let hold = hold::own_hold(db, user, hold_id).await?;
    if let Some(purchase_id) = package_purchase_id {
        return Ok((book_with_credit(ctx, user, hold, purchase_id).await?, None));
    }
    let now = Utc::now();
    // Booked already (a client retrying) is a conflict: one hold makes one
    // booking with one checkout.
    if hold::status_at(&hold, now) != HoldStatus::Active {
        return Err(conflict("the hold has expired or was already used"));
    }
    let profile = coach::get(db, &hold.coach_id).await?;
    // Held while the coach could be booked; they may have left since.
    if !coach::visible_to(&profile, None) {
        return Err(conflict("this coach no longer takes bookings"));
    }
    // The consumer may have changed market since holding the slot (read
    // now: a socket's signed-in user is as of when it connected).
    let market_now = entity::users::Entity::find_by_id(user.id.clone())
        .one(db)
        .await?
        .and_then(|u| u.market_id);
    if market_now.as_deref() != Some(profile.market_id.as_str()) {
        return Err(AppError::bad_input(
            "holdId",
            "this coach is in another market than yours",
        ));
    }
    if ctx.policy.payouts_required && !coach::can_be_paid(&profile) {
        return Err(AppError::bad_input(
            "holdId",
            "this coach cannot take bookings until their payouts are set up",
        ));
    }
    let minutes = (hold.end_at - hold.start_at).num_minutes();
    let p = policy::price(
        profile.hourly_rate_minor,
        minutes,
        ctx.policy.platform_fee_bps,
    );
    let deadline = now + PAYMENT_WINDOW;

    let uow = UnitOfWork::begin(ctx).await?;
    if !hold::take_active(uow.db(), &hold.id, HoldStatus::Converted, now).await? {
        return Err(conflict("the hold has expired or was already used"));
    }
    let booking_id = uuid::Uuid::now_v7().to_string();
    carry_reservation(uow.db(), &hold.id, &booking_id, Some(deadline), now).await?;
    let booking = new_booking(
        &booking_id,
        &hold,
        &profile,
        BookingStatus::PendingPayment,
        p,
        &profile.currency,
        deadline,
        None,
        None,
    )
    .insert(uow.db())
    .await?;
    let destination = if ctx.policy.payouts_required {
        profile.stripe_account_id.as_deref()
    } else {
        None
    };
    let payment = payment::create_pending(
        ctx,
        &uow,
        Purpose::Booking(booking.id.clone()),
        p.price_minor,
        &profile.currency,
        destination,
    )
    .await?;
    audit_booking(
        &uow,
        action::BOOKING_CREATED,
        Some(&user.id),
        &booking.id,
        None,
    )
    .await?;
    uow.commit().await?;

    // The provider is called only once the booking holds the time. Should
    // it fail, the attempt is undone and the hold is bookable again; should
    // the process stop right here, the sweep opens the checkout from the
    // stored payment (`reopen_checkouts`) or lets the booking lapse.
    // In a task of its own, so a client that goes away mid-call cannot
    // leave the attempt half done.
    let ctx = ctx.clone();
    let opening = tokio::spawn(async move {
        let terms = checkout_terms(&booking, &profile);
        match payment::start_checkout(&ctx, payment.clone(), terms).await {
            Ok(payment) => {
                // Announced once there is something to pay.
                ctx.events
                    .publish(crate::events::BookingEvent::of(booking.clone()));
                Ok((booking, Some(payment)))
            }
            Err(e) => {
                if let Some((b, p)) = undo_unopened(&ctx, &booking, &payment, &hold).await? {
                    return Ok((b, Some(p)));
                }
                Err(e)
            }
        }
    });
    opening.await.map_err(AppError::internal)?
}

/// Books the hold with a credit of the caller's package purchase: in one
/// unit of work the credit is spent, the hold converted and the booking
/// created CONFIRMED (no checkout: the package paid for it), priced at the
/// package's per-session share. A purchase that cannot pay for it (another
/// coach's, unpaid, expired, spent) is refused and nothing changes.
async fn book_with_credit(
    ctx: &DomainCtx,
    user: &CurrentUser,
    hold: entity::holds::Model,
    purchase_id: &str,
) -> AppResult<bookings::Model> {
    let now = Utc::now();
    if hold::status_at(&hold, now) != HoldStatus::Active {
        return Err(conflict("the hold has expired or was already used"));
    }
    let bought = package::spendable(
        &ctx.db,
        user,
        purchase_id,
        &hold.coach_id,
        now,
        hold.start_at,
    )
    .await?;
    let profile = coach::get(&ctx.db, &hold.coach_id).await?;
    if !coach::visible_to(&profile, None) {
        return Err(conflict("this coach no longer takes bookings"));
    }
    let share = policy::package_share(
        bought.price_minor,
        bought.platform_fee_minor,
        bought.sessions_total,
    );
    let link = profile
        .meeting_url
        .clone()
        .unwrap_or_else(|| room_link(&ctx.policy.public_base_url));

    let mut uow = UnitOfWork::begin(ctx).await?;
    if !hold::take_active(uow.db(), &hold.id, HoldStatus::Converted, now).await? {
        return Err(conflict("the hold has expired or was already used"));
    }
    let booking_id = uuid::Uuid::now_v7().to_string();
    package::spend_credit(&uow, user, &bought, &booking_id, now, hold.start_at).await?;
    // Confirmed: the time stays taken for good.
    carry_reservation(uow.db(), &hold.id, &booking_id, None, now).await?;
    let booking = new_booking(
        &booking_id,
        &hold,
        &profile,
        BookingStatus::Confirmed,
        share,
        &bought.currency,
        now,
        Some(link),
        Some(bought.id.clone()),
    )
    .insert(uow.db())
    .await?;
    let detail = serde_json::json!({ "packagePurchase": bought.id });
    audit_booking(
        &uow,
        action::BOOKING_CREATED,
        Some(&user.id),
        &booking.id,
        Some(detail.clone()),
    )
    .await?;
    audit_booking(
        &uow,
        action::BOOKING_CONFIRMED,
        Some(&user.id),
        &booking.id,
        Some(detail),
    )
    .await?;
    crate::domain::notify::booking_confirmed(&mut uow, &booking, None).await?;
    uow.publish(booking.clone());
    uow.commit().await?;
    Ok(booking)
}

/// The time of an active hold passes to its booking in the same row, so it
/// is never free in between: until `live_until` (the payment deadline), or
/// for good (`None`, a confirmed booking). A hold that lapsed meanwhile is
/// a conflict.
async fn carry_reservation<C: ConnectionTrait>(
    db: &C,
    hold_id: &str,
    booking_id: &str,
    live_until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let carried = reservations::Entity::update_many()
        .col_expr(
            reservations::Column::BookingId,
            Expr::value(booking_id.to_string()),
        )
        .col_expr(
            reservations::Column::LiveUntilS,
            Expr::value(live_until.map(|t| t.timestamp())),
        )
        .filter(reservations::Column::HoldId.eq(hold_id))
        .filter(reservations::Column::Active.eq(true))
        .filter(reservations::Column::LiveUntilS.gt(now.timestamp()))
        .exec(db)
        .await?;
    if carried.rows_affected != 1 {
        return Err(conflict("the hold has expired"));
    }
    Ok(())
}

/// A booking row made from a hold, at a fixed price. A confirmed one
/// (paid with a package credit) is confirmed now, with its meeting link.
#[allow(clippy::too_many_arguments)]
fn new_booking(
    id: &str,
    hold: &entity::holds::Model,
    profile: &entity::coach_profiles::Model,
    status: BookingStatus,
    price: policy::Price,
    currency: &str,
    payment_deadline: DateTime<Utc>,
    meeting_url: Option<String>,
    package_purchase_id: Option<String>,
) -> bookings::ActiveModel {
    let now = Utc::now();
    let confirmed = status == BookingStatus::Confirmed;
    bookings::ActiveModel {
        id: Set(id.to_string()),
        hold_id: Set(hold.id.clone()),
        coach_id: Set(profile.id.clone()),
        coach_user_id: Set(profile.user_id.clone()),
        consumer_id: Set(hold.consumer_id.clone()),
        start_at: Set(hold.start_at),
        end_at: Set(hold.end_at),
        start_s: Set(hold.start_at.timestamp()),
        status: Set(status.as_str().into()),
        price_minor: Set(price.price_minor),
        currency: Set(currency.to_string()),
        platform_fee_minor: Set(price.platform_fee_minor),
        coach_payout_minor: Set(price.coach_payout_minor),
        payment_deadline: Set(payment_deadline),
        confirmed_at: Set(confirmed.then_some(now)),
        reminded_24h: Set(false),
        reminded_1h: Set(false),
        meeting_url: Set(meeting_url),
        cancellation_reason: Set(None),
        cancelled_by: Set(None),
        refunded_minor: Set(0),
        package_purchase_id: Set(package_purchase_id),
        credit_returned: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

/// The booking made from this hold, still awaiting payment, with its open
/// checkout.
async fn booked_from(
    db: &DatabaseConnection,
    hold_id: &str,
) -> AppResult<Option<(bookings::Model, payments::Model)>> {
    let Some(booking) = bookings::Entity::find()
        .filter(bookings::Column::HoldId.eq(hold_id))
        .filter(bookings::Column::Status.eq(BookingStatus::PendingPayment.as_str()))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    match payment::of_booking(db, &booking.id).await? {
        Some(p) if p.checkout_url.is_some() => Ok(Some((booking, p))),
        Some(_) => Err(conflict(
            "this booking's checkout is being opened; try again in a moment",
        )),
        None => Ok(None),
    }
}

/// A booking whose checkout could not be opened is taken back in one unit
/// of work: its payment and the booking go, the time returns to the hold,
/// which is active again until its own expiry. If the checkout was opened
/// meanwhile (a retry won the race), that one is kept and returned.
async fn undo_unopened(
    ctx: &DomainCtx,
    booking: &bookings::Model,
    payment: &payments::Model,
    hold: &entity::holds::Model,
) -> AppResult<Option<(bookings::Model, payments::Model)>> {
    let uow = UnitOfWork::begin(ctx).await?;
    let removed = payments::Entity::delete_many()
        .filter(payments::Column::Id.eq(payment.id.clone()))
        .filter(payments::Column::CheckoutUrl.is_null())
        .filter(payments::Column::Status.eq(payment::PaymentStatus::Pending.as_str()))
        .exec(uow.db())
        .await?;
    if removed.rows_affected != 1 {
        drop(uow);
        return booked_from(&ctx.db, &hold.id).await;
    }
    reservations::Entity::update_many()
        .col_expr(
            reservations::Column::BookingId,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            reservations::Column::LiveUntilS,
            Expr::value(hold.expires_at.timestamp()),
        )
        .filter(reservations::Column::BookingId.eq(booking.id.clone()))
        .exec(uow.db())
        .await?;
    entity::holds::Entity::update_many()
        .col_expr(
            entity::holds::Column::Status,
            Expr::value(HoldStatus::Active.as_str()),
        )
        .filter(entity::holds::Column::Id.eq(hold.id.clone()))
        .filter(entity::holds::Column::Status.eq(HoldStatus::Converted.as_str()))
        .exec(uow.db())
        .await?;
    bookings::Entity::delete_many()
        .filter(bookings::Column::Id.eq(booking.id.clone()))
        .exec(uow.db())
        .await?;
    audit_booking(
        &uow,
        action::CHECKOUT_FAILED,
        Some(&booking.consumer_id),
        &booking.id,
        Some(serde_json::json!({ "hold": hold.id })),
    )
    .await?;
    uow.commit().await?;
    Ok(None)
}

/// What a booking's checkout shows and when it closes.
fn checkout_terms(
    booking: &bookings::Model,
    profile: &entity::coach_profiles::Model,
) -> CheckoutTerms {
    CheckoutTerms {
        description: format!(
            "{} min session with {}",
            (booking.end_at - booking.start_at).num_minutes(),
            profile.display_name
        ),
        application_fee_minor: booking.platform_fee_minor,
        expires_at: booking.payment_deadline,
    }
}

/// Bookings awaiting payment whose checkout was never opened (the
/// provider failed after the booking committed) get it opened again from
/// their stored payment, while the payment window is open. The payment id
/// is the provider's idempotency key, so a checkout opened twice is one.
pub async fn reopen_checkouts(ctx: &DomainCtx, now: DateTime<Utc>) -> AppResult<usize> {
    let stale = payments::Entity::find()
        .filter(payments::Column::Status.eq(payment::PaymentStatus::Pending.as_str()))
        .filter(payments::Column::CheckoutUrl.is_null())
        // Not one whose booking is opening it right now.
        .filter(payments::Column::CreatedAt.lt(now - chrono::Duration::seconds(30)))
        .limit(100)
        .all(&ctx.db)
        .await?;
    let mut opened = 0;
    for p in stale {
        let Some(booking_id) = p.booking_id.clone() else {
            // A package purchase or a sponsorship: the same, from its row.
            let terms = match Purpose::of(&p) {
                Some(Purpose::PackagePurchase(id)) => {
                    package::reopen_terms(&ctx.db, &id, now).await?
                }
                Some(Purpose::Sponsorship(id)) => {
                    crate::domain::sponsorship::reopen_terms(&ctx.db, &id, now).await?
                }
                _ => None,
            };
            if let Some(terms) = terms {
                let id = p.id.clone();
                match payment::start_checkout(ctx, p, terms).await {
                    Ok(_) => opened += 1,
                    Err(e) => {
                        tracing::warn!(payment = %id, error = ?e, "checkout still not opened")
                    }
                }
            }
            continue;
        };
        let booking = load(&ctx.db, &booking_id).await?;
        if status_of(&booking)? != BookingStatus::PendingPayment || booking.payment_deadline <= now
        {
            continue;
        }
        let profile = coach::get(&ctx.db, &booking.coach_id).await?;
        match payment::start_checkout(ctx, p, checkout_terms(&booking, &profile)).await {
            Ok(_) => {
                ctx.events.publish(crate::events::BookingEvent::of(booking));
                opened += 1
            }
            Err(e) => {
                tracing::warn!(booking = %booking.id, error = ?e, "checkout still not opened")
            }
        }
    }
    Ok(opened)
}

async fn audit_booking(
    uow: &UnitOfWork,
    act: &str,
    actor: Option<&str>,
    booking_id: &str,
    detail: Option<serde_json::Value>,
) -> AppResult<()> {
    uow.audit(Entry {
        action: act,
        actor_id: actor,
        target_type: Some("booking"),
        target_id: Some(booking_id),
        ip: None,
        detail,
    })
    .await
}

pub(crate) fn status_of(b: &bookings::Model) -> AppResult<BookingStatus> {
    BookingStatus::parse(&b.status).ok_or_else(|| AppError::internal("unknown booking status"))
}

/// Applies `event` to a booking through the transition table, only if the
/// booking is still in the status it was read in; returns the new status.
/// Every status change goes through here, so the table is the one rule.
pub(crate) async fn move_status<C: ConnectionTrait>(
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

async fn load<C: ConnectionTrait>(db: &C, id: &str) -> AppResult<bookings::Model> {
    bookings::Entity::find_by_id(id.to_string())
        .one(db)
        .await?
        .ok_or(AppError::NotFound("booking"))
}

/// Publishes the booking as it stands in the unit of work (so as it will
/// be committed).
pub async fn publish_current(uow: &mut UnitOfWork, booking_id: &str) -> AppResult<()> {
    let booking = load(uow.db(), booking_id).await?;
    uow.publish(booking);
    Ok(())
}

/// Whether a completed payment kept its booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaidOutcome {
    Confirmed,
    /// The booking lapsed and its time was released first: the payment
    /// must be refunded in full.
    Lapsed,
}

/// The booking side of a completed payment: a booking still awaiting
/// payment whose reservation is live is confirmed (with its meeting link);
/// otherwise it is (or stays) cancelled and the caller refunds.
pub async fn confirm_paid(
    ctx: &DomainCtx,
    uow: &mut UnitOfWork,
    booking_id: &str,
) -> AppResult<PaidOutcome> {
    let booking = load(uow.db(), booking_id).await?;
    let pending = booking.status == BookingStatus::PendingPayment.as_str();
    let kept = pending
        && reservations::Entity::update_many()
            .col_expr(
                reservations::Column::LiveUntilS,
                Expr::value(Option::<i64>::None),
            )
            .filter(reservations::Column::BookingId.eq(booking.id.clone()))
            .filter(reservations::Column::Active.eq(true))
            .exec(uow.db())
            .await?
            .rows_affected
            == 1;
    if kept {
        let profile = coach::get(uow.db(), &booking.coach_id).await?;
        let link = profile
            .meeting_url
            .clone()
            .unwrap_or_else(|| room_link(&ctx.policy.public_base_url));
        move_status(uow.db(), &booking, Event::PaymentSucceeded, |u| {
            u.col_expr(bookings::Column::MeetingUrl, Expr::value(link))
                .col_expr(bookings::Column::ConfirmedAt, Expr::value(Utc::now()))
        })
        .await?;
        audit_booking(uow, action::BOOKING_CONFIRMED, None, &booking.id, None).await?;
        return Ok(PaidOutcome::Confirmed);
    }
    if pending {
        move_status(uow.db(), &booking, Event::PaymentExpired, |u| {
            u.col_expr(
                bookings::Column::CancelledBy,
                Expr::value(CancelledBy::System.as_str()),
            )
            .col_expr(
                bookings::Column::CancellationReason,
                Expr::value("payment arrived after the slot was released"),
            )
        })
        .await?;
    }
    Ok(PaidOutcome::Lapsed)
}

/// Adds a decided refund to the booking's refunded total, audited.
pub async fn add_refunded(
    uow: &UnitOfWork,
    booking_id: &str,
    amount_minor: i64,
    actor: Option<&str>,
) -> AppResult<()> {
    bookings::Entity::update_many()
        .col_expr(
            bookings::Column::RefundedMinor,
            Expr::col(bookings::Column::RefundedMinor).add(amount_minor),
        )
        .filter(bookings::Column::Id.eq(booking_id))
        .exec(uow.db())
        .await?;
    audit_booking(
        uow,
        action::REFUND_CREATED,
        actor,
        booking_id,
        Some(serde_json::json!({ "amountMinor": amount_minor })),
    )
    .await
}

/// An admin's refund of part or all of what remains of a booking's
/// payment; the booking's status stays as it is.
pub async fn admin_refund(
    ctx: &DomainCtx,
    admin: &CurrentUser,
    booking_id: &str,
    amount_minor: i64,
) -> AppResult<bookings::Model> {
    if admin.role != Role::Admin {
        return Err(AppError::Forbidden("only admins refund"));
    }
    let booking = get_for(&ctx.db, admin, booking_id).await?;
    if amount_minor <= 0 {
        return Err(AppError::bad_input("amountMinor", "must be greater than 0"));
    }
    let mut uow = UnitOfWork::begin(ctx).await?;
    let payment = payment::of_booking(uow.db(), &booking.id)
        .await?
        .ok_or_else(|| AppError::bad_input("bookingId", "this booking has no payment"))?;
    let payment = payment::lock(uow.db(), &payment.id)
        .await?
        .ok_or(AppError::NotFound("payment"))?;
    let remaining = payment::refund::refundable(&payment);
    if amount_minor > remaining {
        return Err(AppError::bad_input(
            "amountMinor",
            format!("at most {remaining} (minor units) remains to refund"),
        ));
    }
    payment::decide_refund(
        &mut uow,
        &payment,
        amount_minor,
        payment::refund::ADMIN_REFUND,
    )
    .await?;
    add_refunded(&uow, &booking.id, amount_minor, Some(&admin.id)).await?;
    publish_current(&mut uow, &booking.id).await?;
    let updated = load(uow.db(), &booking.id).await?;
    uow.commit().await?;
    Ok(updated)
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

/// Applies a refund-bearing transition in one unit of work.
async fn settle(
    ctx: &DomainCtx,
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
    let mut uow = UnitOfWork::begin(ctx).await?;
    // The payment's lock first, as every payment path takes it.
    if let Some(p) = payment::of_booking(uow.db(), &booking.id).await? {
        payment::lock(uow.db(), &p.id).await?;
    }
    let cancelled_by = match party(user, booking) {
        Ok(Party::Consumer) => CancelledBy::Consumer,
        Ok(Party::Coach) => CancelledBy::Coach,
        Err(_) => CancelledBy::Admin,
    };
    // Paid with a package credit: a full refund gives the credit back
    // instead of money; anything less keeps it spent.
    let paid_with_credit = booking.package_purchase_id.is_some();
    let credit_back = paid_with_credit
        && refund_minor > 0
        && refund_minor >= booking.price_minor - booking.refunded_minor;
    let refund_minor = if paid_with_credit { 0 } else { refund_minor };
    let to = move_status(uow.db(), booking, event, |u| {
        let u = u.col_expr(
            bookings::Column::RefundedMinor,
            Expr::col(bookings::Column::RefundedMinor).add(refund_minor),
        );
        match &reason {
            Some(r) => u
                .col_expr(bookings::Column::CancellationReason, Expr::value(r.clone()))
                .col_expr(
                    bookings::Column::CancelledBy,
                    Expr::value(cancelled_by.as_str()),
                ),
            None => u,
        }
    })
    .await?;
    if free_time {
        reservation::free_for_booking(uow.db(), &booking.id).await?;
    }
    // Cancelled before it was paid: its payment will never complete. A
    // provider that reports its checkouts (Stripe) settles it instead
    // (a payment made meanwhile is then refunded).
    if booking.status == BookingStatus::PendingPayment.as_str()
        && let Some(p) = payment::of_booking(uow.db(), &booking.id).await?
        && (ctx.payments.kind() == payment::ProviderKind::Dev || p.provider_ref.is_none())
    {
        payment::fail_pending(&uow, &p, "the booking was cancelled before payment").await?;
    }
    let mut credit_returned = false;
    if credit_back {
        match package::give_back(&mut uow, booking, Some(&user.id)).await? {
            package::GivenBack::Credit => credit_returned = true,
            package::GivenBack::Money(amount) => {
                add_refunded(&uow, &booking.id, amount, Some(&user.id)).await?;
            }
            package::GivenBack::Nothing => {}
        }
    }
    if refund_minor > 0 {
        let payment = payment::of_booking(uow.db(), &booking.id)
            .await?
            .ok_or_else(|| AppError::internal("paid booking without payment"))?;
        payment::decide_refund(&mut uow, &payment, refund_minor, act).await?;
        audit_booking(
            &uow,
            action::REFUND_CREATED,
            Some(&user.id),
            &booking.id,
            Some(serde_json::json!({ "amountMinor": refund_minor })),
        )
        .await?;
    }
    audit_booking(
        &uow,
        act,
        Some(&user.id),
        &booking.id,
        Some(serde_json::json!({
            "to": to.as_str(),
            "refundMinor": refund_minor,
            "creditReturned": credit_returned,
        })),
    )
    .await?;
    let updated = load(uow.db(), &booking.id).await?;
    if event == Event::Cancel {
        crate::domain::notify::booking_cancelled(
            &mut uow,
            &updated,
            refund_minor,
            credit_returned,
            reason.as_deref().unwrap_or_default(),
        )
        .await?;
    }
    uow.publish(updated.clone());
    uow.commit().await?;
    Ok(updated)
}

pub async fn cancel(
    ctx: &DomainCtx,
    user: &CurrentUser,
    booking_id: &str,
    reason: &str,
) -> AppResult<bookings::Model> {
    let booking = get_for(&ctx.db, user, booking_id).await?;
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
        policy::cancellation_refund(
            by,
            now,
            booking.start_at,
            booking.price_minor - booking.refunded_minor,
        )
    } else {
        0
    };
    settle(
        ctx,
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
    ctx: &DomainCtx,
    user: &CurrentUser,
    booking_id: &str,
) -> AppResult<bookings::Model> {
    let booking = get_for(&ctx.db, user, booking_id).await?;
    if party(user, &booking)? != Party::Coach {
        return Err(AppError::Forbidden("only the coach completes a session"));
    }
    next(status_of(&booking)?, Event::Complete)?;
    if Utc::now() < booking.end_at {
        return Err(conflict("the session has not ended yet"));
    }
    settle(
        ctx,
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
    ctx: &DomainCtx,
    user: &CurrentUser,
    booking_id: &str,
) -> AppResult<bookings::Model> {
    let booking = get_for(&ctx.db, user, booking_id).await?;
    let (event, refund) = policy::no_show(
        party(user, &booking)?,
        booking.price_minor - booking.refunded_minor,
    );
    next(status_of(&booking)?, event)?;
    if Utc::now() < booking.start_at {
        return Err(conflict("the session has not started yet"));
    }
    settle(
        ctx,
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

/// An unpaid booking past its deadline becomes CANCELLED (its time was
/// already free by the clock), with its pending payment FAILED. False when
/// it was paid or cancelled meanwhile.
///
/// With a provider that reports its checkouts (Stripe) the payment stays
/// PENDING: the provider's report, or reconciliation asking it, settles it
/// (a payment made at the last moment is then refunded, never kept).
pub async fn lapse_unpaid(ctx: &DomainCtx, booking: &bookings::Model) -> AppResult<bool> {
    let mut uow = UnitOfWork::begin(ctx).await?;
    let reported = ctx.payments.kind() != payment::ProviderKind::Dev;
    if !lapse_in(
        &uow,
        &booking.id,
        "payment was not completed in time",
        !reported,
    )
    .await?
    {
        return Ok(false);
    }
    publish_current(&mut uow, &booking.id).await?;
    uow.commit().await?;
    Ok(true)
}

/// Inside a unit of work: a booking still awaiting payment is cancelled by
/// the system and its time freed at once; with `fail_payment` its pending
/// payment fails too (audited). False when it was no longer awaiting
/// payment.
pub async fn lapse_in(
    uow: &UnitOfWork,
    booking_id: &str,
    reason: &str,
    fail_payment: bool,
) -> AppResult<bool> {
    // The payment's lock before the booking's, in the order every payment
    // path takes them, so two never wait on each other.
    let pending = payment::of_booking(uow.db(), booking_id).await?;
    if let Some(p) = &pending {
        payment::lock(uow.db(), &p.id).await?;
    }
    let booking = load(uow.db(), booking_id).await?;
    if booking.status != BookingStatus::PendingPayment.as_str() {
        return Ok(false);
    }
    let moved = move_status(uow.db(), &booking, Event::PaymentExpired, |u| {
        u.col_expr(
            bookings::Column::CancelledBy,
            Expr::value(CancelledBy::System.as_str()),
        )
        .col_expr(
            bookings::Column::CancellationReason,
            Expr::value(reason.to_string()),
        )
    })
    .await;
    match moved {
        Ok(_) => {}
        // Paid or cancelled meanwhile.
        Err(AppError::Conflict(_)) => return Ok(false),
        Err(e) => return Err(e),
    }
    reservation::free_for_booking(uow.db(), &booking.id).await?;
    // A checkout never opened has nothing to report on it either.
    if let Some(p) = pending.filter(|p| fail_payment || p.provider_ref.is_none()) {
        payment::fail_pending(uow, &p, reason).await?;
    }
    audit_booking(
        uow,
        action::BOOKING_CANCELLED,
        None,
        &booking.id,
        Some(serde_json::json!({ "reason": reason })),
    )
    .await?;
    Ok(true)
}

/// A confirmed session nobody reported on is completed. False when it
/// changed meanwhile.
pub async fn auto_complete(ctx: &DomainCtx, booking: &bookings::Model) -> AppResult<bool> {
    let mut uow = UnitOfWork::begin(ctx).await?;
    match move_status(uow.db(), booking, Event::Complete, |u| u).await {
        Ok(_) => {}
        Err(AppError::Conflict(_)) => return Ok(false),
        Err(e) => return Err(e),
    }
    audit_booking(
        &uow,
        action::BOOKING_COMPLETED,
        None,
        &booking.id,
        Some(serde_json::json!({ "automatic": true })),
    )
    .await?;
    publish_current(&mut uow, &booking.id).await?;
    uow.commit().await?;
    Ok(true)
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

/// Unpaid bookings past their payment deadline (a batch).
pub async fn overdue_unpaid(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
) -> AppResult<Vec<bookings::Model>> {
    Ok(bookings::Entity::find()
        .filter(bookings::Column::Status.eq(BookingStatus::PendingPayment.as_str()))
        .filter(bookings::Column::PaymentDeadline.lte(now))
        .limit(200)
        .all(db)
        .await?)
}

/// Confirmed sessions that ended long enough ago to complete (a batch).
pub async fn unreported_ended(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
) -> AppResult<Vec<bookings::Model>> {
    Ok(bookings::Entity::find()
        .filter(bookings::Column::Status.eq(BookingStatus::Confirmed.as_str()))
        .filter(bookings::Column::EndAt.lte(now - policy::AUTO_COMPLETE_AFTER))
        .limit(200)
        .all(db)
        .await?)
}
