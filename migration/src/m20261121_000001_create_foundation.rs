//! Users, refresh-token sessions, markets, categories and the audit log, with
//! the reference data (markets and categories) every environment needs.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Markets {
    Table,
    Id,
    Code,
    Name,
    Currency,
}

#[derive(DeriveIden)]
enum Categories {
    Table,
    Id,
    Slug,
    Name,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    PasswordHash,
    Name,
    Role,
    EmailVerified,
    MarketId,
    SessionVersion,
    SuspendedAt,
    SuspensionReason,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    UserId,
    FamilyId,
    TokenHash,
    SessionVersion,
    CreatedAt,
    ExpiresAt,
    UsedAt,
    RevokedAt,
    Ip,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    Action,
    ActorId,
    TargetType,
    TargetId,
    Ip,
    Detail,
    CreatedAt,
}

/// Markets with fixed ids, so that every environment agrees on them.
const MARKETS: &[(&str, &str, &str, &str)] = &[
    (
        "0193a000-0000-7000-8000-000000000001",
        "US",
        "United States",
        "USD",
    ),
    ("0193a000-0000-7000-8000-000000000002", "IN", "India", "INR"),
    (
        "0193a000-0000-7000-8000-000000000003",
        "GB",
        "United Kingdom",
        "GBP",
    ),
];

const CATEGORIES: &[(&str, &str)] = &[
    ("math", "Mathematics"),
    ("science", "Science"),
    ("english", "English & Writing"),
    ("languages", "Foreign Languages"),
    ("coding", "Coding & Robotics"),
    ("test-prep", "Test Preparation"),
    ("piano", "Piano"),
    ("guitar", "Guitar"),
    ("singing", "Singing"),
    ("art", "Art & Drawing"),
    ("chess", "Chess"),
    ("football", "Football"),
    ("basketball", "Basketball"),
    ("tennis", "Tennis"),
    ("swimming", "Swimming"),
    ("dance", "Dance"),
    ("martial-arts", "Martial Arts"),
    ("public-speaking", "Public Speaking"),
    ("study-skills", "Study Skills"),
    ("wellbeing", "Wellbeing & Mindfulness"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Markets::Table)
                    .col(string(Markets::Id).primary_key())
                    .col(string_uniq(Markets::Code))
                    .col(string(Markets::Name))
                    .col(string(Markets::Currency))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Categories::Table)
                    .col(string(Categories::Id).primary_key())
                    .col(string_uniq(Categories::Slug))
                    .col(string(Categories::Name))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(string(Users::Id).primary_key())
                    .col(string(Users::Email))
                    .col(string(Users::PasswordHash))
                    .col(string(Users::Name))
                    .col(string(Users::Role))
                    .col(boolean(Users::EmailVerified).default(false))
                    .col(string_null(Users::MarketId))
                    .col(integer(Users::SessionVersion).default(0))
                    .col(timestamp_with_time_zone_null(Users::SuspendedAt))
                    .col(text_null(Users::SuspensionReason))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .col(timestamp_with_time_zone(Users::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Users::Table, Users::MarketId)
                            .to(Markets::Table, Markets::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // Emails are unique whatever their letter case; the expression index
        // works the same on SQLite and PostgreSQL.
        let db = manager.get_connection();
        db.execute_unprepared("CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email))")
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("users_role_created_idx")
                    .table(Users::Table)
                    .col(Users::Role)
                    .col(Users::CreatedAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(string(Sessions::Id).primary_key())
                    .col(string(Sessions::UserId))
                    .col(string(Sessions::FamilyId))
                    .col(string_uniq(Sessions::TokenHash))
                    .col(integer(Sessions::SessionVersion))
                    .col(timestamp_with_time_zone(Sessions::CreatedAt))
                    .col(timestamp_with_time_zone(Sessions::ExpiresAt))
                    .col(timestamp_with_time_zone_null(Sessions::UsedAt))
                    .col(timestamp_with_time_zone_null(Sessions::RevokedAt))
                    .col(string_null(Sessions::Ip))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Sessions::Table, Sessions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("sessions_user_idx", Sessions::UserId),
            ("sessions_family_idx", Sessions::FamilyId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Sessions::Table)
                        .col(col)
                        .to_owned(),
                )
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .col(string(AuditLog::Id).primary_key())
                    .col(string(AuditLog::Action))
                    .col(string_null(AuditLog::ActorId))
                    .col(string_null(AuditLog::TargetType))
                    .col(string_null(AuditLog::TargetId))
                    .col(string_null(AuditLog::Ip))
                    .col(text_null(AuditLog::Detail))
                    .col(timestamp_with_time_zone(AuditLog::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("audit_log_action_created_idx")
                    .table(AuditLog::Table)
                    .col(AuditLog::Action)
                    .col(AuditLog::CreatedAt)
                    .to_owned(),
            )
            .await?;

        let mut markets = Query::insert()
            .into_table(Markets::Table)
            .columns([Markets::Id, Markets::Code, Markets::Name, Markets::Currency])
            .to_owned();
        for (id, code, name, currency) in MARKETS {
            markets.values_panic([
                (*id).into(),
                (*code).into(),
                (*name).into(),
                (*currency).into(),
            ]);
        }
        manager.exec_stmt(markets).await?;

        let mut categories = Query::insert()
            .into_table(Categories::Table)
            .columns([Categories::Id, Categories::Slug, Categories::Name])
            .to_owned();
        for (i, (slug, name)) in CATEGORIES.iter().enumerate() {
            let id = format!("0193a000-0000-7000-8001-{:012}", i + 1);
            categories.values_panic([id.into(), (*slug).into(), (*name).into()]);
        }
        manager.exec_stmt(categories).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuditLog::Table.into_iden(),
            Sessions::Table.into_iden(),
            Users::Table.into_iden(),
            Categories::Table.into_iden(),
            Markets::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
