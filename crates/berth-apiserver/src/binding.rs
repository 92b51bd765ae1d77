//! `pods/NAME/binding`, the scheduler's one write per pod, as kube-apiserver's
//! BindingREST: the Binding is checked and admitted (webhooks and policies see a CREATE of
//! `pods/binding`), then the pod is given its node, the Binding's annotations and the
//! PodScheduled condition by a compare-and-swap straight on the store — not through the
//! pod's update path, whose admission, field managers and defaulting a binding changes
//! nothing for. The pod is read from the watch cache: at most a moment behind the store,
//! which costs a stale read one retry from the store.

use axum::http::StatusCode;
use axum::response::Response;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Shared;
use crate::admission::Operation;
use crate::objects;
use crate::status::Status;
use crate::stored::Place;
use crate::webhooks;
use crate::writes::{Part, WriteOptions, respond};

/// A Binding as clients post it.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Binding {
    metadata: ObjectMeta,
    target: ObjectReference,
}

/// POST `pods/NAME/binding`: the pod is assigned to the Binding's target node, once (a
/// bound pod, one being deleted or one with scheduling gates is a 409, as
/// kube-apiserver answers the scheduler).
pub(crate) async fn bind(
    shared: &Shared,
    place: &Place,
    name: &str,
    options: &WriteOptions,
    body: &[u8],
) -> Result<Response, Status> {
    let mut posted: Value = serde_json::from_slice(body)
        .map_err(|e| Status::bad_request(format!("the Binding is not valid JSON: {e}")))?;
    let write = options.webhooks_write(Operation::Create, place, (Part::Binding, name));
    let mut warnings = Vec::new();
    webhooks::mutate(shared, &write, (&mut posted, None), &mut warnings).await?;
    let binding = Binding::deserialize(&posted)
        .map_err(|e| Status::bad_request(format!("the Binding is not valid: {e}")))?;
    let node = checked(&binding, name)?;
    crate::policies::validate(shared, &write, (Some(&posted), None), &mut warnings)?;
    webhooks::validate(shared, &write, (Some(&posted), None), &mut warnings).await?;
    let key = format!("{}{name}", place.prefix());
    let precondition = binding.metadata.resource_version.as_deref();
    let guard = match precondition.filter(|r| !r.is_empty()) {
        Some(revision) => Some(revision.parse::<i64>().map_err(|_| {
            Status::bad_request(format!(
                "invalid resourceVersion {revision:?} in the Binding"
            ))
        })?),
        None => None,
    };
    let mut cached = shared.cache.get(&key).and_then(|entry| {
        let pod = entry.object();
        Some((objects::revision_of(&pod)?, pod))
    });
    loop {
        let (revision, pod) = match cached.take() {
            Some(found) => found,
            None => {
                let (_, stored, pod) = crate::stored::current(shared, place, name).await?;
                (stored.mod_revision, pod)
            }
        };
        options.touchable(&place.resource, &pod)?;
        let pod = assigned(pod, &binding, node, name)?;
        if options.dry_run {
            break;
        }
        let encoded = place.resource.encode(&objects::without_revision(pod));
        let result = shared
            .store
            .update(&key, encoded, guard.unwrap_or(revision))
            .await;
        match result {
            Ok(_) => break,
            Err(berth_store::Error::Conflict { .. }) if guard.is_none() => continue,
            Err(e) => return Err(Status::from_store(e, &place.resource.plural, name)),
        }
    }
    let status = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Success", "code": 201,
    });
    Ok(respond(StatusCode::CREATED, &status, &warnings))
}

/// The node a Binding for pod `name` names, or why it is invalid.
fn checked<'a>(binding: &'a Binding, name: &str) -> Result<&'a str, Status> {
    if binding.metadata.name.as_deref().is_some_and(|n| n != name) {
        return Err(Status::bad_request(
            "name in URL does not match name in Binding object",
        ));
    }
    if let Some(kind) = binding
        .target
        .kind
        .as_deref()
        .filter(|k| !k.is_empty() && *k != "Node")
    {
        return Err(Status::invalid(
            "Binding",
            name,
            format!("target.kind: Unsupported value: \"{kind}\": supported values: \"Node\""),
        ));
    }
    binding
        .target
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Status::invalid("Binding", name, "target.name: Required value"))
}

/// `pod` given to `node`: its nodeName, the Binding's annotations and PodScheduled=True.
fn assigned(mut pod: Value, binding: &Binding, node: &str, name: &str) -> Result<Value, Status> {
    let refuse = |why: String| {
        Status::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!("Operation cannot be fulfilled on pods/binding \"{name}\": {why}"),
        )
    };
    if let Some(uid) = binding.metadata.uid.as_deref().filter(|u| !u.is_empty()) {
        let actual = pod["metadata"]["uid"].as_str().unwrap_or_default();
        if uid != actual {
            return Err(refuse(format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
            )));
        }
    }
    if !pod["metadata"]["deletionTimestamp"].is_null() {
        return Err(refuse(format!(
            "pod {name} is being deleted, cannot be assigned to a host"
        )));
    }
    if let Some(bound) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
        return Err(refuse(format!(
            "pod {name} is already assigned to node \"{bound}\""
        )));
    }
    if pod["spec"]["schedulingGates"]
        .as_array()
        .is_some_and(|gates| !gates.is_empty())
    {
        return Err(refuse(format!(
            "pod {name} has non-empty .spec.schedulingGates"
        )));
    }
    pod["spec"]["nodeName"] = json!(node);
    for (key, value) in binding.metadata.annotations.iter().flatten() {
        pod["metadata"]["annotations"][key] = json!(value);
    }
    let scheduled = json!({
        "type": "PodScheduled",
        "status": "True",
        "lastProbeTime": null,
        "lastTransitionTime": objects::rfc3339(std::time::SystemTime::now()),
    });
    let conditions = &mut pod["status"]["conditions"];
    match conditions.as_array_mut() {
        Some(list) => {
            list.retain(|c| c["type"] != "PodScheduled");
            list.push(scheduled);
        }
        None => *conditions = json!([scheduled]),
    }
    Ok(pod)
}
