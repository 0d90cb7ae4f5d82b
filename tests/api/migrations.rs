//! Migrations keep what is already stored: rows written under an older
//! schema read back whole under the newest one.

use migration::MigratorTrait;
use sea_orm::{ConnectionTrait, EntityTrait};

use crate::helpers::fresh_database;

const T: &str = "'2026-12-01 10:00:00+00:00'";

#[tokio::test]
async fn generalising_payments_keeps_every_booking_payment_and_refund() {
    let (url, _tmp) = fresh_database().await;
    // One connection, so the last check sees the connection the migration used.
    let db = maestro_hub::db::connect(&url, 1).await.unwrap();
    // The schema as it was before payments had a purpose.
    migration::Migrator::up(&db, Some(4)).await.unwrap();
    let market: String = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT id FROM markets WHERE code = 'US'",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "id")
        .unwrap();
    for sql in [
        format!(
            "INSERT INTO users (id, email, password_hash, name, role, email_verified, market_id, \
             session_version, created_at, updated_at) VALUES \
             ('u1', 'parent@example.com', '!', 'Parent', 'CONSUMER', TRUE, '{market}', 0, {T}, {T}), \
             ('u2', 'coach@example.com', '!', 'Coach', 'COACH', TRUE, '{market}', 0, {T}, {T})"
        ),
        format!(
            "INSERT INTO coach_profiles (id, user_id, market_id, display_name, headline, bio, \
             hourly_rate_minor, currency, session_durations, timezone, status, published, \
             payouts_enabled, rating_count, rating_sum, rating_score, created_at, updated_at) VALUES \
             ('c1', 'u2', '{market}', 'Coach', 'Piano lessons', '', 6000, 'USD', '[60]', 'UTC', \
             'APPROVED', TRUE, FALSE, 0, 0, 4000000, {T}, {T})"
        ),
        format!(
            "INSERT INTO holds (id, coach_id, consumer_id, start_at, end_at, expires_at, status, created_at) \
             VALUES ('h1', 'c1', 'u1', {T}, {T}, {T}, 'CONVERTED', {T})"
        ),
        format!(
            "INSERT INTO bookings (id, hold_id, coach_id, coach_user_id, consumer_id, start_at, end_at, \
             start_s, status, price_minor, currency, platform_fee_minor, coach_payout_minor, \
             payment_deadline, refunded_minor, created_at, updated_at) VALUES \
             ('b1', 'h1', 'c1', 'u2', 'u1', {T}, {T}, 0, 'CANCELLED', 6000, 'USD', 600, 5400, {T}, \
             6000, {T}, {T})"
        ),
        format!(
            "INSERT INTO payments (id, booking_id, status, amount_minor, currency, refunded_minor, \
             provider, provider_ref, checkout_url, created_at, updated_at) VALUES \
             ('p1', 'b1', 'REFUNDED', 6000, 'USD', 6000, 'dev', 'dev_cs_p1', NULL, {T}, {T})"
        ),
        format!(
            "INSERT INTO refunds (id, payment_id, amount_minor, status, reason, attempts, \
             created_at, updated_at) VALUES ('r1', 'p1', 6000, 'SUCCEEDED', 'booking.cancelled', 1, {T}, {T})"
        ),
    ] {
        db.execute_unprepared(&sql).await.unwrap();
    }

    migration::Migrator::up(&db, None).await.unwrap();

    let p = entity::payments::Entity::find_by_id("p1".to_string())
        .one(&db)
        .await
        .unwrap()
        .expect("the payment survived");
    assert_eq!(p.purpose, "BOOKING");
    assert_eq!(p.booking_id.as_deref(), Some("b1"));
    assert_eq!(p.package_purchase_id, None);
    assert_eq!(p.sponsorship_id, None);
    assert_eq!(
        (p.status.as_str(), p.amount_minor, p.refunded_minor),
        ("REFUNDED", 6000, 6000)
    );
    assert_eq!(p.provider_ref.as_deref(), Some("dev_cs_p1"));
    // Refunds decided before the split count as decided and confirmed.
    assert_eq!(p.refund_decided_minor, 6000);
    assert!(!p.disputed);
    let r = entity::refunds::Entity::find_by_id("r1".to_string())
        .one(&db)
        .await
        .unwrap()
        .expect("the refund survived");
    assert_eq!(r.payment_id, "p1");
    assert_eq!(r.currency, "USD", "the refund took its payment's currency");
    assert_eq!(r.last_error, None);

    // The rules hold on the rebuilt table: one payment per booking, and a
    // purpose must name the one link that is set.
    let insert = |id: &str, purpose: &str, booking: &str| {
        format!(
            "INSERT INTO payments (id, purpose, booking_id, status, amount_minor, currency, \
             refunded_minor, provider, created_at, updated_at) VALUES \
             ('{id}', '{purpose}', {booking}, 'PENDING', 100, 'USD', 0, 'dev', {T}, {T})"
        )
    };
    assert!(
        db.execute_unprepared(&insert("p2", "BOOKING", "'b1'"))
            .await
            .is_err()
    );
    assert!(
        db.execute_unprepared(&insert("p3", "SPONSORSHIP", "'b1'"))
            .await
            .is_err()
    );
    assert!(
        db.execute_unprepared(&insert("p4", "BOOKING", "NULL"))
            .await
            .is_err()
    );
    // And a refund cannot point at a payment that does not exist.
    assert!(
        db.execute_unprepared(&format!(
            "INSERT INTO refunds (id, payment_id, amount_minor, status, reason, attempts, \
             created_at, updated_at) VALUES ('r2', 'nope', 1, 'PENDING', 'x', 0, {T}, {T})"
        ))
        .await
        .is_err(),
        "foreign keys are on again"
    );
}
