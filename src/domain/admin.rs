//! Admin listings: newest first, keyset-paginated by id (UUIDv7, so id
//! order is creation order).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use crate::domain::coach::CoachStatus;
use crate::domain::search::{like_pattern, page_size};
use crate::domain::types::Role;
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
