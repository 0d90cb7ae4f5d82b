//! Business rules. Nothing here knows about HTTP or GraphQL: resolvers,
//! jobs and webhooks check input, call these functions with a
//! [`DomainCtx`] and map the result. Every state change runs in a
//! [`UnitOfWork`](uow::UnitOfWork).

pub mod account;
pub mod activity;
pub mod admin;
pub mod audit;
pub mod auth;
pub mod availability;
pub mod booking;
pub mod coach;
pub mod context;
pub mod email;
pub mod hold;
pub mod listing;
pub mod notify;
pub mod outbox;
pub mod package;
pub mod payment;
pub mod payout;
pub mod preferences;
pub mod privacy;
pub mod push;
pub mod reference;
pub mod reservation;
pub mod review;
pub mod revocation;
pub mod search;
pub mod sponsorship;
pub mod types;
pub mod uow;
pub mod weekly_report;

pub use context::{DomainCtx, Policy};
