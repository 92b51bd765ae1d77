//! Ranking the nodes that can take a pod, with kube-scheduler's default score plugins
//! and weights: NodeResourcesFit (least allocated, 1), NodeResourcesBalancedAllocation
//! (1), NodeAffinity (preferred terms, 2), InterPodAffinity (preferred terms, 2),
//! PodTopologySpread (ScheduleAnyway constraints, 2), TaintToleration (PreferNoSchedule
//! taints, 3). Each plugin scores 0–100; those that compare nodes with each other are
//! normalized over the feasible nodes, as upstream.

use super::filters::{Plan, untolerated_preferences};
use super::node_affinity;
use super::snapshot::NodeInfo;

/// The highest score a plugin gives.
const MAX: i64 = 100;

/// The fraction of CPU and of memory the node would have requested with the pod.
fn fractions(node: &NodeInfo, plan: &Plan) -> (f64, f64) {
    let fraction = |used: i128, more: i128, total: i128| {
        if total <= 0 {
            1.0
        } else {
            (as_f64(used + more) / as_f64(total)).min(1.0)
        }
    };
    let scored = plan.demand.scored;
    (
        fraction(node.scored.0, scored.0, node.allocatable.cpu),
        fraction(node.scored.1, scored.1, node.allocatable.memory),
    )
}

/// An amount as a float: through i64 when it fits (every real amount does), which the
/// processor converts in one instruction where i128 takes a call (4% of a backlog's
/// scheduling).
fn as_f64(amount: i128) -> f64 {
    match i64::try_from(amount) {
        Ok(amount) => amount as f64,
        Err(_) => amount as f64,
    }
}

/// Least allocated plus balanced allocation: what every pod is scored by.
fn resources(node: &NodeInfo, plan: &Plan) -> f64 {
    let (cpu, memory) = fractions(node, plan);
    let least = (1.0 - cpu + 1.0 - memory) / 2.0 * MAX as f64;
    // The standard deviation of two fractions is half their difference.
    let balanced = (1.0 - (cpu - memory).abs() / 2.0) * MAX as f64;
    least + balanced
}

/// The raw scores of the plugins that are normalized over the feasible nodes.
#[derive(Default, Clone, Copy)]
struct Relative {
    node_affinity: i64,
    pod_affinity: i64,
    crowding: Option<i64>,
    taints: i64,
}

/// Whether anything but the node's resources can tell nodes apart for this pod; when
/// not (most pods), ranking needs no second pass over the nodes.
fn only_resources_count(plan: &Plan) -> bool {
    !node_affinity::has_preferences(plan.pod)
        && !plan.affinity.has_preferences()
        && !plan.spread.iter().any(super::topology::Spread::is_soft)
}

/// The best of `feasible` (indexes into `nodes`), by the summed weighted scores; the
/// first of equals wins.
pub(crate) fn best(nodes: &[NodeInfo], feasible: &[usize], plan: &Plan) -> Option<usize> {
    if only_resources_count(plan) {
        return pick(feasible.iter().map(|&i| (i, resources(&nodes[i], plan))));
    }
    let raw: Vec<Relative> = feasible
        .iter()
        .map(|&i| {
            let node = &nodes[i];
            Relative {
                node_affinity: node_affinity::preference(plan.pod, &node.node),
                pod_affinity: plan.affinity.preference(node),
                crowding: plan
                    .spread
                    .iter()
                    .filter_map(|s| s.crowding(node))
                    .reduce(|a, b| a + b),
                taints: untolerated_preferences(node, plan.pod),
            }
        })
        .collect();
    let node_affinity = scale(raw.iter().map(|r| r.node_affinity), false);
    let pod_affinity = scale(raw.iter().map(|r| r.pod_affinity), false);
    let crowding = scale(raw.iter().map(|r| r.crowding.unwrap_or(0)), true);
    let taints = scale(raw.iter().map(|r| r.taints), true);
    pick(feasible.iter().enumerate().map(|(at, &i)| {
        let relative =
            2.0 * (node_affinity(at) + pod_affinity(at) + crowding(at)) + 3.0 * taints(at);
        (i, resources(&nodes[i], plan) + relative)
    }))
}

/// The first index with the highest score.
fn pick(scores: impl Iterator<Item = (usize, f64)>) -> Option<usize> {
    scores
        .fold(None, |best: Option<(usize, f64)>, (i, score)| match best {
            Some((_, top)) if top >= score => best,
            _ => Some((i, score)),
        })
        .map(|(i, _)| i)
}

/// Raw scores mapped onto 0–100 between their lowest and highest (reversed: fewer is
/// better); all equal scores give every node 0, or 100 when reversed.
fn scale(raw: impl Iterator<Item = i64>, reversed: bool) -> impl Fn(usize) -> f64 {
    let raw: Vec<i64> = raw.collect();
    let low = raw.iter().copied().min().unwrap_or(0);
    let high = raw.iter().copied().max().unwrap_or(0);
    move |at| {
        let value = raw[at];
        let spread = (high - low) as f64;
        let up = if spread == 0.0 {
            0.0
        } else {
            (value - low) as f64 / spread
        };
        let score = if reversed { 1.0 - up } else { up };
        score * MAX as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_map_onto_the_range_both_ways() {
        let up = scale([2, 4, 6].into_iter(), false);
        assert_eq!((up(0), up(1), up(2)), (0.0, 50.0, 100.0));
        let down = scale([2, 4, 6].into_iter(), true);
        assert_eq!((down(0), down(2)), (100.0, 0.0));
        let flat = scale([3, 3].into_iter(), true);
        assert_eq!(flat(1), 100.0);
    }

    #[test]
    fn the_first_of_equals_wins() {
        assert_eq!(pick([(4, 1.0), (7, 3.0), (9, 3.0)].into_iter()), Some(7));
        assert_eq!(pick(std::iter::empty()), None);
    }
}
