use sea_orm::entity::prelude::*;

/// An account: consumer (parent), coach or admin.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Stored trimmed and lower-cased; unique on `lower(email)`.
    pub email: String,
    pub password_hash: String,
    pub name: String,
    /// `CONSUMER`, `COACH` or `ADMIN`.
    pub role: String,
    pub email_verified: bool,
    pub market_id: Option<String>,
    /// IANA time zone for the times in their emails; unset: the market's.
    pub timezone: Option<String>,
    /// Bumped on password change, reset and suspension: every token carrying
    /// an older version is refused.
    pub session_version: i32,
    pub suspended_at: Option<DateTimeUtc>,
    pub suspension_reason: Option<String>,
    /// Deleted at the owner's request: personal fields are anonymised.
    pub deleted_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
