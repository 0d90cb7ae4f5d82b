//! Push notifications and notification preferences:
//!
//! - `push_devices`: one row per Expo push token (unique), owned by the
//!   user who registered it last;
//! - `push_tickets`: Expo's ticket of each accepted push, kept until its
//!   receipt has been read (a `DeviceNotRegistered` receipt removes the
//!   device);
//! - `notification_preferences`: a user's choice per notification kind and
//!   channel, only where it differs from the default.
//!
//! Push messages themselves are outbox rows (`channel = 'push'`, one per
//! device), written in the transaction of the change they announce.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum PushDevices {
    Table,
    Id,
    UserId,
    Token,
    Platform,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum PushTickets {
    Table,
    Id,
    OutboxId,
    Token,
    CheckAfter,
    CreatedAt,
}

#[derive(DeriveIden)]
enum NotificationPreferences {
    Table,
    UserId,
    Kind,
    Channel,
    Enabled,
    UpdatedAt,
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
                    .table(PushDevices::Table)
                    .col(string(PushDevices::Id).primary_key())
                    .col(string(PushDevices::UserId))
                    .col(string_uniq(PushDevices::Token))
                    .col(string(PushDevices::Platform))
                    .col(timestamp_with_time_zone(PushDevices::CreatedAt))
                    .col(timestamp_with_time_zone(PushDevices::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(PushDevices::Table, PushDevices::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("push_devices_user_idx")
                    .table(PushDevices::Table)
                    .col(PushDevices::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PushTickets::Table)
                    .col(string(PushTickets::Id).primary_key())
                    .col(string(PushTickets::OutboxId))
                    .col(string(PushTickets::Token))
                    .col(timestamp_with_time_zone(PushTickets::CheckAfter))
                    .col(timestamp_with_time_zone(PushTickets::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("push_tickets_due_idx")
                    .table(PushTickets::Table)
                    .col(PushTickets::CheckAfter)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(NotificationPreferences::Table)
                    .col(string(NotificationPreferences::UserId))
                    .col(string(NotificationPreferences::Kind))
                    .col(string(NotificationPreferences::Channel))
                    .col(boolean(NotificationPreferences::Enabled))
                    .col(timestamp_with_time_zone(NotificationPreferences::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(NotificationPreferences::UserId)
                            .col(NotificationPreferences::Kind)
                            .col(NotificationPreferences::Channel),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                NotificationPreferences::Table,
                                NotificationPreferences::UserId,
                            )
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
