//! Business counters for `/metrics`: holds, booking status changes,
//! payments and refunds by outcome. A unit of work counts what it did only
//! once it has committed, so a rolled-back change is never counted; most
//! figures follow from the audit entries the change writes anyway.

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

use crate::domain::audit::action;

/// What a committed unit of work did, beyond its audit entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Happened {
    HoldCreated,
    /// The provider took a refund (submitted or already settled).
    RefundAccepted,
    /// A refund attempt failed and will be retried.
    RefundRetrying,
    /// A payment failed for good (its checkout lapsed or was abandoned).
    PaymentFailed,
    /// One card attempt was declined; the payment may still succeed.
    PaymentDeclined,
}

pub struct Activity {
    holds: IntCounter,
    bookings: IntCounterVec,
    payments: IntCounterVec,
    refunds: IntCounterVec,
}

impl Activity {
    pub fn new() -> Result<Self, prometheus::Error> {
        Ok(Activity {
            holds: IntCounter::new("holds_created_total", "Holds put on a coach's slot")?,
            bookings: IntCounterVec::new(
                Opts::new(
                    "booking_changes_total",
                    "Booking status changes: created, confirmed, cancelled, completed, no_show",
                ),
                &["change"],
            )?,
            payments: IntCounterVec::new(
                Opts::new(
                    "payments_total",
                    "Payments by outcome: succeeded, failed (for good), declined (one card attempt), disputed, dispute_closed",
                ),
                &["outcome"],
            )?,
            refunds: IntCounterVec::new(
                Opts::new(
                    "refunds_total",
                    "Refunds by outcome: decided, accepted (by the provider), retrying, failed (given up)",
                ),
                &["outcome"],
            )?,
        })
    }

    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.holds.clone()))?;
        registry.register(Box::new(self.bookings.clone()))?;
        registry.register(Box::new(self.payments.clone()))?;
        registry.register(Box::new(self.refunds.clone()))?;
        Ok(())
    }

    /// The counter an audit action moves, if any (a fixed set of labels).
    pub(crate) fn of_action(action: &str) -> Option<Counted> {
        let (family, label) = match action {
            action::BOOKING_CREATED => (Family::Bookings, "created"),
            action::BOOKING_CONFIRMED => (Family::Bookings, "confirmed"),
            action::BOOKING_CANCELLED => (Family::Bookings, "cancelled"),
            action::BOOKING_COMPLETED => (Family::Bookings, "completed"),
            action::BOOKING_NO_SHOW => (Family::Bookings, "no_show"),
            action::PAYMENT_SUCCEEDED => (Family::Payments, "succeeded"),
            action::PAYMENT_DISPUTED => (Family::Payments, "disputed"),
            action::PAYMENT_DISPUTE_CLOSED => (Family::Payments, "dispute_closed"),
            action::REFUND_CREATED => (Family::Refunds, "decided"),
            action::REFUND_FAILED => (Family::Refunds, "failed"),
            _ => return None,
        };
        Some(Counted { family, label })
    }

    pub(crate) fn of(happened: Happened) -> Counted {
        let (family, label) = match happened {
            Happened::HoldCreated => (Family::Holds, ""),
            Happened::RefundAccepted => (Family::Refunds, "accepted"),
            Happened::RefundRetrying => (Family::Refunds, "retrying"),
            Happened::PaymentFailed => (Family::Payments, "failed"),
            Happened::PaymentDeclined => (Family::Payments, "declined"),
        };
        Counted { family, label }
    }

    /// Counts one thing a change did that committed on its own, outside a
    /// unit of work (a hold on PostgreSQL).
    pub(crate) fn happened(&self, what: Happened) {
        self.committed(&[Self::of(what)]);
    }

    /// Counts what a unit of work did, after its commit.
    pub(crate) fn committed(&self, counted: &[Counted]) {
        for c in counted {
            match c.family {
                Family::Holds => self.holds.inc(),
                Family::Bookings => self.bookings.with_label_values(&[c.label]).inc(),
                Family::Payments => self.payments.with_label_values(&[c.label]).inc(),
                Family::Refunds => self.refunds.with_label_values(&[c.label]).inc(),
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Family {
    Holds,
    Bookings,
    Payments,
    Refunds,
}

/// One count to add once committed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counted {
    family: Family,
    label: &'static str,
}
