//! What every controller here is built on: caches of the kinds it watches and a wake-up
//! on each change. A controller runs passes — read the caches, act, wait for the next
//! change (or a retry period) — so each pass is idempotent and remembers nothing of the
//! last, as kube-runtime's reconcilers.
//!
//! The caches are shared, as kube-controller-manager's shared informers: one watch and
//! one cache per kind for the whole controller manager, however many controllers read
//! it. Eight controllers watch pods; with a cache each, every pod change was sent,
//! parsed and kept eight times — most of the server's and the controllers' work and
//! memory at scale.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

/// A kind the controllers can cache.
pub trait Cached:
    kube::Resource<DynamicType = ()>
    + Clone
    + DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> Cached for K where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// One kind's shared cache and the count of its changes, which readers wait on.
struct Informer<K: Cached> {
    store: Store<K>,
    changes: watch::Receiver<u64>,
}

impl<K: Cached> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Informer {
            store: self.store.clone(),
            changes: self.changes.clone(),
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

    /// The kind's cache, started on first use.
    fn informer<K: Cached>(&self) -> Informer<K> {
        let mut kinds = self
            .inner
            .kinds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
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
        let api = Api::<K>::all(self.inner.client.clone());
        // managedFields are the server's record of who set which field; no controller
        // reads them, and they are often the larger half of an object.
        let events = watcher(api, watcher::Config::default())
            .modify(|object: &mut K| object.meta_mut().managed_fields = None);
        let stream = reflector::reflector(writer, events).touched_objects();
        let feeder = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while stream.next().await.is_some() {
                counter.send_modify(|count| *count = count.wrapping_add(1));
            }
        });
        self.inner
            .feeders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(feeder.abort_handle());
        Informer { store, changes }
    }
}

/// What one controller reads: its kinds' shared caches, and their changes to wait on.
pub(crate) struct Watched {
    informers: Informers,
    changes: Vec<watch::Receiver<u64>>,
}

impl Watched {
    pub(crate) fn new(informers: &Informers) -> Self {
        Watched {
            informers: informers.clone(),
            changes: Vec::new(),
        }
    }

    /// The shared cache of every object of kind `K`, once its initial list is in.
    /// Deletions wake the controller too: removing an object is as much a change to act
    /// on.
    pub(crate) async fn cache<K: Cached>(&mut self) -> Store<K> {
        let mut informer = self.informers.informer::<K>();
        informer.changes.mark_unchanged();
        self.changes.push(informer.changes);
        let _ = informer.store.wait_until_ready().await;
        informer.store
    }

    /// Waits for the next change of any of the controller's kinds, or `retry` at most;
    /// false once the caches have stopped.
    pub(crate) async fn next_change(&mut self, retry: Duration) -> bool {
        if self.changes.is_empty() {
            tokio::time::sleep(retry).await;
            return true;
        }
        let waits = self.changes.iter_mut().map(|c| Box::pin(c.changed()));
        !matches!(
            tokio::time::timeout(retry, futures_util::future::select_all(waits)).await,
            Ok((Err(_), _, _))
        )
    }
}
