//! Role-based access control, as kube-apiserver's RBAC authorizer: a request is allowed
//! when a rule of a role bound to its user, or to one of the user's groups, covers its
//! verb, API group, resource (or `resource/subresource`) and name — ClusterRoleBindings
//! everywhere, RoleBindings in their namespace. Roles and bindings are read from the
//! watch cache, as kube-apiserver reads its informers, so an authorization costs no
//! store read.
//!
//! The default policy — `cluster-admin`, `admin`, `edit`, `view` and the `system:` roles
//! with their bindings — is kube-apiserver's bootstrap policy, kept verbatim in
//! `rbac/cluster-roles.json` and `rbac/cluster-role-bindings.json` (converted to JSON
//! from upstream's `plugin/pkg/auth/authorizer/rbac/bootstrappolicy/testdata` YAML: the
//! roles of commit 025f2834, the 1.27–1.30 policy; the bindings of 1.21 onwards) and made
//! at the first start. Berth adds one role of its own: `berth:view-cluster`, bound to the
//! viewer's group, which reads every served resource but secrets, cluster-scoped ones
//! included (upstream's `view` reads namespaced ones only).

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use std::sync::Arc;

use serde_json::{Value, json};

use crate::Shared;
use crate::cache::{Cache, Memo};
use crate::identity::{Access, UserInfo, VIEWERS};
use crate::kinds::{Hooks, NameRule, Schema, required, unsupported};

/// The API group of RBAC's kinds.
pub(crate) const GROUP: &str = "rbac.authorization.k8s.io";

/// The ClusterRole that group is bound to.
const VIEW_CLUSTER: &str = "berth:view-cluster";

/// Whether RBAC lets `user` make `access`.
pub(crate) fn allows(shared: &Shared, user: &UserInfo, access: &Access<'_>) -> bool {
    rules_for(shared, user, access.namespace)
        .iter()
        .any(|rule| covers(rule, access))
}

/// Whether RBAC lets `user` `verb` the non-resource URL `path`: only ClusterRoles bound
/// cluster-wide grant those.
pub(crate) fn allows_path(shared: &Shared, user: &UserInfo, verb: &str, path: &str) -> bool {
    let asked = Atom::Url { verb, url: path };
    rules_for(shared, user, None)
        .iter()
        .any(|rule| grants(rule, &asked, Reading::Authorizer))
}

/// Whether a rule's non-resource URL covers `path`: exactly, or by the prefix before a
/// trailing `*`.
fn url_covers(url: &str, path: &str) -> bool {
    match url.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => url == path,
    }
}

/// What RBAC's rules come to for a user in a namespace (none: cluster-wide), kept
/// until a role or binding changes: reading every binding and role at each request
/// made a ServiceAccount's requests several times slower than the admin's.
pub(crate) type Rules = Memo<(UserInfo, Option<String>), Arc<[PolicyRule]>>;

/// The directories of the cache [`Rules`] are computed from.
pub(crate) const POLICY_DIRECTORIES: &[&str] = &[
    "/registry/clusterrolebindings/",
    "/registry/clusterroles/",
    "/registry/rolebindings/",
    "/registry/roles/",
];

/// Every rule that applies to `user` in `namespace`: those of roles bound cluster-wide,
/// and in a namespace those bound there too.
pub(crate) fn rules_for(
    shared: &Shared,
    user: &UserInfo,
    namespace: Option<&str>,
) -> Arc<[PolicyRule]> {
    let key = (user.clone(), namespace.map(str::to_string));
    shared.rules.get_or(&shared.cache, key, || {
        bound_rules(&shared.cache, user, namespace).into()
    })
}

fn bound_rules(cache: &Cache, user: &UserInfo, namespace: Option<&str>) -> Vec<PolicyRule> {
    let mut rules = Vec::new();
    for binding in cache.typed_list::<ClusterRoleBinding>("/registry/clusterrolebindings/") {
        if binds(binding.subjects.as_deref(), user, None) {
            rules.extend(role_rules(cache, &binding.role_ref, None));
        }
    }
    if let Some(namespace) = namespace {
        let prefix = format!("/registry/rolebindings/{namespace}/");
        for binding in cache.typed_list::<RoleBinding>(&prefix) {
            if binds(binding.subjects.as_deref(), user, Some(namespace)) {
                rules.extend(role_rules(cache, &binding.role_ref, Some(namespace)));
            }
        }
    }
    rules
}

fn binds(subjects: Option<&[Subject]>, user: &UserInfo, namespace: Option<&str>) -> bool {
    subjects
        .unwrap_or_default()
        .iter()
        .any(|s| user.is(s, namespace))
}

/// The rules of the role `role_ref` names: a ClusterRole, or a Role of `namespace`.
pub(crate) fn role_rules(
    cache: &Cache,
    role_ref: &RoleRef,
    namespace: Option<&str>,
) -> Vec<PolicyRule> {
    let rules = match (role_ref.kind.as_str(), namespace) {
        ("ClusterRole", _) => cache
            .typed::<ClusterRole>(&format!("/registry/clusterroles/{}", role_ref.name))
            .and_then(|role| role.rules),
        ("Role", Some(namespace)) => cache
            .typed::<Role>(&format!("/registry/roles/{namespace}/{}", role_ref.name))
            .and_then(|role| role.rules),
        _ => None,
    };
    rules.unwrap_or_default()
}

/// Whether `rule` covers `access`, as RBAC's `RuleAllows`.
pub(crate) fn covers(rule: &PolicyRule, access: &Access<'_>) -> bool {
    let resource = match access.subresource {
        Some(sub) => format!("{}/{sub}", access.plural),
        None => access.plural.to_string(),
    };
    let asked = Atom::Resource {
        verb: access.verb,
        group: access.group,
        resource: &resource,
        name: access.name,
    };
    grants(rule, &asked, Reading::Authorizer)
}

/// The default policy's objects, to make at the first start: `(plural, object)`.
pub(crate) fn bootstrap_policy() -> impl Iterator<Item = (&'static str, Value)> {
    let listed = |text: &str| -> Vec<Value> {
        let list: Value = serde_json::from_str(text).unwrap_or_default();
        list["items"].as_array().cloned().unwrap_or_default()
    };
    let roles = listed(include_str!("rbac/cluster-roles.json"))
        .into_iter()
        .chain([view_cluster_role()])
        .map(|role| ("clusterroles", role));
    let bindings = listed(include_str!("rbac/cluster-role-bindings.json"))
        .into_iter()
        .chain([viewers_binding()])
        .map(|binding| ("clusterrolebindings", binding));
    roles.chain(bindings)
}

/// Reading every served resource but secrets, in every group.
fn view_cluster_role() -> Value {
    let mut groups: Vec<&str> = Vec::new();
    let served = crate::resources::BUILT_IN.iter();
    for resource in served.clone() {
        if !groups.contains(&resource.group.as_str()) {
            groups.push(&resource.group);
        }
    }
    let mut rules: Vec<Value> = groups
        .iter()
        .map(|group| {
            let resources = served
                .clone()
                .filter(|r| r.group == *group && r.plural != "secrets")
                .flat_map(|r| [r.plural.to_string(), format!("{}/status", r.plural)])
                .collect::<Vec<String>>();
            json!({"apiGroups": [group], "resources": resources, "verbs": ["get", "list", "watch"]})
        })
        .collect();
    rules.push(
        json!({"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get", "list", "watch"]}),
    );
    rules.push(json!({"apiGroups": ["metrics.k8s.io"], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]}));
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": VIEW_CLUSTER, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
        "rules": rules,
    })
}

fn viewers_binding() -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": VIEW_CLUSTER, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
        "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": VIEW_CLUSTER},
        "subjects": [{"apiGroup": GROUP, "kind": "Group", "name": VIEWERS}],
    })
}

/// The rules' problems, as kube-apiserver's validation words them; `namespaced` for a
/// Role, whose rules may not name non-resource URLs.
fn rule_problems(rules: Option<&[PolicyRule]>, namespaced: bool) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, rule) in rules.unwrap_or_default().iter().enumerate() {
        let field = |name: &str| format!("rules[{i}].{name}");
        if rule.verbs.is_empty() {
            problems.push(format!(
                "{}: Required value: verbs must contain at least one value",
                field("verbs")
            ));
        }
        let urls = rule.non_resource_urls.as_deref().unwrap_or_default();
        let empty = |values: &Option<Vec<String>>| values.as_ref().is_none_or(Vec::is_empty);
        if !urls.is_empty() {
            let why = if namespaced {
                "namespaced rules cannot apply to non-resource URLs"
            } else if !empty(&rule.resources) || !empty(&rule.api_groups) {
                "rules cannot apply to both regular resources and non-resource URLs"
            } else {
                continue;
            };
            problems.push(format!(
                "{}: Invalid value: {urls:?}: {why}",
                field("nonResourceURLs")
            ));
            continue;
        }
        if empty(&rule.api_groups) {
            problems.push(format!(
                "{}: Required value: resource rules must supply at least one api group",
                field("apiGroups")
            ));
        }
        if empty(&rule.resources) {
            problems.push(format!(
                "{}: Required value: resource rules must supply at least one resource",
                field("resources")
            ));
        }
    }
    problems
}

/// A binding's problems: its role reference (to a ClusterRole, or for a RoleBinding
/// also a Role) and its subjects.
fn binding_problems(
    role_ref: &RoleRef,
    subjects: Option<&[Subject]>,
    namespaced: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    if role_ref.api_group != GROUP {
        problems.push(unsupported(
            "roleRef.apiGroup",
            &role_ref.api_group,
            &[GROUP],
        ));
    }
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&role_ref.kind.as_str()) {
        problems.push(unsupported("roleRef.kind", &role_ref.kind, kinds));
    }
    if role_ref.name.is_empty() {
        problems.push(required("roleRef.name"));
    }
    for (i, subject) in subjects.unwrap_or_default().iter().enumerate() {
        let field = |name: &str| format!("subjects[{i}].{name}");
        if subject.name.is_empty() {
            problems.push(required(&field("name")));
        }
        let namespace = subject.namespace.as_deref().unwrap_or_default();
        match subject.kind.as_str() {
            "ServiceAccount" if !namespaced && namespace.is_empty() => {
                problems.push(required(&field("namespace")));
            }
            "ServiceAccount" | "User" | "Group" => {}
            other => problems.push(unsupported(
                &field("kind"),
                other,
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
    problems
}

/// A subject's API group when it names none, as Kubernetes defaults it.
fn default_subjects(subjects: Option<&mut Vec<Subject>>) {
    for subject in subjects.into_iter().flatten() {
        if subject.api_group.as_deref().unwrap_or_default().is_empty() {
            subject.api_group = match subject.kind.as_str() {
                "ServiceAccount" => None,
                _ => Some(GROUP.into()),
            };
        }
    }
}

/// A role kind's schema: path-segment names, rules checked (`namespaced`: a Role's).
macro_rules! role_schema {
    ($kind:ty, $namespaced:expr) => {
        impl Schema for $kind {
            const NAME_RULE: NameRule = NameRule::PathSegment;
            const HOOKS: Hooks = Hooks::Roles;

            fn problems(&self) -> Vec<String> {
                rule_problems(self.rules.as_deref(), $namespaced)
            }
        }
    };
}

/// A binding kind's schema: path-segment names, subjects' groups defaulted, the role
/// reference and subjects checked (`namespaced`: a RoleBinding's).
macro_rules! binding_schema {
    ($kind:ty, $namespaced:expr) => {
        impl Schema for $kind {
            const NAME_RULE: NameRule = NameRule::PathSegment;
            const HOOKS: Hooks = Hooks::Bindings;

            fn default_fields(&mut self) {
                default_subjects(self.subjects.as_mut());
            }

            fn problems(&self) -> Vec<String> {
                binding_problems(&self.role_ref, self.subjects.as_deref(), $namespaced)
            }
        }
    };
}

role_schema!(Role, true);
role_schema!(ClusterRole, false);
binding_schema!(RoleBinding, true);
binding_schema!(ClusterRoleBinding, false);

/// One permission a rule grants: a verb on one resource of one group (and one name, if
/// the rule names them), or on one non-resource URL.
pub(crate) enum Atom<'a> {
    Resource {
        verb: &'a str,
        group: &'a str,
        resource: &'a str,
        name: Option<&'a str>,
    },
    Url {
        verb: &'a str,
        url: &'a str,
    },
}

impl std::fmt::Display for Atom<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Atom::Resource {
                verb,
                group,
                resource,
                name,
            } => {
                write!(f, "{{APIGroups:[{group:?}], Resources:[{resource:?}], ")?;
                if let Some(name) = name {
                    write!(f, "ResourceNames:[{name:?}], ")?;
                }
                write!(f, "Verbs:[{verb:?}]}}")
            }
            Atom::Url { verb, url } => write!(f, "{{NonResourceURLs:[{url:?}], Verbs:[{verb:?}]}}"),
        }
    }
}

/// A rule broken into the single permissions it grants, as RBAC's escalation check
/// breaks it down.
pub(crate) fn atoms(rule: &PolicyRule) -> Vec<Atom<'_>> {
    let mut found = Vec::new();
    for verb in &rule.verbs {
        for url in rule.non_resource_urls.iter().flatten() {
            found.push(Atom::Url { verb, url });
        }
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                let names = rule.resource_names.as_deref().unwrap_or_default();
                if names.is_empty() {
                    found.push(Atom::Resource {
                        verb,
                        group,
                        resource,
                        name: None,
                    });
                }
                for name in names {
                    found.push(Atom::Resource {
                        verb,
                        group,
                        resource,
                        name: Some(name),
                    });
                }
            }
        }
    }
    found
}

/// How a rule is read: by the authorizer deciding a request, or by the escalation check
/// asking whether a held rule covers one being granted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reading {
    /// RBAC's `RuleAllows`.
    Authorizer,
    /// RBAC's escalation check, which also reads a held `RESOURCE/*` as every
    /// subresource of RESOURCE.
    Escalation,
}

/// Whether `rule` grants `atom`: wildcards in the rule cover anything, a wildcard in the
/// atom only a wildcard.
pub(crate) fn grants(rule: &PolicyRule, atom: &Atom<'_>, reading: Reading) -> bool {
    let has = |values: &[String], wanted: &str| values.iter().any(|v| v == "*" || v == wanted);
    match *atom {
        Atom::Url { verb, url } => {
            has(&rule.verbs, verb)
                && rule
                    .non_resource_urls
                    .iter()
                    .flatten()
                    .any(|held| url_covers(held, url))
        }
        Atom::Resource {
            verb,
            group,
            resource,
            name,
        } => {
            let (base, sub) = resource.split_once('/').unwrap_or((resource, ""));
            let resource_held = rule.resources.iter().flatten().any(|held| {
                held == "*"
                    || held == resource
                    || (!sub.is_empty() && *held == format!("*/{sub}"))
                    || (reading == Reading::Escalation
                        && !sub.is_empty()
                        && *held == format!("{base}/*"))
            });
            let name_held = match rule.resource_names.as_deref() {
                None | Some([]) => true,
                Some(names) => name.is_some_and(|n| names.iter().any(|held| held == n)),
            };
            has(&rule.verbs, verb)
                && has(rule.api_groups.as_deref().unwrap_or_default(), group)
                && resource_held
                && name_held
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
        let owned = |values: &[&str]| values.iter().map(|v| v.to_string()).collect::<Vec<_>>();
        PolicyRule {
            verbs: owned(verbs),
            api_groups: Some(owned(groups)),
            resources: Some(owned(resources)),
            resource_names: Some(owned(names)),
            non_resource_urls: None,
        }
    }

    fn access<'a>(
        verb: &'a str,
        plural: &'a str,
        sub: Option<&'a str>,
        name: Option<&'a str>,
    ) -> Access<'a> {
        Access {
            verb,
            group: "apps",
            plural,
            subresource: sub,
            namespace: Some("default"),
            name,
        }
    }

    #[test]
    fn rules_cover_subresources_names_and_wildcards_as_rbac_does() {
        let scale = rule(&["update"], &["apps"], &["*/scale"], &[]);
        assert!(covers(
            &scale,
            &access("update", "deployments", Some("scale"), None)
        ));
        assert!(!covers(
            &scale,
            &access("update", "deployments", None, None)
        ));
        let named = rule(&["get"], &["apps"], &["deployments"], &["web"]);
        assert!(covers(
            &named,
            &access("get", "deployments", None, Some("web"))
        ));
        assert!(!covers(
            &named,
            &access("get", "deployments", None, Some("db"))
        ));
        assert!(!covers(&named, &access("list", "deployments", None, None)));
        let everything = rule(&["*"], &["*"], &["*"], &[]);
        assert!(covers(
            &everything,
            &access("delete", "deployments", Some("status"), None)
        ));
        // A held wildcard covers a grant of one thing, a held single thing no wildcard.
        let reader = rule(&["get"], &["apps"], &["deployments"], &[]);
        assert!(
            atoms(&reader)
                .iter()
                .all(|a| grants(&everything, a, Reading::Escalation))
        );
        assert!(
            !atoms(&everything)
                .iter()
                .all(|a| grants(&reader, a, Reading::Escalation))
        );
        // A held `deployments/*` covers granting their subresources, not them.
        let subresources = rule(&["get"], &["apps"], &["deployments/*"], &[]);
        let scale = rule(&["get"], &["apps"], &["deployments/scale"], &[]);
        let held = |granted: &PolicyRule| {
            atoms(granted)
                .iter()
                .all(|a| grants(&subresources, a, Reading::Escalation))
        };
        assert!(held(&scale));
        assert!(!held(&reader));
    }
}
