//! The audit log: written with the same connection (so the same
//! transaction) as the action it records. Never given a secret.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};

use crate::error::AppResult;

/// The fixed set of audit actions (`api.md`, "Audit actions").
pub mod action {
    pub const LOGIN_SUCCEEDED: &str = "auth.login_succeeded";
    pub const LOGIN_FAILED: &str = "auth.login_failed";
    pub const REGISTERED: &str = "auth.registered";
    pub const PASSWORD_CHANGED: &str = "auth.password_changed";
    pub const PASSWORD_RESET: &str = "auth.password_reset";
    pub const EMAIL_VERIFIED: &str = "auth.email_verified";
    pub const REFRESH_REUSED: &str = "auth.refresh_reused";
    pub const RATE_LIMITED: &str = "auth.rate_limited";
    pub const LOGGED_OUT: &str = "auth.logged_out";
    pub const ADMIN_CREATED: &str = "admin.created";
    pub const COACH_SUBMITTED: &str = "coach.submitted";
    pub const COACH_APPROVED: &str = "coach.approved";
    pub const COACH_REJECTED: &str = "coach.rejected";
    pub const USER_SUSPENDED: &str = "user.suspended";
    pub const HOLD_EXPIRED: &str = "hold.expired";
    pub const BOOKING_CREATED: &str = "booking.created";
    pub const BOOKING_CONFIRMED: &str = "booking.confirmed";
    pub const BOOKING_CANCELLED: &str = "booking.cancelled";
    pub const BOOKING_COMPLETED: &str = "booking.completed";
    pub const BOOKING_NO_SHOW: &str = "booking.no_show";
    pub const PAYMENT_SUCCEEDED: &str = "payment.succeeded";
    pub const PAYMENT_FAILED: &str = "payment.failed";
    pub const PAYMENT_DISPUTED: &str = "payment.disputed";
    pub const PAYMENT_DISPUTE_CLOSED: &str = "payment.dispute_closed";
    pub const REFUND_CREATED: &str = "refund.created";
    pub const REFUND_FAILED: &str = "refund.failed";
    pub const PAYOUT_ONBOARDING_STARTED: &str = "payout.onboarding_started";
    pub const PAYOUTS_CHANGED: &str = "payout.status_changed";
    pub const CHECKOUT_FAILED: &str = "booking.checkout_failed";
    pub const REVIEW_CREATED: &str = "review.created";
    pub const REVIEW_RESPONDED: &str = "review.responded";
    pub const REVIEW_HIDDEN: &str = "review.hidden";
    pub const REVIEW_UNHIDDEN: &str = "review.unhidden";
    pub const EXPORT_DOWNLOADED: &str = "admin.exported";
    pub const ACCOUNT_EXPORTED: &str = "account.exported";
    pub const ACCOUNT_DELETED: &str = "account.deleted";
    pub const ACCOUNT_DELETION_STARTED: &str = "account.deletion_started";
    pub const PACKAGE_CREATED: &str = "package.created";
    pub const PACKAGE_ACTIVATED: &str = "package.activated";
    pub const PACKAGE_DEACTIVATED: &str = "package.deactivated";
    pub const PACKAGE_PURCHASE_CREATED: &str = "package.purchase_created";
    pub const PACKAGE_PURCHASED: &str = "package.purchased";
    pub const PACKAGE_PURCHASE_CANCELLED: &str = "package.purchase_cancelled";
    pub const PACKAGE_PURCHASE_REFUNDED: &str = "package.purchase_refunded";
    pub const PACKAGE_CREDIT_SPENT: &str = "package.credit_spent";
    pub const PACKAGE_CREDIT_RETURNED: &str = "package.credit_returned";
    pub const PACKAGE_EXPIRED: &str = "package.expired";
    pub const SPONSORSHIP_CREATED: &str = "sponsorship.created";
    pub const SPONSORSHIP_ACTIVATED: &str = "sponsorship.activated";
    pub const SPONSORSHIP_CANCELLED: &str = "sponsorship.cancelled";
    pub const SPONSORSHIP_REFUNDED: &str = "sponsorship.refunded";
    pub const SPONSORSHIP_EXPIRED: &str = "sponsorship.expired";
    pub const SPONSORSHIP_RESCHEDULED: &str = "sponsorship.rescheduled";
    pub const NOTIFICATIONS_CHANGED: &str = "notifications.changed";
    pub const PUSH_REGISTERED: &str = "push.registered";
    pub const PUSH_UNREGISTERED: &str = "push.unregistered";
    /// Expo said the app was uninstalled (or the token expired).
    pub const PUSH_DEVICE_GONE: &str = "push.device_gone";
}

/// One audit entry to write.
#[derive(Debug, Default, Clone)]
pub struct Entry<'a> {
    pub action: &'a str,
    pub actor_id: Option<&'a str>,
    pub target_type: Option<&'a str>,
    pub target_id: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub detail: Option<serde_json::Value>,
}

pub async fn record<C: ConnectionTrait>(db: &C, entry: Entry<'_>) -> AppResult<()> {
    entity::audit_log::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        action: Set(entry.action.to_string()),
        actor_id: Set(entry.actor_id.map(str::to_string)),
        target_type: Set(entry.target_type.map(str::to_string)),
        target_id: Set(entry.target_id.map(str::to_string)),
        ip: Set(entry.ip.map(str::to_string)),
        detail: Set(entry.detail.map(|d| d.to_string())),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// Records an entry that is itself the whole change (a refused sign-in, a
/// rate-limit hit), in a unit of work of its own.
pub async fn record_alone(ctx: &crate::domain::DomainCtx, entry: Entry<'_>) -> AppResult<()> {
    let uow = crate::domain::uow::UnitOfWork::begin(ctx).await?;
    uow.audit(entry).await?;
    uow.commit().await
}
