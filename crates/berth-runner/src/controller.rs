//! A controller as kube-runtime's `Controller` runs one: a reconcile function called
//! with each object of its kind that may need work — because it changed, because an
//! object it owns or watches changed, because the last call asked to be called again,
//! or because the last call failed (then after an exponential back-off). The queue
//! between the changes and the calls de-duplicates them, never hands one object to two
//! workers at once, and lets a bounded number of calls run at the same time.
//!
//! A reconcile function is idempotent and works from the caches, so a call that comes
//! twice, late or after a restart does no harm.

use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Weak};
use std::time::Duration;

use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use crate::informers::{Cache, Cached, Changed, Informers, key_in, key_of};
use crate::queue::{Outcome, WorkQueue};

/// What a reconcile call asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until something changes.
    AwaitChange,
    /// A call again after this long, change or not: for what time alone changes
    /// (a pod becoming available after minReadySeconds, a deadline).
    RequeueAfter(Duration),
}

/// How many calls of one controller run at once unless it says otherwise:
/// kube-controller-manager's `--concurrent-*-syncs` default.
const CONCURRENCY: usize = 5;

/// One controller: its kind's cache, the queue of objects to look at, and how many
/// calls run at once.
pub struct Controller<K: Cached> {
    informers: Informers,
    cache: Cache<K>,
    queue: Arc<WorkQueue<ObjectRef<K>>>,
    concurrency: usize,
}

impl<K: Cached> Controller<K> {
    /// A controller of the kind `K`, called for each object of it that changes.
    pub async fn new(informers: &Informers) -> Self {
        let controller = Controller {
            informers: informers.clone(),
            cache: informers.cache::<K>().await,
            queue: Arc::new(WorkQueue::default()),
            concurrency: CONCURRENCY,
        };
        controller.on_change(controller.cache.clone(), |object: &K| vec![key_of(object)]);
        controller
    }

    /// Also calls it for the owner named by the controller ownerReference of each
    /// object of kind `C` that changes (a ReplicaSet when one of its pods does).
    #[must_use]
    pub async fn owns<C: Cached>(self) -> Self {
        let owned = self.informers.cache::<C>().await;
        self.on_change(owned, |object: &C| {
            owner_of::<K, C>(object).into_iter().collect()
        });
        self
    }

    /// Also calls it for the objects `map` names when an object of kind `C` changes (the
    /// Services that select a pod, say) — named by the object as it was and as it is.
    #[must_use]
    pub async fn watches<C: Cached>(
        self,
        map: impl Fn(&C) -> Vec<ObjectRef<K>> + Send + Sync + 'static,
    ) -> Self {
        let watched = self.informers.cache::<C>().await;
        self.on_change(watched, map);
        self
    }

    /// Lets `concurrency` calls run at once (at least one).
    #[must_use]
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// The cache of the controller's own kind.
    pub fn cache(&self) -> &Cache<K> {
        &self.cache
    }

    /// Queues the keys `keys` gives for each change of `C`, as long as the queue lives;
    /// and for every object of `C` now, and again whenever `C`'s cache is listed anew
    /// (with every object of the controller's kind then: what vanished meanwhile names
    /// no one).
    fn on_change<C: Cached>(
        &self,
        cache: Cache<C>,
        keys: impl Fn(&C) -> Vec<ObjectRef<K>> + Send + Sync + 'static,
    ) {
        let queue: Weak<WorkQueue<ObjectRef<K>>> = Arc::downgrade(&self.queue);
        let own = self.cache.clone();
        let queue_all = move |queue: &WorkQueue<ObjectRef<K>>, keys: &dyn Fn(&C) -> Vec<_>| {
            for object in cache.state() {
                keys(&object).into_iter().for_each(|key| queue.add(key));
            }
            for object in own.state() {
                queue.add(key_of(object.as_ref()));
            }
        };
        queue_all(&self.queue, &keys);
        self.informers.subscribe::<C>(Box::new(move |changed| {
            let Some(queue) = queue.upgrade() else {
                return false;
            };
            match changed {
                Changed::Object(object) => keys(object).into_iter().for_each(|key| queue.add(key)),
                Changed::Relisted => queue_all(&queue, &keys),
            }
            true
        }));
    }

    /// Calls `reconcile` for every object now and for each one that needs it from then
    /// on, until the future is dropped. Objects gone from the cache by their turn are
    /// skipped: what their deletion leaves behind is the garbage collector's.
    pub async fn run<F, Fut>(self, reconcile: F)
    where
        F: Fn(Arc<K>) -> Fut,
        Fut: Future<Output = Result<Action, kube::Error>>,
    {
        let nothing = |_| std::future::ready(Ok(Action::AwaitChange));
        self.run_or_gone(reconcile, nothing).await;
    }

    /// As `run`, with `gone` called for objects no longer in the cache: for what a
    /// deletion leaves that no ownerReference ties to it (a Service's Endpoints).
    pub async fn run_or_gone<F, Fut, G, GoneFut>(self, reconcile: F, gone: G)
    where
        F: Fn(Arc<K>) -> Fut,
        Fut: Future<Output = Result<Action, kube::Error>>,
        G: Fn(ObjectRef<K>) -> GoneFut,
        GoneFut: Future<Output = Result<Action, kube::Error>>,
    {
        let (cache, reconcile, gone) = (&self.cache, &reconcile, &gone);
        let call = move |key: ObjectRef<K>| async move {
            match cache.get(&key) {
                Some(object) => reconcile(object).await,
                None => gone(key).await,
            }
        };
        let kind = K::kind(&());
        let describe = |key: &ObjectRef<K>| {
            let namespace = key.namespace.as_deref().unwrap_or_default();
            format!("{kind} {namespace}/{}", key.name)
        };
        work(&self.queue, self.concurrency, call, describe).await;
    }
}

/// A queue of keys that are not objects of one kind (the garbage collector's uids, of
/// objects of every kind) with the runner's workers: the same de-duplication, back-off,
/// requeue-after and bounded concurrency as a [`Controller`]'s.
pub struct Queue<T> {
    queue: Arc<WorkQueue<T>>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            queue: Arc::clone(&self.queue),
        }
    }
}

impl<T: Hash + Eq + Clone + Display> Default for Queue<T> {
    fn default() -> Self {
        Queue {
            queue: Arc::new(WorkQueue::default()),
        }
    }
}

impl<T: Hash + Eq + Clone + Display> Queue<T> {
    /// Queues `key` unless it already waits.
    pub fn add(&self, key: T) {
        self.queue.add(key);
    }

    /// Calls `reconcile` with each key queued, `concurrency` calls at once, until the
    /// future is dropped; a failure is logged with the key and retried after back-off.
    pub async fn run<F, Fut>(&self, concurrency: usize, reconcile: F)
    where
        F: Fn(T) -> Fut,
        Fut: Future<Output = Result<Action, kube::Error>>,
    {
        work(&self.queue, concurrency.max(1), reconcile, T::to_string).await;
    }
}

/// Hands `queue`'s keys to `concurrency` workers calling `call`, and puts each key back
/// as its call's outcome says; `describe` names a key whose call failed.
async fn work<T, F, Fut>(
    queue: &WorkQueue<T>,
    concurrency: usize,
    call: F,
    describe: impl Fn(&T) -> String,
) where
    T: Hash + Eq + Clone,
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<Action, kube::Error>>,
{
    let worker = || async {
        loop {
            let key = queue.next().await;
            let outcome = match call(key.clone()).await {
                Ok(Action::AwaitChange) => Outcome::Done,
                Ok(Action::RequeueAfter(delay)) => Outcome::RequeueAfter(delay),
                Err(error) => {
                    report(&describe(&key), &error);
                    Outcome::Failed
                }
            };
            queue.done(&key, outcome);
        }
    };
    futures_util::future::join_all((0..concurrency).map(|_| worker())).await;
}

/// Logs a failed call: at warn with the object named, except a conflict, which only
/// says the cache was a step behind the server (the retry reads it anew).
fn report(object: &str, error: &kube::Error) {
    match error {
        kube::Error::Api(status) if status.code == 409 => {
            tracing::debug!(object, %error, "reconcile conflicted; retrying");
        }
        _ => tracing::warn!(object, %error, "reconcile failed; retrying"),
    }
}

/// The object of kind `K` that controls `object`, by its controller ownerReference.
fn owner_of<K: Cached, C: Resource>(object: &C) -> Option<ObjectRef<K>> {
    let owner = object.owner_references().iter().find(|r| {
        r.controller == Some(true) && r.kind == K::kind(&()) && r.api_version == K::api_version(&())
    })?;
    Some(key_in(&owner.name, object.namespace()))
}
