//! The booking sweep the jobs run: it brings records in line with the
//! clock (which already freed lapsed time) and retries what must happen
//! after commits that failed to happen.

use chrono::Utc;

use crate::domain::booking::lifecycle;
use crate::domain::context::DomainCtx;
use crate::domain::{hold, package, payment, sponsorship};
use crate::error::AppResult;

/// Lapsed holds become EXPIRED, unpaid bookings past their deadline
/// CANCELLED, confirmed sessions nobody reported on COMPLETED 48 h after
/// their end; checkouts the provider failed to open and refunds it has not
/// confirmed are sent again, from their stored rows; payments whose webhook
/// never came are looked up at the provider. Package purchases and
/// sponsorships still unpaid at their deadline are cancelled, and those
/// past their end recorded EXPIRED.
/// Each booking changes in its own unit of work, so its event reaches
/// subscribers like any other change. Returns how many records changed.
/// One item failing (a lost race, a deadlock the database broke) is logged
/// and left to the next sweep; it never holds up the others.
pub async fn sweep(ctx: &DomainCtx) -> AppResult<usize> {
    let now = Utc::now();
    let mut changed = hold::expire_lapsed(ctx, now).await?;
    for b in lifecycle::overdue_unpaid(&ctx.db, now).await? {
        match lifecycle::lapse_unpaid(ctx, &b).await {
            Ok(moved) => changed += usize::from(moved),
            Err(e) => {
                tracing::warn!(booking = %b.id, error = ?e, "could not lapse; next sweep retries")
            }
        }
    }
    for b in lifecycle::unreported_ended(&ctx.db, now).await? {
        match lifecycle::auto_complete(ctx, &b).await {
            Ok(moved) => changed += usize::from(moved),
            Err(e) => {
                tracing::warn!(booking = %b.id, error = ?e, "could not complete; next sweep retries")
            }
        }
    }
    let steps = [
        (
            "reopening checkouts",
            lifecycle::reopen_checkouts(ctx, now).await,
        ),
        (
            "lapsing unpaid package purchases",
            package::lapse_overdue(ctx, now).await,
        ),
        (
            "lapsing unpaid sponsorships",
            sponsorship::lapse_overdue(ctx, now).await,
        ),
        ("expiring packages", package::expire_lapsed(ctx, now).await),
        (
            "expiring sponsorships",
            sponsorship::expire_lapsed(ctx, now).await,
        ),
        (
            "sending refunds",
            payment::execute_pending_refunds(ctx, None).await,
        ),
        (
            "reconciling payments",
            payment::events::reconcile(ctx, now).await,
        ),
    ];
    for (what, result) in steps {
        if let Err(e) = result {
            tracing::warn!(error = ?e, "sweep step failed: {what}; next sweep retries");
        }
    }
    Ok(changed)
}
