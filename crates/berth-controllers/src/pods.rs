//! What every controller that makes pods shares: a pod made from its owner's template
//! and owned by it, and how a pod's life reads — active, ready, finished — as
//! kube-controller-manager's controllers read it.

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use crate::cached_pod::CachedPod;

/// How a new pod is named.
pub(crate) enum Naming {
    /// `BASE-` and a random suffix, as ReplicaSets, Jobs and DaemonSets name theirs.
    Generated(String),
    /// Exactly this, as StatefulSets name theirs.
    Exactly(String),
}

/// The owner reference that makes `owner` the controller of what carries it; the
/// garbage collector and `kubectl delete`'s cascade follow it.
pub(crate) fn controller_reference<O: Resource<DynamicType = ()>>(owner: &O) -> serde_json::Value {
    json!({
        "apiVersion": O::api_version(&()), "kind": O::kind(&()), "name": owner.name_any(),
        "uid": owner.uid(), "controller": true, "blockOwnerDeletion": true,
    })
}

/// A new pod from `template` (its labels, annotations and spec), in `owner`'s namespace
/// and controlled by it.
pub(crate) fn from_template<O: Resource<DynamicType = ()>>(
    owner: &O,
    template: &PodTemplateSpec,
    naming: Naming,
) -> Result<Pod, kube::Error> {
    let metadata = template.metadata.clone().unwrap_or_default();
    let (field, name) = match naming {
        Naming::Generated(base) => ("generateName", format!("{base}-")),
        Naming::Exactly(name) => ("name", name),
    };
    let pod = json!({
        "metadata": {
            field: name,
            "namespace": owner.namespace(),
            "labels": metadata.labels,
            "annotations": metadata.annotations,
            "ownerReferences": [controller_reference(owner)],
        },
        "spec": template.spec,
    });
    serde_json::from_value(pod).map_err(kube::Error::SerdeError)
}

/// Creates `pod` in its namespace; the pod as the server made it.
pub(crate) async fn create(client: &Client, pod: &Pod) -> Result<Pod, kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    api.create(&PostParams::default(), pod).await
}

/// The most creates or deletes one call of a controller issues:
/// kube-controller-manager's `burstReplicas`.
pub(crate) const BURST: usize = 500;

/// Creates `count` pods made by `make` as kube-controller-manager's slow start does:
/// batches of 1, 2, 4… created at once, none after a batch in which one failed (a
/// quota that refuses, a webhook that is down: not worth 500 tries). The names made,
/// and the first failure.
pub(crate) async fn create_slow_start(
    client: &Client,
    count: usize,
    make: impl Fn() -> Result<Pod, kube::Error>,
) -> (Vec<String>, Option<kube::Error>) {
    let mut made = Vec::new();
    let mut batch = 1;
    while made.len() < count {
        let size = batch.min(count - made.len());
        let creates = (0..size).map(|_| async {
            let pod = make()?;
            create(client, &pod).await
        });
        let mut failure = None;
        for outcome in futures_util::future::join_all(creates).await {
            match outcome {
                Ok(pod) => made.push(pod.name_any()),
                Err(error) => failure = failure.or(Some(error)),
            }
        }
        if failure.is_some() {
            return (made, failure);
        }
        batch *= 2;
    }
    (made, None)
}

/// Deletes `pods` all at once (each by its uid); the names deleted, and the first
/// failure.
pub(crate) async fn delete_all(
    client: &Client,
    pods: &[&CachedPod],
) -> (Vec<String>, Option<kube::Error>) {
    let deletes = pods.iter().map(|pod| async move {
        delete(client, pod)
            .await
            .map(|deleted| deleted.then(|| pod.name_any()))
    });
    let mut deleted = Vec::new();
    let mut failure = None;
    for outcome in futures_util::future::join_all(deletes).await {
        match outcome {
            Ok(name) => deleted.extend(name),
            Err(error) => failure = failure.or(Some(error)),
        }
    }
    (deleted, failure)
}

/// Deletes the pod — this very pod, by its uid: not one made since under its name —
/// false when it was already gone.
pub(crate) async fn delete(client: &Client, pod: &CachedPod) -> Result<bool, kube::Error> {
    let api: Api<CachedPod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let this = DeleteParams {
        preconditions: Some(Preconditions {
            uid: pod.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&pod.name_any(), &this).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(false),
        Err(error) => Err(error),
    }
}

/// The pod's phase, `Pending` when not reported yet.
pub(crate) fn phase(pod: &CachedPod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// Whether the pod's containers are done for good: Succeeded or Failed.
pub(crate) fn finished(pod: &CachedPod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// Whether the pod counts as one of its owner's: not finished and not being deleted.
pub(crate) fn active(pod: &CachedPod) -> bool {
    pod.metadata.deletion_timestamp.is_none() && !finished(pod)
}

/// Whether the pod's Ready condition is True.
pub(crate) fn ready(pod: &CachedPod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Whether the pod has been ready for `min_ready_seconds` by `now`: what Kubernetes
/// calls available, so a pod that crashes right after starting does not count.
pub(crate) fn available(
    pod: &CachedPod,
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

/// Whether the pod is Running and Ready: what ordered StatefulSets and rolling updates
/// wait for.
pub(crate) fn running_and_ready(pod: &CachedPod) -> bool {
    active(pod) && phase(pod) == "Running" && ready(pod)
}
