//! The DaemonSet controller: one pod of each DaemonSet on every node that should run it,
//! as kube-controller-manager's — a node whose labels the pod's nodeSelector and node
//! affinity admit and whose NoSchedule/NoExecute taints it tolerates, counting the
//! tolerations every DaemonSet pod gets (not-ready, unreachable, pressure,
//! unschedulable). Each pod names its node in a required node affinity
//! (`matchFields metadata.name In [NODE]`) and the scheduler binds it there. A new node
//! gets a pod; a pod whose node went away, no longer admits it, or taints it NoExecute
//! is deleted; a failed one is replaced.
//!
//! Templates are versioned as ControllerRevisions; pods carry their revision's hash in
//! `controller-revision-hash`. A RollingUpdate replaces old pods node by node, never
//! more than maxUnavailable nodes without a ready pod; OnDelete waits for the old pods
//! to be deleted by hand. The status counts are what `kubectl get ds` prints and
//! `kubectl rollout status ds` waits on.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use berth_runner::{Action, Cache, Controller, Informers};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod, Toleration};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::cached_pod::CachedPod;
use crate::expectations::{Expectations, InFlight};
use crate::pods::{Naming, active, ready};
use crate::revisions::{HASH_LABEL, Revision};
use crate::scheduler::filters::tolerates;
use crate::scheduler::node_affinity;

/// The name events give the controller.
const COMPONENT: &str = "daemonset-controller";

/// The tolerations every DaemonSet pod gets, as upstream adds them: its pods stay on
/// nodes that are unready, unreachable, under pressure or cordoned.
const TOLERATIONS: [(&str, &str); 6] = [
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
];

/// What the controller reads.
struct Caches {
    nodes: Cache<Node>,
    pods: Cache<CachedPod>,
    revisions: Cache<ControllerRevision>,
}

/// Runs the controller until the client's watches end: called for each DaemonSet, for
/// its own when one of its pods or revisions changes, and for all when a node does.
pub async fn run(client: Client, informers: Informers) {
    let caches = Caches {
        nodes: informers.cache::<Node>().await,
        pods: informers.cache::<CachedPod>().await,
        revisions: informers.cache::<ControllerRevision>().await,
    };
    let controller = Controller::<DaemonSet>::new(&informers).await;
    let sets = controller.cache().clone();
    let controller = controller
        .owns::<CachedPod>()
        .await
        .owns::<ControllerRevision>()
        .await
        .watches::<Node>(move |_| sets.keys(|_| true))
        .await;
    let expectations = Expectations::default();
    controller
        .run(|set| {
            let (client, caches, expectations) = (&client, &caches, &expectations);
            expectations.with(set.uid(), async move |flight| {
                if set.metadata.deletion_timestamp.is_some() {
                    return Ok(Action::AwaitChange);
                }
                reconcile(client, &set, caches, flight).await?;
                Ok(Action::AwaitChange)
            })
        })
        .await;
}

/// The set's pod for `node`, of `revision`: its template with the revision's labels,
/// the DaemonSet tolerations, and a required affinity to that node alone.
fn pod_for(set: &DaemonSet, revision: &Revision, node: &str) -> Result<Pod, kube::Error> {
    let mut pod =
        crate::pods::from_template(set, &revision.template, Naming::Generated(set.name_any()))?;
    let labels = pod.metadata.labels.get_or_insert_default();
    labels.insert(HASH_LABEL.into(), revision.hash.clone());
    labels.insert(
        "pod-template-generation".into(),
        set.metadata.generation.unwrap_or(1).to_string(),
    );
    let spec = pod.spec.get_or_insert_default();
    let tolerations = spec.tolerations.get_or_insert_default();
    for (key, effect) in TOLERATIONS {
        let present = tolerations
            .iter()
            .any(|t| t.key.as_deref() == Some(key) && t.effect.as_deref() == Some(effect));
        if !present {
            tolerations.push(Toleration {
                key: Some(key.into()),
                operator: Some("Exists".into()),
                effect: Some(effect.into()),
                ..Toleration::default()
            });
        }
    }
    let affinity = json!({"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
    ]}});
    let node_affinity = serde_json::from_value(affinity).map_err(kube::Error::SerdeError)?;
    spec.affinity.get_or_insert_default().node_affinity = Some(node_affinity);
    Ok(pod)
}

/// Whether the node should run `pod` (its own pod for the node), and whether a pod
/// already there may stay: untolerated NoSchedule taints keep new pods off, NoExecute
/// ones drive running pods away too.
fn placement(pod: &CachedPod, node: &Node) -> (bool, bool) {
    if !node_affinity::admits(pod, node) {
        return (false, false);
    }
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default();
    let untolerated = |effect: &str| {
        node.spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .into_iter()
            .flatten()
            .any(|t| t.effect == effect && !tolerations.iter().any(|o| tolerates(o, t)))
    };
    let may_stay = !untolerated("NoExecute");
    (may_stay && !untolerated("NoSchedule"), may_stay)
}

/// What `placement` reads of a pod the set would make: its selector, affinity and
/// tolerations.
fn placed(pod: Pod) -> CachedPod {
    let spec = pod.spec.unwrap_or_default();
    let extras = crate::cached_pod::Extras {
        node_selector: spec.node_selector,
        ..Default::default()
    };
    let spec = crate::cached_pod::PodSpec {
        extras: Some(Box::new(extras)),
        affinity: spec.affinity.map(Box::new),
        tolerations: spec.tolerations.map(Vec::into_boxed_slice),
        ..Default::default()
    };
    let mut placed = CachedPod::default();
    placed.spec = Some(spec);
    placed
}

/// The node a pod of the set is for: the one it is bound to, else the one its node
/// affinity names.
fn node_of(pod: &CachedPod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(node) = spec.node_name.clone().filter(|n| !n.is_empty()) {
        return Some(node.into());
    }
    let required = spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?;
    let term = required.node_selector_terms.first()?;
    let field = term.match_fields.as_ref()?.first()?;
    (field.key == "metadata.name")
        .then(|| field.values.as_ref()?.first().cloned())
        .flatten()
}

/// One node's part in a pass.
struct NodeState {
    should_run: bool,
    may_stay: bool,
    pods: Vec<Arc<CachedPod>>,
}

/// What a pass found: each node's state and the pods on nodes that are gone.
struct Survey {
    nodes: HashMap<String, NodeState>,
    orphans: Vec<Arc<CachedPod>>,
    failed: Vec<Arc<CachedPod>>,
}

fn survey(
    set: &DaemonSet,
    revision: &Revision,
    caches: &Caches,
    flight: &InFlight,
) -> Result<Survey, kube::Error> {
    let owned = caches.pods.controlled_by(set);
    let mut nodes = HashMap::new();
    for node in caches.nodes.state() {
        let own = pod_for(set, revision, &node.name_any())?;
        let (should_run, may_stay) = placement(&placed(own), &node);
        let state = NodeState {
            should_run,
            may_stay,
            pods: Vec::new(),
        };
        nodes.insert(node.name_any(), state);
    }
    let (mut orphans, mut failed) = (Vec::new(), Vec::new());
    for pod in owned {
        if crate::pods::phase(&pod) == "Failed" && pod.metadata.deletion_timestamp.is_none() {
            failed.push(pod);
            continue;
        }
        if !active(&pod) || flight.deleting(&pod.name_any()) {
            continue;
        }
        match node_of(&pod).and_then(|n| nodes.get_mut(&n)) {
            Some(state) => state.pods.push(pod),
            None => orphans.push(pod),
        }
    }
    Ok(Survey {
        nodes,
        orphans,
        failed,
    })
}

fn has_hash(pod: &CachedPod, hash: &str) -> bool {
    pod.labels().get(HASH_LABEL) == Some(hash)
}

async fn reconcile(
    client: &Client,
    set: &DaemonSet,
    caches: &Caches,
    flight: &mut InFlight,
) -> Result<(), kube::Error> {
    let spec = set.spec.clone().unwrap_or_default();
    let revision =
        crate::revisions::current(client, set, &spec.template, &caches.revisions).await?;
    let owned = caches.pods.controlled_by(set);
    flight.observe(&owned.iter().map(|p| p.name_any()).collect());
    let survey = survey(set, &revision, caches, flight)?;
    let mut doomed: Vec<Arc<CachedPod>> = survey.orphans.clone();
    doomed.extend(survey.failed.iter().cloned());
    let mut wanting = Vec::new();
    for (name, state) in &survey.nodes {
        match state.pods.as_slice() {
            [] if state.should_run => wanting.push(name.clone()),
            pods if !state.may_stay => doomed.extend(pods.iter().cloned()),
            [_, extra @ ..] => doomed.extend(extra.iter().cloned()),
            [] => {}
        }
    }
    if flight.creating() == 0 {
        for node in wanting {
            let created = crate::pods::create(client, &pod_for(set, &revision, &node)?).await?;
            announce(
                client,
                set,
                "SuccessfulCreate",
                &format!("Created pod: {}", created.name_any()),
            )
            .await;
            flight.created(created.name_any());
        }
    }
    doomed.extend(rolling_out(set, &survey, &revision.hash));
    for pod in doomed {
        if crate::pods::delete(client, &pod).await? {
            announce(
                client,
                set,
                "SuccessfulDelete",
                &format!("Deleted pod: {}", pod.name_any()),
            )
            .await;
            flight.deleted(pod.name_any());
        }
    }
    let used: HashSet<String> = owned
        .iter()
        .filter_map(|p| p.labels().get(HASH_LABEL).map(str::to_string))
        .chain([revision.hash.clone()])
        .collect();
    let limit = spec.revision_history_limit.unwrap_or(10);
    crate::revisions::prune(client, set, &caches.revisions, (&used, limit)).await?;
    report(client, set, &survey, &revision.hash).await
}

/// The old pods a RollingUpdate replaces now: those not ready at once, ready ones while
/// fewer than maxUnavailable nodes lack a ready pod.
fn rolling_out(set: &DaemonSet, survey: &Survey, hash: &str) -> Vec<Arc<CachedPod>> {
    let strategy = set
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.clone())
        .unwrap_or_default();
    if strategy.type_.as_deref() == Some("OnDelete") {
        return Vec::new();
    }
    let wanted: Vec<&NodeState> = survey.nodes.values().filter(|s| s.should_run).collect();
    let max_unavailable = crate::deployments::resolve(
        strategy
            .rolling_update
            .and_then(|r| r.max_unavailable)
            .as_ref(),
        wanted.len() as i32,
        true,
        "1",
    )
    .max(1);
    let unavailable = wanted
        .iter()
        .filter(|s| !s.pods.iter().any(|p| ready(p)))
        .count() as i32;
    let old: Vec<&Arc<CachedPod>> = wanted
        .iter()
        .filter_map(|s| s.pods.first())
        .filter(|p| !has_hash(p, hash))
        .collect();
    let (unready, ready_old): (Vec<_>, Vec<_>) = old.into_iter().partition(|p| !ready(p));
    let budget = (max_unavailable - unavailable).max(0) as usize;
    unready
        .into_iter()
        .chain(ready_old.into_iter().take(budget))
        .cloned()
        .collect()
}

async fn announce(client: &Client, set: &DaemonSet, reason: &str, message: &str) {
    berth_events::record(client, set, ("Normal", reason, message), COMPONENT).await;
}

/// The set's status from its nodes' pods, written when it changed.
async fn report(
    client: &Client,
    set: &DaemonSet,
    survey: &Survey,
    hash: &str,
) -> Result<(), kube::Error> {
    let wanted: Vec<&NodeState> = survey.nodes.values().filter(|s| s.should_run).collect();
    let count = |f: &dyn Fn(&NodeState) -> bool| wanted.iter().filter(|s| f(s)).count() as i32;
    let desired = wanted.len() as i32;
    let current = count(&|s| !s.pods.is_empty());
    let ready_count = count(&|s| s.pods.iter().any(|p| ready(p)));
    let updated = count(&|s| s.pods.iter().any(|p| has_hash(p, hash)));
    let misscheduled = survey
        .nodes
        .values()
        .filter(|s| !s.should_run && !s.pods.is_empty())
        .count() as i32;
    let status = json!({
        "desiredNumberScheduled": desired,
        "currentNumberScheduled": current,
        "numberMisscheduled": misscheduled,
        "numberReady": ready_count,
        "numberAvailable": ready_count,
        "numberUnavailable": desired - ready_count,
        "updatedNumberScheduled": updated,
        "observedGeneration": set.metadata.generation,
    });
    let previous = set.status.clone().unwrap_or_default();
    let unchanged = previous.desired_number_scheduled == desired
        && previous.current_number_scheduled == current
        && previous.number_misscheduled == misscheduled
        && previous.number_ready == ready_count
        && previous.number_available.unwrap_or(0) == ready_count
        && previous.updated_number_scheduled.unwrap_or(0) == updated
        && previous.observed_generation == set.metadata.generation;
    if unchanged {
        return Ok(());
    }
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), &set.namespace().unwrap_or_default());
    api.patch_status(
        &set.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": status})),
    )
    .await
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> DaemonSet {
        serde_json::from_value(json!({"metadata": {"name": "agent", "uid": "u"}, "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                         "spec": {"nodeSelector": {"disk": "ssd"},
                                  "containers": [{"name": "c", "image": "i"}]}}}}))
        .unwrap()
    }

    fn node(name: &str, labels: serde_json::Value, taints: serde_json::Value) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels},
                                      "spec": {"taints": taints}}))
        .unwrap()
    }

    fn revision(set: &DaemonSet) -> Revision {
        Revision {
            name: "agent-h".into(),
            hash: "h".into(),
            template: set.spec.clone().unwrap().template,
        }
    }

    #[test]
    fn pods_go_where_labels_admit_and_taints_are_tolerated() {
        let set = set();
        let ssd = json!({"disk": "ssd"});
        let cases = [
            (node("a", ssd.clone(), json!([])), (true, true)),
            (node("b", json!({"disk": "hdd"}), json!([])), (false, false)),
            (
                node(
                    "c",
                    ssd.clone(),
                    json!([{"key": "gpu", "effect": "NoSchedule"}]),
                ),
                (false, true),
            ),
            (
                node(
                    "d",
                    ssd.clone(),
                    json!([{"key": "gpu", "effect": "NoExecute"}]),
                ),
                (false, false),
            ),
            // Cordoned and unreachable nodes keep their daemons.
            (
                node(
                    "e",
                    ssd,
                    json!([
                    {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
                    {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]),
                ),
                (true, true),
            ),
        ];
        for (node, expected) in cases {
            let pod = pod_for(&set, &revision(&set), &node.name_any()).unwrap();
            assert_eq!(
                placement(&placed(pod), &node),
                expected,
                "{}",
                node.name_any()
            );
        }
    }

    #[test]
    fn each_pod_names_its_node() {
        let set = set();
        let pod = pod_for(&set, &revision(&set), "sim-2").unwrap();
        assert_eq!(node_of(&placed(pod.clone())).as_deref(), Some("sim-2"));
        assert_eq!(pod.labels().get(HASH_LABEL).map(String::as_str), Some("h"));
        let tolerations = pod.spec.unwrap().tolerations.unwrap();
        assert_eq!(tolerations.len(), TOLERATIONS.len());
    }
}
