//! Email through Resend (resend-rs), and the development stand-in that
//! logs each email instead.
//!
//! The row's idempotency key goes out as Resend's `Idempotency-Key`, so a
//! send retried after a lost answer is one email.
//!
//! Pacing: resend-rs puts a limiter in each client that refills one request
//! per 1.1 s after a burst of 9, far below what Resend allows, and offers no
//! way to change that rate. The worker would crawl behind it (100 emails in
//! about 100 s), so each send goes through a client of its own (sharing one
//! HTTP connection pool), and the pace is ours: `RESEND_RATE_LIMIT` requests
//! per second for the instance (Resend's own answer, a 429, is retried with
//! backoff).

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota};
use resend_rs::types::CreateEmailBaseOptions;
use resend_rs::{ConfigBuilder, Resend};

use crate::domain::email::{MailError, Mailer, Outgoing};

pub struct ResendMailer {
    http: reqwest::Client,
    api_key: String,
    base: url::Url,
    from: String,
    pace: DefaultDirectRateLimiter,
}

impl ResendMailer {
    pub fn new(
        api_key: &str,
        base_url: &str,
        from: &str,
        per_second: u32,
        timeout: Duration,
    ) -> Result<Self, String> {
        let base = url::Url::parse(base_url).map_err(|e| format!("RESEND_BASE_URL: {e}"))?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("the Resend client could not be built: {e}"))?;
        let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        Ok(ResendMailer {
            http,
            api_key: api_key.to_string(),
            base,
            from: from.to_string(),
            pace: DefaultDirectRateLimiter::direct(Quota::per_second(rate)),
        })
    }

    fn client(&self) -> Resend {
        Resend::with_config(
            ConfigBuilder::new(self.api_key.as_str())
                .base_url(self.base.clone())
                .client(self.http.clone())
                .build(),
        )
    }
}

/// Whether Resend would answer the same again: a 4xx other than 429 would.
fn classify(e: resend_rs::Error) -> MailError {
    use resend_rs::Error;
    let (retryable, message) = match &e {
        Error::RateLimit { .. } => (true, "Resend rate limit (429)".to_string()),
        // 409: the same idempotency key is being sent right now (another
        // worker whose lease ran out); the next attempt learns the outcome.
        Error::Resend(r) => (
            !(400..500).contains(&r.status_code) || r.status_code == 409,
            format!(
                "Resend answered {}: {} {}",
                r.status_code, r.name, r.message
            ),
        ),
        Error::Http(h) => (
            h.status().is_none_or(|s| !s.is_client_error()),
            format!("Resend could not be reached: {h}"),
        ),
        // An unreadable error page: a proxy or an outage.
        other => (true, format!("Resend: {other}")),
    };
    MailError {
        message: message.chars().take(500).collect(),
        retryable,
    }
}

#[async_trait::async_trait]
impl Mailer for ResendMailer {
    async fn send(&self, email: Outgoing<'_>) -> Result<String, MailError> {
        let message = CreateEmailBaseOptions::new(self.from.as_str(), [email.to], email.subject)
            .with_html(email.html)
            .with_text(email.text)
            .with_idempotency_key(email.idempotency_key);
        self.pace.until_ready().await;
        self.client()
            .emails
            .send(message)
            .await
            .map(|r| r.id.to_string())
            .map_err(classify)
    }
}

/// Development without `RESEND_API_KEY`: each email is logged (recipient,
/// subject and its link) and kept for the development mailbox
/// (`GET /dev/emails`). Production refuses to start without a key, so a
/// token never reaches a production log.
#[derive(Default)]
pub struct LogMailer {
    recent: std::sync::Mutex<std::collections::VecDeque<serde_json::Value>>,
}

impl LogMailer {
    /// The last emails, newest first.
    pub fn recent(&self) -> Vec<serde_json::Value> {
        self.recent
            .lock()
            .map(|r| r.iter().rev().cloned().collect())
            .unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl Mailer for LogMailer {
    async fn send(&self, email: Outgoing<'_>) -> Result<String, MailError> {
        tracing::info!(to = %email.to, subject = %email.subject, link = email.link.unwrap_or(""), "email (development: logged, not sent)");
        let id = format!("dev_{}", uuid::Uuid::now_v7());
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() >= 200 {
                recent.pop_front();
            }
            recent.push_back(serde_json::json!({
                "id": id,
                "to": email.to,
                "subject": email.subject,
                "text": email.text,
                "link": email.link,
            }));
        }
        Ok(id)
    }
}
