//! Authorization, as kube-apiserver's: a request its identity may not make gets 403 in
//! the Status format. Who the identity is was authentication's (`authentication.rs`).
//!
//! The admin (`system:masters`) may do anything; the join token may work on nodes, leases, pods and events (what simulated nodes do);
//! a named node writes only its own Node and Lease and the pods bound to it, and reads
//! only the configMaps, secrets and claims those pods use (the Node authorizer and
//! NodeRestriction); whatever those do not allow, RBAC decides (`rbac.rs`) — the viewer,
//! users by certificate and ServiceAccounts get what their roles grant.

use axum::http::StatusCode;

use crate::identity::{Access, Identity};
use crate::status::Status;
use crate::{Shared, rbac};

/// Whether `identity` may make `access`: as the built-in authorizers say (the
/// privileged group, the Node authorizer), or else as RBAC's roles in `cache` say. For a
/// named node the objects it touches are checked again by [`Identity::may_touch`].
pub(crate) fn authorize(shared: &Shared, identity: &Identity, access: Access<'_>) -> bool {
    identity.may_without_roles(access) || rbac::allows(shared, &identity.info(), &access)
}

/// A 403 in Kubernetes' words unless `identity` may make `access`.
pub(crate) fn require(
    shared: &Shared,
    identity: &Identity,
    access: Access<'_>,
) -> std::result::Result<(), Status> {
    if authorize(shared, identity, access) {
        Ok(())
    } else {
        Err(forbidden(identity, access))
    }
}

/// Whether `identity` may `verb` the non-resource URL `path` (`/healthz`, `/metrics`):
/// the admin always, anyone else as RBAC's `nonResourceURLs` rules say.
pub(crate) fn authorize_path(shared: &Shared, identity: &Identity, verb: &str, path: &str) -> bool {
    *identity == Identity::Admin || rbac::allows_path(shared, &identity.info(), verb, path)
}

/// Whether `identity` may read the object `name` of `place` as far as the Node
/// authorizer's graph goes: a node reads a configMap, secret or claim only while a pod
/// bound to it refers to it, or a secret an Ingress names for TLS (read from the watch
/// cache); everyone else passes. The 403 names the
/// missing relationship, in the Node authorizer's words.
pub(crate) fn node_may_read(
    cache: &crate::cache::Cache,
    identity: &Identity,
    place: &crate::stored::Place,
    name: Option<&str>,
) -> std::result::Result<(), Status> {
    let Identity::Node(node) = identity else {
        return Ok(());
    };
    let plural = place.resource.plural.as_str();
    let Some(kind) = berth_podrefs::Kind::of_plural(plural) else {
        return Ok(());
    };
    let (Some(namespace), Some(name)) = (place.namespace.as_deref(), name) else {
        return Err(no_relationship(identity, plural, "", ""));
    };
    let wanted = (kind, name.to_string());
    let (pods, _) = cache.list(&format!("/registry/pods/{namespace}/"));
    let used = pods
        .iter()
        .filter(|entry| entry.summary.field("spec.nodeName") == Some(node.as_str()))
        .filter_map(|entry| entry.typed::<k8s_openapi::api::core::v1::Pod>())
        .any(|pod| {
            pod.spec
                .as_ref()
                .is_some_and(|spec| berth_podrefs::all(spec).contains(&wanted))
        });
    if used || (kind == berth_podrefs::Kind::Secret && names_for_tls(cache, namespace, name)) {
        Ok(())
    } else {
        Err(no_relationship(identity, plural, namespace, name))
    }
}

/// Whether an Ingress in `namespace` names the Secret `name` for TLS: every node's
/// built-in Ingress controller serves those certificates (as k3s's bundled controller
/// reads every Secret an Ingress names).
fn names_for_tls(cache: &crate::cache::Cache, namespace: &str, name: &str) -> bool {
    let prefix = format!("/registry/ingresses/{namespace}/");
    let ingresses = cache.typed_list::<k8s_openapi::api::networking::v1::Ingress>(&prefix);
    ingresses
        .into_iter()
        .flat_map(|ingress| {
            ingress
                .spec
                .into_iter()
                .flat_map(|s| s.tls.unwrap_or_default())
        })
        .any(|tls| tls.secret_name.as_deref() == Some(name))
}

fn no_relationship(identity: &Identity, plural: &str, namespace: &str, name: &str) -> Status {
    Status::new(
        StatusCode::FORBIDDEN,
        "Forbidden",
        format!(
            "{plural} \"{name}\" is forbidden: User \"{}\" cannot get resource \"{plural}\" in API group \"\" in the namespace \"{namespace}\": no relationship found between node '{}' and this object",
            identity.user(),
            identity.user().trim_start_matches("system:node:")
        ),
    )
}

/// The 403 for a node writing what is not its own, in NodeRestriction's manner.
pub(crate) fn not_its_own(identity: &Identity, plural: &str, name: &str) -> Status {
    Status::new(
        StatusCode::FORBIDDEN,
        "Forbidden",
        format!(
            "{plural} \"{name}\" is forbidden: User \"{}\" may only modify its own Node and Lease and the pods bound to it",
            identity.user()
        ),
    )
}

/// The 403 Kubernetes answers, in its words.
pub(crate) fn forbidden(identity: &Identity, access: Access<'_>) -> Status {
    let Access {
        verb,
        group,
        plural,
        subresource,
        namespace,
        name,
    } = access;
    let object = name.map_or(String::new(), |name| format!(" \"{name}\""));
    // The group resource as kube-apiserver names it: `deployments.apps`.
    let qualified = match group {
        "" => plural.to_string(),
        group => format!("{plural}.{group}"),
    };
    let resource = subresource.map_or(plural.to_string(), |sub| format!("{plural}/{sub}"));
    let scope = match namespace {
        Some(namespace) => format!(" in the namespace \"{namespace}\""),
        None => " at the cluster scope".into(),
    };
    Status::new(
        StatusCode::FORBIDDEN,
        "Forbidden",
        format!(
            "{qualified}{object} is forbidden: User \"{}\" cannot {verb} resource \"{resource}\" in API group \"{group}\"{scope}",
            identity.user()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_node_reads_widely_but_writes_only_its_own() {
        let node = Identity::Node("a".into());
        let access = |verb, plural, name| Access {
            verb,
            group: "",
            plural,
            subresource: None,
            namespace: Some("kube-node-lease"),
            name,
        };
        assert!(node.may_without_roles(access("get", "nodes", Some("b"))));
        assert!(!node.may_without_roles(access("update", "nodes", Some("b"))));
        assert!(node.may_without_roles(access("update", "leases", Some("a"))));
        assert!(!node.may_without_roles(access("create", "configmaps", None)));
        assert!(!node.may_without_roles(access("get", "serviceaccounts", Some("a"))));
        let pod = serde_json::json!({"spec": {"nodeName": "b"}});
        assert!(!node.may_touch("pods", &pod));
        assert!(Identity::Admin.may_touch("pods", &pod));
    }
}
