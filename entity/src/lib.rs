//! SeaORM entities: the shape of each table and nothing else. Business rules
//! live in `maestro_hub::domain`; API types in `maestro_hub::graphql`.

pub mod audit_log;
pub mod availability_rules;
pub mod bookings;
pub mod categories;
pub mod coach_categories;
pub mod coach_profiles;
pub mod disputes;
pub mod holds;
pub mod markets;
pub mod notification_preferences;
pub mod outbox;
pub mod package_purchases;
pub mod packages;
pub mod payments;
pub mod provider_events;
pub mod push_devices;
pub mod push_tickets;
pub mod refunds;
pub mod reservations;
pub mod reviews;
pub mod sessions;
pub mod sponsorship_plans;
pub mod sponsorships;
pub mod user_tokens;
pub mod users;
