//! The API server as the kubelets' client, and their certificate authority.
//!
//! Agents serve HTTPS on their node (port 10250, as kubelets) with a serving certificate
//! the cluster CA signs: an agent asks for it with its node credentials
//! (`POST /berth/v1/serving-certificate`), naming its node and addresses. The server
//! dials agents trusting the cluster CA alone and authenticates with a client
//! certificate of its own (`kube-apiserver-kubelet-client`, in `system:masters`), which
//! agents require. Over it the server proxies what kubectl asks of pods: their logs
//! (`pods/log`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Json, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::Identity;
use crate::resources::{Place, current, resource};
use crate::status::Status;
use crate::{Error, Result, Shared};

/// The port agents serve on unless their Node says another, as kubelets' default.
pub const KUBELET_PORT: u16 = 10250;

/// An HTTPS client of the agents: the cluster CA as its only root, the server's client
/// certificate as its identity.
pub(crate) struct Kubelets {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl Kubelets {
    /// The client, with a client certificate issued now by the CA under `tls_dir`.
    pub(crate) fn new(ca: &str, tls_dir: &Path) -> Result<Self> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let setup = |e: &dyn std::fmt::Display| Error::Setup(format!("the kubelet client: {e}"));
        let (cert, key) = crate::pki::issue_client_certificate(
            tls_dir,
            "kube-apiserver-kubelet-client",
            Some("system:masters"),
        )?;
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(ca.as_bytes()) {
            roots
                .add(ca.map_err(|e| setup(&e))?)
                .map_err(|e| setup(&e))?;
        }
        let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| setup(&e))?;
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| setup(&e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| setup(&e))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| setup(&e))?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .enable_http1()
            .build();
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
        Ok(Self { client })
    }
}

/// The server's routes for agents.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new().route("/berth/v1/serving-certificate", post(serving_certificate))
}

/// What an agent asks a serving certificate for.
#[derive(Deserialize)]
struct CertificateRequest {
    node: String,
    addresses: Vec<std::net::IpAddr>,
}

/// A serving certificate, its key and the CA that signed it (PEM).
#[derive(Serialize)]
struct IssuedCertificate {
    cert: String,
    key: String,
    ca: String,
}

/// `POST /berth/v1/serving-certificate`: a node's serving certificate, for its own name
/// only when the credentials name a node.
async fn serving_certificate(
    State(shared): State<Arc<Shared>>,
    Extension(identity): Extension<Identity>,
    Json(request): Json<CertificateRequest>,
) -> Response {
    let allowed = match &identity {
        Identity::Admin | Identity::Nodes => true,
        Identity::Node(node) => *node == request.node,
        _ => false,
    };
    if !allowed {
        return Status::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "{} may not get a serving certificate for node {:?}",
                identity.user(),
                request.node
            ),
        )
        .into_response();
    }
    let issued =
        crate::pki::issue_serving_certificate(&shared.tls_dir, &request.node, &request.addresses);
    match issued {
        Ok((cert, key)) => Json(IssuedCertificate {
            cert,
            key,
            ca: shared.ca.clone(),
        })
        .into_response(),
        Err(error) => Status::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            error.to_string(),
        )
        .into_response(),
    }
}

/// `GET …/pods/{name}/log`: the container's log from its node's agent, streamed as the
/// agent sends it (`follow` keeps it open).
pub(crate) async fn logs(
    shared: &Shared,
    place: &Place,
    name: &str,
    query: &HashMap<String, String>,
) -> std::result::Result<Response, Status> {
    let (_, _, pod) = current(shared, place, name).await?;
    let containers: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let container = match query.get("container").map(String::as_str) {
        Some(container) if !container.is_empty() => container.to_string(),
        _ if containers.len() == 1 => containers[0].to_string(),
        _ => {
            return Err(Status::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )));
        }
    };
    let node_name = pod["spec"]["nodeName"].as_str().unwrap_or_default();
    if node_name.is_empty() {
        return Err(Status::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let nodes = Place {
        resource: resource("nodes")?,
        namespace: None,
    };
    let (_, _, node) = current(shared, &nodes, node_name).await?;
    let address = internal_ip(&node).ok_or_else(|| {
        Status::bad_request(format!("node {node_name} has no InternalIP address"))
    })?;
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .unwrap_or(u64::from(KUBELET_PORT));
    let namespace = place.namespace.as_deref().unwrap_or("default");
    let forwarded: Vec<String> = query
        .iter()
        .filter(|(k, _)| k.as_str() != "container")
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    let host = match address {
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        std::net::IpAddr::V4(ip) => ip.to_string(),
    };
    let url = format!(
        "https://{host}:{port}/containerLogs/{namespace}/{name}/{container}?{}",
        forwarded.join("&")
    );
    let unreachable = |e: &dyn std::fmt::Display| {
        Status::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("Get \"{url}\": {e}"),
        )
    };
    let request = hyper::Request::get(url.as_str())
        .body(Empty::new())
        .map_err(|e| unreachable(&e))?;
    let response = shared
        .kubelets
        .client
        .request(request)
        .await
        .map_err(|e| unreachable(&e))?;
    let status = response.status();
    let body = axum::body::Body::new(response.into_body());
    if !status.is_success() {
        let bytes = axum::body::to_bytes(body, 64 * 1024)
            .await
            .unwrap_or_default();
        let message = String::from_utf8_lossy(&bytes).trim().to_string();
        let reason = if status == StatusCode::NOT_FOUND {
            "NotFound"
        } else {
            "BadRequest"
        };
        return Err(Status::new(status, reason, message));
    }
    Ok(([("Content-Type", "text/plain")], body).into_response())
}

/// The node's InternalIP.
fn internal_ip(node: &Value) -> Option<std::net::IpAddr> {
    node["status"]["addresses"]
        .as_array()?
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .and_then(|a| a.parse().ok())
}

/// A query word, percent-encoded.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
