//! The verbs that change objects — create, update, patch, delete — on an object or on
//! its `status` and `scale` subresources, with the options every write takes
//! (`fieldValidation`, `dryRun`, `fieldManager`) and delete's own (propagationPolicy,
//! gracePeriodSeconds, preconditions, finalizers).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::Shared;
use crate::admission::{Operation, Write};
use crate::identity::Identity;
use crate::kinds::{FieldValidation, Hooks};
use crate::managed::{self, Manager};
use crate::objects;
use crate::resources::{Resource, ScaleSelector};
use crate::services;
use crate::status::Status;
use crate::stored::Place;
use crate::webhooks;

/// The part of an object a request addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// The object itself: everything but its status when the kind has one.
    Whole,
    /// `/status`: only the status.
    Status,
    /// `/scale`: only `spec.replicas`, seen as an autoscaling/v1 Scale.
    Scale,
    /// A pod's `/binding`: its node, set once by the scheduler.
    Binding,
    /// A pod's `/log`: its container's output, from its node's agent (read only).
    Log,
    /// A ServiceAccount's `/token`: a token issued for it (create only).
    Token,
    /// A pod's `/eviction`: its deletion, unless a disruption budget forbids it
    /// (create only).
    Eviction,
    /// A CertificateSigningRequest's `/approval`: only its conditions.
    Approval,
}

impl Part {
    /// The part named by a path's subresource, if the resource has it.
    pub(crate) fn of(resource: &Resource, subresource: Option<&str>) -> Option<Self> {
        match subresource {
            None => Some(Part::Whole),
            Some("status") if resource.has_status => Some(Part::Status),
            Some("scale") if resource.scale().is_some() => Some(Part::Scale),
            Some("binding") if resource.hooks() == Hooks::Pods => Some(Part::Binding),
            Some("log") if resource.hooks() == Hooks::Pods => Some(Part::Log),
            Some("token") if resource.hooks() == Hooks::ServiceAccounts => Some(Part::Token),
            Some("eviction") if resource.hooks() == Hooks::Pods => Some(Part::Eviction),
            Some("approval") if resource.hooks() == Hooks::SigningRequests => Some(Part::Approval),
            Some(_) => None,
        }
    }

    /// The subresource's name in paths and RBAC rules; none for the object itself.
    pub(crate) fn subresource(self) -> Option<&'static str> {
        match self {
            Part::Whole => None,
            Part::Status => Some("status"),
            Part::Scale => Some("scale"),
            Part::Binding => Some("binding"),
            Part::Log => Some("log"),
            Part::Token => Some("token"),
            Part::Eviction => Some("eviction"),
            Part::Approval => Some("approval"),
        }
    }
}

/// The options every write takes from its query.
pub(crate) struct WriteOptions {
    validation: FieldValidation,
    pub(crate) dry_run: bool,
    /// Who writes: the `fieldManager`, else the client program's name.
    pub(crate) manager: Manager,
    /// Who asks, for the checks of what a node may touch.
    identity: Identity,
}

impl WriteOptions {
    /// The write the admission webhooks are asked about.
    pub(crate) fn webhooks_write<'a>(
        &self,
        operation: Operation,
        place: &'a Place,
        (part, name): (Part, &'a str),
    ) -> Write<'a> {
        Write {
            operation,
            resource: &place.resource,
            subresource: part.subresource(),
            namespace: place.namespace.as_deref(),
            name,
            user: self.identity.info(),
            dry_run: self.dry_run,
        }
    }

    /// Refuses a write of `object` that its writer may not touch (a node, another
    /// node's pods).
    pub(crate) fn touchable(&self, resource: &Resource, object: &Value) -> Result<(), Status> {
        touchable(&self.identity, resource, object)
    }

    /// The options of a write the server makes itself on a client's behalf (an
    /// eviction's budget): by `manager`, with every right, checked strictly.
    pub(crate) fn by_server(manager: &str) -> Self {
        Self {
            validation: FieldValidation::Strict,
            dry_run: false,
            manager: Manager {
                name: manager.to_string(),
                applying: false,
                force: false,
            },
            identity: Identity::Admin,
        }
    }

    pub(crate) fn from_request(
        query: &HashMap<String, String>,
        headers: &HeaderMap,
        identity: Identity,
    ) -> Result<Self, Status> {
        let applying = content_type(headers).starts_with(APPLY_PATCH);
        let named = query.get("fieldManager").filter(|m| !m.is_empty());
        if applying && named.is_none() {
            return Err(Status::invalid(
                "PatchOptions.meta.k8s.io",
                "",
                "fieldManager: Required value: is required for apply patch",
            ));
        }
        let program = || {
            let agent = headers.get("user-agent").and_then(|v| v.to_str().ok());
            agent
                .and_then(|a| a.split('/').next())
                .filter(|a| !a.is_empty())
                .unwrap_or("unknown")
                .to_string()
        };
        let manager = Manager {
            name: named.cloned().unwrap_or_else(program),
            applying,
            force: applying && query.get("force").is_some_and(|f| f == "true"),
        };
        let dry_run = match query.get("dryRun").map(String::as_str) {
            None | Some("") => false,
            Some("All") => true,
            Some(other) => {
                return Err(Status::bad_request(format!(
                    "dryRun: Unsupported value: \"{other}\": supported values: \"All\""
                )));
            }
        };
        Ok(Self {
            validation: FieldValidation::from_query(
                query.get("fieldValidation").map(String::as_str),
            )?,
            dry_run,
            manager,
            identity,
        })
    }
}

/// The media type of server-side apply's PATCH.
pub(crate) const APPLY_PATCH: &str = "application/apply-patch";

/// The part of `object` a client reads and writes at `part`.
pub(crate) fn view(part: Part, resource: &Resource, object: Value) -> Value {
    let Some(paths) = resource.scale().filter(|_| part == Part::Scale) else {
        return object;
    };
    let at = |path: &str| {
        object
            .pointer(&pointer_of(path))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let selector = match paths.selector {
        ScaleSelector::Text(path) => path
            .and_then(|path| at(path).as_str().map(str::to_string))
            .unwrap_or_default(),
        ScaleSelector::Labels(path) => at(path)
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(","),
    };
    let metadata = &object["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "uid": metadata["uid"],
            "resourceVersion": metadata["resourceVersion"],
            "creationTimestamp": metadata["creationTimestamp"],
        },
        "spec": {"replicas": at(paths.spec_replicas).as_i64().unwrap_or(0)},
        "status": {
            "replicas": at(paths.status_replicas).as_i64().unwrap_or(0),
            "selector": selector,
        },
    })
}

/// The JSON pointer of a simple JSON path: `/spec/replicas` for `.spec.replicas`.
fn pointer_of(path: &str) -> String {
    path.replace('.', "/")
}

/// Sets the field a simple JSON path names, making the objects on the way.
fn set_at(object: &mut Value, path: &str, value: Value) {
    let mut node = object;
    for part in path.trim_start_matches('.').split('.') {
        if !node.is_object() {
            *node = json!({});
        }
        node = &mut node[part];
    }
    *node = value;
}

/// The object `given` at `part` makes of `current`: a write to one part leaves the
/// others as they are.
fn merged(
    part: Part,
    resource: &Resource,
    current: &Value,
    mut given: Value,
) -> Result<Value, Status> {
    let revision = given["metadata"]["resourceVersion"].take();
    let mut object = match part {
        Part::Log | Part::Token | Part::Eviction => {
            return Err(Status::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "a pod's log is read only, and tokens and evictions are only created",
            ));
        }
        Part::Binding => given,
        Part::Whole => {
            if resource.has_status {
                given["status"] = current["status"].clone();
            }
            given
        }
        Part::Status => {
            let mut object = current.clone();
            object["status"] = given["status"].take();
            object
        }
        Part::Approval => {
            let mut object = current.clone();
            object["status"]["conditions"] = given["status"]["conditions"].take();
            object
        }
        Part::Scale => {
            let Some(replicas) = given["spec"]["replicas"].as_i64().filter(|r| *r >= 0) else {
                return Err(Status::invalid(
                    "Scale",
                    current["metadata"]["name"].as_str().unwrap_or_default(),
                    "spec.replicas: Invalid value: must be a non-negative integer",
                ));
            };
            let mut object = current.clone();
            let path = resource
                .scale()
                .map_or(".spec.replicas", |p| p.spec_replicas);
            set_at(&mut object, path, json!(replicas));
            object
        }
    };
    object["metadata"]["resourceVersion"] = revision;
    Ok(object)
}

/// POST: a new object, defaulted, checked and stored unless it is a dry run.
pub(crate) async fn create(
    shared: &Shared,
    place: &Place,
    options: &WriteOptions,
    mut object: Value,
) -> Result<Response, Status> {
    let resource = &place.resource;
    if let Some(namespace) = &place.namespace {
        crate::stored::require_namespace(shared, namespace).await?;
    }
    if resource.has_status && resource.hooks() != Hooks::Nodes {
        // What a new object says of its status is dropped: a custom object's whole (its
        // schema may require fields of a status), a built-in one's left empty.
        match (resource.custom(), object.as_object_mut()) {
            (Some(_), Some(fields)) => drop(fields.remove("status")),
            _ => object["status"] = json!({}),
        }
    }
    let (key, object) = crate::prepare::create(
        resource,
        place.namespace.as_deref(),
        object,
        &place.prefix(),
    )?;
    let admitted = resource.admit(object, (options.validation, None))?;
    let mut object = admitted.object;
    touchable(&options.identity, resource, &object)?;
    crate::escalation::check_write(shared, &options.identity, resource, (None, &object))?;
    let namespace = place.namespace.as_deref().unwrap_or_default();
    let mut warnings = admitted.warnings;
    let new = (&mut object, &mut warnings);
    admit_new(shared, &options.identity, (resource, namespace), new).await?;
    if resource.custom().is_none() {
        let place = (resource.plural.as_str(), namespace);
        crate::podsecurity::check_template(shared, place, &object, &mut warnings);
    }
    let name = objects::name_of(&object).to_string();
    let write = options.webhooks_write(Operation::Create, place, (Part::Whole, &name));
    let mut object = webhooked(shared, &write, (object, None), &mut warnings).await?;
    if !options.manager.applying {
        let api_version = resource.api_version();
        managed::record_update(None, &mut object, &options.manager.name, &api_version);
    }
    if resource.has_status {
        object["metadata"]["generation"] = json!(1);
    }
    let claims = if resource.hooks() == Hooks::Services {
        services::claim(shared, namespace, (&mut object, None), options.dry_run).await?
    } else {
        services::Claims::default()
    };
    if options.dry_run {
        return Ok(respond(StatusCode::CREATED, &object, &warnings));
    }
    let stored = async {
        crate::quota::charge(shared, resource, namespace, &object).await?;
        shared
            .store
            .create(&key, resource.encode(&object))
            .await
            .map_err(|e| Status::from_store(e, &resource.plural, &name))
    }
    .await;
    let stored = match stored {
        Ok(stored) => stored,
        Err(status) => {
            claims.undo(shared).await;
            return Err(status);
        }
    };
    let created = as_written(resource, object, &stored);
    Ok(respond(StatusCode::CREATED, &created, &warnings))
}

/// What a write answers with: `object`, which was stored as it is, given the revision it
/// was stored at — parsed back from the store's bytes only for a resource whose clients
/// see another shape than the stored one.
fn as_written(resource: &Resource, mut object: Value, stored: &berth_store::KeyValue) -> Value {
    if resource.shown_as_stored() {
        object["metadata"]["resourceVersion"] = json!(stored.mod_revision.to_string());
        return object;
    }
    objects::from_stored(stored).map_or(object, |o| resource.present(o))
}

/// What a new object gets for its kind's [`Hooks`] before the webhooks see it.
async fn admit_new(
    shared: &Shared,
    identity: &Identity,
    (resource, namespace): (&Resource, &str),
    (object, warnings): (&mut Value, &mut Vec<String>),
) -> Result<(), Status> {
    match resource.hooks() {
        Hooks::Pods => {
            crate::accounts::admit(shared, object)?;
            crate::priorities::admit(shared, object).await?;
            crate::quota::limit(shared, namespace, object)?;
            crate::podsecurity::admit_pod(shared, namespace, object, warnings)?;
        }
        Hooks::Claims => crate::storage::admit(shared, object),
        Hooks::Secrets => crate::accounts::issue_legacy_token(shared, object)?,
        Hooks::Definitions => crate::custom::written(object, warnings),
        Hooks::SigningRequests => crate::certificates::record_requester(identity, object),
        Hooks::None
        | Hooks::Namespaces
        | Hooks::Nodes
        | Hooks::ServiceAccounts
        | Hooks::Services
        | Hooks::Roles
        | Hooks::Bindings => {}
    }
    Ok(())
}

/// The admission webhooks' part of a write: the mutating ones over `object` (read
/// through its schema again when they changed it), then the validating ones.
async fn webhooked(
    shared: &Shared,
    write: &Write<'_>,
    (mut object, old): (Value, Option<&Value>),
    warnings: &mut Vec<String>,
) -> Result<Value, Status> {
    if webhooks::mutate(shared, write, (&mut object, old), warnings).await? {
        object = write
            .resource
            .admit(object, (FieldValidation::Ignore, old))?
            .object;
    }
    crate::policies::validate(shared, write, (Some(&object), old), warnings)?;
    webhooks::validate(shared, write, (Some(&object), old), warnings).await?;
    Ok(object)
}

/// PUT and PATCH: `edit` turns the current view of `part` into the one wanted, which is
/// merged into the object, checked and stored if nobody changed the object meanwhile.
/// When the client named no resourceVersion, a concurrent change is retried, as
/// kube-apiserver does.
pub(crate) async fn change(
    shared: &Shared,
    place: &Place,
    name: &str,
    (part, options): (Part, &WriteOptions),
    edit: impl Fn(Value) -> Result<Value, Status>,
) -> Result<Response, Status> {
    let resource = &place.resource;
    loop {
        let (key, stored, current) = crate::stored::current(shared, place, name).await?;
        let current = resource.present(current);
        touchable(&options.identity, resource, &current)?;
        if part == Part::Approval {
            crate::certificates::may_approve(shared, &options.identity, &current)?;
        }
        let given = edit(view(part, resource, current.clone()))?;
        let proposed = merged(part, resource, &current, given)?;
        let (expected, proposed) =
            crate::prepare::update(resource, place.namespace.as_deref(), name, proposed)?;
        let admitted = resource.admit(proposed, (options.validation, Some(&current)))?;
        let mut object = objects::carry_over(admitted.object, &current, resource.has_status);
        touchable(&options.identity, resource, &object)?;
        let change = (Some(&current), &object);
        crate::escalation::check_write(shared, &options.identity, resource, change)?;
        let mut warnings = admitted.warnings;
        if part == Part::Whole && resource.hooks() == Hooks::Definitions {
            crate::custom::written(&mut object, &mut warnings);
        }
        if part == Part::Whole
            && resource.custom().is_none()
            && let Some(namespace) = place.namespace.as_deref()
        {
            let place = (resource.plural.as_str(), namespace);
            crate::podsecurity::check_template(shared, place, &object, &mut warnings);
        }
        let write = options.webhooks_write(Operation::Update, place, (part, name));
        let mut object = webhooked(shared, &write, (object, Some(&current)), &mut warnings).await?;
        if !options.manager.applying {
            let (manager, api_version) = (&options.manager.name, resource.api_version());
            managed::record_update(Some(&current), &mut object, manager, &api_version);
        }
        let claims = if part == Part::Whole && resource.hooks() == Hooks::Services {
            let namespace = place.namespace.as_deref().unwrap_or_default();
            let service = (&mut object, Some(&current));
            services::claim(shared, namespace, service, options.dry_run).await?
        } else {
            services::Claims::default()
        };
        if options.dry_run {
            return Ok(respond(
                StatusCode::OK,
                &view(part, resource, object),
                &warnings,
            ));
        }
        if objects::finalized(&object) {
            claims.undo(shared).await;
            let last =
                resource.present(remove(shared, place, name, &key, stored.mod_revision).await?);
            return Ok(respond(
                StatusCode::OK,
                &view(part, resource, last),
                &warnings,
            ));
        }
        let guard = if expected == 0 {
            stored.mod_revision
        } else {
            expected
        };
        let result = shared
            .store
            .update(&key, resource.encode(&object), guard)
            .await;
        match result {
            Ok(kv) => {
                claims.settle(shared).await;
                let object = as_written(resource, object, &kv);
                return Ok(respond(
                    StatusCode::OK,
                    &view(part, resource, object),
                    &warnings,
                ));
            }
            Err(berth_store::Error::Conflict { .. }) if expected == 0 => claims.undo(shared).await,
            Err(e) => {
                claims.undo(shared).await;
                return Err(Status::from_store(e, &resource.plural, name));
            }
        }
    }
}

/// What a DELETE asks for, from its query and its DeleteOptions body.
pub(crate) struct DeleteOptions {
    identity: Identity,
    /// None when the request named none: Background, leaving the finalizers of an object
    /// already being deleted as they are.
    propagation: Option<Propagation>,
    grace_period: Option<i64>,
    precondition_uid: Option<String>,
    precondition_revision: Option<String>,
    dry_run: bool,
}

/// What happens to an object's dependents (those whose ownerReferences name it): the
/// garbage collector's work, asked for by the owner's finalizers as in Kubernetes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Propagation {
    /// The owner goes at once; the collector deletes its dependents after it.
    Background,
    /// The owner stays, being deleted, until the collector has deleted the dependents
    /// that block it (`blockOwnerDeletion`).
    Foreground,
    /// The owner stays until the collector has taken its reference out of its
    /// dependents, which stay.
    Orphan,
}

/// The finalizers by which an owner asks the garbage collector for its propagation.
const FOREGROUND: &str = "foregroundDeletion";
const ORPHAN: &str = "orphan";

impl Propagation {
    /// The finalizer that asks for it, if any.
    fn finalizer(self) -> Option<&'static str> {
        match self {
            Propagation::Background => None,
            Propagation::Foreground => Some(FOREGROUND),
            Propagation::Orphan => Some(ORPHAN),
        }
    }

    /// The propagation a DELETE names: its `propagationPolicy`, else the deprecated
    /// `orphanDependents`.
    fn asked(policy: Option<&str>, orphan: Option<bool>) -> Result<Option<Self>, Status> {
        match (policy, orphan) {
            (Some("Background"), _) => Ok(Some(Propagation::Background)),
            (Some("Foreground"), _) => Ok(Some(Propagation::Foreground)),
            (Some("Orphan"), _) => Ok(Some(Propagation::Orphan)),
            (Some(other), _) => Err(Status::bad_request(format!(
                "propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            ))),
            (None, Some(true)) => Ok(Some(Propagation::Orphan)),
            (None, Some(false)) => Ok(Some(Propagation::Background)),
            (None, None) => Ok(None),
        }
    }
}

/// Sets the object's garbage-collection finalizers to the one `propagation` asks for
/// (none for Background); whether they changed.
fn ask_propagation(object: &mut Value, propagation: Propagation) -> bool {
    let current: Vec<Value> = object["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut wanted: Vec<Value> = current
        .iter()
        .filter(|f| *f != FOREGROUND && *f != ORPHAN)
        .cloned()
        .collect();
    wanted.extend(propagation.finalizer().map(|f| json!(f)));
    let changed = wanted.len() != current.len() || wanted.iter().any(|f| !current.contains(f));
    if changed {
        object["metadata"]["finalizers"] = json!(wanted);
    }
    changed
}

impl DeleteOptions {
    pub(crate) fn from_request(
        query: &HashMap<String, String>,
        body: &[u8],
        identity: Identity,
    ) -> Result<Self, Status> {
        let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice(body).map_err(|e| {
                Status::bad_request(format!("the DeleteOptions body is not valid JSON: {e}"))
            })?
        };
        let text = |key: &str| {
            query
                .get(key)
                .cloned()
                .or_else(|| body[key].as_str().map(str::to_string))
        };
        let orphan = query
            .get("orphanDependents")
            .map(|o| o == "true")
            .or_else(|| body["orphanDependents"].as_bool());
        let propagation = Propagation::asked(text("propagationPolicy").as_deref(), orphan)?;
        let grace_period = query
            .get("gracePeriodSeconds")
            .and_then(|g| g.parse().ok())
            .or_else(|| body["gracePeriodSeconds"].as_i64());
        let dry_run = text("dryRun").as_deref() == Some("All")
            || body["dryRun"]
                .as_array()
                .is_some_and(|d| d.iter().any(|v| v == "All"));
        let precondition = |key: &str| body["preconditions"][key].as_str().map(str::to_string);
        Ok(Self {
            identity,
            propagation,
            grace_period,
            precondition_uid: precondition("uid"),
            precondition_revision: precondition("resourceVersion"),
            dry_run,
        })
    }
}

/// DELETE: the object goes with its dependents (or they are orphaned); one with
/// finalizers, or a pod on a node, is only marked deleted until they are done.
pub(crate) async fn delete(
    shared: &Shared,
    place: &Place,
    name: &str,
    options: &DeleteOptions,
) -> Result<Response, Status> {
    // Without preconditions, a write that lands between the read and the delete (a
    // controller's status update) is no reason to fail: try again on the new version.
    let preconditions =
        options.precondition_uid.is_some() || options.precondition_revision.is_some();
    let mut attempts = 0;
    loop {
        match delete_once(shared, place, name, options).await {
            Err(status) if status.is_conflict() && !preconditions && attempts < 10 => attempts += 1,
            outcome => return outcome,
        }
    }
}

async fn delete_once(
    shared: &Shared,
    place: &Place,
    name: &str,
    options: &DeleteOptions,
) -> Result<Response, Status> {
    let resource = &place.resource;
    let (key, stored, mut object) = crate::stored::current(shared, place, name).await?;
    let shown = resource.present(object.clone());
    touchable(&options.identity, resource, &shown)?;
    check_preconditions(resource, name, &shown, options)?;
    let write = Write {
        operation: Operation::Delete,
        resource,
        subresource: None,
        namespace: place.namespace.as_deref(),
        name,
        user: options.identity.info(),
        dry_run: options.dry_run,
    };
    let mut warnings = Vec::new();
    crate::policies::validate(shared, &write, (None, Some(&shown)), &mut warnings)?;
    webhooks::validate(shared, &write, (None, Some(&shown)), &mut warnings).await?;
    if options.dry_run {
        return Ok(respond(StatusCode::OK, &shown, &warnings));
    }
    let grace = pod_grace_period(resource, &object, options.grace_period);
    let finalizer = options.propagation.and_then(Propagation::finalizer);
    if !has_finalizers(&object) && grace.is_none() && finalizer.is_none() {
        let last = remove(shared, place, name, &key, stored.mod_revision).await?;
        return Ok(deleted(resource, name, &last));
    }
    let mut changed = options
        .propagation
        .is_some_and(|p| ask_propagation(&mut object, p));
    if object["metadata"]["deletionTimestamp"].is_null() {
        let grace = grace.unwrap_or(0);
        let deadline =
            std::time::SystemTime::now() + std::time::Duration::from_secs(grace.max(0) as u64);
        object["metadata"]["deletionTimestamp"] = json!(objects::rfc3339(deadline));
        object["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
        changed = true;
    }
    if grace.is_none() && objects::finalized(&object) {
        // A Background delete took away the last finalizer, a collector's.
        let last = remove(shared, place, name, &key, stored.mod_revision).await?;
        return Ok(deleted(resource, name, &last));
    }
    if changed {
        let value = serde_json::to_vec(&objects::without_revision(object.clone()));
        let kv = shared
            .store
            .update(&key, value.unwrap_or_default(), stored.mod_revision)
            .await
            .map_err(|e| Status::from_store(e, &resource.plural, name))?;
        object = objects::from_stored(&kv).unwrap_or(object);
    }
    Ok(respond(StatusCode::OK, &resource.present(object), &[]))
}

/// A 403 unless `identity` may write `object` (a node: its own Node and Lease, and the
/// pods bound to it).
fn touchable(identity: &Identity, resource: &Resource, object: &Value) -> Result<(), Status> {
    if identity.may_touch(&resource.plural, object) {
        return Ok(());
    }
    let name = objects::name_of(object);
    Err(crate::authorization::not_its_own(
        identity,
        &resource.plural,
        name,
    ))
}

fn check_preconditions(
    resource: &Resource,
    name: &str,
    object: &Value,
    options: &DeleteOptions,
) -> Result<(), Status> {
    let checks = [
        ("UID", "uid", &options.precondition_uid),
        (
            "ResourceVersion",
            "resourceVersion",
            &options.precondition_revision,
        ),
    ];
    for (label, field, wanted) in checks {
        let actual = object["metadata"][field].as_str().unwrap_or_default();
        if let Some(wanted) = wanted.as_deref().filter(|w| *w != actual) {
            return Err(Status::new(
                StatusCode::CONFLICT,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: {label} in precondition: {wanted}, {label} in object meta: {actual}",
                    resource.plural
                ),
            ));
        }
    }
    Ok(())
}

fn has_finalizers(object: &Value) -> bool {
    object["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty())
}

/// A pod on a node is given its grace period to stop there: the node's agent removes it.
/// None when the pod can go at once.
fn pod_grace_period(resource: &Resource, pod: &Value, asked: Option<i64>) -> Option<i64> {
    if resource.plural != "pods"
        || pod["spec"]["nodeName"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
    {
        return None;
    }
    if matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    ) {
        return None;
    }
    let grace = asked.unwrap_or_else(|| {
        pod["spec"]["terminationGracePeriodSeconds"]
            .as_i64()
            .unwrap_or(30)
    });
    (grace > 0).then_some(grace)
}

/// Removes the object at `key` if still at `revision`; its last form.
async fn remove(
    shared: &Shared,
    place: &Place,
    name: &str,
    key: &str,
    revision: i64,
) -> Result<Value, Status> {
    let (last, _) = shared
        .store
        .delete(key, revision)
        .await
        .map_err(|e| Status::from_store(e, &place.resource.plural, name))?;
    let last = objects::from_stored(&last).unwrap_or(Value::Null);
    if place.resource.hooks() == Hooks::Services {
        services::deleted(shared, &last).await;
    }
    Ok(last)
}

/// kube-apiserver's answer to a delete that removed the object at once.
fn deleted(resource: &Resource, name: &str, last: &Value) -> Response {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {
            "name": name,
            "group": resource.group,
            "kind": resource.plural,
            "uid": last["metadata"]["uid"],
        },
    });
    respond(StatusCode::OK, &body, &[])
}

/// A JSON answer with kube-apiserver's `Warning` headers.
pub(crate) fn respond(code: StatusCode, value: &Value, warnings: &[String]) -> Response {
    let mut response = (
        code,
        [("content-type", "application/json")],
        serde_json::to_vec(value).unwrap_or_default(),
    )
        .into_response();
    for warning in warnings {
        let text = format!(
            "299 - {}",
            serde_json::to_string(warning).unwrap_or_default()
        );
        if let Ok(value) = text.parse() {
            response.headers_mut().append("warning", value);
        }
    }
    response
}

/// The content type of a request.
pub(crate) fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The body of a write at `part`: the kind's own, a Scale, a TokenRequest or an Eviction
/// (each JSON or protobuf).
pub(crate) fn parse_body(
    part: Part,
    resource: &Resource,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Value, Status> {
    let kind = match part {
        Part::Scale => crate::protobuf::SCALE,
        Part::Token => crate::protobuf::TOKEN_REQUEST,
        Part::Eviction => crate::protobuf::EVICTION,
        _ => resource.protobuf_kind(),
    };
    objects::parse(body, content_type(headers), kind)
}

/// A server-side apply of `body`: the object made from it when there is none, else
/// the configuration merged in by field ownership, refused on conflicts unless forced.
pub(crate) async fn apply(
    shared: &Shared,
    place: &Place,
    name: &str,
    options: &WriteOptions,
    body: &[u8],
) -> Result<Response, Status> {
    let resource = &place.resource;
    let mut applied: Value = serde_json::from_slice(body)
        .map_err(|e| Status::bad_request(format!("the applied configuration is not JSON: {e}")))?;
    match applied["metadata"]["name"].as_str() {
        Some(given) if given != name => {
            return Err(Status::bad_request(format!(
                "the name of the object ({given}) does not match the name on the URL ({name})"
            )));
        }
        _ => applied["metadata"]["name"] = json!(name),
    }
    let applied = managed::configuration(applied);
    let api_version = resource.api_version();
    let conflicts = |conflicts: Vec<managed::Conflict>| {
        let message = managed::conflict_message(&conflicts, &api_version);
        Status::new(StatusCode::CONFLICT, "Conflict", message)
    };
    let exists = crate::stored::current(shared, place, name).await;
    if matches!(&exists, Err(status) if status.is_not_found()) {
        let object =
            managed::apply(None, &applied, &options.manager, &api_version).map_err(conflicts)?;
        return create(shared, place, options, object).await;
    }
    let edit = |current: Value| {
        let current = objects::without_revision(current);
        managed::apply(Some(&current), &applied, &options.manager, &api_version).map_err(conflicts)
    };
    change(shared, place, name, (Part::Whole, options), edit).await
}
