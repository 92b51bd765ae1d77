//! Which nodes a pod asks for: its nodeSelector and its node affinity — required terms
//! (any one term, all of whose requirements hold) and preferred terms (weights of the
//! terms a node meets). `matchFields` knows `metadata.name`, which DaemonSet pods use to
//! name their node.

use k8s_openapi::api::core::v1::{
    Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PreferredSchedulingTerm,
};
use kube::ResourceExt;

use crate::cached_pod::CachedPod;
use crate::labels::{has_all, requirement_holds};

/// Whether the pod's nodeSelector and required node affinity admit the node.
pub(crate) fn admits(pod: &CachedPod, node: &Node) -> bool {
    let spec = pod.spec.as_ref();
    let selected = spec
        .and_then(|s| s.extras().node_selector.as_ref())
        .is_none_or(|wanted| has_all(wanted, &node.metadata.labels));
    let required = spec
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    selected && required.is_none_or(|selector| selector_admits(selector, node))
}

/// Whether any term of `selector` holds for the node (a pod's required affinity, or a
/// local PersistentVolume's node affinity).
pub(crate) fn selector_admits(selector: &NodeSelector, node: &Node) -> bool {
    selector
        .node_selector_terms
        .iter()
        .any(|term| term_matches(term, node))
}

/// The pod's preferred node affinity terms.
fn preferred_terms(pod: &CachedPod) -> &[PreferredSchedulingTerm] {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or_default()
}

/// The summed weights of the pod's preferred node affinity terms the node meets.
pub(crate) fn preference(pod: &CachedPod, node: &Node) -> i64 {
    preferred_terms(pod)
        .iter()
        .filter(|p| term_matches(&p.preference, node))
        .map(|p| i64::from(p.weight))
        .sum()
}

/// Whether the pod has preferred node affinity terms at all.
pub(crate) fn has_preferences(pod: &CachedPod) -> bool {
    !preferred_terms(pod).is_empty()
}

/// A term holds when all its requirements do; a term without any matches no node.
fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node.labels();
    let name = node.name_any();
    expressions
        .iter()
        .all(|r| holds(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            let value = (r.key == "metadata.name").then_some(name.as_str());
            holds(r, value)
        })
}

fn holds(requirement: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    requirement_holds(&requirement.operator, value, requirement.values.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, zone: &str) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": {"zone": zone}}}))
            .unwrap()
    }

    fn pod(affinity: serde_json::Value) -> CachedPod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {
            "containers": [], "affinity": {"nodeAffinity": affinity}}}))
        .unwrap()
    }

    #[test]
    fn required_terms_are_ored_and_fields_name_the_node() {
        let pod = pod(json!({"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n3"]}]},
        ]}}));
        assert!(admits(&pod, &node("n1", "a")));
        assert!(!admits(&pod, &node("n2", "b")));
        assert!(admits(&pod, &node("n3", "b")));
    }

    #[test]
    fn preferences_add_the_weights_of_terms_met() {
        let pod = pod(json!({"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
            {"weight": 5, "preference": {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}},
        ]}));
        assert_eq!(preference(&pod, &node("n1", "a")), 15);
        assert_eq!(preference(&pod, &node("n2", "b")), 5);
    }
}
