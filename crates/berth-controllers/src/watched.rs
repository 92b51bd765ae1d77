//! What every controller here is built on: caches of the kinds it watches, kept current
//! by tasks of their own, and a wake-up on each change. A controller then runs passes —
//! read the caches, act, wait for the next change (or a retry period) — so each pass is
//! idempotent and remembers nothing of the last, as kube-runtime's reconcilers.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

/// The caches a controller reads and the signal of their changes; dropping it stops
/// the watches (leadership lost aborts the controller, and this with it).
#[derive(Default)]
pub(crate) struct Watched {
    changed: Arc<Notify>,
    feeders: Vec<tokio::task::AbortHandle>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        for feeder in &self.feeders {
            feeder.abort();
        }
    }
}

impl Watched {
    /// A cache of everything `api` lists, filled once its initial list is in. Deletions
    /// wake the controller too: removing an object is as much a change to act on.
    pub(crate) async fn cache<K>(&mut self, api: Api<K>) -> Store<K>
    where
        K: kube::Resource<DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
    {
        let (store, writer) = reflector::store::<K>();
        let changes = reflector::reflector(writer, watcher(api, watcher::Config::default()))
            .touched_objects();
        let changed = Arc::clone(&self.changed);
        let feeder = tokio::spawn(async move {
            let mut changes = std::pin::pin!(changes);
            while changes.next().await.is_some() {
                changed.notify_one();
            }
        });
        self.feeders.push(feeder.abort_handle());
        let _ = store.wait_until_ready().await;
        store
    }

    /// Waits for the next change, or `retry` at most; false once every watch has ended.
    pub(crate) async fn next_change(&self, retry: Duration) -> bool {
        let _ = tokio::time::timeout(retry, self.changed.notified()).await;
        !self
            .feeders
            .iter()
            .all(tokio::task::AbortHandle::is_finished)
    }
}
