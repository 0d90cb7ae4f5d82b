//! Per-field rate limits. Each [`Bucket`] is a budget a field spends from,
//! keyed by user, client IP or email; the fields name their bucket where
//! they are declared (`#[graphql(guard = "... RateLimit::per_user(Bucket::Holds)")]`).
//! [`FIELD_LIMITS`] lists the buckets with their fields, key, default and
//! variable (the README's table is checked against it). Counters sit
//! behind [`RateLimiter`] so that a shared store (Redis) can replace the
//! in-memory one when several instances run.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// `login` attempts (and email-link checks) per client IP.
    LoginIp,
    /// `login` attempts per (normalised) email.
    LoginEmail,
    /// `register` calls per client IP.
    Register,
    /// `requestPasswordReset` per (normalised) email: 3 per hour.
    ResetEmail,
    Holds,
    Checkouts,
    Onboarding,
    Verification,
    ResetIp,
    Refresh,
    Reviews,
    DataExports,
    PasswordChecks,
}

impl Bucket {
    pub const ALL: [Bucket; 13] = [
        Bucket::LoginIp,
        Bucket::LoginEmail,
        Bucket::Register,
        Bucket::ResetEmail,
        Bucket::Holds,
        Bucket::Checkouts,
        Bucket::Onboarding,
        Bucket::Verification,
        Bucket::ResetIp,
        Bucket::Refresh,
        Bucket::Reviews,
        Bucket::DataExports,
        Bucket::PasswordChecks,
    ];

    /// The name in audit entries and in `maestro_rate_limited_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::LoginIp => "login_ip",
            Bucket::LoginEmail => "login_email",
            Bucket::Register => "register_ip",
            Bucket::ResetEmail => "reset_email",
            Bucket::Holds => "holds",
            Bucket::Checkouts => "checkouts",
            Bucket::Onboarding => "payout_onboarding",
            Bucket::Verification => "email_verification",
            Bucket::ResetIp => "reset_ip",
            Bucket::Refresh => "refresh_ip",
            Bucket::Reviews => "reviews",
            Bucket::DataExports => "data_exports",
            Bucket::PasswordChecks => "password_checks",
        }
    }

    /// How long the bucket's whole budget takes to refill.
    pub fn period(self) -> Duration {
        match self {
            Bucket::LoginIp
            | Bucket::LoginEmail
            | Bucket::Holds
            | Bucket::Checkouts
            | Bucket::Refresh => Duration::from_secs(60),
            Bucket::PasswordChecks => Duration::from_secs(15 * 60),
            Bucket::Register
            | Bucket::ResetEmail
            | Bucket::Onboarding
            | Bucket::Verification
            | Bucket::ResetIp
            | Bucket::Reviews
            | Bucket::DataExports => Duration::from_secs(3600),
        }
    }
}

/// What a bucket is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    User,
    ClientIp,
}

/// One row of the per-field limits: which fields spend from the bucket,
/// what it is keyed by, and its default and variable.
#[derive(Debug, Clone, Copy)]
pub struct FieldLimit {
    pub bucket: Bucket,
    pub fields: &'static [&'static str],
    pub key: Key,
    pub default: u32,
    pub variable: &'static str,
}

/// Every field that costs money, mail, a calendar or heavy work, with its
/// limit (besides `login` and `register`, limited since the start).
pub const FIELD_LIMITS: [FieldLimit; 9] = [
    FieldLimit {
        bucket: Bucket::Holds,
        fields: &["createHold", "releaseHold"],
        key: Key::User,
        default: 30,
        variable: "RATE_LIMIT_HOLDS_PER_MINUTE",
    },
    FieldLimit {
        bucket: Bucket::Checkouts,
        fields: &["bookHold", "purchasePackage", "purchaseSponsorship"],
        key: Key::User,
        default: 10,
        variable: "RATE_LIMIT_CHECKOUTS_PER_MINUTE",
    },
    FieldLimit {
        bucket: Bucket::Onboarding,
        fields: &["startPayoutOnboarding"],
        key: Key::User,
        default: 10,
        variable: "RATE_LIMIT_ONBOARDING_PER_HOUR",
    },
    FieldLimit {
        bucket: Bucket::Verification,
        fields: &["requestEmailVerification"],
        key: Key::User,
        default: 3,
        variable: "RATE_LIMIT_VERIFICATION_PER_HOUR",
    },
    FieldLimit {
        bucket: Bucket::ResetIp,
        fields: &["requestPasswordReset"],
        key: Key::ClientIp,
        default: 10,
        variable: "RATE_LIMIT_RESET_PER_HOUR",
    },
    FieldLimit {
        bucket: Bucket::Refresh,
        fields: &["refreshToken"],
        key: Key::ClientIp,
        default: 30,
        variable: "RATE_LIMIT_REFRESH_PER_MINUTE",
    },
    FieldLimit {
        bucket: Bucket::Reviews,
        fields: &["submitReview", "respondToReview"],
        key: Key::User,
        default: 10,
        variable: "RATE_LIMIT_REVIEWS_PER_HOUR",
    },
    FieldLimit {
        bucket: Bucket::DataExports,
        fields: &["exportMyData"],
        key: Key::User,
        default: 3,
        variable: "RATE_LIMIT_EXPORTS_PER_HOUR",
    },
    FieldLimit {
        bucket: Bucket::PasswordChecks,
        fields: &["changePassword", "deleteMyAccount"],
        key: Key::User,
        default: 5,
        variable: "RATE_LIMIT_PASSWORD_CHECKS_PER_15_MINUTES",
    },
];

/// The default of a bucket in [`FIELD_LIMITS`] (for the settings' defaults).
pub const fn default_of(bucket: Bucket) -> u32 {
    let mut i = 0;
    while i < FIELD_LIMITS.len() {
        if FIELD_LIMITS[i].bucket as u8 == bucket as u8 {
            return FIELD_LIMITS[i].default;
        }
        i += 1;
    }
    1
}

#[async_trait::async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one attempt; `Err(wait)` when the bucket is empty for `key`.
    async fn hit(&self, bucket: Bucket, key: &str) -> Result<(), Duration>;
    /// Forgets idle keys so memory stays bounded.
    fn sweep(&self) {}
    /// For a shared store: whether it answers now, and how many attempts
    /// were counted in this instance's memory instead.
    fn shared_state(&self) -> Option<(bool, u64)> {
        None
    }
}

/// GCRA limiters from `governor`, one keyed limiter per bucket: the whole
/// budget as a burst, refilled evenly over the bucket's period.
pub struct InMemoryRateLimiter {
    limiters: HashMap<Bucket, DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

fn non_zero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN)
}

/// `budget` calls per `period`.
fn quota(budget: u32, period: Duration) -> Quota {
    let budget = non_zero(budget);
    let each = (period / budget.get()).max(Duration::from_nanos(1));
    Quota::with_period(each)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(budget)
}

impl InMemoryRateLimiter {
    /// `budget_of(bucket)`: the calls allowed per the bucket's period.
    pub fn new(budget_of: impl Fn(Bucket) -> u32) -> Self {
        let limiters = Bucket::ALL
            .into_iter()
            .map(|b| {
                (
                    b,
                    DefaultKeyedRateLimiter::keyed(quota(budget_of(b), b.period())),
                )
            })
            .collect();
        InMemoryRateLimiter {
            limiters,
            clock: DefaultClock::default(),
        }
    }
}

#[async_trait::async_trait]
impl RateLimiter for InMemoryRateLimiter {
    async fn hit(&self, bucket: Bucket, key: &str) -> Result<(), Duration> {
        let Some(limiter) = self.limiters.get(&bucket) else {
            return Ok(());
        };
        limiter
            .check_key(&key.to_string())
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    fn sweep(&self) {
        for l in self.limiters.values() {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sixth_login_in_a_minute_is_refused_per_key() {
        let l = InMemoryRateLimiter::new(|b| if b == Bucket::LoginIp { 5 } else { 20 });
        for _ in 0..5 {
            assert!(l.hit(Bucket::LoginIp, "1.2.3.4").await.is_ok());
        }
        let wait = l.hit(Bucket::LoginIp, "1.2.3.4").await.unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(60));
        assert!(l.hit(Bucket::LoginIp, "5.6.7.8").await.is_ok());
        assert!(l.hit(Bucket::LoginEmail, "1.2.3.4").await.is_ok());
    }

    #[tokio::test]
    async fn a_bucket_refills_over_its_own_period() {
        let l = InMemoryRateLimiter::new(|_| 5);
        for _ in 0..5 {
            assert!(l.hit(Bucket::PasswordChecks, "u").await.is_ok());
        }
        let wait = l.hit(Bucket::PasswordChecks, "u").await.unwrap_err();
        // One call back every 15 minutes / 5 = 3 minutes.
        assert!(wait > Duration::from_secs(170) && wait <= Duration::from_secs(180));
    }
}
