//! The REST verbs of every served resource, namespaced or not, driven by the registry's
//! table (crate::registry): a request's path read as a place and an object, authorized,
//! and handed to reads here (get, list from the watch cache or the store, watch) or to
//! the writes (crate::writes).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use base64::Engine;
use futures_util::StreamExt;

use crate::Shared;
use crate::forms::Form;
use crate::identity::Identity;
use crate::kinds::Hooks;
use crate::objects;
use crate::resources::{Resource, not_served};
use crate::selectors::Selection;
use crate::status::Status;
use crate::stored::{Place, current, in_namespace};
use crate::writes::{self, DeleteOptions, Part, WriteOptions};

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

/// What a request addresses: a place, and in it an object (or part of one) or all.
struct Target {
    place: Place,
    name: Option<String>,
    part: Part,
}

/// A request's path read as Kubernetes lays paths out:
/// `[namespaces/NS/]PLURAL[/NAME[/SUBRESOURCE]]` under `/api/v1` or `/apis/GROUP/VERSION`.
async fn place_of(shared: &Shared, uri: &axum::http::Uri) -> Result<Target, Status> {
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
    let (namespace, plural, object) = match segments.as_slice() {
        ["namespaces", namespace, plural, object @ ..] => (Some(*namespace), *plural, object),
        [plural, object @ ..] => (None, *plural, object),
        [] => return Err(not_served()),
    };
    let resource = shared
        .registry
        .find(shared, (group, version, plural))
        .await?;
    if resource.namespaced != namespace.is_some() && !object.is_empty() || object.len() > 2 {
        return Err(not_served());
    }
    if namespace.is_some() && !resource.namespaced {
        return Err(not_served());
    }
    let part = Part::of(&resource, object.get(1).copied()).ok_or_else(not_served)?;
    Ok(Target {
        place: Place {
            resource,
            namespace: namespace.map(str::to_string),
        },
        name: object.first().map(|n| n.to_string()),
        part,
    })
}

/// What a request addresses, if its identity may `verb` there (for a node, as far as
/// the Node authorizer's graph in the cache goes too).
async fn authorized(
    shared: &Shared,
    uri: &axum::http::Uri,
    identity: &Identity,
    verb: impl FnOnce(&Option<String>) -> &'static str,
) -> Result<Target, Status> {
    let target = place_of(shared, uri).await?;
    let verb = verb(&target.name);
    if target.part == Part::Log && verb != "get" {
        return Err(method_not_allowed());
    }
    let place = &target.place;
    // A list or watch of one object by name is authorized as reading that object, as
    // kube-apiserver's request info takes the name from a `metadata.name` selector.
    let selected = uri.query().and_then(selected_name);
    let access = crate::identity::Access {
        verb,
        group: &place.resource.group,
        plural: &place.resource.plural,
        subresource: target.part.subresource(),
        namespace: place.namespace.as_deref(),
        name: target.name.as_deref().or(selected.as_deref()),
    };
    crate::authorization::require(shared, identity, access)?;
    crate::authorization::node_may_read(&shared.cache, identity, place, access.name)?;
    if matches!(target.part, Part::Token | Part::Eviction) && verb != "create" {
        return Err(method_not_allowed());
    }
    Ok(target)
}

/// The object a query's field selector names alone (`metadata.name=NAME`), if it does.
fn selected_name(query: &str) -> Option<String> {
    let selector = serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(key, _)| key == "fieldSelector")?
        .1;
    let name = selector
        .strip_prefix("metadata.name==")
        .or_else(|| selector.strip_prefix("metadata.name="))?;
    (!name.is_empty() && !name.contains(',')).then(|| name.to_string())
}

async fn get_any(
    State(shared): Shared_,
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
    respond(match authorized(&shared, &uri, &identity, verb).await {
        Ok(Target {
            part: Part::Binding,
            ..
        }) => Err(method_not_allowed()),
        Ok(Target {
            place,
            name: Some(name),
            part: Part::Log,
        }) => crate::kubelets::logs(&shared, &place, &name, &query.0).await,
        Ok(Target {
            place,
            name: Some(name),
            part,
        }) => current(&shared, &place, &name)
            .await
            .and_then(|(_, stored, object)| {
                // Tables are printed from the stored shape, as the watch prints them.
                match crate::forms::requested(&headers, &query.0)? {
                    Some(form) if part == Part::Whole => {
                        let revision = stored.mod_revision;
                        let answer = crate::forms::one(form, &place.resource, object, revision);
                        Ok(json_response(StatusCode::OK, &answer))
                    }
                    _ => {
                        let object = place.resource.present(object);
                        let object = writes::view(part, &place.resource, object);
                        Ok(json_response(StatusCode::OK, &object))
                    }
                }
            }),
        Ok(target) => list(shared, target.place, query, headers).await,
        Err(status) => Err(status),
    })
}

async fn post_any(
    State(shared): Shared_,
    Extension(identity): Extension<Identity>,
    uri: axum::http::Uri,
    Query(query): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(
        async {
            let target = authorized(&shared, &uri, &identity, |_| "create").await?;
            if let (Some(name), Part::Token) = (&target.name, target.part) {
                let request =
                    writes::parse_body(Part::Token, &target.place.resource, &headers, &body)?;
                return crate::tokens::request(&shared, &target.place, name, &identity, request)
                    .await;
            }
            if let (Some(name), Part::Eviction) = (&target.name, target.part) {
                let eviction =
                    writes::parse_body(Part::Eviction, &target.place.resource, &headers, &body)?;
                return crate::disruption::evict(&shared, &target.place, name, &identity, eviction)
                    .await;
            }
            let options = WriteOptions::from_request(&query, &headers, identity)?;
            if let (Some(name), Part::Binding) = (&target.name, target.part) {
                return crate::binding::bind(&shared, &target.place, name, &options, &body).await;
            }
            if target.name.is_some() {
                return Err(method_not_allowed());
            }
            let object = writes::parse_body(Part::Whole, &target.place.resource, &headers, &body)?;
            writes::create(&shared, &target.place, &options, object).await
        }
        .await,
    )
}

/// The object a PUT or PATCH addresses, and the options of its write.
async fn written(
    shared: &Shared,
    uri: &axum::http::Uri,
    identity: Identity,
    verb: &'static str,
    (query, headers): (&HashMap<String, String>, &HeaderMap),
) -> Result<(Target, String, WriteOptions), Status> {
    let target = authorized(shared, uri, &identity, |_| verb).await?;
    if target.part == Part::Binding {
        return Err(method_not_allowed());
    }
    let name = target.name.clone().ok_or_else(method_not_allowed)?;
    Ok((
        target,
        name,
        WriteOptions::from_request(query, headers, identity)?,
    ))
}

async fn put_any(
    State(shared): Shared_,
    Extension(identity): Extension<Identity>,
    uri: axum::http::Uri,
    Query(query): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(
        async {
            let (target, name, options) =
                written(&shared, &uri, identity, "update", (&query, &headers)).await?;
            let given = writes::parse_body(target.part, &target.place.resource, &headers, &body)?;
            let edit = |_current: Value| Ok(given.clone());
            writes::change(&shared, &target.place, &name, (target.part, &options), edit).await
        }
        .await,
    )
}

/// PATCH: the patch applied to the current object (or part), stored if nobody changed
/// it meanwhile.
async fn patch_any(
    State(shared): Shared_,
    Extension(identity): Extension<Identity>,
    uri: axum::http::Uri,
    Query(query): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(
        async {
            let (target, name, options) =
                written(&shared, &uri, identity, "patch", (&query, &headers)).await?;
            if options.manager.applying && target.part == Part::Whole {
                return writes::apply(&shared, &target.place, &name, &options, &body).await;
            }
            let resource = &target.place.resource;
            let kind = &resource.kind;
            let content_type = writes::content_type(&headers);
            let schema = patch_schema(resource, target.part);
            if content_type.starts_with("application/strategic-merge-patch+json")
                && schema.is_none()
            {
                return Err(Status::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                ));
            }
            // Without the current resourceVersion, a patch that names none is applied to
            // whatever is current, retried if another write lands in between.
            let edit = |current: Value| {
                let mut current = objects::without_revision(current);
                objects::apply_patch(&mut current, (content_type, schema.as_ref()), &body)
                    .map_err(|m| Status::invalid(kind, &name, m))?;
                Ok(current)
            };
            writes::change(&shared, &target.place, &name, (target.part, &options), edit).await
        }
        .await,
    )
}

/// The schema a strategic merge patch of `part` of `resource` walks: a built-in kind's,
/// or the Scale of a `/scale`; none for custom objects.
fn patch_schema(resource: &Resource, part: Part) -> Option<prost_reflect::MessageDescriptor> {
    match part {
        Part::Scale => crate::protobuf::message_of(crate::protobuf::SCALE),
        _ if resource.custom().is_some() => None,
        _ => crate::protobuf::message_of(resource.protobuf_kind()),
    }
}

async fn delete_any(
    State(shared): Shared_,
    Extension(identity): Extension<Identity>,
    uri: axum::http::Uri,
    Query(query): Params,
    body: Bytes,
) -> Response {
    respond(
        async {
            let target = authorized(&shared, &uri, &identity, |_| "delete").await?;
            let name = target.name.ok_or_else(method_not_allowed)?;
            if target.part != Part::Whole {
                return Err(method_not_allowed());
            }
            let options = DeleteOptions::from_request(&query, &body, identity)?;
            match target.place.resource.hooks() {
                Hooks::Namespaces => delete_namespace_contents(&shared, &name).await?,
                Hooks::Definitions => crate::custom::delete_objects(&shared, &name).await?,
                _ => {}
            }
            writes::delete(&shared, &target.place, &name, &options).await
        }
        .await,
    )
}

fn method_not_allowed() -> Status {
    Status::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
    )
}

fn respond(result: Result<Response, Status>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

fn json_response(code: StatusCode, value: &Value) -> Response {
    writes::respond(code, value, &[])
}

async fn list(
    shared: Arc<Shared>,
    place: Place,
    Query(query): Params,
    headers: HeaderMap,
) -> Result<Response, Status> {
    let form = crate::forms::requested(&headers, &query)?;
    if matches!(query.get("watch").map(String::as_str), Some("true" | "1")) {
        return crate::watch::watch(shared, place, query, form).await;
    }
    let resource = &place.resource;
    let (items, revision, next) = match from_cache(&shared, &place, &query).await? {
        Some((entries, revision, next)) => {
            if form.is_none() && resource.shown_as_stored() {
                let head = (&*format!("{}List", resource.kind), &*resource.api_version());
                let items = entries.iter().map(|entry| [&entry.json[..]]);
                return Ok(list_body(head, items, revision, next));
            }
            if form == Some(Form::Metadata) {
                let items: Option<Vec<_>> = entries
                    .iter()
                    .map(|e| crate::forms::metadata_text(e))
                    .collect();
                if let Some(items) = items {
                    let head = ("PartialObjectMetadataList", "meta.k8s.io/v1");
                    return Ok(list_body(head, items.into_iter(), revision, next));
                }
            }
            (entries.iter().map(|e| e.object()).collect(), revision, next)
        }
        None => select(&shared, &place, &query).await?,
    };
    let body = match form {
        Some(Form::Table(include)) => {
            crate::tables::table(&place.resource, &items, revision, include)
        }
        Some(Form::Metadata) => crate::forms::metadata_list(&items, revision),
        None => {
            let items: Vec<Value> = items.into_iter().map(|o| resource.present(o)).collect();
            json!({
                "kind": format!("{}List", place.resource.kind),
                "apiVersion": place.resource.api_version(),
                "metadata": {"resourceVersion": revision.to_string()},
                "items": items,
            })
        }
    };
    let mut body = body;
    if let Some(token) = next {
        body["metadata"]["continue"] = json!(token);
    }
    Ok(json_response(StatusCode::OK, &body))
}

/// A list from the watch cache, once it has caught up with the store: whole, or a page
/// of a snapshot taken with the first page (and the token of the next); None when the
/// store must answer (an exact older revision, a page whose snapshot is gone).
async fn from_cache(
    shared: &Shared,
    place: &Place,
    query: &HashMap<String, String>,
) -> Result<Option<CachedList>, Status> {
    let given = |key: &str| query.get(key).filter(|v| !v.is_empty() && *v != "0");
    if query
        .get("resourceVersionMatch")
        .is_some_and(|m| m == "Exact")
    {
        return Ok(None);
    }
    let selection = Selection::parse(query, &place.resource.kind)?;
    let limit: usize = given("limit").and_then(|l| l.parse().ok()).unwrap_or(0);
    let prefix = place.prefix();
    let snapshot = match given("continue") {
        Some(token) => {
            let (cursor, revision) = continue_from(token)?;
            match shared.cache.snapshot_at(&prefix, revision) {
                Some(snapshot) => Some((snapshot, cursor)),
                None => return Ok(None),
            }
        }
        None => None,
    };
    let (snapshot, cursor) = match snapshot {
        Some(kept) => kept,
        None => {
            // resourceVersion=0 takes any state; otherwise the latest is wanted.
            if query.get("resourceVersion").is_none_or(|v| v != "0") {
                let latest = shared
                    .store
                    .revision()
                    .await
                    .map_err(|e| Status::from_store(e, &place.resource.plural, ""))?;
                if !shared.cache.caught_up(latest).await {
                    return Ok(None);
                }
            }
            if limit == 0 {
                let (mut entries, revision) = shared.cache.list(&prefix);
                entries.retain(|entry| selection.matches_entry(entry));
                return Ok(Some((entries, revision, None)));
            }
            (shared.cache.snapshot(&prefix), String::new())
        }
    };
    let mut page = Vec::new();
    let rest = snapshot.after(&cursor);
    for (index, (key, entry)) in rest.iter().enumerate() {
        if !selection.matches_entry(entry) {
            continue;
        }
        page.push(Arc::clone(entry));
        if page.len() == limit && index + 1 < rest.len() {
            shared.cache.keep(&snapshot);
            let token = continue_token(snapshot.revision, key);
            return Ok(Some((page, snapshot.revision, Some(token))));
        }
    }
    shared.cache.release(&snapshot);
    Ok(Some((page, snapshot.revision, None)))
}

/// A list read from the cache: its objects, their revision, the next page's token.
type CachedList = (Vec<Arc<crate::cache::Entry>>, i64, Option<String>);

/// A list's JSON put together from its items' own text (each in `N` parts), without
/// parsing them again.
fn list_body<'a, const N: usize>(
    (kind, api_version): (&str, &str),
    items: impl Iterator<Item = [&'a [u8]; N]>,
    revision: i64,
    next: Option<String>,
) -> Response {
    let mut head = json!({
        "kind": kind,
        "apiVersion": api_version,
        "metadata": {"resourceVersion": revision.to_string()},
    });
    if let Some(token) = next {
        head["metadata"]["continue"] = json!(token);
    }
    let mut body = serde_json::to_vec(&head).unwrap_or_default();
    body.pop(); // the closing brace: the items follow
    body.extend_from_slice(b",\"items\":[");
    for (i, parts) in items.enumerate() {
        if i > 0 {
            body.push(b',');
        }
        for part in parts {
            body.extend_from_slice(part);
        }
    }
    body.extend_from_slice(b"]}");
    (StatusCode::OK, [("content-type", "application/json")], body).into_response()
}

/// The objects a list asks for: those its label and field selectors match, at most
/// `limit` of them from where `continue` left off, all read at one revision; with the
/// token for the next page when more may follow.
async fn select(
    shared: &Shared,
    place: &Place,
    query: &HashMap<String, String>,
) -> Result<(Vec<Value>, i64, Option<String>), Status> {
    let selection = Selection::parse(query, &place.resource.kind)?;
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
            .map_err(|e| Status::from_store(e, &place.resource.plural, ""))?;
        revision = page.revision;
        for kv in &page.items {
            cursor = kv.key.clone();
            if let Some(object) = objects::from_stored(kv).filter(|o| selection.matches(o)) {
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

/// How many of a namespace's objects are deleted at once when it goes.
const NAMESPACE_DELETES: usize = 64;

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
    let key = format!("/registry/namespaces/{namespace}");
    let stored = shared
        .store
        .get(&key)
        .await
        .map_err(|e| Status::from_store(e, "namespaces", namespace))?
        .ok_or_else(|| Status::not_found("namespaces", namespace))?;
    // Terminating first, so that nothing new is made in it while its contents go.
    if let Some(mut object) = objects::from_stored(&stored)
        && object["metadata"]["deletionTimestamp"].is_null()
    {
        object["metadata"]["deletionTimestamp"] =
            json!(objects::rfc3339(std::time::SystemTime::now()));
        object["status"]["phase"] = json!("Terminating");
        let value = serde_json::to_vec(&objects::without_revision(object)).unwrap_or_default();
        shared
            .store
            .update(&key, value, stored.mod_revision)
            .await
            .map_err(|e| Status::from_store(e, "namespaces", namespace))?;
    }
    // Many deletes at once, so that the store commits them in groups rather than one
    // disk flush each.
    let contents = in_namespace(shared, namespace).await?;
    let deletes = contents.into_iter().map(|(resource, kv)| async move {
        match shared.store.delete(&kv.key, 0).await {
            Ok((last, _)) if resource.hooks() == Hooks::Services => {
                if let Some(last) = objects::from_stored(&last) {
                    crate::services::deleted(shared, &last).await;
                }
                Ok(())
            }
            Ok(_) | Err(berth_store::Error::NotFound(_)) => Ok(()),
            Err(e) => Err(Status::from_store(e, &resource.plural, &kv.key)),
        }
    });
    let mut deletes = futures_util::stream::iter(deletes).buffer_unordered(NAMESPACE_DELETES);
    while let Some(outcome) = deletes.next().await {
        outcome?;
    }
    Ok(())
}
