//! Payments, in one place: what a purchase (a booking, and later a package
//! or a sponsorship) needs from a payment provider, the payment rows, the
//! effects of a completed or abandoned payment, refunds ([`refund`]) and
//! the provider's reports of what happened ([`events`]).
//!
//! A payment row is written in the transaction that creates what it pays
//! for; the provider's checkout is created after that commit (the provider
//! is the outside world). Fulfilment follows the provider's report (a
//! webhook, or reconciliation when one was lost), never the customer's
//! redirect. Refunds are decided inside the transaction that causes them
//! and executed afterwards through the provider with the refund id as
//! idempotency key, retried with backoff until the provider accepts: a
//! crash between the two never loses or doubles money.

pub mod events;
pub mod refund;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    Set,
};

use crate::domain::audit::{Entry, action};
use crate::domain::booking::{self, PaidOutcome};
use crate::domain::context::DomainCtx;
use crate::domain::notify;
use crate::domain::uow::UnitOfWork;
use crate::error::{AppError, AppResult};
use entity::payments;

pub use refund::{RefundStatus, decide_refund, execute_pending_refunds};

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

    /// Money arrived (whatever was refunded since).
    pub fn is_paid(self) -> bool {
        matches!(
            self,
            PaymentStatus::Succeeded | PaymentStatus::PartiallyRefunded | PaymentStatus::Refunded
        )
    }

    /// The status of a paid payment with `refunded` of `amount` returned.
    pub fn paid_with_refunds(refunded: i64, amount: i64) -> Self {
        if refunded >= amount && amount > 0 {
            PaymentStatus::Refunded
        } else if refunded > 0 {
            PaymentStatus::PartiallyRefunded
        } else {
            PaymentStatus::Succeeded
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

    /// The id of what is paid for.
    pub fn id(&self) -> &str {
        match self {
            Purpose::Booking(id) | Purpose::PackagePurchase(id) | Purpose::Sponsorship(id) => id,
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
    /// Our payment id: the idempotency key of the checkout, and its
    /// `client_reference_id`.
    pub payment_id: &'a str,
    pub purpose: &'a Purpose,
    pub amount_minor: i64,
    pub currency: &'a str,
    pub description: String,
    /// The coach's connected account, for destination charges.
    pub destination_account: Option<&'a str>,
    pub application_fee_minor: i64,
    /// The checkout closes then (the purchase's payment deadline).
    pub expires_at: DateTime<Utc>,
    pub success_url: String,
    pub cancel_url: String,
}

pub struct Checkout {
    pub provider_ref: String,
    pub url: String,
}

pub struct RefundRequest<'a> {
    /// Our refund id, in the refund's metadata.
    pub refund_id: &'a str,
    /// Derived from the refund id (`refund-<id>`, then `refund-<id>-<n>`).
    pub idempotency_key: &'a str,
    pub payment_id: &'a str,
    /// The provider's payment to refund (`pi_...`).
    pub payment_intent: Option<&'a str>,
    pub amount_minor: i64,
    pub currency: &'a str,
    /// A destination charge: take the coach's transfer and the platform's
    /// fee back in proportion.
    pub reverse_transfer: bool,
}

/// The provider's answer to a refund request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundOutcome {
    /// Accepted; its confirmation comes later (a webhook).
    Submitted(String),
    /// Done at once.
    Succeeded(String),
}

/// Where a checkout stands at the provider (for reconciliation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckoutOutcome {
    Open,
    /// Completed but the money has not arrived yet (a delayed method).
    AwaitingPayment,
    Paid,
    Expired,
}

#[derive(Debug, Clone)]
pub struct CheckoutState {
    pub outcome: CheckoutOutcome,
    pub payment_intent: Option<String>,
    pub amount_total: Option<i64>,
    pub currency: Option<String>,
}

/// How a provider call failed, which decides how to retry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No answer (a timeout, the network, a rate limit, a concurrent use
    /// of the key): it may or may not have happened; the same idempotency
    /// key tells on the next attempt.
    Unanswered,
    /// The provider refused and did nothing; its answer is stored under
    /// the key, so a retry needs a new key.
    Refused,
    /// The provider failed mid-way: it may have happened, and its error is
    /// stored under the key; look before retrying with a new key.
    Unknown,
}

/// A provider call that failed. The message is for logs and admins: it
/// never holds a key or a request body.
#[derive(Debug, Clone)]
pub struct ProviderError {
    pub message: String,
    pub failure: Failure,
}

impl ProviderError {
    pub fn new(failure: Failure, message: impl Into<String>) -> Self {
        ProviderError {
            message: message.into(),
            failure,
        }
    }

    /// A failure on our side before anything was sent.
    pub fn local(message: impl Into<String>) -> Self {
        Self::new(Failure::Refused, message)
    }
}

#[async_trait::async_trait]
pub trait PaymentProvider: Send + Sync {
    fn kind(&self) -> ProviderKind;
    async fn create_checkout(&self, req: CheckoutRequest<'_>) -> Result<Checkout, ProviderError>;
    /// The checkout's state at the provider; `None` when the provider
    /// has nothing to look up (the development provider).
    async fn checkout_state(
        &self,
        provider_ref: &str,
    ) -> Result<Option<CheckoutState>, ProviderError>;
    async fn refund(&self, req: RefundRequest<'_>) -> Result<RefundOutcome, ProviderError>;
    /// The refund made for our `refund_id` on this payment, if any (after
    /// an attempt whose outcome is unknown).
    async fn find_refund(
        &self,
        payment_intent: &str,
        refund_id: &str,
    ) -> Result<Option<RefundOutcome>, ProviderError>;
    /// Creates the coach's payout account (idempotent per coach).
    async fn create_payout_account(
        &self,
        coach_id: &str,
        email: &str,
        country: &str,
    ) -> Result<String, ProviderError>;
    /// A fresh onboarding link for the account.
    async fn payout_onboarding_link(
        &self,
        account: &str,
        refresh_url: &str,
        return_url: &str,
    ) -> Result<String, ProviderError>;
}

/// A new PENDING payment for `purpose`, written in the caller's transaction.
pub async fn create_pending(
    ctx: &DomainCtx,
    uow: &UnitOfWork,
    purpose: Purpose,
    amount_minor: i64,
    currency: &str,
    transfer_destination: Option<&str>,
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
        refund_decided_minor: Set(0),
        provider: Set(ctx.payments.kind().as_str().into()),
        provider_ref: Set(None),
        checkout_url: Set(None),
        provider_payment_intent: Set(None),
        transfer_destination: Set(transfer_destination.map(str::to_string)),
        checkout_opened_at: Set(None),
        next_check_at: Set(None),
        disputed: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(uow.db())
    .await?)
}

/// What the provider's checkout shows and where the money goes.
pub struct CheckoutTerms {
    pub description: String,
    pub application_fee_minor: i64,
    pub expires_at: DateTime<Utc>,
}

/// Opens the provider's checkout for a committed PENDING payment (outside
/// any transaction) and stores its reference and URL. The payment id is
/// the idempotency key, so opening it again returns the same checkout.
pub async fn start_checkout(
    ctx: &DomainCtx,
    payment: payments::Model,
    terms: CheckoutTerms,
) -> AppResult<payments::Model> {
    let purpose = Purpose::of(&payment).ok_or_else(|| AppError::internal("payment purpose"))?;
    let base = ctx.policy.public_base_url.trim_end_matches('/');
    let back = format!(
        "{base}/checkout/{}?{}={}",
        payment.id,
        purpose.as_str().to_lowercase(),
        purpose.id()
    );
    let checkout = ctx
        .payments
        .create_checkout(CheckoutRequest {
            payment_id: &payment.id,
            purpose: &purpose,
            amount_minor: payment.amount_minor,
            currency: &payment.currency,
            description: terms.description,
            destination_account: payment.transfer_destination.as_deref(),
            application_fee_minor: terms.application_fee_minor,
            expires_at: terms.expires_at,
            success_url: format!("{back}&result=success"),
            cancel_url: format!("{back}&result=cancel"),
        })
        .await
        .map_err(|e| {
            tracing::warn!(payment = %payment.id, error = %e.message, "checkout could not be created");
            AppError::Payment("the payment provider could not start a checkout; try again".into())
        })?;
    let now = Utc::now();
    let mut m: payments::ActiveModel = payment.into();
    m.provider_ref = Set(Some(checkout.provider_ref));
    m.checkout_url = Set(Some(checkout.url));
    m.checkout_opened_at = Set(Some(now));
    m.updated_at = Set(now);
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

/// The user who paid: a booking's or a package purchase's consumer, a
/// sponsorship's coach.
pub async fn payer_of<C: ConnectionTrait>(
    db: &C,
    payment: &payments::Model,
) -> AppResult<Option<String>> {
    Ok(match Purpose::of(payment) {
        Some(Purpose::Booking(id)) => entity::bookings::Entity::find_by_id(id)
            .one(db)
            .await?
            .map(|b| b.consumer_id),
        Some(Purpose::PackagePurchase(id)) => entity::package_purchases::Entity::find_by_id(id)
            .one(db)
            .await?
            .map(|p| p.consumer_id),
        Some(Purpose::Sponsorship(id)) => {
            let Some(s) = entity::sponsorships::Entity::find_by_id(id).one(db).await? else {
                return Ok(None);
            };
            entity::coach_profiles::Entity::find_by_id(s.coach_id)
                .one(db)
                .await?
                .map(|c| c.user_id)
        }
        None => None,
    })
}

/// Takes the payment row's lock for the rest of the transaction (on
/// PostgreSQL; SQLite's units of work already hold the write lock), so
/// that what is read about the payment afterwards cannot change under us,
/// and returns the row as it now stands.
pub(crate) async fn lock<C: ConnectionTrait>(
    db: &C,
    payment_id: &str,
) -> AppResult<Option<payments::Model>> {
    payments::Entity::update_many()
        .col_expr(payments::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(payments::Column::Id.eq(payment_id))
        .exec(db)
        .await?;
    Ok(payments::Entity::find_by_id(payment_id.to_string())
        .one(db)
        .await?)
}

/// What the provider reported about a paid checkout.
#[derive(Debug, Clone, Default)]
pub struct Paid {
    pub payment_intent: Option<String>,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
}

/// A payment completed (the dev checkout page).
pub async fn complete(ctx: &DomainCtx, payment_id: &str) -> AppResult<bool> {
    let mut uow = UnitOfWork::begin(ctx).await?;
    let settled = settle_paid(ctx, &mut uow, payment_id, Paid::default()).await?;
    uow.commit().await?;
    Ok(settled)
}

/// The money of a payment arrived: settles what it paid for inside the
/// caller's unit of work. A second report of the same payment changes
/// nothing and answers false. A payment the server had given up on (its
/// checkout lapsed) still counts: the money is there. A booking payment that
/// arrives after the booking was cancelled or lapsed is refunded in full,
/// never kept.
pub async fn settle_paid(
    ctx: &DomainCtx,
    uow: &mut UnitOfWork,
    payment_id: &str,
    paid: Paid,
) -> AppResult<bool> {
    let Some(payment) = lock(uow.db(), payment_id).await? else {
        return Err(AppError::NotFound("payment"));
    };
    let status = PaymentStatus::of(&payment);
    if status.is_paid() {
        return Ok(false);
    }
    let mismatch = paid.amount_minor.is_some_and(|a| a != payment.amount_minor)
        || paid
            .currency
            .as_deref()
            .is_some_and(|c| !c.eq_ignore_ascii_case(&payment.currency));
    if mismatch {
        // Never settle a purchase for a different sum; an admin looks.
        // The report is refused (not recorded), so the provider delivers it
        // again and it shows as failing (logs, the webhook metric, Stripe's
        // dashboard) until someone looks; nothing is settled meanwhile.
        tracing::error!(
            payment = %payment.id,
            expected_minor = payment.amount_minor,
            paid_minor = ?paid.amount_minor,
            currency = ?paid.currency,
            "paid amount differs from the payment"
        );
        return Err(AppError::internal(format!(
            "payment {} was paid a different amount than its own",
            payment.id
        )));
    }
    // A refund may have been reported before the payment itself.
    let new_status = PaymentStatus::paid_with_refunds(payment.refunded_minor, payment.amount_minor);
    let mut update = payments::Entity::update_many()
        .col_expr(payments::Column::Status, Expr::value(new_status.as_str()))
        .col_expr(payments::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(payments::Column::Id.eq(payment.id.clone()))
        .filter(payments::Column::Status.eq(payment.status.clone()));
    if let Some(pi) = &paid.payment_intent {
        update = update.col_expr(
            payments::Column::ProviderPaymentIntent,
            Expr::value(pi.clone()),
        );
    }
    if update.exec(uow.db()).await?.rows_affected != 1 {
        return Ok(false);
    }
    let purpose =
        Purpose::of(&payment).ok_or_else(|| AppError::internal("payment without a purpose"))?;
    uow.audit(Entry {
        action: action::PAYMENT_SUCCEEDED,
        target_type: Some("payment"),
        target_id: Some(&payment.id),
        detail: Some(serde_json::json!({
            "purpose": purpose.as_str(),
            "booking": payment.booking_id,
            "amountMinor": payment.amount_minor,
            "currency": payment.currency,
        })),
        ..Default::default()
    })
    .await?;
    let payment = payments::Entity::find_by_id(payment.id.clone())
        .one(uow.db())
        .await?
        .ok_or(AppError::NotFound("payment"))?;
    match &purpose {
        Purpose::Booking(booking_id) => {
            let remaining = refund::refundable(&payment);
            let outcome = if remaining > 0 {
                booking::confirm_paid(ctx, uow, booking_id).await?
            } else {
                // Refunded in full before it was reported paid: nothing
                // pays for the session.
                booking::lapse_in(uow, booking_id, "the payment was refunded", false).await?;
                PaidOutcome::Confirmed
            };
            let settled = entity::bookings::Entity::find_by_id(booking_id.clone())
                .one(uow.db())
                .await?
                .ok_or(AppError::NotFound("booking"))?;
            if outcome == PaidOutcome::Lapsed {
                notify::payment_receipt(uow, &settled, &payment.id).await?;
                decide_refund(uow, &payment, remaining, refund::LATE_PAYMENT).await?;
                booking::add_refunded(uow, booking_id, remaining, None).await?;
            } else if settled.status == booking::BookingStatus::Confirmed.as_str() {
                notify::booking_confirmed(uow, &settled, Some(&payment.id)).await?;
            }
            booking::publish_current(uow, booking_id).await?;
        }
        Purpose::PackagePurchase(id) => {
            crate::domain::package::settle_paid(uow, id, &payment).await?;
        }
        Purpose::Sponsorship(id) => {
            crate::domain::sponsorship::settle_paid(uow, id, &payment).await?;
        }
    }
    Ok(true)
}

/// A checkout ended without money (expired, or its delayed payment
/// failed): the payment fails and what it would have paid for is released
/// at once. A payment already settled is never moved back.
pub async fn settle_abandoned(
    uow: &mut UnitOfWork,
    payment_id: &str,
    reason: &str,
) -> AppResult<bool> {
    let Some(payment) = lock(uow.db(), payment_id).await? else {
        return Err(AppError::NotFound("payment"));
    };
    if !fail_pending(uow, &payment, reason).await? {
        return Ok(false);
    }
    match Purpose::of(&payment) {
        Some(Purpose::Booking(booking_id)) => {
            booking::lapse_in(uow, &booking_id, reason, false).await?;
            booking::publish_current(uow, &booking_id).await?;
        }
        Some(Purpose::PackagePurchase(id)) => {
            crate::domain::package::lapse_in(uow, &id, reason, false).await?;
        }
        Some(Purpose::Sponsorship(id)) => {
            crate::domain::sponsorship::lapse_in(uow, &id, reason, false, None).await?;
        }
        None => {}
    }
    Ok(true)
}

/// A pending payment that will never complete, FAILED and audited. False
/// when it was no longer pending (settled meanwhile: never moved back).
pub async fn fail_pending(
    uow: &UnitOfWork,
    payment: &payments::Model,
    reason: &str,
) -> AppResult<bool> {
    let failed = payments::Entity::update_many()
        .col_expr(
            payments::Column::Status,
            Expr::value(PaymentStatus::Failed.as_str()),
        )
        .col_expr(payments::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(payments::Column::Id.eq(payment.id.clone()))
        .filter(payments::Column::Status.eq(PaymentStatus::Pending.as_str()))
        .exec(uow.db())
        .await?;
    if failed.rows_affected != 1 {
        return Ok(false);
    }
    uow.happened(crate::domain::activity::Happened::PaymentFailed);
    uow.audit(Entry {
        action: action::PAYMENT_FAILED,
        target_type: Some("payment"),
        target_id: Some(&payment.id),
        detail: Some(serde_json::json!({ "reason": reason })),
        ..Default::default()
    })
    .await?;
    Ok(true)
}

/// The shares of a paid amount after refunds: the platform's fee is
/// refunded in proportion to the refund (as Stripe's
/// `refund_application_fee` does) and the coach's transfer carries the
/// rest. Returns (coach, platform); both are zero for an unpaid amount.
pub fn net_shares(paid_minor: i64, fee_minor: i64, refunded_minor: i64) -> (i64, i64) {
    if paid_minor <= 0 {
        return (0, 0);
    }
    let refunded = refunded_minor.clamp(0, paid_minor);
    let fee = fee_minor.clamp(0, paid_minor);
    // Rounded half up, in i128 so no product overflows.
    let fee_refunded = ((i128::from(fee) * i128::from(refunded) * 2 + i128::from(paid_minor))
        / (2 * i128::from(paid_minor))) as i64;
    let fee_net = fee - Ord::min(fee_refunded, fee);
    let coach_net = paid_minor - refunded - fee_net;
    (coach_net, fee_net)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn net_shares_follow_refunds_in_proportion() {
        assert_eq!(net_shares(6000, 600, 0), (5400, 600));
        assert_eq!(net_shares(6000, 600, 6000), (0, 0));
        assert_eq!(net_shares(6000, 600, 3000), (2700, 300));
        assert_eq!(net_shares(0, 0, 0), (0, 0));
        // Never more refunded than paid.
        assert_eq!(net_shares(6000, 600, 9000), (0, 0));
    }

    proptest! {
        /// The shares always add up to what the platform still holds, and
        /// neither goes negative or grows with a refund.
        #[test]
        fn net_shares_add_up(paid in 1i64..10_000_000, fee_bps in 0i64..=10_000, r in 0i64..10_000_000) {
            let fee = paid * fee_bps / 10_000;
            let refunded = r.min(paid);
            let (coach, platform) = net_shares(paid, fee, refunded);
            prop_assert_eq!(coach + platform, paid - refunded);
            prop_assert!(coach >= 0 && platform >= 0);
            prop_assert!(platform <= fee && coach <= paid - fee);
        }
    }
}
