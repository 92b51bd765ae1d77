//! Where pods are relative to each other: the topology domains (values of a node label
//! such as `kubernetes.io/hostname` or `topology.kubernetes.io/zone`) holding pods that a
//! term selects — for pod affinity and anti-affinity, the anti-affinity of pods already
//! placed, and topology spread constraints.
//!
//! Each is worked out once per pod to schedule, from the pass's snapshot, so judging a
//! node is a lookup of its label's value.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PodAffinityTerm, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kube::ResourceExt;

use super::node_affinity;
use super::snapshot::NodeInfo;
use crate::cached_pod::CachedPod;
use crate::labels::{Labels, selects};

/// The labels of every namespace, for terms with a namespaceSelector.
pub(crate) type NamespaceLabels = HashMap<String, Labels>;

/// How many selected pods each value of one node label holds.
#[derive(Debug, Default)]
pub(crate) struct Domains {
    pub key: String,
    pub counts: HashMap<String, i64>,
}

impl Domains {
    /// How many selected pods share the node's domain; None when the node lacks the key.
    pub(crate) fn at(&self, node: &NodeInfo) -> Option<i64> {
        node.label(&self.key)
            .map(|value| self.counts.get(value).copied().unwrap_or(0))
    }
}

/// Whether `term`, written in a pod of `owner_namespace`, selects `pod`.
fn term_selects(
    term: &PodAffinityTerm,
    owner_namespace: &str,
    pod: &CachedPod,
    namespaces: &NamespaceLabels,
) -> bool {
    let namespace = pod.namespace().unwrap_or_default();
    let listed = term.namespaces.as_deref().unwrap_or_default();
    let in_scope = match &term.namespace_selector {
        None if listed.is_empty() => namespace == owner_namespace,
        None => listed.contains(&namespace),
        Some(selector) => {
            listed.contains(&namespace)
                || selects(selector, namespaces.get(&namespace).unwrap_or(&None))
        }
    };
    in_scope
        && pod.metadata.deletion_timestamp.is_none()
        && term
            .label_selector
            .as_ref()
            .is_some_and(|s| selects(s, pod.labels()))
}

/// The domains of `key` holding pods that `selected` picks, over all nodes.
fn domains(nodes: &[NodeInfo], key: &str, selected: impl Fn(&CachedPod) -> bool) -> Domains {
    let mut found = Domains {
        key: key.to_string(),
        counts: HashMap::new(),
    };
    for node in nodes {
        let Some(value) = node.label(key) else {
            continue;
        };
        let count = node.pods.iter().filter(|p| selected(p)).count() as i64;
        if count > 0 {
            *found.counts.entry(value.to_string()).or_default() += count;
        }
    }
    found
}

/// A pod's affinity and anti-affinity towards the pods already placed, and theirs
/// towards it.
#[derive(Debug, Default)]
pub(crate) struct PodAffinity {
    /// Required affinity: the node's domain must hold a selected pod — unless no pod
    /// anywhere is selected and the pod selects itself (the first of a group).
    required: Vec<(Domains, bool)>,
    /// Required anti-affinity: the node's domain must hold no selected pod.
    anti: Vec<Domains>,
    /// Domains that placed pods' required anti-affinity keeps this pod out of.
    kept_out: Vec<(String, String)>,
    /// Preferred terms: weight (negative for anti-affinity) and where selected pods are.
    preferred: Vec<(i64, Domains)>,
}

/// Why a node fails a pod's affinity, in kube-scheduler's words.
pub(crate) const AFFINITY_UNMET: &str = "node(s) didn't match pod affinity rules";
pub(crate) const ANTI_AFFINITY_UNMET: &str = "node(s) didn't match pod anti-affinity rules";
pub(crate) const EXISTING_ANTI_AFFINITY_UNMET: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";

impl PodAffinity {
    pub(crate) fn of(
        pod: &CachedPod,
        nodes: &[NodeInfo],
        (guarded, namespaces): (&[Guarded], &NamespaceLabels),
    ) -> Self {
        let own = pod.namespace().unwrap_or_default();
        let affinity = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
        let together = affinity.and_then(|a| a.pod_affinity.as_ref());
        let apart = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        let placed = |term: &PodAffinityTerm| {
            domains(nodes, &term.topology_key, |p| {
                term_selects(term, &own, p, namespaces)
            })
        };
        let required = together
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .into_iter()
            .flatten()
            .map(|term| {
                let found = placed(term);
                let first = found.counts.is_empty() && term_selects(term, &own, pod, namespaces);
                (found, first)
            })
            .collect();
        let anti = apart
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .into_iter()
            .flatten()
            .map(placed)
            .collect();
        let weighted =
            |terms: Option<&Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>>,
             sign: i64| {
                terms
                    .into_iter()
                    .flatten()
                    .map(|w| (sign * i64::from(w.weight), placed(&w.pod_affinity_term)))
                    .collect::<Vec<_>>()
            };
        let mut preferred = weighted(
            together.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            }),
            1,
        );
        preferred.extend(weighted(
            apart.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            }),
            -1,
        ));
        PodAffinity {
            required,
            anti,
            kept_out: kept_out(pod, nodes, (guarded, namespaces)),
            preferred,
        }
    }

    /// Why the node fails these rules, if it does.
    pub(crate) fn unmet(&self, node: &NodeInfo) -> Option<&'static str> {
        let kept_out = self
            .kept_out
            .iter()
            .any(|(key, value)| node.label(key) == Some(value.as_str()));
        if kept_out {
            return Some(EXISTING_ANTI_AFFINITY_UNMET);
        }
        if self.anti.iter().any(|d| d.at(node).unwrap_or(0) > 0) {
            return Some(ANTI_AFFINITY_UNMET);
        }
        let met = |(domains, first): &(Domains, bool)| {
            *first || domains.at(node).unwrap_or(0) > 0 && node.label(&domains.key).is_some()
        };
        if !self.required.iter().all(met) {
            return Some(AFFINITY_UNMET);
        }
        None
    }

    /// The preferred terms' raw score on the node: each term's weight times the
    /// selected pods in the node's domain.
    pub(crate) fn preference(&self, node: &NodeInfo) -> i64 {
        self.preferred
            .iter()
            .map(|(weight, domains)| weight * domains.at(node).unwrap_or(0))
            .sum()
    }

    pub(crate) fn has_preferences(&self) -> bool {
        !self.preferred.is_empty()
    }
}

/// A placed pod with required anti-affinity, and the index of its node.
pub(crate) type Guarded = (usize, Arc<CachedPod>);

fn required_anti_affinity(pod: &CachedPod) -> &[PodAffinityTerm] {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or_default()
}

/// Whether the pod keeps others away through required anti-affinity.
pub(crate) fn guards(pod: &CachedPod) -> bool {
    !required_anti_affinity(pod).is_empty()
}

/// The placed pods that keep others away: few in most clusters, so each pod to schedule
/// checks them rather than every placed pod.
pub(crate) fn guarded(nodes: &[NodeInfo]) -> Vec<Guarded> {
    nodes
        .iter()
        .enumerate()
        .flat_map(|(index, node)| {
            node.pods
                .iter()
                .filter(|p| guards(p))
                .map(move |p| (index, Arc::clone(p)))
        })
        .collect()
}

/// The domains that pods already placed keep `pod` out of through their required
/// anti-affinity.
fn kept_out(
    pod: &CachedPod,
    nodes: &[NodeInfo],
    (guarded, namespaces): (&[Guarded], &NamespaceLabels),
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (index, placed) in guarded {
        let node = &nodes[*index];
        let owner = placed.namespace().unwrap_or_default();
        for term in required_anti_affinity(placed) {
            if let Some(value) = node.label(&term.topology_key)
                && term_selects(term, &owner, pod, namespaces)
            {
                out.push((term.topology_key.clone(), value.to_string()));
            }
        }
    }
    out
}

/// One topology spread constraint, with the matching pods counted per domain.
#[derive(Debug)]
pub(crate) struct Spread {
    domains: Domains,
    max_skew: i64,
    /// DoNotSchedule (a filter) rather than ScheduleAnyway (a score).
    hard: bool,
    /// The fewest matching pods in any eligible domain.
    fewest: i64,
    /// 1 when the pod matches its own selector: placing it adds to the count.
    itself: i64,
}

/// Why a node fails a spread constraint, in kube-scheduler's words.
pub(crate) const SPREAD_UNMET: &str = "node(s) didn't match pod topology spread constraints";
pub(crate) const SPREAD_LABEL_MISSING: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

impl Spread {
    /// The pod's constraints, counted over the nodes its node affinity admits (the
    /// default `nodeAffinityPolicy: Honor`).
    pub(crate) fn of(pod: &CachedPod, nodes: &[NodeInfo]) -> Vec<Spread> {
        let constraints = pod
            .spec
            .as_ref()
            .and_then(|s| s.extras().topology_spread_constraints.as_deref())
            .unwrap_or_default();
        constraints
            .iter()
            .map(|c| Spread::one(pod, c, nodes))
            .collect()
    }

    fn one(pod: &CachedPod, constraint: &TopologySpreadConstraint, nodes: &[NodeInfo]) -> Spread {
        let selector = with_match_label_keys(pod, constraint);
        let namespace = pod.namespace();
        let chosen = |p: &CachedPod| {
            p.namespace() == namespace
                && p.metadata.deletion_timestamp.is_none()
                && selector.as_ref().is_some_and(|s| selects(s, p.labels()))
        };
        let key = &constraint.topology_key;
        let eligible: Vec<&NodeInfo> = nodes
            .iter()
            .filter(|n| n.label(key).is_some() && node_affinity::admits(pod, &n.node))
            .collect();
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        for node in &eligible {
            let value = node.label(key).unwrap_or_default().to_string();
            *counts.entry(value).or_default() +=
                node.pods.iter().filter(|p| chosen(p)).count() as i64;
        }
        let too_few_domains =
            (counts.len() as i64) < i64::from(constraint.min_domains.unwrap_or(1));
        let fewest = if too_few_domains {
            0
        } else {
            counts.values().copied().min().unwrap_or(0)
        };
        Spread {
            domains: Domains {
                key: key.clone(),
                counts: counts.into_iter().collect(),
            },
            max_skew: i64::from(constraint.max_skew),
            hard: constraint.when_unsatisfiable != "ScheduleAnyway",
            fewest,
            itself: i64::from(chosen(pod)),
        }
    }

    /// Why the node fails this constraint, if it is a hard one and does.
    pub(crate) fn unmet(&self, node: &NodeInfo) -> Option<&'static str> {
        if !self.hard {
            return None;
        }
        match self.domains.at(node) {
            None => Some(SPREAD_LABEL_MISSING),
            Some(count) if count + self.itself - self.fewest > self.max_skew => Some(SPREAD_UNMET),
            Some(_) => None,
        }
    }

    /// Whether this is a ScheduleAnyway constraint, which scores instead of filtering.
    pub(crate) fn is_soft(&self) -> bool {
        !self.hard
    }

    /// The soft constraint's raw score: the matching pods in the node's domain (fewer
    /// is better); None for hard constraints and nodes without the key.
    pub(crate) fn crowding(&self, node: &NodeInfo) -> Option<i64> {
        if self.hard {
            return None;
        }
        self.domains.at(node)
    }
}

/// The constraint's selector narrowed by `matchLabelKeys`: the pod's own values of those
/// labels. Without a selector the constraint selects no pod, as in Kubernetes.
fn with_match_label_keys(
    pod: &CachedPod,
    constraint: &TopologySpreadConstraint,
) -> Option<LabelSelector> {
    let mut selector = constraint.label_selector.clone()?;
    for key in constraint.match_label_keys.iter().flatten() {
        if let Some(value) = pod.labels().get(key) {
            selector
                .match_expressions
                .get_or_insert_with(Vec::new)
                .push(LabelSelectorRequirement {
                    key: key.clone(),
                    operator: "In".into(),
                    values: Some(vec![value.to_string()]),
                });
        }
    }
    Some(selector)
}
