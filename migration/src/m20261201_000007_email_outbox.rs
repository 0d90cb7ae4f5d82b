//! Email and the account lifecycle:
//!
//! - `outbox`: emails to send, written in the transaction of the change
//!   they announce; `idempotency_key` is unique per logical email, so one
//!   is never queued twice; a worker leases a row (`locked_until`) while it
//!   sends it;
//! - `user_tokens`: email verification and password reset tokens, stored
//!   as SHA-256 only, single use, expiring;
//! - `users.timezone` (the times in a user's emails), `markets.timezone`
//!   (the default for the market's users);
//! - `bookings.confirmed_at`, so no reminder is sent for a time that had
//!   passed when the booking was confirmed, and a flag per reminder, set in
//!   the transaction that queues it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    Channel,
    Recipient,
    UserId,
    Template,
    Data,
    IdempotencyKey,
    Status,
    Attempts,
    NextAttemptAt,
    LockedUntil,
    LastError,
    ProviderRef,
    CreatedAt,
    SentAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum UserTokens {
    Table,
    Id,
    UserId,
    Purpose,
    TokenHash,
    ExpiresAt,
    UsedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Timezone,
}

#[derive(DeriveIden)]
enum Markets {
    Table,
    Code,
    Timezone,
}

#[derive(DeriveIden)]
enum Bookings {
    Table,
    ConfirmedAt,
    #[sea_orm(iden = "reminded_24h")]
    Reminded24h,
    #[sea_orm(iden = "reminded_1h")]
    Reminded1h,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .col(string(Outbox::Id).primary_key())
                    .col(string(Outbox::Channel))
                    .col(string(Outbox::Recipient))
                    .col(string_null(Outbox::UserId))
                    .col(string(Outbox::Template))
                    .col(text(Outbox::Data))
                    .col(string_uniq(Outbox::IdempotencyKey))
                    .col(string(Outbox::Status))
                    .col(integer(Outbox::Attempts).default(0))
                    .col(timestamp_with_time_zone(Outbox::NextAttemptAt))
                    .col(timestamp_with_time_zone_null(Outbox::LockedUntil))
                    .col(string_null(Outbox::LastError))
                    .col(string_null(Outbox::ProviderRef))
                    .col(timestamp_with_time_zone(Outbox::CreatedAt))
                    .col(timestamp_with_time_zone_null(Outbox::SentAt))
                    .col(timestamp_with_time_zone(Outbox::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("outbox_due_idx")
                    .table(Outbox::Table)
                    .col(Outbox::Status)
                    .col(Outbox::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UserTokens::Table)
                    .col(string(UserTokens::Id).primary_key())
                    .col(string(UserTokens::UserId))
                    .col(string(UserTokens::Purpose))
                    .col(string_uniq(UserTokens::TokenHash))
                    .col(timestamp_with_time_zone(UserTokens::ExpiresAt))
                    .col(timestamp_with_time_zone_null(UserTokens::UsedAt))
                    .col(timestamp_with_time_zone(UserTokens::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(UserTokens::Table, UserTokens::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("user_tokens_user_idx")
                    .table(UserTokens::Table)
                    .col(UserTokens::UserId)
                    .col(UserTokens::Purpose)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(ColumnDef::new(Users::Timezone).string().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Markets::Table)
                    .add_column(
                        ColumnDef::new(Markets::Timezone)
                            .string()
                            .not_null()
                            .default("UTC"),
                    )
                    .to_owned(),
            )
            .await?;
        for (code, tz) in [
            ("US", "America/New_York"),
            ("IN", "Asia/Kolkata"),
            ("GB", "Europe/London"),
        ] {
            manager
                .exec_stmt(
                    Query::update()
                        .table(Markets::Table)
                        .value(Markets::Timezone, tz)
                        .and_where(Expr::col(Markets::Code).eq(code))
                        .to_owned(),
                )
                .await?;
        }
        for mut col in [
            ColumnDef::new(Bookings::ConfirmedAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
            ColumnDef::new(Bookings::Reminded24h)
                .boolean()
                .not_null()
                .default(false)
                .to_owned(),
            ColumnDef::new(Bookings::Reminded1h)
                .boolean()
                .not_null()
                .default(false)
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Bookings::Table)
                        .add_column(&mut col)
                        .to_owned(),
                )
                .await?;
        }
        // Bookings confirmed before this migration: their last change is
        // the best known confirmation time.
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE bookings SET confirmed_at = updated_at \
                 WHERE status IN ('CONFIRMED', 'COMPLETED', 'NO_SHOW_CONSUMER', 'NO_SHOW_COACH')",
            )
            .await?;
        Ok(())
    }
}
