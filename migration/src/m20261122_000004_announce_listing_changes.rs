//! Announces every change to a coach's listing (`coach_profiles`,
//! `coach_categories`) on the `coach_listings` channel, so each server
//! instance can drop its in-memory search index at once, whoever wrote the
//! change. PostgreSQL only: SQLite is written by one process, which marks
//! its own index stale.
//!
//! Statement triggers: one notification per statement, and PostgreSQL folds
//! identical notifications of one transaction into one, sent on commit.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: [&str; 2] = ["coach_profiles", "coach_categories"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE FUNCTION notify_coach_listings() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN PERFORM pg_notify('coach_listings', ''); RETURN NULL; END $$",
        )
        .await?;
        for table in TABLES {
            db.execute_unprepared(&format!(
                "CREATE TRIGGER {table}_announce AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE \
                 ON {table} FOR EACH STATEMENT EXECUTE FUNCTION notify_coach_listings()"
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        for table in TABLES {
            db.execute_unprepared(&format!(
                "DROP TRIGGER IF EXISTS {table}_announce ON {table}"
            ))
            .await?;
        }
        db.execute_unprepared("DROP FUNCTION IF EXISTS notify_coach_listings()")
            .await?;
        Ok(())
    }
}
