//! metrics.k8s.io/v1beta1, as metrics-server serves it: each running pod's CPU and memory
//! usage (PodMetrics), for the HorizontalPodAutoscaler and `kubectl top pod`, and each
//! node's (NodeMetrics) for `kubectl top node`. Real nodes' usage comes from their
//! agents' cgroups, scraped as metrics-server scrapes kubelets ([`crate::scrapes`]);
//! simulated nodes report a pod's usage in its annotations [`CPU_USAGE`] and
//! [`MEMORY_USAGE`] (tests set them), read from the watch cache, and a simulated node's
//! usage is the sum of its pods'.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::Shared;
use crate::identity::{Access, Identity};
use crate::selectors::Selection;
use crate::status::Status;

/// The pod annotation carrying its CPU usage (`250m`).
pub const CPU_USAGE: &str = "metrics.berth.dev/cpu";
/// The pod annotation carrying its memory usage (`64Mi`).
pub const MEMORY_USAGE: &str = "metrics.berth.dev/memory";

const GROUP_VERSION: &str = "metrics.k8s.io/v1beta1";

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/apis/metrics.k8s.io/v1beta1/pods", get(all_pods))
        .route(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods",
            get(namespace_pods),
        )
        .route(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods/{name}",
            get(one_pod),
        )
        .route("/apis/metrics.k8s.io/v1beta1/nodes", get(all_nodes))
        .route("/apis/metrics.k8s.io/v1beta1/nodes/{name}", get(one_node))
}

type Params = Query<HashMap<String, String>>;

/// The running pods under `prefix` the query selects, as the cache holds them.
fn running_pods(
    shared: &Shared,
    prefix: &str,
    query: &HashMap<String, String>,
) -> Result<Vec<Value>, Status> {
    let selection = Selection::parse(query, "Pod")?;
    let (entries, _) = shared.cache.list(prefix);
    Ok(entries
        .iter()
        .filter(|e| selection.matches_entry(e))
        .map(|e| e.object())
        .filter(|pod| pod["status"]["phase"] == "Running")
        .collect())
}

/// A pod's PodMetrics; None while its real node has not been scraped twice with it.
fn pod_metrics(shared: &Shared, pod: &Value) -> Option<Value> {
    let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
    let containers = if shared.scrapes.covers(node) {
        let namespace = pod["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let measured = shared.scrapes.pod(node, namespace, name)?;
        measured
            .into_iter()
            .map(|(name, usage)| json!({"name": name, "usage": usage_of(usage)}))
            .collect()
    } else {
        annotated(pod)
    };
    Some(json!({
        "kind": "PodMetrics",
        "apiVersion": GROUP_VERSION,
        "metadata": {
            "name": pod["metadata"]["name"],
            "namespace": pod["metadata"]["namespace"],
            "labels": pod["metadata"]["labels"],
            "creationTimestamp": crate::objects::rfc3339(std::time::SystemTime::now()),
        },
        "timestamp": crate::objects::rfc3339(std::time::SystemTime::now()),
        "window": WINDOW,
        "containers": containers,
    }))
}

/// The window usage is measured over: the time between two scrapes.
const WINDOW: &str = "10s";

/// A measured usage as metrics-server writes it: nanocores and KiB.
fn usage_of(usage: crate::scrapes::Usage) -> Value {
    json!({
        "cpu": format!("{}n", usage.cpu_nanocores),
        "memory": format!("{}Ki", usage.memory_bytes / 1024),
    })
}

/// A simulated pod's containers: its annotated usage on the first one (simulated
/// agents report per pod).
fn annotated(pod: &Value) -> Vec<Value> {
    let annotations = &pod["metadata"]["annotations"];
    let usage = json!({
        "cpu": annotations[CPU_USAGE].as_str().unwrap_or("0"),
        "memory": annotations[MEMORY_USAGE].as_str().unwrap_or("0"),
    });
    pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| {
            let usage = if i == 0 {
                usage.clone()
            } else {
                json!({"cpu": "0", "memory": "0"})
            };
            json!({"name": c["name"], "usage": usage})
        })
        .collect()
}

fn list_of(kind: &str, items: Vec<Value>) -> Response {
    let body = json!({"kind": kind, "apiVersion": GROUP_VERSION, "metadata": {}, "items": items});
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// A 403 unless `identity` may `verb` the pods or nodes (in `namespace`) whose metrics
/// these are, as RBAC rules name them: resources of `metrics.k8s.io`.
fn allowed(
    shared: &Shared,
    identity: &Identity,
    (verb, plural): (&str, &str),
    namespace: Option<&str>,
) -> Result<(), Status> {
    let access = Access {
        verb,
        group: "metrics.k8s.io",
        plural,
        subresource: None,
        namespace,
        name: None,
    };
    crate::authorization::require(shared, identity, access)
}

/// The PodMetricsList of the running pods (of `namespace`, or all) the query selects.
fn list(
    shared: &Shared,
    identity: &Identity,
    namespace: Option<&str>,
    query: &HashMap<String, String>,
) -> Response {
    let prefix = match namespace {
        Some(namespace) => format!("/registry/pods/{namespace}/"),
        None => "/registry/pods/".to_string(),
    };
    let listed = allowed(shared, identity, ("list", "pods"), namespace)
        .and_then(|()| running_pods(shared, &prefix, query));
    match listed {
        Ok(pods) => list_of(
            "PodMetricsList",
            pods.iter().filter_map(|p| pod_metrics(shared, p)).collect(),
        ),
        Err(status) => status.into_response(),
    }
}

async fn all_pods(
    State(shared): State<Arc<Shared>>,
    Extension(identity): Extension<Identity>,
    Query(query): Params,
) -> Response {
    list(&shared, &identity, None, &query)
}

async fn namespace_pods(
    State(shared): State<Arc<Shared>>,
    Extension(identity): Extension<Identity>,
    Path(namespace): Path<String>,
    Query(query): Params,
) -> Response {
    list(&shared, &identity, Some(&namespace), &query)
}

async fn one_pod(
    State(shared): State<Arc<Shared>>,
    Extension(identity): Extension<Identity>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    let prefix = format!("/registry/pods/{namespace}/");
    let answer = allowed(&shared, &identity, ("get", "pods"), Some(&namespace))
        .and_then(|()| running_pods(&shared, &prefix, &HashMap::new()))
        .and_then(|pods| {
            pods.into_iter()
                .find(|p| p["metadata"]["name"] == name.as_str())
                .and_then(|pod| pod_metrics(&shared, &pod))
                .ok_or_else(|| Status::not_found("pods.metrics.k8s.io", &name))
        });
    match answer {
        Ok(metrics) => (StatusCode::OK, axum::Json(metrics)).into_response(),
        Err(status) => status.into_response(),
    }
}

/// Each simulated node's usage: the sum of its running pods' usage, in thousandths.
fn simulated_usage(shared: &Shared) -> Result<HashMap<String, (i128, i128)>, Status> {
    let mut usage: HashMap<String, (i128, i128)> = HashMap::new();
    for pod in running_pods(shared, "/registry/pods/", &HashMap::new())? {
        let Some(node) = pod["spec"]["nodeName"].as_str() else {
            continue;
        };
        let read = |key: &str| {
            pod["metadata"]["annotations"][key]
                .as_str()
                .and_then(berth_quantity::milli)
                .unwrap_or(0)
        };
        let entry = usage.entry(node.to_string()).or_default();
        entry.0 += read(CPU_USAGE);
        entry.1 += read(MEMORY_USAGE);
    }
    Ok(usage)
}

/// The NodeMetrics of every node the query selects.
fn node_metrics(shared: &Shared, query: &HashMap<String, String>) -> Result<Vec<Value>, Status> {
    let selection = Selection::parse(query, "Node")?;
    let simulated = simulated_usage(shared)?;
    let (nodes, _) = shared.cache.list("/registry/nodes/");
    let now = crate::objects::rfc3339(std::time::SystemTime::now());
    Ok(nodes
        .iter()
        .filter(|e| selection.matches_entry(e))
        .filter_map(|e| {
            let node = e.object();
            let name = node["metadata"]["name"].as_str().unwrap_or_default();
            let usage = if shared.scrapes.covers(name) {
                usage_of(shared.scrapes.node(name)?)
            } else {
                let (cpu, memory) = simulated.get(name).copied().unwrap_or_default();
                json!({"cpu": berth_quantity::format_milli(cpu), "memory": berth_quantity::format_milli(memory)})
            };
            Some(json!({
                "kind": "NodeMetrics",
                "apiVersion": GROUP_VERSION,
                "metadata": {"name": name, "labels": node["metadata"]["labels"], "creationTimestamp": now},
                "timestamp": now,
                "window": WINDOW,
                "usage": usage,
            }))
        })
        .collect())
}

async fn all_nodes(
    State(shared): State<Arc<Shared>>,
    Extension(identity): Extension<Identity>,
    Query(query): Params,
) -> Response {
    let listed = allowed(&shared, &identity, ("list", "nodes"), None)
        .and_then(|()| node_metrics(&shared, &query));
    match listed {
        Ok(items) => list_of("NodeMetricsList", items),
        Err(status) => status.into_response(),
    }
}

async fn one_node(
    State(shared): State<Arc<Shared>>,
    Extension(identity): Extension<Identity>,
    Path(name): Path<String>,
) -> Response {
    let found = allowed(&shared, &identity, ("get", "nodes"), None)
        .and_then(|()| node_metrics(&shared, &HashMap::new()))
        .and_then(|items| {
            items
                .into_iter()
                .find(|m| m["metadata"]["name"] == name.as_str())
                .ok_or_else(|| Status::not_found("nodes.metrics.k8s.io", &name))
        });
    match found {
        Ok(metrics) => (StatusCode::OK, axum::Json(metrics)).into_response(),
        Err(status) => status.into_response(),
    }
}
