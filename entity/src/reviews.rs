use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reviews")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub coach_id: String,
    pub consumer_id: String,
    /// Unique: one review per booking.
    pub booking_id: Option<String>,
    pub rating: i16,
    pub comment: String,
    pub coach_response: Option<String>,
    pub hidden: bool,
    /// Why an admin hid it.
    pub hidden_reason: Option<String>,
    pub hidden_at: Option<DateTimeUtc>,
    pub responded_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
