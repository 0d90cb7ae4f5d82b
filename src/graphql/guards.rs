//! Role guards and per-field rate limits. Guards run once per field
//! invocation, so aliases and batched operations each count.

use async_graphql::{Context, Guard, Result};

use crate::domain::audit::{self, Entry, action};
use crate::domain::types::Role;
use crate::error::AppError;
use crate::graphql::CtxExt;
use crate::ratelimit::Bucket;

/// Who may call a field.
pub enum RoleGuard {
    SignedIn,
    Only(Role),
}

impl Guard for RoleGuard {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let user = ctx.current_user()?;
        match self {
            RoleGuard::SignedIn => Ok(()),
            RoleGuard::Only(role) if user.role == *role => Ok(()),
            RoleGuard::Only(_) => Err(AppError::Forbidden("your role cannot do this").into()),
        }
    }
}

/// Counts one attempt in each listed bucket (keyed by client IP, by the
/// signed-in user, or by the given key); the first empty bucket refuses
/// with `RATE_LIMITED` and `retryAfter`, before the resolver runs, and the
/// refusal is audited and counted by bucket. Every call counts: each alias,
/// each operation of a batch, each operation over a WebSocket.
pub struct RateLimit {
    buckets: Vec<(Bucket, KeyOf)>,
}

enum KeyOf {
    Ip,
    User,
    Given(String),
}

impl RateLimit {
    pub fn per_ip(bucket: Bucket) -> Self {
        RateLimit {
            buckets: vec![(bucket, KeyOf::Ip)],
        }
    }

    /// Keyed by the signed-in user (by client IP for a caller without one;
    /// put it after a guard that requires signing in).
    pub fn per_user(bucket: Bucket) -> Self {
        RateLimit {
            buckets: vec![(bucket, KeyOf::User)],
        }
    }

    pub fn and_key(mut self, bucket: Bucket, key: impl Into<String>) -> Self {
        self.buckets.push((bucket, KeyOf::Given(key.into())));
        self
    }

    /// `login`: per IP and per normalised email.
    pub fn login(email: &str) -> Self {
        RateLimit::per_ip(Bucket::LoginIp).and_key(Bucket::LoginEmail, email.trim().to_lowercase())
    }
}

impl Guard for RateLimit {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let state = ctx.state()?;
        let request = ctx.request()?;
        let ip = request.ip_string();
        let mut refused = None;
        // Every bucket counts the attempt, even after one has refused, so a
        // caller cannot save one budget by exhausting another.
        let actor = ctx.current_user().ok().map(|u| u.id.clone());
        let user = actor.as_ref().map(|id| format!("user:{id}"));
        for (bucket, key) in &self.buckets {
            let key = match key {
                KeyOf::Given(k) => Some(k.clone()),
                KeyOf::User => user.clone().or_else(|| ip.clone()),
                KeyOf::Ip => ip.clone(),
            }
            .unwrap_or_else(|| "unknown".into());
            if let Err(wait) = state.limiter.hit(*bucket, &key).await {
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                refused = Some((refused.map_or(0, |(s, _)| s).max(secs.max(1)), *bucket));
            }
        }
        if let Some((retry_after_secs, bucket)) = refused {
            state
                .metrics
                .rate_limited(crate::metrics::Limit::Field(bucket.as_str()));
            audit::record_alone(
                &state.domain,
                Entry {
                    action: action::RATE_LIMITED,
                    actor_id: actor.as_deref(),
                    target_type: Some("field"),
                    target_id: Some(ctx.field().name()),
                    ip: ip.as_deref(),
                    detail: Some(serde_json::json!({ "bucket": bucket.as_str() })),
                },
            )
            .await?;
            return Err(AppError::RateLimited { retry_after_secs }.into());
        }
        Ok(())
    }
}
