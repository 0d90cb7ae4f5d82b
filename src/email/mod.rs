//! What an email says: one template per kind, with an HTML and a plain
//! text body and a subject, rendered with minijinja (HTML escapes every
//! value by default, so a display name with markup arrives as text).
//! Amounts are shown in their currency's format and times in the
//! recipient's time zone.

mod templates;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use minijinja::value::Serde;
use minijinja::{Environment, UndefinedBehavior};

/// The kinds of email; the name is stored with each outbox row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    VerifyEmail,
    PasswordReset,
    BookingConfirmed,
    BookingCancelled,
    PaymentReceipt,
    Reminder,
    CoachApproved,
    CoachRejected,
    RefundIssued,
    PurchaseReceipt,
    ReviewReceived,
    WeeklyReport,
}

impl Template {
    pub const ALL: [Template; 12] = [
        Template::VerifyEmail,
        Template::PasswordReset,
        Template::BookingConfirmed,
        Template::BookingCancelled,
        Template::PaymentReceipt,
        Template::Reminder,
        Template::CoachApproved,
        Template::CoachRejected,
        Template::RefundIssued,
        Template::PurchaseReceipt,
        Template::ReviewReceived,
        Template::WeeklyReport,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Template::VerifyEmail => "verify_email",
            Template::PasswordReset => "password_reset",
            Template::BookingConfirmed => "booking_confirmed",
            Template::BookingCancelled => "booking_cancelled",
            Template::PaymentReceipt => "payment_receipt",
            Template::Reminder => "reminder",
            Template::CoachApproved => "coach_approved",
            Template::CoachRejected => "coach_rejected",
            Template::RefundIssued => "refund_issued",
            Template::PurchaseReceipt => "purchase_receipt",
            Template::ReviewReceived => "review_received",
            Template::WeeklyReport => "weekly_report",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// A rendered email.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub subject: String,
    pub html: String,
    pub text: String,
}

pub struct Templates {
    env: Environment<'static>,
}

/// `1234567` minor units of `USD` as `$12,345.67`; rupees in the Indian
/// grouping (`₹12,34,567.00`).
pub fn format_money(amount_minor: i64, currency: &str) -> String {
    let (symbol, indian) = match currency.to_ascii_uppercase().as_str() {
        "USD" => ("$", false),
        "GBP" => ("£", false),
        "EUR" => ("€", false),
        "INR" => ("₹", true),
        _ => ("", false),
    };
    let negative = amount_minor < 0;
    let abs = amount_minor.unsigned_abs();
    let (units, cents) = (abs / 100, abs % 100);
    let digits = units.to_string();
    let mut groups: Vec<String> = Vec::new();
    let mut rest = digits.as_str();
    if rest.len() > 3 {
        let (head, tail) = rest.split_at(rest.len() - 3);
        groups.push(tail.to_string());
        rest = head;
        let size = if indian { 2 } else { 3 };
        while rest.len() > size {
            let (h, t) = rest.split_at(rest.len() - size);
            groups.push(t.to_string());
            rest = h;
        }
    }
    groups.push(rest.to_string());
    groups.reverse();
    let sign = if negative { "-" } else { "" };
    let number = format!("{}.{cents:02}", groups.join(","));
    if symbol.is_empty() {
        format!("{sign}{number} {}", currency.to_ascii_uppercase())
    } else {
        format!("{sign}{symbol}{number}")
    }
}

/// An instant as the recipient reads it: `Thursday 3 December 2026, 10:00 EST`.
pub fn format_time(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz)
        .format("%A %-d %B %Y, %H:%M %Z")
        .to_string()
}

fn money_filter(amount_minor: i64, currency: String) -> String {
    format_money(amount_minor, &currency)
}

fn time_filter(at: String, tz: Option<String>) -> Result<String, minijinja::Error> {
    let at = DateTime::parse_from_rfc3339(&at)
        .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string()))?
        .with_timezone(&Utc);
    let tz = tz.and_then(|t| t.parse::<Tz>().ok()).unwrap_or(Tz::UTC);
    Ok(format_time(at, tz))
}

impl Templates {
    pub fn new() -> Result<Self, String> {
        let mut env = Environment::new();
        // A missing value is a bug in the code that queued the email.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_filter("money", money_filter);
        env.add_filter("when", time_filter);
        for (name, source) in templates::ALL {
            env.add_template(name, source)
                .map_err(|e| format!("email template {name}: {e}"))?;
        }
        for t in Template::ALL {
            for part in ["subject.txt", "html", "txt"] {
                let name = format!("{}.{part}", t.as_str());
                env.get_template(&name)
                    .map_err(|e| format!("email template {name}: {e}"))?;
            }
        }
        Ok(Templates { env })
    }

    pub fn render(&self, template: Template, data: &serde_json::Value) -> Result<Rendered, String> {
        let part = |suffix: &str| {
            let name = format!("{}.{suffix}", template.as_str());
            self.env
                .get_template(&name)
                .and_then(|t| t.render(Serde(data)))
                .map_err(|e| format!("email template {name}: {e}"))
        };
        Ok(Rendered {
            subject: part("subject.txt")?.trim().replace(['\r', '\n'], " "),
            html: part("html")?,
            text: part("txt")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_in_each_currency_format() {
        assert_eq!(format_money(6000, "USD"), "$60.00");
        assert_eq!(format_money(123_456_789, "USD"), "$1,234,567.89");
        assert_eq!(format_money(123_456_700, "INR"), "₹12,34,567.00");
        assert_eq!(format_money(99, "GBP"), "£0.99");
        assert_eq!(format_money(100_000, "GBP"), "£1,000.00");
        assert_eq!(format_money(500, "CHF"), "5.00 CHF");
    }

    #[test]
    fn times_in_the_recipients_zone() {
        let at = DateTime::parse_from_rfc3339("2026-12-03T15:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            format_time(at, Tz::America__New_York),
            "Thursday 3 December 2026, 10:00 EST"
        );
        assert_eq!(
            format_time(at, Tz::Asia__Kolkata),
            "Thursday 3 December 2026, 20:30 IST"
        );
    }

    #[test]
    fn every_template_renders_and_escapes_user_text() {
        let t = Templates::new().unwrap();
        let data = serde_json::json!({
            "name": "<b>Ann</b> & co",
            "other_name": "<script>alert(1)</script>",
            "link": "https://example.com/verify-email?token=abc",
            "start_at": "2026-12-03T15:00:00Z",
            "tz": "Europe/London",
            "minutes": 60,
            "meeting_url": "https://meet.example.com/r/1",
            "amount_minor": 6000,
            "refund_minor": 6000,
            "currency": "GBP",
            "reason": "<i>late</i>",
            "lead": "24 hours",
            "role": "consumer",
            "reference": "p1",
            "item": "<b>Ten sessions</b>",
            "credit_returned": true,
            "rating": 4,
            "comment": "<script>x</script>Great",
            "week_start": "Monday 30 November 2026",
            "week_end": "Sunday 6 December 2026",
            "this": {"bookings": 3, "completed": 1, "cancelled": 1, "new_users": 4, "active_coaches": 2},
            "previous": {"bookings": 1, "completed": 0, "cancelled": 0, "new_users": 0, "active_coaches": 1},
            "money": [{"currency": "GBP", "gross_minor": 4000, "platform_minor": 400, "prev_gross_minor": 0, "prev_platform_minor": 0}],
        });
        for template in Template::ALL {
            let r = t.render(template, &data).unwrap();
            assert!(!r.subject.is_empty());
            assert!(!r.html.contains("<script>"), "{template:?}");
            assert!(!r.html.contains("<b>Ann"), "{template:?}");
            assert!(!r.subject.contains('\n'));
        }
        let r = t.render(Template::BookingConfirmed, &data).unwrap();
        assert!(r.html.contains("&lt;script&gt;"), "{}", r.html);
        assert!(
            r.text.contains("Thursday 3 December 2026, 15:00 GMT"),
            "{}",
            r.text
        );
        assert!(r.text.contains("£60.00"));
        let r = t.render(Template::WeeklyReport, &data).unwrap();
        assert!(
            r.text.contains(
                "GBP: gross £40.00 (week before £0.00), platform £4.00 (week before £0.00)"
            ),
            "{}",
            r.text
        );
        assert!(r.text.contains("Bookings: 3 (week before 1)"), "{}", r.text);
    }
}
