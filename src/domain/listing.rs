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
//! - every `MAX_AGE` (on PostgreSQL while its listener runs, every
//!   `MAX_AGE_LISTENING`) the whole index is reloaded in the background:
//!   the safety net for an SQLite file written by another process, or a
//!   change no trigger saw. Such a refresh never makes a search wait: it
//!   reads the listings a page at a time, resting between pages, while
//!   searches are served (and changes applied) on the current snapshot;
//!   changes announced while it read are applied again over its result.
//!   Rows that did not change are shared with the current snapshot, so
//!   memory does not double while it runs.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sea_orm::{
    ColumnTrait, DatabaseBackend, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use tokio::sync::{Mutex, watch};

use crate::domain::coach::CoachStatus;
use crate::domain::reference::ReferenceData;
use crate::error::AppResult;
use entity::{availability_rules, coach_categories, coach_profiles, packages};

pub const MAX_AGE: Duration = Duration::from_secs(60);
/// The age of a refresh while PostgreSQL announces every change.
pub const MAX_AGE_LISTENING: Duration = Duration::from_secs(15 * 60);

/// Listings read per statement by a load: bounds the rows held besides the
/// index, and lets a background refresh rest between pages.
const PAGE: u64 = 2_000;

/// A background refresh rests this many times as long as each page took,
/// so it takes at most a fifth of a core from the searches meanwhile.
const REST_FACTOR: u32 = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// While a background refresh reads: the changes announced since it
    /// began (it may have read those coaches before they changed).
    during_refresh: Option<Changes>,
}

#[derive(Default)]
struct Changes {
    all: bool,
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
    max_age_listening_ms: AtomicU64,
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
                ..Pending::default()
            }),
            dirty: AtomicBool::new(true),
            reloading: Mutex::new(()),
            refreshing: AtomicBool::new(false),
            max_age_ms: AtomicU64::new(MAX_AGE.as_millis() as u64),
            max_age_listening_ms: AtomicU64::new(MAX_AGE_LISTENING.as_millis() as u64),
            listening: AtomicBool::new(false),
            full_loads: AtomicU64::new(0),
            partial_loads: AtomicU64::new(0),
        }
    }

    /// Records changes: everything (`all`), or these coaches.
    fn mark<'a>(&self, all: bool, coaches: impl IntoIterator<Item = &'a String>) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let p = &mut *p;
        for changes in [
            Some(&mut p.all),
            p.during_refresh.as_mut().map(|c| &mut c.all),
        ]
        .into_iter()
        .flatten()
        {
            *changes |= all;
        }
        if !all {
            for id in coaches {
                if !p.all {
                    p.coaches.insert(id.clone());
                }
                if let Some(c) = p.during_refresh.as_mut().filter(|c| !c.all) {
                    c.coaches.insert(id.clone());
                }
            }
        }
        if p.coaches.len() > MAX_PARTIAL {
            p.all = true;
        }
        if p.all {
            p.coaches.clear();
        }
        if let Some(c) = p.during_refresh.as_mut()
            && (c.all || c.coaches.len() > MAX_PARTIAL)
        {
            c.all = true;
            c.coaches.clear();
        }
        // Under the lock, so taking the changes and clearing this agree.
        self.dirty.store(true, Ordering::SeqCst);
    }

    /// Marks the whole index stale: no search starting after this is served
    /// from the current snapshot; the next one reloads it, the others wait.
    pub fn invalidate(&self) {
        self.mark(true, []);
    }

    /// Marks one coach's listing stale, with the same promise as
    /// [`invalidate`](Self::invalidate); only that coach is reloaded.
    pub fn invalidate_coach(&self, coach_id: &str) {
        self.mark(false, [&coach_id.to_string()]);
    }

    /// Whether a change was announced since the snapshot was made (the next
    /// search re-reads it).
    pub fn has_pending_changes(&self) -> bool {
        self.dirty.load(Ordering::SeqCst)
    }

    /// How old a snapshot may get before it is refreshed in the background
    /// (whether or not the listener runs).
    pub fn set_max_age(&self, max_age: Duration) {
        for age in [&self.max_age_ms, &self.max_age_listening_ms] {
            age.store(max_age.as_millis() as u64, Ordering::Relaxed);
        }
    }

    fn max_age(&self) -> Duration {
        let age = if self.is_listening() {
            &self.max_age_listening_ms
        } else {
            &self.max_age_ms
        };
        Duration::from_millis(age.load(Ordering::Relaxed))
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
            if s.loaded_at.elapsed() >= self.max_age()
                && !self.refreshing.swap(true, Ordering::SeqCst)
            {
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
            _ => self.load(db, None).await,
        };
        match loaded {
            Ok(snapshot) => Ok(self.store(snapshot)),
            Err(e) => {
                // Put the changes back, so the next search tries again.
                self.mark(pending.all, &pending.coaches);
                Err(e)
            }
        }
    }

    /// Takes the announced changes; the caller holds `reloading`. A change
    /// announced from here on marks the index dirty again.
    fn take_pending(&self) -> Pending {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        self.dirty.store(false, Ordering::SeqCst);
        Pending {
            all: std::mem::take(&mut p.all),
            coaches: std::mem::take(&mut p.coaches),
            during_refresh: None,
        }
    }

    /// The background reload of an old snapshot, without holding up a
    /// search: it reads in pages, resting between them, while searches go
    /// on with the current snapshot. Changes announced meanwhile are applied
    /// again over the new one by the next search.
    async fn refresh(&self, db: &DatabaseConnection) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .during_refresh = Some(Changes::default());
        let current = self.current();
        let loaded = self.load(db, current.as_deref()).await;
        let _guard = self.reloading.lock().await;
        let during = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .during_refresh
            .take()
            .unwrap_or_default();
        match loaded {
            // Everything became stale meanwhile: the next search reloads it.
            Ok(_) if during.all => {}
            Ok(snapshot) => {
                self.store(snapshot);
                if !during.coaches.is_empty() {
                    self.mark(false, &during.coaches);
                }
            }
            Err(err) => tracing::warn!(error = ?err, "search index refresh failed; will retry"),
        }
    }

    /// Every public listing, with its categories, read a page at a time.
    /// With `current` (a background refresh), it rests between pages and
    /// keeps the rows of `current` that did not change.
    async fn load(
        &self,
        db: &DatabaseConnection,
        current: Option<&Snapshot>,
    ) -> AppResult<Snapshot> {
        use coach_profiles::Column as C;
        let loaded_at = Instant::now();
        let mut rows = Vec::with_capacity(current.map_or(0, |c| c.rows.len()));
        let mut after: Option<String> = None;
        loop {
            let page_started = Instant::now();
            let mut page = coach_profiles::Entity::find()
                .filter(C::Status.eq(CoachStatus::Approved.as_str()))
                .filter(C::Published.eq(true))
                .order_by_asc(C::Id)
                .limit(PAGE);
            if let Some(after) = after.take() {
                page = page.filter(C::Id.gt(after));
            }
            let profiles = page.all(db).await?;
            let Some(last) = profiles.last() else { break };
            after = Some(last.id.clone());
            let more = profiles.len() as u64 == PAGE;
            // The page's id range (not its 2,000 ids: a list that long makes
            // PostgreSQL scan whole tables); rows of coaches not on the
            // page are dropped by `rows_of`.
            let (first, last) = (
                profiles[0].id.as_str(),
                profiles[profiles.len() - 1].id.as_str(),
            );
            let (links, parts) = parts_of(db, Coaches::Range(first, last)).await?;
            rows.extend(self.rows_of(profiles, links, parts, current));
            if !more {
                break;
            }
            if current.is_some() {
                tokio::time::sleep(page_started.elapsed() * REST_FACTOR).await;
            }
        }
        let first = self.full_loads.fetch_add(1, Ordering::SeqCst) == 0;
        let snapshot = index_off_the_runtime(rows, loaded_at).await?;
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
        let ids: Vec<String> = coaches.iter().cloned().collect();
        let (links, page) = parts_of(db, Coaches::Ids(&ids)).await?;
        let mut rows: Vec<Arc<ListingRow>> = current
            .rows
            .iter()
            .filter(|r| !coaches.contains(&r.id))
            .cloned()
            .collect();
        rows.extend(self.rows_of(profiles, links, page, None));
        self.partial_loads.fetch_add(1, Ordering::SeqCst);
        index_off_the_runtime(rows, current.loaded_at).await
    }

    fn rows_of(
        &self,
        profiles: Vec<coach_profiles::Model>,
        links: Vec<coach_categories::Model>,
        page: PageParts,
        current: Option<&Snapshot>,
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
                let row = ListingRow {
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
                };
                // An unchanged listing keeps its row: the old and the new
                // snapshot share it.
                match current.and_then(|c| c.get(&row.id)) {
                    Some(same) if **same == row => same.clone(),
                    _ => Arc::new(row),
                }
            })
            .collect()
    }
}

/// Indexes the rows on a blocking thread: at 100,000 listings that takes
/// tens of milliseconds, too long to hold a worker of the runtime.
async fn index_off_the_runtime(
    rows: Vec<Arc<ListingRow>>,
    loaded_at: Instant,
) -> AppResult<Snapshot> {
    tokio::task::spawn_blocking(move || Snapshot::new(rows, loaded_at))
        .await
        .map_err(|e| crate::error::AppError::internal(format!("indexing listings: {e}")))
}

/// Which coaches' page parts to read.
enum Coaches<'a> {
    Ids(&'a [String]),
    /// Every id from the first to the last, both included.
    Range(&'a str, &'a str),
}

impl Coaches<'_> {
    fn on<C: ColumnTrait>(&self, col: C) -> sea_orm::Condition {
        match self {
            Coaches::Ids(ids) => sea_orm::Condition::all().add(col.is_in(ids.iter().cloned())),
            Coaches::Range(first, last) => sea_orm::Condition::all()
                .add(col.gte(*first))
                .add(col.lte(*last)),
        }
    }
}

/// The categories, weekly rules and packages on sale of these coaches.
async fn parts_of(
    db: &DatabaseConnection,
    coaches: Coaches<'_>,
) -> AppResult<(Vec<coach_categories::Model>, PageParts)> {
    let links = coach_categories::Entity::find()
        .filter(coaches.on(coach_categories::Column::CoachId))
        .all(db)
        .await?;
    let page = PageParts {
        rules: availability_rules::Entity::find()
            .filter(coaches.on(availability_rules::Column::CoachId))
            .all(db)
            .await?,
        packages: packages::Entity::find()
            .filter(coaches.on(packages::Column::CoachId))
            .filter(packages::Column::Active.eq(true))
            .all(db)
            .await?,
    };
    Ok((links, page))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn during_refresh(index: &ListingIndex) -> Option<(bool, Vec<String>)> {
        let p = index.pending.lock().unwrap();
        p.during_refresh.as_ref().map(|c| {
            let mut ids: Vec<String> = c.coaches.iter().cloned().collect();
            ids.sort();
            (c.all, ids)
        })
    }

    /// A refresh may read a coach before it changes: what is announced
    /// while it reads is kept apart, to be applied again over its result,
    /// besides staying pending for the current snapshot.
    #[test]
    fn changes_announced_during_a_refresh_are_kept_for_it() {
        let index = ListingIndex::new(ReferenceData::default());
        index.take_pending();
        index.invalidate_coach("before");
        assert_eq!(during_refresh(&index), None);

        index.pending.lock().unwrap().during_refresh = Some(Changes::default());
        index.invalidate_coach("b");
        index.invalidate_coach("a");
        assert_eq!(
            during_refresh(&index),
            Some((false, vec!["a".to_string(), "b".to_string()]))
        );
        let pending = index.take_pending();
        assert!(!pending.all);
        assert_eq!(
            pending.coaches.len(),
            3,
            "still pending for the current snapshot"
        );
        // Taking the pending changes leaves the refresh's record alone.
        assert!(during_refresh(&index).is_some_and(|(_, ids)| ids.len() == 2));

        // Past the partial limit, or on a whole invalidation, everything.
        for i in 0..=MAX_PARTIAL {
            index.invalidate_coach(&format!("coach-{i}"));
        }
        assert_eq!(during_refresh(&index), Some((true, vec![])));
        assert!(index.take_pending().all);
        index.pending.lock().unwrap().during_refresh = Some(Changes::default());
        index.invalidate();
        assert_eq!(during_refresh(&index), Some((true, vec![])));
    }
}
