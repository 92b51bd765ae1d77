//! OpenAPI v3 discovery, as far as clients need it today: each served resource's paths
//! with their operations, tagged with the kind they act on and naming the
//! `fieldValidation` query parameter, which tells kubectl the server validates fields
//! itself (so kubectl sends `fieldValidation=Strict` instead of checking schemas). Full
//! schemas come with the typed resources.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::routing::get;
use serde_json::{Map, Value, json};

use crate::Shared;
use crate::resources::{RESOURCES, Resource};

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/openapi/v3", get(root))
        .route("/openapi/v3/api/v1", get(core_v1))
}

/// The document's version: it changes only with the server's build.
const HASH: &str = env!("CARGO_PKG_VERSION");

async fn root() -> Json<Value> {
    Json(
        json!({"paths": {"api/v1": {"serverRelativeURL": format!("/openapi/v3/api/v1?hash={HASH}")}}}),
    )
}

fn parameter(name: &str, location: &str) -> Value {
    json!({"name": name, "in": location, "schema": {"type": "string"}})
}

/// One operation on `resource`.
fn operation(resource: &Resource, id: &str, with_body_checks: bool) -> Value {
    let mut parameters = vec![];
    if with_body_checks {
        for name in ["dryRun", "fieldManager", "fieldValidation"] {
            parameters.push(parameter(name, "query"));
        }
    }
    json!({
        "operationId": format!("{id}CoreV1{}", resource.kind),
        "parameters": parameters,
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-group-version-kind": {"group": "", "version": "v1", "kind": resource.kind},
    })
}

async fn core_v1() -> Json<Value> {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for resource in RESOURCES {
        let base = if resource.namespaced {
            format!("/api/v1/namespaces/{{namespace}}/{}", resource.plural)
        } else {
            format!("/api/v1/{}", resource.plural)
        };
        paths.insert(
            base.clone(),
            json!({
                "get": operation(resource, "list", false),
                "post": operation(resource, "create", true),
            }),
        );
        paths.insert(
            format!("{base}/{{name}}"),
            json!({
                "get": operation(resource, "read", false),
                "put": operation(resource, "replace", true),
                "patch": operation(resource, "patch", true),
                "delete": operation(resource, "delete", false),
            }),
        );
        schemas.insert(
            format!("io.k8s.api.core.v1.{}", resource.kind),
            json!({
                "type": "object",
                "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": resource.kind}],
            }),
        );
    }
    Json(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v{}.{}", crate::KUBERNETES_VERSION.0, crate::KUBERNETES_VERSION.1)},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}
