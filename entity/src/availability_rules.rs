use sea_orm::entity::prelude::*;

/// A weekly window in the coach's time zone: weekday 1 (Monday) ..= 7,
/// minutes from local midnight.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "availability_rules")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub coach_id: String,
    pub weekday: i16,
    pub start_minute: i16,
    pub end_minute: i16,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
