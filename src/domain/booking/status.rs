//! The booking state machine: statuses, what can happen to a booking, and
//! the one table of allowed transitions.

use crate::error::{AppError, AppResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingStatus {
    PendingPayment,
    Confirmed,
    Completed,
    Cancelled,
    NoShowConsumer,
    NoShowCoach,
}

impl BookingStatus {
    pub const ALL: [BookingStatus; 6] = [
        BookingStatus::PendingPayment,
        BookingStatus::Confirmed,
        BookingStatus::Completed,
        BookingStatus::Cancelled,
        BookingStatus::NoShowConsumer,
        BookingStatus::NoShowCoach,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::PendingPayment => "PENDING_PAYMENT",
            BookingStatus::Confirmed => "CONFIRMED",
            BookingStatus::Completed => "COMPLETED",
            BookingStatus::Cancelled => "CANCELLED",
            BookingStatus::NoShowConsumer => "NO_SHOW_CONSUMER",
            BookingStatus::NoShowCoach => "NO_SHOW_COACH",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.as_str() == s)
    }

    /// How a client-facing message names the status.
    fn describe(self) -> &'static str {
        match self {
            BookingStatus::PendingPayment => "awaiting payment",
            BookingStatus::Confirmed => "confirmed",
            BookingStatus::Completed => "completed",
            BookingStatus::Cancelled => "cancelled",
            BookingStatus::NoShowConsumer | BookingStatus::NoShowCoach => "reported as a no-show",
        }
    }
}

/// What happens to a booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    PaymentSucceeded,
    PaymentExpired,
    Cancel,
    Complete,
    ConsumerNoShow,
    CoachNoShow,
}

impl Event {
    fn describe(self) -> &'static str {
        match self {
            Event::PaymentSucceeded => "be paid",
            Event::PaymentExpired => "lapse unpaid",
            Event::Cancel => "be cancelled",
            Event::Complete => "be completed",
            Event::ConsumerNoShow | Event::CoachNoShow => "be reported as a no-show",
        }
    }
}

/// The whole transition table. Anything not listed is refused.
pub fn next(from: BookingStatus, event: Event) -> AppResult<BookingStatus> {
    use BookingStatus as S;
    use Event as E;
    match (from, event) {
        (S::PendingPayment, E::PaymentSucceeded) => Ok(S::Confirmed),
        (S::PendingPayment, E::PaymentExpired) => Ok(S::Cancelled),
        (S::PendingPayment, E::Cancel) | (S::Confirmed, E::Cancel) => Ok(S::Cancelled),
        (S::Confirmed, E::Complete) => Ok(S::Completed),
        (S::Confirmed, E::ConsumerNoShow) => Ok(S::NoShowConsumer),
        (S::Confirmed, E::CoachNoShow) => Ok(S::NoShowCoach),
        (from, event) => Err(AppError::Conflict(format!(
            "a booking that is {} cannot {}",
            from.describe(),
            event.describe()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BookingStatus as S;

    #[test]
    fn every_transition() {
        let allowed = [
            (S::PendingPayment, Event::PaymentSucceeded, S::Confirmed),
            (S::PendingPayment, Event::PaymentExpired, S::Cancelled),
            (S::PendingPayment, Event::Cancel, S::Cancelled),
            (S::Confirmed, Event::Cancel, S::Cancelled),
            (S::Confirmed, Event::Complete, S::Completed),
            (S::Confirmed, Event::ConsumerNoShow, S::NoShowConsumer),
            (S::Confirmed, Event::CoachNoShow, S::NoShowCoach),
        ];
        let events = [
            Event::PaymentSucceeded,
            Event::PaymentExpired,
            Event::Cancel,
            Event::Complete,
            Event::ConsumerNoShow,
            Event::CoachNoShow,
        ];
        for from in S::ALL {
            for e in events {
                let want = allowed
                    .iter()
                    .find(|(f, ev, _)| *f == from && *ev == e)
                    .map(|t| t.2);
                match (next(from, e), want) {
                    (Ok(to), Some(w)) => assert_eq!(to, w),
                    (Err(AppError::Conflict(_)), None) => {}
                    (got, want) => panic!(
                        "{from:?} + {e:?}: got {:?}, want {want:?}",
                        got.map_err(|e| e.code())
                    ),
                }
            }
        }
    }

    #[test]
    fn refusals_speak_plainly() {
        let Err(AppError::Conflict(msg)) = next(S::PendingPayment, Event::Complete) else {
            panic!("expected a conflict");
        };
        assert_eq!(
            msg,
            "a booking that is awaiting payment cannot be completed"
        );
        assert!(!msg.contains("PENDING_PAYMENT"));
    }
}
