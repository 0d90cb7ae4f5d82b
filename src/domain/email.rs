//! Emails through the transactional outbox. Domain code queues an email
//! with [`queue`] inside its unit of work, so the row commits (or rolls
//! back) with the change it announces; the outbox worker
//! ([`crate::domain::outbox`]) sends it after the commit, through a
//! [`Mailer`], with the row's idempotency key.

use chrono::Utc;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ConnectionTrait, EntityTrait, Set};

use crate::domain::preferences::{Channel, Choices, Kind};
use crate::domain::uow::UnitOfWork;
use crate::email::Template;
use crate::error::{AppError, AppResult};
use entity::{outbox, users};

/// Seals the links an email carries (they hold sign-in grade tokens) while
/// the row waits in the outbox: AES-256-GCM under a key derived from the
/// server's secret, so the database alone never holds a usable link.
pub struct LinkSeal {
    key: aws_lc_rs::aead::LessSafeKey,
}

impl LinkSeal {
    pub fn new(secret: &[u8]) -> Result<Self, String> {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(b"maestro-hub outbox links v1\0");
        h.update(secret);
        let key = aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &h.finalize())
            .map_err(|_| "the outbox link key could not be made".to_string())?;
        Ok(LinkSeal {
            key: aws_lc_rs::aead::LessSafeKey::new(key),
        })
    }

    pub fn seal(&self, link: &str) -> AppResult<String> {
        use base64::Engine;
        use rand::RngCore;
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let mut out = link.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce),
                aws_lc_rs::aead::Aad::empty(),
                &mut out,
            )
            .map_err(|_| AppError::internal("sealing a link failed"))?;
        let mut sealed = nonce.to_vec();
        sealed.extend(out);
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed))
    }

    /// `None` when it was sealed under another secret (or tampered with).
    pub fn open(&self, sealed: &str) -> Option<String> {
        use base64::Engine;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sealed)
            .ok()?;
        if raw.len() < 12 + 16 {
            return None;
        }
        let (nonce, body) = raw.split_at(12);
        let nonce = aws_lc_rs::aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, aws_lc_rs::aead::Aad::empty(), &mut body)
            .ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }
}

/// One email ready to hand to the provider.
pub struct Outgoing<'a> {
    pub to: &'a str,
    pub subject: &'a str,
    pub html: &'a str,
    pub text: &'a str,
    /// Unique per logical email: the provider dedupes a repeated send.
    pub idempotency_key: &'a str,
    /// Development: a link worth showing in the log line.
    pub link: Option<&'a str>,
}

/// A send that failed. `retryable` is false for a refusal that would
/// refuse again (a 4xx other than 429).
#[derive(Debug, Clone)]
pub struct MailError {
    pub message: String,
    pub retryable: bool,
}

#[async_trait::async_trait]
pub trait Mailer: Send + Sync {
    /// Sends one email; the provider's id on success.
    async fn send(&self, email: Outgoing<'_>) -> Result<String, MailError>;
}

/// Who an email goes to, and how they read times.
#[derive(Debug, Clone)]
pub struct Recipient {
    pub user_id: String,
    pub email: String,
    pub name: String,
    /// IANA zone: the user's own, else their market's, else UTC.
    pub timezone: String,
}

pub async fn recipient<C: ConnectionTrait>(db: &C, user_id: &str) -> AppResult<Recipient> {
    let user = users::Entity::find_by_id(user_id.to_string())
        .one(db)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    let market_tz = match &user.market_id {
        Some(m) => entity::markets::Entity::find_by_id(m.clone())
            .one(db)
            .await?
            .map(|m| m.timezone),
        None => None,
    };
    Ok(Recipient {
        timezone: user
            .timezone
            .clone()
            .or(market_tz)
            .unwrap_or_else(|| "UTC".into()),
        user_id: user.id,
        email: user.email,
        name: user.name,
    })
}

/// Queues `template` to `to` inside the unit of work, as an email and, for
/// the kinds that have one, as a push to each of the recipient's devices,
/// each on the channels the recipient has not turned off
/// (`domain::preferences`). `key` names the logical notification: queuing
/// it again is a no-op, so a retried change never sends twice. The
/// recipient's name and time zone are added to `data`.
pub async fn queue(
    uow: &mut UnitOfWork,
    to: &Recipient,
    template: Template,
    key: &str,
    data: serde_json::Value,
) -> AppResult<()> {
    queue_new(uow, to, template, key, data).await.map(|_| ())
}

/// [`queue`], telling whether the email is new (not queued before under
/// its key, and not turned off).
pub async fn queue_new(
    uow: &mut UnitOfWork,
    to: &Recipient,
    template: Template,
    key: &str,
    mut data: serde_json::Value,
) -> AppResult<bool> {
    // A deleted account's address reaches no one.
    if to.email.ends_with(&format!(
        "@{}",
        crate::domain::privacy::DELETED_EMAIL_DOMAIN
    )) {
        return Ok(false);
    }
    let choices = Choices::load(uow.db(), &to.user_id).await?;
    if let Some(map) = data.as_object_mut() {
        map.entry("name").or_insert_with(|| to.name.clone().into());
        map.entry("tz")
            .or_insert_with(|| to.timezone.clone().into());
        if let Some(link) = map
            .remove("link")
            .and_then(|l| l.as_str().map(str::to_string))
        {
            let sealed = uow.ctx().link_seal.seal(&link)?;
            map.insert("sealed_link".into(), sealed.into());
        }
    }
    crate::domain::push::queue(uow, to, &choices, template, key, &data).await?;
    if !choices.allows(Kind::of(template), Channel::Email) {
        return Ok(false);
    }
    let inserted = outbox::Entity::insert(pending_row(
        "email",
        &to.email,
        &to.user_id,
        template,
        &data,
        key,
    ))
    .on_conflict(
        OnConflict::column(outbox::Column::IdempotencyKey)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(uow.db())
    .await?;
    if inserted == 1 {
        uow.email_queued();
    }
    Ok(inserted == 1)
}

/// A new outbox row, due now: an email to an address, or a push to a
/// device's token (`channel`).
pub(crate) fn pending_row(
    channel: &str,
    recipient: &str,
    user_id: &str,
    template: Template,
    data: &serde_json::Value,
    key: &str,
) -> outbox::ActiveModel {
    let now = Utc::now();
    outbox::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        channel: Set(channel.into()),
        recipient: Set(recipient.into()),
        user_id: Set(Some(user_id.into())),
        template: Set(template.as_str().into()),
        data: Set(data.to_string()),
        idempotency_key: Set(key.chars().take(255).collect()),
        status: Set(OutboxStatus::Pending.as_str().into()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        locked_until: Set(None),
        last_error: Set(None),
        provider_ref: Set(None),
        created_at: Set(now),
        sent_at: Set(None),
        updated_at: Set(now),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxStatus {
    Pending,
    Sent,
    /// Every attempt failed, or the provider refused it for good.
    Dead,
    /// No longer true when its turn came (a cancelled booking's reminder).
    Skipped,
}

impl OutboxStatus {
    pub const ALL: [OutboxStatus; 4] = [
        OutboxStatus::Pending,
        OutboxStatus::Sent,
        OutboxStatus::Dead,
        OutboxStatus::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "PENDING",
            OutboxStatus::Sent => "SENT",
            OutboxStatus::Dead => "DEAD",
            OutboxStatus::Skipped => "SKIPPED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_link_opens_only_under_its_own_secret() {
        let seal = LinkSeal::new(&[1u8; 32]).unwrap();
        let link = "https://app.example/reset-password?token=abc";
        let sealed = seal.seal(link).unwrap();
        assert!(!sealed.contains("token"));
        assert_ne!(seal.seal(link).unwrap(), sealed, "a fresh nonce each time");
        assert_eq!(seal.open(&sealed).as_deref(), Some(link));
        assert_eq!(LinkSeal::new(&[2u8; 32]).unwrap().open(&sealed), None);
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(seal.open(&String::from_utf8(tampered).unwrap()), None);
        assert_eq!(seal.open("short"), None);
    }
}
