//! Booking events -> subscriptions. Events are published only after the
//! transaction that caused them commits. The in-process bus is a bounded
//! broadcast: a slow subscriber skips what it missed (and gets the latest
//! state with the next event) instead of slowing bookings or growing memory.
//! The Redis implementation of [`EventBus`] (`integrations::redis`) lets
//! several instances share events.

use tokio::sync::broadcast;

use entity::bookings;

/// A booking as it is right after a change: who may see it, its new
/// status, and the row. For a change made on another instance (through
/// Redis) the row is the one that instance's receiver read once the message
/// arrived, so it shows the latest state.
#[derive(Debug, Clone)]
pub struct BookingEvent {
    pub booking_id: String,
    pub consumer_id: String,
    pub coach_user_id: String,
    pub status: String,
    pub booking: std::sync::Arc<bookings::Model>,
}

/// A [`BookingEvent`] as it travels between instances: small, with no row.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WireEvent {
    /// The instance that published it (it has delivered it locally already).
    pub origin: String,
    pub booking_id: String,
    pub consumer_id: String,
    pub coach_user_id: String,
    pub status: String,
}

impl BookingEvent {
    pub fn of(booking: bookings::Model) -> Self {
        BookingEvent {
            booking_id: booking.id.clone(),
            consumer_id: booking.consumer_id.clone(),
            coach_user_id: booking.coach_user_id.clone(),
            status: booking.status.clone(),
            booking: std::sync::Arc::new(booking),
        }
    }

    /// Only participants ever receive a booking's events.
    pub fn is_participant(&self, user_id: &str) -> bool {
        self.consumer_id == user_id || self.coach_user_id == user_id
    }

    pub fn wire(&self, origin: &str) -> WireEvent {
        WireEvent {
            origin: origin.to_string(),
            booking_id: self.booking_id.clone(),
            consumer_id: self.consumer_id.clone(),
            coach_user_id: self.coach_user_id.clone(),
            status: self.status.clone(),
        }
    }
}

pub trait EventBus: Send + Sync {
    fn publish(&self, event: BookingEvent);
    fn subscribe(&self) -> broadcast::Receiver<BookingEvent>;
}

pub struct InProcessBus {
    tx: broadcast::Sender<BookingEvent>,
}

/// How many events a subscriber may fall behind before it skips ahead.
pub const BUS_CAPACITY: usize = 1024;

impl InProcessBus {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(BUS_CAPACITY);
        InProcessBus { tx }
    }
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus for InProcessBus {
    fn publish(&self, event: BookingEvent) {
        // No subscriber is not an error.
        let _ = self.tx.send(event);
    }

    fn subscribe(&self) -> broadcast::Receiver<BookingEvent> {
        self.tx.subscribe()
    }
}
