//! Business rules. Nothing here imports axum or async-graphql: resolvers
//! check input, call these functions and map the result.

pub mod audit;
pub mod auth;
pub mod reference;
pub mod types;
