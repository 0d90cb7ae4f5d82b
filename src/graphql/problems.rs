//! Admin views of what needs a person: emails given up, refunds the
//! payment provider refused or has not confirmed, open disputes. Newest
//! first, at most 100.

use async_graphql::{Context, Enum, ID, Object, Result};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::domain::email::OutboxStatus;
use crate::domain::types::Role as DomainRole;
use crate::error::AppError;
use crate::graphql::CtxExt;
use crate::graphql::booking::{Refund, RefundStatus};
use crate::graphql::guards::RoleGuard;
use crate::graphql::scalars::DateTime;
use crate::graphql::types::Money;
use entity::{disputes, outbox, refunds};

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "crate::domain::email::OutboxStatus")]
pub enum EmailStatus {
    Pending,
    Sent,
    /// Every attempt failed, or the provider refused it for good.
    Dead,
    /// No longer true when its turn came (a cancelled booking's reminder).
    Skipped,
}

pub struct OutboxEmail(outbox::Model);

#[Object]
impl OutboxEmail {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn recipient(&self) -> &str {
        &self.0.recipient
    }
    async fn template(&self) -> &str {
        &self.0.template
    }
    async fn status(&self) -> EmailStatus {
        OutboxStatus::parse(&self.0.status).map_or(EmailStatus::Pending, Into::into)
    }
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
    async fn sent_at(&self) -> Option<DateTime> {
        self.0.sent_at.map(Into::into)
    }
}

pub struct Dispute(disputes::Model);

#[Object]
impl Dispute {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn payment_id(&self) -> ID {
        ID(self.0.payment_id.clone())
    }
    /// The provider's status (`needs_response`, `under_review`, `won`, `lost`, ...).
    async fn status(&self) -> &str {
        &self.0.status
    }
    async fn reason(&self) -> &str {
        &self.0.reason
    }
    async fn amount(&self) -> Money {
        Money {
            amount_minor: self.0.amount_minor,
            currency: self.0.currency.clone(),
        }
    }
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
    async fn updated_at(&self) -> DateTime {
        self.0.updated_at.into()
    }
}

fn limit(first: Option<i32>) -> u64 {
    first.unwrap_or(50).clamp(1, 100) as u64
}

#[derive(Default)]
pub struct ProblemsQuery;

#[Object]
impl ProblemsQuery {
    /// Outbox emails, e.g. `status: DEAD` for those given up.
    #[graphql(guard = "RoleGuard::Only(DomainRole::Admin)")]
    async fn admin_emails(
        &self,
        ctx: &Context<'_>,
        status: Option<EmailStatus>,
        first: Option<i32>,
    ) -> Result<Vec<OutboxEmail>> {
        let state = ctx.state()?;
        // Emails only: a push row's recipient is a device's token.
        let mut q = outbox::Entity::find().filter(outbox::Column::Channel.eq("email"));
        if let Some(s) = status {
            q = q.filter(outbox::Column::Status.eq(OutboxStatus::from(s).as_str()));
        }
        let rows = q
            .order_by_desc(outbox::Column::CreatedAt)
            .limit(limit(first))
            .all(&state.domain.db)
            .await
            .map_err(AppError::from)?;
        Ok(rows.into_iter().map(OutboxEmail).collect())
    }

    /// Refunds, e.g. `status: FAILED` or `PENDING` (still being retried).
    #[graphql(guard = "RoleGuard::Only(DomainRole::Admin)")]
    async fn admin_refunds(
        &self,
        ctx: &Context<'_>,
        status: Option<RefundStatus>,
        first: Option<i32>,
    ) -> Result<Vec<Refund>> {
        let state = ctx.state()?;
        let mut q = refunds::Entity::find();
        if let Some(s) = status {
            let s: crate::domain::payment::RefundStatus = s.into();
            q = q.filter(refunds::Column::Status.eq(s.as_str()));
        }
        let rows = q
            .order_by_desc(refunds::Column::CreatedAt)
            .limit(limit(first))
            .all(&state.domain.db)
            .await
            .map_err(AppError::from)?;
        Ok(rows.into_iter().map(Refund::for_admin).collect())
    }

    /// Disputes of payments; `open: true` for those not yet decided.
    #[graphql(guard = "RoleGuard::Only(DomainRole::Admin)")]
    async fn admin_disputes(
        &self,
        ctx: &Context<'_>,
        open: Option<bool>,
        first: Option<i32>,
    ) -> Result<Vec<Dispute>> {
        let state = ctx.state()?;
        let mut q = disputes::Entity::find();
        if open == Some(true) {
            q = q.filter(
                disputes::Column::Status.is_not_in(crate::domain::payment::events::DISPUTE_CLOSED),
            );
        }
        let rows = q
            .order_by_desc(disputes::Column::CreatedAt)
            .limit(limit(first))
            .all(&state.domain.db)
            .await
            .map_err(AppError::from)?;
        Ok(rows.into_iter().map(Dispute).collect())
    }
}
