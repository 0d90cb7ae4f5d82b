//! What coaches sell besides single sessions:
//!
//! - `package_purchases`: a consumer's purchase of a coach's package, with
//!   the credits it grants (`sessions_remaining`, never below zero nor
//!   above `sessions_total`: a check constraint holds it) and the price,
//!   fee and validity fixed when it was bought;
//! - `bookings.package_purchase_id`: the purchase whose credit paid for a
//!   booking, and `credit_returned` once a cancellation gave it back;
//! - the foreign key migration 5 left for `payments.package_purchase_id`
//!   (a constraint on PostgreSQL; SQLite cannot add one to a table, so two
//!   triggers refuse what the constraint would);
//! - on `sponsorships`: what was paid and for how long (copied from the
//!   plan when bought), the payment deadline, why one was cancelled, and
//!   when it last changed.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum PackagePurchases {
    Table,
    Id,
    PackageId,
    CoachId,
    ConsumerId,
    Status,
    SessionsTotal,
    SessionsRemaining,
    PriceMinor,
    Currency,
    PlatformFeeMinor,
    ValidityDays,
    PaymentDeadline,
    PaidAt,
    ExpiresAt,
    CancellationReason,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Packages {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum CoachProfiles {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Sponsorships {
    Table,
    PriceMinor,
    Currency,
    DurationDays,
    PaymentDeadline,
    CancellationReason,
    UpdatedAt,
}

const SQLITE_PAYMENT_PURCHASE_FK: &str = "\
CREATE TRIGGER payments_package_purchase_fk_insert BEFORE INSERT ON payments \
  WHEN NEW.package_purchase_id IS NOT NULL \
   AND NOT EXISTS (SELECT 1 FROM package_purchases WHERE id = NEW.package_purchase_id) \
  BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed'); END; \
CREATE TRIGGER payments_package_purchase_fk_update BEFORE UPDATE OF package_purchase_id ON payments \
  WHEN NEW.package_purchase_id IS NOT NULL \
   AND NOT EXISTS (SELECT 1 FROM package_purchases WHERE id = NEW.package_purchase_id) \
  BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed'); END;";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PackagePurchases::Table)
                    .col(string(PackagePurchases::Id).primary_key())
                    .col(string(PackagePurchases::PackageId))
                    .col(string(PackagePurchases::CoachId))
                    .col(string(PackagePurchases::ConsumerId))
                    .col(string(PackagePurchases::Status))
                    .col(integer(PackagePurchases::SessionsTotal))
                    .col(integer(PackagePurchases::SessionsRemaining))
                    .col(big_integer(PackagePurchases::PriceMinor))
                    .col(string(PackagePurchases::Currency))
                    .col(big_integer(PackagePurchases::PlatformFeeMinor))
                    .col(integer(PackagePurchases::ValidityDays))
                    .col(timestamp_with_time_zone(PackagePurchases::PaymentDeadline))
                    .col(timestamp_with_time_zone_null(PackagePurchases::PaidAt))
                    .col(timestamp_with_time_zone_null(PackagePurchases::ExpiresAt))
                    .col(string_null(PackagePurchases::CancellationReason))
                    .col(timestamp_with_time_zone(PackagePurchases::CreatedAt))
                    .col(timestamp_with_time_zone(PackagePurchases::UpdatedAt))
                    .check(Expr::cust(
                        "sessions_remaining >= 0 AND sessions_remaining <= sessions_total",
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .from(PackagePurchases::Table, PackagePurchases::PackageId)
                            .to(Packages::Table, Packages::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(PackagePurchases::Table, PackagePurchases::CoachId)
                            .to(CoachProfiles::Table, CoachProfiles::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(PackagePurchases::Table, PackagePurchases::ConsumerId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            (
                "package_purchases_consumer_idx",
                vec![PackagePurchases::ConsumerId, PackagePurchases::CreatedAt],
            ),
            (
                "package_purchases_status_idx",
                vec![PackagePurchases::Status, PackagePurchases::ExpiresAt],
            ),
            (
                "package_purchases_package_idx",
                vec![PackagePurchases::PackageId],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(PackagePurchases::Table);
            for c in cols {
                index.col(c);
            }
            manager.create_index(index.to_owned()).await?;
        }

        let db = manager.get_connection();
        // Adding a column with a reference is plain SQL on both databases.
        db.execute_unprepared(
            "ALTER TABLE bookings ADD COLUMN package_purchase_id varchar NULL \
             REFERENCES package_purchases (id)",
        )
        .await?;
        db.execute_unprepared(
            "ALTER TABLE bookings ADD COLUMN credit_returned boolean NOT NULL DEFAULT false",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX bookings_package_purchase_idx ON bookings (package_purchase_id)",
        )
        .await?;
        if manager.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            db.execute_unprepared(
                "ALTER TABLE payments ADD CONSTRAINT payments_package_purchase_fk \
                 FOREIGN KEY (package_purchase_id) REFERENCES package_purchases (id)",
            )
            .await?;
        } else {
            db.execute_unprepared(SQLITE_PAYMENT_PURCHASE_FK).await?;
        }

        for mut col in [
            ColumnDef::new(Sponsorships::PriceMinor)
                .big_integer()
                .not_null()
                .default(0)
                .to_owned(),
            ColumnDef::new(Sponsorships::Currency)
                .string()
                .not_null()
                .default("")
                .to_owned(),
            ColumnDef::new(Sponsorships::DurationDays)
                .integer()
                .not_null()
                .default(0)
                .to_owned(),
            ColumnDef::new(Sponsorships::PaymentDeadline)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
            ColumnDef::new(Sponsorships::CancellationReason)
                .string()
                .null()
                .to_owned(),
            ColumnDef::new(Sponsorships::UpdatedAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Sponsorships::Table)
                        .add_column(&mut col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
