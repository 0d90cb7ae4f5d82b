//! Admin: coach review, suspension and listings. Every field is admin-only
//! and every change is audited by the domain.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, ID, Object, Result, SimpleObject};

use crate::domain::types::Role as DomainRole;
use crate::domain::{admin, coach as domain};
use crate::graphql::CtxExt;
use crate::graphql::coach::{Coach, CoachConnection, CoachStatus, TotalCount};
use crate::graphql::guards::RoleGuard;
use crate::graphql::scalars::DateTime;
use crate::graphql::types::{Money, Role, User};

pub type UserConnection = Connection<String, User, TotalCount>;
pub type AuditConnection = Connection<String, AuditEntry, TotalCount>;

/// The admin console's figures; money per currency, never summed across.
#[derive(SimpleObject)]
pub struct AdminStats {
    /// Bookings created in the range.
    bookings_count: u64,
    /// Of those, COMPLETED and CANCELLED now.
    completed_count: u64,
    cancelled_count: u64,
    new_users: u64,
    /// Coaches with a paid booking created in the range.
    active_coaches: u64,
    /// Paid in the range, less refunds.
    gross_revenue: Vec<Money>,
    /// What the platform keeps of it: fees after refunds, sponsorships.
    platform_revenue: Vec<Money>,
}

pub struct AuditEntry(entity::audit_log::Model);

#[Object]
impl AuditEntry {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn action(&self) -> &str {
        &self.0.action
    }
    async fn actor_id(&self) -> Option<ID> {
        self.0.actor_id.clone().map(ID)
    }
    async fn target_type(&self) -> Option<&str> {
        self.0.target_type.as_deref()
    }
    async fn target_id(&self) -> Option<ID> {
        self.0.target_id.clone().map(ID)
    }
    async fn ip(&self) -> Option<&str> {
        self.0.ip.as_deref()
    }
    /// The entry's details, as JSON (never a secret).
    async fn detail(&self) -> Option<&str> {
        self.0.detail.as_deref()
    }
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
}

fn monies(v: Vec<(String, i64)>) -> Vec<Money> {
    v.into_iter()
        .map(|(currency, amount_minor)| Money {
            amount_minor,
            currency,
        })
        .collect()
}

#[derive(Default)]
pub struct AdminQuery;

#[Object]
impl AdminQuery {
    #[graphql(guard = "RoleGuard::Only(DomainRole::Admin)")]
    async fn admin_coaches(
        &self,
        ctx: &Context<'_>,
        status: Option<CoachStatus>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<CoachConnection> {
        let state = ctx.state()?;
        let page = admin::coaches(
            &state.domain.db,
            status.map(Into::into),
            first,
            after.as_deref(),
        )
        .await?;
        let ids: Vec<String> = page.items.iter().map(|c| c.id.clone()).collect();
        crate::graphql::loaders::prefetch(ctx, &ids, false)
            .await
            .map_err(crate::graphql::loaders::load_err)?;
        let mut conn = CoachConnection::with_additional_fields(
            after.is_some(),
            page.has_next,
            TotalCount {
                total_count: page.total_count,
            },
        );
        for (m, c) in page.items.into_iter().zip(page.cursors) {
            conn.edges.push(Edge::new(c, Coach::from(m)));
        }
        Ok(conn)
    }

    #[graphql(guard = "RoleGuard::Only(DomainRole::Admin)")]
    async fn admin_users(
        &self,
        ctx: &Context<'_>,
        query: Option<String>,
        role: Option<Role>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<UserConnection> {
        let state = ctx.state()?;
        let page = admin::users(
            &state.domain.db,
            query.as_deref(),
            role.map(Into::into),
            first,
            after.as_deref(),
        )
        .await?;
        let mut conn = UserConnection::with_additional_fields(
            after.is_some(),
            page.has_next,
            TotalCount {
                total_count: page.total_count,
            },
        );
        for (m, c) in page.items.into_iter().zip(page.cursors) {
            conn.edges.push(Edge::new(c, User::other(m)));
        }
        Ok(conn)
    }
}

#[derive(Default)]
pub struct AdminFiguresQuery;

#[Object]
impl AdminFiguresQuery {
    /// Figures for `[from, to)`.
    #[graphql(guard = "RoleGuard::Only(DomainRole::Admin)")]
    async fn admin_stats(
        &self,
        ctx: &Context<'_>,
        from: DateTime,
        to: DateTime,
    ) -> Result<AdminStats> {
        let state = ctx.state()?;
        let s = admin::stats(&state.domain.db, from.0, to.0).await?;
        Ok(AdminStats {
            bookings_count: s.bookings_count,
            completed_count: s.completed_count,
            cancelled_count: s.cancelled_count,
            new_users: s.new_users,
            active_coaches: s.active_coaches,
            gross_revenue: monies(s.gross),
            platform_revenue: monies(s.platform),
        })
    }

    /// The audit log, newest first.
    #[allow(clippy::too_many_arguments)]
    #[graphql(guard = "RoleGuard::Only(DomainRole::Admin)")]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        action: Option<String>,
        actor_id: Option<ID>,
        target_id: Option<ID>,
        from: Option<DateTime>,
        to: Option<DateTime>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<AuditConnection> {
        let state = ctx.state()?;
        let page = admin::audit_log(
            &state.domain.db,
            admin::AuditFilter {
                action,
                actor_id: actor_id.map(|i| i.0),
                target_id: target_id.map(|i| i.0),
                from: from.map(|d| d.0),
                to: to.map(|d| d.0),
            },
            first,
            after.as_deref(),
        )
        .await?;
        let mut conn = AuditConnection::with_additional_fields(
            after.is_some(),
            page.has_next,
            TotalCount {
                total_count: page.total_count,
            },
        );
        for (m, c) in page.items.into_iter().zip(page.cursors) {
            conn.edges.push(Edge::new(c, AuditEntry(m)));
        }
        Ok(conn)
    }
}

#[derive(Default)]
pub struct AdminMutation;

#[Object]
impl AdminMutation {
    #[graphql(guard = "RoleGuard::Only(DomainRole::Admin)")]
    async fn approve_coach(&self, ctx: &Context<'_>, coach_id: ID) -> Result<Coach> {
        decide(ctx, &coach_id, true, None).await
    }

    #[graphql(guard = "RoleGuard::Only(DomainRole::Admin)")]
    async fn reject_coach(&self, ctx: &Context<'_>, coach_id: ID, reason: String) -> Result<Coach> {
        decide(ctx, &coach_id, false, Some(&reason)).await
    }

    /// Cuts off every token of the user at once; a coach leaves search.
    #[graphql(guard = "RoleGuard::Only(DomainRole::Admin)")]
    async fn suspend_user(&self, ctx: &Context<'_>, user_id: ID, reason: String) -> Result<User> {
        let state = ctx.state()?;
        let ip = ctx.request()?.ip_string();
        let changed = admin::suspend_user(
            &state.domain,
            ctx.current_user()?,
            &user_id,
            &reason,
            ip.as_deref(),
        )
        .await?;
        Ok(User::other(changed))
    }
}

/// An admin's decision on a profile under review.
async fn decide(
    ctx: &Context<'_>,
    coach_id: &str,
    approve: bool,
    reason: Option<&str>,
) -> Result<Coach> {
    let state = ctx.state()?;
    let ip = ctx.request()?.ip_string();
    let changed = domain::review(
        &state.domain,
        ctx.current_user()?,
        coach_id,
        approve,
        reason,
        ip.as_deref(),
    )
    .await?;
    Ok(Coach::from(changed))
}
