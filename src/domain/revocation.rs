//! Which signed-in sessions have ended, known at once in this process.
//!
//! A token is checked against the database once per HTTP request, but a
//! WebSocket lives for hours on the token it opened with. When a change
//! ends sessions (a suspension, a password change, a logout), its unit of
//! work records it here right after the commit and before anything else
//! it publishes, so an open socket can refuse the very next event and
//! close; sockets also re-check the database every few seconds, for
//! changes made by another instance.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

/// Entries older than this are forgotten: every token issued before them
/// has expired by then (access tokens live minutes).
pub const REMEMBER: Duration = Duration::from_secs(24 * 3600);

#[derive(Default)]
struct Ended {
    /// User -> the lowest session version still valid.
    users: HashMap<String, (i32, Instant)>,
    /// Session families (one sign-in and its refreshes) logged out.
    families: HashMap<String, Instant>,
}

pub struct Revocations {
    ended: Mutex<Ended>,
    /// The id of each user whose sessions just changed.
    tx: broadcast::Sender<String>,
}

impl Default for Revocations {
    fn default() -> Self {
        Revocations {
            ended: Mutex::default(),
            tx: broadcast::channel(1024).0,
        }
    }
}

impl Revocations {
    fn ended(&self) -> std::sync::MutexGuard<'_, Ended> {
        self.ended.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every session of the user before `valid_version` has ended.
    pub fn user_sessions_ended(&self, user_id: &str, valid_version: i32) {
        // Two changes may be recorded out of order: keep the higher bar.
        let mut ended = self.ended();
        let entry = ended
            .users
            .entry(user_id.to_string())
            .or_insert((valid_version, Instant::now()));
        *entry = (entry.0.max(valid_version), Instant::now());
        drop(ended);
        let _ = self.tx.send(user_id.to_string());
    }

    /// One session family of the user has ended (a logout).
    pub fn family_ended(&self, user_id: &str, family_id: &str) {
        self.ended()
            .families
            .insert(family_id.to_string(), Instant::now());
        let _ = self.tx.send(user_id.to_string());
    }

    /// Whether a token of `user_id` with session version `version` and
    /// session family `family` has been revoked here.
    pub fn is_revoked(&self, user_id: &str, version: i32, family: Option<&str>) -> bool {
        let ended = self.ended();
        ended
            .users
            .get(user_id)
            .is_some_and(|(valid, _)| version < *valid)
            || family.is_some_and(|f| ended.families.contains_key(f))
    }

    /// Wakes on every change (filter by user id).
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.tx.subscribe()
    }

    /// Forgets what no live token can still be affected by.
    pub fn prune(&self) {
        let mut ended = self.ended();
        ended.users.retain(|_, (_, at)| at.elapsed() < REMEMBER);
        ended.families.retain(|_, at| at.elapsed() < REMEMBER);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_families() {
        let r = Revocations::default();
        assert!(!r.is_revoked("u", 0, Some("f")));
        r.user_sessions_ended("u", 1);
        assert!(r.is_revoked("u", 0, None));
        assert!(!r.is_revoked("u", 1, None), "a newer token is fine");
        r.family_ended("u", "f");
        assert!(r.is_revoked("u", 1, Some("f")));
        assert!(!r.is_revoked("u", 1, Some("g")));
        assert!(!r.is_revoked("v", 0, None));
    }
}
