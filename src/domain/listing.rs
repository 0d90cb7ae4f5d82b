//! The in-memory listing index behind search: one compact row per public
//! coach (lower-cased text, market, categories, the sort keys). Reloaded
//! from the database when a local change marks it stale and at least every
//! `MAX_AGE`, so other instances' changes show within seconds. It is a
//! cache of the database, never a source of truth.
//!
//! Search serves its pages from here without a statement, so the index must
//! follow every change of a listing: a change made through this process
//! marks it stale at once; on PostgreSQL a trigger announces every change
//! to `coach_profiles` and `coach_categories` (`NOTIFY coach_listings`), and
//! each instance's listener marks its index stale within milliseconds of the
//! commit ([`listen`]). `MAX_AGE` is the safety net for a notification lost
//! while the listener reconnects, and for SQLite files written by another
//! process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sea_orm::{ColumnTrait, DatabaseBackend, DatabaseConnection, EntityTrait, QueryFilter};
use tokio::sync::{Mutex, watch};

use crate::domain::coach::CoachStatus;
use crate::domain::reference::ReferenceData;
use crate::error::AppResult;
use entity::{coach_categories, coach_profiles};

pub const MAX_AGE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct ListingRow {
    pub id: String,
    /// The whole public profile, served as it is on a search page.
    pub profile: Arc<coach_profiles::Model>,
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
    /// Set by every announced change; cleared when a reload starts.
    stale: AtomicBool,
    /// Held by the one reload running at a time.
    reloading: Mutex<()>,
    /// An age-driven refresh is under way in the background.
    refreshing: AtomicBool,
    max_age_ms: AtomicU64,
    /// Notifications of other writers' changes are being received.
    listening: AtomicBool,
}

impl ListingIndex {
    pub fn new(reference: ReferenceData) -> Self {
        ListingIndex {
            reference,
            current: RwLock::new(None),
            stale: AtomicBool::new(true),
            reloading: Mutex::new(()),
            refreshing: AtomicBool::new(false),
            max_age_ms: AtomicU64::new(MAX_AGE.as_millis() as u64),
            listening: AtomicBool::new(false),
        }
    }

    /// Marks the index stale: no search starting after this is served from
    /// the current snapshot; the next one reloads it and the others wait.
    pub fn invalidate(&self) {
        self.stale.store(true, Ordering::SeqCst);
    }

    /// How old a snapshot may get before it is refreshed in the background.
    pub fn set_max_age(&self, max_age: Duration) {
        self.max_age_ms
            .store(max_age.as_millis() as u64, Ordering::Relaxed);
    }

    /// Whether [`listen`] is receiving other writers' changes.
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::SeqCst)
    }

    /// Marks the index stale if its snapshot was loaded before `t` (when
    /// listening began: changes before it were not announced to us).
    fn invalidate_if_loaded_before(&self, t: Instant) {
        if self.current().is_some_and(|s| s.loaded_at < t) {
            self.invalidate();
        }
    }

    fn current(&self) -> Option<Arc<Snapshot>> {
        self.current.read().ok().and_then(|c| c.clone())
    }

    /// The current snapshot. A stale one (a change was announced) is
    /// reloaded first, by one request while the others wait for it; an old
    /// one is served while a background task refreshes it.
    pub async fn snapshot(self: &Arc<Self>, db: &DatabaseConnection) -> AppResult<Arc<Snapshot>> {
        if !self.stale.load(Ordering::SeqCst)
            && let Some(s) = self.current()
        {
            let max_age = Duration::from_millis(self.max_age_ms.load(Ordering::Relaxed));
            if s.loaded_at.elapsed() >= max_age && !self.refreshing.swap(true, Ordering::SeqCst) {
                let (index, db) = (self.clone(), db.clone());
                tokio::spawn(async move {
                    let _guard = index.reloading.lock().await;
                    if let Err(err) = index.reload(&db).await {
                        tracing::warn!(error = ?err, "search index refresh failed; will retry");
                    }
                    index.refreshing.store(false, Ordering::SeqCst);
                });
            }
            return Ok(s);
        }
        let _guard = self.reloading.lock().await;
        // Another request may have reloaded while this one waited.
        if !self.stale.load(Ordering::SeqCst)
            && let Some(s) = self.current()
        {
            return Ok(s);
        }
        self.reload(db).await
    }

    /// Loads a new snapshot; the caller holds `reloading`.
    async fn reload(&self, db: &DatabaseConnection) -> AppResult<Arc<Snapshot>> {
        // Cleared before reading: a change announced during the load marks it stale again.
        self.stale.store(false, Ordering::SeqCst);
        match self.load(db).await {
            Ok(snapshot) => {
                let snapshot = Arc::new(snapshot);
                if let Ok(mut current) = self.current.write() {
                    *current = Some(snapshot.clone());
                }
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
        let rows = coach_profiles::Entity::find()
            .filter(C::Status.eq(CoachStatus::Approved.as_str()))
            .filter(C::Published.eq(true))
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
                id: r.id.clone(),
                market_id: r.market_id.clone(),
                display_name: r.display_name.to_lowercase(),
                headline: r.headline.to_lowercase(),
                bio: r.bio.to_lowercase(),
                hourly_rate_minor: r.hourly_rate_minor,
                rating_score: r.rating_score,
                rating_count: i64::from(r.rating_count),
                rating_sum: r.rating_sum,
                sponsored_until_s: r.sponsored_until.map(|t| t.timestamp()),
                profile: Arc::new(r),
            })
            .collect();
        Ok(Snapshot::new(rows, loaded_at))
    }
}

/// The channel the `coach_listings` triggers notify on (PostgreSQL).
pub const CHANNEL: &str = "coach_listings";

/// Keeps `index` in step with changes any instance commits, on PostgreSQL:
/// marks it stale on each notification, and each time the listening
/// connection is (re)established, since notifications sent while it was
/// down are lost. Returns at once on SQLite, where every writer is local.
pub async fn listen(
    index: Arc<ListingIndex>,
    db: DatabaseConnection,
    mut stop: watch::Receiver<bool>,
) {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return;
    }
    let pool = db.get_postgres_connection_pool().clone();
    loop {
        let connected = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>((listener, Instant::now()))
        };
        let mut listener = tokio::select! {
            connected = connected => connected,
            _ = stop.changed() => return,
        };
        match &mut listener {
            Ok((listener, since)) => {
                index.invalidate_if_loaded_before(*since);
                index.listening.store(true, Ordering::SeqCst);
                loop {
                    tokio::select! {
                        next = listener.try_recv() => match next {
                            Ok(Some(_)) => index.invalidate(),
                            // The connection dropped: listen afresh.
                            Ok(None) => break,
                            Err(err) => {
                                tracing::warn!(error = %err, "search index listener failed; reconnecting");
                                break;
                            }
                        },
                        _ = stop.changed() => return,
                    }
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "search index listener cannot connect; retrying");
            }
        }
        index.listening.store(false, Ordering::SeqCst);
        index.invalidate();
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
}
