//! What a payment provider reports (a webhook, or reconciliation asking it
//! about a payment whose webhook never came), in the domain's terms, and
//! how each report is applied: in one unit of work with the report's id,
//! so a report applied once is never applied again, whatever arrives
//! twice, concurrently or late. No report moves a state backwards.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, QueryFilter, QuerySelect, Set,
};

use crate::domain::audit::{Entry, action};
use crate::domain::context::DomainCtx;
use crate::domain::payment::refund::{self, RefundReport};
use crate::domain::payment::{
    CheckoutOutcome, Paid, PaymentStatus, ProviderKind, lock, settle_abandoned, settle_paid,
};
use crate::domain::uow::UnitOfWork;
use crate::error::AppResult;
use entity::{coach_profiles, disputes, payments, provider_events};

/// How a report names the payment it is about; any one may be missing.
#[derive(Debug, Clone, Default)]
pub struct PaymentRef {
    /// Our payment id (metadata or `client_reference_id`).
    pub payment_id: Option<String>,
    /// The provider's checkout (`cs_...`).
    pub checkout: Option<String>,
    /// The provider's payment (`pi_...`).
    pub payment_intent: Option<String>,
}

#[derive(Debug, Clone)]
pub enum ProviderEvent {
    /// A checkout's money arrived.
    CheckoutPaid {
        payment: PaymentRef,
        paid: Paid,
    },
    /// A checkout completed, its money still to come (a delayed method).
    CheckoutAwaitingPayment {
        payment: PaymentRef,
    },
    /// A checkout ended without money: expired, or its delayed payment
    /// failed.
    CheckoutAbandoned {
        payment: PaymentRef,
        reason: &'static str,
    },
    /// One attempt to pay failed; the checkout stays open for another.
    PaymentAttemptFailed {
        payment: PaymentRef,
        message: Option<String>,
    },
    /// A charge's refunded total.
    ChargeRefunded {
        payment: PaymentRef,
        amount_refunded: i64,
    },
    Refund(RefundReport),
    Dispute {
        payment: PaymentRef,
        provider_ref: String,
        amount_minor: i64,
        currency: String,
        status: String,
        reason: String,
    },
    /// A connected account's state, as of `at` (Unix seconds).
    PayoutAccount {
        account: String,
        charges_enabled: bool,
        payouts_enabled: bool,
        at: i64,
    },
    /// A type we do not act on.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Done,
    /// Applied before: nothing changed.
    Duplicate,
    /// Not ours to act on (a type we do not use, a payment we do not know).
    Ignored,
}

/// Dispute statuses after which the dispute is over.
pub const DISPUTE_CLOSED: [&str; 4] = ["won", "lost", "warning_closed", "prevented"];

/// How far along a dispute status is: a report of an earlier status than
/// the stored one changes nothing.
fn dispute_rank(status: &str) -> u8 {
    match status {
        "warning_needs_response" => 0,
        "warning_under_review" => 1,
        "needs_response" => 2,
        "under_review" => 3,
        s if DISPUTE_CLOSED.contains(&s) => 4,
        _ => 0,
    }
}

async fn find_payment(
    db: &impl sea_orm::ConnectionTrait,
    r: &PaymentRef,
) -> AppResult<Option<payments::Model>> {
    if let Some(id) = r.payment_id.as_deref().filter(|id| id.len() <= 64) {
        let found = payments::Entity::find_by_id(id.to_string()).one(db).await?;
        // Our id in metadata is trusted only together with the provider's
        // own reference, when the payment already has one.
        if let Some(p) = found
            && (r.checkout.is_none() || p.provider_ref.is_none() || p.provider_ref == r.checkout)
        {
            return Ok(Some(p));
        }
    }
    if let Some(cs) = &r.checkout {
        let found = payments::Entity::find()
            .filter(payments::Column::ProviderRef.eq(cs.clone()))
            .one(db)
            .await?;
        if found.is_some() {
            return Ok(found);
        }
    }
    if let Some(pi) = &r.payment_intent {
        return Ok(payments::Entity::find()
            .filter(payments::Column::ProviderPaymentIntent.eq(pi.clone()))
            .one(db)
            .await?);
    }
    Ok(None)
}

/// Applies one report under `key` (the provider's event id), recorded in
/// the same transaction as its effect: of 20 concurrent copies one acts,
/// and the others wait for it and then find its key.
pub async fn apply(
    ctx: &DomainCtx,
    key: &str,
    kind: &str,
    event: ProviderEvent,
) -> AppResult<Applied> {
    if matches!(event, ProviderEvent::Other) {
        return Ok(Applied::Ignored);
    }
    let mut uow = UnitOfWork::begin(ctx).await?;
    let recorded = provider_events::Entity::insert(provider_events::ActiveModel {
        id: Set(key.chars().take(255).collect()),
        kind: Set(kind.chars().take(100).collect()),
        received_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::column(provider_events::Column::Id)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(uow.db())
    .await?;
    if recorded == 0 {
        return Ok(Applied::Duplicate);
    }
    let applied = apply_in(ctx, &mut uow, event).await?;
    uow.commit().await?;
    Ok(applied)
}

async fn apply_in(
    ctx: &DomainCtx,
    uow: &mut UnitOfWork,
    event: ProviderEvent,
) -> AppResult<Applied> {
    let db = uow.db();
    let unknown = |what: &str, r: &PaymentRef| {
        tracing::info!(what, payment = ?r.payment_id, "report about a payment this server does not know; ignored");
        Ok(Applied::Ignored)
    };
    match event {
        ProviderEvent::CheckoutPaid { payment, paid } => {
            let Some(p) = find_payment(db, &payment).await? else {
                return unknown("checkout paid", &payment);
            };
            settle_paid(ctx, uow, &p.id, paid).await?;
        }
        ProviderEvent::CheckoutAwaitingPayment { payment } => {
            let Some(p) = find_payment(db, &payment).await? else {
                return unknown("checkout awaiting payment", &payment);
            };
            if let Some(pi) = payment.payment_intent {
                payments::Entity::update_many()
                    .col_expr(payments::Column::ProviderPaymentIntent, Expr::value(pi))
                    .filter(payments::Column::Id.eq(p.id))
                    .filter(payments::Column::ProviderPaymentIntent.is_null())
                    .exec(db)
                    .await?;
            }
        }
        ProviderEvent::CheckoutAbandoned { payment, reason } => {
            let Some(p) = find_payment(db, &payment).await? else {
                return unknown("checkout abandoned", &payment);
            };
            settle_abandoned(uow, &p.id, reason).await?;
        }
        ProviderEvent::PaymentAttemptFailed { payment, message } => {
            let Some(p) = find_payment(db, &payment).await? else {
                return unknown("payment attempt failed", &payment);
            };
            uow.happened(crate::domain::activity::Happened::PaymentDeclined);
            uow.audit(Entry {
                action: action::PAYMENT_FAILED,
                target_type: Some("payment"),
                target_id: Some(&p.id),
                detail: Some(serde_json::json!({
                    "attempt": true,
                    "message": message.map(|m| m.chars().take(300).collect::<String>()),
                })),
                ..Default::default()
            })
            .await?;
        }
        ProviderEvent::ChargeRefunded {
            payment,
            amount_refunded,
        } => {
            let Some(p) = find_payment(db, &payment).await? else {
                return unknown("charge refunded", &payment);
            };
            if p.provider_payment_intent.is_none()
                && let Some(pi) = &payment.payment_intent
            {
                payments::Entity::update_many()
                    .col_expr(
                        payments::Column::ProviderPaymentIntent,
                        Expr::value(pi.clone()),
                    )
                    .filter(payments::Column::Id.eq(p.id.clone()))
                    .exec(db)
                    .await?;
            }
            refund::apply_charge_refunded(uow, &p.id, amount_refunded).await?;
        }
        ProviderEvent::Refund(report) => {
            if !refund::apply_report(uow, &report).await? {
                return Ok(Applied::Ignored);
            }
        }
        ProviderEvent::Dispute {
            payment,
            provider_ref,
            amount_minor,
            currency,
            status,
            reason,
        } => {
            let Some(p) = find_payment(db, &payment).await? else {
                return unknown("dispute", &payment);
            };
            apply_dispute(
                uow,
                &p,
                provider_ref,
                amount_minor,
                currency,
                status,
                reason,
            )
            .await?;
        }
        ProviderEvent::PayoutAccount {
            account,
            charges_enabled,
            payouts_enabled,
            at,
        } => {
            if !payout_account_changed(uow, &account, charges_enabled && payouts_enabled, at)
                .await?
            {
                return Ok(Applied::Ignored);
            }
        }
        ProviderEvent::Other => return Ok(Applied::Ignored),
    }
    Ok(Applied::Done)
}

async fn apply_dispute(
    uow: &UnitOfWork,
    payment: &payments::Model,
    provider_ref: String,
    amount_minor: i64,
    currency: String,
    status: String,
    reason: String,
) -> AppResult<()> {
    let db = uow.db();
    lock(db, &payment.id).await?;
    let closed = DISPUTE_CLOSED.contains(&status.as_str());
    let now = Utc::now();
    let existing = disputes::Entity::find()
        .filter(disputes::Column::ProviderRef.eq(provider_ref.clone()))
        .one(db)
        .await?;
    match existing {
        // Over already: a late report of an earlier state changes nothing.
        Some(d)
            if DISPUTE_CLOSED.contains(&d.status.as_str())
                || dispute_rank(&status) < dispute_rank(&d.status) =>
        {
            return Ok(());
        }
        Some(d) => {
            let mut m: disputes::ActiveModel = d.into();
            m.status = Set(status.clone());
            m.amount_minor = Set(amount_minor);
            m.updated_at = Set(now);
            m.update(db).await?;
        }
        None => {
            disputes::ActiveModel {
                id: Set(uuid::Uuid::now_v7().to_string()),
                payment_id: Set(payment.id.clone()),
                provider_ref: Set(provider_ref.clone()),
                amount_minor: Set(amount_minor),
                currency: Set(currency.to_uppercase()),
                status: Set(status.clone()),
                reason: Set(reason.chars().take(100).collect()),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(db)
            .await?;
        }
    }
    // Disputed while any dispute of the payment is open or was lost.
    let open_or_lost = disputes::Entity::find()
        .filter(disputes::Column::PaymentId.eq(payment.id.clone()))
        .filter(
            Condition::any()
                .add(disputes::Column::Status.is_not_in(DISPUTE_CLOSED))
                .add(disputes::Column::Status.eq("lost")),
        )
        .limit(1)
        .all(db)
        .await?;
    payments::Entity::update_many()
        .col_expr(
            payments::Column::Disputed,
            Expr::value(!open_or_lost.is_empty()),
        )
        .filter(payments::Column::Id.eq(payment.id.clone()))
        .exec(db)
        .await?;
    uow.audit(Entry {
        action: if closed {
            action::PAYMENT_DISPUTE_CLOSED
        } else {
            action::PAYMENT_DISPUTED
        },
        target_type: Some("payment"),
        target_id: Some(&payment.id),
        detail: Some(serde_json::json!({
            "dispute": provider_ref,
            "status": status,
            "amountMinor": amount_minor,
            "booking": payment.booking_id,
        })),
        ..Default::default()
    })
    .await
}

/// A coach's payout account changed: payouts follow it unless a newer state
/// was applied already. False when no coach has that account.
pub async fn payout_account_changed(
    uow: &mut UnitOfWork,
    account: &str,
    enabled: bool,
    at: i64,
) -> AppResult<bool> {
    let db = uow.db();
    let Some(coach) = coach_profiles::Entity::find()
        .filter(coach_profiles::Column::StripeAccountId.eq(account))
        .one(db)
        .await?
    else {
        return Ok(false);
    };
    let moved = coach_profiles::Entity::update_many()
        .col_expr(coach_profiles::Column::PayoutsEnabled, Expr::value(enabled))
        .col_expr(coach_profiles::Column::PayoutsUpdatedS, Expr::value(at))
        .col_expr(coach_profiles::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(coach_profiles::Column::Id.eq(coach.id.clone()))
        .filter(coach_profiles::Column::PayoutsUpdatedS.lte(at))
        .exec(db)
        .await?;
    if moved.rows_affected == 1 && coach.payouts_enabled != enabled {
        uow.audit(Entry {
            action: action::PAYOUTS_CHANGED,
            target_type: Some("coach"),
            target_id: Some(&coach.id),
            detail: Some(serde_json::json!({ "payoutsEnabled": enabled })),
            ..Default::default()
        })
        .await?;
        uow.listing_changed(&coach.id);
    }
    Ok(true)
}

/// Payments still pending `reconcile_after` after their checkout opened are
/// looked up at the provider, and what it says is applied as its webhook
/// would have been (same code, a key of its own, so a webhook arriving
/// afterwards changes nothing). Each payment is looked at again only after
/// another `reconcile_after`. Returns how many reports were applied.
pub async fn reconcile(ctx: &DomainCtx, now: DateTime<Utc>) -> AppResult<usize> {
    if ctx.payments.kind() == ProviderKind::Dev {
        return Ok(0);
    }
    let after = chrono::Duration::from_std(ctx.policy.reconcile_after)
        .unwrap_or(chrono::Duration::minutes(10));
    let due = Condition::any()
        .add(payments::Column::NextCheckAt.is_null())
        .add(payments::Column::NextCheckAt.lte(now));
    let stale = payments::Entity::find()
        .filter(payments::Column::Status.eq(PaymentStatus::Pending.as_str()))
        .filter(payments::Column::Provider.eq(ctx.payments.kind().as_str()))
        .filter(payments::Column::ProviderRef.is_not_null())
        .filter(payments::Column::CheckoutOpenedAt.lte(now - after))
        .filter(due.clone())
        .limit(50)
        .all(&ctx.db)
        .await?;
    let mut applied = 0;
    for p in stale {
        let claimed = payments::Entity::update_many()
            .col_expr(payments::Column::NextCheckAt, Expr::value(now + after))
            .filter(payments::Column::Id.eq(p.id.clone()))
            .filter(due.clone())
            .exec(&ctx.db)
            .await?;
        let Some(checkout) = p.provider_ref.clone() else {
            continue;
        };
        if claimed.rows_affected != 1 {
            continue;
        }
        let state = match ctx.payments.checkout_state(&checkout).await {
            Ok(Some(s)) => s,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(payment = %p.id, error = %e.message, "could not look the checkout up; will retry");
                continue;
            }
        };
        let payment = PaymentRef {
            payment_id: Some(p.id.clone()),
            checkout: Some(checkout.clone()),
            payment_intent: state.payment_intent.clone(),
        };
        let (key, kind, event) = match state.outcome {
            CheckoutOutcome::Open => continue,
            CheckoutOutcome::AwaitingPayment => (
                "awaiting",
                "checkout.session.completed",
                ProviderEvent::CheckoutAwaitingPayment { payment },
            ),
            CheckoutOutcome::Paid => (
                "paid",
                "checkout.session.completed",
                ProviderEvent::CheckoutPaid {
                    payment,
                    paid: Paid {
                        payment_intent: state.payment_intent,
                        amount_minor: state.amount_total,
                        currency: state.currency,
                    },
                },
            ),
            CheckoutOutcome::Expired => (
                "expired",
                "checkout.session.expired",
                ProviderEvent::CheckoutAbandoned {
                    payment,
                    reason: "the checkout expired",
                },
            ),
        };
        tracing::info!(payment = %p.id, outcome = key, "reconciled a payment whose webhook did not arrive");
        if apply(ctx, &format!("reconcile:{checkout}:{key}"), kind, event).await? == Applied::Done {
            applied += 1;
        }
    }
    Ok(applied)
}

/// Forgets event ids older than any redelivery (Stripe retries for three
/// days).
pub async fn prune_events(ctx: &DomainCtx, now: DateTime<Utc>) -> AppResult<u64> {
    Ok(provider_events::Entity::delete_many()
        .filter(provider_events::Column::ReceivedAt.lt(now - chrono::Duration::days(30)))
        .exec(&ctx.db)
        .await?
        .rows_affected)
}
