use sea_orm::entity::prelude::*;

/// A message to send (an email, or a push to one device), written in the
/// transaction of the change it announces and sent by the outbox worker
/// after the commit.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// `email` or `push` (then `recipient` is the device's token).
    pub channel: String,
    pub recipient: String,
    pub user_id: Option<String>,
    /// Which template renders it.
    pub template: String,
    /// JSON: what the template shows. Links with tokens are removed once
    /// the message is sent or dead.
    #[sea_orm(column_type = "Text")]
    pub data: String,
    /// Unique per logical message; the provider's idempotency key.
    #[sea_orm(unique)]
    pub idempotency_key: String,
    /// `PENDING`, `SENT`, `DEAD` (every attempt failed), `SKIPPED` (no
    /// longer true when its turn came, e.g. a cancelled booking's reminder).
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    /// A worker owns the row until then.
    pub locked_until: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    pub provider_ref: Option<String>,
    pub created_at: DateTimeUtc,
    pub sent_at: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
