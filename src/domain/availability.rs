//! Weekly availability rules and the slot arithmetic built on them.
//!
//! Rules are wall-clock windows in the coach's time zone. Slots start on a
//! 30-minute grid of local time, fit inside one rule, and are returned in
//! UTC. On a daylight-saving change a local time that does not exist is
//! skipped and an ambiguous one is offered once, at its first occurrence.
//! The slot arithmetic is pure; the database side (at the end: storing
//! rules, and `availableSlots` over busy time) only supplies its inputs.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use crate::domain::auth::CurrentUser;
use crate::domain::coach;
use crate::domain::context::DomainCtx;
use crate::domain::reservation;
use crate::domain::uow::UnitOfWork;
use crate::error::{AppError, AppResult};
use entity::{availability_rules, coach_profiles};

pub const MAX_RULES: usize = 50;
pub const GRID_MINUTES: u32 = 15;
pub const SLOT_GRID_MINUTES: u32 = 30;
pub const MAX_RANGE_DAYS: i64 = 31;

/// One validated weekly window: weekday 1 (Monday) ..= 7, minutes from
/// local midnight, `start < end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub weekday: u8,
    pub start_minute: u16,
    pub end_minute: u16,
}

/// `HH:MM` on the 15-minute grid; `24:00` is allowed as an end.
pub fn parse_hhmm(field: &'static str, s: &str, allow_24: bool) -> Result<u16, AppError> {
    let bad = || {
        AppError::bad_input(
            field,
            format!("`{s}` is not a time HH:MM on a 15-minute grid"),
        )
    };
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    let total = h * 60 + m;
    let valid = m < 60 && (h < 24 || (allow_24 && h == 24 && m == 0));
    if !valid || !total.is_multiple_of(GRID_MINUTES as u16) {
        return Err(bad());
    }
    Ok(total)
}

pub fn format_hhmm(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// Validates a full replacement set of rules: each well-formed, at most 50,
/// and no two overlapping on the same weekday.
pub fn parse_rules(raw: &[(i32, String, String)]) -> Result<Vec<Rule>, AppError> {
    if raw.len() > MAX_RULES {
        return Err(AppError::bad_input(
            "rules",
            format!("at most {MAX_RULES} rules"),
        ));
    }
    let mut rules = Vec::with_capacity(raw.len());
    for (weekday, start, end) in raw {
        if !(1..=7).contains(weekday) {
            return Err(AppError::bad_input(
                "weekday",
                "weekday is 1 (Monday) to 7 (Sunday)",
            ));
        }
        let start_minute = parse_hhmm("startTime", start, false)?;
        let end_minute = parse_hhmm("endTime", end, true)?;
        if start_minute >= end_minute {
            return Err(AppError::bad_input(
                "endTime",
                "a rule must end after it starts",
            ));
        }
        rules.push(Rule {
            weekday: *weekday as u8,
            start_minute,
            end_minute,
        });
    }
    let mut sorted = rules.clone();
    sorted.sort_by_key(|r| (r.weekday, r.start_minute));
    for pair in sorted.windows(2) {
        if pair[0].weekday == pair[1].weekday && pair[1].start_minute < pair[0].end_minute {
            return Err(AppError::bad_input(
                "rules",
                "rules on the same day must not overlap",
            ));
        }
    }
    Ok(sorted)
}

/// A bookable interval, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Slot {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// What a slot query asks.
pub struct SlotQuery<'a> {
    pub rules: &'a [Rule],
    pub tz: Tz,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub duration_minutes: u32,
    /// Earliest allowed start (now + minimum notice).
    pub earliest_start: DateTime<Utc>,
    /// Intervals already taken (live holds and bookings), any order.
    pub busy: &'a [(DateTime<Utc>, DateTime<Utc>)],
}

/// Checks the range of a slot query: `from < to`, at most 31 days.
pub fn check_range(from: DateTime<Utc>, to: DateTime<Utc>) -> Result<(), AppError> {
    if to <= from {
        return Err(AppError::bad_input("to", "`to` must be after `from`"));
    }
    if to - from > Duration::days(MAX_RANGE_DAYS) {
        return Err(AppError::bad_input("to", "the range is at most 31 days"));
    }
    Ok(())
}

/// Slots starting in `[from, to)`, sorted by start.
pub fn available_slots(q: &SlotQuery<'_>) -> Vec<Slot> {
    let duration = Duration::minutes(i64::from(q.duration_minutes));
    // Local dates that can hold a start in range, with a day's margin for offsets.
    let first: NaiveDate = q.from.with_timezone(&q.tz).date_naive() - Duration::days(1);
    let last: NaiveDate = q.to.with_timezone(&q.tz).date_naive() + Duration::days(1);
    let mut slots = Vec::new();
    let mut date = first;
    while date <= last {
        let weekday = date.weekday().number_from_monday() as u8;
        for rule in q.rules.iter().filter(|r| r.weekday == weekday) {
            let grid = SLOT_GRID_MINUTES as u16;
            let mut start_min = rule.start_minute.div_ceil(grid) * grid;
            while u32::from(start_min) + q.duration_minutes <= u32::from(rule.end_minute) {
                if let Some(start) = local_to_utc(q.tz, date, start_min) {
                    let end = start + duration;
                    let free = !q
                        .busy
                        .iter()
                        .any(|(b_start, b_end)| *b_start < end && start < *b_end);
                    if start >= q.from && start < q.to && start >= q.earliest_start && free {
                        slots.push(Slot { start, end });
                    }
                }
                start_min += grid;
            }
        }
        date += Duration::days(1);
    }
    slots.sort();
    slots.dedup();
    slots
}

/// A local wall-clock time as UTC: `None` when it does not exist (spring
/// forward), the first occurrence when it is ambiguous (fall back).
fn local_to_utc(tz: Tz, date: NaiveDate, minute: u16) -> Option<DateTime<Utc>> {
    let time = NaiveTime::from_hms_opt(u32::from(minute / 60), u32::from(minute % 60), 0)?;
    match tz.from_local_datetime(&date.and_time(time)) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        LocalResult::None => None,
    }
}

/// True when `start` is exactly one of the slots `available_slots` offers
/// (used by holds to refuse a time that is not on offer).
pub fn is_offered(q: &SlotQuery<'_>, start: DateTime<Utc>) -> bool {
    available_slots(q).iter().any(|s| s.start == start)
}

// ---- Stored rules and open slots ----

/// Replaces all availability rules of the caller's profile.
pub async fn set_availability(
    ctx: &DomainCtx,
    user: &CurrentUser,
    raw: &[(i32, String, String)],
) -> AppResult<coach_profiles::Model> {
    let rules = parse_rules(raw)?;
    let profile = coach::own_profile(&ctx.db, user).await?;
    let mut uow = UnitOfWork::begin(ctx).await?;
    // The coach page is served from the search index.
    uow.listing_changed(&profile.id);
    let txn = uow.db();
    availability_rules::Entity::delete_many()
        .filter(availability_rules::Column::CoachId.eq(profile.id.clone()))
        .exec(txn)
        .await?;
    if !rules.is_empty() {
        availability_rules::Entity::insert_many(rules.iter().map(|r| {
            availability_rules::ActiveModel {
                id: Set(uuid::Uuid::now_v7().to_string()),
                coach_id: Set(profile.id.clone()),
                weekday: Set(i16::from(r.weekday)),
                start_minute: Set(r.start_minute as i16),
                end_minute: Set(r.end_minute as i16),
            }
        }))
        .exec(txn)
        .await?;
    }
    uow.commit().await?;
    Ok(profile)
}

pub async fn load_rules<C: ConnectionTrait>(db: &C, coach_id: &str) -> AppResult<Vec<Rule>> {
    Ok(availability_rules::Entity::find()
        .filter(availability_rules::Column::CoachId.eq(coach_id))
        .order_by_asc(availability_rules::Column::Weekday)
        .order_by_asc(availability_rules::Column::StartMinute)
        .all(db)
        .await?
        .into_iter()
        .map(|r| rule_of(&r))
        .collect())
}

pub fn rule_of(r: &availability_rules::Model) -> Rule {
    Rule {
        weekday: r.weekday as u8,
        start_minute: r.start_minute as u16,
        end_minute: r.end_minute as u16,
    }
}

/// The slots of `availableSlots`: validated range and duration, the
/// coach's rules in the coach's zone, minus busy time, starting between
/// `earliest_start` (the notice) and `latest_start` (the booking horizon).
pub async fn open_slots<C: ConnectionTrait>(
    db: &C,
    profile: &coach_profiles::Model,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    duration_minutes: i32,
    (earliest_start, latest_start): (DateTime<Utc>, DateTime<Utc>),
) -> AppResult<Vec<Slot>> {
    check_range(from, to)?;
    let duration = u32::try_from(duration_minutes)
        .ok()
        .filter(|d| coach::durations_of(profile).contains(d))
        .ok_or_else(|| {
            AppError::bad_input("durationMinutes", "the coach does not offer this duration")
        })?;
    let tz = coach::parse_timezone(&profile.timezone)?;
    let rules = load_rules(db, &profile.id).await?;
    let margin = chrono::Duration::minutes(i64::from(duration));
    let busy = reservation::busy_intervals(db, &profile.id, from - margin, to + margin).await?;
    let mut slots = available_slots(&SlotQuery {
        rules: &rules,
        tz,
        from,
        to,
        duration_minutes: duration,
        earliest_start,
        busy: &busy,
    });
    slots.retain(|s| s.start <= latest_start);
    Ok(slots)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn rule(weekday: u8, start: &str, end: &str) -> Rule {
        Rule {
            weekday,
            start_minute: parse_hhmm("s", start, false).unwrap(),
            end_minute: parse_hhmm("e", end, true).unwrap(),
        }
    }

    fn slots(rules: &[Rule], tz: Tz, from: &str, to: &str, minutes: u32) -> Vec<String> {
        available_slots(&SlotQuery {
            rules,
            tz,
            from: utc(from),
            to: utc(to),
            duration_minutes: minutes,
            earliest_start: utc("2000-01-01T00:00:00Z"),
            busy: &[],
        })
        .iter()
        .map(|s| s.start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .collect()
    }

    #[test]
    fn hhmm_parsing() {
        assert_eq!(parse_hhmm("f", "09:15", false).unwrap(), 555);
        assert_eq!(parse_hhmm("f", "24:00", true).unwrap(), 1440);
        for bad in ["9:00", "09:10", "24:00", "25:00", "ab:cd", "09:60", "0900"] {
            assert!(parse_hhmm("f", bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn rule_validation() {
        let ok = parse_rules(&[
            (1, "09:00".into(), "12:00".into()),
            (1, "12:00".into(), "13:00".into()),
        ]);
        assert_eq!(ok.unwrap().len(), 2, "touching rules are fine");
        assert!(parse_rules(&[(0, "09:00".into(), "10:00".into())]).is_err());
        assert!(parse_rules(&[(8, "09:00".into(), "10:00".into())]).is_err());
        assert!(parse_rules(&[(1, "10:00".into(), "10:00".into())]).is_err());
        assert!(
            parse_rules(&[
                (1, "09:00".into(), "11:00".into()),
                (1, "10:30".into(), "12:00".into())
            ])
            .is_err()
        );
        let many: Vec<_> = (0..51)
            .map(|i| (1 + (i % 7), "00:00".to_string(), "00:15".to_string()))
            .collect();
        assert!(parse_rules(&many).is_err());
    }

    #[test]
    fn new_york_spring_forward_skips_the_missing_hour() {
        // 2026-03-08 is a Sunday; 02:00-03:00 local does not exist.
        let rules = [rule(7, "01:00", "04:00")];
        let got = slots(
            &rules,
            chrono_tz::America::New_York,
            "2026-03-08T00:00:00Z",
            "2026-03-09T00:00:00Z",
            30,
        );
        assert_eq!(
            got,
            [
                "2026-03-08T06:00:00Z", // 01:00 EST
                "2026-03-08T06:30:00Z", // 01:30 EST
                "2026-03-08T07:00:00Z", // 03:00 EDT
                "2026-03-08T07:30:00Z", // 03:30 EDT
            ]
        );
    }

    #[test]
    fn new_york_fall_back_offers_the_ambiguous_time_once() {
        // 2026-11-01 is a Sunday; 01:00-02:00 happens twice.
        let rules = [rule(7, "00:30", "02:30")];
        let got = slots(
            &rules,
            chrono_tz::America::New_York,
            "2026-11-01T00:00:00Z",
            "2026-11-02T00:00:00Z",
            30,
        );
        assert_eq!(
            got,
            [
                "2026-11-01T04:30:00Z", // 00:30 EDT
                "2026-11-01T05:00:00Z", // 01:00 EDT (first occurrence)
                "2026-11-01T05:30:00Z", // 01:30 EDT
                "2026-11-01T07:00:00Z", // 02:00 EST
            ]
        );
    }

    #[test]
    fn london_summer_and_winter() {
        // Monday 09:00-10:00 local: 08:00Z in BST (June), 09:00Z in GMT (December).
        let rules = [rule(1, "09:00", "10:00")];
        let tz = chrono_tz::Europe::London;
        assert_eq!(
            slots(
                &rules,
                tz,
                "2026-06-01T00:00:00Z",
                "2026-06-02T00:00:00Z",
                60
            ),
            ["2026-06-01T08:00:00Z"]
        );
        assert_eq!(
            slots(
                &rules,
                tz,
                "2026-12-07T00:00:00Z",
                "2026-12-08T00:00:00Z",
                60
            ),
            ["2026-12-07T09:00:00Z"]
        );
        // Spring forward in London (2026-03-29, a Sunday): 01:00-02:00 local is missing,
        // so 00:30 GMT (00:30Z) and 02:00 BST (01:00Z) remain.
        let rules = [rule(7, "00:30", "02:30")];
        assert_eq!(
            slots(
                &rules,
                tz,
                "2026-03-29T00:00:00Z",
                "2026-03-30T00:00:00Z",
                30
            ),
            ["2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z"]
        );
    }

    #[test]
    fn kolkata_half_hour_offset() {
        // Tuesday 10:00-11:30 IST (+05:30) = 04:30Z-06:00Z; 45-minute sessions on a 30-minute grid.
        let rules = [rule(2, "10:00", "11:30")];
        let got = slots(
            &rules,
            chrono_tz::Asia::Kolkata,
            "2026-11-24T00:00:00Z",
            "2026-11-25T00:00:00Z",
            45,
        );
        assert_eq!(got, ["2026-11-24T04:30:00Z", "2026-11-24T05:00:00Z"]);
    }

    #[test]
    fn grid_notice_busy_and_range_edges() {
        // A rule starting at 09:15 offers its first slot at 09:30.
        let rules = [rule(1, "09:15", "11:00")];
        let tz = chrono_tz::UTC;
        let q = |earliest: &str, busy: &[(DateTime<Utc>, DateTime<Utc>)], from: &str| {
            available_slots(&SlotQuery {
                rules: &rules,
                tz,
                from: utc(from),
                to: utc("2026-11-24T00:00:00Z"),
                duration_minutes: 30,
                earliest_start: utc(earliest),
                busy,
            })
            .iter()
            .map(|s| s.start)
            .collect::<Vec<_>>()
        };
        let all = q("2000-01-01T00:00:00Z", &[], "2026-11-23T00:00:00Z");
        assert_eq!(
            all,
            [
                utc("2026-11-23T09:30:00Z"),
                utc("2026-11-23T10:00:00Z"),
                utc("2026-11-23T10:30:00Z")
            ]
        );
        // Minimum notice.
        assert_eq!(
            q("2026-11-23T10:00:00Z", &[], "2026-11-23T00:00:00Z").len(),
            2
        );
        // A busy 45-minute interval 09:50-10:35 removes the 09:30, 10:00 and 10:30 slots.
        let busy = [(utc("2026-11-23T09:50:00Z"), utc("2026-11-23T10:35:00Z"))];
        assert!(q("2000-01-01T00:00:00Z", &busy, "2026-11-23T00:00:00Z").is_empty());
        // Busy touching at the edge does not block.
        let busy = [(utc("2026-11-23T09:00:00Z"), utc("2026-11-23T09:30:00Z"))];
        assert_eq!(
            q("2000-01-01T00:00:00Z", &busy, "2026-11-23T00:00:00Z").len(),
            3
        );
        // `from` is inclusive.
        assert_eq!(
            q("2000-01-01T00:00:00Z", &[], "2026-11-23T10:00:00Z").len(),
            2
        );
    }

    #[test]
    fn range_checks() {
        assert!(check_range(utc("2026-01-01T00:00:00Z"), utc("2026-02-01T00:00:00Z")).is_ok());
        assert!(check_range(utc("2026-01-01T00:00:00Z"), utc("2026-02-01T00:00:01Z")).is_err());
        assert!(check_range(utc("2026-01-02T00:00:00Z"), utc("2026-01-01T00:00:00Z")).is_err());
    }
}

#[cfg(test)]
mod properties {
    use chrono::Timelike;
    use proptest::prelude::*;

    use super::*;

    fn zone() -> impl Strategy<Value = Tz> {
        (0..chrono_tz::TZ_VARIANTS.len()).prop_map(|i| chrono_tz::TZ_VARIANTS[i])
    }

    /// At most one window a weekday, so the parser always accepts them.
    fn rules() -> impl Strategy<Value = Vec<Rule>> {
        prop::collection::vec(prop::option::of((0u16..95, 1u16..=40)), 7).prop_map(|days| {
            let texts: Vec<(i32, String, String)> = days
                .into_iter()
                .enumerate()
                .filter_map(|(d, w)| {
                    let (start, len) = w?;
                    let end = (start + len).min(96);
                    Some((d as i32 + 1, format_hhmm(start * 15), format_hhmm(end * 15)))
                })
                .collect();
            parse_rules(&texts).expect("one window a day is always valid")
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn rule_parsing_never_panics(d in any::<i32>(), a in ".{0,8}", b in ".{0,8}") {
            let _ = parse_rules(&[(d, a.clone(), b.clone())]);
            let _ = parse_hhmm("startTime", &a, true);
        }

        #[test]
        fn every_slot_is_offered_free_and_in_range(
            rules in rules(),
            tz in zone(),
            from_s in 1_577_836_800i64..2_051_222_400,
            days in 1i64..=31,
            duration in prop::sample::select(vec![30u32, 45, 60, 90, 120]),
            notice_h in 0i64..72,
            busy in prop::collection::vec((0i64..31 * 24 * 60, 15i64..240), 0..6),
        ) {
            let from = DateTime::from_timestamp(from_s, 0).unwrap();
            let to = from + Duration::days(days);
            let busy: Vec<(DateTime<Utc>, DateTime<Utc>)> = busy
                .into_iter()
                .map(|(off, len)| {
                    let s = from + Duration::minutes(off);
                    (s, s + Duration::minutes(len))
                })
                .collect();
            let q = SlotQuery {
                rules: &rules,
                tz,
                from,
                to,
                duration_minutes: duration,
                earliest_start: from + Duration::hours(notice_h),
                busy: &busy,
            };
            let slots = available_slots(&q);
            let fits = rules.iter().any(|r| {
                let first = r.start_minute.div_ceil(SLOT_GRID_MINUTES as u16) * SLOT_GRID_MINUTES as u16;
                // Two hours of margin for a change of clock that day.
                u32::from(first) + duration + 120 <= u32::from(r.end_minute)
            });
            if fits && busy.is_empty() && notice_h == 0 && days >= 8 {
                prop_assert!(!slots.is_empty(), "a week with windows offers slots");
            }
            for w in slots.windows(2) {
                prop_assert!(w[0] < w[1], "sorted, no duplicates");
            }
            for s in &slots {
                prop_assert!(s.start >= from && s.start < to);
                prop_assert!(s.start >= q.earliest_start);
                prop_assert_eq!(s.end - s.start, Duration::minutes(i64::from(duration)));
                prop_assert!(!busy.iter().any(|(b, e)| *b < s.end && s.start < *e));
                // Inside one rule of its local weekday, on the grid.
                let local = s.start.with_timezone(&tz);
                let minute = (local.hour() * 60 + local.minute()) as u16;
                prop_assert_eq!(minute % SLOT_GRID_MINUTES as u16, 0);
                let weekday = local.weekday().number_from_monday() as u8;
                prop_assert!(rules.iter().any(|r| r.weekday == weekday
                    && r.start_minute <= minute
                    && u32::from(minute) + duration <= u32::from(r.end_minute)));
                prop_assert!(is_offered(&q, s.start));
            }
        }
    }
}
