//! The GraphQL API: roots assembled from one module per area, the shared
//! types, guards, and the request context a resolver sees.

pub mod admin;
pub mod auth;
pub mod booking;
pub mod coach;
pub mod commerce;
pub mod context;
pub mod cost;
pub mod documents;
pub mod errors;
pub mod guards;
pub mod loaders;
pub mod notifications;
pub mod privacy;
pub mod problems;
pub mod reference;
pub mod reviews;
pub mod scalars;
pub mod schema;
pub mod types;

pub use context::{AuthState, CtxExt, RequestCtx};
pub use schema::{AppSchema, build_schema, sdl};
