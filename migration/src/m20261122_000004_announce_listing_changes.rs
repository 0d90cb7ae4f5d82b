//! Announces every change to a coach's listing (`coach_profiles`,
//! `coach_categories`) on the `coach_listings` channel, with the coach id
//! as payload, so each server instance can refresh that coach in its
//! in-memory search index at once, whoever wrote the change. A `TRUNCATE`
//! announces an empty payload: everything changed. PostgreSQL only: SQLite
//! is written by one process, which tells its own index.
//!
//! Notifications are sent on commit (none for a rolled-back change), and
//! PostgreSQL folds a transaction's identical ones into one.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Each table with the column holding the coach id.
const TABLES: [(&str, &str); 2] = [("coach_profiles", "id"), ("coach_categories", "coach_id")];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE FUNCTION announce_coach_listing() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN \
               IF TG_LEVEL = 'STATEMENT' THEN PERFORM pg_notify('coach_listings', ''); \
               ELSIF TG_OP = 'DELETE' THEN PERFORM pg_notify('coach_listings', to_jsonb(OLD) ->> TG_ARGV[0]); \
               ELSE PERFORM pg_notify('coach_listings', to_jsonb(NEW) ->> TG_ARGV[0]); \
               END IF; \
               RETURN NULL; \
             END $$",
        )
        .await?;
        for (table, column) in TABLES {
            db.execute_unprepared(&format!(
                "CREATE TRIGGER {table}_announce AFTER INSERT OR UPDATE OR DELETE ON {table} \
                 FOR EACH ROW EXECUTE FUNCTION announce_coach_listing('{column}')"
            ))
            .await?;
            db.execute_unprepared(&format!(
                "CREATE TRIGGER {table}_announce_truncate AFTER TRUNCATE ON {table} \
                 FOR EACH STATEMENT EXECUTE FUNCTION announce_coach_listing('{column}')"
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
        for (table, _) in TABLES {
            for suffix in ["announce", "announce_truncate"] {
                db.execute_unprepared(&format!(
                    "DROP TRIGGER IF EXISTS {table}_{suffix} ON {table}"
                ))
                .await?;
            }
        }
        db.execute_unprepared("DROP FUNCTION IF EXISTS announce_coach_listing()")
            .await?;
        Ok(())
    }
}
