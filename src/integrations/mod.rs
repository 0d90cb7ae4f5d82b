//! Clients of the outside world, each behind a domain seam: payment
//! providers (Stripe, and the development provider for keyless
//! development), and later the email service.

pub mod dev_payments;
pub mod redis;
pub mod resend;
pub mod stripe;
