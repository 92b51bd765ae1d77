//! Authentication and authorization: bearer tokens made on first start — the admin's,
//! written into the admin kubeconfig, and the node join token (`<data-dir>/node-token`)
//! for agents. A request without a valid token gets 401; one its identity may not make
//! gets 403, both in the Status format. The admin may do anything (cluster-admin); a
//! node may work on nodes, leases, pods and events, and read what pods need.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use crate::status::Status;
use crate::{Pki, Result, Shared};

/// The tokens the server accepts.
pub(crate) struct Tokens {
    pub(crate) admin: String,
    pub(crate) node: String,
}

impl Tokens {
    /// The tokens under `dir`, made when missing.
    pub(crate) fn ensure(dir: &Path) -> Result<Self> {
        let token = |name: &str| -> Result<String> {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_string()),
                _ => {
                    let token = crate::random_hex(24);
                    crate::write_private(&path, format!("{token}\n").as_bytes())?;
                    Ok(token)
                }
            }
        };
        Ok(Self {
            admin: token("admin-token")?,
            node: token("node-token")?,
        })
    }
}

/// The admin's kubeconfig for a server at `bind`.
pub(crate) fn kubeconfig(pki: &Pki, tokens: &Tokens, bind: SocketAddr) -> String {
    let host = if bind.ip().is_unspecified() {
        format!("127.0.0.1:{}", bind.port())
    } else {
        bind.to_string()
    };
    let ca = base64::engine::general_purpose::STANDARD.encode(&pki.ca);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: berth
  cluster:
    server: https://{host}
    certificate-authority-data: {ca}
users:
- name: admin
  user:
    token: {token}
contexts:
- name: berth
  context:
    cluster: berth
    user: admin
current-context: berth
",
        token = tokens.admin
    )
}

/// Lets through requests with a known bearer token; health probes need none, as with
/// kube-apiserver's anonymous health checks.
pub(crate) async fn authenticate(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    if matches!(request.uri().path(), "/healthz" | "/livez" | "/readyz") {
        return next.run(request).await;
    }
    let token = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let identity = match token {
        Some(token) if token == shared.tokens.admin => Identity::Admin,
        Some(token) if token == shared.tokens.node => Identity::Node,
        _ => {
            return Status::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
                .into_response();
        }
    };
    let mut request = request;
    request.extensions_mut().insert(identity);
    next.run(request).await
}

/// Who a request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Identity {
    /// The cluster's administrator: every verb on every resource.
    Admin,
    /// A node agent, by the join token.
    Node,
}

impl Identity {
    /// The user name Kubernetes would report.
    pub(crate) fn user(self) -> &'static str {
        match self {
            Identity::Admin => "system:admin",
            Identity::Node => "system:node",
        }
    }

    /// Whether this identity may `verb` the resource `plural`.
    pub(crate) fn may(self, verb: &str, plural: &str) -> bool {
        match self {
            Identity::Admin => true,
            Identity::Node => {
                matches!(plural, "nodes" | "leases" | "pods" | "events")
                    || (matches!(verb, "get" | "list" | "watch")
                        && matches!(
                            plural,
                            "configmaps"
                                | "secrets"
                                | "services"
                                | "endpoints"
                                | "endpointslices"
                                | "namespaces"
                        ))
            }
        }
    }
}

/// The 403 Kubernetes answers, in its words.
pub(crate) fn forbidden(
    identity: Identity,
    verb: &str,
    group: &str,
    plural: &str,
    namespace: Option<&str>,
) -> Status {
    let scope = namespace.map_or(String::new(), |ns| format!(" in the namespace \"{ns}\""));
    Status::new(
        StatusCode::FORBIDDEN,
        "Forbidden",
        format!(
            "{plural} is forbidden: User \"{}\" cannot {verb} resource \"{plural}\" in API group \"{group}\"{scope}",
            identity.user()
        ),
    )
}
