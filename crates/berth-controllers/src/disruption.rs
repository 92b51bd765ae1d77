//! PodDisruptionBudgets' status, as kube-controller-manager's disruption controller
//! keeps it: how many pods the budget expects, how many are healthy (Ready, not being
//! deleted, not just evicted), how many must stay healthy, and so how many disruptions
//! evictions may spend now. Evictions record the pods they took in `disruptedPods`; an
//! entry is dropped when its pod is gone or after two minutes, as upstream's.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::cached_pod::CachedPod;
use crate::statuses::merge_status;
use berth_runner::{Action, Cache, Controller, Informers};

/// How soon pending disruptions are looked at again.
const RECHECK_DISRUPTED: Duration = Duration::from_secs(2);

/// How long an evicted pod counts as disrupted while it has not gone, as upstream's
/// `DeletionTimeout`.
const DISRUPTION_TIMEOUT: Duration = Duration::from_secs(120);

/// The replicas each controller of pods asks for, by the controller's uid.
type Scales = BTreeMap<String, i32>;

/// Runs until the client's watches end: called for each budget, and for a namespace's
/// budgets when a pod there changes or a ReplicaSet's or StatefulSet's scale does;
/// again while evicted pods are still counted as disrupted.
pub async fn run(client: Client, informers: Informers) {
    let controller = Controller::<PodDisruptionBudget>::new(&informers).await;
    let budgets = controller.cache().clone();
    let controller = controller
        .watches::<CachedPod>(budgets.same_namespace())
        .await
        .watches::<ReplicaSet>(budgets.same_namespace())
        .await
        .watches::<StatefulSet>(budgets.same_namespace())
        .await;
    let pods = informers.cache::<CachedPod>().await;
    let replica_sets = informers.cache::<ReplicaSet>().await;
    let stateful_sets = informers.cache::<StatefulSet>().await;
    let (client, pods, sets) = (&client, &pods, (&replica_sets, &stateful_sets));
    controller
        .run(|budget| async move { reconcile(client, &budget, pods, sets).await })
        .await;
}

/// Writes the budget's status when it changed.
async fn reconcile(
    client: &Client,
    budget: &PodDisruptionBudget,
    pods: &Cache<CachedPod>,
    (replica_sets, stateful_sets): (&Cache<ReplicaSet>, &Cache<StatefulSet>),
) -> Result<Action, kube::Error> {
    let namespace = budget.namespace();
    let pods = pods.in_namespace(namespace.as_deref());
    let scale = |uid: Option<String>, replicas: Option<i32>| Some((uid?, replicas.unwrap_or(1)));
    let stateful_sets = stateful_sets.in_namespace(namespace.as_deref());
    let scales: Scales = replica_sets
        .in_namespace(namespace.as_deref())
        .iter()
        .filter_map(|rs| scale(rs.uid(), rs.spec.as_ref().and_then(|s| s.replicas)))
        .chain(
            stateful_sets
                .iter()
                .filter_map(|sts| scale(sts.uid(), sts.spec.as_ref().and_then(|s| s.replicas))),
        )
        .collect();
    let wanted = status_of(budget, &pods, &scales, Timestamp::now());
    // Evicted pods not gone yet stop counting as disrupted after a while: look again.
    let next = match wanted["disruptedPods"].as_object() {
        Some(disrupted) if !disrupted.is_empty() => Action::RequeueAfter(RECHECK_DISRUPTED),
        _ => Action::AwaitChange,
    };
    let current = serde_json::to_value(&budget.status).unwrap_or_default();
    if !same_status(&current, &wanted) {
        let api = Api::namespaced(client.clone(), &namespace.unwrap_or_default());
        let change = (&current, wanted);
        merge_status::<PodDisruptionBudget>(&api, &budget.name_any(), change, &["disruptedPods"])
            .await?;
    }
    Ok(next)
}

/// The status `budget` should have now.
fn status_of(
    budget: &PodDisruptionBudget,
    pods: &[Arc<CachedPod>],
    scales: &Scales,
    now: Timestamp,
) -> Value {
    let spec = budget.spec.clone().unwrap_or_default();
    let namespace = budget.namespace();
    let covered: Vec<&Arc<CachedPod>> = pods
        .iter()
        .filter(|pod| pod.namespace() == namespace)
        .filter(|pod| {
            spec.selector
                .as_ref()
                .is_some_and(|s| crate::labels::selects(s, pod.labels()))
        })
        .collect();
    let disrupted = still_disrupted(budget, &covered, now);
    let healthy = covered
        .iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .filter(|pod| !disrupted.contains_key(&pod.name_any()))
        .filter(|pod| crate::pods::ready(pod))
        .count() as i32;
    let (expected, desired) = match (&spec.min_available, &spec.max_unavailable) {
        (Some(IntOrString::Int(min)), _) => (covered.len() as i32, *min),
        (Some(IntOrString::String(percent)), _) => {
            let expected = expected_from_controllers(&covered, scales);
            (expected, share(percent, expected))
        }
        (None, Some(max)) => {
            let expected = expected_from_controllers(&covered, scales);
            let unavailable = match max {
                IntOrString::Int(max) => *max,
                IntOrString::String(percent) => share(percent, expected),
            };
            (expected, (expected - unavailable).max(0))
        }
        (None, None) => (covered.len() as i32, 0),
    };
    let allowed = if expected <= 0 {
        0
    } else {
        (healthy - desired).max(0)
    };
    let condition = json!({
        "type": "DisruptionAllowed",
        "status": if allowed > 0 { "True" } else { "False" },
        "reason": if allowed > 0 { "SufficientPods" } else { "InsufficientPods" },
        "message": "",
        "observedGeneration": budget.metadata.generation,
        "lastTransitionTime": transition_time(budget, allowed > 0, now),
    });
    json!({
        "observedGeneration": budget.metadata.generation,
        "disruptedPods": disrupted,
        "disruptionsAllowed": allowed,
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
        "conditions": [condition],
    })
}

/// The evictions still counted: those of pods that still exist, for two minutes at
/// most, as upstream's.
fn still_disrupted(
    budget: &PodDisruptionBudget,
    covered: &[&Arc<CachedPod>],
    now: Timestamp,
) -> BTreeMap<String, String> {
    let present: BTreeSet<String> = covered.iter().map(|p| p.name_any()).collect();
    let recorded = budget
        .status
        .as_ref()
        .and_then(|s| s.disrupted_pods.clone())
        .unwrap_or_default();
    recorded
        .into_iter()
        .filter(|(pod, _)| present.contains(pod))
        .filter(|(_, at)| {
            let age = now.duration_since(at.0).unsigned_abs();
            age < DISRUPTION_TIMEOUT
        })
        .map(|(pod, at)| (pod, at.0.to_string()))
        .collect()
}

/// When the DisruptionAllowed condition last changed: kept while it says the same.
fn transition_time(budget: &PodDisruptionBudget, allowed: bool, now: Timestamp) -> String {
    let status = if allowed { "True" } else { "False" };
    budget
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "DisruptionAllowed"))
        .filter(|c| c.status == status)
        .map_or_else(|| now.to_string(), |c| c.last_transition_time.0.to_string())
}

/// The pods the covered pods' controllers ask for, each controller once: percentages
/// and maxUnavailable are of those, not of the pods that happen to exist. A pod
/// without a controller counts as one.
fn expected_from_controllers(covered: &[&Arc<CachedPod>], scales: &Scales) -> i32 {
    let mut controllers = BTreeSet::new();
    let mut loose = 0;
    for pod in covered {
        match pod
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true))
        {
            Some(owner) if scales.contains_key(&owner.uid) => {
                controllers.insert(owner.uid.clone());
            }
            _ => loose += 1,
        }
    }
    controllers.iter().map(|uid| scales[uid]).sum::<i32>() + loose
}

/// `percent` (`"50%"`) of `total`, rounded up as upstream rounds budgets.
fn share(percent: &str, total: i32) -> i32 {
    let value: f64 = percent.trim_end_matches('%').parse().unwrap_or(0.0);
    (value * f64::from(total) / 100.0).ceil() as i32
}

/// Whether two statuses say the same, transition times aside.
fn same_status(current: &Value, wanted: &Value) -> bool {
    let without_time = |status: &Value| {
        let mut status = status.clone();
        if let Some(conditions) = status["conditions"].as_array_mut() {
            for condition in conditions {
                condition["lastTransitionTime"].take();
            }
        }
        if status["disruptedPods"]
            .as_object()
            .is_some_and(|d| d.is_empty())
        {
            status["disruptedPods"].take();
        }
        status
    };
    without_time(current) == without_time(wanted)
}
