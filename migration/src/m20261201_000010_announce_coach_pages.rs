//! The search index now also holds each public coach's availability rules
//! and packages (a coach page is served from it), so changes to those
//! tables are announced on `coach_listings` too, with the coach id, like
//! the listing's own tables (migration 4). PostgreSQL only.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: [(&str, &str); 2] = [("availability_rules", "coach_id"), ("packages", "coach_id")];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
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
        Ok(())
    }
}
