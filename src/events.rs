//! Booking events -> subscriptions. Events are published only after the
//! transaction that caused them commits. The in-process bus is a bounded
//! broadcast: a slow subscriber skips what it missed (and gets the latest
//! state with the next event) instead of slowing bookings or growing memory.
//! A Redis implementation of [`EventBus`] lets several instances share events.

use tokio::sync::broadcast;

use entity::bookings;

/// A booking as it is right after a change.
#[derive(Debug, Clone)]
pub struct BookingEvent {
    pub booking: bookings::Model,
}

impl BookingEvent {
    /// Only participants ever receive a booking's events.
    pub fn is_participant(&self, user_id: &str) -> bool {
        self.booking.consumer_id == user_id || self.booking.coach_user_id == user_id
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
