//! The admins' weekly report: every Monday from 08:00 in each admin's own
//! time zone, one email with last week's figures (`adminStats` of the
//! seven days before that Monday, midnight to midnight in the admin's
//! zone) beside the week before's. Opt-in (`WEEKLY_REPORT` in the
//! preferences). The email's key names the admin and the week, so however
//! many instances run the job, each admin gets one report a week.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::domain::admin::{self, Stats};
use crate::domain::context::DomainCtx;
use crate::domain::email::{self, Recipient};
use crate::domain::preferences::{Channel, Kind};
use crate::domain::types::Role;
use crate::domain::uow::UnitOfWork;
use crate::email::Template;
use crate::error::AppResult;
use entity::{notification_preferences as prefs, outbox, users};

/// When on Monday the report goes, local time.
const SEND_AT: NaiveTime = match NaiveTime::from_hms_opt(8, 0, 0) {
    Some(t) => t,
    None => panic!("08:00 is a time"),
};
/// A report not sent by then (the server was down all Monday) is skipped:
/// it would no longer be Monday's.
const LATEST: Duration = Duration::hours(16);

/// Local midnight of `day` in `tz` (the first instant of the day where a
/// clock change skips midnight).
fn midnight(tz: Tz, day: NaiveDate) -> DateTime<Utc> {
    let mut t = day.and_time(NaiveTime::MIN);
    for _ in 0..4 {
        if let Some(at) = tz.from_local_datetime(&t).earliest() {
            return at.with_timezone(&Utc);
        }
        t += Duration::hours(1);
    }
    day.and_time(NaiveTime::MIN).and_utc()
}

/// The report due at `now` for an admin in `tz`: the Monday it belongs to,
/// when `now` is within its sending window.
pub fn due_monday(tz: Tz, now: DateTime<Utc>) -> Option<NaiveDate> {
    let local = now.with_timezone(&tz).date_naive();
    let monday = local - Duration::days(i64::from(local.weekday().num_days_from_monday()));
    let send_at = tz
        .from_local_datetime(&monday.and_time(SEND_AT))
        .earliest()?
        .with_timezone(&Utc);
    (now >= send_at && now < send_at + LATEST).then_some(monday)
}

/// Queues the reports due at `now`; returns how many were queued.
pub async fn queue_due(ctx: &DomainCtx, now: DateTime<Utc>) -> AppResult<usize> {
    let opted_in: Vec<String> = prefs::Entity::find()
        .filter(prefs::Column::Kind.eq(Kind::WeeklyReport.as_str()))
        .filter(prefs::Column::Channel.eq(Channel::Email.as_str()))
        .filter(prefs::Column::Enabled.eq(true))
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(|p| p.user_id)
        .collect();
    if opted_in.is_empty() {
        return Ok(0);
    }
    let admins = users::Entity::find()
        .filter(users::Column::Id.is_in(opted_in))
        .filter(users::Column::Role.eq(Role::Admin.as_str()))
        .filter(users::Column::SuspendedAt.is_null())
        .filter(users::Column::DeletedAt.is_null())
        .all(&ctx.db)
        .await?;
    let mut queued = 0;
    for admin in admins {
        let to = email::recipient(&ctx.db, &admin.id).await?;
        let tz: Tz = to.timezone.parse().unwrap_or(Tz::UTC);
        let Some(monday) = due_monday(tz, now) else {
            continue;
        };
        let key = format!("weekly-report:{}:{monday}", admin.id);
        let already = outbox::Entity::find()
            .filter(outbox::Column::IdempotencyKey.eq(key.clone()))
            .count(&ctx.db)
            .await?;
        if already > 0 {
            continue;
        }
        match queue_one(ctx, &to, tz, monday, &key).await {
            Ok(true) => queued += 1,
            // Another instance was first.
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(admin = %admin.id, error = ?e, "weekly report not queued; will retry")
            }
        }
    }
    Ok(queued)
}

fn counts(s: &Stats) -> serde_json::Value {
    serde_json::json!({
        "bookings": s.bookings_count,
        "completed": s.completed_count,
        "cancelled": s.cancelled_count,
        "new_users": s.new_users,
        "active_coaches": s.active_coaches,
    })
}

/// Per currency, this week's and the week before's money side by side.
fn money(this: &Stats, before: &Stats) -> serde_json::Value {
    let mut currencies: Vec<&str> = this
        .gross
        .iter()
        .chain(&this.platform)
        .chain(&before.gross)
        .chain(&before.platform)
        .map(|(c, _)| c.as_str())
        .collect();
    currencies.sort_unstable();
    currencies.dedup();
    let of = |list: &[(String, i64)], c: &str| {
        list.iter()
            .find(|(k, _)| k == c)
            .map(|(_, v)| *v)
            .unwrap_or(0)
    };
    serde_json::Value::Array(
        currencies
            .into_iter()
            .map(|c| {
                serde_json::json!({
                    "currency": c,
                    "gross_minor": of(&this.gross, c),
                    "platform_minor": of(&this.platform, c),
                    "prev_gross_minor": of(&before.gross, c),
                    "prev_platform_minor": of(&before.platform, c),
                })
            })
            .collect(),
    )
}

async fn queue_one(
    ctx: &DomainCtx,
    to: &Recipient,
    tz: Tz,
    monday: NaiveDate,
    key: &str,
) -> AppResult<bool> {
    let week_start = monday - Duration::days(7);
    let before_start = monday - Duration::days(14);
    let (from, to_) = (midnight(tz, week_start), midnight(tz, monday));
    let this = admin::stats(&ctx.db, from, to_).await?;
    let before = admin::stats(&ctx.db, midnight(tz, before_start), from).await?;
    let data = serde_json::json!({
        "week_start": week_start.format("%A %-d %B %Y").to_string(),
        "week_end": (monday - Duration::days(1)).format("%A %-d %B %Y").to_string(),
        "this": counts(&this),
        "previous": counts(&before),
        "money": money(&this, &before),
    });
    let mut uow = UnitOfWork::begin(ctx).await?;
    let new = email::queue_new(&mut uow, to, Template::WeeklyReport, key, data).await?;
    uow.commit().await?;
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_report_is_due_from_monday_eight_in_the_admins_zone() {
        let ny = Tz::America__New_York;
        // Monday 7 December 2026, 08:00 EST is 13:00 UTC.
        assert_eq!(due_monday(ny, at("2026-12-07T12:59:59Z")), None);
        assert_eq!(
            due_monday(ny, at("2026-12-07T13:00:00Z")),
            NaiveDate::from_ymd_opt(2026, 12, 7)
        );
        assert_eq!(due_monday(ny, at("2026-12-08T05:00:00Z")), None);
        let kolkata = Tz::Asia__Kolkata;
        // 08:00 IST on Monday is 02:30 UTC.
        assert_eq!(
            due_monday(kolkata, at("2026-12-07T02:30:00Z")),
            NaiveDate::from_ymd_opt(2026, 12, 7)
        );
        assert_eq!(due_monday(kolkata, at("2026-12-06T23:00:00Z")), None);
    }

    #[test]
    fn a_week_across_a_clock_change_is_midnight_to_midnight() {
        let london = Tz::Europe__London;
        // Clocks go back on Sunday 25 October 2026.
        let from = midnight(london, NaiveDate::from_ymd_opt(2026, 10, 19).unwrap());
        let to = midnight(london, NaiveDate::from_ymd_opt(2026, 10, 26).unwrap());
        assert_eq!(from, at("2026-10-18T23:00:00Z"));
        assert_eq!((to - from).num_hours(), 7 * 24 + 1);
    }
}
