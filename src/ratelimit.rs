//! Per-field rate limits (login, register, ...). Counters sit behind
//! [`RateLimiter`] so that a shared store (Redis) can replace the in-memory
//! one when several instances run.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// `login` attempts per client IP.
    LoginIp,
    /// `login` attempts per (normalised) email.
    LoginEmail,
    /// `register` calls per client IP.
    Register,
    /// `requestPasswordReset` per (normalised) email: 3 per hour.
    ResetEmail,
}

impl Bucket {
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::LoginIp => "login_ip",
            Bucket::LoginEmail => "login_email",
            Bucket::Register => "register_ip",
            Bucket::ResetEmail => "reset_email",
        }
    }
}

#[async_trait::async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one attempt; `Err(wait)` when the bucket is empty for `key`.
    async fn hit(&self, bucket: Bucket, key: &str) -> Result<(), Duration>;
    /// Forgets idle keys so memory stays bounded.
    fn sweep(&self) {}
}

/// GCRA limiters from `governor`, one keyed limiter per bucket.
pub struct InMemoryRateLimiter {
    login_ip: DefaultKeyedRateLimiter<String>,
    login_email: DefaultKeyedRateLimiter<String>,
    register: DefaultKeyedRateLimiter<String>,
    reset_email: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

fn non_zero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN)
}

impl InMemoryRateLimiter {
    pub fn new(login_per_minute: u32, register_per_hour: u32) -> Self {
        let login = Quota::per_minute(non_zero(login_per_minute));
        InMemoryRateLimiter {
            login_ip: DefaultKeyedRateLimiter::keyed(login),
            login_email: DefaultKeyedRateLimiter::keyed(login),
            register: DefaultKeyedRateLimiter::keyed(Quota::per_hour(non_zero(register_per_hour))),
            reset_email: DefaultKeyedRateLimiter::keyed(Quota::per_hour(non_zero(3))),
            clock: DefaultClock::default(),
        }
    }

    fn limiter(&self, bucket: Bucket) -> &DefaultKeyedRateLimiter<String> {
        match bucket {
            Bucket::LoginIp => &self.login_ip,
            Bucket::LoginEmail => &self.login_email,
            Bucket::Register => &self.register,
            Bucket::ResetEmail => &self.reset_email,
        }
    }
}

#[async_trait::async_trait]
impl RateLimiter for InMemoryRateLimiter {
    async fn hit(&self, bucket: Bucket, key: &str) -> Result<(), Duration> {
        self.limiter(bucket)
            .check_key(&key.to_string())
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    fn sweep(&self) {
        for l in [
            &self.login_ip,
            &self.login_email,
            &self.register,
            &self.reset_email,
        ] {
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
        let l = InMemoryRateLimiter::new(5, 20);
        for _ in 0..5 {
            assert!(l.hit(Bucket::LoginIp, "1.2.3.4").await.is_ok());
        }
        let wait = l.hit(Bucket::LoginIp, "1.2.3.4").await.unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(60));
        assert!(l.hit(Bucket::LoginIp, "5.6.7.8").await.is_ok());
        assert!(l.hit(Bucket::LoginEmail, "1.2.3.4").await.is_ok());
    }
}
