//! Maestro Hub: the GraphQL backend of a coaching marketplace.
//!
//! - [`config`]: typed settings, validated once at start-up.
//! - [`app`]: the composition root: builds everything, serves it.
//! - [`state`]: what requests and jobs share.
//! - [`http`]: routes and middleware; [`graphql`]: the API.
//! - [`domain`]: business rules, free of HTTP and GraphQL.
//! - [`integrations`]: clients of the outside world behind domain seams.
//! - [`jobs`]: background workers.

pub mod app;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod email;
pub mod error;
pub mod events;
pub mod graphql;
pub mod http;
pub mod integrations;
pub mod jobs;
pub mod metrics;
pub mod ratelimit;
pub mod seed;
pub mod state;
pub mod telemetry;

/// The git revision this binary was built from (`unknown` without git).
pub const GIT_REVISION: &str = env!("MAESTRO_GIT_REVISION");
