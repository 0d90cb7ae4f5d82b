//! Background workers. Each loops until the stop signal, and never holds a
//! transaction across a sleep; what they change goes through the domain's
//! units of work, like any request.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::state::AppState;

tokio::task_local! {
    /// Set while a background job runs: its statements are not counted as
    /// a request's (`AppState::statements`).
    pub static BACKGROUND: ();
}

pub fn spawn(state: AppState, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(BACKGROUND.scope((), housekeeping(state.clone(), stop.clone()))),
        tokio::spawn(BACKGROUND.scope((), bookings(state.clone(), stop.clone()))),
        tokio::spawn(BACKGROUND.scope((), outbox(state.clone(), stop.clone()))),
        tokio::spawn(BACKGROUND.scope(
            (),
            crate::domain::listing::listen(
                state.domain.listings.clone(),
                state.domain.db.clone(),
                stop,
            ),
        )),
    ]
}

/// Marks lapsed holds and unpaid bookings, completes sessions nobody
/// reported on, and retries refunds the provider has not confirmed. The
/// clock frees time at once; this only brings the records in line.
async fn bookings(state: AppState, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(15));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if let Err(err) = crate::domain::booking::sweep(&state.domain).await {
            tracing::warn!(error = ?err, "booking sweep failed; will retry");
        }
        let now = chrono::Utc::now();
        if let Err(err) = crate::domain::outbox::queue_reminders(&state.domain, now).await {
            tracing::warn!(error = ?err, "could not queue reminders; will retry");
        }
    }
}

/// Sends the outbox's emails and pushes: woken at once by a unit of work that queued
/// one, and every few seconds for retries that come due (and emails queued
/// by another instance).
async fn outbox(state: AppState, mut stop: watch::Receiver<bool>) {
    let wake = state.domain.outbox_wake.clone();
    loop {
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(3)) => {}
            _ = stop.changed() => return,
        }
        loop {
            // Small batches: a batch is sent well within its lease even at
            // Resend's default pace of 2 per second.
            match crate::domain::outbox::deliver_due(&state.domain, 10).await {
                Ok(done) => {
                    state.metrics.emails(&done);
                    if done.handled() == 0 {
                        break;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = ?err, "outbox pass failed; will retry");
                    break;
                }
            }
            if *stop.borrow() {
                return;
            }
        }
    }
}

/// Forgets idle rate-limit keys and deletes refresh tokens that expired
/// long ago (a spent token is kept until then, to detect reuse), and
/// webhook event ids older than any redelivery; reads push receipts and
/// queues the admins' weekly reports that are due.
async fn housekeeping(state: AppState, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        state.limiter.sweep();
        state.domain.revocations.prune();
        if let Err(err) = crate::domain::auth::purge_expired_sessions(&state.domain).await {
            tracing::warn!(error = ?err, "could not purge expired sessions");
        }
        let now = chrono::Utc::now();
        if let Err(err) = crate::domain::payment::events::prune_events(&state.domain, now).await {
            tracing::warn!(error = ?err, "could not prune old webhook event ids");
        }
        if let Err(err) = crate::domain::push::check_receipts(&state.domain, now).await {
            tracing::warn!(error = ?err, "push receipts not read; will retry");
        }
        match crate::domain::weekly_report::queue_due(&state.domain, now).await {
            Ok(n) if n > 0 => tracing::info!(reports = n, "weekly reports queued"),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = ?err, "weekly reports not queued; will retry"),
        }
    }
}
