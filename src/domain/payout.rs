//! Coaches' payouts: each coach gets one connected account at the payment
//! provider (created once, reused after) and fresh onboarding links to it.
//! Whether payouts are enabled follows the provider's account reports
//! (`payment::events`); with a real provider a coach takes bookings only
//! once they are.

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::domain::audit::{Entry, action};
use crate::domain::auth::CurrentUser;
use crate::domain::coach;
use crate::domain::context::DomainCtx;
use crate::domain::types::Role;
use crate::domain::uow::UnitOfWork;
use crate::error::{AppError, AppResult};
use entity::coach_profiles;

fn provider_failed(e: crate::domain::payment::ProviderError) -> AppError {
    tracing::warn!(error = %e.message, "payout onboarding failed at the provider");
    AppError::Payment("the payment provider could not start payout onboarding; try again".into())
}

/// The caller's onboarding link; the account is created on the first call.
pub async fn start_onboarding(ctx: &DomainCtx, user: &CurrentUser) -> AppResult<String> {
    if user.role != Role::Coach {
        return Err(AppError::Forbidden("only coaches receive payouts"));
    }
    let profile = coach::own_profile(&ctx.db, user).await?;
    let account = match profile.stripe_account_id.clone() {
        Some(a) => a,
        None => {
            let country = ctx
                .reference
                .market(&profile.market_id)
                .map(|m| m.code.clone())
                .ok_or_else(|| AppError::internal("coach without a known market"))?;
            // Idempotent per coach at the provider, so two racing calls get
            // one account; the first to store it wins here too.
            let created = ctx
                .payments
                .create_payout_account(&profile.id, &user.user.email, &country)
                .await
                .map_err(provider_failed)?;
            let uow = UnitOfWork::begin(ctx).await?;
            let stored = coach_profiles::Entity::update_many()
                .col_expr(
                    coach_profiles::Column::StripeAccountId,
                    Expr::value(created.clone()),
                )
                .col_expr(coach_profiles::Column::UpdatedAt, Expr::value(Utc::now()))
                .filter(coach_profiles::Column::Id.eq(profile.id.clone()))
                .filter(coach_profiles::Column::StripeAccountId.is_null())
                .exec(uow.db())
                .await?;
            if stored.rows_affected == 1 {
                uow.audit(Entry {
                    action: action::PAYOUT_ONBOARDING_STARTED,
                    actor_id: Some(&user.id),
                    target_type: Some("coach"),
                    target_id: Some(&profile.id),
                    ..Default::default()
                })
                .await?;
            }
            uow.commit().await?;
            coach::get(&ctx.db, &profile.id)
                .await?
                .stripe_account_id
                .ok_or_else(|| AppError::internal("payout account not stored"))?
        }
    };
    let base = ctx.policy.public_base_url.trim_end_matches('/');
    ctx.payments
        .payout_onboarding_link(
            &account,
            &format!("{base}/payouts/refresh"),
            &format!("{base}/payouts/return"),
        )
        .await
        .map_err(provider_failed)
}
