//! Node lifecycle, as kube-controller-manager's: a node whose Lease has not been renewed
//! for the grace period (judged on this controller's clock) becomes NotReady — its Ready
//! condition Unknown, the `node.kubernetes.io/unreachable:NoExecute` taint added — its
//! pods are marked not Ready (as kube's MarkPodsNotReady: Services stop sending them
//! traffic), and each is evicted once it has tolerated that taint for its
//! tolerationSeconds (the default when it names none); their controllers make new ones
//! elsewhere. A node heard from again gets its taint removed and is Ready again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth_runner::{Action, Cache, Controller, Informers};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Taint};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::cached_pod::CachedPod;
use crate::lock;

/// The taint of a node the controller has not heard from.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// The source its events about nodes and their pods name, as kube-controller-manager's.
const COMPONENT: &str = "node-controller";

/// How long nodes may be silent, and how long their pods tolerate it by default.
#[derive(Debug, Clone, Copy)]
pub struct Lifecycle {
    /// `--node-monitor-grace-period` (Kubernetes: 20 s).
    pub grace_period: Duration,
    /// `--default-unreachable-toleration-seconds` (30 s here, as the issue asks).
    pub default_toleration: Duration,
}

/// How often a node that is silent or says it is not ready is looked at again: its pods
/// are marked not ready (those bound since too) and evicted on time.
const PERIOD: Duration = Duration::from_secs(1);

/// When this controller last saw each node's Lease change.
type Heard = HashMap<String, (Option<String>, Instant)>;

/// Runs the controller until the client's watches end: called for each node when it
/// changes, when its Lease does, and when it would have been silent for the grace
/// period.
pub async fn run(client: Client, informers: Informers, lifecycle: Lifecycle) {
    let leases = informers.cache::<Lease>().await;
    let pods = informers.cache::<CachedPod>().await;
    let controller = Controller::<Node>::new(&informers)
        .await
        .watches::<Lease>(|lease| match lease.namespace().as_deref() {
            Some(LEASES) => vec![ObjectRef::new(&lease.name_any())],
            _ => Vec::new(),
        })
        .await;
    let heard: Mutex<Heard> = Mutex::default();
    let (client, caches, heard) = (&client, (&leases, &pods), &heard);
    controller
        .run_or_gone(
            |node| async move { watch_over(client, &node, caches, heard, lifecycle).await },
            |gone| async move {
                lock(heard).remove(&gone.name);
                Ok(Action::AwaitChange)
            },
        )
        .await;
}

/// The namespace of the nodes' Leases.
const LEASES: &str = "kube-node-lease";

fn unreachable_taint(node: &Node) -> Option<&Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .and_then(|t| t.iter().find(|t| t.key == UNREACHABLE))
}

async fn watch_over(
    client: &Client,
    node: &Node,
    (leases, pods): (&Cache<Lease>, &Cache<CachedPod>),
    heard: &Mutex<Heard>,
    lifecycle: Lifecycle,
) -> Result<Action, kube::Error> {
    let name = node.name_any();
    let lease = leases.get(&ObjectRef::new(&name).within(LEASES));
    let renewed = lease
        .and_then(|l| l.spec.clone())
        .and_then(|s| s.renew_time)
        .map(|t| t.0.to_string());
    let since = {
        let mut heard = lock(heard);
        let entry = heard
            .entry(name.clone())
            .or_insert((renewed.clone(), Instant::now()));
        if entry.0 != renewed {
            *entry = (renewed, Instant::now());
        }
        entry.1.elapsed()
    };
    let silent = since > lifecycle.grace_period;
    // A node heard from is looked at again when it would have been silent too long.
    let until_silent = Action::RequeueAfter(
        lifecycle.grace_period.saturating_sub(since) + Duration::from_millis(10),
    );
    match (silent, unreachable_taint(node)) {
        (true, None) => mark(client, node, true).await?,
        (false, Some(_)) => {
            mark(client, node, false).await?;
            return Ok(until_silent);
        }
        (true, Some(taint)) => {
            mark_pods_not_ready(client, &name, pods).await?;
            evict(client, node, taint, pods, lifecycle.default_toleration).await?;
        }
        // A node its agent itself says is not ready: its pods are not either.
        (false, None) if said_not_ready(node) => {
            mark_pods_not_ready(client, &name, pods).await?;
        }
        (false, None) => return Ok(until_silent),
    }
    Ok(Action::RequeueAfter(PERIOD))
}

/// Whether the node's Ready condition is True.
pub(crate) fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Whether the node has a Ready condition that is not True.
fn said_not_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status != "True")
}

/// Marks the node unreachable (Ready Unknown, tainted) or reachable again.
async fn mark(client: &Client, node: &Node, unreachable: bool) -> Result<(), kube::Error> {
    let api: Api<Node> = Api::all(client.clone());
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let mut taints: Vec<serde_json::Value> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.key != UNREACHABLE)
        .filter_map(|t| serde_json::to_value(t).ok())
        .collect();
    let (status, reason, message) = if unreachable {
        taints.push(json!({"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": now}));
        (
            "Unknown",
            "NodeStatusUnknown",
            "Kubelet stopped posting node status.",
        )
    } else {
        ("True", "KubeletReady", "kubelet is posting ready status")
    };
    let mut conditions: Vec<serde_json::Value> = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ != "Ready")
        .filter_map(|c| serde_json::to_value(c).ok())
        .collect();
    conditions.push(json!({
        "type": "Ready", "status": status, "reason": reason, "message": message,
        "lastHeartbeatTime": now, "lastTransitionTime": now,
    }));
    let name = node.name_any();
    // The condition before the taint: a node seen between the two is then either still
    // tainted (and marked again) or, coming back, never untainted while not Ready —
    // which would read as its agent saying it is not ready.
    let status = json!({"status": {"conditions": conditions}});
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    let spec = json!({"spec": {"taints": taints}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&spec))
        .await?;
    let reason = if unreachable {
        "NodeNotReady"
    } else {
        "NodeReady"
    };
    let message = format!("Node {name} status is now: {reason}");
    berth_events::record(client, node, ("Normal", reason, &message), COMPONENT).await;
    tracing::info!(node = %name, unreachable, "node reachability changed");
    Ok(())
}

/// Sets the Ready condition of each of the node's pods that has one to False, as kube's
/// MarkPodsNotReady does: the silent node's agent cannot say they are ready, so nothing
/// should count on them. Each pod so marked gets a NodeNotReady event. Done on every
/// look, so that pods bound to the node later, or whose update failed, are marked too.
async fn mark_pods_not_ready(
    client: &Client,
    node: &str,
    pods: &Cache<CachedPod>,
) -> Result<(), kube::Error> {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    for pod in pods.state() {
        if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(node) {
            continue;
        }
        let ready = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
        if !ready
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status != "False")
        {
            continue;
        }
        // Conditions merge by type: only Ready changes, as the node lifecycle controller
        // changes it. The revision read is a precondition: a pod changed since is looked
        // at again.
        let patch = json!({
            "metadata": {"resourceVersion": pod.resource_version()},
            "status": {"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now}]},
        });
        let api: Api<CachedPod> =
            Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
        match api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
        {
            Ok(_) => {}
            // Gone, or changed since it was read: the next look sees it anew.
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => continue,
            Err(error) => return Err(error),
        }
        let event = ("Warning", "NodeNotReady", "Node is not ready");
        berth_events::record(client, pod.as_ref(), event, COMPONENT).await;
        tracing::info!(pod = %pod.name_any(), node, "marked not ready: its node is silent");
    }
    Ok(())
}

/// Deletes the node's pods that have tolerated the unreachable taint long enough.
async fn evict(
    client: &Client,
    node: &Node,
    taint: &Taint,
    pods: &Cache<CachedPod>,
    default_toleration: Duration,
) -> Result<(), kube::Error> {
    let tainted_at = taint
        .time_added
        .as_ref()
        .map_or(k8s_openapi::jiff::Timestamp::now(), |t| t.0);
    let tainted_for = k8s_openapi::jiff::Timestamp::now().duration_since(tainted_at);
    let tainted_for = Duration::try_from(tainted_for).unwrap_or_default();
    let name = node.name_any();
    for pod in pods.state() {
        let on_node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&name);
        if !on_node || pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if tainted_for < toleration(&pod, default_toleration) {
            continue;
        }
        let api: Api<CachedPod> =
            Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
        api.delete(&pod.name_any(), &DeleteParams::default())
            .await?;
        tracing::info!(pod = %pod.name_any(), node = %name, "evicted from an unreachable node");
    }
    Ok(())
}

/// How long the pod tolerates its node being unreachable: its own toleration's
/// seconds, for ever if it tolerates without a limit, else the default.
fn toleration(pod: &CachedPod, default: Duration) -> Duration {
    let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.as_ref());
    let own = tolerations.into_iter().flatten().find(|t| {
        let key = t.key.as_deref().unwrap_or_default();
        (key == UNREACHABLE || (key.is_empty() && t.operator.as_deref() == Some("Exists")))
            && t.effect
                .as_deref()
                .is_none_or(|e| e.is_empty() || e == "NoExecute")
    });
    match own {
        Some(t) => t
            .toleration_seconds
            .map_or(Duration::MAX, |s| Duration::from_secs(s.max(0) as u64)),
        None => default,
    }
}
