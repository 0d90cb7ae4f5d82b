//! The one integration-test binary. Each test starts the real app (the same
//! router `main` serves) on its own port and its own fresh database: a temp
//! SQLite file, or a new PostgreSQL database when `TEST_DATABASE_URL` is set.

// Test helpers panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod auth;
mod bookings;
mod cli;
mod clients;
mod coaches;
mod config;
mod crash;
mod emails;
mod error_tracking;
mod fake_expo;
mod fake_resend;
mod fake_stripe;
mod field_limits;
mod hardening;
mod helpers;
mod http;
mod instances;
mod limits;
mod live;
mod metrics;
mod migrations;
mod packages;
mod payments;
mod privacy;
mod push;
mod reviews;
mod search;
mod shutdown;
mod tokens;
