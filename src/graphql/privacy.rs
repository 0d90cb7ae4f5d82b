//! Privacy: a user's data to take with them, and deleting the account.

use crate::ratelimit::Bucket;
use async_graphql::{Context, Object, Result};

use crate::domain::privacy;
use crate::graphql::CtxExt;
use crate::graphql::guards::{RateLimit, RoleGuard};

#[derive(Default)]
pub struct PrivacyMutation;

#[Object]
impl PrivacyMutation {
    /// Everything held about the caller, as one JSON document (others
    /// appear by name only). Audited `account.exported`.
    #[graphql(guard = "RoleGuard::SignedIn.and(RateLimit::per_user(Bucket::DataExports))")]
    async fn export_my_data(&self, ctx: &Context<'_>) -> Result<String> {
        let state = ctx.state()?;
        let doc = privacy::export(&state.domain, ctx.current_user()?).await?;
        Ok(doc.to_string())
    }

    /// Deletes the caller's account (their password again). Refused with
    /// CONFLICT while a booking awaits payment or a payment or refund is
    /// in flight; future sessions are cancelled under the policy, personal
    /// fields anonymised, financial and audit records kept without them.
    #[graphql(guard = "RoleGuard::SignedIn.and(RateLimit::per_user(Bucket::PasswordChecks))")]
    async fn delete_my_account(&self, ctx: &Context<'_>, password: String) -> Result<bool> {
        let state = ctx.state()?;
        privacy::delete_account(&state.domain, ctx.current_user()?, &password).await?;
        Ok(true)
    }
}
