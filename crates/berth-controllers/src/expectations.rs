//! Expectations, as kube-controller-manager keeps them: the creates and deletes a
//! controller issued and its cache does not show yet, so that a pass never counts twice
//! what is in flight (a pod asked for but not seen would otherwise be asked for again).

use std::collections::{HashMap, HashSet};

/// The creates and deletes of one owner not yet seen in the cache.
#[derive(Default)]
pub(crate) struct InFlight {
    created: HashSet<String>,
    deleted: HashSet<String>,
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
    }

    /// Remembers a delete the cache does not show yet.
    pub(crate) fn deleted(&mut self, name: String) {
        self.deleted.insert(name);
    }

    /// How many creates are not seen yet.
    pub(crate) fn creating(&self) -> usize {
        self.created.len()
    }

    /// Whether the object is being deleted by this controller.
    pub(crate) fn deleting(&self, name: &str) -> bool {
        self.deleted.contains(name)
    }
}

/// The in-flight work of every owner, by uid.
#[derive(Default)]
pub(crate) struct Expectations(HashMap<String, InFlight>);

impl Expectations {
    /// Forgets the owners not among `live` (their uids): they are gone.
    pub(crate) fn keep_only(&mut self, live: &HashSet<String>) {
        self.0.retain(|uid, _| live.contains(uid));
    }

    /// The in-flight work of the owner with `uid`.
    pub(crate) fn of(&mut self, uid: Option<String>) -> &mut InFlight {
        self.0.entry(uid.unwrap_or_default()).or_default()
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
}
