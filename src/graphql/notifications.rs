//! Push devices and notification preferences for the signed-in user.
//! Thin resolvers over `domain::push` and `domain::preferences`.

use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};

use crate::domain::preferences::{self, Channel, Kind};
use crate::domain::push;
use crate::graphql::CtxExt;
use crate::graphql::guards::RoleGuard;
use crate::graphql::scalars::DateTime;

/// What a notification is about. Also the `data.kind` of a push message.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum NotificationKind {
    /// Email verification, password reset, a coach's approval decision
    /// (email only, always sent).
    Account,
    /// To both sides: the booking is paid and confirmed (to the coach,
    /// "New booking").
    BookingConfirmed,
    BookingCancelled,
    /// 24 hours and 1 hour before the session.
    Reminder,
    /// The receipt of a payment (its email is always sent).
    PaymentReceipt,
    /// Money on its way back (its email is always sent).
    Refund,
    /// To the coach: a consumer reviewed a session.
    ReviewReceived,
    /// Admins only, email only, off unless turned on: Monday 08:00 in the
    /// admin's time zone, last week's figures.
    WeeklyReport,
}

impl From<NotificationKind> for Kind {
    fn from(k: NotificationKind) -> Self {
        match k {
            NotificationKind::Account => Kind::Account,
            NotificationKind::BookingConfirmed => Kind::BookingConfirmed,
            NotificationKind::BookingCancelled => Kind::BookingCancelled,
            NotificationKind::Reminder => Kind::Reminder,
            NotificationKind::PaymentReceipt => Kind::PaymentReceipt,
            NotificationKind::Refund => Kind::Refund,
            NotificationKind::ReviewReceived => Kind::ReviewReceived,
            NotificationKind::WeeklyReport => Kind::WeeklyReport,
        }
    }
}

impl From<Kind> for NotificationKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Account => NotificationKind::Account,
            Kind::BookingConfirmed => NotificationKind::BookingConfirmed,
            Kind::BookingCancelled => NotificationKind::BookingCancelled,
            Kind::Reminder => NotificationKind::Reminder,
            Kind::PaymentReceipt => NotificationKind::PaymentReceipt,
            Kind::Refund => NotificationKind::Refund,
            Kind::ReviewReceived => NotificationKind::ReviewReceived,
            Kind::WeeklyReport => NotificationKind::WeeklyReport,
        }
    }
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum NotificationChannel {
    Email,
    Push,
}

impl From<NotificationChannel> for Channel {
    fn from(c: NotificationChannel) -> Self {
        match c {
            NotificationChannel::Email => Channel::Email,
            NotificationChannel::Push => Channel::Push,
        }
    }
}

impl From<Channel> for NotificationChannel {
    fn from(c: Channel) -> Self {
        match c {
            Channel::Email => NotificationChannel::Email,
            Channel::Push => NotificationChannel::Push,
        }
    }
}

/// One kind on one channel, as offered to the caller.
#[derive(SimpleObject)]
pub struct NotificationPreference {
    pub kind: NotificationKind,
    pub channel: NotificationChannel,
    pub enabled: bool,
    /// Always sent (account emails and receipts): cannot be turned off.
    pub required: bool,
}

impl From<preferences::Preference> for NotificationPreference {
    fn from(p: preferences::Preference) -> Self {
        NotificationPreference {
            kind: p.kind.into(),
            channel: p.channel.into(),
            enabled: p.enabled,
            required: p.required,
        }
    }
}

#[derive(InputObject)]
pub struct NotificationPreferenceInput {
    pub kind: NotificationKind,
    pub channel: NotificationChannel,
    pub enabled: bool,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum PushPlatform {
    Ios,
    Android,
}

/// A phone that receives the caller's push notifications (its token is
/// never shown again).
#[derive(SimpleObject)]
pub struct PushDevice {
    pub id: ID,
    pub platform: PushPlatform,
    pub registered_at: DateTime,
}

impl From<entity::push_devices::Model> for PushDevice {
    fn from(d: entity::push_devices::Model) -> Self {
        PushDevice {
            id: ID(d.id),
            platform: match push::Platform::parse(&d.platform) {
                Some(push::Platform::Ios) => PushPlatform::Ios,
                _ => PushPlatform::Android,
            },
            registered_at: DateTime(d.updated_at),
        }
    }
}

#[derive(Default)]
pub struct NotificationQuery;

#[Object]
impl NotificationQuery {
    /// Every notification kind and channel offered to the caller, with the
    /// current choice (defaults: all on, the weekly report off).
    #[graphql(guard = "RoleGuard::SignedIn")]
    async fn notification_preferences(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<NotificationPreference>> {
        let state = ctx.state()?;
        let list = preferences::list(&state.domain.db, ctx.current_user()?).await?;
        Ok(list.into_iter().map(Into::into).collect())
    }

    /// The caller's registered phones, last registered first.
    #[graphql(guard = "RoleGuard::SignedIn")]
    async fn push_devices(&self, ctx: &Context<'_>) -> Result<Vec<PushDevice>> {
        let state = ctx.state()?;
        let devices = push::devices(&state.domain.db, &ctx.current_user()?.id).await?;
        Ok(devices.into_iter().map(Into::into).collect())
    }
}

#[derive(Default)]
pub struct NotificationMutation;

#[Object]
impl NotificationMutation {
    /// Changes some of the caller's choices, all or none; returns them all.
    /// Turning off a required email, or naming a kind or channel not
    /// offered to the caller, is `BAD_USER_INPUT`.
    #[graphql(guard = "RoleGuard::SignedIn")]
    async fn set_notification_preferences(
        &self,
        ctx: &Context<'_>,
        preferences: Vec<NotificationPreferenceInput>,
    ) -> Result<Vec<NotificationPreference>> {
        let state = ctx.state()?;
        let changes: Vec<(Kind, Channel, bool)> = preferences
            .into_iter()
            .map(|p| (p.kind.into(), p.channel.into(), p.enabled))
            .collect();
        let list = preferences::set(&state.domain, ctx.current_user()?, &changes).await?;
        Ok(list.into_iter().map(Into::into).collect())
    }

    /// Registers this phone for push notifications with its Expo push token
    /// (`getExpoPushTokenAsync` of `expo-notifications`:
    /// `ExponentPushToken[...]` or `ExpoPushToken[...]`). A token
    /// registered by another account moves to the caller. At most 10
    /// devices per user: an 11th forgets the one registered longest ago.
    /// Call it at every app start; it is idempotent.
    #[graphql(guard = "RoleGuard::SignedIn")]
    async fn register_push_token(
        &self,
        ctx: &Context<'_>,
        token: String,
        platform: PushPlatform,
    ) -> Result<PushDevice> {
        let state = ctx.state()?;
        let platform = match platform {
            PushPlatform::Ios => push::Platform::Ios,
            PushPlatform::Android => push::Platform::Android,
        };
        let device = push::register(&state.domain, ctx.current_user()?, &token, platform).await?;
        Ok(device.into())
    }

    /// Stops push notifications to this phone; `false` when the caller has
    /// no device with this token.
    #[graphql(guard = "RoleGuard::SignedIn")]
    async fn unregister_push_token(&self, ctx: &Context<'_>, token: String) -> Result<bool> {
        let state = ctx.state()?;
        Ok(push::unregister(&state.domain, ctx.current_user()?, &token).await?)
    }
}
