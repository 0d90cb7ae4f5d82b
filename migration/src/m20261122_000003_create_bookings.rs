//! Holds, bookings, payments, refunds and the reservations under them.
//!
//! A reservation is a coach's time taken by a hold, and then by the booking
//! made from it (the same row, so the time stays reserved throughout). The
//! database refuses two overlapping active reservations of one coach:
//! PostgreSQL with an exclusion constraint, SQLite with triggers (it has one
//! writer at a time, so the check is atomic). Times are whole seconds since
//! the epoch, which both databases compare exactly.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Holds {
    Table,
    Id,
    CoachId,
    ConsumerId,
    StartAt,
    EndAt,
    ExpiresAt,
    Status,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Bookings {
    Table,
    Id,
    HoldId,
    CoachId,
    CoachUserId,
    ConsumerId,
    StartAt,
    EndAt,
    StartS,
    Status,
    PriceMinor,
    Currency,
    PlatformFeeMinor,
    CoachPayoutMinor,
    PaymentDeadline,
    MeetingUrl,
    CancellationReason,
    CancelledBy,
    RefundedMinor,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Payments {
    Table,
    Id,
    BookingId,
    Status,
    AmountMinor,
    Currency,
    RefundedMinor,
    Provider,
    ProviderRef,
    CheckoutUrl,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Refunds {
    Table,
    Id,
    PaymentId,
    AmountMinor,
    Status,
    Reason,
    ProviderRef,
    Attempts,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Reservations {
    Table,
    Id,
    CoachId,
    HoldId,
    BookingId,
    StartS,
    EndS,
    LiveUntilS,
    Active,
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

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Holds::Table)
                    .col(string(Holds::Id).primary_key())
                    .col(string(Holds::CoachId))
                    .col(string(Holds::ConsumerId))
                    .col(timestamp_with_time_zone(Holds::StartAt))
                    .col(timestamp_with_time_zone(Holds::EndAt))
                    .col(timestamp_with_time_zone(Holds::ExpiresAt))
                    .col(string(Holds::Status))
                    .col(timestamp_with_time_zone(Holds::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Holds::Table, Holds::CoachId)
                            .to(CoachProfiles::Table, CoachProfiles::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Holds::Table, Holds::ConsumerId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("holds_consumer_status_idx")
                    .table(Holds::Table)
                    .col(Holds::ConsumerId)
                    .col(Holds::Status)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Bookings::Table)
                    .col(string(Bookings::Id).primary_key())
                    .col(string_uniq(Bookings::HoldId))
                    .col(string(Bookings::CoachId))
                    .col(string(Bookings::CoachUserId))
                    .col(string(Bookings::ConsumerId))
                    .col(timestamp_with_time_zone(Bookings::StartAt))
                    .col(timestamp_with_time_zone(Bookings::EndAt))
                    .col(big_integer(Bookings::StartS))
                    .col(string(Bookings::Status))
                    .col(big_integer(Bookings::PriceMinor))
                    .col(string(Bookings::Currency))
                    .col(big_integer(Bookings::PlatformFeeMinor))
                    .col(big_integer(Bookings::CoachPayoutMinor))
                    .col(timestamp_with_time_zone(Bookings::PaymentDeadline))
                    .col(string_null(Bookings::MeetingUrl))
                    .col(text_null(Bookings::CancellationReason))
                    .col(string_null(Bookings::CancelledBy))
                    .col(big_integer(Bookings::RefundedMinor).default(0))
                    .col(timestamp_with_time_zone(Bookings::CreatedAt))
                    .col(timestamp_with_time_zone(Bookings::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Bookings::Table, Bookings::HoldId)
                            .to(Holds::Table, Holds::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Bookings::Table, Bookings::CoachId)
                            .to(CoachProfiles::Table, CoachProfiles::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Bookings::Table, Bookings::ConsumerId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            (
                "bookings_consumer_start_idx",
                vec![Bookings::ConsumerId, Bookings::StartS, Bookings::Id],
            ),
            (
                "bookings_coach_user_start_idx",
                vec![Bookings::CoachUserId, Bookings::StartS, Bookings::Id],
            ),
            ("bookings_status_idx", vec![Bookings::Status]),
        ] {
            let mut idx = Index::create().name(name).table(Bookings::Table).to_owned();
            for c in cols {
                idx.col(c);
            }
            manager.create_index(idx).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(Payments::Table)
                    .col(string(Payments::Id).primary_key())
                    .col(string_uniq(Payments::BookingId))
                    .col(string(Payments::Status))
                    .col(big_integer(Payments::AmountMinor))
                    .col(string(Payments::Currency))
                    .col(big_integer(Payments::RefundedMinor).default(0))
                    .col(string(Payments::Provider))
                    .col(string_null(Payments::ProviderRef))
                    .col(string_null(Payments::CheckoutUrl))
                    .col(timestamp_with_time_zone(Payments::CreatedAt))
                    .col(timestamp_with_time_zone(Payments::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Payments::Table, Payments::BookingId)
                            .to(Bookings::Table, Bookings::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Refunds::Table)
                    .col(string(Refunds::Id).primary_key())
                    .col(string(Refunds::PaymentId))
                    .col(big_integer(Refunds::AmountMinor))
                    .col(string(Refunds::Status))
                    .col(string(Refunds::Reason))
                    .col(string_null(Refunds::ProviderRef))
                    .col(integer(Refunds::Attempts).default(0))
                    .col(timestamp_with_time_zone(Refunds::CreatedAt))
                    .col(timestamp_with_time_zone(Refunds::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Refunds::Table, Refunds::PaymentId)
                            .to(Payments::Table, Payments::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("refunds_status_idx")
                    .table(Refunds::Table)
                    .col(Refunds::Status)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Reservations::Table)
                    .col(string(Reservations::Id).primary_key())
                    .col(string(Reservations::CoachId))
                    .col(string_uniq(Reservations::HoldId))
                    .col(string_null(Reservations::BookingId))
                    .col(big_integer(Reservations::StartS))
                    .col(big_integer(Reservations::EndS))
                    // NULL: live until cancelled (a paid booking); else free after this second.
                    .col(big_integer_null(Reservations::LiveUntilS))
                    .col(boolean(Reservations::Active).default(true))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Reservations::Table, Reservations::CoachId)
                            .to(CoachProfiles::Table, CoachProfiles::Id),
                    )
                    .check(Expr::col(Reservations::StartS).lt(Expr::col(Reservations::EndS)))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("reservations_coach_active_start_idx")
                    .table(Reservations::Table)
                    .col(Reservations::CoachId)
                    .col(Reservations::Active)
                    .col(Reservations::StartS)
                    .to_owned(),
            )
            .await?;

        let db = manager.get_connection();
        match manager.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => {
                db.execute_unprepared("CREATE EXTENSION IF NOT EXISTS btree_gist")
                    .await?;
                db.execute_unprepared(
                    "ALTER TABLE reservations ADD CONSTRAINT reservations_no_overlap \
                     EXCLUDE USING gist (coach_id WITH =, int8range(start_s, end_s) WITH &&) WHERE (active)",
                )
                .await?;
            }
            _ => {
                for (name, event) in [
                    (
                        "reservations_no_overlap_insert",
                        "BEFORE INSERT ON reservations",
                    ),
                    (
                        "reservations_no_overlap_update",
                        "BEFORE UPDATE OF active, start_s, end_s, coach_id ON reservations",
                    ),
                ] {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER {name} {event} FOR EACH ROW WHEN NEW.active \
                         AND EXISTS (SELECT 1 FROM reservations r WHERE r.coach_id = NEW.coach_id \
                         AND r.active AND r.id <> NEW.id AND r.start_s < NEW.end_s AND NEW.start_s < r.end_s) \
                         BEGIN SELECT RAISE(ABORT, 'reservations_no_overlap'); END"
                    ))
                    .await?;
                }
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Reservations::Table.into_iden(),
            Refunds::Table.into_iden(),
            Payments::Table.into_iden(),
            Bookings::Table.into_iden(),
            Holds::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
