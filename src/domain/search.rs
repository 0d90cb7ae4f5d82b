//! Coach search: filters, sorts and keyset pagination.
//!
//! Each sort orders by a key that ends in the unique id, and a cursor holds
//! that key, so a page starts strictly after the last row seen: rows added
//! or removed elsewhere never make a page skip or repeat one. The cursor
//! names its sort (another sort refuses it) and, for RELEVANCE, the instant
//! "sponsored" was judged at, so every page of one listing agrees on it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr, Query, SimpleExpr};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, Order, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};

use crate::domain::coach::CoachStatus;
use crate::domain::reference::ReferenceData;
use crate::error::{AppError, AppResult};
use entity::coach_profiles::{self, Column as C};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sort {
    Relevance,
    Rating,
    PriceLow,
    PriceHigh,
    Newest,
}

#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub query: Option<String>,
    pub category_slug: Option<String>,
    pub market_code: Option<String>,
    pub min_rating: Option<f64>,
    pub max_hourly_rate_minor: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Cursor {
    s: Sort,
    /// Sort key values, ending with the id.
    k: Vec<serde_json::Value>,
    /// Unix milliseconds the sponsored flag is judged at.
    t: i64,
}

pub struct Page {
    pub coaches: Vec<coach_profiles::Model>,
    pub cursors: Vec<String>,
    pub has_next: bool,
    pub total_count: u64,
}

pub const DEFAULT_PAGE: u64 = 20;
pub const MAX_PAGE: u64 = 100;

pub fn page_size(first: Option<i32>) -> AppResult<u64> {
    match first {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE as i32).contains(&n) => Ok(n as u64),
        Some(_) => Err(AppError::bad_input("first", "first is 1 to 100")),
    }
}

/// Escapes LIKE wildcards so `%`, `_` and `\` match themselves.
pub fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

fn sponsored_expr(as_of: DateTime<Utc>) -> SimpleExpr {
    Expr::case(Expr::col(C::SponsoredUntil).gt(as_of), 1)
        .finally(0)
        .into()
}

/// The sort key expressions, in order, with their direction.
fn key(sort: Sort, as_of: DateTime<Utc>) -> (Vec<SimpleExpr>, Order) {
    let col = |c: C| Expr::col((coach_profiles::Entity, c));
    match sort {
        Sort::Relevance => (
            vec![sponsored_expr(as_of), col(C::RatingScore), col(C::Id)],
            Order::Desc,
        ),
        Sort::Rating => (vec![col(C::RatingScore), col(C::Id)], Order::Desc),
        Sort::PriceLow => (vec![col(C::HourlyRateMinor), col(C::Id)], Order::Asc),
        Sort::PriceHigh => (vec![col(C::HourlyRateMinor), col(C::Id)], Order::Desc),
        Sort::Newest => (vec![col(C::Id)], Order::Desc),
    }
}

fn key_values(
    sort: Sort,
    m: &coach_profiles::Model,
    as_of: DateTime<Utc>,
) -> Vec<serde_json::Value> {
    use serde_json::json;
    let sponsored = i64::from(m.sponsored_until.is_some_and(|u| u > as_of));
    match sort {
        Sort::Relevance => vec![json!(sponsored), json!(m.rating_score), json!(m.id)],
        Sort::Rating => vec![json!(m.rating_score), json!(m.id)],
        Sort::PriceLow | Sort::PriceHigh => vec![json!(m.hourly_rate_minor), json!(m.id)],
        Sort::Newest => vec![json!(m.id)],
    }
}

fn encode_cursor(c: &Cursor) -> String {
    B64.encode(serde_json::to_vec(c).unwrap_or_default())
}

fn decode_cursor(raw: &str, sort: Sort) -> AppResult<Cursor> {
    let bad = || AppError::bad_input("after", "this cursor does not belong to this listing");
    let bytes = B64.decode(raw.trim()).map_err(|_| bad())?;
    let c: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let expected_len = match sort {
        Sort::Relevance => 3,
        Sort::Rating | Sort::PriceLow | Sort::PriceHigh => 2,
        Sort::Newest => 1,
    };
    if c.s != sort || c.k.len() != expected_len {
        return Err(bad());
    }
    // Every key is an integer but the last, which is the id.
    let (last, ints) = c.k.split_last().ok_or_else(bad)?;
    if !last.is_string() || ints.iter().any(|v| !v.is_i64()) {
        return Err(bad());
    }
    Ok(c)
}

fn cursor_values(c: &Cursor) -> Vec<SimpleExpr> {
    c.k.iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Expr::val(s.clone()),
            other => Expr::val(other.as_i64().unwrap_or_default()),
        })
        .collect()
}

/// The conditions every listing shares: public profiles only, plus filters.
fn base_condition(filter: &Filter, reference: &ReferenceData) -> AppResult<Condition> {
    let mut cond = Condition::all()
        .add(C::Status.eq(CoachStatus::Approved.as_str()))
        .add(C::Published.eq(true));
    if let Some(code) = filter
        .market_code
        .as_deref()
        .filter(|c| !c.trim().is_empty())
    {
        match reference.market_by_code(code) {
            Some(m) => cond = cond.add(C::MarketId.eq(m.id.clone())),
            None => return Err(AppError::bad_input("marketCode", "unknown market")),
        }
    }
    if let Some(slug) = filter
        .category_slug
        .as_deref()
        .filter(|c| !c.trim().is_empty())
    {
        let Some(category) = reference.category_by_slug(slug.trim()) else {
            return Err(AppError::bad_input("categorySlug", "unknown category"));
        };
        cond = cond.add(
            C::Id.in_subquery(
                Query::select()
                    .column(entity::coach_categories::Column::CoachId)
                    .from(entity::coach_categories::Entity)
                    .and_where(entity::coach_categories::Column::CategoryId.eq(category.id.clone()))
                    .to_owned(),
            ),
        );
    }
    if let Some(q) = filter
        .query
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty())
    {
        if q.chars().count() > 100 {
            return Err(AppError::bad_input("query", "at most 100 characters"));
        }
        if q.chars().any(char::is_control) {
            return Err(AppError::bad_input(
                "query",
                "must not contain control characters",
            ));
        }
        let pattern = like_pattern(q);
        let like = |c: C| {
            Expr::expr(Func::lower(Expr::col((coach_profiles::Entity, c))))
                .like(LikeExpr::new(pattern.clone()).escape('\\'))
        };
        cond = cond.add(
            Condition::any()
                .add(like(C::DisplayName))
                .add(like(C::Headline))
                .add(like(C::Bio)),
        );
    }
    if let Some(min) = filter.min_rating {
        if !(0.0..=5.0).contains(&min) || min.is_nan() {
            return Err(AppError::bad_input("minRating", "minRating is 0 to 5"));
        }
        // Integer arithmetic on both databases: sum * 100 >= min * 100 * count.
        let min_x100 = (min * 100.0).round() as i64;
        cond = cond.add(C::RatingCount.gt(0)).add(
            Expr::col(C::RatingSum)
                .mul(100)
                .gte(Expr::col(C::RatingCount).mul(min_x100)),
        );
    }
    if let Some(max) = filter.max_hourly_rate_minor {
        if max <= 0 {
            return Err(AppError::bad_input(
                "maxHourlyRateMinor",
                "must be greater than 0",
            ));
        }
        cond = cond.add(C::HourlyRateMinor.lte(max));
    }
    Ok(cond)
}

pub async fn search<Db: ConnectionTrait>(
    db: &Db,
    reference: &ReferenceData,
    filter: &Filter,
    sort: Sort,
    first: Option<i32>,
    after: Option<&str>,
) -> AppResult<Page> {
    let limit = page_size(first)?;
    let cursor = after.map(|a| decode_cursor(a, sort)).transpose()?;
    let as_of = match &cursor {
        Some(c) => DateTime::from_timestamp_millis(c.t)
            .ok_or(AppError::bad_input("after", "bad cursor"))?,
        None => Utc::now(),
    };
    let cond = base_condition(filter, reference)?;
    let (exprs, order) = key(sort, as_of);
    let mut select = coach_profiles::Entity::find().filter(cond.clone());
    if let Some(c) = &cursor {
        let lhs = Expr::tuple(exprs.clone());
        let rhs = Expr::tuple(cursor_values(c));
        select = select.filter(match order {
            Order::Asc => lhs.gt(rhs),
            _ => lhs.lt(rhs),
        });
    }
    for e in exprs {
        select = select.order_by(e, order.clone());
    }
    let mut rows = select.limit(limit + 1).all(db).await?;
    let has_next = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let total_count = coach_profiles::Entity::find()
        .filter(cond)
        .count(db)
        .await?;
    let cursors = rows
        .iter()
        .map(|m| {
            encode_cursor(&Cursor {
                s: sort,
                k: key_values(sort, m, as_of),
                t: as_of.timestamp_millis(),
            })
        })
        .collect();
    Ok(Page {
        coaches: rows,
        cursors,
        has_next,
        total_count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_are_plain() {
        assert_eq!(like_pattern("50%_Off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(like_pattern("O'Brien"), "%o'brien%");
    }

    #[test]
    fn cursors_belong_to_their_sort() {
        let c = Cursor {
            s: Sort::Rating,
            k: vec![serde_json::json!(4_000_000), serde_json::json!("id")],
            t: 0,
        };
        let raw = encode_cursor(&c);
        assert_eq!(decode_cursor(&raw, Sort::Rating).unwrap(), c);
        assert!(decode_cursor(&raw, Sort::PriceLow).is_err());
        assert!(decode_cursor(&raw, Sort::Newest).is_err());
        assert!(decode_cursor("garbage!", Sort::Rating).is_err());
        let forged = B64.encode(br#"{"s":"Rating","k":["x","id"],"t":0}"#);
        assert!(decode_cursor(&forged, Sort::Rating).is_err());
    }
}
