use sea_orm::entity::prelude::*;

/// A consumer's purchase of a coach's package: paid once, then spent a
/// credit per booking until none remain or it expires.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "package_purchases")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub package_id: String,
    pub coach_id: String,
    pub consumer_id: String,
    /// `PENDING`, `ACTIVE`, `EXPIRED`, `CANCELLED`.
    pub status: String,
    pub sessions_total: i32,
    /// Credits left; 0 until paid.
    pub sessions_remaining: i32,
    pub price_minor: i64,
    pub currency: String,
    pub platform_fee_minor: i64,
    pub validity_days: i32,
    pub payment_deadline: DateTimeUtc,
    pub paid_at: Option<DateTimeUtc>,
    /// `paid_at` plus the validity; credits cannot be spent from then on.
    pub expires_at: Option<DateTimeUtc>,
    pub cancellation_reason: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
