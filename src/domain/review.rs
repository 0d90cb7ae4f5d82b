//! Reviews as listed under a coach (newest first). Writing reviews comes
//! with completed bookings.

use sea_orm::{ConnectionTrait, FromQueryResult, Statement};

use crate::error::{AppError, AppResult};

/// A visible review with its author's name.
#[derive(Debug, Clone, FromQueryResult)]
pub struct ReviewRow {
    pub id: String,
    pub coach_id: String,
    pub rating: i16,
    pub comment: String,
    pub coach_response: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub author_name: String,
}

/// Placeholders differ: `$n` on PostgreSQL, `?` on SQLite.
pub fn placeholder(backend: sea_orm::DatabaseBackend, n: usize) -> String {
    match backend {
        sea_orm::DatabaseBackend::Postgres => format!("${n}"),
        _ => "?".to_string(),
    }
}

pub fn false_literal(backend: sea_orm::DatabaseBackend) -> &'static str {
    match backend {
        sea_orm::DatabaseBackend::Postgres => "false",
        _ => "0",
    }
}

/// A page after review `after` (ids are UUIDv7, so id order is time order).
pub async fn page<C: ConnectionTrait>(
    db: &C,
    coach_id: &str,
    limit: u32,
    after: &str,
) -> AppResult<Vec<ReviewRow>> {
    if after.len() > 64 {
        return Err(AppError::bad_input("after", "not a review cursor"));
    }
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT r.id, r.coach_id, r.rating, r.comment, r.coach_response, r.created_at, u.name AS author_name
         FROM reviews r JOIN users u ON u.id = r.consumer_id
         WHERE r.coach_id = {} AND r.hidden = {} AND r.id < {}
         ORDER BY r.id DESC LIMIT {}",
        placeholder(backend, 1),
        false_literal(backend),
        placeholder(backend, 2),
        placeholder(backend, 3),
    );
    Ok(ReviewRow::find_by_statement(Statement::from_sql_and_values(
        backend,
        sql,
        [coach_id.into(), after.into(), i64::from(limit).into()],
    ))
    .all(db)
    .await?)
}

/// The review written for a booking, if any (hidden ones are not shown).
pub async fn for_booking<C: ConnectionTrait>(
    db: &C,
    booking_id: &str,
) -> AppResult<Option<ReviewRow>> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT r.id, r.coach_id, r.rating, r.comment, r.coach_response, r.created_at, u.name AS author_name
         FROM reviews r JOIN users u ON u.id = r.consumer_id
         WHERE r.booking_id = {} AND r.hidden = {}",
        placeholder(backend, 1),
        false_literal(backend),
    );
    Ok(ReviewRow::find_by_statement(Statement::from_sql_and_values(
        backend,
        sql,
        [booking_id.into()],
    ))
    .one(db)
    .await?)
}
