//! The garbage collector's picture of the cluster: every object of every watched
//! resource by uid, with what it owns and what owns it — kube-controller-manager's
//! dependency graph. It holds the metadata the collector decides by and nothing else,
//! and says, as it changes, which objects may now need the collector's work.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::core::ApiResource;

/// The finalizers by which an owner asks for its dependents to be deleted first, or
/// to be kept without it.
pub(crate) const FOREGROUND: &str = "foregroundDeletion";
pub(crate) const ORPHAN: &str = "orphan";

/// An object as the collector knows it.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// Its resource, as discovery served it.
    pub resource: Arc<ApiResource>,
    pub namespace: Option<String>,
    pub name: String,
    pub owners: Vec<OwnerReference>,
    /// Whether it is being deleted (has a deletionTimestamp).
    pub deleting: bool,
    /// Whether it carries the `foregroundDeletion` finalizer.
    pub foreground: bool,
    /// Whether it carries the `orphan` finalizer.
    pub orphan: bool,
}

impl Node {
    /// Whether it is being deleted in the foreground: its blocking dependents first.
    pub(crate) fn awaits_dependents(&self) -> bool {
        self.deleting && self.foreground
    }

    /// Whether it is waiting for the collector: deleting with one of its finalizers.
    fn awaits_collector(&self) -> bool {
        self.deleting && (self.foreground || self.orphan)
    }
}

/// Every object watched, and the dependents of each owner (observed or not).
#[derive(Default)]
pub(crate) struct Graph {
    nodes: HashMap<String, Node>,
    dependents: HashMap<String, HashSet<String>>,
}

impl Graph {
    pub(crate) fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    /// The objects whose ownerReferences name `uid`, with their nodes.
    pub(crate) fn dependents(&self, uid: &str) -> Vec<(String, Node)> {
        self.dependents
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|d| Some((d.clone(), self.nodes.get(d)?.clone())))
            .collect()
    }

    /// Records the object `uid` as it now is; the uids that may need work because of it:
    /// itself when an owner of it is unknown or being deleted, or when it awaits the
    /// collector; owners it no longer names that wait for their dependents.
    pub(crate) fn observe(&mut self, uid: &str, node: Node) -> Vec<String> {
        let mut work = Vec::new();
        let before = self.nodes.get(uid).map(|n| n.owners.clone());
        for owner in before.iter().flatten() {
            if !node.owners.iter().any(|o| o.uid == owner.uid) {
                self.unlink(uid, &owner.uid);
                if self.get(&owner.uid).is_some_and(Node::awaits_dependents) {
                    work.push(owner.uid.clone());
                }
            }
        }
        for owner in &node.owners {
            self.dependents
                .entry(owner.uid.clone())
                .or_default()
                .insert(uid.to_string());
        }
        let owner_in_question = node
            .owners
            .iter()
            .any(|o| self.get(&o.uid).is_none_or(|owner| owner.deleting));
        if owner_in_question || node.awaits_collector() {
            work.push(uid.to_string());
        }
        if node.deleting
            && let Some(owners) = &before
        {
            // A dependent being deleted may be what an owner waited for.
            work.extend(self.waiting_owners(owners));
        }
        self.nodes.insert(uid.to_string(), node);
        work
    }

    /// Forgets the object `uid`, deleted; the uids that may need work now: its
    /// dependents (an owner of theirs is gone) and its owners that waited for it.
    pub(crate) fn forget(&mut self, uid: &str) -> Vec<String> {
        let Some(node) = self.nodes.remove(uid) else {
            return Vec::new();
        };
        for owner in &node.owners {
            self.unlink(uid, &owner.uid);
        }
        let mut work: Vec<String> = self
            .dependents
            .get(uid)
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        work.extend(self.waiting_owners(&node.owners));
        work
    }

    /// Forgets the objects of `resource` that a new list of it did not show (deleted
    /// while its watch was down); the uids that may need work because of that.
    pub(crate) fn forget_unlisted(
        &mut self,
        resource: &ApiResource,
        listed: &HashSet<String>,
    ) -> Vec<String> {
        let gone: Vec<String> = self
            .nodes
            .iter()
            .filter(|(uid, node)| same_resource(&node.resource, resource) && !listed.contains(*uid))
            .map(|(uid, _)| uid.clone())
            .collect();
        gone.iter().flat_map(|uid| self.forget(uid)).collect()
    }

    fn unlink(&mut self, dependent: &str, owner: &str) {
        if let Some(dependents) = self.dependents.get_mut(owner) {
            dependents.remove(dependent);
            if dependents.is_empty() {
                self.dependents.remove(owner);
            }
        }
    }

    fn waiting_owners(&self, owners: &[OwnerReference]) -> Vec<String> {
        owners
            .iter()
            .filter(|o| self.get(&o.uid).is_some_and(Node::awaits_dependents))
            .map(|o| o.uid.clone())
            .collect()
    }
}

/// Whether two discovered resources are the same one.
pub(crate) fn same_resource(a: &ApiResource, b: &ApiResource) -> bool {
    a.group == b.group && a.plural == b.plural
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(kind: &str) -> Arc<ApiResource> {
        let kind = kube::core::GroupVersionKind::gvk("apps", "v1", kind);
        Arc::new(ApiResource::from_gvk(&kind))
    }

    fn owned_by(owner: &str) -> OwnerReference {
        OwnerReference {
            uid: owner.into(),
            name: owner.into(),
            kind: "ReplicaSet".into(),
            api_version: "apps/v1".into(),
            ..OwnerReference::default()
        }
    }

    fn node(kind: &str, owners: &[&str]) -> Node {
        Node {
            resource: resource(kind),
            namespace: Some("default".into()),
            name: kind.to_lowercase(),
            owners: owners.iter().map(|o| owned_by(o)).collect(),
            deleting: false,
            foreground: false,
            orphan: false,
        }
    }

    #[test]
    fn a_dependent_of_a_known_owner_needs_no_work_until_the_owner_goes() {
        let mut graph = Graph::default();
        assert!(graph.observe("rs", node("ReplicaSet", &[])).is_empty());
        assert!(graph.observe("pod", node("Pod", &["rs"])).is_empty());
        assert_eq!(graph.dependents("rs").len(), 1);
        assert_eq!(graph.forget("rs"), ["pod"]);
    }

    #[test]
    fn a_dependent_of_an_unknown_owner_is_looked_at() {
        let mut graph = Graph::default();
        assert_eq!(graph.observe("pod", node("Pod", &["rs"])), ["pod"]);
    }

    #[test]
    fn an_owner_waiting_for_its_dependents_hears_when_they_go() {
        let mut graph = Graph::default();
        graph.observe("pod", node("Pod", &["rs"]));
        let mut owner = node("ReplicaSet", &[]);
        (owner.deleting, owner.foreground) = (true, true);
        assert_eq!(graph.observe("rs", owner), ["rs"]);
        assert_eq!(graph.forget("pod"), ["rs"]);
        assert!(graph.dependents("rs").is_empty());
    }

    #[test]
    fn a_reference_taken_out_unlinks_the_dependent() {
        let mut graph = Graph::default();
        graph.observe("rs", node("ReplicaSet", &[]));
        graph.observe("pod", node("Pod", &["rs"]));
        graph.observe("pod", node("Pod", &[]));
        assert!(graph.dependents("rs").is_empty());
    }

    #[test]
    fn a_new_list_forgets_what_it_no_longer_shows() {
        let mut graph = Graph::default();
        graph.observe("rs", node("ReplicaSet", &[]));
        graph.observe("pod", node("Pod", &["rs"]));
        let listed = HashSet::new();
        assert_eq!(
            graph.forget_unlisted(&resource("ReplicaSet"), &listed),
            ["pod"]
        );
        assert!(graph.get("rs").is_none());
        assert!(graph.get("pod").is_some());
    }
}
