//! The garbage collector, which owns cascading deletion as kube-controller-manager's
//! does: it watches the metadata of every resource that can be listed, watched and
//! deleted, keeps a graph of who owns whom ([`graph`]), and
//!
//! - deletes an object once all its owners are gone (Background deletion, and what a
//!   controller made while its owner was being deleted);
//! - for an owner deleted in the foreground (the `foregroundDeletion` finalizer), deletes
//!   its dependents and takes the finalizer away once none that blocks it is left;
//! - for an owner deleted with the `orphan` finalizer, takes its reference out of its
//!   dependents, then the finalizer.
//!
//! An owner missing from the graph is looked up before anything is deleted on its
//! account: the graph may not have seen it yet.

mod graph;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{
    DeleteParams, DynamicObject, PartialObjectMeta, PostParams, Preconditions, PropagationPolicy,
};
use kube::core::ApiResource;
use kube::discovery::{Scope, verbs};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;

use berth_runner::{Action, Queue};

use crate::lock;
use graph::{FOREGROUND, Graph, Node, ORPHAN};

/// How many objects are worked on at once (kube-controller-manager's
/// `--concurrent-gc-syncs`).
const WORKERS: usize = 20;

/// How often the served resources are discovered again, for those that appeared (a
/// new CustomResourceDefinition): kube-controller-manager's period.
const REDISCOVERY: Duration = Duration::from_secs(30);

/// The longest the collector waits for its first lists before it starts work (an
/// aggregated API that never answers must not stop it).
const FIRST_SYNC: Duration = Duration::from_secs(30);

/// How many owners known to be gone are remembered, to spare a lookup per dependent.
const ABSENT_REMEMBERED: usize = 10_000;

/// A resource the collector watches, as discovery serves it.
#[derive(Clone)]
struct Served {
    resource: Arc<ApiResource>,
    namespaced: bool,
}

/// The collector's state, shared by its watches and its workers.
struct Collector {
    client: Client,
    graph: Mutex<Graph>,
    /// The watched resources by group and kind: where an ownerReference's owner lives.
    kinds: Mutex<HashMap<(String, String), Served>>,
    /// Owners looked up and found gone.
    absent: Mutex<HashSet<String>>,
    queue: Queue<String>,
}

/// What an owner is to a dependent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// It exists and is not waiting for its dependents to go.
    Solid,
    /// It is gone.
    Dangling,
    /// It is being deleted in the foreground: its dependents go first.
    Waiting,
}

/// Runs the collector until the future is dropped (when leadership is lost).
pub async fn run(client: Client) {
    let collector = Arc::new(Collector {
        client,
        graph: Mutex::default(),
        kinds: Mutex::default(),
        absent: Mutex::default(),
        queue: Queue::default(),
    });
    let first = loop {
        match collector.discover().await {
            Ok(served) => break served,
            Err(error) => {
                tracing::warn!(%error, "garbage collector: discovery failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let (synced, mut listed) = watch::channel(0);
    let expected = first.len();
    let work = async {
        // Work starts once the graph holds what the first lists showed, so that owners
        // are found in it rather than looked up one by one.
        let all_listed = listed.wait_for(|n| *n >= expected);
        let _ = tokio::time::timeout(FIRST_SYNC, all_listed).await;
        let collector = &collector;
        collector
            .queue
            .run(WORKERS, |uid| async move { collector.attempt(&uid).await })
            .await;
    };
    tokio::join!(collector.watch_all(first, &synced), work);
}

impl Collector {
    fn graph(&self) -> std::sync::MutexGuard<'_, Graph> {
        lock(&self.graph)
    }

    /// The resources to watch: every one served that can be listed, watched and
    /// deleted, but Events (kube-controller-manager ignores them too: they churn and
    /// own nothing). A group that does not answer is skipped until the next discovery.
    async fn discover(&self) -> Result<Vec<Served>, kube::Error> {
        let groups = self.client.list_api_groups().await?;
        let names = std::iter::once(String::new()).chain(groups.groups.into_iter().map(|g| g.name));
        let mut served = Vec::new();
        for name in names {
            let group = match kube::discovery::group(&self.client, &name).await {
                Ok(group) => group,
                Err(error) => {
                    tracing::debug!(group = name, %error, "garbage collector: group skipped");
                    continue;
                }
            };
            for (resource, capabilities) in group.recommended_resources() {
                let usable = [verbs::LIST, verbs::WATCH, verbs::DELETE]
                    .iter()
                    .all(|verb| capabilities.supports_operation(verb));
                if usable && resource.plural != "events" {
                    served.push(Served {
                        resource: Arc::new(resource),
                        namespaced: capabilities.scope == Scope::Namespaced,
                    });
                }
            }
        }
        Ok(served)
    }

    /// Watches `first` and, as discovery finds them, the resources served later;
    /// `synced` counts the resources whose first list is in the graph.
    async fn watch_all(&self, first: Vec<Served>, synced: &watch::Sender<usize>) {
        let mut watches = FuturesUnordered::new();
        let mut rediscovery = tokio::time::interval(REDISCOVERY);
        rediscovery.tick().await;
        let mut found = first;
        loop {
            for served in found.drain(..) {
                let key = (served.resource.group.clone(), served.resource.kind.clone());
                if lock(&self.kinds).insert(key, served.clone()).is_none() {
                    watches.push(self.watch(served, synced));
                }
            }
            tokio::select! {
                _ = rediscovery.tick() => match self.discover().await {
                    Ok(served) => found = served,
                    Err(error) => tracing::debug!(%error, "garbage collector: discovery failed"),
                },
                Some(()) = watches.next(), if !watches.is_empty() => {}
            }
        }
    }

    /// Keeps the graph up to date with one resource's objects, queueing what their
    /// changes may call for.
    async fn watch(&self, served: Served, synced: &watch::Sender<usize>) {
        let api: Api<PartialObjectMeta<DynamicObject>> =
            Api::all_with(self.client.clone(), served.resource.as_ref());
        let events = watcher::watcher(api, watcher::Config::default()).default_backoff();
        let mut events = std::pin::pin!(events);
        let mut listed = HashSet::new();
        let mut first_list = true;
        while let Some(event) = events.next().await {
            let work = match event {
                Ok(Event::Apply(object)) => self.observe(&served, &object.metadata),
                Ok(Event::InitApply(object)) => {
                    listed.extend(object.metadata.uid.clone());
                    self.observe(&served, &object.metadata)
                }
                Ok(Event::Delete(object)) => match &object.metadata.uid {
                    Some(uid) => self.graph().forget(uid),
                    None => Vec::new(),
                },
                Ok(Event::Init) => {
                    listed.clear();
                    Vec::new()
                }
                Ok(Event::InitDone) => {
                    let work = self.graph().forget_unlisted(&served.resource, &listed);
                    listed.clear();
                    if std::mem::take(&mut first_list) {
                        synced.send_modify(|n| *n += 1);
                    }
                    work
                }
                Err(error) => {
                    let resource = &served.resource.plural;
                    tracing::debug!(resource, %error, "garbage collector: watch failed");
                    Vec::new()
                }
            };
            work.into_iter().for_each(|uid| self.queue.add(uid));
        }
    }

    fn observe(&self, served: &Served, metadata: &ObjectMeta) -> Vec<String> {
        let Some(uid) = &metadata.uid else {
            return Vec::new();
        };
        self.graph().observe(uid, node_of(served, metadata))
    }

    /// Does what the object `uid` calls for now, if anything.
    async fn attempt(&self, uid: &str) -> Result<Action, kube::Error> {
        let Some(node) = self.graph().get(uid).cloned() else {
            return Ok(Action::AwaitChange);
        };
        if node.deleting {
            if node.orphan {
                return self.orphan_dependents(uid, &node).await;
            }
            if node.foreground {
                return self.delete_dependents(uid, &node).await;
            }
            return Ok(Action::AwaitChange);
        }
        if node.owners.is_empty() {
            return Ok(Action::AwaitChange);
        }
        let mut states = Vec::with_capacity(node.owners.len());
        for owner in &node.owners {
            match self.owner(&node, owner).await? {
                Some(state) => states.push((owner.uid.clone(), state)),
                None => return Ok(Action::RequeueAfter(REDISCOVERY)),
            }
        }
        let gone: Vec<String> = states
            .iter()
            .filter(|(_, state)| *state != Owner::Solid)
            .map(|(uid, _)| uid.clone())
            .collect();
        if gone.len() < states.len() {
            // An owner remains: the object stays, without the references to the others.
            if !gone.is_empty() {
                self.edit(uid, &node, |o| drop_owners(o, &gone)).await?;
            }
            return Ok(Action::AwaitChange);
        }
        let waited_for = states.iter().any(|(_, state)| *state == Owner::Waiting);
        let policy = if waited_for && !self.graph().dependents(uid).is_empty() {
            PropagationPolicy::Foreground
        } else {
            PropagationPolicy::Background
        };
        self.delete(uid, &node, policy).await
    }

    /// What the owner a reference names is to `dependent`; None when its kind is not
    /// served (yet: a definition not discovered).
    async fn owner(
        &self,
        dependent: &Node,
        reference: &OwnerReference,
    ) -> Result<Option<Owner>, kube::Error> {
        if let Some(owner) = self.graph().get(&reference.uid) {
            return Ok(Some(if owner.awaits_dependents() {
                Owner::Waiting
            } else {
                Owner::Solid
            }));
        }
        if lock(&self.absent).contains(&reference.uid) {
            return Ok(Some(Owner::Dangling));
        }
        let group = reference
            .api_version
            .split_once('/')
            .map_or("", |(group, _)| group);
        let key = (group.to_string(), reference.kind.clone());
        let Some(served) = lock(&self.kinds).get(&key).cloned() else {
            tracing::warn!(
                kind = reference.kind,
                "garbage collector: an owner's kind is not served"
            );
            return Ok(None);
        };
        let namespace = dependent.namespace.as_deref().filter(|_| served.namespaced);
        let found = api(&self.client, &served.resource, namespace)
            .get_metadata_opt(&reference.name)
            .await?;
        let Some(found) = found.filter(|o| o.metadata.uid.as_deref() == Some(&reference.uid))
        else {
            let mut absent = lock(&self.absent);
            if absent.len() >= ABSENT_REMEMBERED {
                absent.clear();
            }
            absent.insert(reference.uid.clone());
            return Ok(Some(Owner::Dangling));
        };
        Ok(Some(
            if node_of(&served, &found.metadata).awaits_dependents() {
                Owner::Waiting
            } else {
                Owner::Solid
            },
        ))
    }

    /// For an owner deleted in the foreground: its dependents are looked at (each goes
    /// unless another owner keeps it), and the finalizer goes once none blocks it.
    async fn delete_dependents(&self, uid: &str, node: &Node) -> Result<Action, kube::Error> {
        let dependents = self.graph().dependents(uid);
        let mut blocked = false;
        for (dependent_uid, dependent) in dependents {
            if !dependent.deleting {
                self.queue.add(dependent_uid);
            }
            blocked |= dependent
                .owners
                .iter()
                .any(|o| o.uid == uid && o.block_owner_deletion == Some(true));
        }
        if !blocked {
            self.edit(uid, node, |o| drop_finalizer(o, FOREGROUND))
                .await?;
        }
        Ok(Action::AwaitChange)
    }

    /// For an owner deleted with the orphan finalizer: its dependents lose their
    /// reference to it, then it loses the finalizer.
    async fn orphan_dependents(&self, uid: &str, node: &Node) -> Result<Action, kube::Error> {
        let owner = [uid.to_string()];
        let dependents = self.graph().dependents(uid);
        for (dependent_uid, dependent) in dependents {
            self.edit(&dependent_uid, &dependent, |o| drop_owners(o, &owner))
                .await?;
        }
        self.edit(uid, node, |o| drop_finalizer(o, ORPHAN)).await?;
        Ok(Action::AwaitChange)
    }

    /// Deletes the object `uid` (not another of the same name).
    async fn delete(
        &self,
        uid: &str,
        node: &Node,
        policy: PropagationPolicy,
    ) -> Result<Action, kube::Error> {
        let params = DeleteParams {
            propagation_policy: Some(policy),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let api = api(&self.client, &node.resource, node.namespace.as_deref());
        match api.delete(&node.name, &params).await {
            Ok(_) => {
                let kind = &node.resource.kind;
                tracing::debug!(kind, name = node.name, "collected: its owners are gone");
                Ok(Action::AwaitChange)
            }
            // Gone, or another object of the name now (the uid precondition failed).
            Err(error) if matches!(code(&error), Some(404 | 409)) => Ok(Action::AwaitChange),
            Err(error) => Err(error),
        }
    }

    /// Reads the object `uid`, changes it with `change` (which says whether it did) and
    /// writes it back at the revision read: a change meanwhile is a conflict, retried.
    async fn edit(
        &self,
        uid: &str,
        node: &Node,
        change: impl Fn(&mut DynamicObject) -> bool,
    ) -> Result<(), kube::Error> {
        let api = api(&self.client, &node.resource, node.namespace.as_deref());
        let Some(mut object) = api.get_opt(&node.name).await? else {
            return Ok(());
        };
        if object.uid().as_deref() != Some(uid) || !change(&mut object) {
            return Ok(());
        }
        match api
            .replace(&node.name, &PostParams::default(), &object)
            .await
        {
            Err(error) if code(&error) == Some(404) => Ok(()),
            outcome => outcome.map(drop),
        }
    }
}

/// An object of `served` as the graph keeps it, from its metadata.
fn node_of(served: &Served, metadata: &ObjectMeta) -> Node {
    let finalizers = metadata.finalizers.as_deref().unwrap_or_default();
    Node {
        resource: Arc::clone(&served.resource),
        namespace: metadata.namespace.clone(),
        name: metadata.name.clone().unwrap_or_default(),
        owners: metadata.owner_references.clone().unwrap_or_default(),
        deleting: metadata.deletion_timestamp.is_some(),
        foreground: finalizers.iter().any(|f| f == FOREGROUND),
        orphan: finalizers.iter().any(|f| f == ORPHAN),
    }
}

/// The API of `resource`, in `namespace` when it has one.
fn api(client: &Client, resource: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, resource),
        None => Api::all_with(client.clone(), resource),
    }
}

/// Takes the references to `owners` out of `object`; whether there were any. None
/// left, the field goes, as kube-apiserver leaves no empty list in metadata.
fn drop_owners(object: &mut DynamicObject, owners: &[String]) -> bool {
    drop_from(&mut object.metadata.owner_references, |r| {
        owners.contains(&r.uid)
    })
}

/// Takes the finalizer `name` out of `object`; whether it had it.
fn drop_finalizer(object: &mut DynamicObject, name: &str) -> bool {
    drop_from(&mut object.metadata.finalizers, |f| f == name)
}

/// Takes what `unwanted` picks out of a metadata list, which goes when emptied; whether
/// anything went.
fn drop_from<T>(list: &mut Option<Vec<T>>, unwanted: impl Fn(&T) -> bool) -> bool {
    let Some(items) = list else {
        return false;
    };
    let before = items.len();
    items.retain(|item| !unwanted(item));
    let dropped = items.len() != before;
    if items.is_empty() {
        *list = None;
    }
    dropped
}

/// The HTTP status of an error the API server answered with.
fn code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}
