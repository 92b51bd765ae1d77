//! The scheduler: places each pending pod of `default-scheduler` on a node that can take
//! it, and binds it there through `pods/binding`, as kube-scheduler does.
//!
//! Filters: the node is Ready and schedulable; the pod tolerates its NoSchedule and
//! NoExecute taints; the pod's nodeSelector matches its labels; the pod's CPU and memory
//! requests and one more pod fit what is allocatable beside the pods already there.
//! Score: the least allocated node (CPU and memory fractions after placing the pod).
//! A pod that fits nowhere stays Pending with a `FailedScheduling` event and a
//! PodScheduled=False condition saying why, in kube-scheduler's words, and is tried
//! again whenever the cluster changes.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::reflector::Store;
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::quantity::milli;
use crate::watched::Watched;

/// The scheduler's name, which pods ask for in `spec.schedulerName`.
pub const NAME: &str = "default-scheduler";

/// How many bindings are sent at once.
const BINDINGS_IN_FLIGHT: usize = 64;

/// How often pending pods are looked at again when nothing changed.
const RETRY: Duration = Duration::from_secs(5);

/// Runs the scheduler until the client's watches end.
pub async fn run(client: Client) {
    let mut watched = Watched::default();
    let nodes = watched.cache(Api::<Node>::all(client.clone())).await;
    let pods = watched.cache(Api::<Pod>::all(client.clone())).await;
    let mut reported: HashMap<String, String> = HashMap::new();
    loop {
        schedule_pending(&client, &nodes, &pods, &mut reported).await;
        if !watched.next_change(RETRY).await {
            return;
        }
    }
}

/// What one node has left, as the scheduler counts it.
struct Room {
    node: std::sync::Arc<Node>,
    cpu: (i128, i128),
    memory: (i128, i128),
    pods: (i128, i128),
    /// CPU and memory as scoring counts them: requests left out count as the defaults.
    scored: (i128, i128),
}

impl Room {
    fn name(&self) -> String {
        self.node.name_any()
    }
}

/// CPU and memory requests of a pod, in millis.
fn requests(pod: &Pod) -> (i128, i128) {
    requests_at_least(pod, (0, 0))
}

/// What scoring counts a container as requesting when it requests nothing, as
/// kube-scheduler's non-zero requests: 100 millicores and 200 MiB. Without them, pods
/// that request nothing would all score alike and pile onto one node.
const SCORING_DEFAULTS: (i128, i128) = (100, 200 * 1024 * 1024 * 1000);

/// A pod's CPU and memory requests, in millis, each container's at least `floor`.
fn requests_at_least(pod: &Pod, floor: (i128, i128)) -> (i128, i128) {
    let mut total = (0, 0);
    for container in pod.spec.iter().flat_map(|s| &s.containers) {
        let requests = container
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref());
        let get = |key: &str| {
            requests
                .and_then(|r| r.get(key))
                .and_then(|q| milli(&q.0))
                .unwrap_or(0)
        };
        let (cpu, memory) = (get("cpu"), get("memory"));
        total.0 += if cpu == 0 { floor.0 } else { cpu };
        total.1 += if memory == 0 { floor.1 } else { memory };
    }
    total
}

fn allocatable(node: &Node, key: &str) -> i128 {
    node.status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .and_then(|a| a.get(key))
        .and_then(|q| milli(&q.0))
        .unwrap_or(0)
}

/// Every node's room, from the pods bound to it that have not finished.
fn rooms(nodes: &Store<Node>, pods: &Store<Pod>) -> Vec<Room> {
    let mut used: HashMap<String, (i128, i128, i128, (i128, i128))> = HashMap::new();
    for pod in pods.state() {
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            continue;
        };
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            continue;
        }
        let (cpu, memory) = requests(&pod);
        let scored = requests_at_least(&pod, SCORING_DEFAULTS);
        let entry = used.entry(node).or_default();
        *entry = (
            entry.0 + cpu,
            entry.1 + memory,
            entry.2 + 1000,
            (entry.3.0 + scored.0, entry.3.1 + scored.1),
        );
    }
    nodes
        .state()
        .into_iter()
        .map(|node| {
            let (cpu, memory, count, scored) =
                used.get(&node.name_any()).copied().unwrap_or_default();
            Room {
                scored,
                cpu: (cpu, allocatable(&node, "cpu")),
                memory: (memory, allocatable(&node, "memory")),
                pods: (count, allocatable(&node, "pods")),
                node,
            }
        })
        .collect()
}

/// Why `node` cannot take `pod`, in kube-scheduler's words; None when it can.
fn unfit(room: &Room, pod: &Pod, (cpu, memory): (i128, i128)) -> Option<String> {
    let node = &room.node;
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    if !ready {
        return Some("node(s) were not ready".into());
    }
    let spec = node.spec.as_ref();
    if spec.and_then(|s| s.unschedulable).unwrap_or(false) {
        return Some("node(s) were unschedulable".into());
    }
    let pod_spec = pod.spec.as_ref();
    let tolerations = pod_spec
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default();
    for taint in spec.and_then(|s| s.taints.as_ref()).into_iter().flatten() {
        let blocking = matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute");
        if blocking && !tolerations.iter().any(|t| tolerates(t, taint)) {
            let value = taint.value.as_deref().unwrap_or_default();
            return Some(format!(
                "node(s) had untolerated taint {{{}: {value}}}",
                taint.key
            ));
        }
    }
    let labels = node.metadata.labels.as_ref();
    let selector = pod_spec.and_then(|s| s.node_selector.as_ref());
    if selector
        .into_iter()
        .flatten()
        .any(|(k, v)| labels.and_then(|l| l.get(k)) != Some(v))
    {
        return Some("node(s) didn't match Pod's node affinity/selector".into());
    }
    if room.pods.0 + 1000 > room.pods.1 {
        return Some("Too many pods".into());
    }
    if room.cpu.0 + cpu > room.cpu.1 {
        return Some("Insufficient cpu".into());
    }
    if room.memory.0 + memory > room.memory.1 {
        return Some("Insufficient memory".into());
    }
    None
}

/// Whether `toleration` tolerates `taint`, as Kubernetes matches them.
fn tolerates(toleration: &k8s_openapi::api::core::v1::Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => key.is_empty() || key == taint.key,
        _ => key == taint.key && toleration.value.as_deref() == taint.value.as_deref().or(Some("")),
    }
}

/// How full the node would be with the pod, by scoring requests: lower is better
/// (least allocated).
fn fullness(room: &Room, (cpu, memory): (i128, i128)) -> f64 {
    let (cpu_total, memory_total) = (room.cpu.1, room.memory.1);
    let fraction = |(used, total): (i128, i128), more: i128| {
        if total <= 0 {
            1.0
        } else {
            (used + more) as f64 / total as f64
        }
    };
    fraction((room.scored.0, cpu_total), cpu) + fraction((room.scored.1, memory_total), memory)
}

fn pending(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    spec.is_some_and(|s| s.node_name.as_deref().unwrap_or_default().is_empty())
        && spec
            .and_then(|s| s.scheduler_name.as_deref())
            .unwrap_or(NAME)
            == NAME
        && pod.metadata.deletion_timestamp.is_none()
}

/// One pass: every pending pod placed where it fits best, or told why it cannot be.
async fn schedule_pending(
    client: &Client,
    nodes: &Store<Node>,
    pods: &Store<Pod>,
    reported: &mut HashMap<String, String>,
) {
    let mut rooms = rooms(nodes, pods);
    let mut waiting: Vec<_> = pods.state().into_iter().filter(|p| pending(p)).collect();
    waiting.sort_by_key(|p| p.metadata.creation_timestamp.clone());
    let mut placed = Vec::new();
    for pod in waiting {
        let uid = pod.uid().unwrap_or_default();
        let demand = requests(&pod);
        let scored = requests_at_least(&pod, SCORING_DEFAULTS);
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        let mut best: Option<(f64, usize)> = None;
        for (index, room) in rooms.iter().enumerate() {
            match unfit(room, &pod, demand) {
                Some(reason) => *reasons.entry(reason).or_default() += 1,
                None => {
                    let score = fullness(room, scored);
                    if best.is_none_or(|(b, _)| score < b) {
                        best = Some((score, index));
                    }
                }
            }
        }
        match best {
            Some((_, index)) => {
                let room = &mut rooms[index];
                room.cpu.0 += demand.0;
                room.memory.0 += demand.1;
                room.pods.0 += 1000;
                room.scored = (room.scored.0 + scored.0, room.scored.1 + scored.1);
                reported.remove(&uid);
                placed.push((pod, room.name()));
            }
            None => {
                let message = unschedulable_message(rooms.len(), &reasons);
                if reported.get(&uid) != Some(&message) {
                    report_unschedulable(client, &pod, &message).await;
                    reported.insert(uid, message);
                }
            }
        }
    }
    // Bindings go out together; one that fails is tried again in the next pass, from
    // what the cache then says.
    futures_util::StreamExt::for_each_concurrent(
        futures_util::stream::iter(placed),
        BINDINGS_IN_FLIGHT,
        |(pod, node)| async move {
            bind(client, &pod, &node).await;
        },
    )
    .await;
}

/// `0/3 nodes are available: 2 Insufficient cpu, 1 node(s) had untolerated taint {…}.`
fn unschedulable_message(nodes: usize, reasons: &BTreeMap<String, usize>) -> String {
    let mut reasons: Vec<String> = reasons
        .iter()
        .map(|(reason, count)| format!("{count} {reason}"))
        .collect();
    reasons.sort();
    if reasons.is_empty() {
        return format!("0/{nodes} nodes are available.");
    }
    format!("0/{nodes} nodes are available: {}.", reasons.join(", "))
}

/// Binds the pod to the node; a failure (the pod bound meanwhile, or gone) is logged.
async fn bind(client: &Client, pod: &Pod, node: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let binding = json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": pod.name_any(), "namespace": pod.namespace()},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    let bound = pods
        .create_subresource::<_, serde_json::Value>(
            "binding",
            &pod.name_any(),
            &PostParams::default(),
            &binding,
        )
        .await;
    if let Err(error) = bound {
        tracing::debug!(%error, pod = %pod.name_any(), "binding failed");
    }
}

/// The FailedScheduling event and the PodScheduled=False condition.
async fn report_unschedulable(client: &Client, pod: &Pod, message: &str) {
    let namespace = pod.namespace().unwrap_or_default();
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    // Only the version of the pod that was judged: if it was bound meanwhile (by another
    // scheduler, or by hand), the patch fails instead of undoing that.
    let condition = json!({"metadata": {"resourceVersion": pod.resource_version()}, "status": {"conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": message, "lastProbeTime": null, "lastTransitionTime": now,
    }]}});
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    if let Err(error) = pods
        .patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(&condition),
        )
        .await
    {
        tracing::debug!(%error, pod = %pod.name_any(), "could not mark the pod unschedulable");
    }
    crate::events::record(client, pod, ("Warning", "FailedScheduling", message), NAME).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_kube_scheduler_s() {
        let reasons = BTreeMap::from([
            ("Insufficient cpu".to_string(), 2),
            (
                "node(s) had untolerated taint {dedicated: gpu}".to_string(),
                1,
            ),
        ]);
        assert_eq!(
            unschedulable_message(3, &reasons),
            "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu."
        );
    }
}
