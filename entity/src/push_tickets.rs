use sea_orm::entity::prelude::*;

/// Expo's ticket for an accepted push, kept until its receipt is read.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "push_tickets")]
pub struct Model {
    /// Expo's receipt id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The outbox row that was sent.
    pub outbox_id: String,
    /// The device it went to (removed on `DeviceNotRegistered`).
    pub token: String,
    /// When to ask for the receipt (Expo has it some minutes after).
    pub check_after: DateTimeUtc,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
