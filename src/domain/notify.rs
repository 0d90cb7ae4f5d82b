//! Which emails a change sends, and what each shows. Each function runs
//! inside the unit of work of the change it announces (see
//! `domain::email::queue`), with a key that names the logical email.

use sea_orm::EntityTrait;

use crate::domain::email::{self, Recipient};
use crate::domain::uow::UnitOfWork;
use crate::email::Template;
use crate::error::{AppError, AppResult};
use entity::{bookings, coach_profiles};

fn iso(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

struct Sides {
    consumer: Recipient,
    coach: Recipient,
    coach_name: String,
}

async fn sides(uow: &UnitOfWork, b: &bookings::Model) -> AppResult<Sides> {
    let profile = coach_profiles::Entity::find_by_id(b.coach_id.clone())
        .one(uow.db())
        .await?
        .ok_or(AppError::NotFound("coach"))?;
    Ok(Sides {
        consumer: email::recipient(uow.db(), &b.consumer_id).await?,
        coach: email::recipient(uow.db(), &b.coach_user_id).await?,
        coach_name: profile.display_name,
    })
}

fn booking_data(b: &bookings::Model) -> serde_json::Value {
    serde_json::json!({
        "booking_id": b.id,
        "start_at": iso(b.start_at),
        "minutes": (b.end_at - b.start_at).num_minutes(),
        "meeting_url": b.meeting_url.clone().unwrap_or_default(),
        "amount_minor": b.price_minor,
        "currency": b.currency,
    })
}

fn with(mut data: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    if let (Some(map), Some(more)) = (data.as_object_mut(), extra.as_object()) {
        for (k, v) in more {
            map.insert(k.clone(), v.clone());
        }
    }
    data
}

/// To both sides, with the meeting link; and the consumer's receipt.
pub async fn booking_confirmed(
    uow: &mut UnitOfWork,
    b: &bookings::Model,
    payment_id: Option<&str>,
) -> AppResult<()> {
    let s = sides(uow, b).await?;
    let data = booking_data(b);
    email::queue(
        uow,
        &s.consumer,
        Template::BookingConfirmed,
        &format!("booking-confirmed:{}:{}", b.id, s.consumer.user_id),
        with(
            data.clone(),
            serde_json::json!({ "role": "consumer", "other_name": s.coach_name }),
        ),
    )
    .await?;
    email::queue(
        uow,
        &s.coach,
        Template::BookingConfirmed,
        &format!("booking-confirmed:{}:{}", b.id, s.coach.user_id),
        with(
            data.clone(),
            serde_json::json!({ "role": "coach", "other_name": s.consumer.name }),
        ),
    )
    .await?;
    if let Some(payment_id) = payment_id {
        payment_receipt(uow, b, payment_id).await?;
    }
    Ok(())
}

/// The consumer's receipt for money that arrived (also when it is going
/// straight back, for a booking that lapsed first).
pub async fn payment_receipt(
    uow: &mut UnitOfWork,
    b: &bookings::Model,
    payment_id: &str,
) -> AppResult<()> {
    let s = sides(uow, b).await?;
    email::queue(
        uow,
        &s.consumer,
        Template::PaymentReceipt,
        &format!("receipt:{payment_id}"),
        with(
            booking_data(b),
            serde_json::json!({ "other_name": s.coach_name, "reference": payment_id }),
        ),
    )
    .await
}

/// To both sides, with the refund the consumer gets (or the package
/// credit given back).
pub async fn booking_cancelled(
    uow: &mut UnitOfWork,
    b: &bookings::Model,
    refund_minor: i64,
    credit_returned: bool,
    reason: &str,
) -> AppResult<()> {
    let data = with(
        booking_data(b),
        serde_json::json!({
            "refund_minor": refund_minor,
            "credit_returned": credit_returned,
            "reason": reason,
        }),
    );
    to_both(
        uow,
        b,
        Template::BookingCancelled,
        "booking-cancelled",
        data,
    )
    .await
}

/// `template` to the consumer and the coach of `b`, each naming the other;
/// keys `<kind>:<booking>:<recipient>`.
async fn to_both(
    uow: &mut UnitOfWork,
    b: &bookings::Model,
    template: Template,
    kind: &str,
    data: serde_json::Value,
) -> AppResult<()> {
    let s = sides(uow, b).await?;
    for (to, other, role) in [
        (&s.consumer, s.coach_name.clone(), "consumer"),
        (&s.coach, s.consumer.name.clone(), "coach"),
    ] {
        email::queue(
            uow,
            to,
            template,
            &format!("{kind}:{}:{}", b.id, to.user_id),
            with(
                data.clone(),
                serde_json::json!({ "other_name": other, "role": role }),
            ),
        )
        .await?;
    }
    Ok(())
}

/// A refund outside a cancellation (an admin's, a late payment's).
pub async fn refund_issued(
    uow: &mut UnitOfWork,
    consumer_id: &str,
    refund_id: &str,
    amount_minor: i64,
    currency: &str,
) -> AppResult<()> {
    let to = email::recipient(uow.db(), consumer_id).await?;
    email::queue(
        uow,
        &to,
        Template::RefundIssued,
        &format!("refund:{refund_id}"),
        serde_json::json!({ "amount_minor": amount_minor, "currency": currency }),
    )
    .await
}

/// A consumer reviewed the session: to the coach (the comment as stored,
/// already sanitised; the HTML escapes it again).
pub async fn review_received(
    uow: &mut UnitOfWork,
    b: &bookings::Model,
    review: &crate::domain::review::ReviewRow,
) -> AppResult<()> {
    let to = email::recipient(uow.db(), &b.coach_user_id).await?;
    email::queue(
        uow,
        &to,
        Template::ReviewReceived,
        &format!("review:{}", review.id),
        with(
            booking_data(b),
            serde_json::json!({
                "other_name": review.author_name,
                "rating": review.rating,
                "comment": review.comment,
            }),
        ),
    )
    .await
}

/// The receipt of a package or a sponsorship, to whoever paid.
pub async fn purchase_receipt(
    uow: &mut UnitOfWork,
    payer_id: &str,
    payment_id: &str,
    amount_minor: i64,
    currency: &str,
    item: &str,
) -> AppResult<()> {
    let to = email::recipient(uow.db(), payer_id).await?;
    email::queue(
        uow,
        &to,
        Template::PurchaseReceipt,
        &format!("receipt:{payment_id}"),
        serde_json::json!({
            "amount_minor": amount_minor,
            "currency": currency,
            "item": item,
            "reference": payment_id,
        }),
    )
    .await
}

/// A coach's profile was approved or rejected (with the reason).
pub async fn coach_reviewed(
    uow: &mut UnitOfWork,
    coach: &coach_profiles::Model,
    approved: bool,
    reason: Option<&str>,
) -> AppResult<()> {
    let to = email::recipient(uow.db(), &coach.user_id).await?;
    let (template, kind) = if approved {
        (Template::CoachApproved, "approved")
    } else {
        (Template::CoachRejected, "rejected")
    };
    email::queue(
        uow,
        &to,
        template,
        // One per review decision.
        &format!("coach-{kind}:{}:{}", coach.id, uuid::Uuid::now_v7()),
        serde_json::json!({ "reason": reason.unwrap_or_default() }),
    )
    .await
}

/// A session reminder to both sides (`kind` is `24h` or `1h`).
pub async fn reminder(
    uow: &mut UnitOfWork,
    b: &bookings::Model,
    kind: &str,
    lead: &str,
) -> AppResult<()> {
    let data = with(booking_data(b), serde_json::json!({ "lead": lead }));
    to_both(
        uow,
        b,
        Template::Reminder,
        &format!("reminder:{kind}"),
        data,
    )
    .await
}
