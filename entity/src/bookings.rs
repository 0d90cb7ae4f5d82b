use sea_orm::entity::prelude::*;

/// A booked session. Price, fee and payout are fixed when it is created.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "bookings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(unique)]
    pub hold_id: String,
    pub coach_id: String,
    /// The coach's user id (participants are users).
    pub coach_user_id: String,
    pub consumer_id: String,
    pub start_at: DateTimeUtc,
    pub end_at: DateTimeUtc,
    /// `start_at` in epoch seconds, for keyset paging.
    pub start_s: i64,
    pub status: String,
    pub price_minor: i64,
    pub currency: String,
    pub platform_fee_minor: i64,
    pub coach_payout_minor: i64,
    pub payment_deadline: DateTimeUtc,
    /// When it was confirmed (paid).
    pub confirmed_at: Option<DateTimeUtc>,
    /// The 24 h / 1 h reminder was queued (or passed over).
    #[sea_orm(column_name = "reminded_24h")]
    pub reminded_24h: bool,
    #[sea_orm(column_name = "reminded_1h")]
    pub reminded_1h: bool,
    pub meeting_url: Option<String>,
    pub cancellation_reason: Option<String>,
    /// `CONSUMER`, `COACH`, `ADMIN` or `SYSTEM`.
    pub cancelled_by: Option<String>,
    pub refunded_minor: i64,
    /// The package purchase whose credit paid for it (no payment then).
    pub package_purchase_id: Option<String>,
    /// A cancellation gave the credit back.
    pub credit_returned: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
