//! The in-memory listing index behind search: one row per public coach
//! (the whole profile, lower-cased text, market, categories, the sort
//! keys). It is a cache of the database, never a source of truth.
//!
//! Search serves its pages from here without a statement, so the index
//! follows every change of a listing:
//! - a change made through this process marks that coach stale at once;
//! - on PostgreSQL, triggers announce every change to `coach_profiles` and
//!   `coach_categories` (`NOTIFY coach_listings`, the coach id as payload)
//!   and each instance's listener marks the coach stale within milliseconds
//!   of the commit ([`listen`]); after the listener reconnects, everything
//!   loaded before is stale, since notifications sent meanwhile are lost;
//! - a search after a change waits until the stale coaches are read again
//!   (two statements), so it never shows a listing that has left search;
//! - every `MAX_AGE` the whole index is reloaded in the background: the
//!   safety net for an SQLite file written by another process, or a change
//!   no trigger saw. Rarely, on purpose: a full reload of 10,000 listings
//!   costs ~80 ms of CPU and churns memory.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sea_orm::{ColumnTrait, DatabaseBackend, DatabaseConnection, EntityTrait, QueryFilter};
use tokio::sync::{Mutex, watch};

use crate::domain::coach::CoachStatus;
use crate::domain::reference::ReferenceData;
use crate::error::AppResult;
use entity::{availability_rules, coach_categories, coach_profiles, packages};

pub const MAX_AGE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct ListingRow {
    pub id: String,
    /// The whole public profile, served as it is on a search page.
    pub profile: Arc<coach_profiles::Model>,
    pub market_id: String,
    /// Positions in the reference category list.
    pub categories: Vec<u16>,
    /// The texts search compares, folded (`search::fold`).
    pub display_name: String,
    pub headline: String,
    pub bio: String,
    pub hourly_rate_minor: i64,
    pub rating_score: i64,
    pub rating_count: i64,
    pub rating_sum: i64,
    pub sponsored_until_s: Option<i64>,
    /// The coach page's weekly rules and packages on sale, so a page needs
    /// no statement for them.
    pub availability: Arc<Vec<availability_rules::Model>>,
    pub packages: Arc<Vec<packages::Model>>,
}

pub struct Snapshot {
    pub rows: Vec<Arc<ListingRow>>,
    /// Row positions per market, per category, and per (market, category):
    /// a filtered search walks only its bucket.
    by_market: HashMap<String, Vec<usize>>,
    by_category: HashMap<u16, Vec<usize>>,
    by_market_category: HashMap<(String, u16), Vec<usize>>,
    by_id: HashMap<String, usize>,
    loaded_at: Instant,
}

impl Snapshot {
    fn new(rows: Vec<Arc<ListingRow>>, loaded_at: Instant) -> Self {
        let mut by_market: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_category: HashMap<u16, Vec<usize>> = HashMap::new();
        let mut by_market_category: HashMap<(String, u16), Vec<usize>> = HashMap::new();
        let mut by_id = HashMap::with_capacity(rows.len());
        for (i, r) in rows.iter().enumerate() {
            by_id.insert(r.id.clone(), i);
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
            by_id,
            loaded_at,
        }
    }

    /// A public coach's row (a coach page), if the coach is public.
    pub fn get(&self, coach_id: &str) -> Option<&Arc<ListingRow>> {
        self.by_id.get(coach_id).map(|&i| &self.rows[i])
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
            (None, None) => return Box::new(self.rows.iter().map(|r| &**r)),
        };
        match bucket {
            Some(ids) => Box::new(ids.iter().map(|&i| &*self.rows[i])),
            None => Box::new(std::iter::empty()),
        }
    }
}

/// Changes announced since the snapshot was made.
#[derive(Default)]
struct Pending {
    /// Anything may have changed: reload everything.
    all: bool,
    /// These coaches changed: reload just them.
    coaches: HashSet<String>,
}

/// Past this many changed coaches, one full reload is cheaper.
const MAX_PARTIAL: usize = 1000;

pub struct ListingIndex {
    reference: ReferenceData,
    current: RwLock<Option<Arc<Snapshot>>>,
    pending: std::sync::Mutex<Pending>,
    /// `pending` holds something (read on every search without the lock).
    dirty: AtomicBool,
    /// Held by the one load running at a time.
    reloading: Mutex<()>,
    /// An age-driven refresh is under way in the background.
    refreshing: AtomicBool,
    max_age_ms: AtomicU64,
    /// Notifications of other writers' changes are being received.
    listening: AtomicBool,
    full_loads: AtomicU64,
    partial_loads: AtomicU64,
}

/// How often the index was loaded whole, and how often in part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loads {
    pub full: u64,
    pub partial: u64,
}

impl ListingIndex {
    pub fn new(reference: ReferenceData) -> Self {
        ListingIndex {
            reference,
            current: RwLock::new(None),
            pending: std::sync::Mutex::new(Pending {
                all: true,
                coaches: HashSet::new(),
            }),
            dirty: AtomicBool::new(true),
            reloading: Mutex::new(()),
            refreshing: AtomicBool::new(false),
            max_age_ms: AtomicU64::new(MAX_AGE.as_millis() as u64),
            listening: AtomicBool::new(false),
            full_loads: AtomicU64::new(0),
            partial_loads: AtomicU64::new(0),
        }
    }

    fn mark(&self, change: impl FnOnce(&mut Pending)) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut p);
        if p.coaches.len() > MAX_PARTIAL {
            p.all = true;
        }
        if p.all {
            p.coaches.clear();
        }
        // Under the lock, so taking the changes and clearing this agree.
        self.dirty.store(true, Ordering::SeqCst);
    }

    /// Marks the whole index stale: no search starting after this is served
    /// from the current snapshot; the next one reloads it, the others wait.
    pub fn invalidate(&self) {
        self.mark(|p| p.all = true);
    }

    /// Marks one coach's listing stale, with the same promise as
    /// [`invalidate`](Self::invalidate); only that coach is reloaded.
    pub fn invalidate_coach(&self, coach_id: &str) {
        self.mark(|p| {
            if !p.all {
                p.coaches.insert(coach_id.to_string());
            }
        });
    }

    /// Whether a change was announced since the snapshot was made (the next
    /// search re-reads it).
    pub fn has_pending_changes(&self) -> bool {
        self.dirty.load(Ordering::SeqCst)
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

    pub fn loads(&self) -> Loads {
        Loads {
            full: self.full_loads.load(Ordering::SeqCst),
            partial: self.partial_loads.load(Ordering::SeqCst),
        }
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

    fn store(&self, snapshot: Snapshot) -> Arc<Snapshot> {
        let snapshot = Arc::new(snapshot);
        if let Ok(mut current) = self.current.write() {
            *current = Some(snapshot.clone());
        }
        snapshot
    }

    /// The current snapshot. Announced changes are applied first, by one
    /// request while the others wait for it; an old snapshot is served
    /// while a background task reloads it.
    pub async fn snapshot(self: &Arc<Self>, db: &DatabaseConnection) -> AppResult<Arc<Snapshot>> {
        if !self.dirty.load(Ordering::SeqCst)
            && let Some(s) = self.current()
        {
            let max_age = Duration::from_millis(self.max_age_ms.load(Ordering::Relaxed));
            if s.loaded_at.elapsed() >= max_age && !self.refreshing.swap(true, Ordering::SeqCst) {
                let (index, db) = (self.clone(), db.clone());
                tokio::spawn(async move {
                    index.refresh(&db).await;
                    index.refreshing.store(false, Ordering::SeqCst);
                });
            }
            return Ok(s);
        }
        let _guard = self.reloading.lock().await;
        // Another request may have applied the changes while this one waited.
        if !self.dirty.load(Ordering::SeqCst)
            && let Some(s) = self.current()
        {
            return Ok(s);
        }
        let pending = self.take_pending();
        let loaded = match self.current() {
            Some(current) if !pending.all && pending.coaches.is_empty() => return Ok(current),
            Some(current) if !pending.all => self.apply(db, &current, &pending.coaches).await,
            _ => self.load(db).await,
        };
        match loaded {
            Ok(snapshot) => Ok(self.store(snapshot)),
            Err(e) => {
                // Put the changes back, so the next search tries again.
                self.mark(|p| {
                    p.all |= pending.all;
                    p.coaches.extend(pending.coaches);
                });
                Err(e)
            }
        }
    }

    /// Takes the announced changes; the caller holds `reloading`. A change
    /// announced from here on marks the index dirty again.
    fn take_pending(&self) -> Pending {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        self.dirty.store(false, Ordering::SeqCst);
        std::mem::take(&mut *p)
    }

    /// The background reload of an old snapshot. Announced changes stay
    /// pending: the next search applies them over this snapshot.
    async fn refresh(&self, db: &DatabaseConnection) {
        let _guard = self.reloading.lock().await;
        match self.load(db).await {
            Ok(snapshot) => {
                self.store(snapshot);
            }
            Err(err) => tracing::warn!(error = ?err, "search index refresh failed; will retry"),
        }
    }

    /// Every public listing, with its categories.
    async fn load(&self, db: &DatabaseConnection) -> AppResult<Snapshot> {
        use coach_profiles::Column as C;
        let loaded_at = Instant::now();
        let profiles = coach_profiles::Entity::find()
            .filter(C::Status.eq(CoachStatus::Approved.as_str()))
            .filter(C::Published.eq(true))
            .all(db)
            .await?;
        let links = coach_categories::Entity::find().all(db).await?;
        let page = PageParts {
            rules: availability_rules::Entity::find().all(db).await?,
            packages: packages::Entity::find()
                .filter(packages::Column::Active.eq(true))
                .all(db)
                .await?,
        };
        let first = self.full_loads.fetch_add(1, Ordering::SeqCst) == 0;
        let snapshot = Snapshot::new(self.rows_of(profiles, links, page), loaded_at);
        let (listings, ms) = (snapshot.rows.len(), loaded_at.elapsed().as_millis());
        if first {
            tracing::info!(listings, ms, "search index loaded");
        } else {
            tracing::debug!(listings, ms, "search index loaded again");
        }
        Ok(snapshot)
    }

    /// `current` with the listings of `coaches` read afresh (those no longer
    /// public drop out). Keeps `current`'s age: only a full load renews it.
    async fn apply(
        &self,
        db: &DatabaseConnection,
        current: &Snapshot,
        coaches: &HashSet<String>,
    ) -> AppResult<Snapshot> {
        use coach_profiles::Column as C;
        let profiles = coach_profiles::Entity::find()
            .filter(C::Id.is_in(coaches.iter().cloned()))
            .filter(C::Status.eq(CoachStatus::Approved.as_str()))
            .filter(C::Published.eq(true))
            .all(db)
            .await?;
        let links = coach_categories::Entity::find()
            .filter(coach_categories::Column::CoachId.is_in(coaches.iter().cloned()))
            .all(db)
            .await?;
        let page = PageParts {
            rules: availability_rules::Entity::find()
                .filter(availability_rules::Column::CoachId.is_in(coaches.iter().cloned()))
                .all(db)
                .await?,
            packages: packages::Entity::find()
                .filter(packages::Column::CoachId.is_in(coaches.iter().cloned()))
                .filter(packages::Column::Active.eq(true))
                .all(db)
                .await?,
        };
        let mut rows: Vec<Arc<ListingRow>> = current
            .rows
            .iter()
            .filter(|r| !coaches.contains(&r.id))
            .cloned()
            .collect();
        rows.extend(self.rows_of(profiles, links, page));
        self.partial_loads.fetch_add(1, Ordering::SeqCst);
        Ok(Snapshot::new(rows, current.loaded_at))
    }

    fn rows_of(
        &self,
        profiles: Vec<coach_profiles::Model>,
        links: Vec<coach_categories::Model>,
        page: PageParts,
    ) -> Vec<Arc<ListingRow>> {
        let mut categories: HashMap<String, Vec<u16>> = HashMap::new();
        for link in links {
            if let Some(pos) = self.reference.category_position_by_id(&link.category_id) {
                categories.entry(link.coach_id).or_default().push(pos);
            }
        }
        // In the order the page lists them (as the loaders return them).
        let mut rules: HashMap<String, Vec<availability_rules::Model>> = HashMap::new();
        for r in page.rules {
            rules.entry(r.coach_id.clone()).or_default().push(r);
        }
        for list in rules.values_mut() {
            list.sort_by_key(|r| (r.weekday, r.start_minute));
        }
        let mut packages: HashMap<String, Vec<packages::Model>> = HashMap::new();
        for p in page.packages {
            packages.entry(p.coach_id.clone()).or_default().push(p);
        }
        for list in packages.values_mut() {
            list.sort_by(|a, b| (a.price_minor, &a.id).cmp(&(b.price_minor, &b.id)));
        }
        profiles
            .into_iter()
            .map(|r| {
                Arc::new(ListingRow {
                    categories: categories.remove(&r.id).unwrap_or_default(),
                    id: r.id.clone(),
                    market_id: r.market_id.clone(),
                    display_name: crate::domain::search::fold(&r.display_name),
                    headline: crate::domain::search::fold(&r.headline),
                    bio: crate::domain::search::fold(&r.bio),
                    hourly_rate_minor: r.hourly_rate_minor,
                    rating_score: r.rating_score,
                    rating_count: i64::from(r.rating_count),
                    rating_sum: r.rating_sum,
                    sponsored_until_s: r.sponsored_until.map(|t| t.timestamp()),
                    availability: Arc::new(rules.remove(&r.id).unwrap_or_default()),
                    packages: Arc::new(packages.remove(&r.id).unwrap_or_default()),
                    profile: Arc::new(r),
                })
            })
            .collect()
    }
}

/// What a coach page shows beside the profile, as loaded with the index.
struct PageParts {
    rules: Vec<availability_rules::Model>,
    packages: Vec<packages::Model>,
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
    // Between attempts to connect: doubles up to 30 s while they fail.
    let mut pause = Duration::from_secs(1);
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
                pause = Duration::from_secs(1);
                // Changes announced while nobody listened were lost.
                index.invalidate_if_loaded_before(*since);
                index.listening.store(true, Ordering::SeqCst);
                loop {
                    tokio::select! {
                        next = listener.try_recv() => match next {
                            // The payload names the coach; empty means all.
                            Ok(Some(n)) if n.payload().is_empty() => index.invalidate(),
                            Ok(Some(n)) => index.invalidate_coach(n.payload()),
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
                index.listening.store(false, Ordering::SeqCst);
            }
            Err(err) => {
                tracing::warn!(error = %err, retry_in = ?pause, "search index listener cannot connect");
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return,
        }
    }
}
