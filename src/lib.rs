//! Maestro Hub: the GraphQL backend of a coaching marketplace.
//!
//! - [`config`]: typed settings, validated once at start-up.
//! - [`app`]: shared state and the router `main` and the tests use.
//! - [`http`]: routes and middleware; [`graphql`]: the API.
//! - [`domain`]: business rules, free of HTTP and GraphQL.
//! - [`jobs`]: background workers.

pub mod app;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod events;
pub mod graphql;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod ratelimit;
pub mod seed;
