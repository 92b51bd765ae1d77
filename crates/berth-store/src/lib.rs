//! A revisioned key-value store with watch, in the etcd v3 model: every write gets the
//! next revision of the whole store; a key's value can be read as of any revision not yet
//! compacted; creates and updates are compare-and-swap on the key's last revision; and a
//! watch replays every change after a revision, then follows new ones. Two backends serve
//! it: an embedded SQLite database by default (rows per revision, as k3s's kine keeps
//! them) and a real etcd cluster for more than one server.
//!
//! Depends on nothing of ours; the API server is its only user.

use std::sync::Arc;

use async_trait::async_trait;

mod etcd;
mod sqlite;

pub use etcd::EtcdStore;
pub use sqlite::SqliteStore;

/// Prefix under which the API server keeps its objects, as kube-apiserver does in etcd.
pub const KEY_PREFIX: &str = "/registry/";

/// One key's value as of a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
    /// The revision that created the key (since its last deletion).
    pub create_revision: i64,
    /// The revision of the key's last change: what compare-and-swap compares.
    pub mod_revision: i64,
}

/// A change, as a watch reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The key was created or updated; `prev` is its value before, when it had one.
    Put {
        /// The new value.
        kv: KeyValue,
        /// The value it replaced.
        prev: Option<KeyValue>,
    },
    /// The key was deleted at `revision`; `prev` is its last value.
    Delete {
        /// The value it had.
        prev: KeyValue,
        /// The deletion's revision.
        revision: i64,
    },
}

impl Event {
    /// The revision of the change.
    pub fn revision(&self) -> i64 {
        match self {
            Event::Put { kv, .. } => kv.mod_revision,
            Event::Delete { revision, .. } => *revision,
        }
    }

    /// The key it changed.
    pub fn key(&self) -> &str {
        match self {
            Event::Put { kv, .. } => &kv.key,
            Event::Delete { prev, .. } => &prev.key,
        }
    }
}

/// A page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListResult {
    /// The keys' values, in key order.
    pub items: Vec<KeyValue>,
    /// The revision the list was read at.
    pub revision: i64,
    /// Whether more keys follow the last one.
    pub more: bool,
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A create found the key there.
    #[error("key {0} already exists")]
    Exists(String),
    /// The key is not there.
    #[error("key {0} not found")]
    NotFound(String),
    /// A compare-and-swap found another revision.
    #[error("key {key} was modified: expected revision {expected}, found {actual}")]
    Conflict {
        /// The key.
        key: String,
        /// The revision the caller had.
        expected: i64,
        /// The key's revision now.
        actual: i64,
    },
    /// The revision asked for is older than the oldest kept.
    #[error("revision {requested} has been compacted (the oldest kept is {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: i64,
        /// The compaction's revision.
        compacted: i64,
    },
    /// The backend failed (I/O, connection, corruption).
    #[error("datastore: {0}")]
    Backend(String),
}

/// The result type of the store.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The changes a watch reports, in revision order; an error ends it.
pub type Watch = tokio::sync::mpsc::Receiver<Result<Event>>;

/// The store's operations, the same on every backend.
#[async_trait]
pub trait Store: Send + Sync {
    /// The store's current revision.
    async fn revision(&self) -> Result<i64>;

    /// A key's current value.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// The keys under `prefix` after `start_after` (empty for the first page), at most
    /// `limit` of them (0 for all), as of `revision` (0 for now).
    async fn list(
        &self,
        prefix: &str,
        start_after: &str,
        limit: usize,
        revision: i64,
    ) -> Result<ListResult>;

    /// Creates a key that must not exist.
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue>;

    /// Replaces a key's value if its last revision is `expected` (0: whatever it is).
    async fn update(&self, key: &str, value: Vec<u8>, expected: i64) -> Result<KeyValue>;

    /// Deletes a key if its last revision is `expected` (0: whatever it is); gives its
    /// last value and the deletion's revision.
    async fn delete(&self, key: &str, expected: i64) -> Result<(KeyValue, i64)>;

    /// Every change under `prefix` after revision `after` (0: from now on), then new ones
    /// as they happen.
    async fn watch(&self, prefix: &str, after: i64) -> Result<Watch>;

    /// Forgets the history before `revision`: older revisions can no longer be read. The
    /// space it took is given back (SQLite's free pages, etcd's defragmentation).
    async fn compact(&self, revision: i64) -> Result<()>;

    /// How many keys are live: what the history kept is weighed against.
    async fn keys(&self) -> Result<u64>;
}

/// The fewest revisions a compaction leaves (kine's `compact-min-retain`).
pub const MIN_RETAINED: i64 = 1000;

/// Where churn calls for a compaction whatever the time: once the revisions kept since
/// the last compaction (to `compacted`) outnumber the live `keys` (and
/// [`MIN_RETAINED`]), to the revision that leaves half that many. History then stays
/// within about the live data however fast keys are rewritten: 5,000 nodes renewing
/// their Leases every 10 s write 43 million revisions a day, and five minutes of them
/// are 150,000 rows.
pub fn compaction_for_size(revision: i64, keys: u64, compacted: i64) -> Option<i64> {
    let allowed = i64::try_from(keys).unwrap_or(i64::MAX).max(MIN_RETAINED);
    (revision - compacted > allowed).then_some(revision - allowed / 2)
}

/// Opens the datastore a URL names: `sqlite://PATH` (the database file) or
/// `etcd://HOST:PORT[,HOST:PORT…]`.
pub async fn open(datastore: &str) -> Result<Arc<dyn Store>> {
    if let Some(path) = datastore.strip_prefix("sqlite://") {
        return Ok(Arc::new(SqliteStore::open(std::path::Path::new(path))?));
    }
    if let Some(endpoints) = datastore.strip_prefix("etcd://") {
        let endpoints: Vec<&str> = endpoints.split(',').filter(|e| !e.is_empty()).collect();
        return Ok(Arc::new(EtcdStore::connect(&endpoints).await?));
    }
    Err(Error::Backend(format!(
        "unknown datastore {datastore:?}: use sqlite://PATH or etcd://HOST:PORT[,HOST:PORT…]"
    )))
}

/// The first key after every key that starts with `prefix` (etcd's range end).
pub(crate) fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every key: etcd's "\0" range end.
    vec![0]
}

#[cfg(test)]
mod tests {
    #[test]
    fn key_prefix_is_a_directory() {
        assert!(
            super::KEY_PREFIX.starts_with(char::from(b'/'))
                && super::KEY_PREFIX.ends_with(char::from(b'/'))
        );
    }

    #[test]
    fn prefix_ends_come_right_after_the_prefix() {
        assert_eq!(super::prefix_end("/registry/pods/"), b"/registry/pods0");
        assert_eq!(super::prefix_end("a\u{7f}"), b"a\x80");
    }
}
