//! Holds, bookings and their live updates: thin resolvers over
//! `domain::booking`.

use crate::ratelimit::Bucket;
use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Enum, ID, Object, Result, Subscription};
use chrono::Utc;
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use crate::domain::booking::{self as domain, BookingStatus as DomainStatus};
use crate::domain::hold;
use crate::domain::payment::{PaymentStatus as DomainPaymentStatus, net_shares};
use crate::domain::types::Role as DomainRole;
use crate::graphql::CtxExt;
use crate::graphql::coach::{Coach, Review, TotalCount};
use crate::graphql::guards::{RateLimit, RoleGuard};
use crate::graphql::loaders::{load_one, loaders};
use crate::graphql::scalars::DateTime;
use crate::graphql::types::{Money, User};
use entity::{bookings, holds, payments};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "crate::domain::booking::BookingStatus")]
pub enum BookingStatus {
    PendingPayment,
    Confirmed,
    Completed,
    Cancelled,
    NoShowConsumer,
    NoShowCoach,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "crate::domain::hold::HoldStatus")]
pub enum HoldStatus {
    Active,
    Converted,
    Released,
    Expired,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "crate::domain::payment::PaymentStatus")]
pub enum PaymentStatus {
    Pending,
    Succeeded,
    Failed,
    Refunded,
    PartiallyRefunded,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "crate::domain::payment::RefundStatus")]
pub enum RefundStatus {
    /// Decided; being sent to the payment provider (retried while it refuses).
    Pending,
    /// Accepted by the provider; its confirmation is awaited.
    Submitted,
    Succeeded,
    /// Refused for good: an admin decides what to do.
    Failed,
}

fn money(amount_minor: i64, currency: &str) -> Money {
    Money {
        amount_minor,
        currency: currency.to_string(),
    }
}

/// A booking's or hold's coach, batched across a page.
async fn coach_of(ctx: &Context<'_>, coach_id: &str) -> Result<Coach> {
    load_one(ctx, &loaders(ctx)?.coaches, coach_id.to_string())
        .await?
        .map(Coach)
        .ok_or_else(|| crate::error::AppError::internal("booking coach missing").into())
}

pub struct Hold(pub holds::Model);

#[Object]
impl Hold {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn coach(&self, ctx: &Context<'_>) -> Result<Coach> {
        coach_of(ctx, &self.0.coach_id).await
    }
    async fn start_at(&self) -> DateTime {
        self.0.start_at.into()
    }
    async fn end_at(&self) -> DateTime {
        self.0.end_at.into()
    }
    async fn expires_at(&self) -> DateTime {
        self.0.expires_at.into()
    }
    /// An ACTIVE hold past its expiry reads EXPIRED at once.
    async fn status(&self) -> HoldStatus {
        hold::status_at(&self.0, Utc::now()).into()
    }
}

pub struct Payment(pub payments::Model);

#[Object]
impl Payment {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn status(&self) -> PaymentStatus {
        DomainPaymentStatus::of(&self.0).into()
    }
    async fn amount(&self) -> Money {
        money(self.0.amount_minor, &self.0.currency)
    }
    /// Where the client sends the consumer to pay (while pending).
    async fn checkout_url(&self) -> Option<&str> {
        (DomainPaymentStatus::of(&self.0) == DomainPaymentStatus::Pending)
            .then_some(self.0.checkout_url.as_deref())
            .flatten()
    }
    /// What the payment provider confirmed as refunded.
    async fn refunded_amount(&self) -> Money {
        money(self.0.refunded_minor, &self.0.currency)
    }
    /// A chargeback was opened and not (yet) won.
    async fn disputed(&self) -> bool {
        self.0.disputed
    }
    /// The refunds of this payment, oldest first.
    async fn refunds(&self, ctx: &Context<'_>) -> Result<Vec<Refund>> {
        let state = ctx.state()?;
        let admin = ctx
            .current_user()
            .is_ok_and(|u| u.role == DomainRole::Admin);
        let rows = entity::refunds::Entity::find()
            .filter(entity::refunds::Column::PaymentId.eq(self.0.id.clone()))
            .order_by_asc(entity::refunds::Column::CreatedAt)
            .limit(100)
            .all(&state.domain.db)
            .await
            .map_err(crate::error::AppError::from)?;
        Ok(rows
            .into_iter()
            .map(|r| Refund {
                model: r,
                currency: self.0.currency.clone(),
                admin,
            })
            .collect())
    }
}

pub struct Refund {
    model: entity::refunds::Model,
    currency: String,
    admin: bool,
}

impl Refund {
    pub fn for_admin(model: entity::refunds::Model) -> Self {
        Refund {
            currency: model.currency.clone(),
            model,
            admin: true,
        }
    }
}

#[Object]
impl Refund {
    async fn id(&self) -> ID {
        ID(self.model.id.clone())
    }
    async fn amount(&self) -> Money {
        money(self.model.amount_minor, &self.currency)
    }
    async fn status(&self) -> RefundStatus {
        crate::domain::payment::RefundStatus::parse(&self.model.status)
            .map_or(RefundStatus::Pending, Into::into)
    }
    async fn reason(&self) -> &str {
        &self.model.reason
    }
    async fn created_at(&self) -> DateTime {
        self.model.created_at.into()
    }
    async fn updated_at(&self) -> DateTime {
        self.model.updated_at.into()
    }
    /// Attempts to send it so far (admins only).
    async fn attempts(&self) -> Option<i32> {
        self.admin.then_some(self.model.attempts)
    }
    /// The provider's last refusal (admins only).
    async fn last_error(&self) -> Option<&str> {
        if self.admin {
            self.model.last_error.as_deref()
        } else {
            None
        }
    }
}

pub struct Booking(pub bookings::Model);

#[Object]
impl Booking {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn coach(&self, ctx: &Context<'_>) -> Result<Coach> {
        coach_of(ctx, &self.0.coach_id).await
    }
    /// The consumer; their email is shown to the booking's participants.
    async fn consumer(&self, ctx: &Context<'_>) -> Result<User> {
        let model = load_one(ctx, &loaders(ctx)?.users, self.0.consumer_id.clone())
            .await?
            .ok_or_else(|| crate::error::AppError::internal("booking consumer missing"))?;
        // Only participants and admins ever resolve a booking.
        Ok(User {
            model: (*model).clone(),
            is_viewer: true,
        })
    }
    async fn start_at(&self) -> DateTime {
        self.0.start_at.into()
    }
    async fn end_at(&self) -> DateTime {
        self.0.end_at.into()
    }
    async fn status(&self) -> BookingStatus {
        DomainStatus::parse(&self.0.status).map_or(BookingStatus::PendingPayment, Into::into)
    }
    async fn price(&self) -> Money {
        money(self.0.price_minor, &self.0.currency)
    }
    async fn platform_fee(&self) -> Money {
        money(self.0.platform_fee_minor, &self.0.currency)
    }
    async fn coach_payout(&self) -> Money {
        money(self.0.coach_payout_minor, &self.0.currency)
    }
    /// Set once the booking is confirmed.
    async fn meeting_url(&self) -> Option<&str> {
        self.0.meeting_url.as_deref()
    }
    async fn payment(&self, ctx: &Context<'_>) -> Result<Option<Payment>> {
        Ok(
            load_one(ctx, &loaders(ctx)?.booking_payments, self.0.id.clone())
                .await?
                .flatten()
                .map(Payment),
        )
    }
    /// The consumer's review of this session, once written.
    async fn review(&self, ctx: &Context<'_>) -> Result<Option<Review>> {
        Ok(
            load_one(ctx, &loaders(ctx)?.booking_reviews, self.0.id.clone())
                .await?
                .flatten()
                .map(|r| Review(r, false)),
        )
    }
    async fn cancellation_reason(&self) -> Option<&str> {
        self.0.cancellation_reason.as_deref()
    }
    /// Refunds decided for this booking (sent or on their way).
    async fn refunded_amount(&self) -> Money {
        money(self.0.refunded_minor, &self.0.currency)
    }
    /// The coach's share after refunds (the transfer is reversed in
    /// proportion); zero until paid.
    async fn coach_payout_net(&self, ctx: &Context<'_>) -> Result<Money> {
        Ok(money(self.net(ctx).await?.0, &self.0.currency))
    }
    /// The platform's share after refunds (its fee is refunded in
    /// proportion); zero until paid.
    async fn platform_fee_net(&self, ctx: &Context<'_>) -> Result<Money> {
        Ok(money(self.net(ctx).await?.1, &self.0.currency))
    }
    /// The package purchase whose credit paid for this session (then there
    /// is no payment of its own).
    async fn package_purchase_id(&self) -> Option<ID> {
        self.0.package_purchase_id.clone().map(ID)
    }
    /// A cancellation gave the package credit back (instead of a refund).
    async fn credit_returned(&self) -> bool {
        self.0.credit_returned
    }
    async fn payment_deadline(&self) -> DateTime {
        self.0.payment_deadline.into()
    }
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
    async fn updated_at(&self) -> DateTime {
        self.0.updated_at.into()
    }
}

impl Booking {
    async fn net(&self, ctx: &Context<'_>) -> Result<(i64, i64)> {
        // Paid with a package credit: the session's share of the package,
        // unless the credit went back.
        if self.0.package_purchase_id.is_some() {
            return Ok(if self.0.credit_returned {
                (0, 0)
            } else {
                (self.0.coach_payout_minor, self.0.platform_fee_minor)
            });
        }
        let payment = load_one(ctx, &loaders(ctx)?.booking_payments, self.0.id.clone())
            .await?
            .flatten();
        Ok(match payment {
            Some(p) if DomainPaymentStatus::of(&p).is_paid() => net_shares(
                p.amount_minor,
                self.0.platform_fee_minor,
                Ord::max(p.refunded_minor, p.refund_decided_minor),
            ),
            _ => (0, 0),
        })
    }
}

pub type BookingConnection = Connection<String, Booking, TotalCount>;

#[derive(Default)]
pub struct BookingQuery;

#[Object]
impl BookingQuery {
    /// The caller's bookings, as consumer or coach, newest start first.
    #[graphql(guard = "RoleGuard::SignedIn")]
    async fn my_bookings(
        &self,
        ctx: &Context<'_>,
        status: Option<BookingStatus>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<BookingConnection> {
        let state = ctx.state()?;
        let page = domain::my_bookings(
            &state.domain.db,
            ctx.current_user()?,
            status.map(Into::into),
            first,
            after.as_deref(),
        )
        .await?;
        crate::graphql::loaders::prefetch_bookings(ctx, &page.items)
            .await
            .map_err(crate::graphql::loaders::load_err)?;
        let mut conn = BookingConnection::with_additional_fields(
            after.is_some(),
            page.has_next,
            TotalCount {
                total_count: page.total_count,
            },
        );
        for (b, c) in page.items.into_iter().zip(page.cursors) {
            conn.edges.push(Edge::new(c, Booking(b)));
        }
        Ok(conn)
    }

    /// Participants and admins; anyone else gets NOT_FOUND.
    #[graphql(guard = "RoleGuard::SignedIn")]
    async fn booking(&self, ctx: &Context<'_>, id: ID) -> Result<Booking> {
        let state = ctx.state()?;
        Ok(Booking(
            domain::get_for(&state.domain.db, ctx.current_user()?, &id).await?,
        ))
    }
}

#[derive(Default)]
pub struct BookingMutation;

#[Object]
impl BookingMutation {
    #[graphql(
        guard = "RoleGuard::Only(DomainRole::Consumer).and(RateLimit::per_user(Bucket::Holds))"
    )]
    async fn create_hold(
        &self,
        ctx: &Context<'_>,
        coach_id: ID,
        start_at: DateTime,
        duration_minutes: i32,
    ) -> Result<Hold> {
        let state = ctx.state()?;
        Ok(Hold(
            hold::create_hold(
                &state.domain,
                ctx.current_user()?,
                &coach_id,
                start_at.0,
                duration_minutes,
            )
            .await?,
        ))
    }

    #[graphql(guard = "RoleGuard::SignedIn.and(RateLimit::per_user(Bucket::Holds))")]
    async fn release_hold(&self, ctx: &Context<'_>, hold_id: ID) -> Result<bool> {
        let state = ctx.state()?;
        hold::release_hold(&state.domain, ctx.current_user()?, &hold_id).await?;
        Ok(true)
    }

    #[graphql(guard = "RoleGuard::SignedIn.and(RateLimit::per_user(Bucket::Checkouts))")]
    async fn book_hold(
        &self,
        ctx: &Context<'_>,
        hold_id: ID,
        package_purchase_id: Option<ID>,
    ) -> Result<Booking> {
        let state = ctx.state()?;
        let (booking, _) = domain::book_hold(
            &state.domain,
            ctx.current_user()?,
            &hold_id,
            package_purchase_id.as_ref().map(|i| i.as_str()),
        )
        .await?;
        Ok(Booking(booking))
    }

    #[graphql(guard = "RoleGuard::SignedIn")]
    async fn cancel_booking(
        &self,
        ctx: &Context<'_>,
        booking_id: ID,
        reason: String,
    ) -> Result<Booking> {
        let state = ctx.state()?;
        Ok(Booking(
            domain::cancel(&state.domain, ctx.current_user()?, &booking_id, &reason).await?,
        ))
    }

    /// Refunds part or all of what remains of the booking's payment.
    #[graphql(guard = "RoleGuard::Only(DomainRole::Admin)")]
    async fn refund_booking(
        &self,
        ctx: &Context<'_>,
        booking_id: ID,
        amount_minor: i64,
    ) -> Result<Booking> {
        let state = ctx.state()?;
        Ok(Booking(
            domain::admin_refund(
                &state.domain,
                ctx.current_user()?,
                &booking_id,
                amount_minor,
            )
            .await?,
        ))
    }

    /// A fresh link to the coach's payout onboarding at the payment
    /// provider; the payout account is created on the first call.
    #[graphql(
        guard = "RoleGuard::Only(DomainRole::Coach).and(RateLimit::per_user(Bucket::Onboarding))"
    )]
    async fn start_payout_onboarding(&self, ctx: &Context<'_>) -> Result<String> {
        let state = ctx.state()?;
        Ok(crate::domain::payout::start_onboarding(&state.domain, ctx.current_user()?).await?)
    }

    #[graphql(guard = "RoleGuard::Only(DomainRole::Coach)")]
    async fn complete_booking(&self, ctx: &Context<'_>, booking_id: ID) -> Result<Booking> {
        let state = ctx.state()?;
        Ok(Booking(
            domain::complete(&state.domain, ctx.current_user()?, &booking_id).await?,
        ))
    }

    #[graphql(guard = "RoleGuard::SignedIn")]
    async fn report_no_show(&self, ctx: &Context<'_>, booking_id: ID) -> Result<Booking> {
        let state = ctx.state()?;
        Ok(Booking(
            domain::report_no_show(&state.domain, ctx.current_user()?, &booking_id).await?,
        ))
    }
}

#[derive(Default)]
pub struct BookingSubscription;

#[Subscription]
impl BookingSubscription {
    /// Without `bookingId`: every change of any of the caller's bookings,
    /// creation included. With it: that booking's changes.
    async fn booking_updated(
        &self,
        ctx: &Context<'_>,
        booking_id: Option<ID>,
    ) -> Result<impl Stream<Item = Booking> + use<>> {
        let state = ctx.state()?;
        let user = ctx.current_user()?.clone();
        if let Some(id) = &booking_id {
            domain::get_for(&state.domain.db, &user, id).await?;
        }
        let rx = state.domain.events.subscribe();
        let only = booking_id.map(|i| i.0);
        Ok(futures_util::stream::unfold(rx, move |mut rx| {
            let user = user.clone();
            let only = only.clone();
            async move {
                loop {
                    match rx.recv().await {
                        Ok(event) => {
                            let wanted = only.as_deref().is_none_or(|id| event.booking_id == id);
                            if !(wanted && event.is_participant(&user.id)) {
                                continue;
                            }
                            // For another instance's change, who may see it was
                            // taken from the row its receiver read (`RedisBus`).
                            return Some((
                                Booking(std::sync::Arc::unwrap_or_clone(event.booking)),
                                rx,
                            ));
                        }
                        // Fell behind: skip ahead; the next event carries the latest state.
                        Err(RecvError::Lagged(_)) => continue,
                        Err(RecvError::Closed) => return None,
                    }
                }
            }
        }))
    }
}
