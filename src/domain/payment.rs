//! The payment seam: what bookings (and later packages and sponsorships)
//! need from a payment provider, the development provider, and the effects
//! of a completed payment and of refunds.
//!
//! Refunds are decided inside the transaction that causes them (a PENDING
//! refund row) and executed afterwards through the provider with the refund
//! id as idempotency key, retried by a job until the provider confirms: a
//! crash between the two never loses or doubles money.

use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

use crate::error::{AppError, AppResult};
use entity::{payments, refunds};

pub struct CheckoutRequest<'a> {
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
    fn name(&self) -> &'static str;
    async fn create_checkout(&self, req: CheckoutRequest<'_>) -> Result<Checkout, ProviderError>;
    async fn refund(&self, req: RefundRequest<'_>) -> Result<String, ProviderError>;
}

/// Development only: checkout is a local page whose form completes the
/// payment; refunds succeed at once. Never built in production.
pub struct DevPaymentProvider {
    public_base_url: String,
}

impl DevPaymentProvider {
    pub fn new(public_base_url: &str) -> Self {
        DevPaymentProvider {
            public_base_url: public_base_url.trim_end_matches('/').to_string(),
        }
    }
}

#[async_trait::async_trait]
impl PaymentProvider for DevPaymentProvider {
    fn name(&self) -> &'static str {
        "dev"
    }

    async fn create_checkout(&self, req: CheckoutRequest<'_>) -> Result<Checkout, ProviderError> {
        Ok(Checkout {
            provider_ref: format!("dev_cs_{}", req.payment_id),
            url: format!("{}/dev/checkout/{}", self.public_base_url, req.payment_id),
        })
    }

    async fn refund(&self, req: RefundRequest<'_>) -> Result<String, ProviderError> {
        Ok(format!("dev_re_{}", req.refund_id))
    }
}

/// Records a refund to execute (inside the caller's transaction) and moves
/// the payment's refunded total and status. Refuses more than was paid.
pub async fn decide_refund<C: ConnectionTrait>(
    db: &C,
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
                "REFUNDED",
            )
            .finally("PARTIALLY_REFUNDED")
            .into(),
        )
        .col_expr(payments::Column::UpdatedAt, Expr::value(now))
        .filter(payments::Column::Id.eq(payment.id.clone()))
        .filter(payments::Column::Status.is_in(["SUCCEEDED", "PARTIALLY_REFUNDED"]))
        .filter(
            Expr::col(payments::Column::RefundedMinor)
                .add(amount_minor)
                .lte(Expr::col(payments::Column::AmountMinor)),
        )
        .exec(db)
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
        status: Set("PENDING".into()),
        reason: Set(reason.into()),
        provider_ref: Set(None),
        attempts: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await?;
    Ok(Some(refund))
}

/// Sends pending refunds to the provider (after their transaction
/// committed). Safe to run concurrently and repeatedly: the refund id is the
/// idempotency key and the row is marked sent conditionally.
pub async fn execute_pending_refunds(
    db: &DatabaseConnection,
    provider: &dyn PaymentProvider,
    only: Option<&str>,
) -> AppResult<usize> {
    let mut q = refunds::Entity::find().filter(refunds::Column::Status.eq("PENDING"));
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
            .filter(refunds::Column::Status.eq("PENDING"));
        match result {
            Ok(provider_ref) => {
                update = update
                    .col_expr(refunds::Column::Status, Expr::value("SUCCEEDED"))
                    .col_expr(refunds::Column::ProviderRef, Expr::value(provider_ref));
                done += 1;
            }
            Err(ProviderError(e)) => {
                tracing::warn!(refund = %refund.id, error = %e, "refund not accepted yet; will retry")
            }
        }
        update.exec(db).await?;
    }
    Ok(done)
}
