//! What clients ask first: `/version` (kubectl's dispatcher picks its client by it),
//! the API groups and versions, each version's resources, and the health probes.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};

use crate::kinds::Hooks;
use crate::registry::group_versions;
use crate::resources::Resource;
use crate::reviews::{AUTHORIZATION, AUTHORIZATION_RESOURCES};
use crate::{KUBERNETES_VERSION, Shared};

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/version", get(version))
        .route("/api", get(api_versions))
        .route("/api/v1", get(core_resources))
        .route("/apis", get(groups))
        .route("/apis/{group}/{version}", get(group_resources))
        .route("/healthz", get(ok))
        .route("/livez", get(ok))
        .route("/readyz", get(ok))
        .route("/cacerts", get(cacerts))
}

async fn version() -> Json<Value> {
    let (major, minor) = KUBERNETES_VERSION;
    Json(json!({
        "major": major.to_string(),
        "minor": minor.to_string(),
        "gitVersion": format!("v{major}.{minor}.0-berth.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "n/a (Rust)",
        "compiler": "rustc",
        "platform": format!("linux/{}", std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64")),
    }))
}

async fn api_versions() -> Json<Value> {
    Json(json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    }))
}

async fn core_resources(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(resource_list(
        &shared.registry.table(&shared.cache),
        "",
        "v1",
    ))
}

async fn group_resources(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path((group, version)): axum::extract::Path<(String, String)>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let reviews = |resources: &[(&str, &str)]| {
        let resources: Vec<Value> = resources
            .iter()
            .map(|(plural, kind)| {
                json!({
                    "name": plural, "singularName": plural.trim_end_matches('s'),
                    "namespaced": false, "kind": kind, "verbs": ["create"],
                })
            })
            .collect();
        Json(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": format!("{group}/{version}"),
            "resources": resources,
        }))
        .into_response()
    };
    if (group.as_str(), version.as_str()) == AUTHORIZATION {
        return reviews(&AUTHORIZATION_RESOURCES);
    }
    if (group.as_str(), version.as_str()) == AUTHENTICATION {
        return reviews(&[
            ("selfsubjectreviews", "SelfSubjectReview"),
            ("tokenreviews", "TokenReview"),
        ]);
    }
    if (group.as_str(), version.as_str()) == METRICS {
        return Json(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": "metrics.k8s.io/v1beta1",
            "resources": [{
                "name": "pods", "singularName": "", "namespaced": true,
                "kind": "PodMetrics", "verbs": ["get", "list"],
            }, {
                "name": "nodes", "singularName": "", "namespaced": false,
                "kind": "NodeMetrics", "verbs": ["get", "list"],
            }],
        }))
        .into_response();
    }
    let table = shared.registry.table(&shared.cache);
    if !table
        .iter()
        .any(|r| r.group == group && r.version == version)
    {
        return crate::resources::not_served().into_response();
    }
    Json(resource_list(&table, &group, &version)).into_response()
}

/// The APIResourceList of one group version: each resource, then its subresources.
fn resource_list(table: &[Arc<Resource>], group: &str, version: &str) -> Value {
    let resources: Vec<Value> = table
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .flat_map(|r| {
            let resource = json!({
                "name": r.plural,
                "singularName": r.singular,
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                "shortNames": r.short_names,
                "categories": r.categories,
            });
            std::iter::once(resource).chain(subresources(r))
        })
        .collect();
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })
}

/// A subresource as discovery lists it.
struct Subresource {
    name: &'static str,
    /// The group and version of its kind, when not the resource's.
    group_version: Option<(&'static str, &'static str)>,
    kind: String,
    verbs: &'static [&'static str],
}

/// A resource's subresources as discovery lists them (`kubectl drain` looks for
/// `pods/eviction` there before it evicts instead of deleting).
fn subresources(resource: &Resource) -> Vec<Value> {
    let sub = |name, group_version, kind: &str, verbs| Subresource {
        name,
        group_version,
        kind: kind.to_string(),
        verbs,
    };
    let writable: &[&str] = &["get", "patch", "update"];
    let mut found = Vec::new();
    if resource.has_status {
        found.push(sub("status", None, &resource.kind, writable));
    }
    if resource.scale().is_some() {
        found.push(sub("scale", Some(("autoscaling", "v1")), "Scale", writable));
    }
    match resource.hooks() {
        Hooks::Pods => {
            found.push(sub("binding", None, "Binding", &["create"]));
            found.push(sub(
                "eviction",
                Some(("policy", "v1")),
                "Eviction",
                &["create"],
            ));
            found.push(sub("log", None, "Pod", &["get"]));
        }
        Hooks::SigningRequests => {
            found.push(sub("approval", None, &resource.kind, writable));
        }
        Hooks::ServiceAccounts => {
            let group_version = Some(("authentication.k8s.io", "v1"));
            found.push(sub("token", group_version, "TokenRequest", &["create"]));
        }
        _ => {}
    }
    found
        .into_iter()
        .map(|sub| {
            let mut listed = json!({
                "name": format!("{}/{}", resource.plural, sub.name),
                "singularName": "",
                "namespaced": resource.namespaced,
                "kind": sub.kind,
                "verbs": sub.verbs,
            });
            if let Some((group, version)) = sub.group_version {
                listed["group"] = json!(group);
                listed["version"] = json!(version);
            }
            listed
        })
        .collect()
}

/// The group of who-am-I reviews (crate::reviews), which is not stored either.
const AUTHENTICATION: (&str, &str) = ("authentication.k8s.io", "v1");

/// The group of resource usage (crate::metrics), which is not stored either: `kubectl
/// top` looks for it.
const METRICS: (&str, &str) = ("metrics.k8s.io", "v1beta1");

async fn groups(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let unstored = [AUTHENTICATION, AUTHORIZATION, METRICS]
        .map(|(group, version)| (group.to_string(), vec![version.to_string()]));
    let mut served = group_versions(&shared.registry.table(&shared.cache));
    served.extend(unstored);
    // Group versions other servers serve through APIServices, the built-in ones they
    // claim among them.
    for remote in crate::aggregation::remotes(&shared).iter() {
        match served.iter_mut().find(|(group, _)| *group == remote.group) {
            Some((_, versions)) if !versions.contains(&remote.version) => {
                versions.push(remote.version.clone());
            }
            Some(_) => {}
            None => served.push((remote.group.clone(), vec![remote.version.clone()])),
        }
    }
    let groups: Vec<Value> = served
        .into_iter()
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
                .collect();
            json!({"name": group, "preferredVersion": versions[0], "versions": versions})
        })
        .collect();
    Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
}

/// `GET /cacerts`: the cluster CA certificate, for agents joining with a token that pins
/// its hash.
async fn cacerts(State(shared): State<Arc<Shared>>) -> String {
    shared.ca.clone()
}

async fn ok() -> &'static str {
    "ok"
}
