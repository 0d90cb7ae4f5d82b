//! Coach search: filters, sorts and keyset pagination.
//!
//! Each sort orders by a key that ends in the unique id, and a cursor holds
//! that key, so a page starts strictly after the last row seen: rows added
//! or removed elsewhere never make a page skip or repeat one. The cursor
//! names its sort (another sort refuses it) and, for RELEVANCE, the instant
//! "sponsored" was judged at, so every page of one listing agrees on it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};

use crate::domain::listing::{ListingIndex, ListingRow};
use crate::domain::reference::ReferenceData;
use crate::error::{AppError, AppResult};
use entity::coach_profiles;

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
    /// Leave out coaches who cannot be paid yet (with a real payment
    /// provider, a coach needs payouts to take bookings).
    pub payouts_required: bool,
    /// The signed-in caller's market: where a price filter or sort applies
    /// when `market_code` is not given (prices are never compared across
    /// currencies).
    pub caller_market_id: Option<String>,
}

/// Text as search compares it: lower case, accents and other combining
/// marks removed (`"Zoë"` and `"zoe"` are the same).
pub fn fold(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    text.nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
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
    /// Category ids of each listed coach, from the index (saves a query).
    pub categories: HashMap<String, Vec<String>>,
    pub coaches: Vec<Arc<coach_profiles::Model>>,
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

fn encode_cursor(c: &Cursor) -> String {
    B64.encode(serde_json::to_vec(c).unwrap_or_default())
}

fn decode_cursor(raw: &str, sort: Sort) -> AppResult<Cursor> {
    let bad = || AppError::bad_input("after", "this cursor does not belong to this listing");
    let bytes = B64.decode(raw.trim()).map_err(|_| bad())?;
    let c: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if c.s != sort || c.k.len() != int_keys(sort) + 1 {
        return Err(bad());
    }
    // Every key is an integer but the last, which is the id.
    let (last, ints) = c.k.split_last().ok_or_else(bad)?;
    if !last.is_string() || ints.iter().any(|v| !v.is_i64()) {
        return Err(bad());
    }
    Ok(c)
}

/// Where a row stands in a listing: the sort key, compared as a tuple.
/// Sorts with fewer than three integer keys leave the rest at 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key<'a>([i64; 3], &'a str);

/// How many integer keys precede the id in `sort`'s key.
fn int_keys(sort: Sort) -> usize {
    match sort {
        Sort::Relevance => 3,
        Sort::Rating | Sort::PriceLow | Sort::PriceHigh => 1,
        Sort::Newest => 0,
    }
}

/// RELEVANCE: sponsored first, then how the text matched (see
/// [`Matcher::text_rank`]), then the damped rating.
fn key_of(sort: Sort, row: &ListingRow, as_of: i64, text_rank: i64) -> Key<'_> {
    let sponsored = i64::from(row.sponsored_until_s.is_some_and(|u| u > as_of));
    let ints = match sort {
        Sort::Relevance => [sponsored, text_rank, row.rating_score],
        Sort::Rating => [row.rating_score, 0, 0],
        Sort::PriceLow | Sort::PriceHigh => [row.hourly_rate_minor, 0, 0],
        Sort::Newest => [0, 0, 0],
    };
    Key(ints, &row.id)
}

fn key_json(sort: Sort, k: &Key) -> Vec<serde_json::Value> {
    k.0[..int_keys(sort)]
        .iter()
        .map(|v| serde_json::json!(v))
        .chain(std::iter::once(serde_json::json!(k.1)))
        .collect()
}

fn key_from_cursor(c: &Cursor) -> Key<'_> {
    let (last, ints) = c.k.split_last().unwrap_or((&serde_json::Value::Null, &[]));
    let mut out = [0; 3];
    for (slot, v) in out.iter_mut().zip(ints) {
        *slot = v.as_i64().unwrap_or_default();
    }
    Key(out, last.as_str().unwrap_or_default())
}

fn ascending(sort: Sort) -> bool {
    sort == Sort::PriceLow
}

/// The public coaches matching `filter`, one page in `sort` order.
///
/// Filtering, ordering and the page's profiles all come from the in-memory
/// [`ListingIndex`]: a snapshot of public profiles that every change of a
/// listing marks stale (see its module), so a page runs no statement.
pub async fn search(
    db: &DatabaseConnection,
    index: &Arc<ListingIndex>,
    reference: &ReferenceData,
    filter: &Filter,
    sort: Sort,
    first: Option<i32>,
    after: Option<&str>,
) -> AppResult<Page> {
    let limit = page_size(first)? as usize;
    let cursor = after.map(|a| decode_cursor(a, sort)).transpose()?;
    let as_of = match &cursor {
        Some(c) => DateTime::from_timestamp_millis(c.t)
            .ok_or(AppError::bad_input("after", "bad cursor"))?,
        None => Utc::now(),
    };
    let matcher = Matcher::new(filter, sort, reference)?;
    let snapshot = index.snapshot(db).await?;
    let as_of_s = as_of.timestamp();
    let after_key = cursor.as_ref().map(key_from_cursor);
    let mut total_count = 0u64;
    let mut candidates: Vec<(Key, &ListingRow)> = Vec::new();
    let rows = snapshot.candidates(matcher.market_id.as_deref(), matcher.category);
    for row in rows.filter(|r| matcher.matches(r)) {
        total_count += 1;
        let k = key_of(sort, row, as_of_s, matcher.text_rank(row));
        let beyond = match &after_key {
            None => true,
            Some(a) if ascending(sort) => k > *a,
            Some(a) => k < *a,
        };
        if beyond {
            candidates.push((k, row));
        }
    }
    let order = |a: &(Key, &ListingRow), b: &(Key, &ListingRow)| {
        if ascending(sort) {
            a.0.cmp(&b.0)
        } else {
            b.0.cmp(&a.0)
        }
    };
    // Only the first `limit + 1` need ordering.
    if candidates.len() > limit + 1 {
        candidates.select_nth_unstable_by(limit, order);
        candidates.truncate(limit + 1);
    }
    candidates.sort_by(order);
    let has_next = candidates.len() > limit;
    candidates.truncate(limit);
    let mut page = Page {
        categories: HashMap::with_capacity(candidates.len()),
        coaches: Vec::with_capacity(candidates.len()),
        cursors: Vec::with_capacity(candidates.len()),
        has_next,
        total_count,
    };
    for (k, row) in &candidates {
        let ids = row
            .categories
            .iter()
            .filter_map(|p| reference.categories().get(usize::from(*p)))
            .map(|c| c.id.clone())
            .collect();
        page.categories.insert(row.id.clone(), ids);
        page.coaches.push(row.profile.clone());
        page.cursors.push(encode_cursor(&Cursor {
            s: sort,
            k: key_json(sort, k),
            t: as_of.timestamp_millis(),
        }));
    }
    Ok(page)
}

/// A validated filter, ready to test rows.
struct Matcher {
    market_id: Option<String>,
    category: Option<u16>,
    text: Option<String>,
    /// Categories whose name or slug holds the text.
    text_categories: Vec<u16>,
    min_rating_x100: Option<i64>,
    max_rate: Option<i64>,
    payouts_required: bool,
}

impl Matcher {
    fn new(filter: &Filter, sort: Sort, reference: &ReferenceData) -> AppResult<Self> {
        if filter.max_hourly_rate_minor.is_some_and(|m| m <= 0) {
            return Err(AppError::bad_input(
                "maxHourlyRateMinor",
                "must be greater than 0",
            ));
        }
        let mut market_id = match filter
            .market_code
            .as_deref()
            .filter(|c| !c.trim().is_empty())
        {
            Some(code) => Some(
                reference
                    .market_by_code(code)
                    .ok_or_else(|| AppError::bad_input("marketCode", "unknown market"))?
                    .id
                    .clone(),
            ),
            None => None,
        };
        // Prices are compared within one market's currency only.
        let priced = filter.max_hourly_rate_minor.is_some()
            || matches!(sort, Sort::PriceLow | Sort::PriceHigh);
        if priced && market_id.is_none() {
            market_id = filter.caller_market_id.clone();
            if market_id.is_none() {
                return Err(AppError::bad_input(
                    "marketCode",
                    "a price filter or price sort needs a market: prices are in each market's currency",
                ));
            }
        }
        let category = match filter
            .category_slug
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            Some(slug) => Some(
                reference
                    .category_position(slug)
                    .ok_or_else(|| AppError::bad_input("categorySlug", "unknown category"))?,
            ),
            None => None,
        };
        let text = match filter
            .query
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty())
        {
            Some(q) if q.chars().count() > 100 => {
                return Err(AppError::bad_input("query", "at most 100 characters"));
            }
            Some(q) if q.chars().any(char::is_control) => {
                return Err(AppError::bad_input(
                    "query",
                    "must not contain control characters",
                ));
            }
            Some(q) => Some(fold(q)),
            None => None,
        };
        let text_categories = match &text {
            Some(t) => reference
                .categories()
                .iter()
                .enumerate()
                .filter(|(_, c)| {
                    fold(&c.name).contains(t.as_str()) || fold(&c.slug).contains(t.as_str())
                })
                .filter_map(|(i, _)| u16::try_from(i).ok())
                .collect(),
            None => Vec::new(),
        };
        let min_rating_x100 = match filter.min_rating {
            Some(min) if !(0.0..=5.0).contains(&min) || min.is_nan() => {
                return Err(AppError::bad_input("minRating", "minRating is 0 to 5"));
            }
            Some(min) => Some((min * 100.0).round() as i64),
            None => None,
        };
        Ok(Matcher {
            market_id,
            category,
            text,
            text_categories,
            min_rating_x100,
            max_rate: filter.max_hourly_rate_minor,
            payouts_required: filter.payouts_required,
        })
    }

    fn matches(&self, row: &ListingRow) -> bool {
        self.market_id.as_ref().is_none_or(|m| *m == row.market_id)
            && (!self.payouts_required || crate::domain::coach::can_be_paid(&row.profile))
            && self.category.is_none_or(|c| row.categories.contains(&c))
            && self.max_rate.is_none_or(|m| row.hourly_rate_minor <= m)
            && self.min_rating_x100.is_none_or(|min| {
                row.rating_count > 0 && row.rating_sum * 100 >= min * row.rating_count
            })
            && self.text_rank(row) != 1
    }

    /// How the text matched: 3 in the name, headline or a category's name
    /// or slug, 2 in the bio only, 1 not at all; 0 without a text.
    /// Plain substring search: `%`, `_` and quotes are just characters.
    fn text_rank(&self, row: &ListingRow) -> i64 {
        let Some(t) = self.text.as_deref() else {
            return 0;
        };
        if row.display_name.contains(t)
            || row.headline.contains(t)
            || row
                .categories
                .iter()
                .any(|c| self.text_categories.contains(c))
        {
            3
        } else if row.bio.contains(t) {
            2
        } else {
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_drops_case_and_accents() {
        assert_eq!(fold("Zoë Ångström"), "zoe angstrom");
        assert_eq!(fold("ÉCOLE"), fold("école"));
        assert_eq!(fold("Łódź"), "łodz");
    }

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

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Any string a client sends as a cursor is refused cleanly or
        /// read; it never panics.
        #[test]
        fn cursors_from_anyone(raw in ".{0,200}", b64 in "[A-Za-z0-9_-]{0,120}") {
            for sort in [Sort::Relevance, Sort::Rating, Sort::PriceLow, Sort::PriceHigh, Sort::Newest] {
                let _ = decode_cursor(&raw, sort);
                let _ = decode_cursor(&b64, sort);
            }
        }
    }
}
