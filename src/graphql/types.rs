//! Output types shared by several areas.

use async_graphql::{Context, Enum, ID, Object, Result, SimpleObject};

use crate::domain::types::Role as DomainRole;
use crate::graphql::CtxExt;
use crate::graphql::scalars::DateTime;
use entity::{categories, markets, users};

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "crate::domain::types::Role")]
pub enum Role {
    Consumer,
    Coach,
    Admin,
}

/// An amount in minor units (cents, paise, pence) and its ISO 4217 currency.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct Money {
    pub amount_minor: i64,
    pub currency: String,
}

pub struct Market(pub markets::Model);

#[Object]
impl Market {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn code(&self) -> &str {
        &self.0.code
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn currency(&self) -> &str {
        &self.0.currency
    }
}

pub struct Category(pub categories::Model);

#[Object]
impl Category {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn slug(&self) -> &str {
        &self.0.slug
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
}

/// A user as some viewer sees them.
pub struct User {
    pub model: users::Model,
    /// Set where the viewer is known to be this user (sign-in payloads).
    pub is_viewer: bool,
}

impl User {
    /// The caller's own account.
    pub fn own(model: users::Model) -> Self {
        User {
            model,
            is_viewer: true,
        }
    }

    /// Someone else's account (private fields decided per viewer).
    pub fn other(model: users::Model) -> Self {
        User {
            model,
            is_viewer: false,
        }
    }

    /// The user themself, an admin, or a viewer given the right sees the
    /// private fields (`email`, `timezone`).
    fn private_visible(&self, ctx: &Context<'_>) -> bool {
        self.is_viewer
            || match ctx.current_user() {
                Ok(me) => me.id == self.model.id || me.role == DomainRole::Admin,
                Err(_) => false,
            }
    }
}

#[Object]
impl User {
    async fn id(&self) -> ID {
        ID(self.model.id.clone())
    }
    /// Visible to the user themself and admins (and, later, to the other
    /// participant of a booking); others see null.
    async fn email(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        let visible = self.private_visible(ctx);
        Ok(visible.then_some(self.model.email.as_str()))
    }
    async fn name(&self) -> &str {
        &self.model.name
    }
    async fn role(&self) -> Role {
        DomainRole::parse(&self.model.role).map_or(Role::Consumer, Role::from)
    }
    async fn email_verified(&self) -> bool {
        self.model.email_verified
    }
    /// The zone the times in their emails are shown in: their own choice,
    /// else their market's. Visible like `email`.
    async fn timezone(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        let visible = self.private_visible(ctx);
        if !visible {
            return Ok(None);
        }
        let state = ctx.state()?;
        Ok(self.model.timezone.clone().or_else(|| {
            self.model
                .market_id
                .as_deref()
                .and_then(|id| state.domain.reference.market(id))
                .map(|m| m.timezone.clone())
        }))
    }
    async fn market(&self, ctx: &Context<'_>) -> Result<Option<Market>> {
        let state = ctx.state()?;
        Ok(self
            .model
            .market_id
            .as_deref()
            .and_then(|id| state.domain.reference.market(id))
            .map(|m| Market(m.clone())))
    }
    async fn created_at(&self) -> DateTime {
        self.model.created_at.into()
    }
}
