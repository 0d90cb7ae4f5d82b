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

use sea_orm::DatabaseTransaction;

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
    events: Vec<bookings::Model>,
    listings: Listings,
    refunds: Vec<String>,
}

pub struct UnitOfWork {
    txn: DatabaseTransaction,
    ctx: DomainCtx,
    effects: Effects,
}

impl UnitOfWork {
    /// Begins a write transaction (on SQLite it takes the write lock up
    /// front, see [`crate::db::begin`]).
    pub async fn begin(ctx: &DomainCtx) -> AppResult<Self> {
        Ok(UnitOfWork {
            txn: crate::db::begin(&ctx.db).await?,
            ctx: ctx.clone(),
            effects: Effects::default(),
        })
    }

    /// The transaction: every statement of the change goes through it.
    pub fn db(&self) -> &DatabaseTransaction {
        &self.txn
    }

    /// Writes an audit entry inside the transaction.
    pub async fn audit(&self, entry: Entry<'_>) -> AppResult<()> {
        audit::record(&self.txn, entry).await
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

    /// Listings changed in ways not worth naming one by one.
    pub fn all_listings_changed(&mut self) {
        self.effects.listings = Listings::All;
    }

    /// A refund row decided in this transaction, to send once committed
    /// (the refund job retries it if that fails).
    pub fn refund_decided(&mut self, refund_id: &str) {
        self.effects.refunds.push(refund_id.to_string());
    }

    /// Commits, then runs the collected effects. An effect that fails is
    /// logged and left to its retrying job; the change itself stands.
    pub async fn commit(self) -> AppResult<()> {
        let UnitOfWork { txn, ctx, effects } = self;
        txn.commit().await?;
        match effects.listings {
            Listings::Unchanged => {}
            Listings::Coaches(ids) => ids.iter().for_each(|id| ctx.listings.invalidate_coach(id)),
            Listings::All => ctx.listings.invalidate(),
        }
        for booking in effects.events {
            ctx.events.publish(BookingEvent { booking });
        }
        for id in effects.refunds {
            if let Err(e) = crate::domain::payment::execute_pending_refunds(
                &ctx.db,
                ctx.payments.as_ref(),
                Some(&id),
            )
            .await
            {
                tracing::warn!(refund = %id, error = ?e, "refund will be retried by the worker");
            }
        }
        Ok(())
    }
}
