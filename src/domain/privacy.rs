//! A user's data, to take with them (`exportMyData`) or to erase
//! (`deleteMyAccount`).
//!
//! The export holds every record about the caller, and of anyone else only
//! a name: a booking's counterpart, a review's author. Deletion keeps what
//! the law and the books need (bookings, payments, refunds, the audit log)
//! with the personal parts removed, and frees the email address.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde_json::{Value, json};

use crate::domain::audit::{Entry, action};
use crate::domain::auth::{self, CurrentUser};
use crate::domain::booking::{self, BookingStatus};
use crate::domain::context::DomainCtx;
use crate::domain::payment::{PaymentStatus, RefundStatus};
use crate::domain::uow::UnitOfWork;
use crate::error::{AppError, AppResult};
use entity::{
    audit_log, availability_rules, bookings, coach_categories, coach_profiles, outbox,
    package_purchases, packages, payments, refunds, reviews, sponsorships, user_tokens, users,
};

/// The name a deleted account shows under what stays (its reviews).
pub const DELETED_NAME: &str = "Former user";
/// The display name a deleted coach's profile keeps.
pub const DELETED_COACH_NAME: &str = "Former coach";
/// Deleted accounts get an address no mail can reach, unique per account.
pub const DELETED_EMAIL_DOMAIN: &str = "deleted.invalid";

/// Ids are looked up in chunks, below every database's limit on bound
/// values.
const CHUNK: usize = 500;

async fn names<C: ConnectionTrait>(
    db: &C,
    ids: HashSet<String>,
) -> AppResult<HashMap<String, String>> {
    let ids: Vec<String> = ids.into_iter().collect();
    let mut out = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        for u in users::Entity::find()
            .filter(users::Column::Id.is_in(chunk.to_vec()))
            .all(db)
            .await?
        {
            out.insert(u.id, u.name);
        }
    }
    Ok(out)
}

/// The caller's coach profile, if any.
async fn profile_of<C: ConnectionTrait>(
    db: &C,
    user_id: &str,
) -> AppResult<Option<coach_profiles::Model>> {
    crate::domain::coach::find_by_user(db, user_id).await
}

/// The payments of everything the user bought or sold: bookings on either
/// side, package purchases on either side, sponsorships.
async fn payment_rows(
    db: &DatabaseConnection,
    booking_ids: &[String],
    purchase_ids: &[String],
    sponsorship_ids: &[String],
) -> AppResult<Vec<payments::Model>> {
    let mut out = Vec::new();
    for (col, ids) in [
        (payments::Column::BookingId, booking_ids),
        (payments::Column::PackagePurchaseId, purchase_ids),
        (payments::Column::SponsorshipId, sponsorship_ids),
    ] {
        for chunk in ids.chunks(CHUNK) {
            out.extend(
                payments::Entity::find()
                    .filter(col.is_in(chunk.to_vec()))
                    .all(db)
                    .await?,
            );
        }
    }
    Ok(out)
}

/// One JSON document with everything held about the caller. Audited.
pub async fn export(ctx: &DomainCtx, user: &CurrentUser) -> AppResult<Value> {
    let db = &ctx.db;
    let me = users::Entity::find_by_id(user.id.clone())
        .one(db)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    let profile = profile_of(db, &me.id).await?;
    let coach_id = profile.as_ref().map(|p| p.id.clone());

    let my_bookings = bookings::Entity::find()
        .filter(
            Condition::any()
                .add(bookings::Column::ConsumerId.eq(me.id.clone()))
                .add(bookings::Column::CoachUserId.eq(me.id.clone())),
        )
        .order_by_asc(bookings::Column::StartS)
        .all(db)
        .await?;
    let mut counterpart_ids = HashSet::new();
    for b in my_bookings.iter().filter(|b| b.consumer_id != me.id) {
        counterpart_ids.insert(b.consumer_id.clone());
    }
    let written = reviews::Entity::find()
        .filter(reviews::Column::ConsumerId.eq(me.id.clone()))
        .all(db)
        .await?;
    let received = match &coach_id {
        Some(c) => {
            reviews::Entity::find()
                .filter(reviews::Column::CoachId.eq(c.clone()))
                .all(db)
                .await?
        }
        None => Vec::new(),
    };
    counterpart_ids.extend(received.iter().map(|r| r.consumer_id.clone()));
    let my_purchases = package_purchases::Entity::find()
        .filter(package_purchases::Column::ConsumerId.eq(me.id.clone()))
        .all(db)
        .await?;
    let (my_packages, sold, my_sponsorships, availability, categories) = match &coach_id {
        Some(c) => (
            packages::Entity::find()
                .filter(packages::Column::CoachId.eq(c.clone()))
                .all(db)
                .await?,
            package_purchases::Entity::find()
                .filter(package_purchases::Column::CoachId.eq(c.clone()))
                .all(db)
                .await?,
            sponsorships::Entity::find()
                .filter(sponsorships::Column::CoachId.eq(c.clone()))
                .all(db)
                .await?,
            availability_rules::Entity::find()
                .filter(availability_rules::Column::CoachId.eq(c.clone()))
                .into_json()
                .all(db)
                .await?,
            coach_categories::Entity::find()
                .filter(coach_categories::Column::CoachId.eq(c.clone()))
                .all(db)
                .await?
                .into_iter()
                .filter_map(|cc| {
                    ctx.reference
                        .category(&cc.category_id)
                        .map(|c| c.slug.clone())
                })
                .collect::<Vec<_>>(),
        ),
        None => (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new()),
    };
    counterpart_ids.extend(sold.iter().map(|p| p.consumer_id.clone()));
    counterpart_ids.remove(&me.id);
    let names = names(db, counterpart_ids).await?;
    let name_of = |id: &str| names.get(id).cloned().unwrap_or_default();
    // A coach appears under their public display name.
    let coach_ids: Vec<String> = my_bookings
        .iter()
        .filter(|b| b.consumer_id == me.id)
        .map(|b| b.coach_id.clone())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut coach_names = HashMap::new();
    for chunk in coach_ids.chunks(CHUNK) {
        for c in coach_profiles::Entity::find()
            .filter(coach_profiles::Column::Id.is_in(chunk.to_vec()))
            .all(db)
            .await?
        {
            coach_names.insert(c.id, c.display_name);
        }
    }

    let booking_ids: Vec<String> = my_bookings.iter().map(|b| b.id.clone()).collect();
    let purchase_ids: Vec<String> = my_purchases
        .iter()
        .chain(sold.iter())
        .map(|p| p.id.clone())
        .collect();
    let sponsorship_ids: Vec<String> = my_sponsorships.iter().map(|s| s.id.clone()).collect();
    let pays = payment_rows(db, &booking_ids, &purchase_ids, &sponsorship_ids).await?;
    let pay_ids: Vec<String> = pays.iter().map(|p| p.id.clone()).collect();
    let mut refund_rows = Vec::new();
    for chunk in pay_ids.chunks(CHUNK) {
        refund_rows.extend(
            refunds::Entity::find()
                .filter(refunds::Column::PaymentId.is_in(chunk.to_vec()))
                .all(db)
                .await?,
        );
    }
    let mut about = Condition::any()
        .add(audit_log::Column::ActorId.eq(me.id.clone()))
        .add(audit_log::Column::TargetId.eq(me.id.clone()));
    if let Some(c) = &coach_id {
        about = about.add(audit_log::Column::TargetId.eq(c.clone()));
    }
    let audit = audit_log::Entity::find()
        .filter(about)
        .order_by_asc(audit_log::Column::Id)
        .into_json()
        .all(db)
        .await?;

    let devices = crate::domain::push::devices(db, &me.id).await?;
    let preferences = crate::domain::preferences::list(db, user).await?;

    let doc = json!({
        "exportedAt": Utc::now(),
        "pushDevices": devices.iter().map(|d| json!({
            "id": d.id,
            "token": d.token,
            "platform": d.platform,
            "registeredAt": d.updated_at,
        })).collect::<Vec<_>>(),
        "notificationPreferences": preferences.iter().map(|p| json!({
            "kind": p.kind.as_str(),
            "channel": p.channel.as_str(),
            "enabled": p.enabled,
        })).collect::<Vec<_>>(),
        "account": {
            "id": me.id,
            "email": me.email,
            "name": me.name,
            "role": me.role,
            "emailVerified": me.email_verified,
            "market": me.market_id.as_deref().and_then(|m| ctx.reference.market(m)).map(|m| m.code.clone()),
            "timezone": me.timezone,
            "createdAt": me.created_at,
        },
        "coachProfile": profile.as_ref().map(|p| json!({
            "id": p.id,
            "displayName": p.display_name,
            "headline": p.headline,
            "bio": p.bio,
            "hourlyRateMinor": p.hourly_rate_minor,
            "currency": p.currency,
            "sessionDurations": p.session_durations,
            "timezone": p.timezone,
            "meetingUrl": p.meeting_url,
            "status": p.status,
            "published": p.published,
            "categories": categories,
            "payoutsEnabled": p.payouts_enabled,
            "ratingCount": p.rating_count,
            "createdAt": p.created_at,
        })),
        "availability": availability,
        "bookings": my_bookings.iter().map(|b| {
            let as_consumer = b.consumer_id == me.id;
            json!({
                "id": b.id,
                "as": if as_consumer { "CONSUMER" } else { "COACH" },
                "with": if as_consumer {
                    coach_names.get(&b.coach_id).cloned().unwrap_or_default()
                } else {
                    name_of(&b.consumer_id)
                },
                "startAt": b.start_at,
                "endAt": b.end_at,
                "status": b.status,
                "priceMinor": b.price_minor,
                "currency": b.currency,
                "platformFeeMinor": b.platform_fee_minor,
                "coachPayoutMinor": b.coach_payout_minor,
                "refundedMinor": b.refunded_minor,
                "packagePurchaseId": b.package_purchase_id,
                "meetingUrl": b.meeting_url,
                "cancellationReason": b.cancellation_reason,
                "createdAt": b.created_at,
            })
        }).collect::<Vec<_>>(),
        "payments": pays.iter().map(|p| json!({
            "id": p.id,
            "purpose": p.purpose,
            "bookingId": p.booking_id,
            "packagePurchaseId": p.package_purchase_id,
            "sponsorshipId": p.sponsorship_id,
            "status": p.status,
            "amountMinor": p.amount_minor,
            "currency": p.currency,
            "refundedMinor": p.refunded_minor,
            "provider": p.provider,
            "disputed": p.disputed,
            "createdAt": p.created_at,
        })).collect::<Vec<_>>(),
        "refunds": refund_rows.iter().map(|r| json!({
            "id": r.id,
            "paymentId": r.payment_id,
            "amountMinor": r.amount_minor,
            "currency": r.currency,
            "status": r.status,
            "reason": r.reason,
            "createdAt": r.created_at,
        })).collect::<Vec<_>>(),
        "reviewsWritten": written.iter().map(|r| json!({
            "id": r.id, "bookingId": r.booking_id, "rating": r.rating,
            "comment": r.comment, "coachResponse": r.coach_response,
            "hidden": r.hidden, "createdAt": r.created_at,
        })).collect::<Vec<_>>(),
        "reviewsReceived": received.iter().map(|r| json!({
            "id": r.id, "bookingId": r.booking_id, "author": name_of(&r.consumer_id),
            "rating": r.rating, "comment": r.comment, "response": r.coach_response,
            "hidden": r.hidden, "createdAt": r.created_at,
        })).collect::<Vec<_>>(),
        "packages": my_packages.iter().map(|p| json!({
            "id": p.id, "name": p.name, "sessionCount": p.session_count,
            "priceMinor": p.price_minor, "currency": p.currency,
            "validityDays": p.validity_days, "active": p.active, "createdAt": p.created_at,
        })).collect::<Vec<_>>(),
        "packagePurchases": my_purchases.iter().map(|p| json!({
            "id": p.id, "packageId": p.package_id, "status": p.status,
            "sessionsTotal": p.sessions_total, "sessionsRemaining": p.sessions_remaining,
            "priceMinor": p.price_minor, "currency": p.currency,
            "paidAt": p.paid_at, "expiresAt": p.expires_at, "createdAt": p.created_at,
        })).collect::<Vec<_>>(),
        "packagesSold": sold.iter().map(|p| json!({
            "id": p.id, "packageId": p.package_id, "buyer": name_of(&p.consumer_id),
            "status": p.status, "sessionsTotal": p.sessions_total,
            "sessionsRemaining": p.sessions_remaining, "priceMinor": p.price_minor,
            "currency": p.currency, "paidAt": p.paid_at,
        })).collect::<Vec<_>>(),
        "sponsorships": my_sponsorships.iter().map(|s| json!({
            "id": s.id, "planId": s.plan_id, "status": s.status,
            "startsAt": s.starts_at, "endsAt": s.ends_at,
            "priceMinor": s.price_minor, "currency": s.currency, "createdAt": s.created_at,
        })).collect::<Vec<_>>(),
        // An entry about the caller made by someone else (an admin) keeps
        // that person's address to itself.
        "auditEntries": audit.into_iter().map(|mut a| {
            if a["actor_id"].as_str() != Some(me.id.as_str())
                && let Some(m) = a.as_object_mut()
            {
                m.remove("ip");
            }
            a
        }).collect::<Vec<_>>(),
    });

    let uow = UnitOfWork::begin(ctx).await?;
    uow.audit(Entry {
        action: action::ACCOUNT_EXPORTED,
        actor_id: Some(&me.id),
        target_type: Some("user"),
        target_id: Some(&me.id),
        ..Default::default()
    })
    .await?;
    uow.commit().await?;
    Ok(doc)
}

/// Why an account cannot be deleted yet, if it cannot: money or a
/// reservation still moving.
async fn still_moving<C: ConnectionTrait>(
    db: &C,
    user_id: &str,
    coach_id: Option<&str>,
    deletion_started: bool,
) -> AppResult<Option<&'static str>> {
    let now = Utc::now();
    let pending_purchase = package_purchases::Entity::find()
        .filter(package_purchases::Column::ConsumerId.eq(user_id))
        .filter(package_purchases::Column::Status.eq("PENDING"))
        .filter(package_purchases::Column::PaymentDeadline.gt(now))
        .one(db)
        .await?;
    let pending_sponsorship = match coach_id {
        Some(c) => {
            sponsorships::Entity::find()
                .filter(sponsorships::Column::CoachId.eq(c))
                .filter(sponsorships::Column::Status.eq("PENDING_PAYMENT"))
                .filter(sponsorships::Column::PaymentDeadline.gt(now))
                .one(db)
                .await?
        }
        None => None,
    };
    if pending_purchase.is_some() || pending_sponsorship.is_some() {
        return Ok(Some("a purchase awaits payment"));
    }
    let pending_booking = bookings::Entity::find()
        .filter(
            Condition::any()
                .add(bookings::Column::ConsumerId.eq(user_id))
                .add(bookings::Column::CoachUserId.eq(user_id)),
        )
        .filter(bookings::Column::Status.eq(BookingStatus::PendingPayment.as_str()))
        .one(db)
        .await?;
    if pending_booking.is_some() {
        return Ok(Some("a booking awaits payment"));
    }
    let booking_ids: Vec<String> = bookings::Entity::find()
        .select_only()
        .column(bookings::Column::Id)
        .filter(
            Condition::any()
                .add(bookings::Column::ConsumerId.eq(user_id))
                .add(bookings::Column::CoachUserId.eq(user_id)),
        )
        .into_tuple()
        .all(db)
        .await?;
    let mut purchases = Condition::any().add(package_purchases::Column::ConsumerId.eq(user_id));
    if let Some(c) = coach_id {
        purchases = purchases.add(package_purchases::Column::CoachId.eq(c));
    }
    let purchase_ids: Vec<String> = package_purchases::Entity::find()
        .select_only()
        .column(package_purchases::Column::Id)
        .filter(purchases)
        .into_tuple()
        .all(db)
        .await?;
    let sponsorship_ids: Vec<String> = match coach_id {
        Some(c) => {
            sponsorships::Entity::find()
                .select_only()
                .column(sponsorships::Column::Id)
                .filter(sponsorships::Column::CoachId.eq(c))
                .into_tuple()
                .all(db)
                .await?
        }
        None => Vec::new(),
    };
    for (col, ids) in [
        (payments::Column::BookingId, &booking_ids),
        (payments::Column::PackagePurchaseId, &purchase_ids),
        (payments::Column::SponsorshipId, &sponsorship_ids),
    ] {
        for chunk in ids.chunks(CHUNK) {
            let pays = payments::Entity::find()
                .filter(col.is_in(chunk.to_vec()))
                .all(db)
                .await?;
            if pays
                .iter()
                .any(|p| PaymentStatus::of(p) == PaymentStatus::Pending && p.provider_ref.is_some())
            {
                return Ok(Some("a payment is in progress"));
            }
            let pay_ids: Vec<String> = pays.into_iter().map(|p| p.id).collect();
            let open_refund = refunds::Entity::find()
                .filter(refunds::Column::PaymentId.is_in(pay_ids))
                .filter(refunds::Column::Status.is_in([
                    RefundStatus::Pending.as_str(),
                    RefundStatus::Submitted.as_str(),
                ]))
                .one(db)
                .await?;
            // Refunds this deletion started (a retry after a failure) are
            // on their way already and need nothing from the account.
            if open_refund.is_some() && !deletion_started {
                return Ok(Some("a refund is on its way"));
            }
        }
    }
    Ok(None)
}

/// Deletes the caller's account: refused while money or a reservation is
/// moving; otherwise their future sessions are cancelled under the policy
/// (a coach's in full), every session ends, a coach leaves search, and
/// their personal fields are anonymised; bookings, payments, refunds and
/// the audit log stay, without the personal parts. The email can register
/// again. Audited without the email.
pub async fn delete_account(ctx: &DomainCtx, user: &CurrentUser, password: &str) -> AppResult<()> {
    let me = users::Entity::find_by_id(user.id.clone())
        .one(&ctx.db)
        .await?
        .ok_or(AppError::Unauthenticated("the account no longer exists"))?;
    if me.deleted_at.is_some()
        || password.len() > 1024
        || !auth::verify_password(password, &me.password_hash).await?
    {
        return Err(AppError::Unauthenticated("the password is not right"));
    }
    let profile = profile_of(&ctx.db, &me.id).await?;
    let coach_id = profile.as_ref().map(|p| p.id.clone());

    // First: refuse, or stop every session and take the coach out of
    // search, so nothing new starts while the account goes.
    let mut uow = UnitOfWork::begin(ctx).await?;
    lock_user(uow.db(), &me.id).await?;
    let started = audit_log::Entity::find()
        .filter(audit_log::Column::Action.eq(action::ACCOUNT_DELETION_STARTED))
        .filter(audit_log::Column::TargetId.eq(me.id.clone()))
        .one(uow.db())
        .await?
        .is_some();
    if let Some(why) = still_moving(uow.db(), &me.id, coach_id.as_deref(), started).await? {
        return Err(AppError::Conflict(format!(
            "the account cannot be deleted while {why}; try again once it has settled"
        )));
    }
    uow.audit(Entry {
        action: action::ACCOUNT_DELETION_STARTED,
        actor_id: Some(&me.id),
        target_type: Some("user"),
        target_id: Some(&me.id),
        ..Default::default()
    })
    .await?;
    let version = auth::end_all_sessions(uow.db(), &me.id).await?;
    uow.sessions_ended(&me.id, version);
    // The phones stop at once; the choices go with the account.
    entity::push_devices::Entity::delete_many()
        .filter(entity::push_devices::Column::UserId.eq(me.id.clone()))
        .exec(uow.db())
        .await?;
    entity::notification_preferences::Entity::delete_many()
        .filter(entity::notification_preferences::Column::UserId.eq(me.id.clone()))
        .exec(uow.db())
        .await?;
    if let Some(c) = &coach_id {
        coach_profiles::Entity::update_many()
            .col_expr(coach_profiles::Column::Published, Expr::value(false))
            .filter(coach_profiles::Column::Id.eq(c.clone()))
            .exec(uow.db())
            .await?;
        packages::Entity::update_many()
            .col_expr(packages::Column::Active, Expr::value(false))
            .filter(packages::Column::CoachId.eq(c.clone()))
            .exec(uow.db())
            .await?;
        uow.listing_changed(c);
    }
    uow.commit().await?;

    // Then the future sessions, each cancelled as its participant would,
    // under the policy (refunds are sent after each commit).
    let now = Utc::now();
    let future = bookings::Entity::find()
        .filter(
            Condition::any()
                .add(bookings::Column::ConsumerId.eq(me.id.clone()))
                .add(bookings::Column::CoachUserId.eq(me.id.clone())),
        )
        .filter(bookings::Column::Status.eq(BookingStatus::Confirmed.as_str()))
        .filter(bookings::Column::StartAt.gt(now))
        .all(&ctx.db)
        .await?;
    let cancelled = future.len();
    for b in future {
        match booking::cancel(ctx, user, &b.id, "the account was deleted").await {
            Ok(_) | Err(AppError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }

    // A coach's remaining package credits can no longer be used: refunded.
    if let Some(c) = &coach_id {
        crate::domain::package::refund_unused_of_coach(ctx, c, &me.id).await?;
    }

    // Last: the personal fields, in one unit of work, unless something
    // started meanwhile (then a retry finishes the job).
    let mut uow = UnitOfWork::begin(ctx).await?;
    lock_user(uow.db(), &me.id).await?;
    if let Some(why) = still_moving(uow.db(), &me.id, coach_id.as_deref(), true).await? {
        return Err(AppError::Conflict(format!(
            "the account cannot be deleted while {why}; try again once it has settled"
        )));
    }
    let display_name = profile.as_ref().map(|p| p.display_name.clone());
    let meeting_url = profile.as_ref().and_then(|p| p.meeting_url.clone());
    anonymise(
        &mut uow,
        &me,
        coach_id.as_deref(),
        display_name,
        meeting_url,
    )
    .await?;
    uow.audit(Entry {
        action: action::ACCOUNT_DELETED,
        actor_id: Some(&me.id),
        target_type: Some("user"),
        target_id: Some(&me.id),
        ip: None,
        detail: Some(json!({ "role": me.role, "cancelledBookings": cancelled })),
    })
    .await?;
    uow.commit().await
}

async fn lock_user<C: ConnectionTrait>(db: &C, user_id: &str) -> AppResult<()> {
    users::Entity::update_many()
        .col_expr(
            users::Column::UpdatedAt,
            Expr::col(users::Column::UpdatedAt),
        )
        .filter(users::Column::Id.eq(user_id))
        .exec(db)
        .await?;
    Ok(())
}

async fn anonymise(
    uow: &mut UnitOfWork,
    me: &users::Model,
    coach_id: Option<&str>,
    display_name: Option<String>,
    meeting_url: Option<String>,
) -> AppResult<()> {
    let db = uow.db();
    let now = Utc::now();
    let address = format!("deleted-{}@{DELETED_EMAIL_DOMAIN}", me.id);
    users::Entity::update_many()
        .col_expr(users::Column::Email, Expr::value(address.clone()))
        .col_expr(users::Column::Name, Expr::value(DELETED_NAME))
        // No password verifies against this.
        .col_expr(users::Column::PasswordHash, Expr::value("!deleted"))
        .col_expr(users::Column::EmailVerified, Expr::value(false))
        .col_expr(users::Column::Timezone, Expr::value(Option::<String>::None))
        .col_expr(
            users::Column::SuspensionReason,
            Expr::value(Option::<String>::None),
        )
        .col_expr(users::Column::DeletedAt, Expr::value(now))
        .col_expr(users::Column::UpdatedAt, Expr::value(now))
        .filter(users::Column::Id.eq(me.id.clone()))
        .exec(db)
        .await?;
    let version = auth::end_all_sessions(db, &me.id).await?;
    uow.sessions_ended(&me.id, version);
    let db = uow.db();
    user_tokens::Entity::delete_many()
        .filter(user_tokens::Column::UserId.eq(me.id.clone()))
        .exec(db)
        .await?;
    entity::sessions::Entity::update_many()
        .col_expr(
            entity::sessions::Column::Ip,
            Expr::value(Option::<String>::None),
        )
        .filter(entity::sessions::Column::UserId.eq(me.id.clone()))
        .exec(db)
        .await?;
    if let Some(c) = coach_id {
        coach_profiles::Entity::update_many()
            .col_expr(
                coach_profiles::Column::DisplayName,
                Expr::value(DELETED_COACH_NAME),
            )
            .col_expr(coach_profiles::Column::Headline, Expr::value(""))
            .col_expr(coach_profiles::Column::Bio, Expr::value(""))
            .col_expr(
                coach_profiles::Column::MeetingUrl,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                coach_profiles::Column::RejectionReason,
                Expr::value(Option::<String>::None),
            )
            .col_expr(coach_profiles::Column::Published, Expr::value(false))
            .col_expr(coach_profiles::Column::UpdatedAt, Expr::value(now))
            .filter(coach_profiles::Column::Id.eq(c))
            .exec(db)
            .await?;
        availability_rules::Entity::delete_many()
            .filter(availability_rules::Column::CoachId.eq(c))
            .exec(db)
            .await?;
        // The coach's own meeting room, on every booking that showed it.
        bookings::Entity::update_many()
            .col_expr(
                bookings::Column::MeetingUrl,
                Expr::value(Option::<String>::None),
            )
            .filter(bookings::Column::CoachId.eq(c))
            .exec(db)
            .await?;
        uow.listing_changed(c);
    }
    let db = uow.db();
    // Emails: none still to send, and none kept with their address.
    outbox::Entity::update_many()
        .col_expr(
            outbox::Column::Status,
            Expr::value(crate::domain::email::OutboxStatus::Skipped.as_str()),
        )
        .filter(outbox::Column::UserId.eq(me.id.clone()))
        .filter(outbox::Column::Status.eq(crate::domain::email::OutboxStatus::Pending.as_str()))
        .exec(db)
        .await?;
    outbox::Entity::update_many()
        .col_expr(outbox::Column::Recipient, Expr::value(address))
        .col_expr(outbox::Column::Data, Expr::value("{}"))
        .filter(outbox::Column::UserId.eq(me.id.clone()))
        .exec(db)
        .await?;
    // Emails to others name them as the counterpart (a coach by display
    // name, with their meeting link): "Former user" now, and no link.
    let names: Vec<String> = [Some(me.name.clone()), display_name]
        .into_iter()
        .flatten()
        .filter(|n| !n.is_empty())
        .collect();
    for name in &names {
        let naming = outbox::Entity::find()
            .filter(outbox::Column::Data.contains(name.as_str()))
            .all(db)
            .await?;
        for row in naming {
            let mut data: Value = serde_json::from_str(&row.data).unwrap_or_default();
            let Some(map) = data.as_object_mut() else {
                continue;
            };
            if map.get("other_name").and_then(Value::as_str) != Some(name.as_str()) {
                continue;
            }
            map.insert("other_name".into(), DELETED_NAME.into());
            if meeting_url.is_some()
                && map.get("meeting_url").and_then(Value::as_str) == meeting_url.as_deref()
            {
                map.insert("meeting_url".into(), "".into());
            }
            outbox::Entity::update_many()
                .col_expr(outbox::Column::Data, Expr::value(data.to_string()))
                .filter(outbox::Column::Id.eq(row.id.clone()))
                .exec(db)
                .await?;
        }
    }
    // The audit log keeps what happened, not where from or who by email.
    let about = Condition::any()
        .add(audit_log::Column::ActorId.eq(me.id.clone()))
        .add(audit_log::Column::TargetId.eq(me.id.clone()));
    audit_log::Entity::update_many()
        .col_expr(audit_log::Column::Ip, Expr::value(Option::<String>::None))
        .filter(about.clone())
        .exec(db)
        .await?;
    audit_log::Entity::update_many()
        .col_expr(
            audit_log::Column::Detail,
            Expr::value(Option::<String>::None),
        )
        .filter(about)
        .filter(audit_log::Column::Detail.contains(me.email.as_str()))
        .exec(db)
        .await?;
    // Failed sign-ins with the address, before it was known as theirs.
    let tried = audit_log::Entity::find()
        .filter(audit_log::Column::Action.eq(action::LOGIN_FAILED))
        .filter(audit_log::Column::Detail.contains(me.email.as_str()))
        .all(db)
        .await?;
    for a in tried {
        let detail: Value = a
            .detail
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or_default();
        if detail["email"].as_str() == Some(me.email.as_str()) {
            audit_log::Entity::update_many()
                .col_expr(
                    audit_log::Column::Detail,
                    Expr::value(Option::<String>::None),
                )
                .filter(audit_log::Column::Id.eq(a.id))
                .exec(db)
                .await?;
        }
    }
    Ok(())
}
