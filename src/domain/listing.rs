//! The in-memory listing index behind search: one compact row per public
//! coach (lower-cased text, market, categories, the sort keys). Reloaded
//! from the database when a local change marks it stale and at least every
//! `MAX_AGE`, so other instances' changes show within seconds. It is a
//! cache of the database, never a source of truth: search re-reads each
//! page's profiles from the database.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};
use tokio::sync::{Mutex, RwLock};

use crate::domain::coach::CoachStatus;
use crate::domain::reference::ReferenceData;
use crate::error::AppResult;
use entity::{coach_categories, coach_profiles};

pub const MAX_AGE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct ListingRow {
    pub id: String,
    pub market_id: String,
    /// Positions in the reference category list.
    pub categories: Vec<u16>,
    pub display_name: String,
    pub headline: String,
    pub bio: String,
    pub hourly_rate_minor: i64,
    pub rating_score: i64,
    pub rating_count: i64,
    pub rating_sum: i64,
    pub sponsored_until_s: Option<i64>,
}

pub struct Snapshot {
    pub rows: Vec<ListingRow>,
    /// Row positions per market, per category, and per (market, category):
    /// a filtered search walks only its bucket.
    by_market: HashMap<String, Vec<usize>>,
    by_category: HashMap<u16, Vec<usize>>,
    by_market_category: HashMap<(String, u16), Vec<usize>>,
    loaded_at: Instant,
}

impl Snapshot {
    fn new(rows: Vec<ListingRow>, loaded_at: Instant) -> Self {
        let mut by_market: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_category: HashMap<u16, Vec<usize>> = HashMap::new();
        let mut by_market_category: HashMap<(String, u16), Vec<usize>> = HashMap::new();
        for (i, r) in rows.iter().enumerate() {
            by_market.entry(r.market_id.clone()).or_default().push(i);
            for c in &r.categories {
                by_category.entry(*c).or_default().push(i);
                by_market_category
                    .entry((r.market_id.clone(), *c))
                    .or_default()
                    .push(i);
            }
        }
        Snapshot {
            rows,
            by_market,
            by_category,
            by_market_category,
            loaded_at,
        }
    }

    /// The rows that can match a market and category filter (a superset;
    /// the caller still tests every other condition).
    pub fn candidates(
        &self,
        market_id: Option<&str>,
        category: Option<u16>,
    ) -> Box<dyn Iterator<Item = &ListingRow> + '_> {
        let bucket = match (market_id, category) {
            (Some(m), Some(c)) => self.by_market_category.get(&(m.to_string(), c)),
            (Some(m), None) => self.by_market.get(m),
            (None, Some(c)) => self.by_category.get(&c),
            (None, None) => return Box::new(self.rows.iter()),
        };
        match bucket {
            Some(ids) => Box::new(ids.iter().map(|&i| &self.rows[i])),
            None => Box::new(std::iter::empty()),
        }
    }
}

pub struct ListingIndex {
    reference: ReferenceData,
    current: RwLock<Option<Arc<Snapshot>>>,
    stale: AtomicBool,
    reloading: Mutex<()>,
}

impl ListingIndex {
    pub fn new(reference: ReferenceData) -> Self {
        ListingIndex {
            reference,
            current: RwLock::new(None),
            stale: AtomicBool::new(true),
            reloading: Mutex::new(()),
        }
    }

    /// Marks the index stale: the next search reloads it first.
    pub fn invalidate(&self) {
        self.stale.store(true, Ordering::SeqCst);
    }

    /// The current snapshot, reloaded first when it is stale or old. One
    /// request reloads; the others keep using the previous snapshot.
    pub async fn snapshot(&self, db: &DatabaseConnection) -> AppResult<Arc<Snapshot>> {
        let current = self.current.read().await.clone();
        let fresh = |s: &Arc<Snapshot>| {
            !self.stale.load(Ordering::SeqCst) && s.loaded_at.elapsed() < MAX_AGE
        };
        match current {
            Some(s) if fresh(&s) => Ok(s),
            Some(s) => match self.reloading.try_lock() {
                Ok(_guard) => self.reload(db).await,
                Err(_) => Ok(s),
            },
            None => {
                let _guard = self.reloading.lock().await;
                // Bound first: a read guard held across `reload` would deadlock its write.
                let loaded = self.current.read().await.clone();
                match loaded {
                    Some(s) => Ok(s),
                    None => self.reload(db).await,
                }
            }
        }
    }

    async fn reload(&self, db: &DatabaseConnection) -> AppResult<Arc<Snapshot>> {
        self.stale.store(false, Ordering::SeqCst);
        let loaded = self.load(db).await;
        match loaded {
            Ok(snapshot) => {
                let snapshot = Arc::new(snapshot);
                *self.current.write().await = Some(snapshot.clone());
                Ok(snapshot)
            }
            Err(e) => {
                self.stale.store(true, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    async fn load(&self, db: &DatabaseConnection) -> AppResult<Snapshot> {
        use coach_profiles::Column as C;
        let loaded_at = Instant::now();
        #[derive(sea_orm::FromQueryResult)]
        struct Row {
            id: String,
            market_id: String,
            display_name: String,
            headline: String,
            bio: String,
            hourly_rate_minor: i64,
            rating_score: i64,
            rating_count: i32,
            rating_sum: i64,
            sponsored_until: Option<chrono::DateTime<chrono::Utc>>,
        }
        let rows = coach_profiles::Entity::find()
            .select_only()
            .columns([
                C::Id,
                C::MarketId,
                C::DisplayName,
                C::Headline,
                C::Bio,
                C::HourlyRateMinor,
                C::RatingScore,
                C::RatingCount,
                C::RatingSum,
                C::SponsoredUntil,
            ])
            .filter(C::Status.eq(CoachStatus::Approved.as_str()))
            .filter(C::Published.eq(true))
            .into_model::<Row>()
            .all(db)
            .await?;
        let mut categories: std::collections::HashMap<String, Vec<u16>> =
            std::collections::HashMap::new();
        for link in coach_categories::Entity::find().all(db).await? {
            if let Some(pos) = self.reference.category_position_by_id(&link.category_id) {
                categories.entry(link.coach_id).or_default().push(pos);
            }
        }
        let rows = rows
            .into_iter()
            .map(|r| ListingRow {
                categories: categories.remove(&r.id).unwrap_or_default(),
                id: r.id,
                market_id: r.market_id,
                display_name: r.display_name.to_lowercase(),
                headline: r.headline.to_lowercase(),
                bio: r.bio.to_lowercase(),
                hourly_rate_minor: r.hourly_rate_minor,
                rating_score: r.rating_score,
                rating_count: i64::from(r.rating_count),
                rating_sum: r.rating_sum,
                sponsored_until_s: r.sponsored_until.map(|t| t.timestamp()),
            })
            .collect();
        Ok(Snapshot::new(rows, loaded_at))
    }
}
