//! Expectations, as kube-controller-manager keeps them: the creates and deletes a
//! controller issued and its cache does not show yet, so that a call never counts twice
//! what is in flight (a pod asked for but not seen would otherwise be asked for again).
//!
//! They are the one thing a reconcile call of the ReplicaSet and Job controllers carries
//! to the next, and they expire as upstream's do: a create the cache never shows (its
//! watch event lost) stops blocking its owner after five minutes.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an expectation holds without being seen: upstream's ExpectationsTimeout.
const EXPIRY: Duration = Duration::from_secs(5 * 60);

/// The creates and deletes of one owner not yet seen in the cache.
#[derive(Default)]
pub(crate) struct InFlight {
    created: HashSet<String>,
    deleted: HashSet<String>,
    /// When the last create or delete was issued.
    issued: Option<Instant>,
}

impl InFlight {
    /// Forgets what the cache now shows: created objects that are in `present`, deleted
    /// ones that are not.
    pub(crate) fn observe(&mut self, present: &HashSet<String>) {
        self.created.retain(|name| !present.contains(name));
        self.deleted.retain(|name| present.contains(name));
    }

    /// Remembers a create the cache does not show yet.
    pub(crate) fn created(&mut self, name: String) {
        self.created.insert(name);
        self.issued = Some(Instant::now());
    }

    /// Remembers a delete the cache does not show yet.
    pub(crate) fn deleted(&mut self, name: String) {
        self.deleted.insert(name);
        self.issued = Some(Instant::now());
    }

    /// How many creates are not seen yet.
    pub(crate) fn creating(&self) -> usize {
        self.created.len()
    }

    /// Whether the object is being deleted by this controller.
    pub(crate) fn deleting(&self, name: &str) -> bool {
        self.deleted.contains(name)
    }

    fn settled(&self) -> bool {
        self.created.is_empty() && self.deleted.is_empty()
    }

    fn expired(&self, now: Instant) -> bool {
        self.issued
            .is_some_and(|issued| now.duration_since(issued) >= EXPIRY)
    }
}

/// The in-flight work of every owner, by uid. A call takes its owner's out and puts it
/// back when done: the runner never works on one owner in two calls at once.
#[derive(Default)]
pub(crate) struct Expectations(Mutex<HashMap<String, InFlight>>);

impl Expectations {
    /// Runs `work` with the in-flight work of the owner with `uid`, and keeps what is
    /// left of it for the owner's next call.
    pub(crate) async fn with<T>(
        &self,
        uid: Option<String>,
        work: impl AsyncFnOnce(&mut InFlight) -> T,
    ) -> T {
        let mut flight = self.take(uid.as_deref());
        let result = work(&mut flight).await;
        self.put(uid.as_deref(), flight);
        result
    }

    /// The in-flight work of the owner with `uid`, none if it expired.
    fn take(&self, uid: Option<&str>) -> InFlight {
        let flight = self.lock().remove(uid.unwrap_or_default());
        flight
            .filter(|f| !f.expired(Instant::now()))
            .unwrap_or_default()
    }

    /// Keeps the owner's in-flight work for its next call, if any is left; drops the
    /// expired work of owners gone meanwhile.
    fn put(&self, uid: Option<&str>, flight: InFlight) {
        let mut all = self.lock();
        let now = Instant::now();
        all.retain(|_, f| !f.expired(now));
        if !flight.settled() {
            all.insert(uid.unwrap_or_default().to_string(), flight);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, InFlight>> {
        crate::lock(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_create_counts_until_the_cache_shows_it() {
        let mut flight = InFlight::default();
        flight.created("a".into());
        flight.deleted("b".into());
        flight.observe(&HashSet::from(["b".to_string()]));
        assert_eq!(flight.creating(), 1);
        assert!(flight.deleting("b"));
        flight.observe(&HashSet::from(["a".to_string()]));
        assert_eq!(flight.creating(), 0);
        assert!(!flight.deleting("b"));
    }

    #[test]
    fn work_in_flight_is_kept_between_calls_until_it_settles() {
        let expectations = Expectations::default();
        let mut flight = expectations.take(Some("uid"));
        flight.created("a".into());
        expectations.put(Some("uid"), flight);
        let mut flight = expectations.take(Some("uid"));
        assert_eq!(flight.creating(), 1);
        flight.observe(&HashSet::from(["a".to_string()]));
        expectations.put(Some("uid"), flight);
        assert!(expectations.lock().is_empty(), "settled work is not kept");
    }

    #[test]
    fn expectations_expire() {
        let mut flight = InFlight::default();
        flight.created("a".into());
        let later = Instant::now() + EXPIRY;
        assert!(flight.expired(later));
    }
}
