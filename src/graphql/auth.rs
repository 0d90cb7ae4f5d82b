//! Sign-in and account resolvers: thin wrappers over `domain::auth`.

use async_graphql::{Context, InputObject, Object, Result, SimpleObject};

use crate::domain::{account, auth};
use crate::graphql::CtxExt;
use crate::graphql::guards::{RateLimit, RoleGuard};
use crate::graphql::scalars::DateTime;
use crate::graphql::types::{Role, User};
use crate::ratelimit::Bucket;

#[derive(SimpleObject)]
pub struct AuthPayload {
    pub access_token: String,
    pub refresh_token: String,
    pub access_token_expires_at: DateTime,
    pub user: User,
}

impl From<auth::Tokens> for AuthPayload {
    fn from(t: auth::Tokens) -> Self {
        AuthPayload {
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            access_token_expires_at: t.access_token_expires_at.into(),
            user: User::own(t.user),
        }
    }
}

#[derive(InputObject)]
pub struct RegisterInput {
    pub email: String,
    pub password: String,
    pub name: String,
    pub role: Role,
    pub market_code: Option<String>,
}

#[derive(InputObject)]
pub struct UpdateProfileInput {
    pub name: Option<String>,
    /// IANA time zone for the times in emails (e.g. `Europe/London`).
    pub timezone: Option<String>,
}

/// Password reset lookups running after their answer, at most this many.
static RESET_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(16);

#[derive(Default)]
pub struct AuthQuery;

#[Object]
impl AuthQuery {
    #[graphql(guard = "RoleGuard::SignedIn")]
    async fn me(&self, ctx: &Context<'_>) -> Result<User> {
        Ok(User::own(ctx.current_user()?.user.clone()))
    }
}

#[derive(Default)]
pub struct AuthMutation;

#[Object]
impl AuthMutation {
    #[graphql(guard = "RateLimit::per_ip(Bucket::Register)")]
    async fn register(&self, ctx: &Context<'_>, input: RegisterInput) -> Result<AuthPayload> {
        let state = ctx.state()?;
        let ip = ctx.request()?.ip_string();
        let tokens = auth::register(
            &state.domain,
            auth::RegisterInput {
                email: &input.email,
                password: &input.password,
                name: &input.name,
                role: input.role.into(),
                market_code: input.market_code.as_deref(),
            },
            ip.as_deref(),
        )
        .await?;
        Ok(tokens.into())
    }

    #[graphql(guard = "RateLimit::login(&email)")]
    async fn login(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
    ) -> Result<AuthPayload> {
        let state = ctx.state()?;
        let ip = ctx.request()?.ip_string();
        Ok(auth::login(&state.domain, &email, &password, ip.as_deref())
            .await?
            .into())
    }

    #[graphql(guard = "RateLimit::per_ip(Bucket::Refresh)")]
    async fn refresh_token(&self, ctx: &Context<'_>, refresh_token: String) -> Result<AuthPayload> {
        let state = ctx.state()?;
        let ip = ctx.request()?.ip_string();
        Ok(auth::refresh(&state.domain, &refresh_token, ip.as_deref())
            .await?
            .into())
    }

    /// Ends this session. With `pushToken` (this phone's Expo push token)
    /// the phone also stops receiving the account's push notifications.
    #[graphql(guard = "RoleGuard::SignedIn")]
    async fn logout(
        &self,
        ctx: &Context<'_>,
        refresh_token: String,
        push_token: Option<String>,
    ) -> Result<bool> {
        let state = ctx.state()?;
        let ip = ctx.request()?.ip_string();
        auth::logout(
            &state.domain,
            ctx.current_user()?,
            &refresh_token,
            push_token.as_deref(),
            ip.as_deref(),
        )
        .await?;
        Ok(true)
    }

    #[graphql(guard = "RoleGuard::SignedIn.and(RateLimit::per_user(Bucket::PasswordChecks))")]
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        current_password: String,
        new_password: String,
    ) -> Result<bool> {
        let state = ctx.state()?;
        let ip = ctx.request()?.ip_string();
        auth::change_password(
            &state.domain,
            ctx.current_user()?,
            &current_password,
            &new_password,
            ip.as_deref(),
        )
        .await?;
        Ok(true)
    }

    #[graphql(guard = "RoleGuard::SignedIn")]
    async fn set_market(&self, ctx: &Context<'_>, market_code: String) -> Result<User> {
        let state = ctx.state()?;
        let user = auth::set_market(&state.domain, ctx.current_user()?, &market_code).await?;
        Ok(User::own(user))
    }

    #[graphql(guard = "RoleGuard::SignedIn")]
    async fn update_profile(&self, ctx: &Context<'_>, input: UpdateProfileInput) -> Result<User> {
        let state = ctx.state()?;
        let user = auth::update_profile(
            &state.domain,
            ctx.current_user()?,
            input.name.as_deref(),
            input.timezone.as_deref(),
        )
        .await?;
        Ok(User::own(user))
    }

    /// Sends a new verification email to the signed-in user (nothing when
    /// the address is verified already).
    #[graphql(guard = "RoleGuard::SignedIn.and(RateLimit::per_user(Bucket::Verification))")]
    async fn request_email_verification(&self, ctx: &Context<'_>) -> Result<bool> {
        let state = ctx.state()?;
        account::request_verification(&state.domain, ctx.current_user()?).await?;
        Ok(true)
    }

    /// Verifies the address with the token of the verification link.
    /// Guessing links shares the per-IP sign-in budget.
    #[graphql(guard = "RateLimit::per_ip(Bucket::LoginIp)")]
    async fn verify_email(&self, ctx: &Context<'_>, token: String) -> Result<bool> {
        let state = ctx.state()?;
        account::verify_email(&state.domain, &token).await?;
        Ok(true)
    }

    /// Always `true`: whether the email has an account is never told, by
    /// the answer or by its timing (the lookup and the email run after the
    /// answer). At most 3 reset emails per address an hour; further
    /// requests send nothing.
    #[graphql(guard = "RateLimit::per_ip(Bucket::ResetIp)")]
    async fn request_password_reset(&self, ctx: &Context<'_>, email: String) -> Result<bool> {
        let state = ctx.state()?;
        let parsed = crate::domain::types::Email::parse(&email)?;
        if state
            .limiter
            .hit(Bucket::ResetEmail, parsed.as_str())
            .await
            .is_err()
        {
            tracing::info!("password reset limit reached for an address; nothing sent");
            return Ok(true);
        }
        // Bounded: a flood waits for a slot (as long for any address)
        // rather than piling up tasks.
        let slot = RESET_SLOTS
            .acquire()
            .await
            .map_err(crate::error::AppError::internal)?;
        slot.forget();
        let domain = state.domain.clone();
        tokio::spawn(async move {
            if let Err(e) = account::request_password_reset(&domain, parsed.as_str()).await {
                tracing::warn!(error = ?e, "password reset email could not be queued");
            }
            RESET_SLOTS.add_permits(1);
        });
        Ok(true)
    }

    /// Sets a new password with the token of a reset link; every session
    /// of the account ends. Shares the per-IP sign-in budget.
    #[graphql(guard = "RateLimit::per_ip(Bucket::LoginIp)")]
    async fn reset_password(
        &self,
        ctx: &Context<'_>,
        token: String,
        new_password: String,
    ) -> Result<bool> {
        let state = ctx.state()?;
        let ip = ctx.request()?.ip_string();
        account::reset_password(&state.domain, &token, &new_password, ip.as_deref()).await?;
        Ok(true)
    }
}
