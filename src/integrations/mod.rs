//! Clients of the outside world, each behind a domain seam: payment
//! providers (Stripe, and the development provider for keyless
//! development), email (Resend), push notifications (Expo), Redis.

pub mod dev_payments;
pub mod expo;
pub mod redis;
pub mod resend;
pub mod stripe;
