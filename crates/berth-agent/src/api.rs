//! The agent's own HTTPS endpoint, as the kubelet's on port 10250: what the API server
//! proxies to a node for kubectl — its containers' logs
//! (`GET /containerLogs/{namespace}/{pod}/{container}`, with `follow`, `previous`,
//! `tailLines`, `sinceSeconds`, `timestamps` and `limitBytes`), and the streams of
//! [`crate::streams`] (exec, attach, port-forward), and the resource metrics of [`crate::metrics`].
//!
//! Its serving certificate comes from the cluster CA (the agent asks the server for it
//! with its node credentials), and only clients with a certificate the cluster CA signed
//! (the API server's) are let in.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use berth_engine::logs::LogEntry;
use berth_engine::{Container, Engine};
use kube::Client;
use serde::Deserialize;
use serde_json::json;

use crate::AgentError;
use crate::kubelet::{CONTAINER_NAME, POD_NAME, POD_NAMESPACE};

/// A serving certificate, its key and the CA that signed it (PEM), as the server
/// issues them.
#[derive(Deserialize)]
struct Issued {
    cert: String,
    key: String,
    ca: String,
}

/// Asks the server for the node's serving certificate and serves the agent's API on
/// `address` until the process ends.
pub async fn serve(
    client: &Client,
    (node, address): (&str, SocketAddr),
    engine: Arc<Engine>,
) -> Result<tokio::task::JoinHandle<()>, AgentError> {
    let body = json!({"node": node, "addresses": [address.ip()]});
    let request = http::Request::post("/berth/v1/serving-certificate")
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(&body).unwrap_or_default())
        .map_err(|e| AgentError::Serve(e.to_string()))?;
    let issued: Issued = client.request(request).await?;
    let tls = tls_config(&issued)?;
    let router = Router::new()
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs),
        )
        .route("/metrics/resource", get(crate::metrics::resource))
        .merge(crate::streams::routes())
        .with_state(engine);
    let listener = std::net::TcpListener::bind(address)
        .map_err(|e| AgentError::Serve(format!("listen on {address}: {e}")))?;
    let server = axum_server::from_tcp_rustls(listener, tls)
        .map_err(|e| AgentError::Serve(format!("listen on {address}: {e}")))?;
    tracing::info!(%address, "serving the agent's API");
    Ok(tokio::spawn(async move {
        if let Err(error) = server.serve(router.into_make_service()).await {
            tracing::error!(%error, "the agent's API stopped");
        }
    }))
}

/// TLS with the issued certificate, requiring client certificates of the cluster CA.
fn tls_config(issued: &Issued) -> Result<axum_server::tls_rustls::RustlsConfig, AgentError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let setup = |e: &dyn std::fmt::Display| AgentError::Serve(format!("the serving TLS: {e}"));
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(issued.ca.as_bytes()) {
        roots
            .add(ca.map_err(|e| setup(&e))?)
            .map_err(|e| setup(&e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::clone(&provider),
    )
    .build()
    .map_err(|e| setup(&e))?;
    let chain = CertificateDer::pem_slice_iter(issued.cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| setup(&e))?;
    let key = PrivateKeyDer::from_pem_slice(issued.key.as_bytes()).map_err(|e| setup(&e))?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| setup(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| setup(&e))?;
    Ok(axum_server::tls_rustls::RustlsConfig::from_config(
        Arc::new(config),
    ))
}

/// The agent's address for its API: the node's, on the kubelet's port.
pub fn address(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

/// What `kubectl logs` asks for.
#[derive(Debug, Default)]
struct LogOptions {
    follow: bool,
    previous: bool,
    timestamps: bool,
    tail_lines: Option<usize>,
    since_seconds: Option<i64>,
    limit_bytes: Option<usize>,
}

impl LogOptions {
    fn of(query: &HashMap<String, String>) -> Result<Self, String> {
        let flag = |key: &str| matches!(query.get(key).map(String::as_str), Some("true" | "1"));
        let number = |key: &str| -> Result<Option<i64>, String> {
            query
                .get(key)
                .map(|v| {
                    v.parse::<i64>()
                        .map_err(|_| format!("{key} {v:?} is not a number"))
                })
                .transpose()
        };
        Ok(Self {
            follow: flag("follow"),
            previous: flag("previous"),
            timestamps: flag("timestamps"),
            tail_lines: number("tailLines")?.and_then(|n| usize::try_from(n).ok()),
            since_seconds: number("sinceSeconds")?,
            limit_bytes: number("limitBytes")?.and_then(|n| usize::try_from(n).ok()),
        })
    }

    /// Whether an entry passes `sinceSeconds`.
    fn keeps(&self, entry: &LogEntry, now: std::time::SystemTime) -> bool {
        let Some(seconds) = self.since_seconds else {
            return true;
        };
        let since = now - std::time::Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
        let since = k8s_openapi::jiff::Timestamp::try_from(since).ok();
        let at = entry.time.parse::<k8s_openapi::jiff::Timestamp>().ok();
        match (at, since) {
            (Some(at), Some(since)) => at >= since,
            _ => true,
        }
    }

    /// Entries as kubectl prints them: the text, each line after its time with
    /// `timestamps`.
    fn render(&self, entries: &[LogEntry]) -> String {
        let mut out = String::new();
        for entry in entries {
            if self.timestamps {
                out.push_str(&entry.time);
                out.push(' ');
            }
            out.push_str(&entry.log);
        }
        out
    }
}

fn refuse(status: StatusCode, message: String) -> Response {
    (status, message).into_response()
}

/// `GET /containerLogs/{namespace}/{pod}/{container}`.
async fn container_logs(
    State(engine): State<Arc<Engine>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let options = match LogOptions::of(&query) {
        Ok(options) => options,
        Err(refusal) => return refuse(StatusCode::BAD_REQUEST, refusal),
    };
    let runs = runs(&engine, &namespace, &pod, &container);
    let run = if options.previous {
        runs.len().checked_sub(2).and_then(|i| runs.get(i))
    } else {
        runs.last()
    };
    let Some(run) = run.cloned() else {
        let what = if options.previous {
            "previous terminated container"
        } else {
            "container"
        };
        return refuse(
            StatusCode::NOT_FOUND,
            format!("{what} \"{container}\" in pod \"{pod}\" not found"),
        );
    };
    let path = engine.log_path(&run);
    let entries = match berth_engine::logs::read_all(&path) {
        Ok(entries) => entries,
        Err(error) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    };
    let now = std::time::SystemTime::now();
    let mut entries: Vec<LogEntry> = entries
        .into_iter()
        .filter(|e| options.keeps(e, now))
        .collect();
    if let Some(tail) = options.tail_lines {
        entries.drain(..entries.len().saturating_sub(tail));
    }
    let mut first = options.render(&entries);
    if let Some(limit) = options.limit_bytes {
        first.truncate(first.floor_char_boundary(limit));
    }
    if !options.follow || options.previous {
        return first.into_response();
    }
    follow(engine, run, options, first)
}

/// The log so far, then what the run writes until it ends.
fn follow(engine: Arc<Engine>, run: Container, options: LogOptions, first: String) -> Response {
    let path = engine.log_path(&run);
    let Ok(log) = std::fs::File::open(&path) else {
        return first.into_response();
    };
    let offset = log.metadata().map_or(0, |m| m.len());
    let (sender, receiver) = tokio::sync::mpsc::channel::<Vec<LogEntry>>(16);
    tokio::spawn(berth_engine::logs::follow(engine, run, log, offset, sender));
    let rest = futures_util::stream::unfold(receiver, move |mut receiver| async move {
        let entries = receiver.recv().await?;
        Some((entries, receiver))
    });
    let rendered = futures_util::StreamExt::map(rest, move |entries| {
        Ok::<_, std::io::Error>(options.render(&entries))
    });
    let start = futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) });
    Body::from_stream(futures_util::StreamExt::chain(start, rendered)).into_response()
}

/// The engine's runs of a pod's container, oldest first.
pub(crate) fn runs(engine: &Engine, namespace: &str, pod: &str, container: &str) -> Vec<Container> {
    let all = engine.containers(true);
    let mut runs: Vec<Container> = all
        .into_iter()
        .filter(|c| {
            let labels = c.request.labels.clone().unwrap_or_default();
            labels.get(POD_NAMESPACE).map(String::as_str) == Some(namespace)
                && labels.get(POD_NAME).map(String::as_str) == Some(pod)
                && labels.get(CONTAINER_NAME).map(String::as_str) == Some(container)
        })
        .collect();
    runs.sort_by_key(crate::status::attempt);
    runs
}
