//! HTTP: every route in `router.rs`, every middleware layer in
//! `middleware.rs`, and the handlers behind them.

pub mod dev_checkout;
pub mod exports;
pub mod graphql;
pub mod health;
pub mod middleware;
pub mod playground;
pub mod router;
pub mod server;
pub mod webhooks;
pub mod ws;
