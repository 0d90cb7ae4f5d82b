//! Admin: suspension, and the admin listings (newest first,
//! keyset-paginated by id: UUIDv7, so id order is creation order).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use chrono::Utc;

use crate::domain::audit::{Entry, action};
use crate::domain::auth::{CurrentUser, end_all_sessions};
use crate::domain::coach::{self, CoachStatus};
use crate::domain::context::DomainCtx;
use crate::domain::search::{like_pattern, page_size};
use crate::domain::types::Role;
use crate::domain::uow::UnitOfWork;
use crate::error::{AppError, AppResult};
use entity::{coach_profiles, users};

pub struct IdPage<T> {
    pub items: Vec<T>,
    pub cursors: Vec<String>,
    pub has_next: bool,
    pub total_count: u64,
}

fn encode(kind: &str, id: &str) -> String {
    B64.encode(format!("{kind}:{id}"))
}

fn decode(kind: &str, raw: &str) -> AppResult<String> {
    let bad = || AppError::bad_input("after", "this cursor does not belong to this listing");
    let text = String::from_utf8(B64.decode(raw.trim()).map_err(|_| bad())?).map_err(|_| bad())?;
    let (k, id) = text.split_once(':').ok_or_else(bad)?;
    if k != kind || id.is_empty() || id.len() > 64 {
        return Err(bad());
    }
    Ok(id.to_string())
}

pub async fn coaches(
    db: &DatabaseConnection,
    status: Option<CoachStatus>,
    first: Option<i32>,
    after: Option<&str>,
) -> AppResult<IdPage<coach_profiles::Model>> {
    let limit = page_size(first)?;
    let mut cond = Condition::all();
    if let Some(s) = status {
        cond = cond.add(coach_profiles::Column::Status.eq(s.as_str()));
    }
    let mut q = coach_profiles::Entity::find().filter(cond.clone());
    if let Some(a) = after {
        q = q.filter(coach_profiles::Column::Id.lt(decode("coach", a)?));
    }
    let mut rows = q
        .order_by_desc(coach_profiles::Column::Id)
        .limit(limit + 1)
        .all(db)
        .await?;
    let has_next = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let total_count = coach_profiles::Entity::find()
        .filter(cond)
        .count(db)
        .await?;
    let cursors = rows.iter().map(|r| encode("coach", &r.id)).collect();
    Ok(IdPage {
        items: rows,
        cursors,
        has_next,
        total_count,
    })
}

pub async fn users(
    db: &DatabaseConnection,
    query: Option<&str>,
    role: Option<Role>,
    first: Option<i32>,
    after: Option<&str>,
) -> AppResult<IdPage<users::Model>> {
    let limit = page_size(first)?;
    let mut cond = Condition::all();
    if let Some(r) = role {
        cond = cond.add(users::Column::Role.eq(r.as_str()));
    }
    if let Some(q) = query.map(str::trim).filter(|q| !q.is_empty()) {
        if q.chars().count() > 100 {
            return Err(AppError::bad_input("query", "at most 100 characters"));
        }
        let pattern = like_pattern(q);
        let like = |c: users::Column| {
            Expr::expr(Func::lower(Expr::col(c))).like(LikeExpr::new(pattern.clone()).escape('\\'))
        };
        cond = cond.add(
            Condition::any()
                .add(like(users::Column::Email))
                .add(like(users::Column::Name)),
        );
    }
    let mut q = users::Entity::find().filter(cond.clone());
    if let Some(a) = after {
        q = q.filter(users::Column::Id.lt(decode("user", a)?));
    }
    let mut rows = q
        .order_by_desc(users::Column::Id)
        .limit(limit + 1)
        .all(db)
        .await?;
    let has_next = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let total_count = users::Entity::find().filter(cond).count(db).await?;
    let cursors = rows.iter().map(|r| encode("user", &r.id)).collect();
    Ok(IdPage {
        items: rows,
        cursors,
        has_next,
        total_count,
    })
}

/// Suspends a user: every token stops working at once (session version
/// bump) and a coach profile leaves search (status SUSPENDED).
pub async fn suspend_user(
    ctx: &DomainCtx,
    admin: &CurrentUser,
    user_id: &str,
    reason: &str,
    ip: Option<&str>,
) -> AppResult<users::Model> {
    let reason = coach::text_field("reason", reason, 3, 1000)?;
    if user_id == admin.id {
        return Err(AppError::Conflict("you cannot suspend yourself".into()));
    }
    let user = users::Entity::find_by_id(user_id.to_string())
        .one(&ctx.db)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    if user.suspended_at.is_some() {
        return Err(AppError::Conflict("the user is already suspended".into()));
    }
    let now = Utc::now();
    let mut uow = UnitOfWork::begin(ctx).await?;
    let txn = uow.db();
    let first = users::Entity::update_many()
        .col_expr(users::Column::SuspendedAt, Expr::value(now))
        .col_expr(users::Column::SuspensionReason, Expr::value(reason.clone()))
        .filter(users::Column::Id.eq(user_id))
        .filter(users::Column::SuspendedAt.is_null())
        .exec(txn)
        .await?;
    if first.rows_affected != 1 {
        // Another admin was quicker.
        return Err(AppError::Conflict("the user is already suspended".into()));
    }
    let valid = end_all_sessions(txn, user_id).await?;
    coach_profiles::Entity::update_many()
        .col_expr(
            coach_profiles::Column::Status,
            Expr::value(CoachStatus::Suspended.as_str()),
        )
        .col_expr(coach_profiles::Column::Published, Expr::value(false))
        .col_expr(coach_profiles::Column::UpdatedAt, Expr::value(now))
        .filter(coach_profiles::Column::UserId.eq(user_id))
        .exec(txn)
        .await?;
    uow.audit(Entry {
        action: action::USER_SUSPENDED,
        actor_id: Some(&admin.id),
        target_type: Some("user"),
        target_id: Some(user_id),
        ip,
        detail: Some(serde_json::json!({ "reason": reason })),
    })
    .await?;
    uow.sessions_ended(user_id, valid);
    // Whatever the user listed leaves search.
    if let Some(profile) = coach::find_by_user(uow.db(), user_id).await? {
        uow.listing_changed(&profile.id);
    }
    uow.commit().await?;
    users::Entity::find_by_id(user_id.to_string())
        .one(&ctx.db)
        .await?
        .ok_or(AppError::NotFound("user"))
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn admin_cursors_from_anyone(raw in ".{0,200}", b64 in "[A-Za-z0-9_-]{0,120}") {
            let _ = decode("user", &raw);
            if let Ok(id) = decode("coach", &b64) {
                prop_assert!(!id.is_empty() && id.len() <= 64);
            }
            let id = format!("{}", b64.len());
            prop_assert_eq!(decode("user", &encode("user", &id)).unwrap(), id);
        }
    }
}

/// The admin console's figures for `[from, to)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bookings created in the range, and of those the ones now
    /// COMPLETED and CANCELLED.
    pub bookings_count: u64,
    pub completed_count: u64,
    pub cancelled_count: u64,
    /// Accounts created in the range.
    pub new_users: u64,
    /// Coaches with a paid booking (confirmed, completed or a no-show)
    /// created in the range.
    pub active_coaches: u64,
    /// Per currency, never summed across: money taken by payments made in
    /// the range, less what was refunded (or is being refunded) of them.
    pub gross: Vec<(String, i64)>,
    /// Per currency: what the platform keeps of that, its fee on bookings
    /// and packages after refunds (refunded in proportion) and all of a
    /// sponsorship.
    pub platform: Vec<(String, i64)>,
}

/// How far apart `from` and `to` may be.
pub const MAX_STATS_RANGE_DAYS: i64 = 3_660;

pub fn check_range(
    from: chrono::DateTime<Utc>,
    to: chrono::DateTime<Utc>,
    max_days: i64,
) -> AppResult<()> {
    if to <= from {
        return Err(AppError::bad_input("to", "must be after from"));
    }
    if to - from > chrono::Duration::days(max_days) {
        return Err(AppError::bad_input(
            "to",
            format!("at most {max_days} days after from"),
        ));
    }
    Ok(())
}

pub async fn stats(
    db: &DatabaseConnection,
    from: chrono::DateTime<Utc>,
    to: chrono::DateTime<Utc>,
) -> AppResult<Stats> {
    use crate::domain::booking::BookingStatus;
    use crate::domain::payment::{PaymentStatus, net_shares};
    use entity::bookings;
    use futures_util::TryStreamExt;
    use sea_orm::{FromQueryResult, Statement};

    check_range(from, to, MAX_STATS_RANGE_DAYS)?;
    let in_range = || {
        Condition::all()
            .add(bookings::Column::CreatedAt.gte(from))
            .add(bookings::Column::CreatedAt.lt(to))
    };
    let count_status = |s: Option<BookingStatus>| {
        let mut q = bookings::Entity::find().filter(in_range());
        if let Some(s) = s {
            q = q.filter(bookings::Column::Status.eq(s.as_str()));
        }
        q.count(db)
    };
    let bookings_count = count_status(None).await?;
    let completed_count = count_status(Some(BookingStatus::Completed)).await?;
    let cancelled_count = count_status(Some(BookingStatus::Cancelled)).await?;
    let new_users = users::Entity::find()
        .filter(users::Column::CreatedAt.gte(from))
        .filter(users::Column::CreatedAt.lt(to))
        .count(db)
        .await?;
    let active: Vec<String> = bookings::Entity::find()
        .select_only()
        .column(bookings::Column::CoachId)
        .distinct()
        .filter(in_range())
        .filter(bookings::Column::Status.is_in([
            BookingStatus::Confirmed.as_str(),
            BookingStatus::Completed.as_str(),
            BookingStatus::NoShowConsumer.as_str(),
            BookingStatus::NoShowCoach.as_str(),
        ]))
        .into_tuple()
        .all(db)
        .await?;

    #[derive(FromQueryResult)]
    struct Paid {
        purpose: String,
        currency: String,
        amount_minor: i64,
        refunded_minor: i64,
        refund_decided_minor: i64,
        booking_fee: Option<i64>,
        package_fee: Option<i64>,
    }
    let backend = db.get_database_backend();
    let ph = |n| crate::domain::review::placeholder(backend, n);
    let statuses: Vec<&str> = PaymentStatus::ALL
        .into_iter()
        .filter(|s| s.is_paid())
        .map(PaymentStatus::as_str)
        .collect();
    let sql = format!(
        "SELECT p.purpose, p.currency, p.amount_minor, p.refunded_minor, p.refund_decided_minor,
                b.platform_fee_minor AS booking_fee, pp.platform_fee_minor AS package_fee
         FROM payments p
         LEFT JOIN bookings b ON b.id = p.booking_id
         LEFT JOIN package_purchases pp ON pp.id = p.package_purchase_id
         WHERE p.created_at >= {} AND p.created_at < {} AND p.status IN ({}, {}, {})",
        ph(1),
        ph(2),
        ph(3),
        ph(4),
        ph(5)
    );
    let mut values: Vec<sea_orm::Value> = vec![from.into(), to.into()];
    values.extend(statuses.iter().map(|s| (*s).into()));
    let mut gross: std::collections::BTreeMap<String, i64> = Default::default();
    let mut platform: std::collections::BTreeMap<String, i64> = Default::default();
    // Streamed: a year of payments is never held in memory.
    let mut rows = Paid::find_by_statement(Statement::from_sql_and_values(backend, sql, values))
        .stream(db)
        .await?;
    while let Some(p) = rows.try_next().await? {
        let refunded = Ord::max(p.refunded_minor, p.refund_decided_minor).clamp(0, p.amount_minor);
        let kept = p.amount_minor - refunded;
        let fee = match p.purpose.as_str() {
            "BOOKING" => net_shares(p.amount_minor, p.booking_fee.unwrap_or(0), refunded).1,
            "PACKAGE_PURCHASE" => {
                net_shares(p.amount_minor, p.package_fee.unwrap_or(0), refunded).1
            }
            // The platform keeps all of a sponsorship.
            _ => kept,
        };
        *gross.entry(p.currency.clone()).or_default() += kept;
        *platform.entry(p.currency).or_default() += fee;
    }
    Ok(Stats {
        bookings_count,
        completed_count,
        cancelled_count,
        new_users,
        active_coaches: active.len() as u64,
        gross: gross.into_iter().collect(),
        platform: platform.into_iter().collect(),
    })
}

/// Filters of the audit log.
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub actor_id: Option<String>,
    pub target_id: Option<String>,
    pub from: Option<chrono::DateTime<Utc>>,
    pub to: Option<chrono::DateTime<Utc>>,
}

/// The audit log, newest first, keyset-paginated by id.
pub async fn audit_log(
    db: &DatabaseConnection,
    filter: AuditFilter,
    first: Option<i32>,
    after: Option<&str>,
) -> AppResult<IdPage<entity::audit_log::Model>> {
    use entity::audit_log;
    let limit = page_size(first)?;
    let mut cond = Condition::all();
    for (field, value, col) in [
        ("action", &filter.action, audit_log::Column::Action),
        ("actorId", &filter.actor_id, audit_log::Column::ActorId),
        ("targetId", &filter.target_id, audit_log::Column::TargetId),
    ] {
        if let Some(v) = value {
            if v.len() > 100 {
                return Err(AppError::bad_input(field, "at most 100 characters"));
            }
            cond = cond.add(col.eq(v.clone()));
        }
    }
    if let Some(f) = filter.from {
        cond = cond.add(audit_log::Column::CreatedAt.gte(f));
    }
    if let Some(t) = filter.to {
        cond = cond.add(audit_log::Column::CreatedAt.lt(t));
    }
    let mut q = audit_log::Entity::find().filter(cond.clone());
    if let Some(a) = after {
        q = q.filter(audit_log::Column::Id.lt(decode("audit", a)?));
    }
    let mut rows = q
        .order_by_desc(audit_log::Column::Id)
        .limit(limit + 1)
        .all(db)
        .await?;
    let has_next = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let total_count = audit_log::Entity::find().filter(cond).count(db).await?;
    let cursors = rows.iter().map(|r| encode("audit", &r.id)).collect();
    Ok(IdPage {
        items: rows,
        cursors,
        has_next,
        total_count,
    })
}
