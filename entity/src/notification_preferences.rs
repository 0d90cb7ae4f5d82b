use sea_orm::entity::prelude::*;

/// A user's choice for one notification kind on one channel, stored only
/// once the user has made it (absent: the kind's default).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notification_preferences")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    /// `BOOKING_CONFIRMED`, `REMINDER`, ... (`domain::preferences::Kind`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub kind: String,
    /// `EMAIL` or `PUSH`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub channel: String,
    pub enabled: bool,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
