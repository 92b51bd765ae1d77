//! The shared caches, as kube-controller-manager's shared informers: one watch and one
//! cache per kind for the whole controller manager, however many controllers read it.
//! Eight controllers watch pods; with a cache each, every pod change was sent, parsed
//! and kept eight times — most of the server's and the controllers' work and memory at
//! scale.
//!
//! Each cache also keeps an index from owner uid to the objects whose ownerReferences
//! name it, so "the pods of this ReplicaSet" is a lookup rather than a pass over every
//! pod, and tells its subscribers (the runners' queues) of each object that changed.

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use futures_util::StreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

/// A kind the controllers can cache.
pub trait Cached:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static
{
}

impl<K> Cached for K where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// What a cache tells its subscribers.
pub(crate) enum Changed<'a, K> {
    /// This object was added, changed or deleted (the cache already shows it).
    Object(&'a K),
    /// The cache was listed anew (its watch restarted): anything may have changed,
    /// deletions included, which no object stands for.
    Relisted,
}

impl<K> Clone for Changed<'_, K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K> Copy for Changed<'_, K> {}

/// Called with each change of a kind; returns false once it no longer wants any (its
/// runner is gone), and is then dropped.
pub(crate) type Subscriber<K> = Box<dyn Fn(Changed<'_, K>) -> bool + Send + Sync>;

/// One kind's shared cache: the reflector's store, read as kube-runtime's `Store` (it
/// dereferences to one), and its indexes of objects by owner and by namespace.
pub struct Cache<K: Cached> {
    store: Store<K>,
    indexes: Arc<RwLock<Indexes<K>>>,
}

impl<K: Cached> Clone for Cache<K> {
    fn clone(&self) -> Self {
        Cache {
            store: self.store.clone(),
            indexes: self.indexes.clone(),
        }
    }
}

impl<K: Cached> Deref for Cache<K> {
    type Target = Store<K>;

    fn deref(&self) -> &Store<K> {
        &self.store
    }
}

impl<K: Cached> Cache<K> {
    /// The references of the objects `chosen` picks: what a controller's mapping of a
    /// watched change returns (the DaemonSets when a node changes, the quotas of a
    /// pod's namespace).
    pub fn keys(&self, chosen: impl Fn(&K) -> bool) -> Vec<ObjectRef<K>> {
        let state = self.store.state();
        state
            .iter()
            .filter(|o| chosen(o))
            .map(|o| key_of(o.as_ref()))
            .collect()
    }

    /// A mapping for `Controller::watches`: a changed object to the objects of this
    /// cache in its namespace (a namespace's quotas, say, when a pod there changes).
    pub fn same_namespace<C: Resource>(&self) -> impl Fn(&C) -> Vec<ObjectRef<K>> + use<K, C> {
        let cache = self.clone();
        move |changed: &C| cache.keys_in(changed.namespace().as_deref(), |_| true)
    }

    /// The references of the objects in `namespace` that `chosen` picks (the Services
    /// of a pod's namespace that select it).
    pub fn keys_in(
        &self,
        namespace: Option<&str>,
        chosen: impl Fn(&K) -> bool,
    ) -> Vec<ObjectRef<K>> {
        let objects = self.in_namespace(namespace);
        objects
            .iter()
            .filter(|o| chosen(o))
            .map(|o| key_of(o.as_ref()))
            .collect()
    }

    /// The objects in `namespace` (None: the cluster-scoped ones), from the index: a
    /// Service's pods are looked for among its namespace's, not all the cluster's.
    pub fn in_namespace(&self, namespace: Option<&str>) -> Vec<Arc<K>> {
        let indexes = self.indexes.read().unwrap_or_else(PoisonError::into_inner);
        let objects = indexes.namespaces.get(namespace.unwrap_or_default());
        objects
            .into_iter()
            .flat_map(|o| o.values().cloned())
            .collect()
    }

    /// The objects whose ownerReferences name the owner with `uid`, controller or not.
    pub fn dependents(&self, uid: &str) -> Vec<Arc<K>> {
        let indexes = self.indexes.read().unwrap_or_else(PoisonError::into_inner);
        let Some(refs) = indexes.dependents.get(uid) else {
            return Vec::new();
        };
        refs.iter().filter_map(|r| self.store.get(r)).collect()
    }

    /// The objects `owner` controls: their controller ownerReference names its uid.
    pub fn controlled_by<O: Resource>(&self, owner: &O) -> Vec<Arc<K>> {
        let Some(uid) = owner.uid() else {
            return Vec::new();
        };
        let mut controlled = self.dependents(&uid);
        controlled.retain(|object| {
            object
                .owner_references()
                .iter()
                .any(|r| r.controller == Some(true) && r.uid == uid)
        });
        controlled
    }
}

/// The cache's indexes, kept by its feeder: owner uid → the objects naming it, and
/// namespace ("" for cluster-scoped objects) → the objects in it by name. The latter
/// holds the store's own `Arc`s, kept in step with it, rather than keys to look up
/// there: a key is 96 bytes before its strings, once per object of the cluster.
struct Indexes<K: Cached> {
    dependents: HashMap<String, HashSet<ObjectRef<K>>>,
    namespaces: HashMap<String, HashMap<Box<str>, Arc<K>>>,
}

impl<K: Cached> Indexes<K> {
    /// Moves `key` from the entries of `before` to those of `after`, the object now in
    /// the store (None: gone).
    fn update(&mut self, key: &ObjectRef<K>, before: Option<&K>, after: Option<Arc<K>>) {
        let uids = |object: Option<&K>| -> Vec<String> {
            object
                .map(|o| o.owner_references().iter().map(|r| r.uid.clone()).collect())
                .unwrap_or_default()
        };
        let (owners_before, owners_after) = (uids(before), uids(after.as_deref()));
        for uid in owners_before
            .iter()
            .filter(|uid| !owners_after.contains(uid))
        {
            remove_from(&mut self.dependents, uid, |keys| {
                keys.remove(key);
                keys.is_empty()
            });
        }
        for uid in owners_after {
            self.dependents.entry(uid).or_default().insert(key.clone());
        }
        let namespace = key.namespace.as_deref().unwrap_or_default();
        match after {
            Some(object) => {
                let objects = match self.namespaces.get_mut(namespace) {
                    Some(objects) => objects,
                    None => self.namespaces.entry(namespace.to_string()).or_default(),
                };
                match objects.get_mut(key.name.as_str()) {
                    Some(held) => *held = object,
                    None => {
                        objects.insert(key.name.as_str().into(), object);
                    }
                }
            }
            None => remove_from(&mut self.namespaces, namespace, |objects| {
                objects.remove(key.name.as_str());
                objects.is_empty()
            }),
        }
    }

    /// The index of everything `store` holds, made anew.
    fn rebuild(&mut self, store: &Store<K>) {
        self.dependents.clear();
        self.namespaces.clear();
        for object in store.state() {
            self.update(&key_of(object.as_ref()), None, Some(object));
        }
    }
}

/// Takes something out of the entry `name` of `index` with `take`, which says whether
/// the entry is left empty; an empty entry goes.
fn remove_from<C>(index: &mut HashMap<String, C>, name: &str, take: impl FnOnce(&mut C) -> bool) {
    if index.get_mut(name).is_some_and(take) {
        index.remove(name);
    }
}

/// The reference naming `object`, without the extras (uid, version) that keys need
/// not keep.
pub(crate) fn key_of<K: Cached>(object: &K) -> ObjectRef<K> {
    key_in(&object.name_any(), object.namespace())
}

/// The reference to the object named `name` in `namespace` (none: cluster-scoped).
pub(crate) fn key_in<K: Cached>(name: &str, namespace: Option<String>) -> ObjectRef<K> {
    let key = ObjectRef::new(name);
    match namespace {
        Some(namespace) => key.within(&namespace),
        None => key,
    }
}

/// What changed of one kind since it was last taken (see [`Informers::changed_keys`]).
pub struct ChangedKeys<K: Cached> {
    set: Arc<Mutex<KeySet<K>>>,
}

struct KeySet<K: Cached> {
    keys: HashSet<ObjectRef<K>>,
    relisted: bool,
}

/// The changes taken at once.
pub enum Changes<K: Cached> {
    /// The objects of these keys were added, changed or deleted.
    Keys(Vec<ObjectRef<K>>),
    /// Anything may have changed: the cache was listed anew (its watch restarted), or
    /// this is the first take.
    Relisted,
}

impl<K: Cached> ChangedKeys<K> {
    /// What changed since the last take, forgotten here.
    pub fn take(&self) -> Changes<K> {
        let mut set = self.set.lock().unwrap_or_else(PoisonError::into_inner);
        let keys = std::mem::take(&mut set.keys);
        if std::mem::take(&mut set.relisted) {
            Changes::Relisted
        } else {
            Changes::Keys(keys.into_iter().collect())
        }
    }
}

/// One kind's cache, its change count (which the whole-pass controllers wait on) and
/// its subscribers.
struct Informer<K: Cached> {
    cache: Cache<K>,
    changes: watch::Receiver<u64>,
    subscribers: Arc<Mutex<Vec<Subscriber<K>>>>,
}

impl<K: Cached> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Informer {
            cache: self.cache.clone(),
            changes: self.changes.clone(),
            subscribers: self.subscribers.clone(),
        }
    }
}

/// The controller manager's caches, one per kind, each started by its first reader and
/// kept current by a task of its own until the last handle is dropped (leadership lost
/// drops them with the controllers).
#[derive(Clone)]
pub struct Informers {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    kinds: Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
    feeders: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let feeders = self
            .feeders
            .get_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        for feeder in feeders {
            feeder.abort();
        }
    }
}

impl Informers {
    /// Caches over `client`, none started yet.
    pub fn new(client: Client) -> Self {
        Informers {
            inner: Arc::new(Inner {
                client,
                kinds: Mutex::new(HashMap::new()),
                feeders: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The shared cache of every object of kind `K`, once its initial list is in.
    pub async fn cache<K: Cached>(&self) -> Cache<K> {
        let cache = self.informer::<K>().cache;
        let _ = cache.store.wait_until_ready().await;
        cache
    }

    /// A receiver of the kind's change count, marked seen: it changes on each change of
    /// the kind. For controllers that still run whole passes.
    pub fn changes<K: Cached>(&self) -> watch::Receiver<u64> {
        let mut changes = self.informer::<K>().changes;
        changes.mark_unchanged();
        changes
    }

    /// The keys of the kind's objects changed from now on, for a reader that keeps
    /// state of its own from the cache (the scheduler's nodes and their pods) and
    /// brings it up to date with what changed rather than passing over every object.
    pub fn changed_keys<K: Cached>(&self) -> ChangedKeys<K> {
        let changed = ChangedKeys {
            set: Arc::new(Mutex::new(KeySet {
                keys: HashSet::new(),
                relisted: true,
            })),
        };
        let set = Arc::downgrade(&changed.set);
        self.subscribe::<K>(Box::new(move |change| {
            let Some(set) = set.upgrade() else {
                return false;
            };
            let mut set = set.lock().unwrap_or_else(PoisonError::into_inner);
            match change {
                Changed::Object(object) => {
                    set.keys.insert(key_of(object));
                }
                Changed::Relisted => set.relisted = true,
            }
            true
        }));
        changed
    }

    /// Has `subscriber` told of each change of the kind from now on.
    pub(crate) fn subscribe<K: Cached>(&self, subscriber: Subscriber<K>) {
        self.informer::<K>()
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(subscriber);
    }

    /// The kind's informer, started on first use.
    fn informer<K: Cached>(&self) -> Informer<K> {
        let mut kinds = self
            .inner
            .kinds
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let kind = TypeId::of::<K>();
        if let Some(informer) = kinds
            .get(&kind)
            .and_then(|e| e.downcast_ref::<Informer<K>>())
        {
            return informer.clone();
        }
        let informer = self.start::<K>();
        kinds.insert(kind, Box::new(informer.clone()));
        informer
    }

    fn start<K: Cached>(&self) -> Informer<K> {
        let (store, writer) = reflector::store::<K>();
        let (counter, changes) = watch::channel(0u64);
        let informer = Informer {
            cache: Cache {
                store,
                indexes: Arc::new(RwLock::new(Indexes {
                    dependents: HashMap::new(),
                    namespaces: HashMap::new(),
                })),
            },
            changes,
            subscribers: Arc::new(Mutex::new(Vec::new())),
        };
        let api = Api::<K>::all(self.inner.client.clone());
        let events = watcher(api, watcher::Config::default())
            .modify(slim::<K>)
            .default_backoff();
        let feeder = Feeder {
            informer: informer.clone(),
            writer,
            counter,
        };
        let task = tokio::spawn(feeder.run(events));
        self.inner
            .feeders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(task.abort_handle());
        informer
    }
}

/// Drops what no controller reads of an object before it is cached: managedFields, the
/// server's record of who set which field (often the larger half of an object). Kinds
/// cached by the thousand have a type of their own that keeps only what controllers
/// read (berth-controllers' `CachedPod`).
fn slim<K: Cached>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// Keeps one kind's cache and index current from its watch, and tells of each change.
struct Feeder<K: Cached> {
    informer: Informer<K>,
    writer: reflector::store::Writer<K>,
    counter: watch::Sender<u64>,
}

impl<K: Cached> Feeder<K> {
    async fn run(
        mut self,
        events: impl futures_util::Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
    ) {
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => self.apply(&event),
                Err(error) => tracing::warn!(kind = %K::kind(&()), %error, "watch failed"),
            }
        }
    }

    fn apply(&mut self, event: &watcher::Event<K>) {
        let (changed, before) = match event {
            watcher::Event::Apply(object) | watcher::Event::Delete(object) => {
                let key = key_of(object);
                let before = self.informer.cache.store.get(&key);
                self.writer.apply_watcher_event(event);
                let after = match event {
                    watcher::Event::Apply(_) => self.informer.cache.store.get(&key),
                    _ => None,
                };
                self.index().update(&key, before.as_deref(), after);
                (Changed::Object(object), before)
            }
            watcher::Event::Init | watcher::Event::InitApply(_) => {
                // Buffered by the writer until the list is whole.
                self.writer.apply_watcher_event(event);
                return;
            }
            watcher::Event::InitDone => {
                self.writer.apply_watcher_event(event);
                self.index().rebuild(&self.informer.cache.store);
                (Changed::Relisted, None)
            }
        };
        // Subscribers hear of the object as it was too: a pod whose labels changed may
        // have left a Service's selection, one whose owner changed its old owner.
        let before = before.as_deref().map(Changed::Object);
        self.informer
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|subscriber| subscriber(changed) && before.is_none_or(subscriber));
        self.counter
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    fn index(&self) -> std::sync::RwLockWriteGuard<'_, Indexes<K>> {
        self.informer
            .cache
            .indexes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
