//! Admin: coach review, suspension and listings. Every field is admin-only
//! and every change is audited by the domain.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, ID, Object, Result};

use crate::domain::types::Role as DomainRole;
use crate::domain::{admin, coach as domain};
use crate::graphql::CtxExt;
use crate::graphql::coach::{Coach, CoachConnection, CoachStatus, TotalCount};
use crate::graphql::guards::RoleGuard;
use crate::graphql::types::{Role, User};

pub type UserConnection = Connection<String, User, TotalCount>;

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
