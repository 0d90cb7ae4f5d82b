//! A payment can pay for a booking, a package purchase or a sponsorship:
//! a `purpose` column names which, and exactly the link it names is set
//! (`payments_purpose_link`). Existing rows are booking payments.
//!
//! PostgreSQL alters the table in place. SQLite cannot drop a NOT NULL, so
//! the table is rebuilt the way SQLite documents: foreign keys off, copy,
//! drop, rename, check before commit, all in one transaction on one connection (one
//! script, so the pool cannot hand the statements to different
//! connections). `package_purchase_id` gets its foreign key with the table
//! it points to.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const PURPOSE_LINK: &str = "CONSTRAINT payments_purpose_link CHECK ( \
    (purpose = 'BOOKING' AND booking_id IS NOT NULL AND package_purchase_id IS NULL AND sponsorship_id IS NULL) \
    OR (purpose = 'PACKAGE_PURCHASE' AND package_purchase_id IS NOT NULL AND booking_id IS NULL AND sponsorship_id IS NULL) \
    OR (purpose = 'SPONSORSHIP' AND sponsorship_id IS NOT NULL AND booking_id IS NULL AND package_purchase_id IS NULL))";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            db.execute_unprepared(&format!(
                "ALTER TABLE payments ADD COLUMN purpose varchar NOT NULL DEFAULT 'BOOKING'; \
                 ALTER TABLE payments ALTER COLUMN purpose DROP DEFAULT; \
                 ALTER TABLE payments ALTER COLUMN booking_id DROP NOT NULL; \
                 ALTER TABLE payments ADD COLUMN package_purchase_id varchar NULL; \
                 ALTER TABLE payments ADD COLUMN sponsorship_id varchar NULL REFERENCES sponsorships (id); \
                 ALTER TABLE payments ADD {PURPOSE_LINK}; \
                 CREATE INDEX payments_package_purchase_idx ON payments (package_purchase_id); \
                 CREATE INDEX payments_sponsorship_idx ON payments (sponsorship_id)"
            ))
            .await?;
            return Ok(());
        }
        let rebuilt = db
            .execute_unprepared(&format!(
                "PRAGMA foreign_keys = OFF; \
             BEGIN IMMEDIATE; \
             CREATE TABLE payments_new ( \
               id varchar NOT NULL PRIMARY KEY, \
               purpose varchar NOT NULL, \
               booking_id varchar NULL UNIQUE REFERENCES bookings (id), \
               package_purchase_id varchar NULL, \
               sponsorship_id varchar NULL REFERENCES sponsorships (id), \
               status varchar NOT NULL, \
               amount_minor bigint NOT NULL, \
               currency varchar NOT NULL, \
               refunded_minor bigint NOT NULL DEFAULT 0, \
               provider varchar NOT NULL, \
               provider_ref varchar NULL, \
               checkout_url varchar NULL, \
               created_at timestamp_with_timezone_text NOT NULL, \
               updated_at timestamp_with_timezone_text NOT NULL, \
               {PURPOSE_LINK}); \
             INSERT INTO payments_new (id, purpose, booking_id, status, amount_minor, currency, \
               refunded_minor, provider, provider_ref, checkout_url, created_at, updated_at) \
             SELECT id, 'BOOKING', booking_id, status, amount_minor, currency, refunded_minor, \
               provider, provider_ref, checkout_url, created_at, updated_at FROM payments; \
             DROP TABLE payments; \
             ALTER TABLE payments_new RENAME TO payments; \
             CREATE INDEX payments_package_purchase_idx ON payments (package_purchase_id); \
             CREATE INDEX payments_sponsorship_idx ON payments (sponsorship_id); \
             SELECT CASE WHEN EXISTS (SELECT 1 FROM pragma_foreign_key_check) \
               THEN json('payments rebuild would break a reference') END; \
             COMMIT; \
             PRAGMA foreign_keys = ON;"
            ))
            .await;
        if let Err(e) = rebuilt {
            // Best effort: the statements above stop at the first error,
            // inside the transaction (the `json` call is how a script
            // aborts when the foreign key check finds a broken reference).
            let _ = db
                .execute_unprepared("ROLLBACK; PRAGMA foreign_keys = ON;")
                .await;
            return Err(e);
        }
        Ok(())
    }
}
