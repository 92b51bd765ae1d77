//! OpenAPI v3 discovery: each served resource's paths with their operations, tagged with
//! the kind they act on and naming the `fieldValidation` query parameter (which tells
//! kubectl the server validates fields itself, so it sends `fieldValidation=Strict`),
//! and every kind's schema with Kubernetes' field descriptions, generated from the
//! k8s-openapi types, for `kubectl explain`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use serde_json::{Map, Value, json};

use crate::Shared;
use crate::resources::{RESOURCES, Resource, group_versions};

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/openapi/v2", get(swagger))
        .route("/openapi/v3", get(root))
        .route("/openapi/v3/api/v1", get(core_v1))
        .route("/openapi/v3/apis/{group}/{version}", get(group_version))
}

/// The document's version: it changes only with the server's build.
const HASH: &str = env!("CARGO_PKG_VERSION");

async fn root() -> Json<Value> {
    let mut paths = Map::new();
    paths.insert(
        "api/v1".into(),
        json!({"serverRelativeURL": format!("/openapi/v3/api/v1?hash={HASH}")}),
    );
    for (group, version) in group_versions() {
        paths.insert(
            format!("apis/{group}/{version}"),
            json!({"serverRelativeURL": format!("/openapi/v3/apis/{group}/{version}?hash={HASH}")}),
        );
    }
    Json(json!({"paths": paths}))
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
        "operationId": format!("{id}{}", resource.kind),
        "parameters": parameters,
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-group-version-kind": {"group": resource.group, "version": resource.version, "kind": resource.kind},
    })
}

async fn core_v1() -> Json<Value> {
    Json(document("", "v1"))
}

async fn group_version(Path((group, version)): Path<(String, String)>) -> Json<Value> {
    Json(document(&group, &version))
}

/// The paths of one group version's resources, and their kinds' schemas added to
/// `generator` as (schema name, kind).
fn paths_of(
    group: &str,
    version: &str,
    generator: &mut schemars::SchemaGenerator,
    paths: &mut Map<String, Value>,
) -> Vec<(String, &'static str)> {
    let mut kinds = Vec::new();
    let root = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    for resource in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let base = if resource.namespaced {
            format!("{root}/namespaces/{{namespace}}/{}", resource.plural)
        } else {
            format!("{root}/{}", resource.plural)
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
        kinds.push(((resource.schema)(generator), resource.kind));
    }
    kinds
}

/// The generator's schemas, each kind's tagged with its group, version and kind, which
/// is how kubectl finds them.
fn tagged_schemas(
    generator: &mut schemars::SchemaGenerator,
    kinds: &[(String, &'static str, &str, &str)],
) -> Map<String, Value> {
    let mut schemas = generator.take_definitions(true);
    for (name, kind, group, version) in kinds {
        if let Some(schema) = schemas.get_mut(name).and_then(Value::as_object_mut) {
            schema.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": group, "version": version, "kind": kind}]),
            );
        }
    }
    schemas
}

fn info() -> Value {
    let (major, minor) = crate::KUBERNETES_VERSION;
    json!({"title": "Kubernetes", "version": format!("v{major}.{minor}")})
}

/// One group version's OpenAPI v3 document.
fn document(group: &str, version: &str) -> Value {
    let mut paths = Map::new();
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    let kinds: Vec<_> = paths_of(group, version, &mut generator, &mut paths)
        .into_iter()
        .map(|(name, kind)| (name, kind, group, version))
        .collect();
    json!({
        "openapi": "3.0.0",
        "info": info(),
        "paths": paths,
        "components": {"schemas": tagged_schemas(&mut generator, &kinds)},
    })
}

/// `/openapi/v2`: every group version in one Swagger 2.0 document, for clients that
/// predate OpenAPI v3 (served as JSON).
async fn swagger() -> Json<Value> {
    let mut settings = schemars::generate::SchemaSettings::openapi3();
    settings.definitions_path = "/definitions".into();
    let mut generator = settings.into_generator();
    let mut paths = Map::new();
    let mut kinds = Vec::new();
    let mut versions = vec![("", "v1")];
    versions.extend(group_versions());
    for (group, version) in versions {
        let found = paths_of(group, version, &mut generator, &mut paths);
        kinds.extend(
            found
                .into_iter()
                .map(|(name, kind)| (name, kind, group, version)),
        );
    }
    Json(json!({
        "swagger": "2.0",
        "info": info(),
        "paths": paths,
        "definitions": tagged_schemas(&mut generator, &kinds),
    }))
}
