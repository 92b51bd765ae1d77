//! The served resources and their REST verbs: one set of handlers for every resource,
//! namespaced or not, driven by the [`RESOURCES`] table. Objects are kept as JSON under
//! `/registry/<plural>/[<namespace>/]<name>`, as kube-apiserver keeps them in etcd; their
//! resourceVersion is the store revision of their last change.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use base64::Engine;

use crate::Shared;
use crate::objects;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::Status;

/// A resource the server serves.
#[derive(Debug)]
pub struct Resource {
    /// The URL name: `configmaps`.
    pub plural: &'static str,
    /// `configmap`.
    pub singular: &'static str,
    /// `ConfigMap`.
    pub kind: &'static str,
    /// Whether its objects live in namespaces.
    pub namespaced: bool,
    /// kubectl's short names: `cm`.
    pub short_names: &'static [&'static str],
}

/// The core/v1 resources served so far.
pub const RESOURCES: &[Resource] = &[
    Resource {
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
    },
    Resource {
        plural: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        short_names: &["cm"],
    },
    Resource {
        plural: "secrets",
        singular: "secret",
        kind: "Secret",
        namespaced: true,
        short_names: &[],
    },
];

pub(crate) fn resource(plural: &str) -> Result<&'static Resource, Status> {
    RESOURCES
        .iter()
        .find(|r| r.plural == plural)
        .ok_or_else(|| {
            Status::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource",
            )
        })
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/v1/{plural}", get(list_all).post(create_cluster))
        .route(
            "/api/v1/{plural}/{name}",
            get(get_cluster)
                .put(update_cluster)
                .patch(patch_cluster)
                .delete(delete_cluster),
        )
        .route(
            "/api/v1/namespaces/{namespace}/{plural}",
            get(list_namespaced).post(create_namespaced),
        )
        .route(
            "/api/v1/namespaces/{namespace}/{plural}/{name}",
            get(get_namespaced)
                .put(update_namespaced)
                .patch(patch_namespaced)
                .delete(delete_namespaced),
        )
}

type Params = Query<HashMap<String, String>>;
type Shared_ = State<Arc<Shared>>;

/// Where a request points: a resource, and for namespaced ones a namespace.
struct Place {
    resource: &'static Resource,
    namespace: Option<String>,
}

impl Place {
    fn cluster(plural: &str) -> Result<Self, Status> {
        Ok(Self {
            resource: resource(plural)?,
            namespace: None,
        })
    }

    fn namespaced(namespace: String, plural: &str) -> Result<Self, Status> {
        let resource = resource(plural)?;
        if !resource.namespaced {
            return Err(Status::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource",
            ));
        }
        Ok(Self {
            resource,
            namespace: Some(namespace),
        })
    }

    /// The store prefix of the objects in this place.
    fn prefix(&self) -> String {
        match &self.namespace {
            Some(namespace) => format!("/registry/{}/{namespace}/", self.resource.plural),
            None => format!("/registry/{}/", self.resource.plural),
        }
    }
}

async fn list_all(
    state: Shared_,
    Path(plural): Path<String>,
    query: Params,
    headers: HeaderMap,
) -> Response {
    respond(list(state, Place::cluster(&plural), query, headers).await)
}

async fn list_namespaced(
    state: Shared_,
    Path((namespace, plural)): Path<(String, String)>,
    query: Params,
    headers: HeaderMap,
) -> Response {
    respond(list(state, Place::namespaced(namespace, &plural), query, headers).await)
}

async fn create_cluster(
    state: Shared_,
    Path(plural): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(create(state, Place::cluster(&plural), headers, body).await)
}

async fn create_namespaced(
    state: Shared_,
    Path((namespace, plural)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(create(state, Place::namespaced(namespace, &plural), headers, body).await)
}

async fn get_cluster(state: Shared_, Path((plural, name)): Path<(String, String)>) -> Response {
    respond(read(state, Place::cluster(&plural), name).await)
}

async fn get_namespaced(
    state: Shared_,
    Path((namespace, plural, name)): Path<(String, String, String)>,
) -> Response {
    respond(read(state, Place::namespaced(namespace, &plural), name).await)
}

async fn update_cluster(
    state: Shared_,
    Path((plural, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(update(state, Place::cluster(&plural), name, headers, body).await)
}

async fn update_namespaced(
    state: Shared_,
    Path((namespace, plural, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(
        update(
            state,
            Place::namespaced(namespace, &plural),
            name,
            headers,
            body,
        )
        .await,
    )
}

async fn patch_cluster(
    state: Shared_,
    Path((plural, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(patch(state, Place::cluster(&plural), name, headers, body).await)
}

async fn patch_namespaced(
    state: Shared_,
    Path((namespace, plural, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(
        patch(
            state,
            Place::namespaced(namespace, &plural),
            name,
            headers,
            body,
        )
        .await,
    )
}

async fn delete_cluster(state: Shared_, Path((plural, name)): Path<(String, String)>) -> Response {
    respond(delete(state, Place::cluster(&plural), name).await)
}

async fn delete_namespaced(
    state: Shared_,
    Path((namespace, plural, name)): Path<(String, String, String)>,
) -> Response {
    respond(delete(state, Place::namespaced(namespace, &plural), name).await)
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn respond(result: Result<Response, Status>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

fn json_response(code: StatusCode, value: &Value) -> Response {
    (
        code,
        [("content-type", "application/json")],
        serde_json::to_vec(value).unwrap_or_default(),
    )
        .into_response()
}

async fn list(
    State(shared): Shared_,
    place: Result<Place, Status>,
    Query(query): Params,
    headers: HeaderMap,
) -> Result<Response, Status> {
    let place = place?;
    if matches!(query.get("watch").map(String::as_str), Some("true" | "1")) {
        return watch(shared, place, query).await;
    }
    let (items, revision, next) = select(&shared, &place, &query).await?;
    let wants_table = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"));
    let body = if wants_table {
        objects::table(place.resource, &items, revision)
    } else {
        json!({
            "kind": format!("{}List", place.resource.kind),
            "apiVersion": "v1",
            "metadata": {"resourceVersion": revision.to_string()},
            "items": items,
        })
    };
    let mut body = body;
    if let Some(token) = next {
        body["metadata"]["continue"] = json!(token);
    }
    Ok(json_response(StatusCode::OK, &body))
}

/// The objects a list asks for: those its label and field selectors match, at most
/// `limit` of them from where `continue` left off, all read at one revision; with the
/// token for the next page when more may follow.
async fn select(
    shared: &Shared,
    place: &Place,
    query: &HashMap<String, String>,
) -> Result<(Vec<Value>, i64, Option<String>), Status> {
    let labels = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))
        .map_err(Status::bad_request)?;
    let fields = FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str))
        .map_err(Status::bad_request)?;
    let limit: usize = query.get("limit").and_then(|l| l.parse().ok()).unwrap_or(0);
    let (mut cursor, mut revision) = match query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => continue_from(token)?,
        None => (String::new(), 0),
    };
    let prefix = place.prefix();
    let mut items = Vec::new();
    loop {
        let page = shared
            .store
            .list(&prefix, &cursor, limit, revision)
            .await
            .map_err(|e| Status::from_store(e, place.resource.plural, ""))?;
        revision = page.revision;
        for kv in &page.items {
            cursor = kv.key.clone();
            if let Some(object) =
                objects::from_stored(kv).filter(|o| labels.matches(o) && fields.matches(o))
            {
                items.push(object);
            }
            if limit > 0 && items.len() == limit {
                let last_of_page = page.items.last().is_some_and(|l| l.key == kv.key);
                let more = page.more || !last_of_page;
                let token = more.then(|| continue_token(revision, &cursor));
                return Ok((items, revision, token));
            }
        }
        if !page.more {
            return Ok((items, revision, None));
        }
    }
}

/// The continue token: the revision of the first page and the last key given.
fn continue_token(revision: i64, key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{revision}:{key}"))
}

fn continue_from(token: &str) -> Result<(String, i64), Status> {
    let invalid = || Status::bad_request(format!("invalid continue token {token:?}"));
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(invalid)?;
    let (revision, key) = text.split_once(':').ok_or_else(invalid)?;
    Ok((key.to_string(), revision.parse().map_err(|_| invalid())?))
}

/// `?watch=true`: the changes as JSON lines of `{"type", "object"}`; without a
/// resourceVersion, the current objects first as ADDED.
async fn watch(
    shared: Arc<Shared>,
    place: Place,
    query: HashMap<String, String>,
) -> Result<Response, Status> {
    let prefix = place.prefix();
    let plural = place.resource.plural;
    let labels = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))
        .map_err(Status::bad_request)?;
    let fields = FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str))
        .map_err(Status::bad_request)?;
    let wanted = move |object: &Value| labels.matches(object) && fields.matches(object);
    let from: i64 = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut initial = Vec::new();
    let after = if from == 0 {
        let listed = shared
            .store
            .list(&prefix, "", 0, 0)
            .await
            .map_err(|e| Status::from_store(e, plural, ""))?;
        initial = listed
            .items
            .iter()
            .filter_map(objects::from_stored)
            .filter(|o| wanted(o))
            .collect();
        listed.revision
    } else {
        from
    };
    let mut changes = shared
        .store
        .watch(&prefix, after)
        .await
        .map_err(|e| Status::from_store(e, plural, ""))?;
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        let line = |kind: &str, object: Value| {
            let mut text =
                serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
            text.push(b'\n');
            Bytes::from(text)
        };
        for object in initial {
            if sender.send(Ok(line("ADDED", object))).await.is_err() {
                return;
            }
        }
        while let Some(change) = changes.recv().await {
            let Ok(change) = change else {
                return;
            };
            let event = match change {
                berth_store::Event::Put { kv, prev } => objects::from_stored(&kv)
                    .map(|o| (if prev.is_some() { "MODIFIED" } else { "ADDED" }, o)),
                berth_store::Event::Delete { mut prev, revision } => {
                    prev.mod_revision = revision;
                    objects::from_stored(&prev).map(|o| ("DELETED", o))
                }
            };
            if let Some((kind, object)) = event.filter(|(_, object)| wanted(object))
                && sender.send(Ok(line(kind, object))).await.is_err()
            {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    Ok((
        [("content-type", "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}

async fn create(
    State(shared): Shared_,
    place: Result<Place, Status>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Status> {
    let place = place?;
    let object = objects::parse(&body, content_type(&headers), place.resource.kind)?;
    if let Some(namespace) = &place.namespace {
        objects::require_namespace(shared.store.as_ref(), namespace).await?;
    }
    let (key, object) = objects::prepare_create(
        place.resource,
        place.namespace.as_deref(),
        object,
        &place.prefix(),
    )?;
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let stored = shared
        .store
        .create(&key, serde_json::to_vec(&object).unwrap_or_default())
        .await
        .map_err(|e| Status::from_store(e, place.resource.plural, &name))?;
    let created = objects::from_stored(&stored).unwrap_or(object);
    Ok(json_response(StatusCode::CREATED, &created))
}

async fn read(
    State(shared): Shared_,
    place: Result<Place, Status>,
    name: String,
) -> Result<Response, Status> {
    let place = place?;
    let stored = shared
        .store
        .get(&format!("{}{name}", place.prefix()))
        .await
        .map_err(|e| Status::from_store(e, place.resource.plural, &name))?
        .ok_or_else(|| Status::not_found(place.resource.plural, &name))?;
    let object = objects::from_stored(&stored)
        .ok_or_else(|| Status::not_found(place.resource.plural, &name))?;
    Ok(json_response(StatusCode::OK, &object))
}

async fn update(
    State(shared): Shared_,
    place: Result<Place, Status>,
    name: String,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Status> {
    let place = place?;
    let object = objects::parse(&body, content_type(&headers), place.resource.kind)?;
    let (expected, object) =
        objects::prepare_update(place.resource, place.namespace.as_deref(), &name, object)?;
    let key = format!("{}{name}", place.prefix());
    let current = shared
        .store
        .get(&key)
        .await
        .map_err(|e| Status::from_store(e, place.resource.plural, &name))?
        .ok_or_else(|| Status::not_found(place.resource.plural, &name))?;
    let object = objects::keep_system_fields(object, &current);
    let stored = shared
        .store
        .update(
            &key,
            serde_json::to_vec(&object).unwrap_or_default(),
            expected,
        )
        .await
        .map_err(|e| Status::from_store(e, place.resource.plural, &name))?;
    Ok(json_response(
        StatusCode::OK,
        &objects::from_stored(&stored).unwrap_or(object),
    ))
}

/// PATCH: the patch applied to the current object, stored if nobody changed it meanwhile
/// (the object's resourceVersion is the current one unless the patch names another).
async fn patch(
    State(shared): Shared_,
    place: Result<Place, Status>,
    name: String,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Status> {
    let place = place?;
    let key = format!("{}{name}", place.prefix());
    let current = shared
        .store
        .get(&key)
        .await
        .map_err(|e| Status::from_store(e, place.resource.plural, &name))?
        .ok_or_else(|| Status::not_found(place.resource.plural, &name))?;
    let mut object = objects::from_stored(&current)
        .ok_or_else(|| Status::not_found(place.resource.plural, &name))?;
    objects::apply_patch(&mut object, content_type(&headers), &body)
        .map_err(|m| Status::invalid(place.resource.kind, &name, m))?;
    let (expected, object) =
        objects::prepare_update(place.resource, place.namespace.as_deref(), &name, object)?;
    let object = objects::keep_system_fields(object, &current);
    let stored = shared
        .store
        .update(
            &key,
            serde_json::to_vec(&object).unwrap_or_default(),
            expected,
        )
        .await
        .map_err(|e| Status::from_store(e, place.resource.plural, &name))?;
    Ok(json_response(
        StatusCode::OK,
        &objects::from_stored(&stored).unwrap_or(object),
    ))
}

async fn delete(
    State(shared): Shared_,
    place: Result<Place, Status>,
    name: String,
) -> Result<Response, Status> {
    let place = place?;
    if place.resource.plural == "namespaces" {
        delete_namespace_contents(&shared, &name).await?;
    }
    let (last, _) = shared
        .store
        .delete(&format!("{}{name}", place.prefix()), 0)
        .await
        .map_err(|e| Status::from_store(e, place.resource.plural, &name))?;
    let object = objects::from_stored(&last).unwrap_or(Value::Null);
    Ok(json_response(StatusCode::OK, &object))
}

/// A namespace goes with everything in it, as the namespace controller empties it; the
/// namespaces the cluster needs cannot go.
async fn delete_namespace_contents(shared: &Shared, namespace: &str) -> Result<(), Status> {
    if objects::is_system_namespace(namespace) {
        return Err(Status::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("namespaces \"{namespace}\" is forbidden: this namespace may not be deleted"),
        ));
    }
    if shared
        .store
        .get(&format!("/registry/namespaces/{namespace}"))
        .await
        .map_err(|e| Status::from_store(e, "namespaces", namespace))?
        .is_none()
    {
        return Err(Status::not_found("namespaces", namespace));
    }
    for resource in RESOURCES.iter().filter(|r| r.namespaced) {
        let prefix = format!("/registry/{}/{namespace}/", resource.plural);
        let listed = shared
            .store
            .list(&prefix, "", 0, 0)
            .await
            .map_err(|e| Status::from_store(e, resource.plural, ""))?;
        for kv in listed.items {
            match shared.store.delete(&kv.key, 0).await {
                Ok(_) | Err(berth_store::Error::NotFound(_)) => {}
                Err(e) => return Err(Status::from_store(e, resource.plural, &kv.key)),
            }
        }
    }
    Ok(())
}
