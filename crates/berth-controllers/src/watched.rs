//! What the controllers not yet on the runner (berth-runner's `Controller`) are built
//! on: the shared caches of the kinds they watch and a wake-up on each change. Such a
//! controller runs passes — read the caches, act, wait for the next change (or a retry
//! period) — each idempotent and remembering nothing of the last.

use std::time::Duration;

use berth_runner::{Cache, Cached, Informers};
use tokio::sync::watch;

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
    pub(crate) async fn cache<K: Cached>(&mut self) -> Cache<K> {
        self.changes.push(self.informers.changes::<K>());
        self.informers.cache::<K>().await
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
