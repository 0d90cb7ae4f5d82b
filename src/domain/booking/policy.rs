//! Prices, fees and the refund policy: pure functions, unit-tested.

use chrono::{DateTime, Duration, Utc};

use crate::domain::booking::status::Event;

/// How long a checkout stays open: the booking's payment deadline, and
/// the provider's session expiry. Stripe takes 30 minutes to 24 hours from
/// when the session is created, so the window leaves room for a session
/// opened again a few minutes late (`reopen_checkouts`).
pub const PAYMENT_WINDOW: Duration = Duration::minutes(40);
/// Confirmed sessions nobody reports on are completed this long after the end.
pub const AUTO_COMPLETE_AFTER: Duration = Duration::hours(48);
/// A consumer cancelling at least this long before the start gets a full refund.
pub const FREE_CANCELLATION: Duration = Duration::hours(24);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    pub price_minor: i64,
    pub platform_fee_minor: i64,
    pub coach_payout_minor: i64,
}

/// Hourly rate x duration, rounded half up to a minor unit; the platform
/// fee is `fee_bps` of it (rounded half up), the coach gets the rest.
pub fn price(hourly_rate_minor: i64, minutes: i64, fee_bps: u32) -> Price {
    let price_minor = (hourly_rate_minor * minutes + 30) / 60;
    let platform_fee_minor = fee_of(price_minor, fee_bps);
    Price {
        price_minor,
        platform_fee_minor,
        coach_payout_minor: price_minor - platform_fee_minor,
    }
}

/// The platform's fee on an amount: `fee_bps` of it, rounded half up.
pub fn fee_of(amount_minor: i64, fee_bps: u32) -> i64 {
    (amount_minor * i64::from(fee_bps) + 5_000) / 10_000
}

/// One session's share of a package bought for `price_minor` with
/// `fee_minor` kept by the platform: both divided by the sessions and
/// rounded down, so the shares of every session never add up to more
/// than was paid. The coach's payout is the rest of the share.
pub fn package_share(price_minor: i64, fee_minor: i64, sessions: i32) -> Price {
    let n = i64::from(sessions.max(1));
    let share = price_minor / n;
    let fee = Ord::min(fee_minor / n, share);
    Price {
        price_minor: share,
        platform_fee_minor: fee,
        coach_payout_minor: share - fee,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    Consumer,
    Coach,
}

/// How much of `paid` a cancellation refunds: the coach cancelling always
/// refunds in full; the consumer gets a full refund at least 24 h before
/// the start, and nothing later.
pub fn cancellation_refund(by: Party, now: DateTime<Utc>, start: DateTime<Utc>, paid: i64) -> i64 {
    match by {
        Party::Coach => paid,
        Party::Consumer if start - now >= FREE_CANCELLATION => paid,
        Party::Consumer => 0,
    }
}

/// A no-show report: the consumer reporting the coach gets a full refund;
/// the coach reporting the consumer refunds nothing.
pub fn no_show(reporter: Party, paid: i64) -> (Event, i64) {
    match reporter {
        Party::Consumer => (Event::CoachNoShow, paid),
        Party::Coach => (Event::ConsumerNoShow, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_and_fees() {
        assert_eq!(
            price(6000, 60, 1000),
            Price {
                price_minor: 6000,
                platform_fee_minor: 600,
                coach_payout_minor: 5400
            }
        );
        assert_eq!(
            price(5000, 45, 1000),
            Price {
                price_minor: 3750,
                platform_fee_minor: 375,
                coach_payout_minor: 3375
            }
        );
        // Rounding half up, and payout + fee always equal the price.
        let p = price(3333, 45, 1000);
        assert_eq!(p.price_minor, 2500);
        assert_eq!(p.platform_fee_minor + p.coach_payout_minor, p.price_minor);
        assert_eq!(price(999, 30, 1000).price_minor, 500);
    }

    #[test]
    fn cancellation_policy() {
        let start = Utc::now() + Duration::hours(48);
        assert_eq!(
            cancellation_refund(Party::Consumer, start - Duration::hours(24), start, 5000),
            5000
        );
        assert_eq!(
            cancellation_refund(Party::Consumer, start - Duration::hours(23), start, 5000),
            0
        );
        assert_eq!(
            cancellation_refund(Party::Coach, start - Duration::minutes(5), start, 5000),
            5000
        );
        assert_eq!(no_show(Party::Consumer, 5000), (Event::CoachNoShow, 5000));
        assert_eq!(no_show(Party::Coach, 5000), (Event::ConsumerNoShow, 0));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Fee and payout always add up to the price, and neither is
        /// negative or more than the price, whatever the rate and fee.
        #[test]
        fn money_is_never_lost_or_made(
            rate in 1i64..=8_000_000,
            minutes in prop::sample::select(vec![30i64, 45, 60, 90, 120]),
            fee_bps in 0u32..=10_000,
        ) {
            let p = price(rate, minutes, fee_bps);
            prop_assert!(p.price_minor >= 0);
            prop_assert_eq!(p.platform_fee_minor + p.coach_payout_minor, p.price_minor);
            prop_assert!((0..=p.price_minor).contains(&p.platform_fee_minor));
            // Within half a minor unit of the exact share.
            let exact = p.price_minor as f64 * f64::from(fee_bps) / 10_000.0;
            prop_assert!((p.platform_fee_minor as f64 - exact).abs() <= 0.5);
        }

        /// A package's sessions together never show more than was paid,
        /// and lose less than one minor unit per session to rounding.
        #[test]
        fn package_shares_add_up(
            price in 1i64..=8_000_000,
            sessions in 2i32..=50,
            fee_bps in 0u32..=10_000,
        ) {
            let fee = fee_of(price, fee_bps);
            let s = package_share(price, fee, sessions);
            let n = i64::from(sessions);
            prop_assert!(s.price_minor * n <= price && price - s.price_minor * n < n);
            prop_assert!(s.platform_fee_minor * n <= fee);
            prop_assert_eq!(s.platform_fee_minor + s.coach_payout_minor, s.price_minor);
            prop_assert!(s.coach_payout_minor >= 0);
        }

        #[test]
        fn a_refund_never_exceeds_what_was_paid(
            paid in 0i64..10_000_000,
            hours_before in -100i64..100,
            by_coach in any::<bool>(),
        ) {
            let start = Utc::now();
            let by = if by_coach { Party::Coach } else { Party::Consumer };
            let r = cancellation_refund(by, start - Duration::hours(hours_before), start, paid);
            prop_assert!(r == 0 || r == paid);
        }
    }
}
