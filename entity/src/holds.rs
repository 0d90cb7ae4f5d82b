use sea_orm::entity::prelude::*;

/// A short claim on a slot while the consumer books it.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "holds")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub coach_id: String,
    pub consumer_id: String,
    pub start_at: DateTimeUtc,
    pub end_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    /// `ACTIVE`, `CONVERTED`, `RELEASED`, `EXPIRED` (ACTIVE past `expires_at` is expired).
    pub status: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
