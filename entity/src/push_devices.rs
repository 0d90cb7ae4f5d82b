use sea_orm::entity::prelude::*;

/// A phone that receives push notifications: its Expo push token, owned by
/// the user who registered it last.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "push_devices")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub user_id: String,
    /// `ExponentPushToken[...]` or `ExpoPushToken[...]`.
    #[sea_orm(unique)]
    pub token: String,
    /// `IOS` or `ANDROID`.
    pub platform: String,
    pub created_at: DateTimeUtc,
    /// Last registered (the oldest device goes first past the limit).
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
