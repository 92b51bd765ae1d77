//! The served resources and their REST verbs: one set of handlers for every resource,
//! namespaced or not, driven by the [`RESOURCES`] table. Objects are kept as JSON under
//! `/registry/<plural>/[<namespace>/]<name>`, as kube-apiserver keeps them in etcd; their
//! resourceVersion is the store revision of their last change.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use base64::Engine;

use crate::Shared;
use crate::auth::Identity;
use crate::objects;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::Status;

/// A resource the server serves.
#[derive(Debug)]
pub struct Resource {
    /// Its API group: empty for the core group.
    pub group: &'static str,
    /// Its version: `v1`, `v2`.
    pub version: &'static str,
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

impl Resource {
    /// `v1` or `apps/v1`, as apiVersion fields say it.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

macro_rules! resource {
    ($group:expr, $version:expr, $plural:expr, $singular:expr, $kind:expr, $namespaced:expr, [$($short:expr),*]) => {
        Resource {
            group: $group,
            version: $version,
            plural: $plural,
            singular: $singular,
            kind: $kind,
            namespaced: $namespaced,
            short_names: &[$($short),*],
        }
    };
}

/// The resources served: stored as given, checked for kind, names and namespace; their
/// own validation and defaulting come with their typed schemas.
pub const RESOURCES: &[Resource] = &[
    resource!(
        "",
        "v1",
        "namespaces",
        "namespace",
        "Namespace",
        false,
        ["ns"]
    ),
    resource!(
        "",
        "v1",
        "configmaps",
        "configmap",
        "ConfigMap",
        true,
        ["cm"]
    ),
    resource!("", "v1", "secrets", "secret", "Secret", true, []),
    resource!("", "v1", "pods", "pod", "Pod", true, ["po"]),
    resource!("", "v1", "services", "service", "Service", true, ["svc"]),
    resource!(
        "",
        "v1",
        "endpoints",
        "endpoints",
        "Endpoints",
        true,
        ["ep"]
    ),
    resource!("", "v1", "nodes", "node", "Node", false, ["no"]),
    resource!("", "v1", "events", "event", "Event", true, ["ev"]),
    resource!(
        "",
        "v1",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        ["sa"]
    ),
    resource!(
        "",
        "v1",
        "persistentvolumes",
        "persistentvolume",
        "PersistentVolume",
        false,
        ["pv"]
    ),
    resource!(
        "",
        "v1",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        "PersistentVolumeClaim",
        true,
        ["pvc"]
    ),
    resource!(
        "apps",
        "v1",
        "deployments",
        "deployment",
        "Deployment",
        true,
        ["deploy"]
    ),
    resource!(
        "apps",
        "v1",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        true,
        ["rs"]
    ),
    resource!(
        "apps",
        "v1",
        "daemonsets",
        "daemonset",
        "DaemonSet",
        true,
        ["ds"]
    ),
    resource!(
        "apps",
        "v1",
        "statefulsets",
        "statefulset",
        "StatefulSet",
        true,
        ["sts"]
    ),
    resource!("batch", "v1", "jobs", "job", "Job", true, []),
    resource!(
        "batch",
        "v1",
        "cronjobs",
        "cronjob",
        "CronJob",
        true,
        ["cj"]
    ),
    resource!(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        "HorizontalPodAutoscaler",
        true,
        ["hpa"]
    ),
    resource!(
        "coordination.k8s.io",
        "v1",
        "leases",
        "lease",
        "Lease",
        true,
        []
    ),
    resource!(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "endpointslice",
        "EndpointSlice",
        true,
        []
    ),
];

/// The group versions served besides the core `v1`, in discovery order.
pub(crate) fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        if !seen.contains(&(r.group, r.version)) {
            seen.push((r.group, r.version));
        }
    }
    seen
}

pub(crate) fn resource(plural: &str) -> Result<&'static Resource, Status> {
    find(
        RESOURCES
            .iter()
            .find(|r| r.group.is_empty() && r.plural == plural),
    )
}

fn find(found: Option<&'static Resource>) -> Result<&'static Resource, Status> {
    found.ok_or_else(not_served)
}

fn not_served() -> Status {
    Status::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource",
    )
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    let verbs = || {
        get(get_any)
            .post(post_any)
            .put(put_any)
            .patch(patch_any)
            .delete(delete_any)
    };
    Router::new()
        .route("/api/v1/{*rest}", verbs())
        .route("/apis/{group}/{version}/{*rest}", verbs())
}

type Params = Query<HashMap<String, String>>;
type Shared_ = State<Arc<Shared>>;

/// Where a request points: a resource, and for namespaced ones a namespace.
struct Place {
    resource: &'static Resource,
    namespace: Option<String>,
}

impl Place {
    /// The store prefix of the objects in this place.
    fn prefix(&self) -> String {
        match &self.namespace {
            Some(namespace) => format!("/registry/{}/{namespace}/", self.resource.plural),
            None => format!("/registry/{}/", self.resource.plural),
        }
    }
}

/// A request's path read as Kubernetes lays paths out: `[namespaces/NS/]PLURAL[/NAME]`
/// under `/api/v1` or `/apis/GROUP/VERSION`.
fn place_of(uri: &axum::http::Uri) -> Result<(Place, Option<String>), Status> {
    let path = uri.path();
    let (group, version, rest) = match path.strip_prefix("/api/v1/") {
        Some(rest) => ("", "v1", rest),
        None => {
            let rest = path.strip_prefix("/apis/").unwrap_or_default();
            let mut parts = rest.splitn(3, '/');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(group), Some(version), Some(rest)) => (group, version, rest),
                _ => return Err(not_served()),
            }
        }
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let lookup = |plural: &str| {
        find(
            RESOURCES
                .iter()
                .find(|r| r.group == group && r.version == version && r.plural == plural),
        )
    };
    let cluster = |resource: &'static Resource, name: Option<&str>| {
        Ok((
            Place {
                resource,
                namespace: None,
            },
            name.map(str::to_string),
        ))
    };
    match segments.as_slice() {
        ["namespaces", namespace, plural, rest @ ..] => {
            let resource = lookup(plural)?;
            if !resource.namespaced || rest.len() > 1 {
                return Err(not_served());
            }
            Ok((
                Place {
                    resource,
                    namespace: Some(namespace.to_string()),
                },
                rest.first().map(|n| n.to_string()),
            ))
        }
        [plural] => cluster(lookup(plural)?, None),
        [plural, name] => {
            let resource = lookup(plural)?;
            if resource.namespaced {
                return Err(not_served());
            }
            cluster(resource, Some(name))
        }
        _ => Err(not_served()),
    }
}

/// The place a request points at, if its identity may `verb` there.
fn authorized(
    uri: &axum::http::Uri,
    identity: Identity,
    verb: impl FnOnce(&Option<String>) -> &'static str,
) -> Result<(Place, Option<String>), Status> {
    let (place, name) = place_of(uri)?;
    let verb = verb(&name);
    if !identity.may(verb, place.resource.plural) {
        return Err(crate::auth::forbidden(
            identity,
            verb,
            place.resource.group,
            place.resource.plural,
            place.namespace.as_deref(),
        ));
    }
    Ok((place, name))
}

async fn get_any(
    state: Shared_,
    Extension(identity): Extension<Identity>,
    uri: axum::http::Uri,
    query: Params,
    headers: HeaderMap,
) -> Response {
    let watching = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    let verb = |name: &Option<String>| match (name, watching) {
        (Some(_), _) => "get",
        (None, true) => "watch",
        (None, false) => "list",
    };
    respond(match authorized(&uri, identity, verb) {
        Ok((place, Some(name))) => read(state, Ok(place), name).await,
        Ok((place, None)) => list(state, Ok(place), query, headers).await,
        Err(status) => Err(status),
    })
}

async fn post_any(
    state: Shared_,
    Extension(identity): Extension<Identity>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(match authorized(&uri, identity, |_| "create") {
        Ok((place, None)) => create(state, Ok(place), headers, body).await,
        Ok((_, Some(_))) => Err(method_not_allowed()),
        Err(status) => Err(status),
    })
}

async fn put_any(
    state: Shared_,
    Extension(identity): Extension<Identity>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(match authorized(&uri, identity, |_| "update") {
        Ok((place, Some(name))) => update(state, Ok(place), name, headers, body).await,
        Ok((_, None)) => Err(method_not_allowed()),
        Err(status) => Err(status),
    })
}

async fn patch_any(
    state: Shared_,
    Extension(identity): Extension<Identity>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(match authorized(&uri, identity, |_| "patch") {
        Ok((place, Some(name))) => patch(state, Ok(place), name, headers, body).await,
        Ok((_, None)) => Err(method_not_allowed()),
        Err(status) => Err(status),
    })
}

async fn delete_any(
    state: Shared_,
    Extension(identity): Extension<Identity>,
    uri: axum::http::Uri,
) -> Response {
    respond(match authorized(&uri, identity, |_| "delete") {
        Ok((place, Some(name))) => delete(state, Ok(place), name).await,
        Ok((_, None)) => Err(method_not_allowed()),
        Err(status) => Err(status),
    })
}

fn method_not_allowed() -> Status {
    Status::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
    )
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
    let wants_table = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"));
    if matches!(query.get("watch").map(String::as_str), Some("true" | "1")) {
        return watch(shared, place, query, wants_table).await;
    }
    let (items, revision, next) = select(&shared, &place, &query).await?;
    let body = if wants_table {
        objects::table(place.resource, &items, revision)
    } else {
        json!({
            "kind": format!("{}List", place.resource.kind),
            "apiVersion": place.resource.api_version(),
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
    let wanted = selected(query)?;
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
            if let Some(object) = objects::from_stored(kv).filter(|o| wanted(o)) {
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

/// Whether an object is one the query's label and field selectors ask for.
fn selected(query: &HashMap<String, String>) -> Result<impl Fn(&Value) -> bool + use<>, Status> {
    let selector = |key: &str| query.get(key).map_or("", String::as_str);
    let labels = LabelSelector::parse(selector("labelSelector")).map_err(Status::bad_request)?;
    let fields = FieldSelector::parse(selector("fieldSelector")).map_err(Status::bad_request)?;
    Ok(move |object: &Value| labels.matches(object) && fields.matches(object))
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
    as_table: bool,
) -> Result<Response, Status> {
    let resource = place.resource;
    let prefix = place.prefix();
    let plural = place.resource.plural;
    let wanted = selected(&query)?;
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
        // kubectl get -w asks for each object as a one-row Table.
        let line = |kind: &str, object: Value| {
            let object = if as_table {
                let revision = object["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                objects::table(resource, &[object], revision)
            } else {
                object
            };
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
    let (_, _, object) = current(&shared, &place, &name).await?;
    Ok(json_response(StatusCode::OK, &object))
}

/// The object at `name`: its store key, its stored form, and as clients see it.
async fn current(
    shared: &Shared,
    place: &Place,
    name: &str,
) -> Result<(String, berth_store::KeyValue, Value), Status> {
    let key = format!("{}{name}", place.prefix());
    let not_found = || Status::not_found(place.resource.plural, name);
    let stored = shared
        .store
        .get(&key)
        .await
        .map_err(|e| Status::from_store(e, place.resource.plural, name))?
        .ok_or_else(not_found)?;
    let object = objects::from_stored(&stored).ok_or_else(not_found)?;
    Ok((key, stored, object))
}

/// Stores the new form of the object at `key` if it is still at revision `expected`,
/// keeping the fields clients cannot change; the object as stored.
async fn replace(
    shared: &Shared,
    place: &Place,
    name: &str,
    (key, current): (String, berth_store::KeyValue),
    object: Value,
    expected: i64,
) -> Result<Response, Status> {
    let object = objects::keep_system_fields(object, &current);
    let stored = shared
        .store
        .update(
            &key,
            serde_json::to_vec(&object).unwrap_or_default(),
            expected,
        )
        .await
        .map_err(|e| Status::from_store(e, place.resource.plural, name))?;
    Ok(json_response(
        StatusCode::OK,
        &objects::from_stored(&stored).unwrap_or(object),
    ))
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
    let (key, stored, _) = current(&shared, &place, &name).await?;
    replace(&shared, &place, &name, (key, stored), object, expected).await
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
    let (key, stored, mut object) = current(&shared, &place, &name).await?;
    objects::apply_patch(&mut object, content_type(&headers), &body)
        .map_err(|m| Status::invalid(place.resource.kind, &name, m))?;
    let (expected, object) =
        objects::prepare_update(place.resource, place.namespace.as_deref(), &name, object)?;
    replace(&shared, &place, &name, (key, stored), object, expected).await
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
