//! SeaORM entities: the shape of each table and nothing else. Business rules
//! live in `maestro_hub::domain`; API types in `maestro_hub::graphql`.

pub mod audit_log;
pub mod categories;
pub mod markets;
pub mod sessions;
pub mod users;
