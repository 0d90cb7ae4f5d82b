//! Clients of the outside world, each behind a domain seam: payment
//! providers (the development provider here; Stripe next), and later the
//! email service.

pub mod dev_payments;
