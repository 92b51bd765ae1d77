//! RBAC's escalation check, as kube-apiserver's RBAC storage makes it on every write of
//! a role or binding: nobody grants what they do not hold. It stands apart from the
//! rules (`rbac.rs`) because it asks the whole authorizer (`authorization.rs`) first —
//! whoever may `escalate` a role or `bind` it passes.

use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef};
use serde_json::Value;

use crate::Shared;
use crate::identity::{Access, Identity};
use crate::kinds::Hooks;
use crate::rbac::{GROUP, Reading, atoms, grants, role_rules, rules_for};
use crate::resources::Resource;
use crate::status::Status;

/// What a write of a role or binding must pass besides its schema, as kube-apiserver's
/// RBAC storage checks it: a binding's roleRef never changes, and nobody grants what
/// they do not hold — a role's rules, or a bound role's, must all be the writer's own
/// (in the namespace, for Roles and RoleBindings) unless RBAC lets them `escalate` the
/// role or `bind` it. `current` is the object being replaced, none for a create.
pub(crate) fn check_write(
    shared: &Shared,
    identity: &Identity,
    resource: &Resource,
    (current, object): (Option<&Value>, &Value),
) -> Result<(), Status> {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let namespace = object["metadata"]["namespace"].as_str();
    let (granted, verb, role): (Vec<PolicyRule>, _, _) = match resource.hooks() {
        Hooks::Roles => {
            let rules = serde_json::from_value(object["rules"].clone()).unwrap_or_default();
            (
                rules,
                "escalate",
                (resource.plural.as_str(), name.to_string()),
            )
        }
        Hooks::Bindings => {
            if let Some(current) = current
                && current["roleRef"] != object["roleRef"]
            {
                return Err(Status::invalid(
                    &resource.qualified_kind(),
                    name,
                    format!(
                        "roleRef: Invalid value: {}: cannot change roleRef",
                        object["roleRef"]
                    ),
                ));
            }
            let role_ref: RoleRef =
                serde_json::from_value(object["roleRef"].clone()).unwrap_or_default();
            let plural = if role_ref.kind == "Role" {
                "roles"
            } else {
                "clusterroles"
            };
            let rules = role_rules(&shared.cache, &role_ref, namespace);
            (rules, "bind", (plural, role_ref.name.clone()))
        }
        _ => return Ok(()),
    };
    let (plural, role_name) = role;
    let access = Access {
        verb,
        group: GROUP,
        plural,
        subresource: None,
        namespace,
        name: Some(&role_name),
    };
    if crate::authorization::authorize(shared, identity, access) {
        return Ok(());
    }
    let held = rules_for(shared, &identity.info(), namespace);
    let missing: Vec<String> = granted
        .iter()
        .flat_map(atoms)
        .filter(|atom| {
            !held
                .iter()
                .any(|rule| grants(rule, atom, Reading::Escalation))
        })
        .map(|atom| atom.to_string())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let info = identity.info();
    let groups: Vec<String> = info.groups.iter().map(|g| format!("{g:?}")).collect();
    Err(Status::new(
        axum::http::StatusCode::FORBIDDEN,
        "Forbidden",
        format!(
            "{}.{GROUP} \"{name}\" is forbidden: user \"{}\" (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
            resource.plural,
            info.name,
            groups.join(" "),
            missing.join("\n")
        ),
    ))
}
