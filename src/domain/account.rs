//! The account lifecycle by email: verification and password reset.
//!
//! Tokens are 32 random bytes (URL-safe base64 in the link), stored only as
//! SHA-256, single use and expiring (verification 24 h, reset 1 h). The
//! link is written into the outbox row with the email and removed from it
//! once sent.

use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};

use crate::domain::audit::{Entry, action};
use crate::domain::auth::{
    CurrentUser, end_all_sessions, find_user_by_email, hash_password, hash_refresh_token,
};
use crate::domain::context::DomainCtx;
use crate::domain::email::{self, recipient};
use crate::domain::types::{Email, Password};
use crate::domain::uow::UnitOfWork;
use crate::email::Template;
use crate::error::{AppError, AppResult};
use entity::{user_tokens, users};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    ResetPassword,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "VERIFY_EMAIL",
            Purpose::ResetPassword => "RESET_PASSWORD",
        }
    }

    fn lifetime(self) -> chrono::Duration {
        match self {
            Purpose::VerifyEmail => chrono::Duration::hours(24),
            Purpose::ResetPassword => chrono::Duration::hours(1),
        }
    }

    fn path(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verify-email",
            Purpose::ResetPassword => "reset-password",
        }
    }
}

fn invalid_link() -> AppError {
    AppError::bad_input("token", "this link is invalid, already used or expired")
}

/// A new token for `user`, inside the unit of work: (row id, link).
async fn issue(
    ctx: &DomainCtx,
    uow: &UnitOfWork,
    user_id: &str,
    purpose: Purpose,
) -> AppResult<(String, String)> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let now = Utc::now();
    let row = user_tokens::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        user_id: Set(user_id.to_string()),
        purpose: Set(purpose.as_str().into()),
        token_hash: Set(hash_refresh_token(&token)),
        expires_at: Set(now + purpose.lifetime()),
        used_at: Set(None),
        created_at: Set(now),
    }
    .insert(uow.db())
    .await?;
    let link = format!(
        "{}/{}?token={token}",
        ctx.policy.public_base_url.trim_end_matches('/'),
        purpose.path()
    );
    Ok((row.id, link))
}

/// Queues the verification email of `user` in the caller's unit of work.
pub async fn send_verification(
    ctx: &DomainCtx,
    uow: &mut UnitOfWork,
    user: &users::Model,
) -> AppResult<()> {
    let (id, link) = issue(ctx, uow, &user.id, Purpose::VerifyEmail).await?;
    let to = recipient(uow.db(), &user.id).await?;
    email::queue(
        uow,
        &to,
        Template::VerifyEmail,
        &format!("verify:{id}"),
        serde_json::json!({ "link": link, "token_id": id }),
    )
    .await
}

/// A new verification email for the signed-in user (nothing when already
/// verified).
pub async fn request_verification(ctx: &DomainCtx, user: &CurrentUser) -> AppResult<()> {
    let fresh = users::Entity::find_by_id(user.id.clone())
        .one(&ctx.db)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    if fresh.email_verified {
        return Ok(());
    }
    let mut uow = UnitOfWork::begin(ctx).await?;
    send_verification(ctx, &mut uow, &fresh).await?;
    uow.commit().await
}

/// Whether the token could be spent (read only; `spend` decides).
async fn usable(ctx: &DomainCtx, raw: &str, purpose: Purpose) -> AppResult<()> {
    if raw.is_empty() || raw.len() > 100 {
        return Err(invalid_link());
    }
    let row = user_tokens::Entity::find()
        .filter(user_tokens::Column::TokenHash.eq(hash_refresh_token(raw)))
        .filter(user_tokens::Column::Purpose.eq(purpose.as_str()))
        .one(&ctx.db)
        .await?
        .ok_or_else(invalid_link)?;
    if row.used_at.is_some() || row.expires_at <= Utc::now() {
        return Err(invalid_link());
    }
    Ok(())
}

/// Spends a token of `purpose` inside the unit of work: the user it was
/// for, or a refusal that changes nothing.
async fn spend(uow: &UnitOfWork, raw: &str, purpose: Purpose) -> AppResult<String> {
    if raw.is_empty() || raw.len() > 100 {
        return Err(invalid_link());
    }
    let now = Utc::now();
    let row = user_tokens::Entity::find()
        .filter(user_tokens::Column::TokenHash.eq(hash_refresh_token(raw)))
        .filter(user_tokens::Column::Purpose.eq(purpose.as_str()))
        .one(uow.db())
        .await?
        .ok_or_else(invalid_link)?;
    if row.expires_at <= now {
        return Err(invalid_link());
    }
    // Single use, also against two concurrent uses of one link.
    let spent = user_tokens::Entity::update_many()
        .col_expr(user_tokens::Column::UsedAt, Expr::value(now))
        .filter(user_tokens::Column::Id.eq(row.id.clone()))
        .filter(user_tokens::Column::UsedAt.is_null())
        .exec(uow.db())
        .await?;
    if spent.rows_affected != 1 {
        return Err(invalid_link());
    }
    Ok(row.user_id)
}

pub async fn verify_email(ctx: &DomainCtx, token: &str) -> AppResult<()> {
    let uow = UnitOfWork::begin(ctx).await?;
    let user_id = spend(&uow, token, Purpose::VerifyEmail).await?;
    users::Entity::update_many()
        .col_expr(users::Column::EmailVerified, Expr::value(true))
        .col_expr(users::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(users::Column::Id.eq(user_id.clone()))
        .exec(uow.db())
        .await?;
    uow.audit(Entry {
        action: action::EMAIL_VERIFIED,
        actor_id: Some(&user_id),
        target_type: Some("user"),
        target_id: Some(&user_id),
        ..Default::default()
    })
    .await?;
    uow.commit().await
}

/// Queues a reset email when the account exists and may sign in; answers
/// the same either way. The caller applies the per-email limit first.
pub async fn request_password_reset(ctx: &DomainCtx, email: &str) -> AppResult<()> {
    let email = Email::parse(email)?;
    let Some(user) = find_user_by_email(&ctx.db, &email).await? else {
        return Ok(());
    };
    if user.suspended_at.is_some() {
        return Ok(());
    }
    let mut uow = UnitOfWork::begin(ctx).await?;
    // At most 3 reset emails an hour per account, counted where every
    // instance sees it (the per-address limiter in front is per instance).
    let recent = user_tokens::Entity::find()
        .filter(user_tokens::Column::UserId.eq(user.id.clone()))
        .filter(user_tokens::Column::Purpose.eq(Purpose::ResetPassword.as_str()))
        .filter(user_tokens::Column::CreatedAt.gt(Utc::now() - chrono::Duration::hours(1)))
        .count(uow.db())
        .await?;
    if recent >= 3 {
        return Ok(());
    }
    let (id, link) = issue(ctx, &uow, &user.id, Purpose::ResetPassword).await?;
    let to = recipient(uow.db(), &user.id).await?;
    email::queue(
        &mut uow,
        &to,
        Template::PasswordReset,
        &format!("reset:{id}"),
        serde_json::json!({ "link": link, "token_id": id }),
    )
    .await?;
    uow.commit().await
}

/// Sets a new password from a reset link: every session of the user ends
/// and every other reset link of theirs stops working. Audited.
pub async fn reset_password(
    ctx: &DomainCtx,
    token: &str,
    new_password: &str,
    ip: Option<&str>,
) -> AppResult<()> {
    let password = Password::parse("newPassword", new_password)?;
    // A link that cannot work costs no password hashing.
    usable(ctx, token, Purpose::ResetPassword).await?;
    let hash = hash_password(&password).await?;
    let mut uow = UnitOfWork::begin(ctx).await?;
    let user_id = spend(&uow, token, Purpose::ResetPassword).await?;
    let now: DateTime<Utc> = Utc::now();
    users::Entity::update_many()
        .col_expr(users::Column::PasswordHash, Expr::value(hash))
        .col_expr(users::Column::UpdatedAt, Expr::value(now))
        .filter(users::Column::Id.eq(user_id.clone()))
        .exec(uow.db())
        .await?;
    user_tokens::Entity::update_many()
        .col_expr(user_tokens::Column::UsedAt, Expr::value(now))
        .filter(user_tokens::Column::UserId.eq(user_id.clone()))
        .filter(user_tokens::Column::Purpose.eq(Purpose::ResetPassword.as_str()))
        .filter(user_tokens::Column::UsedAt.is_null())
        .exec(uow.db())
        .await?;
    let valid = end_all_sessions(uow.db(), &user_id).await?;
    uow.audit(Entry {
        action: action::PASSWORD_RESET,
        actor_id: Some(&user_id),
        target_type: Some("user"),
        target_id: Some(&user_id),
        ip,
        detail: None,
    })
    .await?;
    uow.sessions_ended(&user_id, valid);
    uow.commit().await
}
