//! The unit of work: one database transaction and what must happen once it
//! has committed.
//!
//! Every state change runs in one. Records that belong to the change (the
//! audit entry, and with the next features the outbox email and the
//! provider event id) are written through [`UnitOfWork::db`], so they
//! commit or roll back with it. Effects that leave the transaction (a
//! booking event for subscribers, a listing that search must re-read, a
//! refund to send to the payment provider) are collected and run by
//! [`UnitOfWork::commit`] only after the commit succeeded. Dropping a unit
//! of work without committing rolls the transaction back and runs none of
//! them.

use std::collections::BTreeSet;

use sea_orm::{DatabaseBackend, DatabaseTransaction};
use tokio::sync::OwnedMutexGuard;

use crate::domain::activity::{Activity, Counted, Happened};
use crate::domain::audit::{self, Entry};
use crate::domain::context::DomainCtx;
use crate::error::AppResult;
use crate::events::BookingEvent;
use entity::bookings;

/// What the committed change means for the search index.
#[derive(Debug, Default, PartialEq, Eq)]
enum Listings {
    #[default]
    Unchanged,
    Coaches(BTreeSet<String>),
    All,
}

/// Effects collected while the transaction is open.
#[derive(Default)]
struct Effects {
    /// (user, lowest valid session version) and (user, family) ended.
    users_ended: Vec<(String, i32)>,
    families_ended: Vec<(String, String)>,
    events: Vec<bookings::Model>,
    listings: Listings,
    refunds: Vec<String>,
    /// An outbox row was written: wake the worker once committed.
    emails: bool,
    /// Business counters to move once committed (behind a lock so that
    /// writing an audit entry needs only `&self`).
    counted: std::sync::Mutex<Vec<Counted>>,
}

pub struct UnitOfWork {
    /// Taken by [`UnitOfWork::commit`], or by `drop` to roll back.
    txn: Option<DatabaseTransaction>,
    ctx: DomainCtx,
    effects: Effects,
    /// SQLite: this process's turn to write ([`DomainCtx::writer`]), held
    /// until the commit, or until the rollback has run.
    turn: Option<OwnedMutexGuard<()>>,
}

impl Drop for UnitOfWork {
    /// Not committed: rolled back. Dropping a transaction only queues its
    /// rollback on the connection, so on SQLite the turn passes on once the
    /// rollback has run; the next writer would otherwise find the write
    /// lock still held and wait in SQLite's busy handler after all.
    fn drop(&mut self) {
        let (Some(txn), Some(turn)) = (self.txn.take(), self.turn.take()) else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = txn.rollback().await {
                    tracing::warn!(error = ?e, "rolling back a unit of work failed");
                }
                drop(turn);
            });
        }
    }
}

impl UnitOfWork {
    /// Begins a write transaction (on SQLite it takes the write lock up
    /// front, see [`crate::db::begin`]).
    pub async fn begin(ctx: &DomainCtx) -> AppResult<Self> {
        let turn = if ctx.db.get_database_backend() == DatabaseBackend::Sqlite {
            // A writer that waited as long as SQLite's busy timeout for its
            // turn goes on to `BEGIN IMMEDIATE` and SQLite's own wait (as
            // before there was a queue) rather than waiting without end.
            tokio::time::timeout(
                crate::db::SQLITE_BUSY_TIMEOUT,
                ctx.writer.clone().lock_owned(),
            )
            .await
            .ok()
        } else {
            None
        };
        Ok(UnitOfWork {
            txn: Some(crate::db::begin(&ctx.db).await?),
            ctx: ctx.clone(),
            effects: Effects::default(),
            turn,
        })
    }

    /// The domain's collaborators.
    pub fn ctx(&self) -> &DomainCtx {
        &self.ctx
    }

    /// The transaction: every statement of the change goes through it.
    pub fn db(&self) -> &DatabaseTransaction {
        match &self.txn {
            Some(txn) => txn,
            // Only `commit` (which consumes the unit) and `drop` take it.
            None => unreachable!("a unit of work's transaction is gone before its end"),
        }
    }

    /// Writes an audit entry inside the transaction.
    pub async fn audit(&self, entry: Entry<'_>) -> AppResult<()> {
        let counted = Activity::of_action(entry.action);
        audit::record(self.db(), entry).await?;
        self.count(counted);
        Ok(())
    }

    /// Counts something this change did in `/metrics`, once committed.
    pub fn happened(&self, what: Happened) {
        self.count(Some(Activity::of(what)));
    }

    fn count(&self, counted: Option<Counted>) {
        if let Some(c) = counted {
            let mut all = self
                .effects
                .counted
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            all.push(c);
        }
    }

    /// Tells subscribers about this booking state once committed.
    pub fn publish(&mut self, booking: bookings::Model) {
        self.effects.events.push(booking);
    }

    /// This coach's listing changed: search re-reads it once committed.
    pub fn listing_changed(&mut self, coach_id: &str) {
        match &mut self.effects.listings {
            Listings::All => {}
            Listings::Coaches(ids) => {
                ids.insert(coach_id.to_string());
            }
            l @ Listings::Unchanged => *l = Listings::Coaches(BTreeSet::from([coach_id.into()])),
        }
    }

    /// Every session of the user older than `valid_version` ends: open
    /// sockets refuse their next message and close.
    pub fn sessions_ended(&mut self, user_id: &str, valid_version: i32) {
        self.effects
            .users_ended
            .push((user_id.to_string(), valid_version));
    }

    /// One session family of the user ends (a logout).
    pub fn session_family_ended(&mut self, user_id: &str, family_id: &str) {
        self.effects
            .families_ended
            .push((user_id.to_string(), family_id.to_string()));
    }

    /// Listings changed in ways not worth naming one by one.
    pub fn all_listings_changed(&mut self) {
        self.effects.listings = Listings::All;
    }

    /// A refund row decided in this transaction, to send once committed
    /// (the refund job retries it if that fails).
    pub fn refund_decided(&mut self, refund_id: &str) {
        self.effects.refunds.push(refund_id.to_string());
    }

    /// An email was queued in this transaction (see `domain::email`).
    pub fn email_queued(&mut self) {
        self.effects.emails = true;
    }

    /// Commits, then runs the collected effects. An effect that fails is
    /// logged and left to its retrying job; the change itself stands.
    pub async fn commit(mut self) -> AppResult<()> {
        let (txn, turn) = (self.txn.take(), self.turn.take());
        let effects = std::mem::take(&mut self.effects);
        let ctx = self.ctx.clone();
        drop(self);
        let Some(txn) = txn else {
            return Err(crate::error::AppError::internal(
                "a unit of work without its transaction",
            ));
        };
        txn.commit().await?;
        drop(turn);
        ctx.activity.committed(
            &effects
                .counted
                .into_inner()
                .unwrap_or_else(|e| e.into_inner()),
        );
        // Before any event goes out, so no ended session receives it.
        for (user, version) in &effects.users_ended {
            ctx.revocations.user_sessions_ended(user, *version);
        }
        for (user, family) in &effects.families_ended {
            ctx.revocations.family_ended(user, family);
        }
        match effects.listings {
            Listings::Unchanged => {}
            Listings::Coaches(ids) => ids.iter().for_each(|id| ctx.listings.invalidate_coach(id)),
            Listings::All => ctx.listings.invalidate(),
        }
        for booking in effects.events {
            ctx.events.publish(BookingEvent::of(booking));
        }
        if effects.emails {
            ctx.outbox_wake.notify_one();
        }
        for id in effects.refunds {
            // Boxed: recording the provider's answer runs a unit of work too.
            let send = Box::pin(crate::domain::payment::execute_pending_refunds(
                &ctx,
                Some(&id),
            ));
            if let Err(e) = send.await {
                tracing::warn!(refund = %id, error = ?e, "refund will be retried by the worker");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use migration::MigratorTrait;
    use sea_orm::{ConnectionTrait, EntityTrait};

    use super::*;
    use crate::domain::auth::Auth;
    use crate::domain::listing::ListingIndex;
    use crate::domain::reference::ReferenceData;
    use crate::domain::{DomainCtx, Policy};
    use crate::events::InProcessBus;
    use crate::integrations::dev_payments::DevPaymentProvider;

    async fn ctx() -> DomainCtx {
        let db = crate::db::connect("sqlite::memory:", 1).await.unwrap();
        migration::Migrator::up(&db, None).await.unwrap();
        let reference = ReferenceData::load(&db).await.unwrap();
        let listings = Arc::new(ListingIndex::new(reference.clone()));
        // A loaded index has nothing pending.
        listings.snapshot(&db).await.unwrap();
        assert!(!listings.has_pending_changes());
        DomainCtx {
            auth: Auth::new(&[7u8; 32], Duration::from_secs(900))
                .await
                .unwrap(),
            reference,
            payments: Arc::new(DevPaymentProvider::new("http://127.0.0.1:8080")),
            events: Arc::new(InProcessBus::new()),
            listings,
            revocations: Arc::default(),
            mailer: Arc::new(crate::integrations::resend::LogMailer::default()),
            push: Arc::new(
                crate::integrations::expo::ExpoPush::new(
                    "http://127.0.0.1:9",
                    None,
                    Duration::from_secs(1),
                )
                .unwrap(),
            ),
            templates: Arc::new(crate::email::Templates::new().unwrap()),
            outbox_wake: Arc::default(),
            link_seal: Arc::new(crate::domain::email::LinkSeal::new(&[7u8; 32]).unwrap()),
            activity: Arc::new(crate::domain::activity::Activity::new().unwrap()),
            writer: Arc::default(),
            policy: Arc::new(Policy {
                hold_ttl: Duration::from_secs(600),
                min_booking_notice: Duration::from_secs(3600),
                platform_fee_bps: 1000,
                public_base_url: "http://127.0.0.1:8080".into(),
                booking_horizon: Duration::from_secs(180 * 86_400),
                payouts_required: false,
                reconcile_after: Duration::from_secs(600),
            }),
            db,
        }
    }

    fn booking() -> bookings::Model {
        let now = chrono::Utc::now();
        bookings::Model {
            id: "b1".into(),
            hold_id: "h1".into(),
            coach_id: "c1".into(),
            coach_user_id: "u2".into(),
            consumer_id: "u1".into(),
            start_at: now,
            end_at: now,
            start_s: now.timestamp(),
            status: "CONFIRMED".into(),
            price_minor: 100,
            currency: "USD".into(),
            platform_fee_minor: 10,
            coach_payout_minor: 90,
            payment_deadline: now,
            confirmed_at: None,
            reminded_24h: false,
            reminded_1h: false,
            meeting_url: None,
            cancellation_reason: None,
            cancelled_by: None,
            refunded_minor: 0,
            package_purchase_id: None,
            credit_returned: false,
            created_at: now,
            updated_at: now,
        }
    }

    fn audit_entry() -> Entry<'static> {
        Entry {
            action: "test.action",
            ..Default::default()
        }
    }

    async fn audit_rows(ctx: &DomainCtx) -> usize {
        entity::audit_log::Entity::find()
            .all(&ctx.db)
            .await
            .unwrap()
            .len()
    }

    #[tokio::test]
    async fn a_rolled_back_unit_of_work_runs_no_effect() {
        let ctx = ctx().await;
        let mut events = ctx.events.subscribe();
        let mut uow = UnitOfWork::begin(&ctx).await.unwrap();
        uow.audit(audit_entry()).await.unwrap();
        uow.publish(booking());
        uow.listing_changed("c1");
        uow.all_listings_changed();
        drop(uow);
        assert!(events.try_recv().is_err(), "no event after a rollback");
        assert!(!ctx.listings.has_pending_changes(), "no listing marked");
        assert_eq!(audit_rows(&ctx).await, 0, "the audit entry rolled back");
    }

    #[tokio::test]
    async fn a_committed_unit_of_work_runs_its_effects_after_the_commit() {
        let ctx = ctx().await;
        let mut events = ctx.events.subscribe();
        let mut uow = UnitOfWork::begin(&ctx).await.unwrap();
        uow.audit(audit_entry()).await.unwrap();
        uow.publish(booking());
        uow.listing_changed("c1");
        // Nothing leaves before the commit.
        assert!(events.try_recv().is_err());
        assert!(!ctx.listings.has_pending_changes());
        uow.commit().await.unwrap();
        assert_eq!(events.try_recv().unwrap().booking_id, "b1");
        assert!(ctx.listings.has_pending_changes());
        assert_eq!(audit_rows(&ctx).await, 1);
        // The connection is free again: the transaction really ended.
        ctx.db.execute_unprepared("SELECT 1").await.unwrap();
    }

    #[tokio::test]
    async fn sqlite_writers_take_turns_in_order_of_arrival() {
        let ctx = ctx().await;
        let first = UnitOfWork::begin(&ctx).await.unwrap();
        assert!(
            ctx.writer.try_lock().is_err(),
            "an open unit of work holds the turn"
        );
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for i in 0..3 {
            let (ctx, order) = (ctx.clone(), order.clone());
            waiting.push(tokio::spawn(async move {
                let uow = UnitOfWork::begin(&ctx).await.unwrap();
                order.lock().unwrap().push(i);
                uow.commit().await.unwrap();
            }));
            // Each queues before the next arrives.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            order.lock().unwrap().is_empty(),
            "nobody else writes meanwhile"
        );
        // Rolled back: the turn passes on.
        drop(first);
        for w in waiting {
            w.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2]);
        assert!(
            ctx.writer.try_lock().is_ok(),
            "the last commit gave the turn back"
        );
    }
}
