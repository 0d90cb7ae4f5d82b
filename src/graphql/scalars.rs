//! `DateTime`: RFC 3339 with an offset on input, always UTC (`...Z`) on output.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::{Datelike, SecondsFormat, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DateTime(pub chrono::DateTime<Utc>);

#[Scalar(name = "DateTime")]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
                .map(|d| DateTime(d.with_timezone(&Utc)))
                .ok()
                // RFC 3339 has four-digit years; so has every instant we answer.
                .filter(|d| (1..=9999).contains(&d.0.year()))
                .ok_or_else(|| {
                    InputValueError::custom(
                        "expected an RFC 3339 date-time with an offset (years 0001 to 9999)",
                    )
                }),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        // Stored instants come from parsed input or the clock, both within
        // four-digit years; clamp anyway so no answer is ever invalid RFC 3339.
        let max = chrono::NaiveDate::from_ymd_opt(9999, 12, 31)
            .and_then(|d| d.and_hms_opt(23, 59, 59))
            .map(|d| d.and_utc());
        let t = match max {
            Some(max) if self.0 > max => max,
            _ => self.0,
        };
        Value::String(t.to_rfc3339_opts(SecondsFormat::Secs, true))
    }
}

impl From<chrono::DateTime<Utc>> for DateTime {
    fn from(d: chrono::DateTime<Utc>) -> Self {
        DateTime(d)
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever a client sends, a parsed date-time answers as RFC 3339
        /// with a four-digit year.
        #[test]
        fn date_times_from_anyone(raw in ".{0,40}", y in -300_000i32..300_000, rest in "-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z") {
            for s in [raw, format!("{y:04}{rest}"), format!("+{y}{rest}")] {
                if let Ok(d) = DateTime::parse(Value::String(s)) {
                    let Value::String(out) = d.to_value() else { panic!("a string") };
                    prop_assert!(chrono::DateTime::parse_from_rfc3339(&out).is_ok(), "{}", out);
                    prop_assert_eq!(out.len(), 20);
                }
            }
        }
    }
}
