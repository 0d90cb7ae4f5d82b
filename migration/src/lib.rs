//! Database migrations. Each runs on SQLite and PostgreSQL; one file per change.

pub use sea_orm_migration::prelude::*;

mod m20261121_000001_create_foundation;
mod m20261121_000002_create_coaches;
mod m20261122_000003_create_bookings;
mod m20261122_000004_announce_listing_changes;
mod m20261201_000005_generalise_payments;
mod m20261201_000006_stripe_payments;
mod m20261201_000007_email_outbox;
mod m20261201_000008_packages_sponsorships;
mod m20261201_000009_reviews_privacy;
mod m20261201_000010_announce_coach_pages;
mod m20261201_000011_push_notifications;
mod m20261202_000012_take_hold_function;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_create_foundation::Migration),
            Box::new(m20261121_000002_create_coaches::Migration),
            Box::new(m20261122_000003_create_bookings::Migration),
            Box::new(m20261122_000004_announce_listing_changes::Migration),
            Box::new(m20261201_000005_generalise_payments::Migration),
            Box::new(m20261201_000006_stripe_payments::Migration),
            Box::new(m20261201_000007_email_outbox::Migration),
            Box::new(m20261201_000008_packages_sponsorships::Migration),
            Box::new(m20261201_000009_reviews_privacy::Migration),
            Box::new(m20261201_000010_announce_coach_pages::Migration),
            Box::new(m20261201_000011_push_notifications::Migration),
            Box::new(m20261202_000012_take_hold_function::Migration),
        ]
    }
}
