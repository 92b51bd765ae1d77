//! Who a request comes from and what it asks to do: the identities the server knows
//! (its own tokens' users, nodes, ServiceAccounts, certificate users), the user and
//! groups RBAC's subjects name them by, and a request's resource attributes. The
//! built-in authorizers' grants — the privileged group's, the join token's and the Node
//! authorizer's — go with the identity; RBAC's rules are `rbac.rs`'.

use k8s_openapi::api::rbac::v1::Subject;

/// The group every authenticated user is in.
pub(crate) const AUTHENTICATED: &str = "system:authenticated";

/// The group whose members may do anything, without consulting roles, as
/// kube-apiserver's privileged-group authorizer.
pub(crate) const MASTERS: &str = "system:masters";

/// The group of read-only users (`viewer.kubeconfig`, certificates in `berth:viewers`).
pub(crate) const VIEWERS: &str = "berth:viewers";

/// A user as RBAC's subjects name it, serialized as reviews' `userInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub(crate) struct UserInfo {
    /// `system:serviceaccount:default:builder`, `system:node:a`, `alice`.
    #[serde(rename = "username")]
    pub(crate) name: String,
    /// Its groups, `system:authenticated` among them.
    pub(crate) groups: Vec<String>,
}

impl UserInfo {
    /// Whether `subject` of a binding in `namespace` (none for a ClusterRoleBinding)
    /// names this user, one of its groups, or its ServiceAccount — an account's namespace
    /// is the binding's unless the subject names one.
    pub(crate) fn is(&self, subject: &Subject, namespace: Option<&str>) -> bool {
        match subject.kind.as_str() {
            "User" => subject.name == self.name,
            "Group" => self.groups.contains(&subject.name),
            "ServiceAccount" => {
                let namespace = subject
                    .namespace
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .or(namespace)
                    .unwrap_or_default();
                self.name == format!("system:serviceaccount:{namespace}:{}", subject.name)
            }
            _ => false,
        }
    }
}

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Identity {
    /// The cluster's administrator (in `system:masters`): every verb on every resource.
    Admin,
    /// The read-only user of `viewer.kubeconfig`, in `berth:viewers`, which the default
    /// policy lets read everything but secrets.
    Viewer,
    /// Any node agent, by the join token.
    Nodes,
    /// One node, by its own certificate: the Node authorizer's, and RBAC's.
    Node(String),
    /// A ServiceAccount, by a token the server issued: allowed what RBAC grants it.
    ServiceAccount {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// Someone with a certificate: allowed what RBAC grants the user or its groups.
    User {
        /// The certificate's common name.
        name: String,
        /// Its organizations.
        groups: Vec<String>,
    },
}

/// What a request would do: a verb on a resource (or one of its subresources) of an API
/// group, in a namespace, to a named object — RBAC's resource attributes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Access<'a> {
    pub(crate) verb: &'a str,
    pub(crate) group: &'a str,
    pub(crate) plural: &'a str,
    pub(crate) subresource: Option<&'a str>,
    pub(crate) namespace: Option<&'a str>,
    pub(crate) name: Option<&'a str>,
}

/// What node agents read to run pods and carry their traffic (Services' rules,
/// NetworkPolicies, Ingresses), besides the configMaps, secrets and claims their pods
/// use.
const POD_INPUTS: [&str; 8] = [
    "persistentvolumes",
    "services",
    "endpoints",
    "endpointslices",
    "namespaces",
    "networkpolicies",
    "ingresses",
    "ingressclasses",
];

fn reading(verb: &str) -> bool {
    matches!(verb, "get" | "list" | "watch")
}

impl Identity {
    /// The identity of `name` in `groups` (a certificate's subject, a review's user):
    /// `system:node:NAME` in `system:nodes` is that node, anyone in `system:masters` the
    /// admin, anyone else a user that RBAC decides for.
    pub(crate) fn of_user(name: String, groups: Vec<String>) -> Self {
        let in_group = |group: &str| groups.iter().any(|g| g == group);
        match name.strip_prefix("system:node:") {
            Some(node) if in_group("system:nodes") => Identity::Node(node.to_string()),
            _ if in_group(MASTERS) => Identity::Admin,
            _ => Identity::User { name, groups },
        }
    }

    /// The user name Kubernetes would report.
    pub(crate) fn user(&self) -> String {
        match self {
            Identity::Admin => "system:admin".into(),
            Identity::Viewer => "system:viewer".into(),
            Identity::Nodes => "system:node".into(),
            Identity::Node(name) => format!("system:node:{name}"),
            Identity::ServiceAccount { namespace, name } => {
                format!("system:serviceaccount:{namespace}:{name}")
            }
            Identity::User { name, .. } => name.clone(),
        }
    }

    /// Whether only RBAC decides for this identity: no built-in authorizer grants it
    /// anything.
    pub(crate) fn decided_by_roles_alone(&self) -> bool {
        matches!(
            self,
            Identity::Viewer | Identity::User { .. } | Identity::ServiceAccount { .. }
        )
    }

    /// The user and its groups, as RBAC's subjects and `kubectl auth whoami` name them.
    pub(crate) fn info(&self) -> UserInfo {
        let groups: Vec<String> = match self {
            Identity::Admin => vec![MASTERS.into()],
            Identity::Viewer => vec![VIEWERS.into()],
            Identity::Nodes => vec!["system:bootstrappers".into()],
            Identity::Node(_) => vec!["system:nodes".into()],
            Identity::ServiceAccount { namespace, .. } => vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
            ],
            Identity::User { groups, .. } => groups.clone(),
        };
        let mut groups = groups;
        groups.push(AUTHENTICATED.into());
        UserInfo {
            name: self.user(),
            groups,
        }
    }

    /// Whether the built-in authorizers allow `access` whatever the roles say: the
    /// admin anything, the join token what simulated nodes do, a node what the Node
    /// authorizer grants.
    pub(crate) fn may_without_roles(&self, access: Access<'_>) -> bool {
        let Access {
            verb,
            plural,
            subresource,
            namespace,
            name,
            ..
        } = access;
        match self {
            Identity::Admin => true,
            // Those [`Identity::decided_by_roles_alone`] names.
            Identity::Viewer | Identity::User { .. } | Identity::ServiceAccount { .. } => false,
            // Objects and their status, never a pod's streams or logs.
            _ if subresource.is_some_and(|s| s != "status" && s != "token") => false,
            Identity::Nodes => matches!(plural, "nodes" | "leases" | "pods" | "events"),
            Identity::Node(node) => {
                let own = || name.is_none_or(|n| n == node);
                match plural {
                    "nodes" => reading(verb) || own(),
                    "leases" => namespace == Some("kube-node-lease") && (reading(verb) || own()),
                    "pods" | "events" => true,
                    // Tokens of its pods' accounts, bound to them (checked where
                    // issued).
                    "serviceaccounts" if subresource == Some("token") => verb == "create",
                    // One object at a time, and only one its pods use
                    // ([`node_may_read`]).
                    "configmaps" | "secrets" | "persistentvolumeclaims" => {
                        reading(verb) && name.is_some() && namespace.is_some()
                    }
                    _ => reading(verb) && POD_INPUTS.contains(&plural),
                }
            }
        }
    }

    /// Whether this identity may write `object` of resource `plural`: a named node only
    /// its own Node and Lease and the pods bound to it.
    pub(crate) fn may_touch(&self, plural: &str, object: &serde_json::Value) -> bool {
        let Identity::Node(node) = self else {
            return true;
        };
        match plural {
            "nodes" | "leases" => object["metadata"]["name"] == node.as_str(),
            "pods" => object["spec"]["nodeName"] == node.as_str(),
            _ => true,
        }
    }
}
