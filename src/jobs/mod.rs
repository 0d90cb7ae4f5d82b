//! Background workers. Each loops until the stop signal, and never holds a
//! transaction across a sleep; what they change goes through the domain's
//! units of work, like any request.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::state::AppState;

pub fn spawn(state: AppState, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(housekeeping(state.clone(), stop.clone())),
        tokio::spawn(bookings(state.clone(), stop.clone())),
        tokio::spawn(crate::domain::listing::listen(
            state.domain.listings.clone(),
            state.domain.db.clone(),
            stop,
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
    }
}

/// Forgets idle rate-limit keys and deletes refresh tokens that expired
/// long ago (a spent token is kept until then, to detect reuse), and
/// webhook event ids older than any redelivery.
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
    }
}
