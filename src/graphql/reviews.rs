//! Reviews: written by the consumer of a completed session, answered once
//! by the coach, hidden and shown again by admins. Thin resolvers over
//! `domain::review::write`.

use crate::ratelimit::Bucket;
use async_graphql::{Context, ID, Object, Result};

use crate::domain::review::write;
use crate::domain::types::Role as DomainRole;
use crate::graphql::CtxExt;
use crate::graphql::coach::Review;
use crate::graphql::guards::{RateLimit, RoleGuard};

#[derive(Default)]
pub struct ReviewMutation;

#[Object]
impl ReviewMutation {
    /// Once per completed booking, by its consumer; rating 1..5, comment
    /// at most 2,000 characters (sanitised).
    #[graphql(
        guard = "RoleGuard::Only(DomainRole::Consumer).and(RateLimit::per_user(Bucket::Reviews))"
    )]
    async fn submit_review(
        &self,
        ctx: &Context<'_>,
        booking_id: ID,
        rating: i32,
        #[graphql(default)] comment: String,
    ) -> Result<Review> {
        let state = ctx.state()?;
        let row = write::submit(
            &state.domain,
            ctx.current_user()?,
            &booking_id,
            rating,
            &comment,
        )
        .await?;
        state.review_cache.forget(&row.coach_id);
        Ok(Review(row, false))
    }

    /// The reviewed coach answers, once.
    #[graphql(
        guard = "RoleGuard::Only(DomainRole::Coach).and(RateLimit::per_user(Bucket::Reviews))"
    )]
    async fn respond_to_review(
        &self,
        ctx: &Context<'_>,
        review_id: ID,
        response: String,
    ) -> Result<Review> {
        let state = ctx.state()?;
        let row = write::respond(&state.domain, ctx.current_user()?, &review_id, &response).await?;
        state.review_cache.forget(&row.coach_id);
        Ok(Review(row, false))
    }

    /// Out of the public list and the rating figures; audited
    /// `review.hidden`.
    #[graphql(guard = "RoleGuard::Only(DomainRole::Admin)")]
    async fn hide_review(
        &self,
        ctx: &Context<'_>,
        review_id: ID,
        reason: String,
    ) -> Result<Review> {
        let state = ctx.state()?;
        let (model, row) = write::set_hidden(
            &state.domain,
            ctx.current_user()?,
            &review_id,
            true,
            Some(&reason),
        )
        .await?;
        state.review_cache.forget(&row.coach_id);
        Ok(Review(row, model.hidden))
    }

    #[graphql(guard = "RoleGuard::Only(DomainRole::Admin)")]
    async fn unhide_review(&self, ctx: &Context<'_>, review_id: ID) -> Result<Review> {
        let state = ctx.state()?;
        let (model, row) =
            write::set_hidden(&state.domain, ctx.current_user()?, &review_id, false, None).await?;
        state.review_cache.forget(&row.coach_id);
        Ok(Review(row, model.hidden))
    }
}
