use sea_orm::entity::prelude::*;

/// A chargeback on a payment, one row per provider dispute.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "disputes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub payment_id: String,
    #[sea_orm(unique)]
    pub provider_ref: String,
    pub amount_minor: i64,
    pub currency: String,
    /// The provider's status (`needs_response`, `won`, `lost`, ...).
    pub status: String,
    pub reason: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
