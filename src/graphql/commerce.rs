//! What coaches sell besides single sessions: packages (and their
//! purchases) and sponsorships, thin resolvers over `domain::package` and
//! `domain::sponsorship`. Lists are fetched with what they show in two
//! more queries, never one per item.

use crate::ratelimit::Bucket;
use std::collections::HashMap;

use async_graphql::{Context, Enum, ID, InputObject, Object, Result};
use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::domain::package::{self as packages_domain, PackageInput};
use crate::domain::payment::Purpose;
use crate::domain::sponsorship as sponsorship_domain;
use crate::domain::types::Role as DomainRole;
use crate::error::AppError;
use crate::graphql::CtxExt;
use crate::graphql::booking::Payment;
use crate::graphql::coach::{Coach, Package};
use crate::graphql::guards::{RateLimit, RoleGuard};
use crate::graphql::loaders::{load_one, loaders};
use crate::graphql::scalars::DateTime;
use crate::graphql::types::{Market, Money};
use entity::{package_purchases, packages, payments, sponsorship_plans, sponsorships};

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "crate::domain::package::PurchaseStatus")]
pub enum PackagePurchaseStatus {
    /// Awaiting payment.
    Pending,
    /// Paid; its sessions can be booked until `expiresAt`.
    Active,
    Expired,
    Cancelled,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "crate::domain::sponsorship::SponsorshipStatus")]
pub enum SponsorshipStatus {
    PendingPayment,
    /// Paid: running, or queued after the coach's current one (`startsAt`
    /// in the future).
    Active,
    Expired,
    Cancelled,
}

async fn coach_of(ctx: &Context<'_>, coach_id: &str) -> Result<Coach> {
    load_one(ctx, &loaders(ctx)?.coaches, coach_id.to_string())
        .await?
        .map(Coach)
        .ok_or_else(|| AppError::internal("coach missing").into())
}

pub struct PackagePurchase {
    model: package_purchases::Model,
    package: packages::Model,
    payment: Option<payments::Model>,
}

#[Object]
impl PackagePurchase {
    async fn id(&self) -> ID {
        ID(self.model.id.clone())
    }
    /// The package as it is on sale now (the purchase keeps the sessions,
    /// price and validity it was bought with).
    async fn package(&self) -> Package {
        Package(self.package.clone())
    }
    async fn coach(&self, ctx: &Context<'_>) -> Result<Coach> {
        coach_of(ctx, &self.model.coach_id).await
    }
    async fn session_count(&self) -> i32 {
        self.model.sessions_total
    }
    /// Credits left to book with (0 until paid).
    async fn sessions_remaining(&self) -> i32 {
        self.model.sessions_remaining
    }
    async fn price(&self) -> Money {
        Money {
            amount_minor: self.model.price_minor,
            currency: self.model.currency.clone(),
        }
    }
    /// Set once paid: the validity counts from the payment.
    async fn expires_at(&self) -> Option<DateTime> {
        self.model.expires_at.map(Into::into)
    }
    async fn paid_at(&self) -> Option<DateTime> {
        self.model.paid_at.map(Into::into)
    }
    /// An ACTIVE purchase past its expiry reads EXPIRED at once.
    async fn status(&self) -> PackagePurchaseStatus {
        packages_domain::status_at(&self.model, Utc::now()).into()
    }
    async fn cancellation_reason(&self) -> Option<&str> {
        self.model.cancellation_reason.as_deref()
    }
    async fn payment(&self) -> Option<Payment> {
        self.payment.clone().map(Payment)
    }
    async fn created_at(&self) -> DateTime {
        self.model.created_at.into()
    }
}

pub struct SponsorshipPlan(pub sponsorship_plans::Model);

#[Object]
impl SponsorshipPlan {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn duration_days(&self) -> i32 {
        self.0.duration_days
    }
    async fn price(&self) -> Money {
        Money {
            amount_minor: self.0.price_minor,
            currency: self.0.currency.clone(),
        }
    }
    async fn market(&self, ctx: &Context<'_>) -> Result<Market> {
        let state = ctx.state()?;
        state
            .domain
            .reference
            .market(&self.0.market_id)
            .cloned()
            .map(Market)
            .ok_or_else(|| AppError::internal("plan market missing").into())
    }
}

pub struct Sponsorship {
    model: sponsorships::Model,
    plan: Option<sponsorship_plans::Model>,
    payment: Option<payments::Model>,
}

#[Object]
impl Sponsorship {
    async fn id(&self) -> ID {
        ID(self.model.id.clone())
    }
    async fn coach(&self, ctx: &Context<'_>) -> Result<Coach> {
        coach_of(ctx, &self.model.coach_id).await
    }
    async fn plan(&self) -> Result<SponsorshipPlan> {
        self.plan
            .clone()
            .map(SponsorshipPlan)
            .ok_or_else(|| AppError::internal("sponsorship plan missing").into())
    }
    /// An ACTIVE sponsorship past its end reads EXPIRED at once.
    async fn status(&self) -> SponsorshipStatus {
        sponsorship_domain::status_at(&self.model, Utc::now()).into()
    }
    /// Set once paid.
    async fn starts_at(&self) -> Option<DateTime> {
        self.model.starts_at.map(Into::into)
    }
    async fn ends_at(&self) -> Option<DateTime> {
        self.model.ends_at.map(Into::into)
    }
    /// What was paid (the plan's price when bought).
    async fn price(&self) -> Money {
        Money {
            amount_minor: self.model.price_minor,
            currency: self.model.currency.clone(),
        }
    }
    async fn duration_days(&self) -> i32 {
        self.model.duration_days
    }
    async fn cancellation_reason(&self) -> Option<&str> {
        self.model.cancellation_reason.as_deref()
    }
    async fn payment(&self) -> Option<Payment> {
        self.payment.clone().map(Payment)
    }
    async fn created_at(&self) -> DateTime {
        self.model.created_at.into()
    }
}

/// The payments linked through `link` to these ids, by the id each pays
/// for.
async fn payments_for(
    db: &sea_orm::DatabaseConnection,
    link: payments::Column,
    ids: Vec<String>,
) -> Result<HashMap<String, payments::Model>> {
    Ok(payments::Entity::find()
        .filter(link.is_in(ids))
        .all(db)
        .await
        .map_err(AppError::from)?
        .into_iter()
        .filter_map(|p| Purpose::of(&p).map(|purpose| (purpose.id().to_string(), p)))
        .collect())
}

/// Purchases with their packages and payments, in two queries.
async fn purchases_with(
    db: &sea_orm::DatabaseConnection,
    rows: Vec<package_purchases::Model>,
) -> Result<Vec<PackagePurchase>> {
    let package_ids: Vec<String> = rows.iter().map(|r| r.package_id.clone()).collect();
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let packages: HashMap<String, packages::Model> = packages::Entity::find()
        .filter(packages::Column::Id.is_in(package_ids))
        .all(db)
        .await
        .map_err(AppError::from)?
        .into_iter()
        .map(|p| (p.id.clone(), p))
        .collect();
    let mut payments = payments_for(db, payments::Column::PackagePurchaseId, ids).await?;
    rows.into_iter()
        .map(|model| {
            let package = packages
                .get(&model.package_id)
                .cloned()
                .ok_or_else(|| AppError::internal("purchased package missing"))?;
            let payment = payments.remove(&model.id);
            Ok(PackagePurchase {
                model,
                package,
                payment,
            })
        })
        .collect()
}

/// Sponsorships with their plans and payments, in two queries.
async fn sponsorships_with(
    db: &sea_orm::DatabaseConnection,
    rows: Vec<sponsorships::Model>,
) -> Result<Vec<Sponsorship>> {
    let plan_ids: Vec<String> = rows.iter().map(|r| r.plan_id.clone()).collect();
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let plans: HashMap<String, sponsorship_plans::Model> = sponsorship_plans::Entity::find()
        .filter(sponsorship_plans::Column::Id.is_in(plan_ids))
        .all(db)
        .await
        .map_err(AppError::from)?
        .into_iter()
        .map(|p| (p.id.clone(), p))
        .collect();
    let mut payments = payments_for(db, payments::Column::SponsorshipId, ids).await?;
    Ok(rows
        .into_iter()
        .map(|model| Sponsorship {
            plan: plans.get(&model.plan_id).cloned(),
            payment: payments.remove(&model.id),
            model,
        })
        .collect())
}

#[derive(InputObject)]
pub struct PackageCreateInput {
    pub name: String,
    pub session_count: i32,
    pub price_minor: i64,
    pub validity_days: i32,
}

#[derive(Default)]
pub struct CommerceQuery;

#[Object]
impl CommerceQuery {
    /// The caller's package purchases, newest first (the latest 100).
    #[graphql(guard = "RoleGuard::Only(DomainRole::Consumer)")]
    async fn my_package_purchases(&self, ctx: &Context<'_>) -> Result<Vec<PackagePurchase>> {
        let db = &ctx.state()?.domain.db;
        let rows = packages_domain::mine(db, ctx.current_user()?).await?;
        purchases_with(db, rows).await
    }

    /// The sponsorship plans of a market, shortest first.
    async fn sponsorship_plans(
        &self,
        ctx: &Context<'_>,
        market_code: String,
    ) -> Result<Vec<SponsorshipPlan>> {
        let state = ctx.state()?;
        Ok(sponsorship_domain::plans(&state.domain, &market_code)
            .await?
            .into_iter()
            .map(SponsorshipPlan)
            .collect())
    }

    /// The caller's sponsorships (as a coach), newest first.
    #[graphql(guard = "RoleGuard::Only(DomainRole::Coach)")]
    async fn my_sponsorships(&self, ctx: &Context<'_>) -> Result<Vec<Sponsorship>> {
        let db = &ctx.state()?.domain.db;
        let Some(profile) = crate::domain::coach::find_by_user(db, &ctx.current_user()?.id).await?
        else {
            return Ok(Vec::new());
        };
        let rows = sponsorship_domain::of_coach(db, &profile.id).await?;
        sponsorships_with(db, rows).await
    }

    /// Every coach's sponsorships, newest first (the latest 100), of one
    /// status as of now if given.
    #[graphql(guard = "RoleGuard::Only(DomainRole::Admin)")]
    async fn admin_sponsorships(
        &self,
        ctx: &Context<'_>,
        status: Option<SponsorshipStatus>,
    ) -> Result<Vec<Sponsorship>> {
        let db = &ctx.state()?.domain.db;
        let rows = sponsorship_domain::for_admin(db, status.map(Into::into)).await?;
        sponsorships_with(db, rows).await
    }
}

#[derive(Default)]
pub struct CommerceMutation;

#[Object]
impl CommerceMutation {
    /// A new package of the caller's, on sale at once in their currency.
    #[graphql(guard = "RoleGuard::Only(DomainRole::Coach)")]
    async fn create_package(
        &self,
        ctx: &Context<'_>,
        input: PackageCreateInput,
    ) -> Result<Package> {
        let state = ctx.state()?;
        Ok(Package(
            packages_domain::create(
                &state.domain,
                ctx.current_user()?,
                PackageInput {
                    name: input.name,
                    session_count: input.session_count,
                    price_minor: input.price_minor,
                    validity_days: input.validity_days,
                },
            )
            .await?,
        ))
    }

    /// Puts the caller's package on sale or takes it off (credits bought
    /// stay valid).
    #[graphql(guard = "RoleGuard::Only(DomainRole::Coach)")]
    async fn set_package_active(
        &self,
        ctx: &Context<'_>,
        package_id: ID,
        active: bool,
    ) -> Result<Package> {
        let state = ctx.state()?;
        Ok(Package(
            packages_domain::set_active(&state.domain, ctx.current_user()?, &package_id, active)
                .await?,
        ))
    }

    /// A PENDING purchase whose `payment.checkoutUrl` the client opens;
    /// ACTIVE with its credits once the payment provider reports it paid.
    #[graphql(
        guard = "RoleGuard::Only(DomainRole::Consumer).and(RateLimit::per_user(Bucket::Checkouts))"
    )]
    async fn purchase_package(&self, ctx: &Context<'_>, package_id: ID) -> Result<PackagePurchase> {
        let state = ctx.state()?;
        let (model, payment) =
            packages_domain::purchase(&state.domain, ctx.current_user()?, &package_id).await?;
        let package = packages_domain::find(&state.domain.db, &model.package_id).await?;
        Ok(PackagePurchase {
            model,
            package,
            payment: Some(payment),
        })
    }

    /// A PENDING_PAYMENT sponsorship whose `payment.checkoutUrl` the coach
    /// opens; ACTIVE once paid, for the plan's days.
    #[graphql(
        guard = "RoleGuard::Only(DomainRole::Coach).and(RateLimit::per_user(Bucket::Checkouts))"
    )]
    async fn purchase_sponsorship(&self, ctx: &Context<'_>, plan_id: ID) -> Result<Sponsorship> {
        let state = ctx.state()?;
        let (model, payment) =
            sponsorship_domain::purchase(&state.domain, ctx.current_user()?, &plan_id).await?;
        let plan = sponsorship_domain::plan(&state.domain.db, &model.plan_id).await?;
        Ok(Sponsorship {
            model,
            plan: Some(plan),
            payment: Some(payment),
        })
    }

    /// Cancels a sponsorship (awaiting payment, running or queued),
    /// refunding `refundMinor` of its payment (default none). The coach's
    /// later sponsorships move up. Audited.
    #[graphql(guard = "RoleGuard::Only(DomainRole::Admin)")]
    async fn cancel_sponsorship(
        &self,
        ctx: &Context<'_>,
        sponsorship_id: ID,
        reason: String,
        #[graphql(default = 0)] refund_minor: i64,
    ) -> Result<Sponsorship> {
        let state = ctx.state()?;
        let db = &state.domain.db;
        let model = sponsorship_domain::cancel(
            &state.domain,
            ctx.current_user()?,
            &sponsorship_id,
            &reason,
            refund_minor,
        )
        .await?;
        let mut with = sponsorships_with(db, vec![model]).await?;
        with.pop()
            .ok_or_else(|| AppError::internal("sponsorship missing").into())
    }
}
