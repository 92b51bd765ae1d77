//! Authentication and authorization: bearer tokens made on first start — the admin's
//! (in `admin.kubeconfig`), a read-only viewer's (in `viewer.kubeconfig`) and the node
//! join token (`<data-dir>/node-token`) — and client certificates the cluster CA signed
//! (agents trade the join token for one of their own node at join, `kubelets.rs`). A request
//! without a valid token gets 401; one its identity may not make gets 403, both in the
//! Status format.
//!
//! Authorization goes as kube-apiserver's: the admin (`system:masters`) may do anything;
//! the join token may work on nodes, leases, pods and events (what simulated nodes do);
//! a named node writes only its own Node and Lease and the pods bound to it, and reads
//! only the configMaps, secrets and claims those pods use (the Node authorizer and
//! NodeRestriction); whatever those do not allow, RBAC decides (`rbac.rs`) — the viewer,
//! users by certificate and ServiceAccounts get what their roles grant.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use crate::status::Status;
use crate::{Pki, Result, Shared, rbac};

/// The tokens the server accepts.
pub(crate) struct Tokens {
    pub(crate) admin: String,
    pub(crate) viewer: String,
    pub(crate) node: String,
}

/// The full join token agents join with, k3s's form: `K10<sha256 of the CA PEM, hex>::
/// server:<join secret>` (berth-agent's `JoinToken` reads it). It pins the CA, so an
/// agent needs nothing else to trust the server.
pub(crate) fn join_token(ca_pem: &str, secret: &str) -> String {
    use sha2::Digest as _;
    format!(
        "K10{}::server:{secret}",
        hex::encode(sha2::Sha256::digest(ca_pem.as_bytes()))
    )
}

impl Tokens {
    /// The tokens under `dir`, made when missing.
    pub(crate) fn ensure(dir: &Path) -> Result<Self> {
        let token = |name: &str| -> Result<String> {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_string()),
                _ => {
                    let token = crate::random_hex(24)?;
                    crate::write_private(&path, format!("{token}\n").as_bytes())?;
                    Ok(token)
                }
            }
        };
        Ok(Self {
            admin: token("admin-token")?,
            viewer: token("viewer-token")?,
            node: token("node-token")?,
        })
    }
}

/// A kubeconfig for `user` with `token`, for a server at `bind`.
pub(crate) fn kubeconfig(pki: &Pki, (user, token): (&str, &str), bind: SocketAddr) -> String {
    let host = crate::reachable(bind);
    let ca = base64::engine::general_purpose::STANDARD.encode(&pki.ca);
    config_text(
        &format!("https://{host}"),
        &ca,
        user,
        &format!("token: {token}"),
    )
}

/// A kubeconfig for `user` (in `group`) authenticating with a client certificate the
/// cluster CA under `data_dir` signs, for the server its admin kubeconfig names — what
/// `kubeadm kubeconfig user` makes.
pub fn client_kubeconfig(data_dir: &Path, user: &str, group: Option<&str>) -> Result<String> {
    let tls = data_dir.join("tls");
    let (cert, key) = crate::issue_client_certificate(&tls, user, group)?;
    let admin = data_dir.join("admin.kubeconfig");
    let admin = std::fs::read_to_string(&admin).map_err(|e| crate::Error::io(&admin, e))?;
    let line = |prefix: &str| {
        admin
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(str::to_string))
            .unwrap_or_default()
    };
    let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let credentials = format!(
        "client-certificate-data: {}\n    client-key-data: {}",
        encode(&cert),
        encode(&key)
    );
    Ok(config_text(
        &line("server: "),
        &line("certificate-authority-data: "),
        user,
        &credentials,
    ))
}

/// The one kubeconfig layout every kubeconfig here uses: cluster `berth` at `server`
/// trusting `ca` (base64), and `user` with its `credentials` lines.
fn config_text(server: &str, ca: &str, user: &str, credentials: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: berth
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: {user}
  user:
    {credentials}
contexts:
- name: berth
  context:
    cluster: berth
    user: {user}
current-context: berth
"
    )
}

/// Lets through requests with a known bearer token; health probes, the CA certificate
/// and the service-account issuer's discovery need none, as with kube-apiserver's
/// anonymous health checks, k3s's `/cacerts` and clusters that let outside verifiers
/// fetch the issuer's keys.
pub(crate) async fn authenticate(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    // What kube-apiserver's system:public-info-viewer lets anyone read; the CA
    // certificate is public too: joining agents check it against their token's hash;
    // and the OIDC discovery of the tokens' issuer, which verifiers outside the
    // cluster read without credentials.
    if matches!(
        request.uri().path(),
        "/healthz"
            | "/livez"
            | "/readyz"
            | "/version"
            | "/cacerts"
            | "/.well-known/openid-configuration"
            | "/openid/v1/jwks"
    ) {
        return next.run(request).await;
    }
    let token = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let certificate = request
        .extensions()
        .get::<Arc<axum_server::tls::TlsInfo>>()
        .and_then(|tls| tls.peer_certificates.first().cloned());
    let identity = match token {
        Some(token) if let Some(identity) = of_token(&shared, token) => identity,
        None if let Some(identity) = certificate.as_deref().and_then(of_certificate) => identity,
        _ => {
            return Status::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
                .into_response();
        }
    };
    let identity = match crate::impersonation::impersonated(&shared, &identity, request.headers()) {
        Ok(Some(impersonated)) => impersonated,
        Ok(None) => identity,
        Err(status) => return status.into_response(),
    };
    let mut request = request;
    request.extensions_mut().insert(identity);
    next.run(request).await
}

/// Who a bearer token meant for the API stands for: one of the server's own tokens, or
/// a live ServiceAccount token.
pub(crate) fn of_token(shared: &Shared, token: &str) -> Option<Identity> {
    let tokens = &shared.tokens;
    match token {
        _ if token == tokens.admin => Some(Identity::Admin),
        _ if token == tokens.viewer => Some(Identity::Viewer),
        _ if token == tokens.node => Some(Identity::Nodes),
        _ => shared.signer.identity_of(token, &shared.cache),
    }
}

/// The identity a client certificate (verified against the cluster CA by the TLS
/// layer) names: its common name is the user, its organizations the groups, as in
/// Kubernetes. `system:masters` may do anything, `system:node:NAME` in `system:nodes` is
/// that node; anyone else may do what RBAC grants the user or its groups.
fn of_certificate(der: &[u8]) -> Option<Identity> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = certificate.subject();
    let user = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_string)
        .collect();
    Some(Identity::of_user(user, groups))
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

impl Identity {
    /// The identity of `name` in `groups` (a certificate's subject, a review's user):
    /// `system:node:NAME` in `system:nodes` is that node, anyone in `system:masters` the
    /// admin, anyone else a user that RBAC decides for.
    pub(crate) fn of_user(name: String, groups: Vec<String>) -> Self {
        let in_group = |group: &str| groups.iter().any(|g| g == group);
        match name.strip_prefix("system:node:") {
            Some(node) if in_group("system:nodes") => Identity::Node(node.to_string()),
            _ if in_group(rbac::MASTERS) => Identity::Admin,
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
    pub(crate) fn info(&self) -> rbac::UserInfo {
        let groups: Vec<String> = match self {
            Identity::Admin => vec![rbac::MASTERS.into()],
            Identity::Viewer => vec![rbac::VIEWERS.into()],
            Identity::Nodes => vec!["system:bootstrappers".into()],
            Identity::Node(_) => vec!["system:nodes".into()],
            Identity::ServiceAccount { namespace, .. } => vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
            ],
            Identity::User { groups, .. } => groups.clone(),
        };
        let mut groups = groups;
        groups.push(rbac::AUTHENTICATED.into());
        rbac::UserInfo {
            name: self.user(),
            groups,
        }
    }

    /// Whether the built-in authorizers allow `access` whatever the roles say: the
    /// admin anything, the join token what simulated nodes do, a node what the Node
    /// authorizer grants.
    fn may_without_roles(&self, access: Access<'_>) -> bool {
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
