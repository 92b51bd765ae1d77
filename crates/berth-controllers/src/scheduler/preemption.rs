//! Preemption: when a pod fits nowhere, find the node where evicting the fewest and
//! least important pods of lower priority would make it fit, as kube-scheduler's
//! DefaultPreemption does — on each node whose failure eviction could cure, remove every
//! lower-priority pod, check the pod fits, then give back the most important of them
//! while it still does (the reprieve). The evicted are the victims.

use std::sync::Arc;

use super::filters::{Plan, Unfit, unfit};
use super::snapshot::NodeInfo;
use crate::cached_pod::CachedPod;

/// A pod's priority, as admission resolved it from its PriorityClass (0 without one).
pub(crate) fn priority(pod: &CachedPod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// The node to take and the pods to evict from it.
pub(crate) struct Preemption {
    pub node: usize,
    pub victims: Vec<Arc<CachedPod>>,
}

/// Why preemption cannot help: the message kube-scheduler appends after `preemption:`.
pub(crate) type NotHelpful = String;

/// The best preemption for the planned pod, given why each node turned it down.
pub(crate) fn find(
    nodes: &[NodeInfo],
    plan: &Plan,
    turned_down: &[(usize, Unfit)],
) -> Result<Preemption, NotHelpful> {
    let policy = plan
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.preemption_policy.as_deref());
    if policy == Some("Never") {
        return Err("not eligible due to preemptionPolicy=Never.".into());
    }
    let mut unhelpful = 0;
    let mut no_victims = 0;
    let mut best: Option<(Preemption, (i32, i64, usize))> = None;
    for (index, why) in turned_down {
        if !why.resolvable {
            unhelpful += 1;
            continue;
        }
        let Some(victims) = victims_on(&nodes[*index], plan) else {
            no_victims += 1;
            continue;
        };
        let cost = cost(&victims);
        if best.as_ref().is_none_or(|(_, least)| cost < *least) {
            best = Some((
                Preemption {
                    node: *index,
                    victims,
                },
                cost,
            ));
        }
    }
    best.map(|(preemption, _)| preemption)
        .ok_or_else(|| none_helps(turned_down.len(), unhelpful, no_victims))
}

/// The fewest pods to evict from `node` so the pod fits, or None when evicting every
/// lower-priority pod would not be enough (or there is none).
fn victims_on(node: &NodeInfo, plan: &Plan) -> Option<Vec<Arc<CachedPod>>> {
    let mine = priority(plan.pod);
    let mut lower: Vec<Arc<CachedPod>> = node
        .pods
        .iter()
        .filter(|p| priority(p) < mine)
        .cloned()
        .collect();
    if lower.is_empty() {
        return None;
    }
    let mut trial = node.without(|p| priority(p) < mine);
    if unfit(&trial, plan).is_some() {
        return None;
    }
    // The most important first, each kept if the pod still fits beside it.
    lower.sort_by_key(|p| std::cmp::Reverse(priority(p)));
    let mut victims = Vec::new();
    for pod in lower {
        let mut kept = trial.clone();
        kept.add(Arc::clone(&pod));
        if unfit(&kept, plan).is_none() {
            trial = kept;
        } else {
            victims.push(pod);
        }
    }
    Some(victims)
}

/// Cheapest first: the lowest highest victim priority, the lowest sum, the fewest pods.
fn cost(victims: &[Arc<CachedPod>]) -> (i32, i64, usize) {
    let highest = victims
        .iter()
        .map(|p| priority(p))
        .max()
        .unwrap_or(i32::MIN);
    let sum = victims.iter().map(|p| i64::from(priority(p))).sum();
    (highest, sum, victims.len())
}

/// `0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No
/// preemption victims found for incoming pod.`
fn none_helps(nodes: usize, unhelpful: usize, no_victims: usize) -> NotHelpful {
    let mut parts = Vec::new();
    if unhelpful > 0 {
        parts.push(format!(
            "{unhelpful} Preemption is not helpful for scheduling"
        ));
    }
    if no_victims > 0 {
        parts.push(format!(
            "{no_victims} No preemption victims found for incoming pod"
        ));
    }
    parts.sort();
    if parts.is_empty() {
        return format!("0/{nodes} nodes are available.");
    }
    format!("0/{nodes} nodes are available: {}.", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_count_nodes_by_why_preemption_fails() {
        assert_eq!(
            none_helps(3, 1, 2),
            "0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
        );
    }
}
