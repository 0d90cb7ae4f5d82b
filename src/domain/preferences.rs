//! Who wants what, and how: a choice per notification kind and channel
//! (email, push). Every kind is on by default except the admins' weekly
//! report, which is opt-in. Account emails (verification, password reset,
//! the coach's approval) and the receipts the law requires (payments and
//! refunds) always go by email. A choice applies when a notification is
//! queued and again when it is sent, so turning something off also stops
//! what is already waiting.

use std::collections::HashMap;

use chrono::Utc;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use crate::domain::audit::{Entry, action};
use crate::domain::auth::CurrentUser;
use crate::domain::context::DomainCtx;
use crate::domain::types::Role;
use crate::domain::uow::UnitOfWork;
use crate::email::Template;
use crate::error::{AppError, AppResult};
use entity::notification_preferences as prefs;

/// What a notification is about (also the push message's `data.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Email verification, password reset, a coach's approval decision.
    Account,
    BookingConfirmed,
    BookingCancelled,
    Reminder,
    PaymentReceipt,
    Refund,
    ReviewReceived,
    /// Admins only.
    WeeklyReport,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Email,
    Push,
}

impl Channel {
    pub const ALL: [Channel; 2] = [Channel::Email, Channel::Push];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "EMAIL",
            Channel::Push => "PUSH",
        }
    }
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Account,
        Kind::BookingConfirmed,
        Kind::BookingCancelled,
        Kind::Reminder,
        Kind::PaymentReceipt,
        Kind::Refund,
        Kind::ReviewReceived,
        Kind::WeeklyReport,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Account => "ACCOUNT",
            Kind::BookingConfirmed => "BOOKING_CONFIRMED",
            Kind::BookingCancelled => "BOOKING_CANCELLED",
            Kind::Reminder => "REMINDER",
            Kind::PaymentReceipt => "PAYMENT_RECEIPT",
            Kind::Refund => "REFUND",
            Kind::ReviewReceived => "REVIEW_RECEIVED",
            Kind::WeeklyReport => "WEEKLY_REPORT",
        }
    }

    /// The kind an email template belongs to.
    pub fn of(template: Template) -> Kind {
        match template {
            Template::VerifyEmail
            | Template::PasswordReset
            | Template::CoachApproved
            | Template::CoachRejected => Kind::Account,
            Template::BookingConfirmed => Kind::BookingConfirmed,
            Template::BookingCancelled => Kind::BookingCancelled,
            Template::Reminder => Kind::Reminder,
            Template::PaymentReceipt | Template::PurchaseReceipt => Kind::PaymentReceipt,
            Template::RefundIssued => Kind::Refund,
            Template::ReviewReceived => Kind::ReviewReceived,
            Template::WeeklyReport => Kind::WeeklyReport,
        }
    }

    /// Whether the kind is offered on the channel at all.
    pub fn offered(self, channel: Channel) -> bool {
        match channel {
            Channel::Email => true,
            Channel::Push => !matches!(self, Kind::Account | Kind::WeeklyReport),
        }
    }

    /// Always sent, whatever the user chose.
    pub fn required(self, channel: Channel) -> bool {
        channel == Channel::Email
            && matches!(self, Kind::Account | Kind::PaymentReceipt | Kind::Refund)
    }

    fn default_on(self) -> bool {
        self != Kind::WeeklyReport
    }

    /// Whether a user of `role` is offered the kind.
    pub fn for_role(self, role: Role) -> bool {
        self != Kind::WeeklyReport || role == Role::Admin
    }
}

/// One line of a user's preferences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preference {
    pub kind: Kind,
    pub channel: Channel,
    pub enabled: bool,
    pub required: bool,
}

/// The stored choices of one user.
#[derive(Debug, Default, Clone)]
pub struct Choices(HashMap<(String, String), bool>);

impl Choices {
    pub async fn load<C: ConnectionTrait>(db: &C, user_id: &str) -> AppResult<Self> {
        let rows = prefs::Entity::find()
            .filter(prefs::Column::UserId.eq(user_id))
            .all(db)
            .await?;
        Ok(Choices(
            rows.into_iter()
                .map(|r| ((r.kind, r.channel), r.enabled))
                .collect(),
        ))
    }

    /// Whether `kind` goes out on `channel` for this user.
    pub fn allows(&self, kind: Kind, channel: Channel) -> bool {
        if !kind.offered(channel) {
            return false;
        }
        if kind.required(channel) {
            return true;
        }
        self.0
            .get(&(kind.as_str().to_string(), channel.as_str().to_string()))
            .copied()
            .unwrap_or(kind.default_on())
    }
}

/// Whether the user takes `kind` on `channel` (one statement).
pub async fn allows<C: ConnectionTrait>(
    db: &C,
    user_id: &str,
    kind: Kind,
    channel: Channel,
) -> AppResult<bool> {
    if !kind.offered(channel) {
        return Ok(false);
    }
    if kind.required(channel) {
        return Ok(true);
    }
    let row = prefs::Entity::find_by_id((
        user_id.to_string(),
        kind.as_str().to_string(),
        channel.as_str().to_string(),
    ))
    .one(db)
    .await?;
    Ok(row.map(|r| r.enabled).unwrap_or(kind.default_on()))
}

/// Every kind and channel offered to the user, with the current choice.
pub async fn list<C: ConnectionTrait>(db: &C, user: &CurrentUser) -> AppResult<Vec<Preference>> {
    let choices = Choices::load(db, &user.id).await?;
    Ok(offered_to(user.role)
        .map(|(kind, channel)| Preference {
            kind,
            channel,
            enabled: choices.allows(kind, channel),
            required: kind.required(channel),
        })
        .collect())
}

fn offered_to(role: Role) -> impl Iterator<Item = (Kind, Channel)> {
    Kind::ALL
        .into_iter()
        .filter(move |k| k.for_role(role))
        .flat_map(|k| Channel::ALL.into_iter().map(move |c| (k, c)))
        .filter(|(k, c)| k.offered(*c))
}

/// Stores the user's choices (all or nothing): a channel not offered for a
/// kind, a kind not offered to the user, or turning off a required email
/// is `BAD_USER_INPUT` and changes nothing.
pub async fn set(
    ctx: &DomainCtx,
    user: &CurrentUser,
    changes: &[(Kind, Channel, bool)],
) -> AppResult<Vec<Preference>> {
    if changes.len() > Kind::ALL.len() * Channel::ALL.len() {
        return Err(AppError::bad_input("preferences", "too many entries"));
    }
    for (kind, channel, enabled) in changes {
        if !kind.for_role(user.role) || !kind.offered(*channel) {
            return Err(AppError::bad_input(
                "preferences",
                format!(
                    "{} is not offered by {}",
                    kind.as_str(),
                    channel.as_str().to_ascii_lowercase()
                ),
            ));
        }
        if kind.required(*channel) && !enabled {
            return Err(AppError::bad_input(
                "preferences",
                format!("{} emails cannot be turned off", kind.as_str()),
            ));
        }
    }
    let uow = UnitOfWork::begin(ctx).await?;
    let now = Utc::now();
    for (kind, channel, enabled) in changes {
        prefs::Entity::insert(prefs::ActiveModel {
            user_id: Set(user.id.clone()),
            kind: Set(kind.as_str().into()),
            channel: Set(channel.as_str().into()),
            enabled: Set(*enabled),
            updated_at: Set(now),
        })
        .on_conflict(
            OnConflict::columns([
                prefs::Column::UserId,
                prefs::Column::Kind,
                prefs::Column::Channel,
            ])
            .update_columns([prefs::Column::Enabled, prefs::Column::UpdatedAt])
            .to_owned(),
        )
        .exec_without_returning(uow.db())
        .await?;
    }
    let detail = serde_json::Value::Array(
        changes
            .iter()
            .map(|(k, c, e)| {
                serde_json::json!({ "kind": k.as_str(), "channel": c.as_str(), "enabled": e })
            })
            .collect(),
    );
    uow.audit(Entry {
        action: action::NOTIFICATIONS_CHANGED,
        actor_id: Some(&user.id),
        target_type: Some("user"),
        target_id: Some(&user.id),
        ip: None,
        detail: Some(detail),
    })
    .await?;
    let listed = list(uow.db(), user).await?;
    uow.commit().await?;
    Ok(listed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_emails_and_receipts_cannot_be_turned_off_and_the_report_is_opt_in() {
        let mut off = Choices::default();
        for k in Kind::ALL {
            for c in Channel::ALL {
                off.0.insert((k.as_str().into(), c.as_str().into()), false);
            }
        }
        assert!(off.allows(Kind::Account, Channel::Email));
        assert!(off.allows(Kind::PaymentReceipt, Channel::Email));
        assert!(off.allows(Kind::Refund, Channel::Email));
        assert!(!off.allows(Kind::PaymentReceipt, Channel::Push));
        assert!(!off.allows(Kind::Reminder, Channel::Email));
        let defaults = Choices::default();
        assert!(defaults.allows(Kind::Reminder, Channel::Push));
        assert!(!defaults.allows(Kind::WeeklyReport, Channel::Email));
        assert!(!defaults.allows(Kind::Account, Channel::Push));
        assert!(!Kind::WeeklyReport.for_role(Role::Coach));
    }
}
