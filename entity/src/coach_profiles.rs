use sea_orm::entity::prelude::*;

/// A coach's public profile. `id` is the coach id used across the API.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "coach_profiles")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(unique)]
    pub user_id: String,
    pub market_id: String,
    pub display_name: String,
    pub headline: String,
    /// Sanitised HTML (a few formatting tags, no attributes).
    pub bio: String,
    pub hourly_rate_minor: i64,
    /// The market's currency when the rate was set.
    pub currency: String,
    /// JSON array of minutes, e.g. `[30,60]`.
    pub session_durations: String,
    /// IANA time zone name.
    pub timezone: String,
    pub meeting_url: Option<String>,
    /// `DRAFT`, `PENDING_REVIEW`, `APPROVED`, `REJECTED`, `SUSPENDED`.
    pub status: String,
    pub published: bool,
    pub rejection_reason: Option<String>,
    pub payouts_enabled: bool,
    pub stripe_account_id: Option<String>,
    /// Creation time (Unix seconds) of the account state `payouts_enabled`
    /// was set from.
    pub payouts_updated_s: i64,
    /// Visible reviews and their rating total (kept with each review change).
    pub rating_count: i32,
    pub rating_sum: i64,
    /// Damped (Bayesian) average rating times 1,000,000, for sorting.
    pub rating_score: i64,
    /// End of the latest active sponsorship, if any.
    pub sponsored_until: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
