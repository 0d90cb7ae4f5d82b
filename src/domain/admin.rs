//! Admin: suspension, and the admin listings (newest first,
//! keyset-paginated by id: UUIDv7, so id order is creation order).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use chrono::Utc;

use crate::domain::audit::{Entry, action};
use crate::domain::auth::{CurrentUser, end_all_sessions};
use crate::domain::coach::{self, CoachStatus};
use crate::domain::context::DomainCtx;
use crate::domain::search::{like_pattern, page_size};
use crate::domain::types::Role;
use crate::domain::uow::UnitOfWork;
use crate::error::{AppError, AppResult};
use entity::{coach_profiles, users};

pub struct IdPage<T> {
    pub items: Vec<T>,
    pub cursors: Vec<String>,
    pub has_next: bool,
    pub total_count: u64,
}

fn encode(kind: &str, id: &str) -> String {
    B64.encode(format!("{kind}:{id}"))
}

fn decode(kind: &str, raw: &str) -> AppResult<String> {
    let bad = || AppError::bad_input("after", "this cursor does not belong to this listing");
    let text = String::from_utf8(B64.decode(raw.trim()).map_err(|_| bad())?).map_err(|_| bad())?;
    let (k, id) = text.split_once(':').ok_or_else(bad)?;
    if k != kind || id.is_empty() || id.len() > 64 {
        return Err(bad());
    }
    Ok(id.to_string())
}

pub async fn coaches(
    db: &DatabaseConnection,
    status: Option<CoachStatus>,
    first: Option<i32>,
    after: Option<&str>,
) -> AppResult<IdPage<coach_profiles::Model>> {
    let limit = page_size(first)?;
    let mut cond = Condition::all();
    if let Some(s) = status {
        cond = cond.add(coach_profiles::Column::Status.eq(s.as_str()));
    }
    let mut q = coach_profiles::Entity::find().filter(cond.clone());
    if let Some(a) = after {
        q = q.filter(coach_profiles::Column::Id.lt(decode("coach", a)?));
    }
    let mut rows = q
        .order_by_desc(coach_profiles::Column::Id)
        .limit(limit + 1)
        .all(db)
        .await?;
    let has_next = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let total_count = coach_profiles::Entity::find()
        .filter(cond)
        .count(db)
        .await?;
    let cursors = rows.iter().map(|r| encode("coach", &r.id)).collect();
    Ok(IdPage {
        items: rows,
        cursors,
        has_next,
        total_count,
    })
}

pub async fn users(
    db: &DatabaseConnection,
    query: Option<&str>,
    role: Option<Role>,
    first: Option<i32>,
    after: Option<&str>,
) -> AppResult<IdPage<users::Model>> {
    let limit = page_size(first)?;
    let mut cond = Condition::all();
    if let Some(r) = role {
        cond = cond.add(users::Column::Role.eq(r.as_str()));
    }
    if let Some(q) = query.map(str::trim).filter(|q| !q.is_empty()) {
        if q.chars().count() > 100 {
            return Err(AppError::bad_input("query", "at most 100 characters"));
        }
        let pattern = like_pattern(q);
        let like = |c: users::Column| {
            Expr::expr(Func::lower(Expr::col(c))).like(LikeExpr::new(pattern.clone()).escape('\\'))
        };
        cond = cond.add(
            Condition::any()
                .add(like(users::Column::Email))
                .add(like(users::Column::Name)),
        );
    }
    let mut q = users::Entity::find().filter(cond.clone());
    if let Some(a) = after {
        q = q.filter(users::Column::Id.lt(decode("user", a)?));
    }
    let mut rows = q
        .order_by_desc(users::Column::Id)
        .limit(limit + 1)
        .all(db)
        .await?;
    let has_next = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let total_count = users::Entity::find().filter(cond).count(db).await?;
    let cursors = rows.iter().map(|r| encode("user", &r.id)).collect();
    Ok(IdPage {
        items: rows,
        cursors,
        has_next,
        total_count,
    })
}

/// Suspends a user: every token stops working at once (session version
/// bump) and a coach profile leaves search (status SUSPENDED).
pub async fn suspend_user(
    ctx: &DomainCtx,
    admin: &CurrentUser,
    user_id: &str,
    reason: &str,
    ip: Option<&str>,
) -> AppResult<users::Model> {
    let reason = coach::text_field("reason", reason, 3, 1000)?;
    if user_id == admin.id {
        return Err(AppError::Conflict("you cannot suspend yourself".into()));
    }
    let user = users::Entity::find_by_id(user_id.to_string())
        .one(&ctx.db)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    if user.suspended_at.is_some() {
        return Err(AppError::Conflict("the user is already suspended".into()));
    }
    let now = Utc::now();
    let mut uow = UnitOfWork::begin(ctx).await?;
    let txn = uow.db();
    let first = users::Entity::update_many()
        .col_expr(users::Column::SuspendedAt, Expr::value(now))
        .col_expr(users::Column::SuspensionReason, Expr::value(reason.clone()))
        .filter(users::Column::Id.eq(user_id))
        .filter(users::Column::SuspendedAt.is_null())
        .exec(txn)
        .await?;
    if first.rows_affected != 1 {
        // Another admin was quicker.
        return Err(AppError::Conflict("the user is already suspended".into()));
    }
    let valid = end_all_sessions(txn, user_id).await?;
    coach_profiles::Entity::update_many()
        .col_expr(
            coach_profiles::Column::Status,
            Expr::value(CoachStatus::Suspended.as_str()),
        )
        .col_expr(coach_profiles::Column::Published, Expr::value(false))
        .col_expr(coach_profiles::Column::UpdatedAt, Expr::value(now))
        .filter(coach_profiles::Column::UserId.eq(user_id))
        .exec(txn)
        .await?;
    uow.audit(Entry {
        action: action::USER_SUSPENDED,
        actor_id: Some(&admin.id),
        target_type: Some("user"),
        target_id: Some(user_id),
        ip,
        detail: Some(serde_json::json!({ "reason": reason })),
    })
    .await?;
    uow.sessions_ended(user_id, valid);
    // Whatever the user listed leaves search.
    if let Some(profile) = coach::find_by_user(uow.db(), user_id).await? {
        uow.listing_changed(&profile.id);
    }
    uow.commit().await?;
    users::Entity::find_by_id(user_id.to_string())
        .one(&ctx.db)
        .await?
        .ok_or(AppError::NotFound("user"))
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn admin_cursors_from_anyone(raw in ".{0,200}", b64 in "[A-Za-z0-9_-]{0,120}") {
            let _ = decode("user", &raw);
            if let Ok(id) = decode("coach", &b64) {
                prop_assert!(!id.is_empty() && id.len() <= 64);
            }
            let id = format!("{}", b64.len());
            prop_assert_eq!(decode("user", &encode("user", &id)).unwrap(), id);
        }
    }
}
