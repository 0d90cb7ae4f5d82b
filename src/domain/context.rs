//! What the domain needs from the outside world, built once at start-up
//! (in `app.rs`) and handed to resolvers, jobs and webhooks alike. Nothing
//! here knows about HTTP or GraphQL.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;

use crate::domain::auth::Auth;
use crate::domain::email::Mailer;
use crate::domain::listing::ListingIndex;
use crate::domain::payment::PaymentProvider;
use crate::domain::reference::ReferenceData;
use crate::domain::revocation::Revocations;
use crate::email::Templates;
use crate::events::EventBus;

/// Business figures the rules depend on (from configuration).
#[derive(Debug, Clone)]
pub struct Policy {
    /// How long a hold keeps its slot (`HOLD_TTL_SECONDS`).
    pub hold_ttl: Duration,
    /// The earliest bookable start, from now (`MIN_BOOKING_NOTICE_MINUTES`).
    pub min_booking_notice: Duration,
    /// The platform's share of a price, in basis points (`PLATFORM_FEE_BPS`).
    pub platform_fee_bps: u32,
    /// Base of links the domain hands out (meeting rooms, checkout returns).
    pub public_base_url: String,
    /// Holds and slots start at most this far ahead (`BOOKING_HORIZON_DAYS`).
    pub booking_horizon: Duration,
    /// Coaches take bookings only once they can be paid out (true with a
    /// real payment provider; the development provider pays nobody).
    pub payouts_required: bool,
    /// A pending payment whose checkout opened this long ago is looked up
    /// at the provider (`PAYMENT_RECONCILE_AFTER_SECONDS`).
    pub reconcile_after: Duration,
}

impl Policy {
    pub fn hold_ttl(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.hold_ttl).unwrap_or(chrono::Duration::minutes(10))
    }

    pub fn booking_horizon(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.booking_horizon).unwrap_or(chrono::Duration::days(180))
    }

    pub fn min_booking_notice(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.min_booking_notice).unwrap_or_default()
    }
}

/// The domain's collaborators. Cheap to clone.
#[derive(Clone)]
pub struct DomainCtx {
    pub db: DatabaseConnection,
    pub auth: Arc<Auth>,
    pub reference: ReferenceData,
    pub payments: Arc<dyn PaymentProvider>,
    pub events: Arc<dyn EventBus>,
    /// The search index (a cache of public profiles).
    pub listings: Arc<ListingIndex>,
    pub policy: Arc<Policy>,
    /// Sessions ended in this process, for open sockets.
    pub revocations: Arc<Revocations>,
    /// Sends the outbox's emails.
    pub mailer: Arc<dyn Mailer>,
    /// Sends the outbox's push notifications (Expo).
    pub push: Arc<dyn crate::domain::push::PushSender>,
    pub templates: Arc<Templates>,
    /// Wakes the outbox worker when a unit of work queued an email.
    pub outbox_wake: Arc<tokio::sync::Notify>,
    /// Seals the links of queued emails.
    pub link_seal: Arc<crate::domain::email::LinkSeal>,
    /// Business counters, moved by committed units of work.
    pub activity: Arc<crate::domain::activity::Activity>,
    /// SQLite's one writer at a time, queued in this process: units of
    /// work wait here and are woken in turn, instead of polling in
    /// SQLite's busy handler (which sleeps in steps of up to 100 ms, so
    /// under load a writer could wait far longer than its turn). Unused on
    /// PostgreSQL.
    pub writer: Arc<tokio::sync::Mutex<()>>,
}
