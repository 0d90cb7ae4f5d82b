//! Payments, in one place: what a purchase (a booking, and later a package
//! or a sponsorship) needs from a payment provider, the payment rows, the
//! effects of a completed payment, and refunds.
//!
//! A payment row is written in the transaction that creates what it pays
//! for; the provider's checkout is created after that commit (the provider
//! is the outside world). Refunds are decided inside the transaction that
//! causes them (a PENDING refund row) and executed afterwards through the
//! provider with the refund id as idempotency key, retried by a job until
//! the provider confirms: a crash between the two never loses or doubles
//! money.

use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

use crate::domain::audit::{Entry, action};
use crate::domain::booking::{self, PaidOutcome};
use crate::domain::context::DomainCtx;
use crate::domain::uow::UnitOfWork;
use crate::error::{AppError, AppResult};
use entity::{payments, refunds};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    Pending,
    Succeeded,
    Failed,
    Refunded,
    PartiallyRefunded,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 5] = [
        PaymentStatus::Pending,
        PaymentStatus::Succeeded,
        PaymentStatus::Failed,
        PaymentStatus::Refunded,
        PaymentStatus::PartiallyRefunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "PENDING",
            PaymentStatus::Succeeded => "SUCCEEDED",
            PaymentStatus::Failed => "FAILED",
            PaymentStatus::Refunded => "REFUNDED",
            PaymentStatus::PartiallyRefunded => "PARTIALLY_REFUNDED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    pub fn of(p: &payments::Model) -> Self {
        Self::parse(&p.status).unwrap_or(PaymentStatus::Pending)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundStatus {
    /// Decided; not yet confirmed by the provider (the job retries it).
    Pending,
    Succeeded,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Pending => "PENDING",
            RefundStatus::Succeeded => "SUCCEEDED",
        }
    }
}

/// What a payment is for; exactly one link of the row is set, the one
/// its purpose names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    Booking(String),
    PackagePurchase(String),
    Sponsorship(String),
}

impl Purpose {
    pub fn as_str(&self) -> &'static str {
        match self {
            Purpose::Booking(_) => "BOOKING",
            Purpose::PackagePurchase(_) => "PACKAGE_PURCHASE",
            Purpose::Sponsorship(_) => "SPONSORSHIP",
        }
    }

    /// The purpose of a stored payment.
    pub fn of(p: &payments::Model) -> Option<Self> {
        match p.purpose.as_str() {
            "BOOKING" => p.booking_id.clone().map(Purpose::Booking),
            "PACKAGE_PURCHASE" => p.package_purchase_id.clone().map(Purpose::PackagePurchase),
            "SPONSORSHIP" => p.sponsorship_id.clone().map(Purpose::Sponsorship),
            _ => None,
        }
    }
}

/// Which provider handles a payment; stored with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Development only: a local checkout page, refunds succeed at once.
    Dev,
    Stripe,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Dev => "dev",
            ProviderKind::Stripe => "stripe",
        }
    }
}

pub struct CheckoutRequest<'a> {
    /// Our payment id: the idempotency key of the checkout.
    pub payment_id: &'a str,
    pub amount_minor: i64,
    pub currency: &'a str,
    pub description: String,
    /// The coach's connected account, for destination charges.
    pub destination_account: Option<&'a str>,
    pub application_fee_minor: i64,
}

pub struct Checkout {
    pub provider_ref: String,
    pub url: String,
}

pub struct RefundRequest<'a> {
    /// Our refund id: the idempotency key.
    pub refund_id: &'a str,
    pub payment_provider_ref: Option<&'a str>,
    pub amount_minor: i64,
    pub currency: &'a str,
}

#[derive(Debug)]
pub struct ProviderError(pub String);

#[async_trait::async_trait]
pub trait PaymentProvider: Send + Sync {
    fn kind(&self) -> ProviderKind;
    async fn create_checkout(&self, req: CheckoutRequest<'_>) -> Result<Checkout, ProviderError>;
    async fn refund(&self, req: RefundRequest<'_>) -> Result<String, ProviderError>;
}

/// A new PENDING payment for `purpose`, written in the caller's transaction.
pub async fn create_pending(
    ctx: &DomainCtx,
    uow: &UnitOfWork,
    purpose: Purpose,
    amount_minor: i64,
    currency: &str,
) -> AppResult<payments::Model> {
    let now = Utc::now();
    let (booking_id, package_purchase_id, sponsorship_id) = match &purpose {
        Purpose::Booking(id) => (Some(id.clone()), None, None),
        Purpose::PackagePurchase(id) => (None, Some(id.clone()), None),
        Purpose::Sponsorship(id) => (None, None, Some(id.clone())),
    };
    Ok(payments::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        purpose: Set(purpose.as_str().into()),
        booking_id: Set(booking_id),
        package_purchase_id: Set(package_purchase_id),
        sponsorship_id: Set(sponsorship_id),
        status: Set(PaymentStatus::Pending.as_str().into()),
        amount_minor: Set(amount_minor),
        currency: Set(currency.into()),
        refunded_minor: Set(0),
        provider: Set(ctx.payments.kind().as_str().into()),
        provider_ref: Set(None),
        checkout_url: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(uow.db())
    .await?)
}

/// What the provider's checkout shows and where the money goes.
pub struct CheckoutTerms<'a> {
    pub description: String,
    pub destination_account: Option<&'a str>,
    pub application_fee_minor: i64,
}

/// Opens the provider's checkout for a committed PENDING payment (outside
/// any transaction) and stores its reference and URL.
pub async fn start_checkout(
    ctx: &DomainCtx,
    payment: payments::Model,
    terms: CheckoutTerms<'_>,
) -> AppResult<payments::Model> {
    let checkout = ctx
        .payments
        .create_checkout(CheckoutRequest {
            payment_id: &payment.id,
            amount_minor: payment.amount_minor,
            currency: &payment.currency,
            description: terms.description,
            destination_account: terms.destination_account,
            application_fee_minor: terms.application_fee_minor,
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
    let uow = UnitOfWork::begin(ctx).await?;
    let stored = m.update(uow.db()).await?;
    uow.commit().await?;
    Ok(stored)
}

pub async fn find(db: &DatabaseConnection, payment_id: &str) -> AppResult<payments::Model> {
    if payment_id.len() > 64 {
        return Err(AppError::NotFound("payment"));
    }
    payments::Entity::find_by_id(payment_id.to_string())
        .one(db)
        .await?
        .ok_or(AppError::NotFound("payment"))
}

/// The payment of a booking, if it has one.
pub async fn of_booking<C: ConnectionTrait>(
    db: &C,
    booking_id: &str,
) -> AppResult<Option<payments::Model>> {
    Ok(payments::Entity::find()
        .filter(payments::Column::BookingId.eq(booking_id))
        .one(db)
        .await?)
}

/// A payment completed (the dev checkout page, the provider's webhook).
/// Settles what it paid for in one transaction; a second completion of the
/// same payment changes nothing and answers false. A booking payment that
/// arrives after the booking lapsed and its time was released is refunded
/// in full, never kept.
pub async fn complete(ctx: &DomainCtx, payment_id: &str) -> AppResult<bool> {
    let payment = find(&ctx.db, payment_id).await?;
    let mut uow = UnitOfWork::begin(ctx).await?;
    let first = payments::Entity::update_many()
        .col_expr(
            payments::Column::Status,
            Expr::value(PaymentStatus::Succeeded.as_str()),
        )
        .col_expr(payments::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(payments::Column::Id.eq(payment.id.clone()))
        .filter(payments::Column::Status.eq(PaymentStatus::Pending.as_str()))
        .exec(uow.db())
        .await?;
    if first.rows_affected != 1 {
        return Ok(false);
    }
    let payment = payments::Entity::find_by_id(payment.id.clone())
        .one(uow.db())
        .await?
        .ok_or(AppError::NotFound("payment"))?;
    let purpose =
        Purpose::of(&payment).ok_or_else(|| AppError::internal("payment without a purpose"))?;
    uow.audit(Entry {
        action: action::PAYMENT_SUCCEEDED,
        actor_id: None,
        target_type: Some("payment"),
        target_id: Some(&payment.id),
        ip: None,
        detail: Some(serde_json::json!({
            "purpose": purpose.as_str(),
            "booking": payment.booking_id,
            "amountMinor": payment.amount_minor,
        })),
    })
    .await?;
    match &purpose {
        Purpose::Booking(booking_id) => {
            let outcome = booking::confirm_paid(ctx, &mut uow, booking_id).await?;
            if outcome == PaidOutcome::Lapsed {
                decide_refund(&mut uow, &payment, payment.amount_minor, "late payment").await?;
                booking::add_refunded(&uow, booking_id, payment.amount_minor, None).await?;
            }
            booking::publish_current(&mut uow, booking_id).await?;
        }
        Purpose::PackagePurchase(_) | Purpose::Sponsorship(_) => {
            return Err(AppError::internal(format!(
                "no settlement for {} payments yet",
                purpose.as_str()
            )));
        }
    }
    uow.commit().await?;
    Ok(true)
}

/// An unpaid booking lapsed: its pending payment will never complete.
pub async fn fail_pending_of_booking(uow: &UnitOfWork, booking_id: &str) -> AppResult<()> {
    payments::Entity::update_many()
        .col_expr(
            payments::Column::Status,
            Expr::value(PaymentStatus::Failed.as_str()),
        )
        .col_expr(payments::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(payments::Column::BookingId.eq(booking_id))
        .filter(payments::Column::Status.eq(PaymentStatus::Pending.as_str()))
        .exec(uow.db())
        .await?;
    Ok(())
}

/// Records a refund to execute (inside the unit of work, which sends it
/// once committed) and moves the payment's refunded total and status.
/// Refuses more than was paid.
pub async fn decide_refund(
    uow: &mut UnitOfWork,
    payment: &payments::Model,
    amount_minor: i64,
    reason: &str,
) -> AppResult<Option<refunds::Model>> {
    if amount_minor <= 0 {
        return Ok(None);
    }
    let now = Utc::now();
    // Conditional on the refunded total, so two concurrent refunds cannot
    // together exceed the amount paid.
    let res = payments::Entity::update_many()
        .col_expr(
            payments::Column::RefundedMinor,
            Expr::col(payments::Column::RefundedMinor).add(amount_minor),
        )
        .col_expr(
            payments::Column::Status,
            Expr::case(
                Expr::col(payments::Column::RefundedMinor)
                    .add(amount_minor)
                    .gte(Expr::col(payments::Column::AmountMinor)),
                PaymentStatus::Refunded.as_str(),
            )
            .finally(PaymentStatus::PartiallyRefunded.as_str())
            .into(),
        )
        .col_expr(payments::Column::UpdatedAt, Expr::value(now))
        .filter(payments::Column::Id.eq(payment.id.clone()))
        .filter(payments::Column::Status.is_in([
            PaymentStatus::Succeeded.as_str(),
            PaymentStatus::PartiallyRefunded.as_str(),
        ]))
        .filter(
            Expr::col(payments::Column::RefundedMinor)
                .add(amount_minor)
                .lte(Expr::col(payments::Column::AmountMinor)),
        )
        .exec(uow.db())
        .await?;
    if res.rows_affected != 1 {
        return Err(AppError::Conflict(
            "the refund is more than what remains of the payment".into(),
        ));
    }
    let refund = refunds::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        payment_id: Set(payment.id.clone()),
        amount_minor: Set(amount_minor),
        status: Set(RefundStatus::Pending.as_str().into()),
        reason: Set(reason.into()),
        provider_ref: Set(None),
        attempts: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(uow.db())
    .await?;
    uow.refund_decided(&refund.id);
    Ok(Some(refund))
}

/// Sends pending refunds to the provider (after their transaction
/// committed). Safe to run concurrently and repeatedly: the refund id is the
/// idempotency key and the row is marked sent conditionally.
pub async fn execute_pending_refunds(ctx: &DomainCtx, only: Option<&str>) -> AppResult<usize> {
    let (db, provider) = (&ctx.db, ctx.payments.as_ref());
    let mut q =
        refunds::Entity::find().filter(refunds::Column::Status.eq(RefundStatus::Pending.as_str()));
    if let Some(id) = only {
        q = q.filter(refunds::Column::Id.eq(id));
    }
    let pending = q
        .order_by_asc(refunds::Column::CreatedAt)
        .limit(100)
        .all(db)
        .await?;
    let mut done = 0;
    for refund in pending {
        let Some(payment) = payments::Entity::find_by_id(refund.payment_id.clone())
            .one(db)
            .await?
        else {
            continue;
        };
        let result = provider
            .refund(RefundRequest {
                refund_id: &refund.id,
                payment_provider_ref: payment.provider_ref.as_deref(),
                amount_minor: refund.amount_minor,
                currency: &payment.currency,
            })
            .await;
        let now = Utc::now();
        let mut update = refunds::Entity::update_many()
            .col_expr(
                refunds::Column::Attempts,
                Expr::col(refunds::Column::Attempts).add(1),
            )
            .col_expr(refunds::Column::UpdatedAt, Expr::value(now))
            .filter(refunds::Column::Id.eq(refund.id.clone()))
            .filter(refunds::Column::Status.eq(RefundStatus::Pending.as_str()));
        match result {
            Ok(provider_ref) => {
                update = update
                    .col_expr(
                        refunds::Column::Status,
                        Expr::value(RefundStatus::Succeeded.as_str()),
                    )
                    .col_expr(refunds::Column::ProviderRef, Expr::value(provider_ref));
                done += 1;
            }
            Err(ProviderError(e)) => {
                tracing::warn!(refund = %refund.id, error = %e, "refund not accepted yet; will retry")
            }
        }
        // The provider's answer, recorded in a unit of work of its own.
        let uow = UnitOfWork::begin(ctx).await?;
        update.exec(uow.db()).await?;
        uow.commit().await?;
    }
    Ok(done)
}
