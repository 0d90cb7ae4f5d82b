//! Coaches: the `Coach` type and its nested fields (all batched through
//! dataloaders), profile mutations, `coach`, `availableSlots` and
//! `searchCoaches`.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use chrono::Utc;

use crate::domain::coach::{self as domain, CoachStatus as DomainStatus};
use crate::domain::review::ReviewKey;
use crate::domain::review::ReviewRow;
use crate::domain::search::{self, Filter};
use crate::domain::types::Role as DomainRole;
use crate::error::AppError;
use crate::graphql::CtxExt;
use crate::graphql::guards::RoleGuard;
use crate::graphql::loaders::{Loaders, load_err, load_one, loaders};
use crate::graphql::scalars::DateTime;
use crate::graphql::types::{Category, Market, Money};
use crate::graphql::{AuthState, RequestCtx};
use entity::{coach_profiles, packages};

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "crate::domain::coach::CoachStatus")]
pub enum CoachStatus {
    Draft,
    PendingReview,
    Approved,
    Rejected,
    Suspended,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Default)]
#[graphql(remote = "crate::domain::search::Sort")]
pub enum CoachSort {
    /// Sponsored coaches first, then those whose name, headline or category
    /// matches the query above those matched in their bio only, then by
    /// the damped rating (`Coach.ratingScore`).
    #[default]
    Relevance,
    /// By the damped rating, `Coach.ratingScore`, highest first: the
    /// average blended with ten imaginary 4.0 reviews, so a single 5-star
    /// review does not outrank fifty 4.8s.
    Rating,
    /// Cheapest first, within one market (see `CoachSearchFilter.marketCode`).
    PriceLow,
    /// Dearest first, within one market.
    PriceHigh,
    Newest,
}

#[derive(SimpleObject, Clone)]
pub struct AvailabilityRule {
    /// 1 = Monday .. 7 = Sunday.
    pub weekday: i32,
    pub start_time: String,
    pub end_time: String,
}

#[derive(InputObject)]
pub struct AvailabilityRuleInput {
    pub weekday: i32,
    pub start_time: String,
    pub end_time: String,
}

#[derive(SimpleObject)]
pub struct Slot {
    pub start_at: DateTime,
    pub end_at: DateTime,
}

/// The total number of items a connection would list over all its pages.
#[derive(SimpleObject)]
pub struct TotalCount {
    pub total_count: u64,
}

pub type CoachConnection = Connection<String, Coach, TotalCount>;
pub type ReviewConnection = Connection<String, Review, TotalCount>;

/// A review, and whether an admin hid it (public lists hold only visible
/// ones).
pub struct Review(pub ReviewRow, pub bool);

/// First name and last initial: enough to be personal, not enough to find.
fn short_name(full: &str) -> String {
    if full == crate::domain::privacy::DELETED_NAME {
        return full.to_string();
    }
    let mut parts = full.split_whitespace();
    let first = parts.next().unwrap_or("Parent");
    match parts.last().and_then(|l| l.chars().next()) {
        Some(initial) => format!("{first} {initial}."),
        None => first.to_string(),
    }
}

#[Object]
impl Review {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn rating(&self) -> i32 {
        i32::from(self.0.rating)
    }
    async fn comment(&self) -> &str {
        &self.0.comment
    }
    async fn coach_response(&self) -> Option<&str> {
        self.0.coach_response.as_deref()
    }
    async fn author_name(&self) -> String {
        short_name(&self.0.author_name)
    }
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
    /// Hidden by an admin: out of the public list and the rating figures.
    async fn hidden(&self) -> bool {
        self.1
    }
}

pub struct Package(pub packages::Model);

#[Object]
impl Package {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn coach_id(&self) -> ID {
        ID(self.0.coach_id.clone())
    }
    async fn coach(&self, ctx: &Context<'_>) -> Result<Coach> {
        load_one(ctx, &loaders(ctx)?.coaches, self.0.coach_id.clone())
            .await?
            .map(Coach)
            .ok_or_else(|| AppError::internal("package coach missing").into())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn session_count(&self) -> i32 {
        self.0.session_count
    }
    async fn price(&self) -> Money {
        Money {
            amount_minor: self.0.price_minor,
            currency: self.0.currency.clone(),
        }
    }
    async fn validity_days(&self) -> i32 {
        self.0.validity_days
    }
    async fn active(&self) -> bool {
        self.0.active
    }
}

/// Shared: a search page serves the index's copy of each profile.
pub struct Coach(pub std::sync::Arc<coach_profiles::Model>);

impl From<coach_profiles::Model> for Coach {
    fn from(m: coach_profiles::Model) -> Self {
        Coach(std::sync::Arc::new(m))
    }
}

impl Coach {
    fn owner_or_admin(&self, ctx: &Context<'_>) -> bool {
        match ctx.data_opt::<RequestCtx>().map(|r| &r.auth) {
            Some(AuthState::User(u)) => u.role == DomainRole::Admin || u.id == self.0.user_id,
            _ => false,
        }
    }
}

#[Object]
impl Coach {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// The coach's account: owner and admins only; null for everyone else.
    async fn user_id(&self, ctx: &Context<'_>) -> Option<ID> {
        self.owner_or_admin(ctx).then(|| ID(self.0.user_id.clone()))
    }
    async fn display_name(&self) -> &str {
        &self.0.display_name
    }
    async fn headline(&self) -> &str {
        &self.0.headline
    }
    /// Sanitised HTML: only p, br, b, strong, i, em, ul, ol, li; no attributes.
    async fn bio(&self) -> &str {
        &self.0.bio
    }
    async fn categories(&self, ctx: &Context<'_>) -> Result<Vec<Category>> {
        let state = ctx.state()?;
        let ids = load_one(ctx, &loaders(ctx)?.categories, self.0.id.clone())
            .await?
            .unwrap_or_default();
        let mut out: Vec<Category> = ids
            .iter()
            .filter_map(|id| state.domain.reference.category(id))
            .cloned()
            .map(Category)
            .collect();
        out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        Ok(out)
    }
    async fn market(&self, ctx: &Context<'_>) -> Result<Market> {
        let state = ctx.state()?;
        Ok(Market(
            state
                .domain
                .reference
                .market(&self.0.market_id)
                .cloned()
                .ok_or_else(|| AppError::internal("coach market missing"))?,
        ))
    }
    async fn hourly_rate(&self) -> Money {
        Money {
            amount_minor: self.0.hourly_rate_minor,
            currency: self.0.currency.clone(),
        }
    }
    async fn session_durations(&self) -> Vec<i32> {
        domain::durations_of(&self.0)
            .into_iter()
            .map(|d| d as i32)
            .collect()
    }
    async fn timezone(&self) -> &str {
        &self.0.timezone
    }
    async fn status(&self) -> CoachStatus {
        DomainStatus::parse(&self.0.status).map_or(CoachStatus::Draft, CoachStatus::from)
    }
    async fn published(&self) -> bool {
        self.0.published
    }
    /// Shown on the card as "Sponsored": the coach pays for placement.
    /// Only ever for a coach the public can book: a sponsorship never
    /// lifts a profile that is not approved, published and payable.
    async fn is_sponsored(&self, ctx: &Context<'_>) -> Result<bool> {
        let payouts_required = ctx.state()?.domain.policy.payouts_required;
        Ok(self.0.sponsored_until.is_some_and(|u| u > Utc::now())
            && domain::visible_to(&self.0, None)
            && (!payouts_required || domain::can_be_paid(&self.0)))
    }
    /// The damped rating that RATING (and RELEVANCE after sponsorship and
    /// text) sorts by: visible reviews blended with ten imaginary 4.0s;
    /// 4.0 without reviews.
    async fn rating_score(&self) -> f64 {
        (self.0.rating_score as f64 / 10_000.0).round() / 100.0
    }
    /// Plain average of visible reviews; null without reviews.
    async fn rating_average(&self) -> Option<f64> {
        (self.0.rating_count > 0).then(|| {
            let avg = self.0.rating_sum as f64 / f64::from(self.0.rating_count);
            (avg * 100.0).round() / 100.0
        })
    }
    async fn rating_count(&self) -> i32 {
        self.0.rating_count
    }
    /// Newest first.
    async fn reviews(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<ReviewConnection> {
        let limit = search::page_size(first)? as u32;
        let total = u64::try_from(self.0.rating_count).unwrap_or(0);
        let rows = match after {
            // The common case (a card or a profile page) is batched.
            None => {
                let mut rows = load_one(
                    ctx,
                    &loaders(ctx)?.reviews,
                    ReviewKey {
                        coach_id: self.0.id.clone(),
                        first: limit + 1,
                    },
                )
                .await?
                .unwrap_or_default();
                rows.truncate(limit as usize + 1);
                rows
            }
            Some(after) => {
                let state = ctx.state()?;
                crate::domain::review::page(&state.domain.db, &self.0.id, limit + 1, &after).await?
            }
        };
        let has_next = rows.len() > limit as usize;
        let mut conn = ReviewConnection::with_additional_fields(
            false,
            has_next,
            TotalCount { total_count: total },
        );
        for r in rows.into_iter().take(limit as usize) {
            conn.edges.push(Edge::new(r.id.clone(), Review(r, false)));
        }
        Ok(conn)
    }
    /// The packages on sale; the owner and admins see those taken off sale
    /// too.
    async fn packages(&self, ctx: &Context<'_>) -> Result<Vec<Package>> {
        if self.owner_or_admin(ctx) {
            let state = ctx.state()?;
            return Ok(
                crate::domain::package::all_of_coach(&state.domain.db, &self.0.id)
                    .await?
                    .into_iter()
                    .map(Package)
                    .collect(),
            );
        }
        Ok(load_one(ctx, &loaders(ctx)?.packages, self.0.id.clone())
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(Package)
            .collect())
    }
    async fn availability(&self, ctx: &Context<'_>) -> Result<Vec<AvailabilityRule>> {
        Ok(
            load_one(ctx, &loaders(ctx)?.availability, self.0.id.clone())
                .await?
                .unwrap_or_default()
                .iter()
                .map(|r| {
                    let r = crate::domain::availability::rule_of(r);
                    AvailabilityRule {
                        weekday: i32::from(r.weekday),
                        start_time: crate::domain::availability::format_hhmm(r.start_minute),
                        end_time: crate::domain::availability::format_hhmm(r.end_minute),
                    }
                })
                .collect(),
        )
    }
    async fn payouts_enabled(&self) -> bool {
        self.0.payouts_enabled
    }
    /// Owner and admins only; null for everyone else.
    async fn meeting_url(&self, ctx: &Context<'_>) -> Option<&str> {
        if self.owner_or_admin(ctx) {
            self.0.meeting_url.as_deref()
        } else {
            None
        }
    }
    /// Why an admin rejected the profile (owner and admins only).
    async fn rejection_reason(&self, ctx: &Context<'_>) -> Option<&str> {
        if self.owner_or_admin(ctx) {
            self.0.rejection_reason.as_deref()
        } else {
            None
        }
    }
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
}

#[derive(InputObject)]
pub struct CoachProfileInput {
    pub display_name: String,
    pub headline: String,
    pub bio: String,
    pub category_slugs: Vec<String>,
    pub hourly_rate_minor: i64,
    pub session_durations: Vec<i32>,
    pub timezone: String,
    pub meeting_url: Option<String>,
}

#[derive(InputObject, Default)]
pub struct CoachSearchFilter {
    /// Words of the name, headline, bio or a category's name or slug;
    /// letter case and accents do not matter.
    pub query: Option<String>,
    pub category_slug: Option<String>,
    /// Without it, a price filter or price sort uses the signed-in
    /// caller's market, and without either is refused: prices are never
    /// compared across currencies.
    pub market_code: Option<String>,
    pub min_rating: Option<f64>,
    /// In the minor unit of the market's currency.
    pub max_hourly_rate_minor: Option<i64>,
}

/// Builds a connection from a search page.
pub fn coach_connection(page: search::Page, has_previous: bool) -> CoachConnection {
    let mut conn = CoachConnection::with_additional_fields(
        has_previous,
        page.has_next,
        TotalCount {
            total_count: page.total_count,
        },
    );
    for (m, cursor) in page.coaches.into_iter().zip(page.cursors) {
        conn.edges.push(Edge::new(cursor, Coach(m)));
    }
    conn
}

fn viewer<'a>(ctx: &'a Context<'_>) -> Option<&'a crate::domain::auth::CurrentUser> {
    match ctx.data_opt::<RequestCtx>().map(|r| &r.auth) {
        Some(AuthState::User(u)) => Some(u),
        _ => None,
    }
}

#[derive(Default)]
pub struct CoachQuery;

#[Object]
impl CoachQuery {
    /// A coach the caller may see: public ones, and always one's own (and
    /// any, for admins); null otherwise.
    async fn coach(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Coach>> {
        let state = ctx.state()?;
        // A public coach's page is served from the search index: profile,
        // categories, weekly rules and packages on sale need no statement
        // (reviews come from their loader and its shared cache).
        let snapshot = state.domain.listings.snapshot(&state.domain.db).await?;
        if let Some(row) = snapshot.get(&id) {
            if let Some(loaders) = ctx.data_opt::<Loaders>() {
                let categories = row
                    .categories
                    .iter()
                    .filter_map(|p| state.domain.reference.categories().get(usize::from(*p)))
                    .map(|c| c.id.clone())
                    .collect();
                loaders
                    .categories
                    .feed_many([(row.id.clone(), categories)])
                    .await;
                loaders
                    .availability
                    .feed_many([(row.id.clone(), (*row.availability).clone())])
                    .await;
                loaders
                    .packages
                    .feed_many([(row.id.clone(), (*row.packages).clone())])
                    .await;
            }
            return Ok(Some(Coach(row.profile.clone())));
        }
        // Not public: only its owner or an admin sees it.
        Ok(domain::find_visible(&state.domain.db, &id, viewer(ctx))
            .await?
            .map(Coach::from))
    }

    /// The caller's own coach profile, if any.
    #[graphql(guard = "RoleGuard::Only(DomainRole::Coach)")]
    async fn my_coach_profile(&self, ctx: &Context<'_>) -> Result<Option<Coach>> {
        let state = ctx.state()?;
        Ok(
            domain::find_by_user(&state.domain.db, &ctx.current_user()?.id)
                .await?
                .map(Coach::from),
        )
    }

    async fn available_slots(
        &self,
        ctx: &Context<'_>,
        coach_id: ID,
        from: DateTime,
        to: DateTime,
        duration_minutes: i32,
    ) -> Result<Vec<Slot>> {
        let state = ctx.state()?;
        let profile = domain::find_visible(&state.domain.db, &coach_id, viewer(ctx))
            .await?
            .ok_or(AppError::NotFound("coach"))?;
        let slots = crate::domain::availability::open_slots(
            &state.domain.db,
            &profile,
            from.0,
            to.0,
            duration_minutes,
            (
                Utc::now() + state.domain.policy.min_booking_notice(),
                Utc::now() + state.domain.policy.booking_horizon(),
            ),
        )
        .await?;
        Ok(slots
            .into_iter()
            .map(|s| Slot {
                start_at: s.start.into(),
                end_at: s.end.into(),
            })
            .collect())
    }

    async fn search_coaches(
        &self,
        ctx: &Context<'_>,
        filter: Option<CoachSearchFilter>,
        // Nullable so that an omitted variable (`sort: $s`) means the default.
        #[graphql(default_with = "Some(CoachSort::Relevance)")] sort: Option<CoachSort>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<CoachConnection> {
        let state = ctx.state()?;
        let f = filter.unwrap_or_default();
        let filter = Filter {
            query: f.query,
            category_slug: f.category_slug,
            market_code: f.market_code,
            min_rating: f.min_rating,
            max_hourly_rate_minor: f.max_hourly_rate_minor,
            payouts_required: state.domain.policy.payouts_required,
            caller_market_id: ctx
                .current_user()
                .ok()
                .and_then(|u| u.user.market_id.clone()),
        };
        let has_previous = after.is_some();
        let mut page = search::search(
            &state.domain.db,
            &state.domain.listings,
            &state.domain.reference,
            &filter,
            sort.unwrap_or_default().into(),
            first,
            after.as_deref(),
        )
        .await?;
        let ids: Vec<String> = page.coaches.iter().map(|c| c.id.clone()).collect();
        // The index already knows each listed coach's categories.
        if let Some(loaders) = ctx.data_opt::<Loaders>() {
            loaders
                .categories
                .feed_many(std::mem::take(&mut page.categories))
                .await;
        }
        crate::graphql::loaders::prefetch(ctx, &ids, true)
            .await
            .map_err(load_err)?;
        Ok(coach_connection(page, has_previous))
    }
}

#[derive(Default)]
pub struct CoachMutation;

#[Object]
impl CoachMutation {
    #[graphql(guard = "RoleGuard::Only(DomainRole::Coach)")]
    async fn upsert_coach_profile(
        &self,
        ctx: &Context<'_>,
        input: CoachProfileInput,
    ) -> Result<Coach> {
        let state = ctx.state()?;
        let model = domain::upsert_profile(
            &state.domain,
            ctx.current_user()?,
            domain::ProfileInput {
                display_name: &input.display_name,
                headline: &input.headline,
                bio: &input.bio,
                category_slugs: &input.category_slugs,
                hourly_rate_minor: input.hourly_rate_minor,
                session_durations: &input.session_durations,
                timezone: &input.timezone,
                meeting_url: input.meeting_url.as_deref(),
            },
        )
        .await?;
        Ok(Coach::from(model))
    }

    /// Replaces all availability rules.
    #[graphql(guard = "RoleGuard::Only(DomainRole::Coach)")]
    async fn set_availability(
        &self,
        ctx: &Context<'_>,
        rules: Vec<AvailabilityRuleInput>,
    ) -> Result<Coach> {
        let state = ctx.state()?;
        let raw: Vec<(i32, String, String)> = rules
            .into_iter()
            .map(|r| (r.weekday, r.start_time, r.end_time))
            .collect();
        Ok(Coach::from(
            crate::domain::availability::set_availability(&state.domain, ctx.current_user()?, &raw)
                .await?,
        ))
    }

    /// DRAFT or REJECTED -> PENDING_REVIEW.
    #[graphql(guard = "RoleGuard::Only(DomainRole::Coach)")]
    async fn submit_coach_profile(&self, ctx: &Context<'_>) -> Result<Coach> {
        let state = ctx.state()?;
        let ip = ctx.request()?.ip_string();
        Ok(Coach::from(
            domain::submit(&state.domain, ctx.current_user()?, ip.as_deref()).await?,
        ))
    }

    /// Only an APPROVED profile can be published; unpublishing always works.
    #[graphql(guard = "RoleGuard::Only(DomainRole::Coach)")]
    async fn publish_coach_profile(&self, ctx: &Context<'_>, published: bool) -> Result<Coach> {
        let state = ctx.state()?;
        let coach = domain::publish(&state.domain, ctx.current_user()?, published).await?;
        Ok(Coach::from(coach))
    }
}
