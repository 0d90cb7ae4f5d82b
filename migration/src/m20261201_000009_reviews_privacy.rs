//! Reviews written and answered, the admin console's lists, and leaving:
//!
//! - `reviews.hidden_reason`, `hidden_at`, `responded_at`: an admin's
//!   decision to hide a review, and when the coach answered;
//! - `users.deleted_at`: an account deleted at its owner's request (its
//!   personal fields are anonymised then; the row stays for the financial
//!   and audit records that name it);
//! - indexes for the audit log's filters (by actor, by target) and for a
//!   consumer's reviews (export and deletion).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Reviews {
    Table,
    ConsumerId,
    HiddenReason,
    HiddenAt,
    RespondedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    DeletedAt,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    ActorId,
    TargetId,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for mut col in [
            ColumnDef::new(Reviews::HiddenReason)
                .string()
                .null()
                .to_owned(),
            ColumnDef::new(Reviews::HiddenAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
            ColumnDef::new(Reviews::RespondedAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Reviews::Table)
                        .add_column(&mut col)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(
                        ColumnDef::new(Users::DeletedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("reviews_consumer_idx")
                    .table(Reviews::Table)
                    .col(Reviews::ConsumerId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("audit_log_actor_idx")
                    .table(AuditLog::Table)
                    .col(AuditLog::ActorId)
                    .col(AuditLog::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("audit_log_target_idx")
                    .table(AuditLog::Table)
                    .col(AuditLog::TargetId)
                    .col(AuditLog::Id)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
