use sea_orm::entity::prelude::*;

/// A bundle of sessions a coach sells at one price.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "packages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub coach_id: String,
    pub name: String,
    pub session_count: i32,
    pub price_minor: i64,
    pub currency: String,
    pub validity_days: i32,
    pub active: bool,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
