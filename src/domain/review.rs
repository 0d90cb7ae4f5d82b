//! Reviews as listed under a coach (newest first), the coach's rating
//! figures, and the review previews shared across requests. Writing reviews
//! comes with completed bookings.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, Statement};

use crate::error::{AppError, AppResult};
use entity::coach_profiles;

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

/// The reviews written for these bookings, by booking id (hidden ones are
/// not shown), in one statement.
pub async fn for_bookings<C: ConnectionTrait>(
    db: &C,
    booking_ids: &[String],
) -> AppResult<HashMap<String, ReviewRow>> {
    #[derive(FromQueryResult)]
    struct WithBooking {
        booking_id: String,
        id: String,
        coach_id: String,
        rating: i16,
        comment: String,
        coach_response: Option<String>,
        created_at: chrono::DateTime<chrono::Utc>,
        author_name: String,
    }
    if booking_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let backend = db.get_database_backend();
    let marks: Vec<String> = (1..=booking_ids.len())
        .map(|n| placeholder(backend, n))
        .collect();
    let sql = format!(
        "SELECT r.booking_id, r.id, r.coach_id, r.rating, r.comment, r.coach_response, r.created_at,
                u.name AS author_name
         FROM reviews r JOIN users u ON u.id = r.consumer_id
         WHERE r.booking_id IN ({}) AND r.hidden = {}",
        marks.join(", "),
        false_literal(backend),
    );
    let values: Vec<sea_orm::Value> = booking_ids.iter().map(|id| id.clone().into()).collect();
    let rows = WithBooking::find_by_statement(Statement::from_sql_and_values(backend, sql, values))
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.booking_id,
                ReviewRow {
                    id: r.id,
                    coach_id: r.coach_id,
                    rating: r.rating,
                    comment: r.comment,
                    coach_response: r.coach_response,
                    created_at: r.created_at,
                    author_name: r.author_name,
                },
            )
        })
        .collect())
}

/// The damped (Bayesian) average used for ranking, times 1,000,000: the
/// ratings are blended with `PRIOR_WEIGHT` imaginary reviews of
/// `PRIOR_MEAN`, so one 5-star review (4.09) does not beat fifty 4.8s (4.67).
pub const PRIOR_MEAN: f64 = 4.0;
pub const PRIOR_WEIGHT: f64 = 10.0;

pub fn rating_score(count: i64, sum: i64) -> i64 {
    let damped = (PRIOR_WEIGHT * PRIOR_MEAN + sum as f64) / (PRIOR_WEIGHT + count as f64);
    (damped * 1_000_000.0).round() as i64
}

/// Recomputes a coach's rating figures from visible reviews; called in the
/// transaction that adds, hides or removes a review.
pub async fn refresh_rating<C: ConnectionTrait>(db: &C, coach_id: &str) -> AppResult<()> {
    use sea_orm::QuerySelect;
    #[derive(FromQueryResult)]
    struct Totals {
        count: i64,
        sum: Option<i64>,
    }
    let totals = entity::reviews::Entity::find()
        .select_only()
        .column_as(Expr::col(entity::reviews::Column::Id).count(), "count")
        .column_as(
            Expr::col(entity::reviews::Column::Rating)
                .sum()
                .cast_as("bigint"),
            "sum",
        )
        .filter(entity::reviews::Column::CoachId.eq(coach_id))
        .filter(entity::reviews::Column::Hidden.eq(false))
        .into_model::<Totals>()
        .one(db)
        .await?
        .unwrap_or(Totals {
            count: 0,
            sum: None,
        });
    let sum = totals.sum.unwrap_or(0);
    coach_profiles::Entity::update_many()
        .col_expr(
            coach_profiles::Column::RatingCount,
            Expr::value(totals.count as i32),
        )
        .col_expr(coach_profiles::Column::RatingSum, Expr::value(sum))
        .col_expr(
            coach_profiles::Column::RatingScore,
            Expr::value(rating_score(totals.count, sum)),
        )
        .filter(coach_profiles::Column::Id.eq(coach_id))
        .exec(db)
        .await?;
    Ok(())
}

/// The newest `first` visible reviews of a coach: the key of a preview.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReviewKey {
    pub coach_id: String,
    pub first: u32,
}

/// When a preview was loaded, and what it held.
type CachedReviews = (Instant, Vec<ReviewRow>);

/// Review previews shared by all requests for a few seconds: every search
/// card shows a coach's newest reviews, and those change rarely. A new
/// review shows within `REVIEW_CACHE_TTL`.
#[derive(Clone, Default)]
pub struct ReviewCache(Arc<std::sync::Mutex<HashMap<ReviewKey, CachedReviews>>>);

pub const REVIEW_CACHE_TTL: Duration = Duration::from_secs(5);
/// Past this many entries the cache starts afresh, so memory stays bounded.
const REVIEW_CACHE_MAX: usize = 50_000;

impl ReviewCache {
    pub fn get(&self, key: &ReviewKey) -> Option<Vec<ReviewRow>> {
        let map = self.0.lock().ok()?;
        map.get(key)
            .filter(|(at, _)| at.elapsed() < REVIEW_CACHE_TTL)
            .map(|(_, rows)| rows.clone())
    }

    /// Drops a coach's previews, so a review written, answered or
    /// moderated shows on this instance's next request.
    pub fn forget(&self, coach_id: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.retain(|k, _| k.coach_id != coach_id);
        }
    }

    pub fn put(&self, entries: &HashMap<ReviewKey, Vec<ReviewRow>>) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() + entries.len() > REVIEW_CACHE_MAX {
                map.clear();
            }
            let now = Instant::now();
            for (k, v) in entries {
                map.insert(k.clone(), (now, v.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damped_rating_prefers_many_good_reviews() {
        assert!(rating_score(50, 240) > rating_score(1, 5));
        assert_eq!(rating_score(0, 0), 4_000_000);
    }
}

/// Writing, answering and moderating reviews. The coach's rating figures
/// change in the transaction of the review, under the coach row's lock, so
/// concurrent reviews leave them equal to a recomputation; the search
/// listing is marked stale in the same unit of work.
pub mod write {
    use chrono::Utc;
    use sea_orm::sea_query::Expr;
    use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};

    use super::{ReviewRow, refresh_rating};
    use crate::domain::audit::{Entry, action};
    use crate::domain::auth::CurrentUser;
    use crate::domain::booking::{self, BookingStatus};
    use crate::domain::coach;
    use crate::domain::context::DomainCtx;
    use crate::domain::package::lock_coach;
    use crate::domain::types::Role;
    use crate::domain::uow::UnitOfWork;
    use crate::error::{AppError, AppResult, on_constraint};
    use entity::reviews;

    pub const TEXT_MAX: usize = 2000;
    pub const REASON_MAX: usize = 500;

    /// Review text: trimmed, at most 2,000 characters, sanitised like a
    /// bio (a few formatting tags survive, scripts and attributes do not).
    fn text(field: &'static str, raw: &str, required: bool) -> AppResult<String> {
        let t = raw.trim();
        if t.chars().count() > TEXT_MAX {
            return Err(AppError::bad_input(
                field,
                format!("at most {TEXT_MAX} characters"),
            ));
        }
        let clean = coach::sanitize_bio(t);
        if required && clean.trim().is_empty() {
            return Err(AppError::bad_input(field, "must not be empty"));
        }
        Ok(clean)
    }

    async fn row(uow: &UnitOfWork, id: &str) -> AppResult<ReviewRow> {
        let r = reviews::Entity::find_by_id(id.to_string())
            .one(uow.db())
            .await?
            .ok_or(AppError::NotFound("review"))?;
        let author = entity::users::Entity::find_by_id(r.consumer_id.clone())
            .one(uow.db())
            .await?
            .map(|u| u.name)
            .unwrap_or_default();
        Ok(ReviewRow {
            id: r.id,
            coach_id: r.coach_id,
            rating: r.rating,
            comment: r.comment,
            coach_response: r.coach_response,
            created_at: r.created_at,
            author_name: author,
        })
    }

    fn find_id(review_id: &str) -> AppResult<String> {
        if review_id.len() > 64 {
            return Err(AppError::NotFound("review"));
        }
        Ok(review_id.to_string())
    }

    /// The consumer of a COMPLETED booking reviews it, once.
    pub async fn submit(
        ctx: &DomainCtx,
        user: &CurrentUser,
        booking_id: &str,
        rating: i32,
        comment: &str,
    ) -> AppResult<ReviewRow> {
        let b = booking::get_for(&ctx.db, user, booking_id).await?;
        if b.consumer_id != user.id {
            return Err(AppError::Forbidden(
                "only the consumer of a session reviews it",
            ));
        }
        if b.status != BookingStatus::Completed.as_str() {
            return Err(AppError::Conflict(
                "only a completed session can be reviewed".into(),
            ));
        }
        if !(1..=5).contains(&rating) {
            return Err(AppError::bad_input("rating", "must be 1 to 5"));
        }
        let comment = text("comment", comment, false)?;
        let taken = || AppError::Conflict("this session has been reviewed already".into());
        let mut uow = UnitOfWork::begin(ctx).await?;
        lock_coach(uow.db(), &b.coach_id).await?;
        let exists = reviews::Entity::find()
            .filter(reviews::Column::BookingId.eq(b.id.clone()))
            .one(uow.db())
            .await?;
        if exists.is_some() {
            return Err(taken());
        }
        let id = uuid::Uuid::now_v7().to_string();
        reviews::ActiveModel {
            id: Set(id.clone()),
            coach_id: Set(b.coach_id.clone()),
            consumer_id: Set(user.id.clone()),
            booking_id: Set(Some(b.id.clone())),
            rating: Set(rating as i16),
            comment: Set(comment),
            coach_response: Set(None),
            hidden: Set(false),
            hidden_reason: Set(None),
            hidden_at: Set(None),
            responded_at: Set(None),
            created_at: Set(Utc::now()),
        }
        .insert(uow.db())
        .await
        .map_err(on_constraint("reviews_booking_key", taken()))?;
        refresh_rating(uow.db(), &b.coach_id).await?;
        uow.listing_changed(&b.coach_id);
        uow.audit(Entry {
            action: action::REVIEW_CREATED,
            actor_id: Some(&user.id),
            target_type: Some("review"),
            target_id: Some(&id),
            ip: None,
            detail: Some(serde_json::json!({
                "booking": b.id, "coach": b.coach_id, "rating": rating,
            })),
        })
        .await?;
        let out = row(&uow, &id).await?;
        crate::domain::notify::review_received(&mut uow, &b, &out).await?;
        uow.commit().await?;
        Ok(out)
    }

    /// The reviewed coach answers, once.
    pub async fn respond(
        ctx: &DomainCtx,
        user: &CurrentUser,
        review_id: &str,
        response: &str,
    ) -> AppResult<ReviewRow> {
        let id = find_id(review_id)?;
        let review = reviews::Entity::find_by_id(id.clone())
            .one(&ctx.db)
            .await?
            .ok_or(AppError::NotFound("review"))?;
        let own = coach::find_by_user(&ctx.db, &user.id)
            .await?
            .is_some_and(|p| p.id == review.coach_id);
        if !own {
            return Err(AppError::NotFound("review"));
        }
        let response = text("response", response, true)?;
        let uow = UnitOfWork::begin(ctx).await?;
        let moved = reviews::Entity::update_many()
            .col_expr(reviews::Column::CoachResponse, Expr::value(response))
            .col_expr(reviews::Column::RespondedAt, Expr::value(Utc::now()))
            .filter(reviews::Column::Id.eq(id.clone()))
            .filter(reviews::Column::CoachResponse.is_null())
            .exec(uow.db())
            .await?;
        if moved.rows_affected != 1 {
            return Err(AppError::Conflict(
                "this review has been answered already".into(),
            ));
        }
        uow.audit(Entry {
            action: action::REVIEW_RESPONDED,
            actor_id: Some(&user.id),
            target_type: Some("review"),
            target_id: Some(&id),
            ..Default::default()
        })
        .await?;
        let out = row(&uow, &id).await?;
        uow.commit().await?;
        Ok(out)
    }

    /// An admin hides a review (it leaves the public list and the rating
    /// figures) or shows it again. Audited; a change to what it already is
    /// changes nothing.
    pub async fn set_hidden(
        ctx: &DomainCtx,
        admin: &CurrentUser,
        review_id: &str,
        hidden: bool,
        reason: Option<&str>,
    ) -> AppResult<(reviews::Model, ReviewRow)> {
        if admin.role != Role::Admin {
            return Err(AppError::Forbidden("only admins moderate reviews"));
        }
        let reason = match reason {
            Some(r) => Some(coach::text_field("reason", r, 1, REASON_MAX)?),
            None => None,
        };
        let id = find_id(review_id)?;
        let review = reviews::Entity::find_by_id(id.clone())
            .one(&ctx.db)
            .await?
            .ok_or(AppError::NotFound("review"))?;
        let mut uow = UnitOfWork::begin(ctx).await?;
        lock_coach(uow.db(), &review.coach_id).await?;
        let now = Utc::now();
        let moved = reviews::Entity::update_many()
            .col_expr(reviews::Column::Hidden, Expr::value(hidden))
            .col_expr(reviews::Column::HiddenReason, Expr::value(reason.clone()))
            .col_expr(
                reviews::Column::HiddenAt,
                Expr::value(hidden.then_some(now)),
            )
            .filter(reviews::Column::Id.eq(id.clone()))
            .filter(reviews::Column::Hidden.eq(!hidden))
            .exec(uow.db())
            .await?;
        if moved.rows_affected == 1 {
            refresh_rating(uow.db(), &review.coach_id).await?;
            uow.listing_changed(&review.coach_id);
            uow.audit(Entry {
                action: if hidden {
                    action::REVIEW_HIDDEN
                } else {
                    action::REVIEW_UNHIDDEN
                },
                actor_id: Some(&admin.id),
                target_type: Some("review"),
                target_id: Some(&id),
                ip: None,
                detail: Some(serde_json::json!({
                    "coach": review.coach_id, "reason": reason,
                })),
            })
            .await?;
        }
        let model = reviews::Entity::find_by_id(id.clone())
            .one(uow.db())
            .await?
            .ok_or(AppError::NotFound("review"))?;
        let out = row(&uow, &id).await?;
        uow.commit().await?;
        Ok((model, out))
    }
}
