//! Dataloaders: one per foreign key a listed coach or booking exposes, so
//! a page of N coaches or bookings costs one statement per nested field,
//! not N.
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

use crate::domain::review::{ReviewCache, ReviewKey, ReviewRow, false_literal, placeholder};
use crate::error::AppError;
use entity::{availability_rules, coach_categories, coach_profiles, packages, payments, users};

pub const BATCH_DELAY: Duration = Duration::from_millis(1);

/// All loaders of one request.
pub struct Loaders {
    pub categories: DataLoader<CategoryIdsByCoach, HashMapCache>,
    pub packages: DataLoader<PackagesByCoach, HashMapCache>,
    pub reviews: DataLoader<ReviewsByCoach, HashMapCache>,
    pub availability: DataLoader<RulesByCoach, HashMapCache>,
    pub coaches: DataLoader<CoachesById, HashMapCache>,
    pub users: DataLoader<UsersById, HashMapCache>,
    pub booking_payments: DataLoader<PaymentsByBooking, HashMapCache>,
    pub booking_reviews: DataLoader<ReviewsByBooking, HashMapCache>,
}

/// The request's loaders; missing is an internal error, never a panic.
pub fn loaders<'a>(ctx: &'a Context<'_>) -> async_graphql::Result<&'a Loaders> {
    ctx.data_opt::<Loaders>()
        .ok_or_else(|| AppError::internal("Loaders missing from request data").into())
}

/// A loader error as the client sees it: internal, whatever it was.
pub fn load_err(e: Arc<AppError>) -> async_graphql::Error {
    match &*e {
        AppError::Internal(detail) => AppError::Internal(detail.clone()).into(),
        _ => AppError::internal("loader failed").into(),
    }
}

/// Marks a context whose loaders live longer than one request (a
/// subscription's socket): values that change with each event are loaded
/// afresh instead of from the loader's cache.
pub struct Uncached;

/// One value through `loader`: batched and cached per request, or fetched
/// afresh under [`Uncached`].
pub async fn load_one<K, L>(
    ctx: &Context<'_>,
    loader: &DataLoader<L, HashMapCache>,
    key: K,
) -> async_graphql::Result<Option<L::Value>>
where
    K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
    L: Loader<K, Error = LoadError>,
{
    if ctx.data_opt::<Uncached>().is_some() {
        let mut found = loader
            .loader()
            .load(std::slice::from_ref(&key))
            .await
            .map_err(load_err)?;
        return Ok(found.remove(&key));
    }
    loader.load_one(key).await.map_err(load_err)
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
            coaches: make(CoachesById(db.clone())),
            users: make(UsersById(db.clone())),
            booking_payments: make(PaymentsByBooking(db.clone())),
            booking_reviews: make(ReviewsByBooking(db.clone())),
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

pub struct ReviewsByCoach(DatabaseConnection, ReviewCache);

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

pub struct CoachesById(DatabaseConnection);

impl Loader<String> for CoachesById {
    type Value = Arc<coach_profiles::Model>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, Arc<coach_profiles::Model>>, LoadError> {
        Ok(coach_profiles::Entity::find()
            .filter(coach_profiles::Column::Id.is_in(keys.iter().cloned()))
            .all(&self.0)
            .await
            .map_err(err)?
            .into_iter()
            .map(|c| (c.id.clone(), Arc::new(c)))
            .collect())
    }
}

pub struct UsersById(DatabaseConnection);

impl Loader<String> for UsersById {
    type Value = Arc<users::Model>;
    type Error = LoadError;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Arc<users::Model>>, LoadError> {
        Ok(users::Entity::find()
            .filter(users::Column::Id.is_in(keys.iter().cloned()))
            .all(&self.0)
            .await
            .map_err(err)?
            .into_iter()
            .map(|u| (u.id.clone(), Arc::new(u)))
            .collect())
    }
}

/// A booking's payment, by booking id. Every key gets an answer (`None`
/// for none), so a page without payments is not asked for again.
pub struct PaymentsByBooking(DatabaseConnection);

impl Loader<String> for PaymentsByBooking {
    type Value = Option<payments::Model>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, Option<payments::Model>>, LoadError> {
        let mut out: HashMap<String, Option<payments::Model>> =
            keys.iter().map(|k| (k.clone(), None)).collect();
        for p in payments::Entity::find()
            .filter(payments::Column::BookingId.is_in(keys.iter().cloned()))
            .all(&self.0)
            .await
            .map_err(err)?
        {
            if let Some(b) = p.booking_id.clone() {
                out.insert(b, Some(p));
            }
        }
        Ok(out)
    }
}

/// A booking's visible review, by booking id; `None` for none, as above.
pub struct ReviewsByBooking(DatabaseConnection);

impl Loader<String> for ReviewsByBooking {
    type Value = Option<ReviewRow>;
    type Error = LoadError;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Option<ReviewRow>>, LoadError> {
        let mut found = crate::domain::review::for_bookings(&self.0, keys)
            .await
            .map_err(Arc::new)?;
        Ok(keys.iter().map(|k| (k.clone(), found.remove(k))).collect())
    }
}

/// Primes, in one statement per field and without the batch delay, the
/// nested fields that the current booking connection's query selects
/// (under `nodes` or `edges { node }`), so a page's statement count never
/// depends on timing.
pub async fn prefetch_bookings(
    ctx: &Context<'_>,
    bookings: &[entity::bookings::Model],
) -> Result<(), LoadError> {
    let Some(loaders) = ctx.data_opt::<Loaders>() else {
        return Ok(());
    };
    if bookings.is_empty() {
        return Ok(());
    }
    let look = ctx.look_ahead();
    let nodes = [look.field("nodes"), look.field("edges").field("node")];
    let wants = |f: &str| nodes.iter().any(|n| n.field(f).exists());
    let distinct = |ids: Vec<String>| {
        let mut ids = ids;
        ids.sort();
        ids.dedup();
        ids
    };
    let booking_ids: Vec<String> = bookings.iter().map(|b| b.id.clone()).collect();
    let (a, b, c, d) = futures_util::join!(
        when(wants("coach"), async {
            let ids = distinct(bookings.iter().map(|b| b.coach_id.clone()).collect());
            let values = loaders.coaches.loader().load(&ids).await?;
            loaders.coaches.feed_many(values).await;
            Ok(())
        }),
        when(wants("consumer"), async {
            let ids = distinct(bookings.iter().map(|b| b.consumer_id.clone()).collect());
            let values = loaders.users.loader().load(&ids).await?;
            loaders.users.feed_many(values).await;
            Ok(())
        }),
        when(wants("payment"), async {
            let values = loaders.booking_payments.loader().load(&booking_ids).await?;
            loaders.booking_payments.feed_many(values).await;
            Ok(())
        }),
        when(wants("review"), async {
            let values = loaders.booking_reviews.loader().load(&booking_ids).await?;
            loaders.booking_reviews.feed_many(values).await;
            Ok(())
        }),
    );
    a.and(b).and(c).and(d)
}
