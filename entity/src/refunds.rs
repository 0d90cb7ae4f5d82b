use sea_orm::entity::prelude::*;

/// A refund decided in the same transaction as its cause and executed
/// through the payment provider afterwards (retried until it succeeds); its
/// id is the provider's idempotency key, so a retry never refunds twice.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refunds")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub payment_id: String,
    pub amount_minor: i64,
    /// The payment's currency.
    pub currency: String,
    /// `PENDING` (to send), `SUBMITTED` (accepted, awaiting the provider's
    /// confirmation), `SUCCEEDED`, `FAILED`.
    pub status: String,
    pub reason: String,
    pub provider_ref: Option<String>,
    pub attempts: i32,
    /// When a PENDING refund is sent (again); also its claim.
    pub next_attempt_at: Option<DateTimeUtc>,
    /// The provider's last refusal, for admins (never a secret).
    pub last_error: Option<String>,
    /// The key the next attempt is sent with: `refund-<id>`, and a new one
    /// only once the provider has said no refund was made under the last.
    pub idempotency_key: String,
    /// The last attempt failed inside the provider: whether a refund was
    /// made is looked up before trying again.
    pub outcome_unknown: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
