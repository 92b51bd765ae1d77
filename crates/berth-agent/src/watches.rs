//! Watches of the configMaps, secrets and claims the node's pods use in volumes, so a
//! change reaches the files without a restart (and a claim's binding, its mount). One watch per object, by `metadata.name` — all
//! a node may read under the Node authorizer, as the kubelet's watch-based manager
//! does — shared by every pod that uses it and stopped when the last one goes.

use std::collections::{BTreeSet, HashMap};

use berth_podrefs::Kind;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::AbortHandle;

/// An object by kind, namespace and name.
pub(crate) type ObjectKey = (Kind, String, String);

/// The watched objects and the pods that use them.
pub(crate) struct ObjectWatches {
    client: Client,
    changed: UnboundedSender<ObjectKey>,
    by_pod: HashMap<String, BTreeSet<ObjectKey>>,
    watches: HashMap<ObjectKey, (usize, AbortHandle)>,
}

impl ObjectWatches {
    /// No watches yet; changes of watched objects will be sent to `changed`.
    pub(crate) fn new(client: Client, changed: UnboundedSender<ObjectKey>) -> Self {
        Self {
            client,
            changed,
            by_pod: HashMap::new(),
            watches: HashMap::new(),
        }
    }

    /// Watches what `pod`'s volumes show from now on, and stops watching what they no
    /// longer do.
    pub(crate) fn track(&mut self, pod: &Pod) {
        let namespace = pod.namespace().unwrap_or_default();
        let objects: BTreeSet<ObjectKey> = pod
            .spec
            .as_ref()
            .map(berth_podrefs::in_volumes)
            .unwrap_or_default()
            .into_iter()
            .map(|(kind, name)| (kind, namespace.clone(), name))
            .collect();
        let uid = pod.uid().unwrap_or_default();
        let before = self.by_pod.remove(&uid).unwrap_or_default();
        for key in objects.difference(&before) {
            self.hold(key);
        }
        for key in before.difference(&objects) {
            self.release(key);
        }
        if !objects.is_empty() {
            self.by_pod.insert(uid, objects);
        }
    }

    /// Stops watching for pod `uid`.
    pub(crate) fn forget(&mut self, uid: &str) {
        for key in self.by_pod.remove(uid).unwrap_or_default() {
            self.release(&key);
        }
    }

    /// The pods (by uid) tracked now.
    pub(crate) fn pods(&self) -> Vec<String> {
        self.by_pod.keys().cloned().collect()
    }

    /// The pods (by uid) that use `key`.
    pub(crate) fn users<'a>(&'a self, key: &'a ObjectKey) -> impl Iterator<Item = &'a String> {
        self.by_pod
            .iter()
            .filter(move |(_, objects)| objects.contains(key))
            .map(|(uid, _)| uid)
    }

    fn hold(&mut self, key: &ObjectKey) {
        if let Some((users, _)) = self.watches.get_mut(key) {
            *users += 1;
            return;
        }
        let task = watch(self.client.clone(), key.clone(), self.changed.clone());
        self.watches.insert(key.clone(), (1, task));
    }

    fn release(&mut self, key: &ObjectKey) {
        if let Some((users, task)) = self.watches.get_mut(key) {
            *users -= 1;
            if *users == 0 {
                task.abort();
                self.watches.remove(key);
            }
        }
    }
}

impl Drop for ObjectWatches {
    fn drop(&mut self) {
        for (_, task) in self.watches.values() {
            task.abort();
        }
    }
}

/// A task watching one object, sending its key at each change (and after each re-list
/// but the first, which may have missed some).
fn watch(client: Client, key: ObjectKey, changed: UnboundedSender<ObjectKey>) -> AbortHandle {
    let (kind, namespace, _) = &key;
    let task = match kind {
        Kind::Secret => tokio::spawn(follow(
            Api::<Secret>::namespaced(client, namespace),
            key,
            changed,
        )),
        Kind::ConfigMap => tokio::spawn(follow(
            Api::<ConfigMap>::namespaced(client, namespace),
            key,
            changed,
        )),
        Kind::Claim => tokio::spawn(follow(
            Api::<PersistentVolumeClaim>::namespaced(client, namespace),
            key,
            changed,
        )),
    };
    task.abort_handle()
}

async fn follow<K: crate::Watchable>(
    api: Api<K>,
    key: ObjectKey,
    changed: UnboundedSender<ObjectKey>,
) {
    let config = watcher::Config::default().fields(&format!("metadata.name={}", key.2));
    let mut events = std::pin::pin!(watcher(api, config).default_backoff());
    let mut listed_once = false;
    while let Some(event) = events.next().await {
        let change = match event {
            Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => true,
            Ok(watcher::Event::InitDone) => std::mem::replace(&mut listed_once, true),
            _ => false,
        };
        if change && changed.send(key.clone()).is_err() {
            return;
        }
    }
}
