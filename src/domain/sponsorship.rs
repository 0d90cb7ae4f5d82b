//! Sponsorships: labelled, time-boxed promotion in search that an approved
//! coach buys from a plan of their market. The platform keeps the whole
//! amount (a plain charge, no transfer). Paid, a sponsorship runs from the
//! payment for its plan's days; one bought while another runs (or is
//! queued) starts where the last one ends, so a coach's sponsorships never
//! overlap and together form one unbroken window. That window's end is
//! kept on the coach's profile (`sponsored_until`), which search reads
//! against the clock.
//!
//! Lock order: the payment's row, then the coach's, then the
//! sponsorship's.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

use crate::domain::audit::{Entry, action};
use crate::domain::auth::CurrentUser;
use crate::domain::booking::policy::PAYMENT_WINDOW;
use crate::domain::coach::{self, CoachStatus};
use crate::domain::context::DomainCtx;
use crate::domain::notify;
use crate::domain::package::lock_coach;
use crate::domain::payment::{self, CheckoutTerms, Purpose, refund};
use crate::domain::types::Role;
use crate::domain::uow::UnitOfWork;
use crate::error::{AppError, AppResult};
use entity::{coach_profiles, payments, sponsorship_plans, sponsorships};

/// How far ahead a coach can line sponsorships up.
pub const MAX_AHEAD: Duration = Duration::days(400);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SponsorshipStatus {
    PendingPayment,
    /// Paid: running, or queued after the coach's current one.
    Active,
    Expired,
    Cancelled,
}

impl SponsorshipStatus {
    pub const ALL: [SponsorshipStatus; 4] = [
        SponsorshipStatus::PendingPayment,
        SponsorshipStatus::Active,
        SponsorshipStatus::Expired,
        SponsorshipStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SponsorshipStatus::PendingPayment => "PENDING_PAYMENT",
            SponsorshipStatus::Active => "ACTIVE",
            SponsorshipStatus::Expired => "EXPIRED",
            SponsorshipStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// A sponsorship's status as of `now`: an ACTIVE one past its end reads
/// EXPIRED at once (the job that records it runs later).
pub fn status_at(s: &sponsorships::Model, now: DateTime<Utc>) -> SponsorshipStatus {
    match SponsorshipStatus::parse(&s.status) {
        Some(SponsorshipStatus::Active) if s.ends_at.is_none_or(|e| e <= now) => {
            SponsorshipStatus::Expired
        }
        Some(st) => st,
        None => SponsorshipStatus::Cancelled,
    }
}

/// The plans of a market, shortest first.
pub async fn plans(ctx: &DomainCtx, market_code: &str) -> AppResult<Vec<sponsorship_plans::Model>> {
    let market = ctx
        .reference
        .market_by_code(market_code)
        .ok_or_else(|| AppError::bad_input("marketCode", "unknown market"))?;
    Ok(sponsorship_plans::Entity::find()
        .filter(sponsorship_plans::Column::MarketId.eq(market.id.clone()))
        .order_by_asc(sponsorship_plans::Column::DurationDays)
        .order_by_asc(sponsorship_plans::Column::Id)
        .all(&ctx.db)
        .await?)
}

pub async fn plan<C: ConnectionTrait>(
    db: &C,
    plan_id: &str,
) -> AppResult<sponsorship_plans::Model> {
    if plan_id.len() > 64 {
        return Err(AppError::NotFound("sponsorship plan"));
    }
    sponsorship_plans::Entity::find_by_id(plan_id.to_string())
        .one(db)
        .await?
        .ok_or(AppError::NotFound("sponsorship plan"))
}

pub async fn find<C: ConnectionTrait>(db: &C, id: &str) -> AppResult<sponsorships::Model> {
    if id.len() > 64 {
        return Err(AppError::NotFound("sponsorship"));
    }
    sponsorships::Entity::find_by_id(id.to_string())
        .one(db)
        .await?
        .ok_or(AppError::NotFound("sponsorship"))
}

pub async fn payment_of<C: ConnectionTrait>(
    db: &C,
    sponsorship_id: &str,
) -> AppResult<Option<payments::Model>> {
    Ok(payments::Entity::find()
        .filter(payments::Column::SponsorshipId.eq(sponsorship_id))
        .one(db)
        .await?)
}

async fn audit(
    uow: &UnitOfWork,
    act: &str,
    actor: Option<&str>,
    id: &str,
    detail: serde_json::Value,
) -> AppResult<()> {
    uow.audit(Entry {
        action: act,
        actor_id: actor,
        target_type: Some("sponsorship"),
        target_id: Some(id),
        ip: None,
        detail: Some(detail),
    })
    .await
}

/// Paid sponsorships of a coach that have not ended, earliest first.
async fn running<C: ConnectionTrait>(
    db: &C,
    coach_id: &str,
    now: DateTime<Utc>,
) -> AppResult<Vec<sponsorships::Model>> {
    Ok(sponsorships::Entity::find()
        .filter(sponsorships::Column::CoachId.eq(coach_id))
        .filter(sponsorships::Column::Status.eq(SponsorshipStatus::Active.as_str()))
        .filter(sponsorships::Column::EndsAt.gt(now))
        .order_by_asc(sponsorships::Column::StartsAt)
        .all(db)
        .await?)
}

/// Stores the end of the coach's sponsored window and marks the listing
/// stale, so search shows the change at the commit.
async fn refresh_window(
    uow: &mut UnitOfWork,
    coach_id: &str,
    now: DateTime<Utc>,
) -> AppResult<Option<DateTime<Utc>>> {
    let until = running(uow.db(), coach_id, now)
        .await?
        .iter()
        .filter_map(|s| s.ends_at)
        .max();
    coach_profiles::Entity::update_many()
        .col_expr(coach_profiles::Column::SponsoredUntil, Expr::value(until))
        .filter(coach_profiles::Column::Id.eq(coach_id))
        .exec(uow.db())
        .await?;
    uow.listing_changed(coach_id);
    Ok(until)
}

/// Buys a plan for the caller's coach profile: a PENDING_PAYMENT
/// sponsorship with a payment whose checkout the client opens. Buying the
/// same plan again while one awaits payment returns that one.
pub async fn purchase(
    ctx: &DomainCtx,
    user: &CurrentUser,
    plan_id: &str,
) -> AppResult<(sponsorships::Model, payments::Model)> {
    if user.role != Role::Coach {
        return Err(AppError::Forbidden("only coaches buy sponsorships"));
    }
    crate::domain::hold::require_verified(user)?;
    let profile = coach::own_profile(&ctx.db, user).await?;
    if profile.status != CoachStatus::Approved.as_str() {
        return Err(AppError::Forbidden(
            "only approved coaches can buy a sponsorship",
        ));
    }
    let plan = plan(&ctx.db, plan_id).await?;
    if plan.market_id != profile.market_id {
        return Err(AppError::bad_input(
            "planId",
            "this plan is for another market than yours",
        ));
    }
    let now = Utc::now();
    let uow = UnitOfWork::begin(ctx).await?;
    lock_coach(uow.db(), &profile.id).await?;
    let pending = sponsorships::Entity::find()
        .filter(sponsorships::Column::CoachId.eq(profile.id.clone()))
        .filter(sponsorships::Column::Status.eq(SponsorshipStatus::PendingPayment.as_str()))
        .filter(sponsorships::Column::PaymentDeadline.gt(now))
        .one(uow.db())
        .await?;
    if let Some(open) = pending {
        let pay = payment_of(uow.db(), &open.id).await?;
        drop(uow);
        return match pay {
            Some(p) if open.plan_id == plan.id && p.checkout_url.is_some() => Ok((open, p)),
            Some(_) if open.plan_id == plan.id => Err(AppError::Conflict(
                "this sponsorship's checkout is being opened; try again in a moment".into(),
            )),
            _ => Err(AppError::Conflict(
                "another sponsorship awaits payment; pay it or let it lapse first".into(),
            )),
        };
    }
    let until = running(uow.db(), &profile.id, now)
        .await?
        .iter()
        .filter_map(|s| s.ends_at)
        .max();
    if until.is_some_and(|u| u + Duration::days(i64::from(plan.duration_days)) > now + MAX_AHEAD) {
        return Err(AppError::Conflict(format!(
            "sponsorships can be lined up at most {} days ahead",
            MAX_AHEAD.num_days()
        )));
    }
    let bought = sponsorships::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        coach_id: Set(profile.id.clone()),
        plan_id: Set(plan.id.clone()),
        status: Set(SponsorshipStatus::PendingPayment.as_str().into()),
        starts_at: Set(None),
        ends_at: Set(None),
        price_minor: Set(plan.price_minor),
        currency: Set(plan.currency.clone()),
        duration_days: Set(plan.duration_days),
        payment_deadline: Set(Some(now + PAYMENT_WINDOW)),
        cancellation_reason: Set(None),
        created_at: Set(now),
        updated_at: Set(Some(now)),
    }
    .insert(uow.db())
    .await?;
    // The platform keeps it all: no destination, no fee.
    let pay = payment::create_pending(
        ctx,
        &uow,
        Purpose::Sponsorship(bought.id.clone()),
        bought.price_minor,
        &bought.currency,
        None,
    )
    .await?;
    audit(
        &uow,
        action::SPONSORSHIP_CREATED,
        Some(&user.id),
        &bought.id,
        serde_json::json!({
            "coach": profile.id,
            "plan": plan.id,
            "payment": pay.id,
            "amountMinor": bought.price_minor,
            "currency": bought.currency,
        }),
    )
    .await?;
    uow.commit().await?;

    let ctx = ctx.clone();
    let terms = checkout_terms(&plan, &bought);
    tokio::spawn(async move {
        match payment::start_checkout(&ctx, pay.clone(), terms).await {
            Ok(pay) => Ok((bought, pay)),
            Err(e) => {
                let uow = UnitOfWork::begin(&ctx).await?;
                if let Some(p) = payment::lock(uow.db(), &pay.id).await?
                    && p.checkout_url.is_none()
                {
                    lapse_in(
                        &uow,
                        &bought.id,
                        "the checkout could not be opened",
                        true,
                        None,
                    )
                    .await?;
                }
                uow.commit().await?;
                Err(e)
            }
        }
    })
    .await
    .map_err(AppError::internal)?
}

/// What a sponsorship's checkout shows: a plain charge, no fee.
fn checkout_terms(plan: &sponsorship_plans::Model, s: &sponsorships::Model) -> CheckoutTerms {
    CheckoutTerms {
        description: format!("{} sponsorship ({} days)", plan.name, s.duration_days),
        application_fee_minor: 0,
        expires_at: s.payment_deadline.unwrap_or(s.created_at + PAYMENT_WINDOW),
    }
}

/// The checkout terms of a sponsorship still awaiting payment within its
/// deadline, for reopening its checkout; `None` otherwise.
pub(crate) async fn reopen_terms(
    db: &DatabaseConnection,
    sponsorship_id: &str,
    now: DateTime<Utc>,
) -> AppResult<Option<CheckoutTerms>> {
    let s = find(db, sponsorship_id).await?;
    if s.status != SponsorshipStatus::PendingPayment.as_str()
        || s.payment_deadline.is_none_or(|d| d <= now)
    {
        return Ok(None);
    }
    let plan = plan(db, &s.plan_id).await?;
    Ok(Some(checkout_terms(&plan, &s)))
}

/// The money of a sponsorship arrived (inside the payment's unit of work,
/// its row locked): one still awaiting payment runs from now, or from the
/// end of the coach's last paid one, for its days. One cancelled
/// meanwhile is refunded in full.
pub(crate) async fn settle_paid(
    uow: &mut UnitOfWork,
    sponsorship_id: &str,
    pay: &payments::Model,
) -> AppResult<()> {
    let current = find(uow.db(), sponsorship_id).await?;
    lock_coach(uow.db(), &current.coach_id).await?;
    let s = find(uow.db(), sponsorship_id).await?;
    let now = Utc::now();
    let amount = refund::refundable(pay);
    if amount == 0 {
        // Refunded in full before it was reported paid: nothing pays for it.
        lapse_in(uow, &s.id, "the payment was refunded", false, None).await?;
        return Ok(());
    }
    if s.status == SponsorshipStatus::PendingPayment.as_str() {
        let after = running(uow.db(), &s.coach_id, now)
            .await?
            .iter()
            .filter(|r| r.id != s.id)
            .filter_map(|r| r.ends_at)
            .max();
        let starts = after.map_or(now, |a| Ord::max(a, now));
        let ends = starts + Duration::days(i64::from(s.duration_days));
        sponsorships::Entity::update_many()
            .col_expr(
                sponsorships::Column::Status,
                Expr::value(SponsorshipStatus::Active.as_str()),
            )
            .col_expr(sponsorships::Column::StartsAt, Expr::value(starts))
            .col_expr(sponsorships::Column::EndsAt, Expr::value(ends))
            .col_expr(sponsorships::Column::UpdatedAt, Expr::value(now))
            .filter(sponsorships::Column::Id.eq(s.id.clone()))
            .filter(sponsorships::Column::Status.eq(SponsorshipStatus::PendingPayment.as_str()))
            .exec(uow.db())
            .await?;
        refresh_window(uow, &s.coach_id, now).await?;
        audit(
            uow,
            action::SPONSORSHIP_ACTIVATED,
            None,
            &s.id,
            serde_json::json!({
                "coach": s.coach_id,
                "payment": pay.id,
                "startsAt": starts,
                "endsAt": ends,
                "queued": starts > now,
            }),
        )
        .await?;
        let profile = coach::get(uow.db(), &s.coach_id).await?;
        notify::purchase_receipt(
            uow,
            &profile.user_id,
            &pay.id,
            pay.amount_minor,
            &pay.currency,
            &format!(
                "Sponsored placement in search, {} to {} (UTC)",
                starts.format("%Y-%m-%d %H:%M"),
                ends.format("%Y-%m-%d %H:%M")
            ),
        )
        .await?;
        return Ok(());
    }
    payment::decide_refund(uow, pay, amount, refund::UNFULFILLED).await?;
    audit(
        uow,
        action::SPONSORSHIP_REFUNDED,
        None,
        &s.id,
        serde_json::json!({
            "payment": pay.id,
            "amountMinor": amount,
            "reason": "the payment arrived after the sponsorship was cancelled",
        }),
    )
    .await
}

/// Inside a unit of work: a sponsorship still awaiting payment is
/// CANCELLED; with `fail_payment` (or a checkout never opened) its payment
/// fails too. False when it was no longer awaiting payment.
pub(crate) async fn lapse_in(
    uow: &UnitOfWork,
    sponsorship_id: &str,
    reason: &str,
    fail_payment: bool,
    actor: Option<&str>,
) -> AppResult<bool> {
    let pay = payment_of(uow.db(), sponsorship_id).await?;
    if let Some(p) = &pay {
        payment::lock(uow.db(), &p.id).await?;
    }
    let moved = sponsorships::Entity::update_many()
        .col_expr(
            sponsorships::Column::Status,
            Expr::value(SponsorshipStatus::Cancelled.as_str()),
        )
        .col_expr(
            sponsorships::Column::CancellationReason,
            Expr::value(reason.to_string()),
        )
        .col_expr(sponsorships::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(sponsorships::Column::Id.eq(sponsorship_id))
        .filter(sponsorships::Column::Status.eq(SponsorshipStatus::PendingPayment.as_str()))
        .exec(uow.db())
        .await?;
    if moved.rows_affected != 1 {
        return Ok(false);
    }
    if let Some(p) = pay.filter(|p| fail_payment || p.provider_ref.is_none()) {
        payment::fail_pending(uow, &p, reason).await?;
    }
    audit(
        uow,
        action::SPONSORSHIP_CANCELLED,
        actor,
        sponsorship_id,
        serde_json::json!({ "reason": reason }),
    )
    .await?;
    Ok(true)
}

/// Sponsorships still unpaid at their deadline are CANCELLED, each in its
/// own unit of work (a late payment is then refunded in full).
pub async fn lapse_overdue(ctx: &DomainCtx, now: DateTime<Utc>) -> AppResult<usize> {
    let overdue = sponsorships::Entity::find()
        .filter(sponsorships::Column::Status.eq(SponsorshipStatus::PendingPayment.as_str()))
        .filter(sponsorships::Column::PaymentDeadline.lte(now))
        .limit(200)
        .all(&ctx.db)
        .await?;
    let reported = ctx.payments.kind() != payment::ProviderKind::Dev;
    let mut changed = 0;
    for s in overdue {
        let uow = UnitOfWork::begin(ctx).await?;
        if lapse_in(
            &uow,
            &s.id,
            "payment was not completed in time",
            !reported,
            None,
        )
        .await?
        {
            changed += 1;
        }
        uow.commit().await?;
    }
    Ok(changed)
}

/// ACTIVE sponsorships past their end are recorded EXPIRED (search and
/// every query compare times already), audited.
pub async fn expire_lapsed(ctx: &DomainCtx, now: DateTime<Utc>) -> AppResult<usize> {
    let ended = sponsorships::Entity::find()
        .filter(sponsorships::Column::Status.eq(SponsorshipStatus::Active.as_str()))
        .filter(sponsorships::Column::EndsAt.lte(now))
        // One order for every sweeper, so two never wait on each other.
        .order_by_asc(sponsorships::Column::Id)
        .limit(200)
        .all(&ctx.db)
        .await?;
    if ended.is_empty() {
        return Ok(0);
    }
    let uow = UnitOfWork::begin(ctx).await?;
    let mut changed = 0;
    for s in ended {
        let moved = sponsorships::Entity::update_many()
            .col_expr(
                sponsorships::Column::Status,
                Expr::value(SponsorshipStatus::Expired.as_str()),
            )
            .col_expr(sponsorships::Column::UpdatedAt, Expr::value(now))
            .filter(sponsorships::Column::Id.eq(s.id.clone()))
            .filter(sponsorships::Column::Status.eq(SponsorshipStatus::Active.as_str()))
            .filter(sponsorships::Column::EndsAt.lte(now))
            .exec(uow.db())
            .await?;
        if moved.rows_affected == 1 {
            changed += 1;
            audit(
                &uow,
                action::SPONSORSHIP_EXPIRED,
                None,
                &s.id,
                serde_json::json!({ "coach": s.coach_id, "endedAt": s.ends_at }),
            )
            .await?;
        }
    }
    uow.commit().await?;
    Ok(changed)
}

/// An admin cancels a sponsorship, awaiting payment or paid (running or
/// queued), refunding `refund_minor` of its payment (0 to all of what
/// remains, the admin's decision). The coach's later sponsorships move up
/// by the time given back, so the window stays unbroken. Audited.
pub async fn cancel(
    ctx: &DomainCtx,
    admin: &CurrentUser,
    sponsorship_id: &str,
    reason: &str,
    refund_minor: i64,
) -> AppResult<sponsorships::Model> {
    if admin.role != Role::Admin {
        return Err(AppError::Forbidden("only admins cancel sponsorships"));
    }
    let reason = coach::text_field("reason", reason, 1, 500)?;
    if refund_minor < 0 {
        return Err(AppError::bad_input("refundMinor", "must not be negative"));
    }
    let s = find(&ctx.db, sponsorship_id).await?;
    let now = Utc::now();
    let mut uow = UnitOfWork::begin(ctx).await?;
    let pay = match payment_of(uow.db(), &s.id).await? {
        Some(p) => payment::lock(uow.db(), &p.id).await?,
        None => None,
    };
    lock_coach(uow.db(), &s.coach_id).await?;
    let s = find(uow.db(), &s.id).await?;
    match status_at(&s, now) {
        SponsorshipStatus::PendingPayment => {
            if refund_minor > 0 {
                return Err(AppError::bad_input(
                    "refundMinor",
                    "nothing was paid for this sponsorship yet",
                ));
            }
            let reported = ctx.payments.kind() != payment::ProviderKind::Dev;
            lapse_in(&uow, &s.id, &reason, !reported, Some(&admin.id)).await?;
        }
        SponsorshipStatus::Active => {
            let (Some(starts), Some(ends)) = (s.starts_at, s.ends_at) else {
                return Err(AppError::internal("paid sponsorship without its window"));
            };
            let stop = Ord::max(starts, now);
            let given_back = ends - stop;
            sponsorships::Entity::update_many()
                .col_expr(
                    sponsorships::Column::Status,
                    Expr::value(SponsorshipStatus::Cancelled.as_str()),
                )
                .col_expr(sponsorships::Column::EndsAt, Expr::value(stop))
                .col_expr(
                    sponsorships::Column::CancellationReason,
                    Expr::value(reason.clone()),
                )
                .col_expr(sponsorships::Column::UpdatedAt, Expr::value(now))
                .filter(sponsorships::Column::Id.eq(s.id.clone()))
                .filter(sponsorships::Column::Status.eq(SponsorshipStatus::Active.as_str()))
                .exec(uow.db())
                .await?;
            for later in running(uow.db(), &s.coach_id, now).await? {
                let (Some(ls), Some(le)) = (later.starts_at, later.ends_at) else {
                    continue;
                };
                if ls < ends {
                    continue;
                }
                let (ns, ne) = (ls - given_back, le - given_back);
                sponsorships::Entity::update_many()
                    .col_expr(sponsorships::Column::StartsAt, Expr::value(ns))
                    .col_expr(sponsorships::Column::EndsAt, Expr::value(ne))
                    .col_expr(sponsorships::Column::UpdatedAt, Expr::value(now))
                    .filter(sponsorships::Column::Id.eq(later.id.clone()))
                    .exec(uow.db())
                    .await?;
                audit(
                    &uow,
                    action::SPONSORSHIP_RESCHEDULED,
                    Some(&admin.id),
                    &later.id,
                    serde_json::json!({
                        "after": s.id,
                        "from": [ls, le],
                        "to": [ns, ne],
                    }),
                )
                .await?;
            }
            refresh_window(&mut uow, &s.coach_id, now).await?;
            if refund_minor > 0 {
                let p =
                    pay.ok_or_else(|| AppError::internal("paid sponsorship without payment"))?;
                let remaining = refund::refundable(&p);
                if refund_minor > remaining {
                    return Err(AppError::bad_input(
                        "refundMinor",
                        format!("at most {remaining} (minor units) remains to refund"),
                    ));
                }
                payment::decide_refund(&mut uow, &p, refund_minor, refund::ADMIN_REFUND).await?;
            }
            audit(
                &uow,
                action::SPONSORSHIP_CANCELLED,
                Some(&admin.id),
                &s.id,
                serde_json::json!({
                    "reason": reason,
                    "refundMinor": refund_minor,
                    "timeGivenBackSeconds": given_back.num_seconds(),
                }),
            )
            .await?;
        }
        SponsorshipStatus::Expired | SponsorshipStatus::Cancelled => {
            return Err(AppError::Conflict(
                "this sponsorship has ended already".into(),
            ));
        }
    }
    let updated = find(uow.db(), &s.id).await?;
    uow.commit().await?;
    Ok(updated)
}

/// A coach's sponsorships, newest first (the latest 100).
pub async fn of_coach(
    db: &DatabaseConnection,
    coach_id: &str,
) -> AppResult<Vec<sponsorships::Model>> {
    Ok(sponsorships::Entity::find()
        .filter(sponsorships::Column::CoachId.eq(coach_id))
        .order_by_desc(sponsorships::Column::CreatedAt)
        .order_by_desc(sponsorships::Column::Id)
        .limit(100)
        .all(db)
        .await?)
}

/// Every coach's sponsorships for admins, newest first, optionally of one
/// status as of now (the latest 100).
pub async fn for_admin(
    db: &DatabaseConnection,
    status: Option<SponsorshipStatus>,
) -> AppResult<Vec<sponsorships::Model>> {
    let now = Utc::now();
    let mut q = sponsorships::Entity::find();
    q = match status {
        Some(SponsorshipStatus::Active) => q
            .filter(sponsorships::Column::Status.eq(SponsorshipStatus::Active.as_str()))
            .filter(sponsorships::Column::EndsAt.gt(now)),
        Some(SponsorshipStatus::Expired) => q.filter(
            sea_orm::Condition::any()
                .add(sponsorships::Column::Status.eq(SponsorshipStatus::Expired.as_str()))
                .add(
                    sea_orm::Condition::all()
                        .add(sponsorships::Column::Status.eq(SponsorshipStatus::Active.as_str()))
                        .add(sponsorships::Column::EndsAt.lte(now)),
                ),
        ),
        Some(s) => q.filter(sponsorships::Column::Status.eq(s.as_str())),
        None => q,
    };
    Ok(q.order_by_desc(sponsorships::Column::CreatedAt)
        .order_by_desc(sponsorships::Column::Id)
        .limit(100)
        .all(db)
        .await?)
}
