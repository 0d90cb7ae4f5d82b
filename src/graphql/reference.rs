//! Markets and categories (public, served from the in-memory cache).

use async_graphql::{Context, Object, Result};

use crate::graphql::CtxExt;
use crate::graphql::types::{Category, Market};

#[derive(Default)]
pub struct ReferenceQuery;

#[Object]
impl ReferenceQuery {
    async fn markets(&self, ctx: &Context<'_>) -> Result<Vec<Market>> {
        let state = ctx.state()?;
        Ok(state
            .domain
            .reference
            .markets()
            .iter()
            .cloned()
            .map(Market)
            .collect())
    }

    async fn categories(&self, ctx: &Context<'_>) -> Result<Vec<Category>> {
        let state = ctx.state()?;
        Ok(state
            .domain
            .reference
            .categories()
            .iter()
            .cloned()
            .map(Category)
            .collect())
    }
}
