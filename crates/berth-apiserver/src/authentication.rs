//! Authentication: bearer tokens made on first start — the admin's (in
//! `admin.kubeconfig`), a read-only viewer's (in `viewer.kubeconfig`) and the node join
//! token (`<data-dir>/node-token`) —, ServiceAccount tokens the server issued
//! (`tokens.rs`), and client certificates the cluster CA signed (agents trade the join
//! token for one of their own node at join, `kubelets.rs`). A request without a valid
//! credential gets 401 in the Status format; one that asks to act as someone else is
//! let do so as `impersonation.rs` decides. What an identity may do is
//! `authorization.rs`'.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use crate::identity::Identity;
use crate::status::Status;
use crate::{Pki, Result, Shared};

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
