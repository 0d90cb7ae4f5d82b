//! Reservations: a coach's time taken by a hold, then by the booking made
//! from it (the same row, so the time is never free in between). Two live
//! reservations of one coach never overlap: PostgreSQL refuses it with an
//! exclusion constraint, SQLite with triggers, both named
//! `reservations_no_overlap`. A reservation lapses by the clock
//! (`live_until_s`), so an unpaid hold frees its time without any job.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter};

use crate::error::AppResult;
use entity::reservations;

/// The constraint (PostgreSQL) and trigger (SQLite) refusing an overlap.
pub const NO_OVERLAP: &str = "reservations_no_overlap";

/// Time already taken on a coach's calendar in `[from, to)`: active
/// reservations that have not lapsed (lapsing is a time comparison).
pub async fn busy_intervals<C: ConnectionTrait>(
    db: &C,
    coach_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> AppResult<Vec<(DateTime<Utc>, DateTime<Utc>)>> {
    let now = Utc::now().timestamp();
    let rows = reservations::Entity::find()
        .filter(reservations::Column::CoachId.eq(coach_id))
        .filter(reservations::Column::Active.eq(true))
        .filter(
            Condition::any()
                .add(reservations::Column::LiveUntilS.is_null())
                .add(reservations::Column::LiveUntilS.gt(now)),
        )
        .filter(reservations::Column::StartS.lt(to.timestamp()))
        .filter(reservations::Column::EndS.gt(from.timestamp()))
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some((
                DateTime::from_timestamp(r.start_s, 0)?,
                DateTime::from_timestamp(r.end_s, 0)?,
            ))
        })
        .collect())
}

/// Frees lapsed reservations overlapping `[start, end)` so an insert can
/// take their place; the overlap rule then only sees live ones. Returns how
/// many it freed.
pub async fn clear_lapsed<C: ConnectionTrait>(
    db: &C,
    coach_id: &str,
    start: i64,
    end: i64,
    now: i64,
) -> AppResult<u64> {
    let res = reservations::Entity::update_many()
        .col_expr(reservations::Column::Active, Expr::value(false))
        .filter(reservations::Column::CoachId.eq(coach_id))
        .filter(reservations::Column::Active.eq(true))
        .filter(reservations::Column::LiveUntilS.lte(now))
        .filter(reservations::Column::StartS.lt(end))
        .filter(reservations::Column::EndS.gt(start))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}

/// The booking's time becomes free again.
pub async fn free_for_booking<C: ConnectionTrait>(db: &C, booking_id: &str) -> AppResult<()> {
    reservations::Entity::update_many()
        .col_expr(reservations::Column::Active, Expr::value(false))
        .filter(reservations::Column::BookingId.eq(booking_id))
        .exec(db)
        .await?;
    Ok(())
}
