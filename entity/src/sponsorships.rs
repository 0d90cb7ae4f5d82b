use sea_orm::entity::prelude::*;

/// Paid, labelled promotion of a coach in search.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sponsorships")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub coach_id: String,
    pub plan_id: String,
    /// `PENDING_PAYMENT`, `ACTIVE`, `EXPIRED`, `CANCELLED`.
    pub status: String,
    /// Set when paid: from the payment (or the end of the coach's
    /// sponsorship running then) for `duration_days`.
    pub starts_at: Option<DateTimeUtc>,
    pub ends_at: Option<DateTimeUtc>,
    /// What was paid and for how long, copied from the plan when bought.
    pub price_minor: i64,
    pub currency: String,
    pub duration_days: i32,
    pub payment_deadline: Option<DateTimeUtc>,
    pub cancellation_reason: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
