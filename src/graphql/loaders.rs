//! Dataloaders: one per foreign key a listed coach exposes, so a page of N
//! coaches costs one statement per nested field, not N.
//!
//! Loaders are made per request (their cache must not outlive it). A list
//! resolver that knows its rows (search, admin listings) primes them with
//! [`prefetch`]: one statement per nested field the query selects, started
//! before the rows are resolved, so the count never depends on timing. Any
//! other path batches on the loader's delay, 1 ms on purpose: tokio's timer
//! cannot wait less, and siblings in a list register their keys within one
//! poll of the list (in release builds, far inside that window).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::Context;
use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    Statement,
};

use crate::domain::review::{ReviewRow, false_literal, placeholder};
use crate::error::AppError;
use entity::{availability_rules, coach_categories, packages};

pub const BATCH_DELAY: Duration = Duration::from_millis(1);

/// All loaders of one request.
pub struct Loaders {
    pub categories: DataLoader<CategoryIdsByCoach, HashMapCache>,
    pub packages: DataLoader<PackagesByCoach, HashMapCache>,
    pub reviews: DataLoader<ReviewsByCoach, HashMapCache>,
    pub availability: DataLoader<RulesByCoach, HashMapCache>,
}

impl Loaders {
    pub fn new(db: &DatabaseConnection, reviews: &ReviewCache) -> Self {
        fn make<K, L>(loader: L) -> DataLoader<L, HashMapCache>
        where
            K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
            L: Loader<K>,
        {
            DataLoader::with_cache(loader, tokio::spawn, HashMapCache::default()).delay(BATCH_DELAY)
        }
        Loaders {
            categories: make(CategoryIdsByCoach(db.clone())),
            packages: make(PackagesByCoach(db.clone())),
            reviews: make(ReviewsByCoach(db.clone(), reviews.clone())),
            availability: make(RulesByCoach(db.clone())),
        }
    }
}

async fn when<F>(wanted: bool, load: F) -> Result<(), LoadError>
where
    F: std::future::Future<Output = Result<(), LoadError>>,
{
    if wanted { load.await } else { Ok(()) }
}

/// Loads (without the batch delay), in one statement per field, the nested fields that the current
/// connection field's query selects for `coach_ids`, into the request's
/// loaders. Looks under both `nodes` and `edges { node }`.
pub async fn prefetch(
    ctx: &Context<'_>,
    coach_ids: &[String],
    categories_known: bool,
) -> Result<(), LoadError> {
    let Some(loaders) = ctx.data_opt::<Loaders>() else {
        return Ok(());
    };
    if coach_ids.is_empty() {
        return Ok(());
    }
    let look = ctx.look_ahead();
    let nodes = [look.field("nodes"), look.field("edges").field("node")];
    let wants = |f: &str| nodes.iter().any(|n| n.field(f).exists());
    let ids = || coach_ids.iter().cloned();
    let mut review_keys = Vec::new();
    for n in &nodes {
        for sel in n.field("reviews").selection_fields() {
            let args = sel.arguments().unwrap_or_default();
            let has_after = args
                .iter()
                .any(|(k, v)| k.as_str() == "after" && *v != async_graphql::Value::Null);
            let first = args
                .iter()
                .find(|(k, _)| k.as_str() == "first")
                .and_then(|(_, v)| match v {
                    async_graphql::Value::Number(n) => n.as_u64(),
                    _ => None,
                })
                .unwrap_or(crate::domain::search::DEFAULT_PAGE);
            if !has_after && (1..=crate::domain::search::MAX_PAGE).contains(&first) {
                // The resolver asks for one row more, to know if a next page exists.
                review_keys.extend(coach_ids.iter().map(|id| ReviewKey {
                    coach_id: id.clone(),
                    first: first as u32 + 1,
                }));
            }
        }
    }
    let (a, b, c, d) = futures_util::join!(
        when(!categories_known && wants("categories"), async {
            let ids: Vec<String> = ids().collect();
            let values = loaders.categories.loader().load(&ids).await?;
            loaders.categories.feed_many(values).await;
            Ok(())
        }),
        when(wants("packages"), async {
            let ids: Vec<String> = ids().collect();
            let values = loaders.packages.loader().load(&ids).await?;
            loaders.packages.feed_many(values).await;
            Ok(())
        }),
        when(wants("availability"), async {
            let ids: Vec<String> = ids().collect();
            let values = loaders.availability.loader().load(&ids).await?;
            loaders.availability.feed_many(values).await;
            Ok(())
        }),
        when(!review_keys.is_empty(), async {
            let values = loaders.reviews.loader().load(&review_keys).await?;
            loaders.reviews.feed_many(values).await;
            Ok(())
        }),
    );
    a.and(b).and(c).and(d)
}

/// Loader errors are shared between waiters, hence `Arc`.
pub type LoadError = Arc<AppError>;

fn err(e: sea_orm::DbErr) -> LoadError {
    Arc::new(AppError::from(e))
}

pub struct CategoryIdsByCoach(DatabaseConnection);

impl Loader<String> for CategoryIdsByCoach {
    type Value = Vec<String>;
    type Error = LoadError;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Vec<String>>, LoadError> {
        let rows = coach_categories::Entity::find()
            .filter(coach_categories::Column::CoachId.is_in(keys.iter().cloned()))
            .all(&self.0)
            .await
            .map_err(err)?;
        let mut out: HashMap<String, Vec<String>> =
            keys.iter().map(|k| (k.clone(), vec![])).collect();
        for r in rows {
            out.entry(r.coach_id).or_default().push(r.category_id);
        }
        Ok(out)
    }
}

pub struct PackagesByCoach(DatabaseConnection);

impl Loader<String> for PackagesByCoach {
    type Value = Vec<packages::Model>;
    type Error = LoadError;

    /// Active packages, cheapest first.
    async fn load(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, Vec<packages::Model>>, LoadError> {
        let rows = packages::Entity::find()
            .filter(packages::Column::CoachId.is_in(keys.iter().cloned()))
            .filter(packages::Column::Active.eq(true))
            .order_by_asc(packages::Column::PriceMinor)
            .order_by_asc(packages::Column::Id)
            .all(&self.0)
            .await
            .map_err(err)?;
        let mut out: HashMap<String, Vec<packages::Model>> =
            keys.iter().map(|k| (k.clone(), vec![])).collect();
        for r in rows {
            out.entry(r.coach_id.clone()).or_default().push(r);
        }
        Ok(out)
    }
}

pub struct RulesByCoach(DatabaseConnection);

impl Loader<String> for RulesByCoach {
    type Value = Vec<availability_rules::Model>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, Vec<availability_rules::Model>>, LoadError> {
        let rows = availability_rules::Entity::find()
            .filter(availability_rules::Column::CoachId.is_in(keys.iter().cloned()))
            .order_by_asc(availability_rules::Column::Weekday)
            .order_by_asc(availability_rules::Column::StartMinute)
            .all(&self.0)
            .await
            .map_err(err)?;
        let mut out: HashMap<String, Vec<availability_rules::Model>> =
            keys.iter().map(|k| (k.clone(), vec![])).collect();
        for r in rows {
            out.entry(r.coach_id.clone()).or_default().push(r);
        }
        Ok(out)
    }
}

/// The newest `first` visible reviews of a coach.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReviewKey {
    pub coach_id: String,
    pub first: u32,
}

pub struct ReviewsByCoach(DatabaseConnection, ReviewCache);

/// Review previews shared by all requests for a few seconds: every search
/// card shows a coach's newest reviews, and those change rarely. A new
/// review shows within `REVIEW_CACHE_TTL`.
/// When a preview was loaded, and what it held.
type CachedReviews = (std::time::Instant, Vec<ReviewRow>);

#[derive(Clone, Default)]
pub struct ReviewCache(Arc<std::sync::Mutex<HashMap<ReviewKey, CachedReviews>>>);

pub const REVIEW_CACHE_TTL: Duration = Duration::from_secs(5);
/// Past this many entries the cache starts afresh, so memory stays bounded.
const REVIEW_CACHE_MAX: usize = 50_000;

impl ReviewCache {
    fn get(&self, key: &ReviewKey) -> Option<Vec<ReviewRow>> {
        let map = self.0.lock().ok()?;
        map.get(key)
            .filter(|(at, _)| at.elapsed() < REVIEW_CACHE_TTL)
            .map(|(_, rows)| rows.clone())
    }

    fn put(&self, entries: &HashMap<ReviewKey, Vec<ReviewRow>>) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() + entries.len() > REVIEW_CACHE_MAX {
                map.clear();
            }
            let now = std::time::Instant::now();
            for (k, v) in entries {
                map.insert(k.clone(), (now, v.clone()));
            }
        }
    }
}

impl Loader<ReviewKey> for ReviewsByCoach {
    type Value = Vec<ReviewRow>;
    type Error = LoadError;

    /// One statement per distinct `first` (in practice one): a window
    /// function keeps the newest `first` rows of each coach.
    async fn load(
        &self,
        keys: &[ReviewKey],
    ) -> Result<HashMap<ReviewKey, Vec<ReviewRow>>, LoadError> {
        let backend = self.0.get_database_backend();
        let mut cached: HashMap<ReviewKey, Vec<ReviewRow>> = HashMap::new();
        let mut by_first: HashMap<u32, Vec<&ReviewKey>> = HashMap::new();
        for k in keys {
            match self.1.get(k) {
                Some(rows) => {
                    cached.insert(k.clone(), rows);
                }
                None => by_first.entry(k.first).or_default().push(k),
            }
        }
        let mut out: HashMap<ReviewKey, Vec<ReviewRow>> = by_first
            .values()
            .flatten()
            .map(|k| ((*k).clone(), vec![]))
            .collect();
        for (first, group) in by_first {
            let mut values: Vec<sea_orm::Value> = Vec::with_capacity(group.len() + 1);
            let mut marks = Vec::with_capacity(group.len());
            for k in &group {
                values.push(k.coach_id.clone().into());
                marks.push(placeholder(backend, values.len()));
            }
            values.push(i64::from(first).into());
            let limit = placeholder(backend, values.len());
            let sql = if backend == sea_orm::DatabaseBackend::Postgres {
                // An index range scan of `first` rows per coach (reviews_coach_hidden_id_idx).
                format!(
                    "SELECT r.id, r.coach_id, r.rating, r.comment, r.coach_response, r.created_at,
                            u.name AS author_name
                     FROM (VALUES {}) AS c(id)
                     CROSS JOIN LATERAL (
                       SELECT * FROM reviews WHERE coach_id = c.id AND hidden = false
                       ORDER BY id DESC LIMIT {limit}
                     ) r
                     JOIN users u ON u.id = r.consumer_id
                     ORDER BY r.coach_id, r.id DESC",
                    marks
                        .iter()
                        .map(|m| format!("({m})"))
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            } else {
                // SQLite has no LATERAL; a window keeps the newest rows per coach.
                format!(
                    "SELECT id, coach_id, rating, comment, coach_response, created_at, author_name FROM (
                       SELECT r.id, r.coach_id, r.rating, r.comment, r.coach_response, r.created_at,
                              u.name AS author_name,
                              ROW_NUMBER() OVER (PARTITION BY r.coach_id ORDER BY r.id DESC) AS rn
                       FROM reviews r JOIN users u ON u.id = r.consumer_id
                       WHERE r.coach_id IN ({}) AND r.hidden = {}
                     ) ranked WHERE rn <= {limit} ORDER BY coach_id, id DESC",
                    marks.join(", "),
                    false_literal(backend),
                )
            };
            let rows =
                ReviewRow::find_by_statement(Statement::from_sql_and_values(backend, sql, values))
                    .all(&self.0)
                    .await
                    .map_err(err)?;
            for r in rows {
                out.entry(ReviewKey {
                    coach_id: r.coach_id.clone(),
                    first,
                })
                .or_default()
                .push(r);
            }
        }
        self.1.put(&out);
        out.extend(cached);
        Ok(out)
    }
}
