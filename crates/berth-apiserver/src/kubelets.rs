//! The API server as the kubelets' client, and their certificate authority.
//!
//! Agents serve HTTPS on their node (port 10250, as kubelets) with a serving certificate
//! the cluster CA signs: an agent asks for it with its node credentials
//! (`POST /berth/v1/serving-certificate`), naming its node and addresses. The server
//! dials agents trusting the cluster CA alone and authenticates with a client
//! certificate of its own (`kube-apiserver-kubelet-client`, in `system:masters`), which
//! agents require. Over it the server proxies what kubectl asks of pods: their logs
//! (`pods/log`), and the streams of `exec`, `attach` and `port-forward`, upgraded
//! connections spliced through once the agent has switched protocols.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Json, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::{Extension, Router};
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::identity::Identity;
use crate::resources::resource;
use crate::status::Status;
use crate::stored::{Place, current};
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

    /// The text an agent answers to `GET url`.
    pub(crate) async fn get(&self, url: &str) -> std::result::Result<String, String> {
        let request = hyper::Request::get(url)
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = axum::body::to_bytes(axum::body::Body::new(response.into_body()), 16 << 20)
            .await
            .map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{url}: {status}"));
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}

/// The server's routes for agents.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/berth/v1/serving-certificate", post(serving_certificate))
        .route("/berth/v1/node-credentials", post(node_credentials))
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}/exec",
            any(stream),
        )
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}/attach",
            any(stream),
        )
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}/portforward",
            any(stream),
        )
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

/// What an agent asks its own credentials for.
#[derive(Deserialize)]
struct CredentialsRequest {
    node: String,
}

/// A client certificate and its key (PEM).
#[derive(Serialize)]
struct Credentials {
    cert: String,
    key: String,
}

/// `POST /berth/v1/node-credentials`: a joining agent trades the join token for
/// credentials of its own node — a client certificate of `system:node:NAME` in
/// `system:nodes` — which reach only that node's Node, Lease and pods (the Node
/// authorizer and NodeRestriction), as kubelets' TLS bootstrap gets them.
async fn node_credentials(
    State(shared): State<Arc<Shared>>,
    Extension(identity): Extension<Identity>,
    Json(request): Json<CredentialsRequest>,
) -> Response {
    let allowed = match &identity {
        Identity::Admin | Identity::Nodes => true,
        Identity::Node(node) => *node == request.node,
        _ => false,
    };
    let valid = !request.node.is_empty()
        && request.node.len() <= 253
        && request
            .node
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if !allowed || !valid {
        let (status, reason, message) = if allowed {
            (
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("invalid node name {:?}", request.node),
            )
        } else {
            (
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!(
                    "{} may not get credentials for node {:?}",
                    identity.user(),
                    request.node
                ),
            )
        };
        return Status::new(status, reason, message).into_response();
    }
    let user = format!("system:node:{}", request.node);
    match crate::pki::issue_client_certificate(&shared.tls_dir, &user, Some("system:nodes")) {
        Ok((cert, key)) => Json(Credentials { cert, key }).into_response(),
        Err(error) => Status::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            error.to_string(),
        )
        .into_response(),
    }
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
    let (pod, agent) = agent_of(shared, place, name).await?;
    let container = container_of(&pod, name, query.get("container").map(String::as_str))?;
    let namespace = place.namespace.as_deref().unwrap_or("default");
    let forwarded: Vec<String> = query
        .iter()
        .filter(|(k, _)| k.as_str() != "container")
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    let url = format!(
        "{agent}/containerLogs/{namespace}/{name}/{container}?{}",
        forwarded.join("&")
    );
    let request = hyper::Request::get(url.as_str())
        .body(Empty::new())
        .map_err(|e| unreachable(&url, &e))?;
    let response = shared
        .kubelets
        .client
        .request(request)
        .await
        .map_err(|e| unreachable(&url, &e))?;
    let status = response.status();
    let body = axum::body::Body::new(response.into_body());
    if !status.is_success() {
        return Err(refusal(status, body).await);
    }
    Ok(([("Content-Type", "text/plain")], body).into_response())
}

/// The agent's refusal as a Status.
async fn refusal(status: StatusCode, body: axum::body::Body) -> Status {
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let message = String::from_utf8_lossy(&bytes).trim().to_string();
    let reason = match status {
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::FORBIDDEN => "Forbidden",
        _ => "BadRequest",
    };
    Status::new(status, reason, message)
}

/// The error for an agent that could not be asked.
fn unreachable(url: &str, error: &dyn std::fmt::Display) -> Status {
    Status::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        format!("Get \"{url}\": {error}"),
    )
}

/// The pod `name` and the base URL of the agent of its node.
async fn agent_of(
    shared: &Shared,
    place: &Place,
    name: &str,
) -> std::result::Result<(Value, String), Status> {
    let (_, _, pod) = current(shared, place, name).await?;
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
    let agent = agent_url(&node).ok_or_else(|| {
        Status::bad_request(format!("node {node_name} has no InternalIP address"))
    })?;
    Ok((pod, agent))
}

/// The base URL of a node's agent: its InternalIP, on the port it reports.
pub(crate) fn agent_url(node: &Value) -> Option<String> {
    let address = internal_ip(node)?;
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .unwrap_or(u64::from(KUBELET_PORT));
    let host = match address {
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        std::net::IpAddr::V4(ip) => ip.to_string(),
    };
    Some(format!("https://{host}:{port}"))
}

/// The container a request names, or the pod's only one.
fn container_of(
    pod: &Value,
    name: &str,
    asked: Option<&str>,
) -> std::result::Result<String, Status> {
    let containers: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    match asked {
        Some(container) if !container.is_empty() => Ok(container.to_string()),
        _ if containers.len() == 1 => Ok(containers[0].to_string()),
        _ => Err(Status::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            containers.join(" ")
        ))),
    }
}

/// The headers of an upgrade that pass through to the agent and back.
const UPGRADE_HEADERS: [&str; 7] = [
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-accept",
    "x-stream-protocol-version",
];

/// `…/pods/{name}/exec`, `/attach` and `/portforward`: the request passed to the agent
/// of the pod's node and, once the agent has switched protocols, the two connections
/// spliced together (the protocol is the agent's business).
async fn stream(
    State(shared): State<Arc<Shared>>,
    Extension(identity): Extension<Identity>,
    axum::extract::Path((namespace, name)): axum::extract::Path<(String, String)>,
    mut request: axum::extract::Request,
) -> Response {
    let kind = request
        .uri()
        .path()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let to_client = hyper::upgrade::on(&mut request);
    let (parts, _) = request.into_parts();
    match to_agent(&shared, &identity, (namespace, name, kind), parts).await {
        Ok(mut answer) if answer.status() == StatusCode::SWITCHING_PROTOCOLS => {
            let mut response = Response::new(axum::body::Body::empty());
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            copy_upgrade_headers(answer.headers(), response.headers_mut());
            let to_agent = hyper::upgrade::on(&mut answer);
            tokio::spawn(async move {
                let (Ok(client), Ok(agent)) = tokio::join!(to_client, to_agent) else {
                    return;
                };
                let mut client = hyper_util::rt::TokioIo::new(client);
                let mut agent = hyper_util::rt::TokioIo::new(agent);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut agent).await;
            });
            response
        }
        Ok(answer) => {
            let status = answer.status();
            refusal(status, axum::body::Body::new(answer.into_body()))
                .await
                .into_response()
        }
        Err(status) => status.into_response(),
    }
}

/// Asks the agent to upgrade as the client asked.
async fn to_agent(
    shared: &Shared,
    identity: &Identity,
    (namespace, name, kind): (String, String, String),
    request: axum::http::request::Parts,
) -> std::result::Result<hyper::Response<hyper::body::Incoming>, Status> {
    if !matches!(kind.as_str(), "exec" | "attach" | "portforward") {
        return Err(Status::bad_request(format!("pods/{kind} is not a stream")));
    }
    let access = crate::identity::Access {
        verb: "create",
        group: "",
        plural: "pods",
        subresource: Some(&kind),
        namespace: Some(&namespace),
        name: Some(&name),
    };
    crate::authorization::require(shared, identity, access)?;
    let place = Place {
        resource: resource("pods")?,
        namespace: Some(namespace.clone()),
    };
    let (pod, agent) = agent_of(shared, &place, &name).await?;
    let query = request.uri.query().unwrap_or_default();
    let path = if kind == "portforward" {
        format!("/portForward/{namespace}/{name}?{query}")
    } else {
        let asked = query
            .split('&')
            .find_map(|word| word.strip_prefix("container="));
        let container = container_of(&pod, &name, asked)?;
        let rest: Vec<&str> = query
            .split('&')
            .filter(|word| !word.starts_with("container="))
            .collect();
        format!("/{kind}/{namespace}/{name}/{container}?{}", rest.join("&"))
    };
    let url = format!("{agent}{path}");
    let mut upgrade = hyper::Request::builder()
        .method(request.method.clone())
        .uri(url.as_str());
    if let Some(headers) = upgrade.headers_mut() {
        copy_upgrade_headers(&request.headers, headers);
    }
    let upgrade = upgrade
        .body(Empty::new())
        .map_err(|e| unreachable(&url, &e))?;
    shared
        .kubelets
        .client
        .request(upgrade)
        .await
        .map_err(|e| unreachable(&url, &e))
}

fn copy_upgrade_headers(from: &axum::http::HeaderMap, to: &mut axum::http::HeaderMap) {
    for name in UPGRADE_HEADERS {
        for value in from.get_all(name) {
            to.append(name, value.clone());
        }
    }
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
