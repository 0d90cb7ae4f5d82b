//! `take_hold`: a hold in one round trip on PostgreSQL, the hot path of
//! booking. Called as one statement outside an explicit transaction, so it
//! is its own transaction: the consumer's and the coach's row locks, the
//! cap's count, the hold and its reservation commit together or not at
//! all. A function's statements each take a new snapshot (it is VOLATILE,
//! under READ COMMITTED), so the count after the locks sees every hold
//! committed before them. PostgreSQL only; SQLite takes its steps one by
//! one under `BEGIN IMMEDIATE`.
//!
//! Returns `TAKEN`; `CAP` (nothing written: the consumer already keeps as
//! many sessions as allowed); or `TAKEN_BY_OTHER` (the time overlaps a live
//! reservation; the hold row written first is deleted again). The
//! exclusion constraint (`reservations_no_overlap`) still refuses any
//! overlap the function did not foresee, undoing the hold row with it.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const CREATE: &str = r#"
CREATE FUNCTION take_hold(
    p_hold_id text, p_coach_id text, p_consumer_id text,
    p_start_at timestamptz, p_end_at timestamptz, p_expires_at timestamptz, p_created_at timestamptz,
    p_now_s bigint, p_cap bigint, p_reservation_id text,
    p_start_s bigint, p_end_s bigint, p_live_until_s bigint)
RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    open_n bigint;
BEGIN
    -- Consumer first, then coach: the order every writer takes them in.
    PERFORM 1 FROM users WHERE id = p_consumer_id FOR NO KEY UPDATE;
    PERFORM 1 FROM coach_profiles WHERE id = p_coach_id FOR NO KEY UPDATE;
    -- Live holds and unpaid bookings made from them. Starts from the
    -- consumer's holds and looks up each reservation by its unique key,
    -- whatever the statistics say about `reservations.active`.
    SELECT count(*) INTO open_n FROM holds h
    WHERE h.consumer_id = p_consumer_id AND h.status IN ('ACTIVE', 'CONVERTED')
      AND (SELECT r.active AND r.live_until_s > p_now_s FROM reservations r WHERE r.hold_id = h.id);
    IF open_n >= p_cap THEN
        RETURN 'CAP';
    END IF;
    INSERT INTO holds (id, coach_id, consumer_id, start_at, end_at, expires_at, status, created_at)
    VALUES (p_hold_id, p_coach_id, p_consumer_id, p_start_at, p_end_at, p_expires_at, 'ACTIVE', p_created_at);
    INSERT INTO reservations (id, coach_id, hold_id, booking_id, start_s, end_s, live_until_s, active)
    VALUES (p_reservation_id, p_coach_id, p_hold_id, NULL, p_start_s, p_end_s, p_live_until_s, true)
    ON CONFLICT DO NOTHING;
    IF FOUND THEN
        RETURN 'TAKEN';
    END IF;
    -- The time overlaps, perhaps only lapsed reservations: free those and
    -- try once more. Where none lapsed, the time is taken: the hold row
    -- goes again and nothing is left of the call (no error, so a burst of
    -- losers on one coach fills no log).
    UPDATE reservations SET active = false
    WHERE coach_id = p_coach_id AND active AND live_until_s <= p_now_s
      AND start_s < p_end_s AND end_s > p_start_s;
    IF NOT FOUND THEN
        DELETE FROM holds WHERE id = p_hold_id;
        RETURN 'TAKEN_BY_OTHER';
    END IF;
    INSERT INTO reservations (id, coach_id, hold_id, booking_id, start_s, end_s, live_until_s, active)
    VALUES (p_reservation_id, p_coach_id, p_hold_id, NULL, p_start_s, p_end_s, p_live_until_s, true);
    RETURN 'TAKEN';
END
$$
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
            return Ok(());
        }
        manager.get_connection().execute_unprepared(CREATE).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared(
                "DROP FUNCTION IF EXISTS take_hold(text, text, text, timestamptz, timestamptz, \
                 timestamptz, timestamptz, bigint, bigint, text, bigint, bigint, bigint)",
            )
            .await?;
        Ok(())
    }
}
