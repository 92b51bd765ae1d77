//! The watch cache: every object of the cluster held in memory as the JSON clients get,
//! kept current by one watch of the whole store, with a window of recent changes. Lists
//! and watches are served from it — a thousand watchers cost one store watch, and each
//! change is encoded once — instead of each reading the store.
//!
//! A list that asks for the latest state waits until the cache has caught up with the
//! store's current revision (read cheaply from the store), so reads stay consistent.
//! Lists in pages and watches from before the window go to the store.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use berth_labels::LabelSet;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::broadcast;

mod outline;

/// How long each resource's recent changes are kept for a watch to start from without
/// going to the store, or a watcher that fell behind to be caught up from — at least
/// kube-apiserver's 75 s. One window of 10,000 changes for all kinds was 2–3 s of
/// 40,000 pods being scheduled beside 5,000 nodes' Lease renewals: pod watchers fell
/// behind it, got 410 and listed every pod again, over and over.
const FRESH: Duration = Duration::from_secs(75);

/// How many changes a resource's history keeps whatever their age, and at most whatever
/// their age: kube-apiserver's bounds of a watch cache's capacity.
const HISTORY_MIN: usize = 100;
const HISTORY_MAX: usize = 100 * 1024;

/// How many changes a slow watcher may fall behind the feed before it is caught up
/// from the history instead (its watch ends only once the history no longer reaches
/// back to it; the client then watches again from where it got to, as clients do).
pub(crate) const FEED_CAPACITY: usize = 8_192;

/// How long a list waits for the cache to catch up before reading the store instead.
const CATCH_UP: Duration = Duration::from_secs(3);

/// An object as clients get it.
#[derive(Debug)]
pub(crate) struct Entry {
    /// Its JSON, resourceVersion included.
    pub(crate) json: Bytes,
    /// What selectors usually ask about, kept apart so they need not read the JSON.
    pub(crate) summary: Summary,
}

/// The fields a [`Summary`] keeps: selectors on them need not read the
/// whole object.
pub(crate) const SUMMARY_FIELDS: [&str; 4] = [
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "status.phase",
];

/// An object's labels and the fields of [`SUMMARY_FIELDS`], compactly: the cache holds
/// one per object of the cluster.
#[derive(Debug)]
pub(crate) struct Summary {
    labels: LabelSet,
    fields: [Option<Box<str>>; SUMMARY_FIELDS.len()],
}

impl Summary {
    /// The summary of an object read through its outline.
    fn outlined(outline: &outline::Outline<'_>, metadata: outline::MetadataOutline<'_>) -> Self {
        let labels = metadata.labels.into_iter().flatten().collect();
        let node = outline.spec.as_ref().and_then(|s| s.node_name.as_deref());
        let phase = outline.status.as_ref().and_then(|s| s.phase.as_deref());
        let fields = [
            metadata.name.as_deref(),
            metadata.namespace.as_deref(),
            node,
            phase,
        ];
        Self {
            labels,
            fields: fields.map(|field| field.map(Box::from)),
        }
    }

    fn of(object: &Value) -> Self {
        let labels = object["metadata"]["labels"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default()))
            .collect();
        let fields = SUMMARY_FIELDS.map(|path| {
            let value = path.split('.').fold(object, |node, part| &node[part]);
            value.as_str().map(Box::from)
        });
        Self { labels, fields }
    }

    /// The value of label `key`.
    pub(crate) fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key)
    }

    /// The value of a field of [`SUMMARY_FIELDS`].
    pub(crate) fn field(&self, path: &str) -> Option<&str> {
        let index = SUMMARY_FIELDS.iter().position(|p| *p == path)?;
        self.fields[index].as_deref()
    }
}

impl Entry {
    /// The object of a store value at `revision`; None when it is not JSON.
    pub(crate) fn of(value: &[u8], revision: i64) -> Option<Self> {
        if let Some((json, outline, metadata)) = outline::stamped(value, revision) {
            return Some(Self {
                json: Bytes::from(json.into_boxed_slice()),
                summary: Summary::outlined(&outline, metadata),
            });
        }
        let mut object: Value = serde_json::from_slice(value).ok()?;
        object["metadata"]["resourceVersion"] = json!(revision.to_string());
        let summary = Summary::of(&object);
        Some(Self {
            // Exactly as long as the JSON: a Vec grown by doubling would keep up to twice
            // that, for every object of the cluster.
            json: Bytes::from(serde_json::to_vec(&object).ok()?.into_boxed_slice()),
            summary,
        })
    }

    /// The text of the object's metadata, as it stands in its JSON: a
    /// PartialObjectMetadata made without parsing the rest.
    pub(crate) fn metadata_json(&self) -> Option<&str> {
        outline::metadata(&self.json)
    }

    /// The whole object, parsed.
    pub(crate) fn object(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }

    /// The object read as `K` (a kind's type, or a part of one); None when it is not.
    pub(crate) fn typed<K: DeserializeOwned>(&self) -> Option<K> {
        serde_json::from_slice(&self.json).ok()
    }
}

/// One change: an object added, modified or deleted at a revision.
#[derive(Debug)]
pub(crate) struct Change {
    /// ADDED, MODIFIED or DELETED, as watch events name them.
    pub(crate) kind: &'static str,
    pub(crate) key: String,
    /// The object after the change (before it, for a deletion).
    pub(crate) entry: Arc<Entry>,
    pub(crate) revision: i64,
}

impl Change {
    /// The object at `key` made anew at `revision`, for tests.
    #[cfg(test)]
    fn made(key: &str, revision: i64) -> Arc<Self> {
        let value = format!(r#"{{"metadata":{{"name":"{revision}"}}}}"#);
        Arc::new(Change {
            kind: "ADDED",
            key: key.to_string(),
            entry: Arc::new(Entry::of(value.as_bytes(), revision).expect("JSON")),
            revision,
        })
    }

    /// The change a store event makes.
    pub(crate) fn of(event: &berth_store::Event) -> Option<Self> {
        let (kind, kv, revision) = match event {
            berth_store::Event::Put { kv, prev } => {
                let kind = if prev.is_some() { "MODIFIED" } else { "ADDED" };
                (kind, kv, kv.mod_revision)
            }
            berth_store::Event::Delete { prev, revision } => ("DELETED", prev, *revision),
        };
        Some(Self {
            kind,
            key: kv.key.clone(),
            entry: Arc::new(Entry::of(&kv.value, revision)?),
            revision,
        })
    }
}

/// One resource's recent changes (those under a directory: `/registry/pods/`), each
/// with when the cache saw it. Kept per resource, so that Lease renewals cannot push the
/// pods' changes out.
struct History {
    changes: VecDeque<(Instant, Arc<Change>)>,
    /// The revision after which the history holds every change of its resource: that of
    /// the last change it let go of.
    complete_after: i64,
    /// The revision its resource last changed at, kept when that change is let go of:
    /// what [`Memo`]s depend on.
    changed: i64,
}

impl History {
    fn new(complete_after: i64) -> Self {
        Self {
            changes: VecDeque::new(),
            complete_after,
            changed: complete_after,
        }
    }

    fn push(&mut self, change: Arc<Change>, now: Instant) {
        self.changed = change.revision;
        self.changes.push_back((now, change));
        self.trim(now);
    }

    /// Lets go of the changes beyond [`HISTORY_MAX`], and of those older than [`FRESH`]
    /// while more than [`HISTORY_MIN`] are kept.
    fn trim(&mut self, now: Instant) {
        while let Some((seen, change)) = self.changes.front() {
            let kept = self.changes.len();
            let stale = kept > HISTORY_MIN && now.saturating_duration_since(*seen) > FRESH;
            if kept <= HISTORY_MAX && !stale {
                break;
            }
            self.complete_after = change.revision;
            self.changes.pop_front();
        }
    }

    /// Lets go of the changes up to `revision`.
    fn forget_through(&mut self, revision: i64) {
        while self
            .changes
            .front()
            .is_some_and(|(_, c)| c.revision <= revision)
        {
            self.changes.pop_front();
        }
        self.complete_after = self.complete_after.max(revision);
    }
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Arc<Entry>>,
    /// Each resource's recent changes, by directory.
    histories: HashMap<String, History>,
    /// The revision after which a resource with no history has had no change: the
    /// load's, or the store's compaction's.
    quiet_after: i64,
    /// The store revision the cache reflects; 0 until it has loaded.
    revision: i64,
    /// The revision the cache last loaded the whole store at.
    loaded: i64,
}

/// The directory of a key, `/registry/roles/` of `/registry/roles/ns/name`: what
/// [`Memo`]s depend on.
fn directory(key: &str) -> &str {
    let end = key
        .match_indices('/')
        .nth(2)
        .map_or(key.len(), |(at, _)| at + 1);
    &key[..end]
}

/// The objects under a prefix as they were at a revision, kept for the pages of a list
/// that began there: kubectl reads lists in pages of 500, and each page from the store
/// cost what the whole list costs from the cache.
pub(crate) struct Snapshot {
    prefix: String,
    pub(crate) revision: i64,
    taken: Instant,
    /// The keys and objects, in key order.
    pub(crate) entries: Vec<(String, Arc<Entry>)>,
}

impl Snapshot {
    /// The entries after `cursor` (a key; empty for the first page).
    pub(crate) fn after(&self, cursor: &str) -> &[(String, Arc<Entry>)] {
        let start = self
            .entries
            .partition_point(|(key, _)| key.as_str() <= cursor);
        &self.entries[start..]
    }
}

/// How many list snapshots are kept, and for how long: a continue token older than
/// that, or whose snapshot was pushed out, is served from the store. A controller
/// manager starting lists some forty resources in pages at once (its informers and the
/// garbage collector's): with 16 kept, later pages of pods and nodes went to the store.
const SNAPSHOTS: usize = 64;
const SNAPSHOT_LIFE: Duration = Duration::from_secs(60);

/// The cache of a server's store.
pub(crate) struct Cache {
    state: RwLock<State>,
    snapshots: Mutex<VecDeque<Arc<Snapshot>>>,
    feed: broadcast::Sender<Arc<Change>>,
    reached: tokio::sync::watch::Sender<i64>,
}

/// A watch served from the cache: the changes after its start, then those that follow.
pub(crate) struct Following {
    pub(crate) replay: Vec<Arc<Change>>,
    pub(crate) feed: broadcast::Receiver<Arc<Change>>,
}

impl Cache {
    /// A cache of `store`, filled and kept current by a task of its own.
    pub(crate) fn start(store: Arc<dyn berth_store::Store>) -> Arc<Self> {
        let cache = Self::empty();
        tokio::spawn(Arc::clone(&cache).follow(store));
        cache
    }

    /// A cache that follows nothing until changes are applied to it.
    fn empty() -> Arc<Self> {
        Arc::new(Self {
            state: RwLock::default(),
            snapshots: Mutex::default(),
            feed: broadcast::channel(FEED_CAPACITY).0,
            reached: tokio::sync::watch::channel(0).0,
        })
    }

    /// A cache fed by hand, and a feeder that makes the object at `key` anew at each
    /// revision: for tests of what reads the cache.
    #[cfg(test)]
    pub(crate) fn by_hand() -> (Arc<Self>, impl Fn(&str, i64)) {
        let cache = Self::empty();
        let feeder = Arc::clone(&cache);
        let feed = move |key: &str, revision: i64| feeder.apply(Change::made(key, revision));
        (cache, feed)
    }

    /// Loads the store, then applies its changes; loads again if the watch breaks.
    async fn follow(self: Arc<Self>, store: Arc<dyn berth_store::Store>) {
        loop {
            if let Err(error) = self.load_and_apply(store.as_ref()).await {
                tracing::warn!(%error, "the watch cache lost the store; reloading");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    async fn load_and_apply(&self, store: &dyn berth_store::Store) -> berth_store::Result<()> {
        let listed = store.list(berth_store::KEY_PREFIX, "", 0, 0).await?;
        let objects = listed
            .items
            .iter()
            .filter_map(|kv| {
                Some((
                    kv.key.clone(),
                    Arc::new(Entry::of(&kv.value, kv.mod_revision)?),
                ))
            })
            .collect();
        {
            let mut state = self.write();
            *state = State {
                objects,
                histories: HashMap::new(),
                quiet_after: listed.revision,
                revision: listed.revision,
                loaded: listed.revision,
            };
        }
        self.reached.send_replace(listed.revision);
        let mut changes = store
            .watch(berth_store::KEY_PREFIX, listed.revision)
            .await?;
        while let Some(event) = changes.recv().await {
            let event = event?;
            let Some(change) = Change::of(&event) else {
                continue;
            };
            self.apply(Arc::new(change));
        }
        Err(berth_store::Error::Backend(
            "the store's watch ended".into(),
        ))
    }

    fn apply(&self, change: Arc<Change>) {
        self.apply_at(change, Instant::now());
    }

    fn apply_at(&self, change: Arc<Change>, now: Instant) {
        let revision = change.revision;
        {
            let mut state = self.write();
            if change.kind == "DELETED" {
                state.objects.remove(&change.key);
            } else {
                state
                    .objects
                    .insert(change.key.clone(), Arc::clone(&change.entry));
            }
            let directory = directory(&change.key);
            if !state.histories.contains_key(directory) {
                let history = History::new(state.quiet_after);
                state.histories.insert(directory.to_string(), history);
            }
            if let Some(history) = state.histories.get_mut(directory) {
                history.push(Arc::clone(&change), now);
            }
            state.revision = revision;
            // Sent under the lock, so a watch that subscribes under it misses nothing.
            let _ = self.feed.send(change);
        }
        self.reached.send_replace(revision);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets the changes up to `revision`, which the store has compacted away: a watch
    /// from before it is told its revision is gone, as it would be by the store. The
    /// changes of resources that changed little since are let go of too.
    pub(crate) fn forget_through(&self, revision: i64) {
        let now = Instant::now();
        let mut state = self.write();
        state.quiet_after = state.quiet_after.max(revision);
        for history in state.histories.values_mut() {
            history.forget_through(revision);
            history.trim(now);
        }
    }

    /// Waits until the cache reflects at least `revision`; false if it does not within
    /// a few seconds.
    pub(crate) async fn caught_up(&self, revision: i64) -> bool {
        let mut reached = self.reached.subscribe();
        tokio::time::timeout(CATCH_UP, reached.wait_for(|r| *r >= revision))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The latest revision any of `directories` changed at (or the cache loaded at):
    /// what is computed from them stays right while this stays the same.
    pub(crate) fn stamp(&self, directories: &[&str]) -> i64 {
        let state = self.read();
        directories
            .iter()
            .filter_map(|d| state.histories.get(*d).map(|h| h.changed))
            .fold(state.loaded, i64::max)
    }

    /// The object at `key`, if the cache holds one.
    pub(crate) fn get(&self, key: &str) -> Option<Arc<Entry>> {
        self.read().objects.get(key).map(Arc::clone)
    }

    /// The object at `key` read as `K`, if the cache holds one of that shape.
    pub(crate) fn typed<K: DeserializeOwned>(&self, key: &str) -> Option<K> {
        self.get(key)?.typed()
    }

    /// The objects under `prefix` read as `K`, those of another shape left out.
    pub(crate) fn typed_list<K: DeserializeOwned>(&self, prefix: &str) -> Vec<K> {
        let (entries, _) = self.list(prefix);
        entries.iter().filter_map(|entry| entry.typed()).collect()
    }

    /// The objects under `prefix` and the revision they are at.
    pub(crate) fn list(&self, prefix: &str) -> (Vec<Arc<Entry>>, i64) {
        let state = self.read();
        let items = under(&state.objects, prefix)
            .map(|(_, entry)| Arc::clone(entry))
            .collect();
        (items, state.revision)
    }

    /// The objects under `prefix` now: the snapshot already kept at this revision, if
    /// any, or a new one, which [`Cache::keep`] keeps for the pages that follow.
    pub(crate) fn snapshot(&self, prefix: &str) -> Arc<Snapshot> {
        let state = self.read();
        if let Some(kept) = self.snapshot_at(prefix, state.revision) {
            return kept;
        }
        let entries = under(&state.objects, prefix)
            .map(|(key, entry)| (key.clone(), Arc::clone(entry)))
            .collect();
        Arc::new(Snapshot {
            prefix: prefix.to_string(),
            revision: state.revision,
            taken: Instant::now(),
            entries,
        })
    }

    /// Keeps `snapshot` for the pages of its list still to come.
    pub(crate) fn keep(&self, snapshot: &Arc<Snapshot>) {
        let mut kept = self.snapshots();
        if kept.iter().any(|s| Arc::ptr_eq(s, snapshot)) {
            return;
        }
        kept.retain(|s| s.taken.elapsed() < SNAPSHOT_LIFE);
        if kept.len() == SNAPSHOTS {
            kept.pop_front();
        }
        kept.push_back(Arc::clone(snapshot));
    }

    /// Lets go of `snapshot` once its list's last page is served: a snapshot holds on to
    /// every object as it was, and relists of 150,000 pods kept for a minute each held
    /// gigabytes.
    pub(crate) fn release(&self, snapshot: &Arc<Snapshot>) {
        self.snapshots().retain(|s| !Arc::ptr_eq(s, snapshot));
    }

    fn snapshots(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Snapshot>>> {
        self.snapshots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The snapshot of `prefix` at `revision`, if one is kept.
    pub(crate) fn snapshot_at(&self, prefix: &str, revision: i64) -> Option<Arc<Snapshot>> {
        self.snapshots()
            .iter()
            .find(|s| {
                s.prefix == prefix && s.revision == revision && s.taken.elapsed() < SNAPSHOT_LIFE
            })
            .cloned()
    }

    /// A watch of `prefix` after `revision` (the objects now, as ADDED, when 0), or None
    /// when the window no longer reaches back that far.
    pub(crate) fn follow_from(&self, prefix: &str, revision: i64) -> Option<(Following, i64)> {
        let state = self.read();
        if state.revision == 0 {
            return None;
        }
        let feed = self.feed.subscribe();
        let replay = if revision == 0 {
            under(&state.objects, prefix)
                .map(|(key, entry)| {
                    Arc::new(Change {
                        kind: "ADDED",
                        key: key.clone(),
                        entry: Arc::clone(entry),
                        revision: state.revision,
                    })
                })
                .collect()
        } else {
            // The histories of the resources under `prefix`: one, unless it is shorter
            // than a resource's directory.
            let directory = directory(prefix);
            let histories: Vec<&History> = state
                .histories
                .iter()
                .filter(|(d, _)| d.starts_with(directory))
                .map(|(_, history)| history)
                .collect();
            let complete_after = histories
                .iter()
                .map(|h| h.complete_after)
                .fold(state.quiet_after, i64::max);
            if revision < complete_after || revision > state.revision {
                return None;
            }
            let mut replay: Vec<Arc<Change>> = histories
                .iter()
                .flat_map(|h| h.changes.iter().map(|(_, change)| change))
                .filter(|c| c.revision > revision && c.key.starts_with(prefix))
                .cloned()
                .collect();
            if histories.len() > 1 {
                replay.sort_by_key(|c| c.revision);
            }
            replay
        };
        Some((Following { replay, feed }, state.revision))
    }
}

/// How many values a [`Memo`] keeps before it starts afresh.
const MEMO_CAPACITY: usize = 4_096;

/// Values computed from the objects of some directories of the cache, kept until one of
/// those changes: RBAC's rules for a user, say, wanted at every request but changing
/// only when a role or binding does.
pub(crate) struct Memo<K, V> {
    directories: &'static [&'static str],
    /// The stamp the values were computed at, and the values.
    values: Mutex<(i64, HashMap<K, V>)>,
}

impl<K: Eq + Hash, V: Clone> Memo<K, V> {
    /// A memo of values computed from the objects under `directories`.
    pub(crate) fn new(directories: &'static [&'static str]) -> Self {
        Self {
            directories,
            values: Mutex::default(),
        }
    }

    /// The value for `key`: the one kept if nothing it depends on changed since,
    /// otherwise `compute`'s, kept for next time.
    pub(crate) fn get_or(&self, cache: &Cache, key: K, compute: impl FnOnce() -> V) -> V {
        // Stamped before computing: a change while it computes makes the next call
        // compute again rather than keep a value that may have missed it.
        let stamp = cache.stamp(self.directories);
        {
            let values = self.lock();
            if values.0 == stamp
                && let Some(value) = values.1.get(&key)
            {
                return value.clone();
            }
        }
        let value = compute();
        let mut values = self.lock();
        if values.0 < stamp || values.1.len() >= MEMO_CAPACITY {
            *values = (stamp, HashMap::new());
        }
        if values.0 == stamp {
            values.1.insert(key, value.clone());
        }
        value
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (i64, HashMap<K, V>)> {
        self.values
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn under<'s>(
    objects: &'s BTreeMap<String, Arc<Entry>>,
    prefix: &str,
) -> impl Iterator<Item = (&'s String, &'s Arc<Entry>)> {
    objects
        .range(prefix.to_string()..)
        .take_while(move |(key, _)| key.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{Cache, Change, FRESH, HISTORY_MAX, HISTORY_MIN, directory};

    #[test]
    fn a_resources_history_is_its_own_whatever_others_change() {
        let (cache, feed) = Cache::by_hand();
        feed("/registry/pods/a/one", 1);
        feed("/registry/pods/a/one", 2);
        let leases = HISTORY_MAX as i64 + 10;
        for revision in 3..3 + leases {
            feed("/registry/leases/kube-node-lease/node", revision);
        }
        feed("/registry/pods/a/one", 3 + leases);
        let (pods, _) = cache.follow_from("/registry/pods/", 1).expect("kept");
        let revisions: Vec<i64> = pods.replay.iter().map(|c| c.revision).collect();
        assert_eq!(revisions, [2, 3 + leases]);
        // Ten Lease changes went: their watches from before them go to the store.
        assert!(cache.follow_from("/registry/leases/", 11).is_none());
        let (all, _) = cache.follow_from("/registry/", 12).expect("kept");
        assert_eq!(all.replay.len(), HISTORY_MAX + 1);
        assert!(all.replay.is_sorted_by_key(|c| c.revision));
    }

    #[test]
    fn changes_older_than_fresh_go_once_more_than_the_fewest_are_kept() {
        let (cache, _) = Cache::by_hand();
        let start = Instant::now();
        let old = HISTORY_MIN as i64 + 1;
        for revision in 1..=old {
            cache.apply_at(Change::made("/registry/pods/a/one", revision), start);
        }
        let later = start + FRESH + Duration::from_secs(1);
        cache.apply_at(Change::made("/registry/pods/a/one", old + 1), later);
        assert!(cache.follow_from("/registry/pods/", 1).is_none());
        let (kept, _) = cache.follow_from("/registry/pods/", 2).expect("kept");
        assert_eq!(kept.replay.len(), HISTORY_MIN);
    }

    #[test]
    fn a_snapshot_is_kept_while_its_pages_are_read_and_let_go_after() {
        let (cache, feed) = Cache::by_hand();
        feed("/registry/pods/a/one", 1);
        feed("/registry/pods/a/two", 2);
        let snapshot = cache.snapshot("/registry/pods/");
        assert_eq!(snapshot.entries.len(), 2);
        assert!(cache.snapshot_at("/registry/pods/", 2).is_none());
        cache.keep(&snapshot);
        feed("/registry/pods/a/three", 3);
        let kept = cache.snapshot_at("/registry/pods/", 2).expect("kept");
        assert_eq!(kept.after("/registry/pods/a/one").len(), 1);
        cache.release(&kept);
        assert!(cache.snapshot_at("/registry/pods/", 2).is_none());
    }

    #[test]
    fn a_keys_directory_is_its_resources() {
        assert_eq!(directory("/registry/roles/ns/name"), "/registry/roles/");
        assert_eq!(
            directory("/registry/clusterroles/admin"),
            "/registry/clusterroles/"
        );
        assert_eq!(directory("/registry/short"), "/registry/short");
    }
}
