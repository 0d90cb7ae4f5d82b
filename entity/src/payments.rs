use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// `BOOKING`, `PACKAGE_PURCHASE` or `SPONSORSHIP`: which one of the
    /// links below is set (a check constraint holds them together).
    pub purpose: String,
    #[sea_orm(unique)]
    pub booking_id: Option<String>,
    pub package_purchase_id: Option<String>,
    pub sponsorship_id: Option<String>,
    /// `PENDING`, `SUCCEEDED`, `FAILED`, `REFUNDED`, `PARTIALLY_REFUNDED`.
    pub status: String,
    pub amount_minor: i64,
    pub currency: String,
    /// Refunds confirmed by the provider.
    pub refunded_minor: i64,
    /// Refunds decided (sent or still to send, not failed): never more
    /// than the amount paid.
    pub refund_decided_minor: i64,
    /// Which provider handles it (`dev`, `stripe`).
    pub provider: String,
    pub provider_ref: Option<String>,
    pub checkout_url: Option<String>,
    /// The provider's payment (Stripe: `pi_...`), known once paid.
    pub provider_payment_intent: Option<String>,
    /// The connected account a destination charge pays.
    pub transfer_destination: Option<String>,
    pub checkout_opened_at: Option<DateTimeUtc>,
    /// When reconciliation looks at this pending payment next.
    pub next_check_at: Option<DateTimeUtc>,
    /// A chargeback is open (or was lost).
    pub disputed: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
