//! OpenAPI v3 discovery: each served resource's paths with their operations, tagged with
//! the kind they act on and naming the `fieldValidation` query parameter (which tells
//! kubectl the server validates fields itself, so it sends `fieldValidation=Strict`),
//! and every kind's schema with Kubernetes' field descriptions, generated from the
//! k8s-openapi types, for `kubectl explain`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use serde_json::{Map, Value, json};

use crate::Shared;
use crate::registry::{Table, each_group_version};
use crate::resources::{Definition, Resource};

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/openapi/v2", get(swagger))
        .route("/openapi/v3", get(root))
        .route("/openapi/v3/api/v1", get(core_v1))
        .route("/openapi/v3/apis/{group}/{version}", get(group_version))
}

/// The document's version: it changes only with the server's build.
const HASH: &str = env!("CARGO_PKG_VERSION");

async fn root(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let mut paths = Map::new();
    paths.insert(
        "api/v1".into(),
        json!({"serverRelativeURL": format!("/openapi/v3/api/v1?hash={HASH}")}),
    );
    let table = shared.registry.table(&shared.cache);
    for (group, version) in each_group_version(&table) {
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

/// Which document an operation is written for: the media types a PATCH takes are
/// `requestBody` content in OpenAPI v3 and `consumes` in Swagger 2.0.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Document {
    V2,
    V3,
}

/// The PATCH operation on `resource`, with the patch types it takes: kubectl computes a
/// strategic merge patch from the schema only for kinds whose PATCH takes one.
fn patch_operation(resource: &Resource, document: Document) -> Value {
    let mut types = vec![
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/apply-patch+yaml",
    ];
    if resource.custom().is_none() {
        types.push("application/strategic-merge-patch+json");
    }
    let mut operation = operation(resource, "patch", true);
    match document {
        Document::V2 => operation["consumes"] = json!(types),
        Document::V3 => {
            let content: Map<String, Value> = types
                .iter()
                .map(|t| (t.to_string(), json!({"schema": {"type": "object"}})))
                .collect();
            operation["requestBody"] = json!({"content": content, "required": true});
        }
    }
    operation
}

async fn core_v1(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(document(&shared.registry.table(&shared.cache), "", "v1"))
}

async fn group_version(
    State(shared): State<Arc<Shared>>,
    Path((group, version)): Path<(String, String)>,
) -> Json<Value> {
    Json(document(
        &shared.registry.table(&shared.cache),
        &group,
        &version,
    ))
}

/// A kind's schema in a document: its name, and for a custom kind the schema itself
/// (a built-in kind's is in the generator).
struct KindSchema {
    name: String,
    custom: Option<Value>,
    kind: String,
    group: String,
    version: String,
}

/// The paths of one group version's resources, and their kinds' schemas (those of
/// built-in kinds added to `generator`).
fn paths_of(
    table: &Table,
    (group, version, document): (&str, &str, Document),
    generator: &mut schemars::SchemaGenerator,
    paths: &mut Map<String, Value>,
) -> Vec<KindSchema> {
    let mut kinds = Vec::new();
    let root = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    for resource in table
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
                "patch": patch_operation(resource, document),
                "delete": operation(resource, "delete", false),
            }),
        );
        kinds.push(kind_schema(resource, generator));
    }
    kinds
}

fn kind_schema(resource: &Resource, generator: &mut schemars::SchemaGenerator) -> KindSchema {
    let (name, custom) = match &resource.definition {
        Definition::BuiltIn { schema, .. } => (schema(generator), None),
        Definition::Custom(version) => {
            // kube-apiserver's name for it: the group reversed, `com.example.v1.CronTab`.
            let group: Vec<&str> = resource.group.rsplit('.').collect();
            let name = format!("{}.{}.{}", group.join("."), resource.version, resource.kind);
            (name, Some(version.schema_json()))
        }
    };
    KindSchema {
        name,
        custom,
        kind: resource.kind.clone(),
        group: resource.group.clone(),
        version: resource.version.clone(),
    }
}

/// The generator's schemas, each kind's tagged with its group, version and kind, which
/// is how kubectl finds them.
fn tagged_schemas(
    generator: &mut schemars::SchemaGenerator,
    kinds: Vec<KindSchema>,
) -> Map<String, Value> {
    let mut schemas = generator.take_definitions(true);
    crate::strategic::mark_strategies(&mut schemas);
    for KindSchema {
        name,
        custom,
        kind,
        group,
        version,
    } in kinds
    {
        if let Some(custom) = custom {
            schemas.insert(name.clone(), custom);
        }
        if let Some(schema) = schemas.get_mut(&name).and_then(Value::as_object_mut) {
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
fn document(table: &Table, group: &str, version: &str) -> Value {
    let mut paths = Map::new();
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    let kinds = paths_of(
        table,
        (group, version, Document::V3),
        &mut generator,
        &mut paths,
    );
    json!({
        "openapi": "3.0.0",
        "info": info(),
        "paths": paths,
        "components": {"schemas": tagged_schemas(&mut generator, kinds)},
    })
}

/// `/openapi/v2`: every group version in one Swagger 2.0 document, for clients that
/// predate OpenAPI v3 — in protobuf when they ask for it (crate::swagger), as
/// client-go's discovery does, JSON otherwise.
async fn swagger(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let document = swagger_document(&shared);
    let accepts = |media: &str| {
        headers
            .get_all(axum::http::header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains(media))
    };
    if accepts("application/com.github.proto-openapi.spec.v2") {
        let body = crate::swagger::encode(&document);
        return ([("content-type", crate::swagger::MEDIA_TYPE)], body).into_response();
    }
    Json(document).into_response()
}

/// The Swagger 2.0 document of every served group version.
fn swagger_document(shared: &Shared) -> Value {
    let mut settings = schemars::generate::SchemaSettings::openapi3();
    settings.definitions_path = "/definitions".into();
    let mut generator = settings.into_generator();
    let mut paths = Map::new();
    let mut kinds = Vec::new();
    let table = shared.registry.table(&shared.cache);
    let mut versions = vec![(String::new(), "v1".to_string())];
    versions.extend(each_group_version(&table));
    for (group, version) in &versions {
        kinds.extend(paths_of(
            &table,
            (group, version, Document::V2),
            &mut generator,
            &mut paths,
        ));
    }
    json!({
        "swagger": "2.0",
        "info": info(),
        "paths": paths,
        "definitions": tagged_schemas(&mut generator, kinds),
    })
}
