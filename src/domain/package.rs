//! Packages: bundles of sessions a coach sells at one price. A consumer
//! buys one through the same checkout as a booking (a destination charge
//! to the coach with the platform's fee); the paid purchase grants its
//! sessions as credits, valid for the package's validity from payment.
//! Booking with a credit spends it in the transaction that creates the
//! booking, which is confirmed at once; a cancellation that would have
//! refunded the session in full gives the credit back instead of money.
//!
//! Lock order, as in every payment path: the payment's row, then the
//! purchase's.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use crate::domain::audit::{Entry, action};
use crate::domain::auth::CurrentUser;
use crate::domain::booking::policy::{self, PAYMENT_WINDOW};
use crate::domain::coach;
use crate::domain::context::DomainCtx;
use crate::domain::hold;
use crate::domain::notify;
use crate::domain::payment::{self, CheckoutTerms, Purpose, refund};
use crate::domain::types::Role;
use crate::domain::uow::UnitOfWork;
use crate::error::{AppError, AppResult};
use entity::{bookings, coach_profiles, package_purchases, packages, payments};

pub const NAME_LEN: (usize, usize) = (2, 80);
pub const SESSIONS: (i32, i32) = (2, 50);
pub const VALIDITY_DAYS: (i32, i32) = (7, 365);
/// Packages one coach may have, on sale or not.
pub const MAX_PER_COACH: u64 = 20;
/// Purchases one consumer may have awaiting payment at once.
pub const MAX_PENDING_PER_CONSUMER: u64 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurchaseStatus {
    /// Awaiting payment.
    Pending,
    /// Paid: its credits can be spent until it expires.
    Active,
    Expired,
    /// Never paid (or paid for a package withdrawn meanwhile, and
    /// refunded).
    Cancelled,
}

impl PurchaseStatus {
    pub const ALL: [PurchaseStatus; 4] = [
        PurchaseStatus::Pending,
        PurchaseStatus::Active,
        PurchaseStatus::Expired,
        PurchaseStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PurchaseStatus::Pending => "PENDING",
            PurchaseStatus::Active => "ACTIVE",
            PurchaseStatus::Expired => "EXPIRED",
            PurchaseStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// A purchase's status as of `now`: an ACTIVE one past its expiry reads
/// EXPIRED at once (the job that records it runs later).
pub fn status_at(p: &package_purchases::Model, now: DateTime<Utc>) -> PurchaseStatus {
    match PurchaseStatus::parse(&p.status) {
        Some(PurchaseStatus::Active) if p.expires_at.is_none_or(|e| e <= now) => {
            PurchaseStatus::Expired
        }
        Some(s) => s,
        None => PurchaseStatus::Cancelled,
    }
}

pub struct PackageInput {
    pub name: String,
    pub session_count: i32,
    pub price_minor: i64,
    pub validity_days: i32,
}

struct Valid {
    name: String,
    session_count: i32,
    price_minor: i64,
    validity_days: i32,
}

fn validate(input: &PackageInput, currency: &str) -> AppResult<Valid> {
    let name = coach::text_field("name", &input.name, NAME_LEN.0, NAME_LEN.1)?;
    if !(SESSIONS.0..=SESSIONS.1).contains(&input.session_count) {
        return Err(AppError::bad_input(
            "sessionCount",
            format!("must be {} to {} sessions", SESSIONS.0, SESSIONS.1),
        ));
    }
    if input.price_minor <= 0 {
        return Err(AppError::bad_input("priceMinor", "must be greater than 0"));
    }
    if input.price_minor < i64::from(input.session_count) {
        return Err(AppError::bad_input(
            "priceMinor",
            "must be at least one minor unit per session",
        ));
    }
    let ceiling = coach::rate_ceiling(currency);
    if input.price_minor > ceiling {
        return Err(AppError::bad_input(
            "priceMinor",
            format!("must be at most {ceiling} (minor units of {currency})"),
        ));
    }
    if !(VALIDITY_DAYS.0..=VALIDITY_DAYS.1).contains(&input.validity_days) {
        return Err(AppError::bad_input(
            "validityDays",
            format!("must be {} to {} days", VALIDITY_DAYS.0, VALIDITY_DAYS.1),
        ));
    }
    Ok(Valid {
        name,
        session_count: input.session_count,
        price_minor: input.price_minor,
        validity_days: input.validity_days,
    })
}

async fn audit_package(
    uow: &UnitOfWork,
    act: &str,
    actor: Option<&str>,
    target_type: &str,
    target_id: &str,
    detail: serde_json::Value,
) -> AppResult<()> {
    uow.audit(Entry {
        action: act,
        actor_id: actor,
        target_type: Some(target_type),
        target_id: Some(target_id),
        ip: None,
        detail: Some(detail),
    })
    .await
}

/// A new package of the caller's, on sale at once, priced in the coach's
/// currency.
pub async fn create(
    ctx: &DomainCtx,
    user: &CurrentUser,
    input: PackageInput,
) -> AppResult<packages::Model> {
    if user.role != Role::Coach {
        return Err(AppError::Forbidden("only coaches sell packages"));
    }
    let profile = coach::own_profile(&ctx.db, user).await?;
    let valid = validate(&input, &profile.currency)?;
    let mut uow = UnitOfWork::begin(ctx).await?;
    // The coach page is served from the search index.
    uow.listing_changed(&profile.id);
    lock_coach(uow.db(), &profile.id).await?;
    let count = packages::Entity::find()
        .filter(packages::Column::CoachId.eq(profile.id.clone()))
        .count(uow.db())
        .await?;
    if count >= MAX_PER_COACH {
        return Err(AppError::Conflict(format!(
            "a coach can have at most {MAX_PER_COACH} packages; take one off sale and reuse it"
        )));
    }
    let package = packages::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        coach_id: Set(profile.id.clone()),
        name: Set(valid.name),
        session_count: Set(valid.session_count),
        price_minor: Set(valid.price_minor),
        currency: Set(profile.currency.clone()),
        validity_days: Set(valid.validity_days),
        active: Set(true),
        created_at: Set(Utc::now()),
    }
    .insert(uow.db())
    .await?;
    audit_package(
        &uow,
        action::PACKAGE_CREATED,
        Some(&user.id),
        "package",
        &package.id,
        serde_json::json!({
            "coach": profile.id,
            "sessionCount": package.session_count,
            "priceMinor": package.price_minor,
            "currency": package.currency,
            "validityDays": package.validity_days,
        }),
    )
    .await?;
    uow.commit().await?;
    Ok(package)
}

/// Puts one of the caller's packages on sale or takes it off. Credits
/// already bought stay valid; a payment still to come for a package taken
/// off sale is refunded in full.
pub async fn set_active(
    ctx: &DomainCtx,
    user: &CurrentUser,
    package_id: &str,
    active: bool,
) -> AppResult<packages::Model> {
    let package = find(&ctx.db, package_id).await?;
    let owner = coach::find_by_user(&ctx.db, &user.id).await?;
    if owner.is_none_or(|p| p.id != package.coach_id) {
        return Err(AppError::NotFound("package"));
    }
    if package.active == active {
        return Ok(package);
    }
    let mut uow = UnitOfWork::begin(ctx).await?;
    uow.listing_changed(&package.coach_id);
    let moved = packages::Entity::update_many()
        .col_expr(packages::Column::Active, Expr::value(active))
        .filter(packages::Column::Id.eq(package.id.clone()))
        .filter(packages::Column::Active.eq(!active))
        .exec(uow.db())
        .await?;
    if moved.rows_affected == 1 {
        audit_package(
            &uow,
            if active {
                action::PACKAGE_ACTIVATED
            } else {
                action::PACKAGE_DEACTIVATED
            },
            Some(&user.id),
            "package",
            &package.id,
            serde_json::json!({ "coach": package.coach_id }),
        )
        .await?;
    }
    let updated = find(uow.db(), &package.id).await?;
    uow.commit().await?;
    Ok(updated)
}

pub async fn find<C: ConnectionTrait>(db: &C, package_id: &str) -> AppResult<packages::Model> {
    if package_id.len() > 64 {
        return Err(AppError::NotFound("package"));
    }
    packages::Entity::find_by_id(package_id.to_string())
        .one(db)
        .await?
        .ok_or(AppError::NotFound("package"))
}

/// Every package of a coach, on sale or not (for its owner and admins).
pub async fn all_of_coach(
    db: &DatabaseConnection,
    coach_id: &str,
) -> AppResult<Vec<packages::Model>> {
    Ok(packages::Entity::find()
        .filter(packages::Column::CoachId.eq(coach_id))
        .order_by_asc(packages::Column::PriceMinor)
        .order_by_asc(packages::Column::Id)
        .all(db)
        .await?)
}

/// Takes the coach row's lock for the rest of the transaction (PostgreSQL;
/// SQLite's units of work hold the write lock already): what is counted
/// or scheduled per coach afterwards cannot change under us.
pub(crate) async fn lock_coach<C: ConnectionTrait>(db: &C, coach_id: &str) -> AppResult<()> {
    coach_profiles::Entity::update_many()
        .col_expr(
            coach_profiles::Column::UpdatedAt,
            Expr::col(coach_profiles::Column::UpdatedAt),
        )
        .filter(coach_profiles::Column::Id.eq(coach_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Takes the user row's lock (as [`lock_coach`]).
async fn lock_user<C: ConnectionTrait>(db: &C, user_id: &str) -> AppResult<()> {
    entity::users::Entity::update_many()
        .col_expr(
            entity::users::Column::UpdatedAt,
            Expr::col(entity::users::Column::UpdatedAt),
        )
        .filter(entity::users::Column::Id.eq(user_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Takes the purchase row's lock and returns it as it now stands.
async fn lock<C: ConnectionTrait>(
    db: &C,
    purchase_id: &str,
) -> AppResult<Option<package_purchases::Model>> {
    package_purchases::Entity::update_many()
        .col_expr(
            package_purchases::Column::UpdatedAt,
            Expr::col(package_purchases::Column::UpdatedAt),
        )
        .filter(package_purchases::Column::Id.eq(purchase_id))
        .exec(db)
        .await?;
    Ok(
        package_purchases::Entity::find_by_id(purchase_id.to_string())
            .one(db)
            .await?,
    )
}

/// The payment of a purchase.
pub async fn payment_of<C: ConnectionTrait>(
    db: &C,
    purchase_id: &str,
) -> AppResult<Option<payments::Model>> {
    Ok(payments::Entity::find()
        .filter(payments::Column::PackagePurchaseId.eq(purchase_id))
        .one(db)
        .await?)
}

/// Buys a package: a PENDING purchase with a payment whose checkout the
/// client opens. Buying the same package again while a purchase of it
/// awaits payment returns that purchase (a retried request pays once).
pub async fn purchase(
    ctx: &DomainCtx,
    user: &CurrentUser,
    package_id: &str,
) -> AppResult<(package_purchases::Model, payments::Model)> {
    if user.role != Role::Consumer {
        return Err(AppError::Forbidden("only consumers buy packages"));
    }
    hold::require_verified(user)?;
    let package = find(&ctx.db, package_id).await?;
    let profile = coach::find_visible(&ctx.db, &package.coach_id, None)
        .await?
        .ok_or(AppError::NotFound("package"))?;
    if !package.active {
        return Err(AppError::bad_input(
            "packageId",
            "this package is no longer on sale",
        ));
    }
    // Read now: a socket's signed-in user is as of when it connected.
    let market = entity::users::Entity::find_by_id(user.id.clone())
        .one(&ctx.db)
        .await?
        .and_then(|u| u.market_id)
        .ok_or(AppError::MarketRequired)?;
    if market != profile.market_id {
        return Err(AppError::bad_input(
            "packageId",
            "this coach is in another market than yours",
        ));
    }
    if ctx.policy.payouts_required && !coach::can_be_paid(&profile) {
        return Err(AppError::bad_input(
            "packageId",
            "this coach cannot take payments until their payouts are set up",
        ));
    }
    let now = Utc::now();
    let uow = UnitOfWork::begin(ctx).await?;
    lock_user(uow.db(), &user.id).await?;
    let pending = package_purchases::Entity::find()
        .filter(package_purchases::Column::ConsumerId.eq(user.id.clone()))
        .filter(package_purchases::Column::Status.eq(PurchaseStatus::Pending.as_str()))
        .filter(package_purchases::Column::PaymentDeadline.gt(now))
        .all(uow.db())
        .await?;
    if let Some(same) = pending.iter().find(|p| p.package_id == package.id) {
        let pay = payment_of(uow.db(), &same.id).await?;
        drop(uow);
        return match pay {
            Some(p) if p.checkout_url.is_some() => Ok((same.clone(), p)),
            _ => Err(AppError::Conflict(
                "this purchase's checkout is being opened; try again in a moment".into(),
            )),
        };
    }
    if pending.len() as u64 >= MAX_PENDING_PER_CONSUMER {
        return Err(AppError::Conflict(format!(
            "at most {MAX_PENDING_PER_CONSUMER} purchases can await payment at once; pay or let one lapse"
        )));
    }
    let fee = policy::fee_of(package.price_minor, ctx.policy.platform_fee_bps);
    let bought = package_purchases::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        package_id: Set(package.id.clone()),
        coach_id: Set(profile.id.clone()),
        consumer_id: Set(user.id.clone()),
        status: Set(PurchaseStatus::Pending.as_str().into()),
        sessions_total: Set(package.session_count),
        sessions_remaining: Set(0),
        price_minor: Set(package.price_minor),
        currency: Set(package.currency.clone()),
        platform_fee_minor: Set(fee),
        validity_days: Set(package.validity_days),
        payment_deadline: Set(now + PAYMENT_WINDOW),
        paid_at: Set(None),
        expires_at: Set(None),
        cancellation_reason: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(uow.db())
    .await?;
    let destination = if ctx.policy.payouts_required {
        profile.stripe_account_id.as_deref()
    } else {
        None
    };
    let pay = payment::create_pending(
        ctx,
        &uow,
        Purpose::PackagePurchase(bought.id.clone()),
        bought.price_minor,
        &bought.currency,
        destination,
    )
    .await?;
    audit_package(
        &uow,
        action::PACKAGE_PURCHASE_CREATED,
        Some(&user.id),
        "package_purchase",
        &bought.id,
        serde_json::json!({
            "package": package.id,
            "coach": profile.id,
            "payment": pay.id,
            "amountMinor": bought.price_minor,
            "currency": bought.currency,
        }),
    )
    .await?;
    uow.commit().await?;

    // The provider is called after the commit, in a task of its own so a
    // client that goes away cannot leave the purchase half open.
    let ctx = ctx.clone();
    let terms = checkout_terms(&ctx.db, &bought).await?;
    tokio::spawn(async move {
        match payment::start_checkout(&ctx, pay.clone(), terms).await {
            Ok(pay) => Ok((bought, pay)),
            Err(e) => {
                let mut uow = UnitOfWork::begin(&ctx).await?;
                if let Some(p) = payment::lock(uow.db(), &pay.id).await?
                    && p.checkout_url.is_none()
                {
                    lapse_in(
                        &mut uow,
                        &bought.id,
                        "the checkout could not be opened",
                        true,
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

/// What a purchase's checkout shows (also when it is opened again after
/// the provider failed or the process stopped before it opened).
async fn checkout_terms<C: ConnectionTrait>(
    db: &C,
    bought: &package_purchases::Model,
) -> AppResult<CheckoutTerms> {
    let package = find(db, &bought.package_id).await?;
    let coach_name = coach::get(db, &bought.coach_id).await?.display_name;
    Ok(CheckoutTerms {
        description: format!(
            "{} ({} sessions with {coach_name})",
            package.name, bought.sessions_total
        ),
        application_fee_minor: bought.platform_fee_minor,
        expires_at: bought.payment_deadline,
    })
}

/// The checkout terms of a purchase still awaiting payment within its
/// deadline, for reopening its checkout; `None` otherwise.
pub(crate) async fn reopen_terms(
    db: &DatabaseConnection,
    purchase_id: &str,
    now: DateTime<Utc>,
) -> AppResult<Option<CheckoutTerms>> {
    let Some(bought) = package_purchases::Entity::find_by_id(purchase_id.to_string())
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    if bought.status != PurchaseStatus::Pending.as_str() || bought.payment_deadline <= now {
        return Ok(None);
    }
    Ok(Some(checkout_terms(db, &bought).await?))
}

/// The money of a purchase arrived (inside the payment's unit of work,
/// its row locked): a pending purchase of a package still on sale becomes
/// ACTIVE with its credits, valid from now. Anything else (the package was
/// taken off sale, the purchase lapsed) is refunded in full.
pub(crate) async fn settle_paid(
    uow: &mut UnitOfWork,
    purchase_id: &str,
    pay: &payments::Model,
) -> AppResult<()> {
    let bought = lock(uow.db(), purchase_id)
        .await?
        .ok_or(AppError::NotFound("package purchase"))?;
    let package = find(uow.db(), &bought.package_id).await?;
    let now = Utc::now();
    let amount = refund::refundable(pay);
    if amount == 0 {
        // Refunded in full before it was reported paid: nothing pays for it.
        lapse_in(uow, &bought.id, "the payment was refunded", false).await?;
        return Ok(());
    }
    let pending = bought.status == PurchaseStatus::Pending.as_str();
    if pending && package.active {
        let expires = now + Duration::days(i64::from(bought.validity_days));
        package_purchases::Entity::update_many()
            .col_expr(
                package_purchases::Column::Status,
                Expr::value(PurchaseStatus::Active.as_str()),
            )
            .col_expr(
                package_purchases::Column::SessionsRemaining,
                Expr::col(package_purchases::Column::SessionsTotal),
            )
            .col_expr(package_purchases::Column::PaidAt, Expr::value(now))
            .col_expr(package_purchases::Column::ExpiresAt, Expr::value(expires))
            .col_expr(package_purchases::Column::UpdatedAt, Expr::value(now))
            .filter(package_purchases::Column::Id.eq(bought.id.clone()))
            .filter(package_purchases::Column::Status.eq(PurchaseStatus::Pending.as_str()))
            .exec(uow.db())
            .await?;
        audit_package(
            uow,
            action::PACKAGE_PURCHASED,
            None,
            "package_purchase",
            &bought.id,
            serde_json::json!({
                "payment": pay.id,
                "credits": bought.sessions_total,
                "expiresAt": expires,
            }),
        )
        .await?;
        let coach_name = coach::get(uow.db(), &bought.coach_id).await?.display_name;
        notify::purchase_receipt(
            uow,
            &bought.consumer_id,
            &pay.id,
            pay.amount_minor,
            &pay.currency,
            &format!(
                "{}: {} sessions with {coach_name}, to book until {}",
                package.name,
                bought.sessions_total,
                expires.format("%Y-%m-%d")
            ),
        )
        .await?;
        return Ok(());
    }
    let reason = if pending {
        "the package was taken off sale before the payment arrived"
    } else {
        "the payment arrived after the purchase was cancelled"
    };
    if pending {
        lapse_in(uow, &bought.id, reason, false).await?;
    }
    payment::decide_refund(uow, pay, amount, refund::UNFULFILLED).await?;
    audit_package(
        uow,
        action::PACKAGE_PURCHASE_REFUNDED,
        None,
        "package_purchase",
        &bought.id,
        serde_json::json!({ "payment": pay.id, "amountMinor": amount, "reason": reason }),
    )
    .await
}

/// Inside a unit of work: a purchase still awaiting payment is CANCELLED;
/// with `fail_payment` (or a checkout never opened) its payment fails too.
/// False when it was no longer pending.
pub(crate) async fn lapse_in(
    uow: &mut UnitOfWork,
    purchase_id: &str,
    reason: &str,
    fail_payment: bool,
) -> AppResult<bool> {
    let pay = payment_of(uow.db(), purchase_id).await?;
    if let Some(p) = &pay {
        payment::lock(uow.db(), &p.id).await?;
    }
    let moved = package_purchases::Entity::update_many()
        .col_expr(
            package_purchases::Column::Status,
            Expr::value(PurchaseStatus::Cancelled.as_str()),
        )
        .col_expr(
            package_purchases::Column::CancellationReason,
            Expr::value(reason.to_string()),
        )
        .col_expr(
            package_purchases::Column::UpdatedAt,
            Expr::value(Utc::now()),
        )
        .filter(package_purchases::Column::Id.eq(purchase_id))
        .filter(package_purchases::Column::Status.eq(PurchaseStatus::Pending.as_str()))
        .exec(uow.db())
        .await?;
    if moved.rows_affected != 1 {
        return Ok(false);
    }
    if let Some(p) = pay.filter(|p| fail_payment || p.provider_ref.is_none()) {
        payment::fail_pending(uow, &p, reason).await?;
    }
    audit_package(
        uow,
        action::PACKAGE_PURCHASE_CANCELLED,
        None,
        "package_purchase",
        purchase_id,
        serde_json::json!({ "reason": reason }),
    )
    .await?;
    Ok(true)
}

/// Purchases still unpaid at their deadline are CANCELLED (each in its
/// own unit of work). With a provider that reports its checkouts the
/// payment stays PENDING until it does; a late payment is then refunded.
pub async fn lapse_overdue(ctx: &DomainCtx, now: DateTime<Utc>) -> AppResult<usize> {
    let overdue = package_purchases::Entity::find()
        .filter(package_purchases::Column::Status.eq(PurchaseStatus::Pending.as_str()))
        .filter(package_purchases::Column::PaymentDeadline.lte(now))
        .limit(200)
        .all(&ctx.db)
        .await?;
    let reported = ctx.payments.kind() != payment::ProviderKind::Dev;
    let mut changed = 0;
    for p in overdue {
        let mut uow = UnitOfWork::begin(ctx).await?;
        if lapse_in(
            &mut uow,
            &p.id,
            "payment was not completed in time",
            !reported,
        )
        .await?
        {
            changed += 1;
        }
        uow.commit().await?;
    }
    Ok(changed)
}

/// ACTIVE purchases past their expiry are recorded EXPIRED (queries
/// compare times already; this keeps the stored status and the audit log
/// in line).
pub async fn expire_lapsed(ctx: &DomainCtx, now: DateTime<Utc>) -> AppResult<usize> {
    let lapsed = package_purchases::Entity::find()
        .filter(package_purchases::Column::Status.eq(PurchaseStatus::Active.as_str()))
        .filter(package_purchases::Column::ExpiresAt.lte(now))
        // One order for every sweeper, so two never wait on each other.
        .order_by_asc(package_purchases::Column::Id)
        .limit(200)
        .all(&ctx.db)
        .await?;
    if lapsed.is_empty() {
        return Ok(0);
    }
    let uow = UnitOfWork::begin(ctx).await?;
    let mut changed = 0;
    for p in lapsed {
        let moved = package_purchases::Entity::update_many()
            .col_expr(
                package_purchases::Column::Status,
                Expr::value(PurchaseStatus::Expired.as_str()),
            )
            .col_expr(package_purchases::Column::UpdatedAt, Expr::value(now))
            .filter(package_purchases::Column::Id.eq(p.id.clone()))
            .filter(package_purchases::Column::Status.eq(PurchaseStatus::Active.as_str()))
            .exec(uow.db())
            .await?;
        if moved.rows_affected == 1 {
            changed += 1;
            audit_package(
                &uow,
                action::PACKAGE_EXPIRED,
                None,
                "package_purchase",
                &p.id,
                serde_json::json!({ "creditsLeft": p.sessions_remaining }),
            )
            .await?;
        }
    }
    uow.commit().await?;
    Ok(changed)
}

/// Checks that `user` can spend a credit of this purchase on a session
/// with `coach_id`, with an error that says why not.
pub(crate) async fn spendable<C: ConnectionTrait>(
    db: &C,
    user: &CurrentUser,
    purchase_id: &str,
    coach_id: &str,
    now: DateTime<Utc>,
    session_start: DateTime<Utc>,
) -> AppResult<package_purchases::Model> {
    let field = "packagePurchaseId";
    if purchase_id.len() > 64 {
        return Err(AppError::NotFound("package purchase"));
    }
    let bought = package_purchases::Entity::find_by_id(purchase_id.to_string())
        .one(db)
        .await?
        .filter(|p| p.consumer_id == user.id)
        .ok_or(AppError::NotFound("package purchase"))?;
    if bought.coach_id != coach_id {
        return Err(AppError::bad_input(
            field,
            "this package is for sessions with another coach",
        ));
    }
    match status_at(&bought, now) {
        PurchaseStatus::Active => {}
        PurchaseStatus::Pending => {
            return Err(AppError::bad_input(field, "this package is not paid yet"));
        }
        PurchaseStatus::Cancelled => {
            return Err(AppError::bad_input(field, "this purchase was cancelled"));
        }
        PurchaseStatus::Expired => {
            return Err(AppError::Conflict(
                "this package has expired; its sessions can no longer be booked".into(),
            ));
        }
    }
    if bought.sessions_remaining <= 0 {
        return Err(AppError::Conflict(
            "every session of this package is booked already".into(),
        ));
    }
    if bought.expires_at.is_some_and(|e| session_start >= e) {
        return Err(AppError::bad_input(
            field,
            "this package expires before the session starts",
        ));
    }
    Ok(bought)
}

/// Spends one credit inside the booking's unit of work. Conditional on
/// the purchase still being spendable, so of two bookings racing for the
/// last credit exactly one gets it.
pub(crate) async fn spend_credit(
    uow: &UnitOfWork,
    user: &CurrentUser,
    bought: &package_purchases::Model,
    booking_id: &str,
    now: DateTime<Utc>,
    session_start: DateTime<Utc>,
) -> AppResult<()> {
    let spent = package_purchases::Entity::update_many()
        .col_expr(
            package_purchases::Column::SessionsRemaining,
            Expr::col(package_purchases::Column::SessionsRemaining).sub(1),
        )
        .col_expr(package_purchases::Column::UpdatedAt, Expr::value(now))
        .filter(package_purchases::Column::Id.eq(bought.id.clone()))
        .filter(package_purchases::Column::ConsumerId.eq(user.id.clone()))
        .filter(package_purchases::Column::Status.eq(PurchaseStatus::Active.as_str()))
        .filter(package_purchases::Column::ExpiresAt.gt(now))
        .filter(package_purchases::Column::ExpiresAt.gt(session_start))
        .filter(package_purchases::Column::SessionsRemaining.gt(0))
        .exec(uow.db())
        .await?;
    if spent.rows_affected != 1 {
        // Spent or changed meanwhile: say which, from the row as it is.
        spendable(
            uow.db(),
            user,
            &bought.id,
            &bought.coach_id,
            now,
            session_start,
        )
        .await?;
        return Err(AppError::Conflict(
            "every session of this package is booked already".into(),
        ));
    }
    let left = lock(uow.db(), &bought.id)
        .await?
        .map_or(0, |p| p.sessions_remaining);
    audit_package(
        uow,
        action::PACKAGE_CREDIT_SPENT,
        Some(&user.id),
        "package_purchase",
        &bought.id,
        serde_json::json!({ "booking": booking_id, "creditsLeft": left }),
    )
    .await
}

/// What a full refund of a session paid with a credit gave back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GivenBack {
    /// The credit, to book another time.
    Credit,
    /// The purchase had expired meanwhile, so a credit would be worth
    /// nothing: the session's share of the package payment is refunded.
    Money(i64),
    /// Given back already.
    Nothing,
}

/// Gives a cancelled booking's credit back to its purchase (once),
/// audited; if the purchase can no longer be spent (it expired since the
/// booking), the session's share is refunded from the package's payment
/// instead.
pub(crate) async fn give_back(
    uow: &mut UnitOfWork,
    booking: &bookings::Model,
    actor: Option<&str>,
) -> AppResult<GivenBack> {
    let Some(purchase_id) = &booking.package_purchase_id else {
        return Ok(GivenBack::Nothing);
    };
    let pay = match payment_of(uow.db(), purchase_id).await? {
        Some(p) => payment::lock(uow.db(), &p.id).await?,
        None => None,
    };
    let bought = lock(uow.db(), purchase_id)
        .await?
        .ok_or(AppError::NotFound("package purchase"))?;
    if status_at(&bought, Utc::now()) != PurchaseStatus::Active {
        let Some(pay) = pay else {
            return Ok(GivenBack::Nothing);
        };
        let amount = Ord::min(booking.price_minor, refund::refundable(&pay));
        if amount <= 0 {
            return Ok(GivenBack::Nothing);
        }
        payment::decide_refund(uow, &pay, amount, refund::UNFULFILLED).await?;
        audit_package(
            uow,
            action::PACKAGE_PURCHASE_REFUNDED,
            actor,
            "package_purchase",
            purchase_id,
            serde_json::json!({
                "booking": booking.id,
                "amountMinor": amount,
                "reason": "the purchase expired before the session's credit could be given back",
            }),
        )
        .await?;
        return Ok(GivenBack::Money(amount));
    }
    if return_credit(uow, booking, actor).await? {
        Ok(GivenBack::Credit)
    } else {
        Ok(GivenBack::Nothing)
    }
}

/// Gives a cancelled booking's credit back to its purchase (once),
/// audited. False when it had been given back already.
async fn return_credit(
    uow: &UnitOfWork,
    booking: &bookings::Model,
    actor: Option<&str>,
) -> AppResult<bool> {
    let Some(purchase_id) = &booking.package_purchase_id else {
        return Ok(false);
    };
    let marked = bookings::Entity::update_many()
        .col_expr(bookings::Column::CreditReturned, Expr::value(true))
        .filter(bookings::Column::Id.eq(booking.id.clone()))
        .filter(bookings::Column::CreditReturned.eq(false))
        .exec(uow.db())
        .await?;
    if marked.rows_affected != 1 {
        return Ok(false);
    }
    package_purchases::Entity::update_many()
        .col_expr(
            package_purchases::Column::SessionsRemaining,
            Expr::col(package_purchases::Column::SessionsRemaining).add(1),
        )
        .col_expr(
            package_purchases::Column::UpdatedAt,
            Expr::value(Utc::now()),
        )
        .filter(package_purchases::Column::Id.eq(purchase_id.clone()))
        .filter(
            Expr::col(package_purchases::Column::SessionsRemaining)
                .lt(Expr::col(package_purchases::Column::SessionsTotal)),
        )
        .exec(uow.db())
        .await?;
    audit_package(
        uow,
        action::PACKAGE_CREDIT_RETURNED,
        actor,
        "package_purchase",
        purchase_id,
        serde_json::json!({ "booking": booking.id }),
    )
    .await?;
    Ok(true)
}

/// The consumer's purchases, newest first (the latest 100).
pub async fn mine(
    db: &DatabaseConnection,
    user: &CurrentUser,
) -> AppResult<Vec<package_purchases::Model>> {
    Ok(package_purchases::Entity::find()
        .filter(package_purchases::Column::ConsumerId.eq(user.id.clone()))
        .order_by_desc(package_purchases::Column::CreatedAt)
        .order_by_desc(package_purchases::Column::Id)
        .limit(100)
        .all(db)
        .await?)
}

/// A coach left: their packages can no longer be used. Every purchase of
/// theirs still awaiting payment is cancelled (a payment that arrives
/// anyway is refunded in full), and each one with credits left before its
/// expiry is refunded those credits' share and cancelled, each in its own
/// unit of work, audited.
pub async fn refund_unused_of_coach(
    ctx: &DomainCtx,
    coach_id: &str,
    actor: &str,
) -> AppResult<usize> {
    let now = Utc::now();
    let reason = "the coach left Maestro Hub";
    let open = package_purchases::Entity::find()
        .filter(package_purchases::Column::CoachId.eq(coach_id))
        .filter(package_purchases::Column::Status.is_in([
            PurchaseStatus::Pending.as_str(),
            PurchaseStatus::Active.as_str(),
        ]))
        .order_by_asc(package_purchases::Column::Id)
        .all(&ctx.db)
        .await?;
    let reported = ctx.payments.kind() != payment::ProviderKind::Dev;
    let mut changed = 0;
    for p in open {
        let mut uow = UnitOfWork::begin(ctx).await?;
        if p.status == PurchaseStatus::Pending.as_str() {
            if lapse_in(&mut uow, &p.id, reason, !reported).await? {
                changed += 1;
            }
            uow.commit().await?;
            continue;
        }
        let pay = match payment_of(uow.db(), &p.id).await? {
            Some(x) => payment::lock(uow.db(), &x.id).await?,
            None => None,
        };
        let Some(bought) = lock(uow.db(), &p.id).await? else {
            continue;
        };
        if status_at(&bought, now) != PurchaseStatus::Active || bought.sessions_remaining <= 0 {
            continue;
        }
        let share = policy::package_share(
            bought.price_minor,
            bought.platform_fee_minor,
            bought.sessions_total,
        );
        let amount = pay.as_ref().map_or(0, |pay| {
            Ord::min(
                share.price_minor * i64::from(bought.sessions_remaining),
                refund::refundable(pay),
            )
        });
        if let Some(pay) = &pay {
            payment::decide_refund(&mut uow, pay, amount, refund::UNFULFILLED).await?;
        }
        package_purchases::Entity::update_many()
            .col_expr(package_purchases::Column::SessionsRemaining, Expr::value(0))
            .col_expr(
                package_purchases::Column::Status,
                Expr::value(PurchaseStatus::Cancelled.as_str()),
            )
            .col_expr(
                package_purchases::Column::CancellationReason,
                Expr::value(reason),
            )
            .col_expr(package_purchases::Column::UpdatedAt, Expr::value(now))
            .filter(package_purchases::Column::Id.eq(bought.id.clone()))
            .exec(uow.db())
            .await?;
        audit_package(
            &uow,
            action::PACKAGE_PURCHASE_REFUNDED,
            Some(actor),
            "package_purchase",
            &bought.id,
            serde_json::json!({
                "amountMinor": amount,
                "creditsRefunded": bought.sessions_remaining,
                "reason": reason,
            }),
        )
        .await?;
        uow.commit().await?;
        changed += 1;
    }
    Ok(changed)
}
