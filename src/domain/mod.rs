//! Business rules. Nothing here imports axum or async-graphql: resolvers
//! check input, call these functions and map the result.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod availability;
pub mod booking;
pub mod coach;
pub mod listing;
pub mod payment;
pub mod reference;
pub mod review;
pub mod search;
pub mod types;
