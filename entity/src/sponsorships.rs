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
    pub starts_at: Option<DateTimeUtc>,
    pub ends_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
