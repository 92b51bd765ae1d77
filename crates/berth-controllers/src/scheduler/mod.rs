//! The scheduler: places each pending pod of `default-scheduler` on a node that can take
//! it, and binds it there through `pods/binding`, as kube-scheduler does.
//!
//! The scheduler keeps a snapshot of the cluster (snapshot.rs: every node and the pods
//! on it) and the pending pods, both brought up to date at the start of each pass from
//! the nodes and pods changed since the last. A pass takes the pending pods by
//! priority, oldest first; for each, the nodes that pass every filter (filters.rs:
//! readiness, cordons, taints, node affinity, host ports, resources, topology spread,
//! pod affinity) are ranked (scores.rs) and the best wins. A pod that fits nowhere may
//! preempt pods of lower priority (preemption.rs); otherwise it stays Pending with a
//! `FailedScheduling` event and a PodScheduled=False condition saying why, in
//! kube-scheduler's words, and is tried again whenever the cluster changes. A placed
//! pod is assumed on its node while its binding is sent apart from the passes.

pub(crate) mod filters;
pub(crate) mod node_affinity;
mod preemption;
mod scores;
mod snapshot;
mod topology;
mod volumes;

pub use volumes::SELECTED_NODE;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use berth_runner::{Cache, ChangedKeys, Changes};
use futures_util::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Namespace, Node, PersistentVolume, PersistentVolumeClaim};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::sync::mpsc;

use berth_runner::Informers;

use crate::cached_pod::CachedPod;
use crate::watched::Watched;
use filters::{Plan, Unfit};
use preemption::{Preemption, priority};
use snapshot::{Assumed, NodeInfo, Snapshot};
use topology::NamespaceLabels;

/// The scheduler's name, which pods ask for in `spec.schedulerName`.
pub const NAME: &str = "default-scheduler";

/// How many bindings are sent at once.
const BINDINGS_IN_FLIGHT: usize = 64;

/// How often pending pods are looked at again when nothing changed.
const RETRY: Duration = Duration::from_secs(5);

/// What the scheduler watches.
struct Caches {
    nodes: Cache<Node>,
    pods: Cache<CachedPod>,
    namespaces: Cache<Namespace>,
    claims: Cache<PersistentVolumeClaim>,
    volumes: Cache<PersistentVolume>,
    /// The nodes and pods changed since the last pass, which the snapshot catches up on.
    changed_nodes: ChangedKeys<Node>,
    changed_pods: ChangedKeys<CachedPod>,
}

/// Runs the scheduler until the client's watches end.
pub async fn run(client: Client, informers: Informers) {
    let mut watched = Watched::new(&informers);
    let caches = Caches {
        nodes: watched.cache::<Node>().await,
        pods: watched.cache::<CachedPod>().await,
        namespaces: watched.cache::<Namespace>().await,
        claims: watched.cache::<PersistentVolumeClaim>().await,
        volumes: watched.cache::<PersistentVolume>().await,
        changed_nodes: informers.changed_keys::<Node>(),
        changed_pods: informers.changed_keys::<CachedPod>(),
    };
    let mut memory = Memory::default();
    let mut binder = Binder::start(&client);
    let mut failed = Vec::new();
    loop {
        memory.catch_up(&caches, std::mem::take(&mut failed));
        schedule_pending(&client, &caches, &mut memory, &binder).await;
        // The next pass comes with the next change, or with a binding that failed; a
        // binding that worked shows in the pod cache.
        tokio::select! {
            changed = watched.next_change(RETRY) => {
                if !changed {
                    return;
                }
            }
            Some(pod) = binder.failed.recv() => failed.push(pod),
        }
    }
}

/// A pod placed on a node, to be bound there (its volumes first).
type Placement = (Arc<CachedPod>, String, volumes::Needs);

/// The bindings, sent by a task of their own so that the next pass need not wait for
/// them: kube-scheduler's binding cycle runs apart from its scheduling cycle, the pod
/// assumed on its node meanwhile. Waiting for a pass's bindings before the next pass
/// made pods created meanwhile wait twice a pass (p99 0.9 s streaming 10,000 pods).
/// Placements queue as small values (a task each for 40,000 placements of a backlog
/// held 100 MB); the pods the task could not bind come back. Dropping the binder
/// (leadership lost) stops it.
struct Binder {
    placements: mpsc::UnboundedSender<Placement>,
    failed: mpsc::UnboundedReceiver<ObjectRef<CachedPod>>,
    task: tokio::task::AbortHandle,
}

impl Binder {
    fn start(client: &Client) -> Binder {
        let (placements, mut queued) = mpsc::unbounded_channel::<Placement>();
        let (failures, failed) = mpsc::unbounded_channel();
        let client = client.clone();
        let task = tokio::spawn(async move {
            stream::poll_fn(|cx| queued.poll_recv(cx))
                .map(|(pod, node, volumes): Placement| {
                    let client = &client;
                    async move {
                        let bound = volumes.select(client, &pod, &node).await
                            && bind(client, &pod, &node).await;
                        (!bound).then(|| ObjectRef::from_obj(pod.as_ref()))
                    }
                })
                .buffer_unordered(BINDINGS_IN_FLIGHT)
                .filter_map(std::future::ready)
                .for_each(|pod| {
                    let _ = failures.send(pod);
                    std::future::ready(())
                })
                .await;
        });
        Binder {
            placements,
            failed,
            task: task.abort_handle(),
        }
    }
}

impl Drop for Binder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn pending(pod: &CachedPod) -> bool {
    let spec = pod.spec.as_ref();
    spec.is_some_and(|s| s.node_name.as_deref().unwrap_or_default().is_empty())
        && spec
            .and_then(|s| s.scheduler_name.as_deref())
            .unwrap_or(NAME)
            == NAME
        && pod.metadata.deletion_timestamp.is_none()
}

/// What the scheduler keeps between passes.
#[derive(Default)]
struct Memory {
    /// The last unschedulable message given each pod (by uid), so it is not repeated.
    reported: HashMap<String, String>,
    /// Pods placed whose binding is in flight or not in the pod cache yet.
    assumed: Assumed,
    /// Every node with the pods on it, assumed ones included.
    snapshot: Snapshot,
    /// The pods of this scheduler without a node, but for the assumed ones.
    pending: HashSet<ObjectRef<CachedPod>>,
    /// Where the next pod's search for nodes starts (see [`enough`]).
    start: usize,
}

impl Memory {
    /// Brings the snapshot and the pending pods up to date with what changed in the
    /// caches since the last pass, and with the pods whose binding `failed` (no longer
    /// assumed: pending again).
    fn catch_up(&mut self, caches: &Caches, failed: Vec<ObjectRef<CachedPod>>) {
        for pod in &failed {
            self.assumed.remove(pod);
        }
        let nodes_current = match caches.changed_nodes.take() {
            Changes::Relisted => false,
            Changes::Keys(keys) => keys.into_iter().all(|key| {
                let node = caches.nodes.get(&key);
                self.snapshot.update_node(&key.name, node)
            }),
        };
        let keys = match caches.changed_pods.take() {
            Changes::Keys(keys) if nodes_current => keys,
            _ => return self.rebuild(caches),
        };
        for key in failed.into_iter().chain(keys) {
            self.recount(caches, key);
        }
    }

    fn recount(&mut self, caches: &Caches, key: ObjectRef<CachedPod>) {
        let pod = caches.pods.get(&key);
        self.snapshot
            .update_pod(key.clone(), pod.clone(), &mut self.assumed);
        if pod.as_deref().is_some_and(pending) && !self.assumed.contains(&key) {
            self.pending.insert(key);
        } else {
            self.pending.remove(&key);
        }
    }

    fn rebuild(&mut self, caches: &Caches) {
        self.snapshot
            .rebuild(&caches.nodes, &caches.pods, &mut self.assumed);
        self.pending = caches
            .pods
            .state()
            .iter()
            .filter(|p| pending(p))
            .map(|p| ObjectRef::from_obj(p.as_ref()))
            .filter(|key| !self.assumed.contains(key))
            .collect();
    }
}

/// What became of one pod in a pass.
enum Outcome {
    Placed(usize),
    Preempting(Preemption, String),
    Unschedulable(String),
}

/// One pass: every pending pod placed where it fits best, or told why it cannot be.
async fn schedule_pending(client: &Client, caches: &Caches, memory: &mut Memory, binder: &Binder) {
    let mut waiting: Vec<_> = memory
        .pending
        .iter()
        .filter_map(|key| caches.pods.get(key))
        .collect();
    // What was said of pods no longer pending (bound or gone) is not needed again.
    let still_pending: HashSet<String> = waiting.iter().filter_map(|p| p.uid()).collect();
    memory.reported.retain(|uid, _| still_pending.contains(uid));
    if waiting.is_empty() {
        return;
    }
    waiting.sort_by_key(|p| {
        (
            std::cmp::Reverse(priority(p)),
            p.metadata.creation_timestamp.clone(),
        )
    });
    let namespaces: NamespaceLabels = caches
        .namespaces
        .state()
        .iter()
        .map(|n| (n.name_any(), n.metadata.labels.clone()))
        .collect();
    let mut guarded = topology::guarded(&memory.snapshot.nodes);
    // Room held for pods waiting on preemption, for this pass only.
    let mut reserved = Vec::new();
    let mut placed = 0;
    for pod in waiting {
        let uid = pod.uid().unwrap_or_default();
        let nodes = &memory.snapshot.nodes;
        let claims = match volumes::Needs::of(&pod, &caches.claims, &caches.volumes) {
            Ok(needs) => needs,
            Err(message) => {
                let message = format!("0/{} nodes are available: {message}.", nodes.len());
                report_once(client, &pod, message, &mut memory.reported).await;
                continue;
            }
        };
        let mut plan = Plan::new(&pod, nodes, (&guarded, &namespaces));
        plan.volumes = claims.clone();
        match decide(nodes, &plan, &mut memory.start) {
            Outcome::Placed(index) => {
                memory.reported.remove(&uid);
                let node = nodes[index].name();
                if topology::guards(&pod) {
                    guarded.push((index, Arc::clone(&pod)));
                }
                let key = ObjectRef::from_obj(pod.as_ref());
                memory.pending.remove(&key);
                memory.assumed.insert(key.clone(), &pod, node.clone());
                memory.snapshot.place(index, key, Arc::clone(&pod));
                let _ = binder.placements.send((pod, node, claims));
                placed += 1;
                if placed % BINDINGS_IN_FLIGHT == 0 {
                    // The binder's wake-up waits on this thread until the pass lets
                    // go of it: a backlog's first binding came after 40,000 placements.
                    tokio::task::yield_now().await;
                }
            }
            Outcome::Preempting(preemption, message) => {
                let node = nodes[preemption.node].name();
                reserved.push((preemption.node, plan.demand));
                memory.snapshot.nodes[preemption.node].reserve(&plan.demand);
                preempt(client, &pod, &node, &preemption.victims).await;
                report_once(client, &pod, message, &mut memory.reported).await;
            }
            Outcome::Unschedulable(message) => {
                if let Some(index) =
                    nominated(&pod).and_then(|n| nodes.iter().position(|i| i.name() == n))
                {
                    reserved.push((index, plan.demand));
                    memory.snapshot.nodes[index].reserve(&plan.demand);
                }
                report_once(client, &pod, message, &mut memory.reported).await;
            }
        }
    }
    for (index, demand) in reserved {
        memory.snapshot.nodes[index].release(&demand);
    }
}

/// How many feasible nodes are enough to choose from, as kube-scheduler's default
/// percentageOfNodesToScore: every node of a cluster under 100, else 50% less 1% per
/// 125 nodes, at least 5% and at least 100 nodes. Judging every node of a large cluster
/// for every pod would cost more than a slightly better choice is worth.
fn enough(nodes: usize) -> usize {
    const AT_LEAST: usize = 100;
    if nodes < AT_LEAST {
        return nodes;
    }
    let percent = 50usize.saturating_sub(nodes / 125).max(5);
    (nodes * percent / 100).max(AT_LEAST)
}

/// Where the pod goes, or why it cannot go anywhere yet. The search starts at `start`
/// and moves it past the nodes it judged, so successive pods look at different nodes.
fn decide(nodes: &[NodeInfo], plan: &Plan, start: &mut usize) -> Outcome {
    let count = nodes.len();
    let wanted = enough(count);
    let mut feasible = Vec::new();
    let mut turned_down: Vec<(usize, Unfit)> = Vec::new();
    let mut judged = 0;
    while judged < count && feasible.len() < wanted {
        let index = (*start + judged) % count;
        match filters::unfit(&nodes[index], plan) {
            None => feasible.push(index),
            Some(why) => turned_down.push((index, why)),
        }
        judged += 1;
    }
    *start = (*start + judged) % count.max(1);
    if let Some(index) = scores::best(nodes, &feasible, plan) {
        return Outcome::Placed(index);
    }
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for (_, why) in &turned_down {
        *reasons.entry(why.reason.clone()).or_default() += 1;
    }
    let message = unschedulable_message(nodes.len(), &reasons);
    match preemption::find(nodes, plan, &turned_down) {
        Ok(preemption) => Outcome::Preempting(preemption, message),
        Err(not_helpful) => Outcome::Unschedulable(format!("{message} preemption: {not_helpful}")),
    }
}

/// The node preemption set aside for the pod, if any.
fn nominated(pod: &CachedPod) -> Option<&str> {
    pod.status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .filter(|n| !n.is_empty())
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

/// Reports the pod unschedulable, unless this was the last thing said about it.
async fn report_once(
    client: &Client,
    pod: &CachedPod,
    message: String,
    reported: &mut HashMap<String, String>,
) {
    let uid = pod.uid().unwrap_or_default();
    if reported.get(&uid) != Some(&message) {
        report_unschedulable(client, pod, &message).await;
        reported.insert(uid, message);
    }
}

/// Evicts the victims (gracefully, as kube-scheduler deletes them) and nominates the
/// node for the pod, which takes it once they are gone.
async fn preempt(client: &Client, pod: &CachedPod, node: &str, victims: &[Arc<CachedPod>]) {
    let uid = pod.uid().unwrap_or_default();
    for victim in victims {
        let api: Api<CachedPod> =
            Api::namespaced(client.clone(), &victim.namespace().unwrap_or_default());
        match api
            .delete(&victim.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => {
                let message = format!("Preempted by pod {uid} on node {node}");
                berth_events::record(
                    client,
                    victim.as_ref(),
                    ("Normal", "Preempted", &message),
                    NAME,
                )
                .await;
            }
            Err(error) => tracing::debug!(%error, victim = %victim.name_any(), "eviction failed"),
        }
    }
    let nomination = json!({"status": {"nominatedNodeName": node}});
    let api: Api<CachedPod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    if let Err(error) = api
        .patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&nomination),
        )
        .await
    {
        tracing::debug!(%error, pod = %pod.name_any(), "could not nominate a node");
    }
}

/// Binds the pod to the node, saying whether it worked; a failure (the pod bound
/// meanwhile, or gone) is logged and the pod tried again in a later pass.
async fn bind(client: &Client, pod: &CachedPod, node: &str) -> bool {
    let pods: Api<CachedPod> =
        Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
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
    match bound {
        Ok(_) => true,
        Err(error) => {
            tracing::debug!(%error, pod = %pod.name_any(), "binding failed");
            false
        }
    }
}

/// The FailedScheduling event and the PodScheduled=False condition.
async fn report_unschedulable(client: &Client, pod: &CachedPod, message: &str) {
    let namespace = pod.namespace().unwrap_or_default();
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    // Only the version of the pod that was judged: if it was bound meanwhile (by another
    // scheduler, or by hand), the patch fails instead of undoing that.
    let condition = json!({"metadata": {"resourceVersion": pod.resource_version()}, "status": {"conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": message, "lastProbeTime": null, "lastTransitionTime": now,
    }]}});
    let pods: Api<CachedPod> = Api::namespaced(client.clone(), &namespace);
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
    berth_events::record(client, pod, ("Warning", "FailedScheduling", message), NAME).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_clusters_are_sampled_as_kube_scheduler_samples_them() {
        assert_eq!(enough(3), 3);
        assert_eq!(enough(100), 100);
        assert_eq!(enough(1000), 420);
        assert_eq!(enough(5000), 500);
        assert_eq!(enough(100_000), 5000);
    }

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
