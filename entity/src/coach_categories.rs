use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "coach_categories")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub coach_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub category_id: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
