use sea_orm::entity::prelude::*;

/// Time of a coach taken by a hold and then its booking. The database
/// refuses two overlapping active reservations of one coach.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reservations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub coach_id: String,
    #[sea_orm(unique)]
    pub hold_id: String,
    pub booking_id: Option<String>,
    pub start_s: i64,
    pub end_s: i64,
    /// Free after this second (hold expiry, payment deadline); NULL once paid.
    pub live_until_s: Option<i64>,
    pub active: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
