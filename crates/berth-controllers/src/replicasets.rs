//! The ReplicaSet controller: keeps as many running pods as each ReplicaSet declares —
//! making them from its template when too few (so a pod that dies is replaced), deleting
//! the least useful when too many — and reports how many there are and how many are
//! ready in its status.
//!
//! Like kube-controller-manager it remembers the creates and deletes it issued until its
//! cache shows them (expectations), so a pass never counts twice what is in flight.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::Store;
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::watched::Watched;

/// How often ReplicaSets are looked at again when nothing changed.
const RETRY: Duration = Duration::from_secs(5);

/// The creates and deletes of one ReplicaSet not yet seen in the cache.
#[derive(Default)]
struct InFlight {
    created: HashSet<String>,
    deleted: HashSet<String>,
}

/// Runs the controller until the client's watches end.
pub async fn run(client: Client) {
    let mut watched = Watched::default();
    let sets = watched.cache(Api::<ReplicaSet>::all(client.clone())).await;
    let pods = watched.cache(Api::<Pod>::all(client.clone())).await;
    let mut in_flight: HashMap<String, InFlight> = HashMap::new();
    loop {
        let current = sets.state();
        let live: HashSet<String> = current.iter().filter_map(|s| s.uid()).collect();
        in_flight.retain(|uid, _| live.contains(uid));
        for set in current {
            let flight = in_flight.entry(set.uid().unwrap_or_default()).or_default();
            if let Err(error) = reconcile(&client, &set, &pods, flight).await {
                tracing::debug!(%error, replicaset = %set.name_any(), "reconcile failed");
            }
        }
        if !watched.next_change(RETRY).await {
            return;
        }
    }
}

/// Whether the pod counts: not finished and not being deleted.
fn active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// Whether the pod's Ready condition is True.
pub(crate) fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Whether the pod has been ready for `min_ready_seconds` by `now`: what Kubernetes
/// calls available, so a pod that crashes right after starting does not count.
pub(crate) fn available(
    pod: &Pod,
    min_ready_seconds: i32,
    now: k8s_openapi::jiff::Timestamp,
) -> bool {
    let since = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready" && c.status == "True"))
        .map(|c| c.last_transition_time.as_ref().map(|t| t.0));
    match since {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(since)) => now.as_second() - since.as_second() >= i64::from(min_ready_seconds),
    }
}

/// The objects of `store` that `owner` controls.
pub(crate) fn owned_by<O, K>(owner: &O, store: &Store<K>) -> Vec<std::sync::Arc<K>>
where
    O: kube::Resource,
    K: kube::Resource<DynamicType = ()> + Clone,
{
    let uid = owner.uid();
    let namespace = owner.namespace();
    store
        .state()
        .into_iter()
        .filter(|object| object.namespace() == namespace)
        .filter(|object| {
            object
                .owner_references()
                .iter()
                .any(|r| r.controller == Some(true) && Some(&r.uid) == uid.as_ref())
        })
        .collect()
}

async fn reconcile(
    client: &Client,
    set: &ReplicaSet,
    pods: &Store<Pod>,
    flight: &mut InFlight,
) -> Result<(), kube::Error> {
    let namespace = set.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let owned = owned_by(set, pods);
    let names: HashSet<String> = owned.iter().map(|p| p.name_any()).collect();
    flight.created.retain(|name| !names.contains(name));
    flight.deleted.retain(|name| names.contains(name));
    let mut running: Vec<_> = owned
        .iter()
        .filter(|p| active(p) && !flight.deleted.contains(&p.name_any()))
        .collect();
    let wanted = set
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0) as usize;
    let have = running.len() + flight.created.len();
    if have < wanted {
        for _ in have..wanted {
            let created = api.create(&PostParams::default(), &pod_of(set)?).await?;
            flight.created.insert(created.name_any());
        }
    } else if running.len() > wanted && flight.created.is_empty() {
        // The least useful go first: not ready, then the newest.
        running.sort_by_key(|p| {
            (
                ready(p),
                std::cmp::Reverse(p.metadata.creation_timestamp.clone()),
            )
        });
        for pod in running.iter().take(running.len() - wanted) {
            match api.delete(&pod.name_any(), &DeleteParams::default()).await {
                Ok(_) => {
                    flight.deleted.insert(pod.name_any());
                }
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(error),
            }
        }
    }
    report(client, set, &owned).await
}

/// A new pod from the set's template, owned by the set.
fn pod_of(set: &ReplicaSet) -> Result<Pod, kube::Error> {
    let template = set
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let metadata = template.metadata.unwrap_or_default();
    let pod = json!({
        "metadata": {
            "generateName": format!("{}-", set.name_any()),
            "namespace": set.namespace(),
            "labels": metadata.labels,
            "annotations": metadata.annotations,
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": set.name_any(),
                "uid": set.uid(), "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": template.spec,
    });
    serde_json::from_value(pod).map_err(kube::Error::SerdeError)
}

/// The set's status from its pods, written only when it changed.
async fn report(
    client: &Client,
    set: &ReplicaSet,
    owned: &[std::sync::Arc<Pod>],
) -> Result<(), kube::Error> {
    let counted: Vec<_> = owned.iter().filter(|p| active(p)).collect();
    let ready_count = counted.iter().filter(|p| ready(p)).count() as i32;
    let min_ready = set
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    let now = k8s_openapi::jiff::Timestamp::now();
    let available_count = counted
        .iter()
        .filter(|p| available(p, min_ready, now))
        .count() as i32;
    let replicas = counted.len() as i32;
    let status = set.status.clone().unwrap_or_default();
    let generation = set.metadata.generation;
    if status.replicas == replicas
        && status.ready_replicas.unwrap_or(0) == ready_count
        && status.available_replicas.unwrap_or(0) == available_count
        && status.observed_generation == generation
    {
        return Ok(());
    }
    let api: Api<ReplicaSet> =
        Api::namespaced(client.clone(), &set.namespace().unwrap_or_default());
    let patch = json!({"status": {
        "replicas": replicas,
        "fullyLabeledReplicas": replicas,
        "readyReplicas": ready_count,
        "availableReplicas": available_count,
        "observedGeneration": generation,
    }});
    api.patch_status(
        &set.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map(drop)
}
