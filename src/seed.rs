//! `seed-demo`: realistic, deterministic demo data (coaches across the three
//! markets with categories, availability, packages, reviews and a few
//! sponsorships) for the playground, tests and benchmarks.
//!
//! Demo accounts get an unusable password hash, so nobody can sign in as
//! them: the data is for looking at, never a back door.

use chrono::{Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait, PaginatorTrait};

use crate::domain::coach::CoachStatus;
use crate::domain::reference::ReferenceData;
use crate::domain::review::rating_score;
use crate::error::{AppError, AppResult};
use entity::{
    availability_rules, coach_categories, coach_profiles, packages, reviews, sponsorships, users,
};

/// An argon2 PHC string can never equal this, so verification always fails.
pub const UNUSABLE_PASSWORD_HASH: &str = "!demo-account-no-login";

const FIRST: &[&str] = &[
    "Aarav", "Priya", "Olivia", "James", "Sofia", "Liam", "Ananya", "Noah", "Emma", "Rohan",
    "Isla", "Ethan", "Meera", "Lucas", "Amelia", "Arjun", "Grace", "Leo", "Kavya", "Oscar",
];
const LAST: &[&str] = &[
    "Sharma", "Smith", "Patel", "Johnson", "Brown", "Iyer", "Williams", "Taylor", "Reddy",
    "Davies", "Garcia", "Evans", "Nair", "Wilson", "Khan", "Thomas", "Miller", "Singh",
];
const COMMENTS: &[&str] = &[
    "Patient and clear, my daughter looks forward to every session.",
    "Great structure and lots of encouragement.",
    "Our son improved a full grade in one term.",
    "Friendly, punctual and well prepared.",
    "Good session, a little rushed at the end.",
    "Explains hard ideas with simple examples.",
];

pub struct SeedReport {
    pub coaches: usize,
    pub reviews: usize,
    pub consumers: usize,
}

fn uuid_at(rng: &mut StdRng, at: chrono::DateTime<Utc>) -> String {
    let ts = uuid::Timestamp::from_unix(
        uuid::NoContext,
        at.timestamp().max(0) as u64,
        at.timestamp_subsec_nanos(),
    );
    let mut id = *uuid::Uuid::new_v7(ts).as_bytes();
    // Randomise the tail deterministically (v7 keeps version and variant bits).
    let tail: [u8; 8] = rng.random();
    id[8..].copy_from_slice(&tail);
    id[8] = (id[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(id).to_string()
}

async fn insert_chunks<E, A>(db: &DatabaseConnection, rows: Vec<A>) -> AppResult<()>
where
    E: EntityTrait,
    A: sea_orm::ActiveModelTrait<Entity = E> + Send,
{
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(500).collect();
        E::insert_many(chunk).exec(db).await?;
    }
    Ok(())
}

/// Adds `coaches` approved, published coaches with about
/// `reviews_per_coach` reviews each. The same seed gives the same data.
pub async fn seed_demo(
    db: &DatabaseConnection,
    reference: &ReferenceData,
    coaches: usize,
    reviews_per_coach: usize,
    seed: u64,
) -> AppResult<SeedReport> {
    let mut rng = StdRng::seed_from_u64(seed);
    let now = Utc::now();
    // Emails stay unique when the command is run again on the same database.
    let offset = users::Entity::find().count(db).await?;
    let markets = reference.markets().to_vec();
    let categories = reference.categories().to_vec();
    if markets.is_empty() || categories.is_empty() {
        return Err(AppError::internal(
            "reference data missing: run migrations first",
        ));
    }
    let user_row =
        |id: String, email: String, name: String, role: &str, market: Option<String>, at| {
            users::ActiveModel {
                id: Set(id),
                email: Set(email),
                password_hash: Set(UNUSABLE_PASSWORD_HASH.into()),
                name: Set(name),
                role: Set(role.into()),
                email_verified: Set(true),
                market_id: Set(market),
                timezone: Set(None),
                session_version: Set(0),
                suspended_at: Set(None),
                suspension_reason: Set(None),
                deleted_at: Set(None),
                created_at: Set(at),
                updated_at: Set(at),
            }
        };

    let consumer_count = (coaches / 5).clamp(20, 5000);
    let mut consumer_ids = Vec::with_capacity(consumer_count);
    let mut user_rows = Vec::with_capacity(consumer_count + coaches);
    for i in 0..consumer_count {
        let at = now - Duration::days(rng.random_range(30..400));
        let id = uuid_at(&mut rng, at);
        let name = format!(
            "{} {}",
            FIRST[rng.random_range(0..FIRST.len())],
            LAST[rng.random_range(0..LAST.len())]
        );
        let market = markets[i % markets.len()].id.clone();
        user_rows.push(user_row(
            id.clone(),
            format!("demo-parent-{}-{}@example.com", seed, offset as usize + i),
            name,
            "CONSUMER",
            Some(market),
            at,
        ));
        consumer_ids.push(id);
    }

    let mut profiles = Vec::with_capacity(coaches);
    let mut links = Vec::new();
    let mut rules = Vec::new();
    let mut package_rows = Vec::new();
    let mut review_rows = Vec::new();
    let mut sponsorship_rows = Vec::new();
    for i in 0..coaches {
        let created = now - Duration::minutes(rng.random_range(60..(365 * 24 * 60)));
        let user_id = uuid_at(&mut rng, created);
        let coach_id = uuid_at(&mut rng, created);
        let market = &markets[rng.random_range(0..markets.len())];
        let first = FIRST[rng.random_range(0..FIRST.len())];
        let last = LAST[rng.random_range(0..LAST.len())];
        user_rows.push(user_row(
            user_id.clone(),
            format!(
                "demo-coach-{}-{}@example.com",
                seed,
                offset as usize + consumer_count + i
            ),
            format!("{first} {last}"),
            "COACH",
            Some(market.id.clone()),
            created,
        ));
        let mut cats: Vec<usize> = (0..rng.random_range(1..=3))
            .map(|_| rng.random_range(0..categories.len()))
            .collect();
        cats.sort_unstable();
        cats.dedup();
        let main = &categories[cats[0]];
        for c in &cats {
            links.push(coach_categories::ActiveModel {
                coach_id: Set(coach_id.clone()),
                category_id: Set(categories[*c].id.clone()),
            });
        }
        let (rate, tz) = match market.currency.as_str() {
            "INR" => (rng.random_range(50..400) * 1000, "Asia/Kolkata"),
            "GBP" => (rng.random_range(15..90) * 100, "Europe/London"),
            _ => (
                rng.random_range(20..120) * 100,
                ["America/New_York", "America/Chicago", "America/Los_Angeles"]
                    [rng.random_range(0..3)],
            ),
        };
        let durations: Vec<u32> = match rng.random_range(0..3) {
            0 => vec![30, 60],
            1 => vec![45, 60, 90],
            _ => vec![60],
        };
        for weekday in 1..=7i16 {
            if rng.random_bool(0.6) {
                let start = rng.random_range(14..24) * 30; // 07:00 .. 11:30
                rules.push(availability_rules::ActiveModel {
                    id: Set(uuid_at(&mut rng, created)),
                    coach_id: Set(coach_id.clone()),
                    weekday: Set(weekday),
                    start_minute: Set(start),
                    end_minute: Set(start + rng.random_range(4..14) * 30),
                });
            }
        }
        for p in 0..rng.random_range(0..3) {
            let sessions = [4, 8, 12][p];
            package_rows.push(packages::ActiveModel {
                id: Set(uuid_at(&mut rng, created)),
                coach_id: Set(coach_id.clone()),
                name: Set(format!("{sessions} {} sessions", main.name)),
                session_count: Set(sessions),
                price_minor: Set(rate * i64::from(sessions) * 9 / 10),
                currency: Set(market.currency.clone()),
                validity_days: Set(sessions * 14),
                active: Set(true),
                created_at: Set(created),
            });
        }
        let n_reviews = if reviews_per_coach == 0 {
            0
        } else {
            rng.random_range(0..=2 * reviews_per_coach)
        };
        let quality: f64 = rng.random_range(0.55..1.0);
        let (mut count, mut sum) = (0i64, 0i64);
        for _ in 0..n_reviews {
            let at = created
                + Duration::minutes(rng.random_range(0..=(now - created).num_minutes().max(1)));
            let rating: i16 = if rng.random_bool(quality) {
                rng.random_range(4..=5)
            } else {
                rng.random_range(1..=4)
            };
            count += 1;
            sum += i64::from(rating);
            review_rows.push(reviews::ActiveModel {
                id: Set(uuid_at(&mut rng, at)),
                coach_id: Set(coach_id.clone()),
                consumer_id: Set(consumer_ids[rng.random_range(0..consumer_ids.len())].clone()),
                booking_id: Set(None),
                rating: Set(rating),
                comment: Set(COMMENTS[rng.random_range(0..COMMENTS.len())].into()),
                coach_response: Set(None),
                hidden: Set(false),
                hidden_reason: Set(None),
                hidden_at: Set(None),
                responded_at: Set(None),
                created_at: Set(at),
            });
        }
        let sponsored_until = if rng.random_bool(0.03) {
            let ends = now + Duration::days(rng.random_range(3..30));
            // The month plan of the market (`sponsorshipPlans`).
            let (plan, price) = if market.currency == "USD" {
                ("0193a000-0000-7000-8002-000000000002", 14_900)
            } else if market.currency == "INR" {
                ("0193a000-0000-7000-8002-000000000004", 299_900)
            } else {
                ("0193a000-0000-7000-8002-000000000006", 11_900)
            };
            sponsorship_rows.push(sponsorships::ActiveModel {
                id: Set(uuid_at(&mut rng, now)),
                coach_id: Set(coach_id.clone()),
                plan_id: Set(plan.into()),
                status: Set("ACTIVE".into()),
                starts_at: Set(Some(ends - Duration::days(30))),
                ends_at: Set(Some(ends)),
                price_minor: Set(price),
                currency: Set(market.currency.clone()),
                duration_days: Set(30),
                payment_deadline: Set(None),
                cancellation_reason: Set(None),
                created_at: Set(now),
                updated_at: Set(Some(now)),
            });
            Some(ends)
        } else {
            None
        };
        profiles.push(coach_profiles::ActiveModel {
            id: Set(coach_id),
            user_id: Set(user_id),
            market_id: Set(market.id.clone()),
            display_name: Set(format!("{first} {last}")),
            headline: Set(format!(
                "{} coach, {} years of experience",
                main.name,
                rng.random_range(2..25)
            )),
            bio: Set(format!(
                "<p>I coach {} for children of every level, with calm, structured sessions.</p>",
                main.name.to_lowercase()
            )),
            hourly_rate_minor: Set(rate),
            currency: Set(market.currency.clone()),
            session_durations: Set(
                serde_json::to_string(&durations).unwrap_or_else(|_| "[60]".into())
            ),
            timezone: Set(tz.into()),
            meeting_url: Set(None),
            status: Set(CoachStatus::Approved.as_str().into()),
            published: Set(true),
            rejection_reason: Set(None),
            payouts_enabled: Set(rng.random_bool(0.8)),
            stripe_account_id: Set(None),
            payouts_updated_s: Set(0),
            rating_count: Set(count as i32),
            rating_sum: Set(sum),
            rating_score: Set(rating_score(count, sum)),
            sponsored_until: Set(sponsored_until),
            created_at: Set(created),
            updated_at: Set(created),
        });
    }
    let report = SeedReport {
        coaches,
        reviews: review_rows.len(),
        consumers: consumer_count,
    };
    insert_chunks(db, user_rows).await?;
    insert_chunks(db, profiles).await?;
    insert_chunks(db, links).await?;
    insert_chunks(db, rules).await?;
    insert_chunks(db, package_rows).await?;
    insert_chunks(db, review_rows).await?;
    insert_chunks(db, sponsorship_rows).await?;
    Ok(report)
}
