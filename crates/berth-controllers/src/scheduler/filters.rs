//! The filters a node must pass to take a pod, in kube-scheduler's order and words:
//! NodeUnschedulable, TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit,
//! PodTopologySpread, InterPodAffinity. The first a node fails is its reason, and says
//! whether evicting lower-priority pods could help (preemption).

use k8s_openapi::api::core::v1::{Taint, Toleration};

use super::node_affinity;
use super::snapshot::{Demand, HostPort, NodeInfo};
use super::topology::{Guarded, NamespaceLabels, PodAffinity, Spread};
use crate::cached_pod::CachedPod;

/// Why a node cannot take a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unfit {
    pub reason: String,
    /// Whether removing pods from the node could make room (kube-scheduler's
    /// Unschedulable, against UnschedulableAndUnresolvable).
    pub resolvable: bool,
}

impl Unfit {
    fn resolvable(reason: impl Into<String>) -> Self {
        Unfit {
            reason: reason.into(),
            resolvable: true,
        }
    }

    fn unresolvable(reason: impl Into<String>) -> Self {
        Unfit {
            reason: reason.into(),
            resolvable: false,
        }
    }
}

/// What is worked out once per pod before its nodes are judged.
pub(crate) struct Plan<'a> {
    pub pod: &'a CachedPod,
    pub demand: Demand,
    pub ports: Vec<HostPort>,
    pub affinity: PodAffinity,
    pub spread: Vec<Spread>,
    /// What its PersistentVolumeClaims ask of the node.
    pub volumes: super::volumes::Needs,
}

impl<'a> Plan<'a> {
    pub(crate) fn new(
        pod: &'a CachedPod,
        nodes: &[NodeInfo],
        (guarded, namespaces): (&[Guarded], &NamespaceLabels),
    ) -> Self {
        Plan {
            pod,
            demand: Demand::of(pod),
            ports: HostPort::of(pod),
            affinity: PodAffinity::of(pod, nodes, (guarded, namespaces)),
            spread: Spread::of(pod, nodes),
            volumes: super::volumes::Needs::default(),
        }
    }
}

/// Why the node cannot take the planned pod; None when it can.
pub(crate) fn unfit(node: &NodeInfo, plan: &Plan) -> Option<Unfit> {
    schedulable(node)
        .or_else(|| untolerated(node, plan.pod))
        .or_else(|| {
            (!node_affinity::admits(plan.pod, &node.node))
                .then(|| Unfit::unresolvable("node(s) didn't match Pod's node affinity/selector"))
        })
        .or_else(|| {
            (!plan.volumes.admit(&node.node))
                .then(|| Unfit::unresolvable("node(s) had volume node affinity conflict"))
        })
        .or_else(|| room(node, plan))
        .or_else(|| {
            let unmet = plan.spread.iter().find_map(|s| s.unmet(node));
            unmet.map(Unfit::unresolvable)
        })
        .or_else(|| {
            plan.affinity.unmet(node).map(|reason| Unfit {
                reason: reason.into(),
                resolvable: reason != super::topology::AFFINITY_UNMET,
            })
        })
}

/// Ready and not cordoned.
fn schedulable(node: &NodeInfo) -> Option<Unfit> {
    if !node.ready {
        return Some(Unfit::unresolvable("node(s) were not ready"));
    }
    node.cordoned
        .then(|| Unfit::unresolvable("node(s) were unschedulable"))
}

/// The node's first NoSchedule or NoExecute taint the pod does not tolerate.
fn untolerated(node: &NodeInfo, pod: &CachedPod) -> Option<Unfit> {
    let tolerations = tolerations(pod);
    let taint = node.taints.iter().find(|taint| {
        matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute")
            && !tolerations.iter().any(|t| tolerates(t, taint))
    })?;
    let value = taint.value.as_deref().unwrap_or_default();
    Some(Unfit::unresolvable(format!(
        "node(s) had untolerated taint {{{}: {value}}}",
        taint.key
    )))
}

/// How many PreferNoSchedule taints of the node the pod does not tolerate.
pub(crate) fn untolerated_preferences(node: &NodeInfo, pod: &CachedPod) -> i64 {
    let tolerations = tolerations(pod);
    node.taints
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule" && !tolerations.iter().any(|o| tolerates(o, t)))
        .count() as i64
}

fn tolerations(pod: &CachedPod) -> &[Toleration] {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default()
}

/// Whether `toleration` tolerates `taint`, as Kubernetes matches them.
pub(crate) fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
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

/// Free host ports, then room for the pod's requests and one more pod.
fn room(node: &NodeInfo, plan: &Plan) -> Option<Unfit> {
    if plan
        .ports
        .iter()
        .any(|wanted| node.ports.iter().any(|held| held.clashes(wanted)))
    {
        return Some(Unfit::resolvable(
            "node(s) didn't have free ports for the requested pod ports",
        ));
    }
    let (used, total, asked) = (node.requested, node.allocatable, plan.demand.requests);
    if used.pods + asked.pods > total.pods {
        return Some(Unfit::resolvable("Too many pods"));
    }
    let short = [
        ("cpu", used.cpu, asked.cpu, total.cpu),
        ("memory", used.memory, asked.memory, total.memory),
        (
            "ephemeral-storage",
            used.storage,
            asked.storage,
            total.storage,
        ),
    ]
    .into_iter()
    .find(|(_, used, asked, total)| *asked > 0 && used + asked > *total)?;
    Some(Unfit::resolvable(format!("Insufficient {}", short.0)))
}
