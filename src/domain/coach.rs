//! Coach profiles: validation, the review flow (DRAFT -> PENDING_REVIEW ->
//! APPROVED | REJECTED, SUSPENDED by an admin), publishing, and visibility.
//! Every change marks the coach's listing for search in its unit of work.

use std::collections::BTreeSet;

use chrono::Utc;
use chrono_tz::Tz;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use crate::domain::audit::{Entry, action};
use crate::domain::auth::CurrentUser;
use crate::domain::context::DomainCtx;
use crate::domain::reference::ReferenceData;
use crate::domain::review;
use crate::domain::types::Role;
use crate::domain::uow::UnitOfWork;
use crate::error::{AppError, AppResult};
use entity::{coach_categories, coach_profiles};

pub const DURATIONS: [u32; 5] = [30, 45, 60, 90, 120];
pub const BIO_MAX_CHARS: usize = 5000;
pub const MAX_CATEGORIES: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoachStatus {
    Draft,
    PendingReview,
    Approved,
    Rejected,
    Suspended,
}

impl CoachStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CoachStatus::Draft => "DRAFT",
            CoachStatus::PendingReview => "PENDING_REVIEW",
            CoachStatus::Approved => "APPROVED",
            CoachStatus::Rejected => "REJECTED",
            CoachStatus::Suspended => "SUSPENDED",
        }
    }

    /// What a client-facing message says a move to this status is.
    fn describe(self) -> &'static str {
        match self {
            CoachStatus::Draft => "returned to draft",
            CoachStatus::PendingReview => "submitted for review",
            CoachStatus::Approved => "approved",
            CoachStatus::Rejected => "rejected",
            CoachStatus::Suspended => "suspended",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            CoachStatus::Draft,
            CoachStatus::PendingReview,
            CoachStatus::Approved,
            CoachStatus::Rejected,
            CoachStatus::Suspended,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// Removes every markup a browser would run: only a few formatting tags
/// survive, with no attributes at all (so no handlers, styles or URLs).
pub fn sanitize_bio(raw: &str) -> String {
    ammonia::Builder::empty()
        .add_tags(["p", "br", "b", "strong", "i", "em", "ul", "ol", "li"])
        .clean(raw)
        .to_string()
}

pub(crate) fn text_field(
    field: &'static str,
    raw: &str,
    min: usize,
    max: usize,
) -> AppResult<String> {
    let v = raw.trim();
    let n = v.chars().count();
    if n < min || n > max {
        return Err(AppError::bad_input(
            field,
            format!("must be {min} to {max} characters"),
        ));
    }
    if v.chars().any(|c| c.is_control()) {
        return Err(AppError::bad_input(
            field,
            "must not contain control characters",
        ));
    }
    // Names and headlines are plain text: refuse markup rather than show it.
    if v.contains('<') || v.contains('>') {
        return Err(AppError::bad_input(field, "must not contain < or >"));
    }
    Ok(v.to_string())
}

/// Hourly-rate ceiling in minor units for a currency (about 1,000 USD).
pub fn rate_ceiling(currency: &str) -> i64 {
    match currency {
        "INR" => 8_000_000,
        _ => 100_000,
    }
}

pub fn parse_durations(raw: &[i32]) -> AppResult<Vec<u32>> {
    let set: BTreeSet<u32> = raw
        .iter()
        .map(|&d| {
            u32::try_from(d)
                .ok()
                .filter(|d| DURATIONS.contains(d))
                .ok_or_else(|| {
                    AppError::bad_input(
                        "sessionDurations",
                        "durations are 30, 45, 60, 90 or 120 minutes",
                    )
                })
        })
        .collect::<AppResult<_>>()?;
    if set.is_empty() {
        return Err(AppError::bad_input(
            "sessionDurations",
            "offer at least one duration",
        ));
    }
    Ok(set.into_iter().collect())
}

pub fn durations_of(model: &coach_profiles::Model) -> Vec<u32> {
    serde_json::from_str(&model.session_durations).unwrap_or_default()
}

pub fn parse_timezone(raw: &str) -> AppResult<Tz> {
    raw.trim()
        .parse::<Tz>()
        .map_err(|_| AppError::bad_input("timezone", "not an IANA time zone (e.g. Europe/London)"))
}

pub fn parse_meeting_url(raw: &str) -> AppResult<String> {
    let bad = || AppError::bad_input("meetingUrl", "must be an https:// URL");
    let url = url::Url::parse(raw.trim()).map_err(|_| bad())?;
    if url.scheme() != "https" || url.host_str().is_none_or(str::is_empty) || raw.len() > 500 {
        return Err(bad());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad());
    }
    Ok(url.to_string())
}

pub struct ProfileInput<'a> {
    pub display_name: &'a str,
    pub headline: &'a str,
    pub bio: &'a str,
    pub category_slugs: &'a [String],
    pub hourly_rate_minor: i64,
    pub session_durations: &'a [i32],
    pub timezone: &'a str,
    pub meeting_url: Option<&'a str>,
}

struct ValidProfile {
    display_name: String,
    headline: String,
    bio: String,
    category_ids: Vec<String>,
    hourly_rate_minor: i64,
    session_durations: Vec<u32>,
    timezone: Tz,
    meeting_url: Option<String>,
}

fn validate(
    input: &ProfileInput<'_>,
    reference: &ReferenceData,
    currency: &str,
) -> AppResult<ValidProfile> {
    let display_name = text_field("displayName", input.display_name, 2, 80)?;
    let headline = text_field("headline", input.headline, 5, 150)?;
    if input.bio.chars().count() > BIO_MAX_CHARS {
        return Err(AppError::bad_input(
            "bio",
            format!("at most {BIO_MAX_CHARS} characters"),
        ));
    }
    let bio = sanitize_bio(input.bio.trim());
    let mut category_ids = Vec::new();
    for slug in input.category_slugs {
        let category = reference.category_by_slug(slug.trim()).ok_or_else(|| {
            AppError::bad_input("categorySlugs", format!("unknown category `{slug}`"))
        })?;
        if !category_ids.contains(&category.id) {
            category_ids.push(category.id.clone());
        }
    }
    if category_ids.is_empty() || category_ids.len() > MAX_CATEGORIES {
        return Err(AppError::bad_input(
            "categorySlugs",
            format!("choose 1 to {MAX_CATEGORIES} categories"),
        ));
    }
    if input.hourly_rate_minor <= 0 {
        return Err(AppError::bad_input(
            "hourlyRateMinor",
            "the rate must be greater than 0",
        ));
    }
    if input.hourly_rate_minor > rate_ceiling(currency) {
        return Err(AppError::bad_input(
            "hourlyRateMinor",
            "the rate is above the allowed maximum",
        ));
    }
    Ok(ValidProfile {
        display_name,
        headline,
        bio,
        category_ids,
        hourly_rate_minor: input.hourly_rate_minor,
        session_durations: parse_durations(input.session_durations)?,
        timezone: parse_timezone(input.timezone)?,
        meeting_url: input
            .meeting_url
            .filter(|u| !u.trim().is_empty())
            .map(parse_meeting_url)
            .transpose()?,
    })
}

pub async fn find_by_user<C: ConnectionTrait>(
    db: &C,
    user_id: &str,
) -> AppResult<Option<coach_profiles::Model>> {
    Ok(coach_profiles::Entity::find()
        .filter(coach_profiles::Column::UserId.eq(user_id))
        .one(db)
        .await?)
}

pub(crate) async fn own_profile<C: ConnectionTrait>(
    db: &C,
    user: &CurrentUser,
) -> AppResult<coach_profiles::Model> {
    find_by_user(db, &user.id)
        .await?
        .ok_or(AppError::NotFound("coach profile"))
}

/// Creates or replaces the caller's profile. A new profile starts as DRAFT;
/// editing keeps the review status.
pub async fn upsert_profile(
    ctx: &DomainCtx,
    user: &CurrentUser,
    input: ProfileInput<'_>,
) -> AppResult<coach_profiles::Model> {
    if user.role != Role::Coach {
        return Err(AppError::Forbidden("only coaches have a coach profile"));
    }
    let reference = &ctx.reference;
    let market = user
        .user
        .market_id
        .as_deref()
        .and_then(|id| reference.market(id))
        .ok_or(AppError::MarketRequired)?;
    let valid = validate(&input, reference, &market.currency)?;
    let now = Utc::now();
    let mut uow = UnitOfWork::begin(ctx).await?;
    let txn = uow.db();
    let existing = find_by_user(txn, &user.id).await?;
    let durations = serde_json::to_string(&valid.session_durations).map_err(AppError::internal)?;
    let model = match existing {
        Some(existing) => {
            let mut m: coach_profiles::ActiveModel = existing.into();
            m.market_id = Set(market.id.clone());
            m.display_name = Set(valid.display_name);
            m.headline = Set(valid.headline);
            m.bio = Set(valid.bio);
            m.hourly_rate_minor = Set(valid.hourly_rate_minor);
            m.currency = Set(market.currency.clone());
            m.session_durations = Set(durations);
            m.timezone = Set(valid.timezone.name().to_string());
            m.meeting_url = Set(valid.meeting_url);
            m.updated_at = Set(now);
            m.update(txn).await?
        }
        None => {
            coach_profiles::ActiveModel {
                id: Set(uuid::Uuid::now_v7().to_string()),
                user_id: Set(user.id.clone()),
                market_id: Set(market.id.clone()),
                display_name: Set(valid.display_name),
                headline: Set(valid.headline),
                bio: Set(valid.bio),
                hourly_rate_minor: Set(valid.hourly_rate_minor),
                currency: Set(market.currency.clone()),
                session_durations: Set(durations),
                timezone: Set(valid.timezone.name().to_string()),
                meeting_url: Set(valid.meeting_url),
                status: Set(CoachStatus::Draft.as_str().into()),
                published: Set(false),
                rejection_reason: Set(None),
                payouts_enabled: Set(false),
                stripe_account_id: Set(None),
                payouts_updated_s: Set(0),
                rating_count: Set(0),
                rating_sum: Set(0),
                rating_score: Set(review::rating_score(0, 0)),
                sponsored_until: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(txn)
            .await?
        }
    };
    coach_categories::Entity::delete_many()
        .filter(coach_categories::Column::CoachId.eq(model.id.clone()))
        .exec(txn)
        .await?;
    coach_categories::Entity::insert_many(valid.category_ids.iter().map(|c| {
        coach_categories::ActiveModel {
            coach_id: Set(model.id.clone()),
            category_id: Set(c.clone()),
        }
    }))
    .exec(txn)
    .await?;
    uow.listing_changed(&model.id);
    uow.commit().await?;
    Ok(model)
}

/// Moves a status under a condition in one statement, so two concurrent
/// moves cannot both succeed; `CONFLICT` when the profile is not in `from`.
async fn transition<C: ConnectionTrait>(
    db: &C,
    coach_id: &str,
    from: &[CoachStatus],
    to: CoachStatus,
    reason: Option<String>,
) -> AppResult<()> {
    let res = coach_profiles::Entity::update_many()
        .col_expr(coach_profiles::Column::Status, Expr::value(to.as_str()))
        .col_expr(coach_profiles::Column::RejectionReason, Expr::value(reason))
        .col_expr(coach_profiles::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(coach_profiles::Column::Id.eq(coach_id))
        .filter(coach_profiles::Column::Status.is_in(from.iter().map(|s| s.as_str())))
        .exec(db)
        .await?;
    if res.rows_affected != 1 {
        return Err(AppError::Conflict(format!(
            "the profile cannot be {} from its current status",
            to.describe()
        )));
    }
    Ok(())
}

pub async fn submit(
    ctx: &DomainCtx,
    user: &CurrentUser,
    ip: Option<&str>,
) -> AppResult<coach_profiles::Model> {
    let profile = own_profile(&ctx.db, user).await?;
    let mut uow = UnitOfWork::begin(ctx).await?;
    transition(
        uow.db(),
        &profile.id,
        &[CoachStatus::Draft, CoachStatus::Rejected],
        CoachStatus::PendingReview,
        None,
    )
    .await?;
    uow.audit(Entry {
        action: action::COACH_SUBMITTED,
        actor_id: Some(&user.id),
        target_type: Some("coach"),
        target_id: Some(&profile.id),
        ip,
        detail: None,
    })
    .await?;
    uow.listing_changed(&profile.id);
    uow.commit().await?;
    get(&ctx.db, &profile.id).await
}

pub async fn publish(
    ctx: &DomainCtx,
    user: &CurrentUser,
    published: bool,
) -> AppResult<coach_profiles::Model> {
    let profile = own_profile(&ctx.db, user).await?;
    let mut uow = UnitOfWork::begin(ctx).await?;
    let mut update = coach_profiles::Entity::update_many()
        .col_expr(coach_profiles::Column::Published, Expr::value(published))
        .col_expr(coach_profiles::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(coach_profiles::Column::Id.eq(profile.id.clone()));
    if published {
        update = update.filter(coach_profiles::Column::Status.eq(CoachStatus::Approved.as_str()));
    }
    if update.exec(uow.db()).await?.rows_affected != 1 {
        return Err(AppError::Conflict(
            "only an approved profile can be published".into(),
        ));
    }
    let changed = get(uow.db(), &profile.id).await?;
    uow.listing_changed(&profile.id);
    uow.commit().await?;
    Ok(changed)
}

pub async fn get<C: ConnectionTrait>(db: &C, coach_id: &str) -> AppResult<coach_profiles::Model> {
    coach_profiles::Entity::find_by_id(coach_id.to_string())
        .one(db)
        .await?
        .ok_or(AppError::NotFound("coach"))
}

/// Admin review: PENDING_REVIEW -> APPROVED or REJECTED (with a reason).
pub async fn review(
    ctx: &DomainCtx,
    admin: &CurrentUser,
    coach_id: &str,
    approve: bool,
    reason: Option<&str>,
    ip: Option<&str>,
) -> AppResult<coach_profiles::Model> {
    let reason = match (approve, reason) {
        (true, _) => None,
        (false, Some(r)) => Some(text_field("reason", r, 3, 1000)?),
        (false, None) => return Err(AppError::bad_input("reason", "give a reason")),
    };
    get(&ctx.db, coach_id).await?;
    let mut uow = UnitOfWork::begin(ctx).await?;
    let (to, act) = if approve {
        (CoachStatus::Approved, action::COACH_APPROVED)
    } else {
        (CoachStatus::Rejected, action::COACH_REJECTED)
    };
    transition(
        uow.db(),
        coach_id,
        &[CoachStatus::PendingReview],
        to,
        reason.clone(),
    )
    .await?;
    uow.audit(Entry {
        action: act,
        actor_id: Some(&admin.id),
        target_type: Some("coach"),
        target_id: Some(coach_id),
        ip,
        detail: reason.map(|r| serde_json::json!({ "reason": r })),
    })
    .await?;
    uow.listing_changed(coach_id);
    let reviewed = get(uow.db(), coach_id).await?;
    crate::domain::notify::coach_reviewed(
        &mut uow,
        &reviewed,
        approve,
        reviewed.rejection_reason.as_deref(),
    )
    .await?;
    uow.commit().await?;
    get(&ctx.db, coach_id).await
}

/// Whether money can reach the coach: payouts enabled on a connected
/// account the platform knows (a destination charge needs one).
pub fn can_be_paid(profile: &coach_profiles::Model) -> bool {
    profile.payouts_enabled && profile.stripe_account_id.is_some()
}

/// Whether `viewer` may see this profile: the public sees approved,
/// published ones; the owner and admins always.
pub fn visible_to(profile: &coach_profiles::Model, viewer: Option<&CurrentUser>) -> bool {
    if let Some(v) = viewer
        && (v.role == Role::Admin || v.id == profile.user_id)
    {
        return true;
    }
    profile.published && profile.status == CoachStatus::Approved.as_str()
}

/// A profile by id if `viewer` may see it.
pub async fn find_visible<C: ConnectionTrait>(
    db: &C,
    coach_id: &str,
    viewer: Option<&CurrentUser>,
) -> AppResult<Option<coach_profiles::Model>> {
    if coach_id.len() > 64 {
        return Ok(None);
    }
    Ok(coach_profiles::Entity::find_by_id(coach_id.to_string())
        .one(db)
        .await?
        .filter(|p| visible_to(p, viewer)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_bios_lose_their_scripts() {
        let cases = [
            ("<script>alert(1)</script>Hello", "Hello"),
            ("<img src=x onerror=alert(1)>Hi", "Hi"),
            ("<a href=\"javascript:alert(1)\">click</a>", "click"),
            ("<p onclick=\"steal()\" style=\"x\">Para</p>", "<p>Para</p>"),
            ("<iframe src=\"https://evil\"></iframe>ok", "ok"),
            ("<svg><script>x</script></svg>t", "t"),
            (
                "<b>bold</b> &amp; <em>it</em>",
                "<b>bold</b> &amp; <em>it</em>",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(sanitize_bio(input), want, "{input}");
        }
    }

    #[test]
    fn field_parsers() {
        assert_eq!(parse_durations(&[60, 30, 60]).unwrap(), vec![30, 60]);
        assert!(parse_durations(&[]).is_err());
        assert!(parse_durations(&[50]).is_err());
        assert!(parse_timezone("Asia/Kolkata").is_ok());
        assert!(parse_timezone("Mars/Olympus").is_err());
        assert!(parse_meeting_url("https://meet.example.com/abc").is_ok());
        for bad in [
            "http://meet.example.com",
            "javascript:alert(1)",
            "https://",
            "ftp://x.com",
            "https://u:p@x.com",
        ] {
            assert!(parse_meeting_url(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn profile_parsers_never_panic(raw in ".{0,120}", n in prop::collection::vec(any::<i32>(), 0..8)) {
            let _ = parse_timezone(&raw);
            if let Ok(url) = parse_meeting_url(&raw) {
                prop_assert!(url.starts_with("https://"));
            }
            let _ = parse_durations(&n);
            let clean = sanitize_bio(&raw);
            prop_assert!(!clean.to_lowercase().contains("<script"));
        }
    }
}
