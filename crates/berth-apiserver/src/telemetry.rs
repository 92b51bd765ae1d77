//! The server's own metrics at `/metrics`, in Prometheus' text format and under
//! kube-apiserver's names, so dashboards and alerts written for it work: every request
//! counted by verb, resource and code (`apiserver_request_total`), its latency
//! (`apiserver_request_duration_seconds`, watches aside as upstream's long-running
//! requests), and the objects stored per resource (`apiserver_storage_objects`).
//! Reading them takes `get` on the non-resource URL `/metrics` (system:monitoring).

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Extension, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::Shared;
use crate::identity::Identity;
use crate::requests::RequestInfo;

/// kube-apiserver's latency buckets, in seconds.
const BUCKETS: [f64; 23] = [
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

/// What a request was, as kube-apiserver's request metrics label it.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: &'static str,
    group: String,
    version: String,
    resource: String,
    subresource: String,
    scope: &'static str,
    component: &'static str,
}

/// A request's labels and how it ended.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CountedLabels {
    #[prometheus(flatten)]
    request: RequestLabels,
    code: u16,
}

/// A resource, as `apiserver_storage_objects` names it: `pods`, `deployments.apps`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoredLabels {
    resource: String,
}

/// The server's metrics.
pub(crate) struct Telemetry {
    registry: Registry,
    requests: Family<CountedLabels, Counter>,
    durations: Family<RequestLabels, Histogram>,
    stored: Family<StoredLabels, Gauge>,
}

impl Default for Telemetry {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<CountedLabels, Counter>::default();
        registry.register(
            "apiserver_request",
            "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.",
            requests.clone(),
        );
        let durations = Family::<RequestLabels, Histogram>::new_with_constructor(
            new_histogram as fn() -> Histogram,
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.",
            durations.clone(),
        );
        let stored = Family::<StoredLabels, Gauge>::default();
        registry.register(
            "apiserver_storage_objects",
            "Number of stored objects at the time of last check split by kind.",
            stored.clone(),
        );
        Self {
            registry,
            requests,
            durations,
            stored,
        }
    }
}

fn new_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new().route("/metrics", get(metrics))
}

/// Counts and times every request that reaches a handler.
pub(crate) async fn record(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let labels = labels_of(request.method(), request.uri());
    let started = Instant::now();
    let response = next.run(request).await;
    let telemetry = &shared.telemetry;
    if labels.verb != "WATCH" {
        telemetry
            .durations
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
    }
    let counted = CountedLabels {
        request: labels,
        code: response.status().as_u16(),
    };
    telemetry.requests.get_or_create(&counted).inc();
    response
}

/// `GET /metrics`: the metrics in Prometheus' text format.
async fn metrics(
    State(shared): State<Arc<Shared>>,
    Extension(identity): Extension<Identity>,
) -> Response {
    if !crate::authorization::authorize_path(&shared, &identity, "get", "/metrics") {
        return crate::status::Status::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "forbidden: User \"{}\" cannot get path \"/metrics\"",
                identity.user()
            ),
        )
        .into_response();
    }
    let telemetry = &shared.telemetry;
    for resource in shared.registry.table(&shared.cache).iter() {
        let (objects, _) = shared.cache.list(&resource.directory);
        let name = match resource.group.as_str() {
            "" => resource.plural.to_string(),
            group => format!("{}.{group}", resource.plural),
        };
        telemetry
            .stored
            .get_or_create(&StoredLabels { resource: name })
            .set(objects.len() as i64);
    }
    let mut text = String::new();
    if let Err(error) =
        prometheus_client::encoding::prometheus_text::encode(&mut text, &telemetry.registry)
    {
        return (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response();
    }
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response()
}

/// The labels of a request to `uri` by `method`: its verb as kube-apiserver reports it
/// (LIST and WATCH apart from GET, POST and PUT for creates and updates), and for API
/// paths the group, version, resource, subresource and scope.
fn labels_of(method: &Method, uri: &axum::http::Uri) -> RequestLabels {
    let info = RequestInfo::of(method, uri);
    let verb = match info.verb {
        "watch" => "WATCH",
        "list" => "LIST",
        "get" => "GET",
        "create" | "post" => "POST",
        "update" | "put" => "PUT",
        "patch" => "PATCH",
        "deletecollection" => "DELETECOLLECTION",
        "delete" => "DELETE",
        _ => "OTHER",
    };
    let scope = match (&info.name, &info.namespace) {
        _ if !info.is_resource() => "",
        (Some(_), _) => "resource",
        (None, Some(_)) => "namespace",
        (None, None) => "cluster",
    };
    RequestLabels {
        verb,
        group: info.group,
        version: info.version,
        resource: info.resource,
        subresource: info.subresource,
        scope,
        component: "apiserver",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(method: Method, uri: &str) -> (String, String, String, String) {
        let labels = labels_of(&method, &uri.parse().unwrap());
        (
            labels.verb.to_string(),
            labels.resource,
            labels.subresource,
            labels.scope.to_string(),
        )
    }

    #[test]
    fn requests_are_labelled_as_kube_apiserver_labels_them() {
        let owned = |v: &str, r: &str, s: &str, scope: &str| {
            (
                v.to_string(),
                r.to_string(),
                s.to_string(),
                scope.to_string(),
            )
        };
        assert_eq!(
            labels(Method::GET, "/api/v1/pods"),
            owned("LIST", "pods", "", "cluster")
        );
        assert_eq!(
            labels(Method::GET, "/api/v1/namespaces/a/pods?watch=true"),
            owned("WATCH", "pods", "", "namespace")
        );
        assert_eq!(
            labels(Method::PUT, "/api/v1/namespaces/a/pods/web/status"),
            owned("PUT", "pods", "status", "resource")
        );
        assert_eq!(
            labels(Method::DELETE, "/api/v1/namespaces/a"),
            owned("DELETE", "namespaces", "", "resource")
        );
        assert_eq!(
            labels(Method::GET, "/apis/apps/v1/namespaces/a/deployments"),
            owned("LIST", "deployments", "", "namespace")
        );
        assert_eq!(labels(Method::GET, "/version"), owned("GET", "", "", ""));
    }
}
