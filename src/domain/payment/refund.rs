//! Refunds: decided inside the transaction that causes them (a PENDING row
//! and the payment's decided total), sent to the provider after the commit
//! with the refund id as idempotency key, retried with capped exponential
//! backoff while the provider refuses, and confirmed by the provider's
//! report. A refund is never sent twice (one key, one claim at a time) and
//! never lost (the row stays until the provider answers; after the last
//! attempt it is FAILED, audited and visible to admins).

use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

use crate::domain::activity::Happened;
use crate::domain::audit::{Entry, action};
use crate::domain::context::DomainCtx;
use crate::domain::payment::{
    Failure, PaymentStatus, ProviderError, RefundOutcome, RefundRequest, lock,
};
use crate::domain::uow::UnitOfWork;
use crate::error::{AppError, AppResult};
use entity::{payments, refunds};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundStatus {
    /// Decided; to send (again) at `next_attempt_at`.
    Pending,
    /// The provider accepted it; its confirmation is awaited.
    Submitted,
    Succeeded,
    /// The provider refused it for good, or every attempt failed.
    Failed,
}

impl RefundStatus {
    pub const ALL: [RefundStatus; 4] = [
        RefundStatus::Pending,
        RefundStatus::Submitted,
        RefundStatus::Succeeded,
        RefundStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Pending => "PENDING",
            RefundStatus::Submitted => "SUBMITTED",
            RefundStatus::Succeeded => "SUCCEEDED",
            RefundStatus::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    fn is_final(self) -> bool {
        matches!(self, RefundStatus::Succeeded | RefundStatus::Failed)
    }
}

/// Reasons of refunds that are not part of a cancellation: their consumer
/// gets a "refund issued" email once the provider accepts them (the
/// cancellation email tells of the others).
pub const ADMIN_REFUND: &str = "admin refund";
pub const LATE_PAYMENT: &str = "late payment";
/// What was paid for can no longer be delivered (a package taken off sale
/// or a sponsorship cancelled before its payment arrived).
pub const UNFULFILLED: &str = "unfulfilled";

/// Attempts before a refund the provider keeps refusing is given up (and
/// shown to admins): with the backoff below, about a day and a half.
pub const MAX_ATTEMPTS: i32 = 40;
/// How long one sender owns a refund it is sending.
const CLAIM: chrono::Duration = chrono::Duration::seconds(120);

/// The wait before attempt `attempts + 1`: 5 s doubling to at most an
/// hour, with up to a fifth more at random so retries of many refunds
/// do not arrive together.
pub fn backoff(attempts: i32) -> Duration {
    let base = 5u64.saturating_mul(1u64 << attempts.clamp(0, 20) as u32);
    let capped = Ord::min(base, 3600);
    let jitter = rand::rng().random_range(0..=capped / 5);
    Duration::from_secs(capped + jitter)
}

/// What can still be refunded of a payment: paid and not yet refunded or
/// promised back.
pub fn refundable(p: &payments::Model) -> i64 {
    if !PaymentStatus::of(p).is_paid() {
        return 0;
    }
    Ord::max(
        p.amount_minor - Ord::max(p.refund_decided_minor, p.refunded_minor),
        0,
    )
}

/// Records a refund to execute (inside the unit of work, which sends it
/// once committed) and adds it to the payment's decided total. Refuses
/// more than remains of the payment.
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
    // Conditional on the totals, so two concurrent refunds cannot together
    // exceed the amount paid.
    let res = payments::Entity::update_many()
        .col_expr(
            payments::Column::RefundDecidedMinor,
            Expr::col(payments::Column::RefundDecidedMinor).add(amount_minor),
        )
        .col_expr(payments::Column::UpdatedAt, Expr::value(now))
        .filter(payments::Column::Id.eq(payment.id.clone()))
        .filter(payments::Column::Status.is_in([
            PaymentStatus::Succeeded.as_str(),
            PaymentStatus::PartiallyRefunded.as_str(),
        ]))
        .filter(
            Expr::col(payments::Column::RefundDecidedMinor)
                .add(amount_minor)
                .lte(Expr::col(payments::Column::AmountMinor)),
        )
        .filter(
            Expr::col(payments::Column::RefundedMinor)
                .add(amount_minor)
                .lte(Expr::col(payments::Column::AmountMinor)),
        )
        .exec(uow.db())
        .await?;
    if res.rows_affected != 1 {
        return Err(AppError::bad_input(
            "amountMinor",
            "the refund is more than what remains of the payment",
        ));
    }
    let refund = refunds::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        payment_id: Set(payment.id.clone()),
        amount_minor: Set(amount_minor),
        currency: Set(payment.currency.clone()),
        status: Set(RefundStatus::Pending.as_str().into()),
        reason: Set(reason.into()),
        provider_ref: Set(None),
        attempts: Set(0),
        next_attempt_at: Set(Some(now)),
        last_error: Set(None),
        idempotency_key: Set(String::new()),
        outcome_unknown: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(uow.db())
    .await?;
    uow.refund_decided(&refund.id);
    Ok(Some(refund))
}

/// Sends due refunds to the provider (after their transaction committed).
/// Safe to run concurrently and repeatedly: a sender first claims the row
/// (a conditional update of its next attempt time, whose affected-row
/// count decides), and the refund id is the provider's idempotency key.
pub async fn execute_pending_refunds(ctx: &DomainCtx, only: Option<&str>) -> AppResult<usize> {
    let now = Utc::now();
    let due = Condition::any()
        .add(refunds::Column::NextAttemptAt.is_null())
        .add(refunds::Column::NextAttemptAt.lte(now));
    let mut q = refunds::Entity::find()
        .filter(refunds::Column::Status.eq(RefundStatus::Pending.as_str()))
        .filter(due.clone());
    if let Some(id) = only {
        q = q.filter(refunds::Column::Id.eq(id));
    }
    let pending = q
        .order_by_asc(refunds::Column::CreatedAt)
        .limit(100)
        .all(&ctx.db)
        .await?;
    let mut done = 0;
    for refund in pending {
        let claimed = refunds::Entity::update_many()
            .col_expr(refunds::Column::NextAttemptAt, Expr::value(now + CLAIM))
            .filter(refunds::Column::Id.eq(refund.id.clone()))
            .filter(refunds::Column::Status.eq(RefundStatus::Pending.as_str()))
            .filter(due.clone())
            .exec(&ctx.db)
            .await?;
        if claimed.rows_affected != 1 {
            continue;
        }
        let Some(payment) = payments::Entity::find_by_id(refund.payment_id.clone())
            .one(&ctx.db)
            .await?
        else {
            continue;
        };
        let (result, key) = attempt(ctx, &refund, &payment).await;
        // The provider's answer, recorded in a unit of work of its own.
        let mut uow = UnitOfWork::begin(ctx).await?;
        match result {
            Ok(outcome) => {
                let (status, provider_ref) = match outcome {
                    RefundOutcome::Submitted(r) => (RefundStatus::Submitted, r),
                    RefundOutcome::Succeeded(r) => (RefundStatus::Succeeded, r),
                };
                let recorded = refunds::Entity::update_many()
                    .col_expr(refunds::Column::Status, Expr::value(status.as_str()))
                    .col_expr(refunds::Column::ProviderRef, Expr::value(provider_ref))
                    .col_expr(
                        refunds::Column::Attempts,
                        Expr::col(refunds::Column::Attempts).add(1),
                    )
                    .col_expr(
                        refunds::Column::LastError,
                        Expr::value(Option::<String>::None),
                    )
                    .col_expr(refunds::Column::UpdatedAt, Expr::value(Utc::now()))
                    .filter(refunds::Column::Id.eq(refund.id.clone()))
                    .filter(refunds::Column::Status.eq(RefundStatus::Pending.as_str()))
                    .exec(uow.db())
                    .await?;
                if recorded.rows_affected == 1 {
                    uow.happened(Happened::RefundAccepted);
                }
                if status == RefundStatus::Succeeded {
                    confirm_succeeded(uow.db(), &payment.id).await?;
                }
                if [ADMIN_REFUND, LATE_PAYMENT, UNFULFILLED].contains(&refund.reason.as_str()) {
                    announce(&mut uow, &refund, &payment).await?;
                }
                done += 1;
            }
            Err(ProviderError {
                message: e,
                failure,
            }) => {
                let attempts = refund.attempts + 1;
                // Which key the next attempt uses, and whether it must look
                // first (see `Failure`).
                let (next_key, unknown) = match failure {
                    Failure::Unanswered => (key, false),
                    Failure::Refused => (format!("refund-{}-{attempts}", refund.id), false),
                    Failure::Unknown => (key, true),
                };
                if attempts >= MAX_ATTEMPTS {
                    tracing::error!(refund = %refund.id, error = %e, "refund given up after {attempts} attempts");
                    fail(&uow, &refund, &e, attempts).await?;
                } else {
                    uow.happened(Happened::RefundRetrying);
                    tracing::warn!(refund = %refund.id, error = %e, attempts, "refund not accepted; will retry");
                    let next = now
                        + chrono::Duration::from_std(backoff(refund.attempts))
                            .unwrap_or(chrono::Duration::hours(1));
                    refunds::Entity::update_many()
                        .col_expr(refunds::Column::Attempts, Expr::value(attempts))
                        .col_expr(refunds::Column::NextAttemptAt, Expr::value(next))
                        .col_expr(refunds::Column::LastError, Expr::value(truncate(&e)))
                        .col_expr(refunds::Column::IdempotencyKey, Expr::value(next_key))
                        .col_expr(refunds::Column::OutcomeUnknown, Expr::value(unknown))
                        .col_expr(refunds::Column::UpdatedAt, Expr::value(Utc::now()))
                        .filter(refunds::Column::Id.eq(refund.id.clone()))
                        .filter(refunds::Column::Status.eq(RefundStatus::Pending.as_str()))
                        .exec(uow.db())
                        .await?;
                }
            }
        }
        uow.commit().await?;
    }
    Ok(done)
}

/// One attempt at the provider: after an attempt whose outcome is unknown,
/// first looks for a refund made under our id, and sends under a new key
/// only if there is none. Returns the answer and the key it was sent with.
async fn attempt(
    ctx: &DomainCtx,
    refund: &refunds::Model,
    payment: &payments::Model,
) -> (Result<RefundOutcome, ProviderError>, String) {
    let mut key = if refund.idempotency_key.is_empty() {
        format!("refund-{}", refund.id)
    } else {
        refund.idempotency_key.clone()
    };
    if payment.provider != ctx.payments.kind().as_str() {
        let e = ProviderError::new(
            Failure::Unanswered,
            format!(
                "the payment was made with the {} provider, which is not configured",
                payment.provider
            ),
        );
        return (Err(e), key);
    }
    if refund.outcome_unknown {
        let Some(pi) = payment.provider_payment_intent.as_deref() else {
            return (
                Err(ProviderError::local("no payment intent to look at")),
                key,
            );
        };
        match ctx.payments.find_refund(pi, &refund.id).await {
            Ok(Some(found)) => return (Ok(found), key),
            Ok(None) => key = format!("refund-{}-{}", refund.id, refund.attempts),
            // Still not known: look again next time.
            Err(e) => return (Err(ProviderError::new(Failure::Unknown, e.message)), key),
        }
    }
    let result = ctx
        .payments
        .refund(RefundRequest {
            refund_id: &refund.id,
            idempotency_key: &key,
            payment_id: &payment.id,
            payment_intent: payment.provider_payment_intent.as_deref(),
            amount_minor: refund.amount_minor,
            currency: &payment.currency,
            reverse_transfer: payment.transfer_destination.is_some(),
        })
        .await;
    (result, key)
}

/// Tells whoever paid that the refund was issued.
async fn announce(
    uow: &mut UnitOfWork,
    refund: &refunds::Model,
    payment: &payments::Model,
) -> AppResult<()> {
    let Some(payer) = super::payer_of(uow.db(), payment).await? else {
        return Ok(());
    };
    crate::domain::notify::refund_issued(
        uow,
        &payer,
        &refund.id,
        refund.amount_minor,
        &payment.currency,
    )
    .await
}

/// A provider's message, bounded for a column and an admin's screen.
pub(crate) fn truncate(s: &str) -> String {
    s.chars().take(500).collect()
}

/// A refund that will not happen (or, reported failed after it had
/// succeeded, did not after all): FAILED, its amount no longer promised on
/// the payment or the booking (an admin can refund again), the confirmed
/// total recounted, audited.
async fn fail(
    uow: &UnitOfWork,
    refund: &refunds::Model,
    why: &str,
    attempts: i32,
) -> AppResult<()> {
    let moved = refunds::Entity::update_many()
        .col_expr(
            refunds::Column::Status,
            Expr::value(RefundStatus::Failed.as_str()),
        )
        .col_expr(refunds::Column::Attempts, Expr::value(attempts))
        .col_expr(refunds::Column::LastError, Expr::value(truncate(why)))
        .col_expr(refunds::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(refunds::Column::Id.eq(refund.id.clone()))
        .filter(refunds::Column::Status.ne(RefundStatus::Failed.as_str()))
        .exec(uow.db())
        .await?;
    if moved.rows_affected != 1 {
        return Ok(());
    }
    let was_succeeded = refund.status == RefundStatus::Succeeded.as_str();
    payments::Entity::update_many()
        .col_expr(
            payments::Column::RefundDecidedMinor,
            Expr::col(payments::Column::RefundDecidedMinor).sub(refund.amount_minor),
        )
        .filter(payments::Column::Id.eq(refund.payment_id.clone()))
        .exec(uow.db())
        .await?;
    if let Some(payment) = lock(uow.db(), &refund.payment_id).await? {
        if let Some(booking_id) = &payment.booking_id {
            entity::bookings::Entity::update_many()
                .col_expr(
                    entity::bookings::Column::RefundedMinor,
                    Expr::col(entity::bookings::Column::RefundedMinor).sub(refund.amount_minor),
                )
                .filter(entity::bookings::Column::Id.eq(booking_id.clone()))
                .filter(entity::bookings::Column::RefundedMinor.gte(refund.amount_minor))
                .exec(uow.db())
                .await?;
        }
        if was_succeeded {
            recount_refunded(uow.db(), &payment).await?;
        }
    }
    uow.audit(Entry {
        action: action::REFUND_FAILED,
        target_type: Some("refund"),
        target_id: Some(&refund.id),
        detail: Some(serde_json::json!({
            "payment": refund.payment_id,
            "amountMinor": refund.amount_minor,
            "error": truncate(why),
        })),
        ..Default::default()
    })
    .await
}

/// Raises the payment's confirmed refunded total to at least `at_least`
/// (never lowers it, never above the amount) and its status with it; a
/// payment not yet reported paid keeps its status until it is.
pub(crate) async fn raise_refunded<C: ConnectionTrait>(
    db: &C,
    payment: &payments::Model,
    at_least: i64,
) -> AppResult<()> {
    let refunded = Ord::max(
        payment.refunded_minor,
        Ord::min(at_least, payment.amount_minor),
    );
    if refunded == payment.refunded_minor {
        return Ok(());
    }
    set_refunded(db, payment, refunded).await
}

/// Writes the confirmed refunded total and the status it gives a paid
/// payment (one not yet reported paid keeps its status until it is).
async fn set_refunded<C: ConnectionTrait>(
    db: &C,
    payment: &payments::Model,
    refunded: i64,
) -> AppResult<()> {
    let status = PaymentStatus::of(payment);
    let status = if status.is_paid() {
        PaymentStatus::paid_with_refunds(refunded, payment.amount_minor)
    } else {
        status
    };
    payments::Entity::update_many()
        .col_expr(payments::Column::RefundedMinor, Expr::value(refunded))
        .col_expr(payments::Column::Status, Expr::value(status.as_str()))
        .col_expr(payments::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(payments::Column::Id.eq(payment.id.clone()))
        .exec(db)
        .await?;
    Ok(())
}

/// What our succeeded refunds of the payment add up to.
async fn succeeded_total<C: ConnectionTrait>(db: &C, payment_id: &str) -> AppResult<i64> {
    Ok(refunds::Entity::find()
        .filter(refunds::Column::PaymentId.eq(payment_id))
        .filter(refunds::Column::Status.eq(RefundStatus::Succeeded.as_str()))
        .all(db)
        .await?
        .iter()
        .map(|r| r.amount_minor)
        .sum())
}

/// The confirmed total is what our succeeded refunds add up to (after one
/// of them turned out to have failed: the only time it goes down).
async fn recount_refunded<C: ConnectionTrait>(db: &C, payment: &payments::Model) -> AppResult<()> {
    let succeeded = succeeded_total(db, &payment.id).await?;
    set_refunded(db, payment, Ord::min(succeeded, payment.amount_minor)).await
}

/// The confirmed total follows the refunds that succeeded.
async fn confirm_succeeded<C: ConnectionTrait>(db: &C, payment_id: &str) -> AppResult<()> {
    let Some(payment) = lock(db, payment_id).await? else {
        return Ok(());
    };
    let succeeded = succeeded_total(db, payment_id).await?;
    raise_refunded(db, &payment, succeeded).await
}

/// The provider's status of a refund it accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderRefundStatus {
    Pending,
    Succeeded,
    Failed,
}

/// A provider report about one refund.
#[derive(Debug, Clone)]
pub struct RefundReport {
    pub provider_ref: String,
    /// Our refund id, from the refund's metadata.
    pub refund_id: Option<String>,
    pub status: ProviderRefundStatus,
    pub failure: Option<String>,
}

/// Applies a refund report inside the caller's unit of work. A final
/// status is never changed again; a report of a refund we did not make
/// (one made at the provider's dashboard) changes no row, and its money is
/// counted from the charge's refunded total instead.
pub async fn apply_report(uow: &UnitOfWork, report: &RefundReport) -> AppResult<bool> {
    let db = uow.db();
    let mut found = None;
    if let Some(id) = report.refund_id.as_deref().filter(|id| id.len() <= 64) {
        found = refunds::Entity::find_by_id(id.to_string()).one(db).await?;
    }
    if found.is_none() {
        found = refunds::Entity::find()
            .filter(refunds::Column::ProviderRef.eq(report.provider_ref.clone()))
            .one(db)
            .await?;
    }
    let Some(refund) = found else {
        return Ok(false);
    };
    // The payment's lock first: every change of its totals is serialised.
    lock(db, &refund.payment_id).await?;
    let refund = refunds::Entity::find_by_id(refund.id.clone())
        .one(db)
        .await?
        .ok_or(AppError::NotFound("refund"))?;
    let current = RefundStatus::parse(&refund.status).unwrap_or(RefundStatus::Pending);
    // Final, but for one move: a refund that succeeded can still fail at
    // the bank (Stripe reports `failed` afterwards).
    let reversal =
        current == RefundStatus::Succeeded && report.status == ProviderRefundStatus::Failed;
    if current.is_final() && !reversal {
        return Ok(false);
    }
    let moved_to = |status: RefundStatus| {
        refunds::Entity::update_many()
            .col_expr(refunds::Column::Status, Expr::value(status.as_str()))
            .col_expr(
                refunds::Column::ProviderRef,
                Expr::value(report.provider_ref.clone()),
            )
            .col_expr(refunds::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(refunds::Column::Id.eq(refund.id.clone()))
            .exec(db)
    };
    match report.status {
        ProviderRefundStatus::Pending => {
            moved_to(RefundStatus::Submitted).await?;
        }
        ProviderRefundStatus::Succeeded => {
            moved_to(RefundStatus::Succeeded).await?;
            confirm_succeeded(db, &refund.payment_id).await?;
        }
        ProviderRefundStatus::Failed => {
            let why = report
                .failure
                .clone()
                .unwrap_or_else(|| "the provider could not complete the refund".into());
            fail(uow, &refund, &why, refund.attempts).await?;
        }
    }
    Ok(true)
}

/// The provider's refunded total of a charge: the payment's confirmed
/// total rises to it, and refunds it accepted that the total now covers are
/// done (for when their own report is late or not subscribed to).
pub async fn apply_charge_refunded(
    uow: &UnitOfWork,
    payment_id: &str,
    amount_refunded: i64,
) -> AppResult<()> {
    let db = uow.db();
    let Some(payment) = lock(db, payment_id).await? else {
        return Ok(());
    };
    raise_refunded(db, &payment, amount_refunded).await?;
    let rows = refunds::Entity::find()
        .filter(refunds::Column::PaymentId.eq(payment_id))
        .order_by_asc(refunds::Column::CreatedAt)
        .all(db)
        .await?;
    let mut covered: i64 = rows
        .iter()
        .filter(|r| r.status == RefundStatus::Succeeded.as_str())
        .map(|r| r.amount_minor)
        .sum();
    for r in rows
        .iter()
        .filter(|r| r.status == RefundStatus::Submitted.as_str())
    {
        if covered + r.amount_minor > amount_refunded {
            break;
        }
        covered += r.amount_minor;
        refunds::Entity::update_many()
            .col_expr(
                refunds::Column::Status,
                Expr::value(RefundStatus::Succeeded.as_str()),
            )
            .col_expr(refunds::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(refunds::Column::Id.eq(r.id.clone()))
            .filter(refunds::Column::Status.eq(RefundStatus::Submitted.as_str()))
            .exec(db)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_within_seconds_and_is_capped() {
        let first = backoff(0).as_secs();
        assert!((5..=6).contains(&first), "{first}");
        assert!(backoff(3).as_secs() >= 40);
        for n in [12, 20, 39, 1000] {
            let b = backoff(n).as_secs();
            assert!((3600..=4320).contains(&b), "{n}: {b}");
        }
    }
}
