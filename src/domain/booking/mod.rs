//! Bookings: the state machine ([`status`]), prices and the refund policy
//! ([`policy`], pure), the lifecycle of one booking ([`lifecycle`]) and the
//! sweep the jobs run ([`sweep`]). Holds and reservations, which bookings
//! are made from, live in `domain::hold` and `domain::reservation`;
//! payments in `domain::payment`.

pub mod lifecycle;
pub mod policy;
pub mod status;
pub mod sweep;

pub use lifecycle::{
    BookingPage, CancelledBy, PaidOutcome, add_refunded, admin_refund, book_hold, cancel, complete,
    confirm_paid, get_for, lapse_in, my_bookings, publish_current, report_no_show,
};
pub use status::{BookingStatus, Event};
pub use sweep::sweep;
