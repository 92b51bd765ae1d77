//! Objects as the API server keeps and shows them: parsing and checking what clients
//! send (kind, names as DNS names, the namespace), the fields the server owns (uid,
//! creationTimestamp, resourceVersion from the store revision), defaults, and the
//! `as=Table` form kubectl prints.

use std::time::SystemTime;

use serde_json::{Value, json};

use crate::resources::Resource;
use crate::status::Status;

/// The namespaces every cluster has.
const SYSTEM_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// Whether `name` is one of the namespaces every cluster keeps.
pub(crate) fn is_system_namespace(name: &str) -> bool {
    SYSTEM_NAMESPACES.contains(&name)
}

/// A request body as a JSON object: JSON, or Kubernetes' protobuf for `kind`.
pub(crate) fn parse(
    body: &[u8],
    content_type: &str,
    kind: crate::protobuf::Kind,
) -> Result<Value, Status> {
    if content_type.starts_with(crate::protobuf::MEDIA_TYPE) {
        return crate::protobuf::decode(body, kind);
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Status::bad_request(format!("the request body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(Status::bad_request(
            "the request body must be a JSON object",
        ));
    }
    Ok(value)
}

/// A stored object as clients see it: its resourceVersion is the store's revision.
pub(crate) fn from_stored(kv: &berth_store::KeyValue) -> Option<Value> {
    let mut object: Value = serde_json::from_slice(&kv.value).ok()?;
    object["metadata"]["resourceVersion"] = json!(kv.mod_revision.to_string());
    Some(object)
}

/// A name Kubernetes accepts: a DNS subdomain (RFC 1123), or a DNS label for namespaces.
fn check_name(resource: &Resource, name: &str) -> Result<(), String> {
    let label_only = resource.plural == "namespaces";
    let max = if label_only { 63 } else { 253 };
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    let valid = name.len() <= max
        && if label_only {
            valid_label(name)
        } else {
            name.split('.').all(valid_label)
        };
    if valid {
        return Ok(());
    }
    let rule = if label_only {
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
    } else {
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
    };
    Err(format!("metadata.name: Invalid value: \"{name}\": {rule}"))
}

/// Checks the object's kind and apiVersion against the resource's.
fn check_kind(resource: &Resource, object: &mut Value) -> Result<(), Status> {
    let api_version = resource.api_version();
    match object["apiVersion"].as_str() {
        None => {}
        Some(given) if given == api_version => {}
        Some(other) => {
            return Err(Status::bad_request(format!(
                "the API version in the data ({other}) does not match the expected API version ({api_version})"
            )));
        }
    }
    match object["kind"].as_str() {
        None => {}
        Some(kind) if kind == resource.kind => {}
        Some(kind) => {
            return Err(Status::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                resource.kind
            )));
        }
    }
    object["apiVersion"] = json!(api_version);
    object["kind"] = json!(resource.kind);
    Ok(())
}

/// Checks the namespace in the object against the request's, filling it in.
fn check_namespace(object: &mut Value, namespace: Option<&str>) -> Result<(), Status> {
    let Some(namespace) = namespace else {
        if let Some(map) = object["metadata"].as_object_mut() {
            map.remove("namespace");
        }
        return Ok(());
    };
    match object["metadata"]["namespace"].as_str() {
        Some(given) if !given.is_empty() && given != namespace => Err(Status::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            object["metadata"]["namespace"] = json!(namespace);
            Ok(())
        }
    }
}

/// A new object's store key and stored form: name (from generateName when asked), uid,
/// creation time and the resource's defaults.
pub(crate) fn prepare_create(
    resource: &Resource,
    namespace: Option<&str>,
    mut object: Value,
    prefix: &str,
) -> Result<(String, Value), Status> {
    check_kind(resource, &mut object)?;
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    let name = match (
        object["metadata"]["name"].as_str(),
        object["metadata"]["generateName"].as_str(),
    ) {
        (Some(name), _) if !name.is_empty() => name.to_string(),
        (_, Some(base)) if !base.is_empty() => format!("{base}{}", random_suffix()),
        _ => {
            return Err(Status::invalid(
                resource.kind,
                "",
                "metadata.name: Required value: name or generateName is required",
            ));
        }
    };
    check_name(resource, &name).map_err(|m| Status::invalid(resource.kind, &name, m))?;
    check_namespace(&mut object, namespace)?;
    let metadata = &mut object["metadata"];
    metadata["name"] = json!(name);
    metadata["uid"] = json!(uid());
    metadata["creationTimestamp"] = json!(now());
    if let Some(map) = metadata.as_object_mut() {
        map.remove("resourceVersion");
    }
    Ok((format!("{prefix}{name}"), object))
}

/// An update's expected revision (0 when the client sent none) and stored form.
pub(crate) fn prepare_update(
    resource: &Resource,
    namespace: Option<&str>,
    name: &str,
    mut object: Value,
) -> Result<(i64, Value), Status> {
    check_kind(resource, &mut object)?;
    match object["metadata"]["name"].as_str() {
        Some(given) if given == name => {}
        Some(given) => {
            return Err(Status::bad_request(format!(
                "the name of the object ({given}) does not match the name on the URL ({name})"
            )));
        }
        None => object["metadata"]["name"] = json!(name),
    }
    check_namespace(&mut object, namespace)?;
    let expected = match object["metadata"]["resourceVersion"].as_str() {
        None | Some("") => 0,
        Some(text) => text.parse().map_err(|_| {
            Status::invalid(
                resource.kind,
                name,
                format!("metadata.resourceVersion: Invalid value: \"{text}\": must be the resourceVersion the server gave"),
            )
        })?,
    };
    if let Some(map) = object["metadata"].as_object_mut() {
        map.remove("resourceVersion");
    }
    Ok((expected, object))
}

/// Applies a PATCH body of `content_type` to `object`: JSON patch (RFC 6902), JSON merge
/// patch (RFC 7386), or a strategic merge patch — for the served kinds, whose fields are
/// maps and scalars, a merge patch with kubectl's `$` directives left out.
pub(crate) fn apply_patch(
    object: &mut Value,
    content_type: &str,
    body: &[u8],
) -> Result<(), String> {
    let media = content_type.split(';').next().unwrap_or_default().trim();
    let parsed: Value =
        serde_json::from_slice(body).map_err(|e| format!("the patch is not valid JSON: {e}"))?;
    match media {
        "application/json-patch+json" => {
            let operations: json_patch::Patch = serde_json::from_value(parsed)
                .map_err(|e| format!("the JSON patch is malformed: {e}"))?;
            json_patch::patch(object, &operations).map_err(|e| e.to_string())
        }
        "application/merge-patch+json" => {
            json_patch::merge(object, &parsed);
            Ok(())
        }
        "application/strategic-merge-patch+json" => {
            json_patch::merge(object, &without_directives(parsed));
            Ok(())
        }
        other => Err(format!(
            "the patch type {other:?} is not served: use application/json-patch+json, application/merge-patch+json or application/strategic-merge-patch+json"
        )),
    }
}

/// A strategic merge patch without its `$`-keys (`$setElementOrder/…`, `$patch`,
/// `$retainKeys`), which order lists the served kinds do not have.
fn without_directives(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(key, _)| !key.starts_with('$'))
                .map(|(key, value)| (key, without_directives(value)))
                .collect(),
        ),
        other => other,
    }
}

/// The object without its resourceVersion: what a patch applies to, so that only a
/// patch naming a revision makes it a precondition.
pub(crate) fn without_revision(mut object: Value) -> Value {
    if let Some(metadata) = object["metadata"].as_object_mut() {
        metadata.remove("resourceVersion");
    }
    object
}

/// The object's name.
pub(crate) fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

/// An update of `current`: the fields clients cannot change keep their values, and the
/// generation counts changes of what the object declares (all but metadata and status)
/// for kinds with a status, as controllers' observedGeneration compares it.
pub(crate) fn carry_over(mut object: Value, current: &Value, has_status: bool) -> Value {
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        let kept = current["metadata"][field].clone();
        match object["metadata"].as_object_mut() {
            Some(metadata) if kept.is_null() => {
                metadata.remove(field);
            }
            _ => object["metadata"][field] = kept,
        }
    }
    let declared = |o: &Value| {
        let mut o = o.clone();
        if let Some(map) = o.as_object_mut() {
            map.remove("metadata");
            map.remove("status");
        }
        o
    };
    if has_status && declared(&object) != declared(current) {
        let generation = current["metadata"]["generation"].as_i64().unwrap_or(0);
        object["metadata"]["generation"] = json!(generation + 1);
    }
    object
}

/// Whether the object was deleted and its finalizers are all done: it may go.
pub(crate) fn finalized(object: &Value) -> bool {
    !object["metadata"]["deletionTimestamp"].is_null()
        && object["metadata"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty)
}

/// A 404 unless `namespace` exists: objects are only made in namespaces that do.
pub(crate) async fn require_namespace(
    store: &dyn berth_store::Store,
    namespace: &str,
) -> Result<(), Status> {
    match store
        .get(&format!("/registry/namespaces/{namespace}"))
        .await
    {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(Status::not_found("namespaces", namespace)),
        Err(e) => Err(Status::from_store(e, "namespaces", namespace)),
    }
}

/// Makes the objects every cluster has, once: its namespaces and the system
/// PriorityClasses.
pub(crate) async fn ensure_system_objects(store: &dyn berth_store::Store) -> crate::Result<()> {
    let namespaces = SYSTEM_NAMESPACES
        .iter()
        .map(|name| ("namespaces", json!({"metadata": {"name": name}})));
    let classes = crate::priorities::system_classes().map(|class| ("priorityclasses", class));
    for (plural, object) in namespaces.chain(classes) {
        let resource = crate::resources::resource(plural)
            .map_err(|_| crate::Error::Setup(format!("the {plural} resource is missing")))?;
        let prefix = format!("/registry/{plural}/");
        let Ok((key, object)) = prepare_create(resource, None, object, &prefix) else {
            continue;
        };
        let Ok(admitted) = resource.admit(object, crate::kinds::FieldValidation::Strict) else {
            continue;
        };
        match store
            .create(
                &key,
                serde_json::to_vec(&admitted.object).unwrap_or_default(),
            )
            .await
        {
            Ok(_) | Err(berth_store::Error::Exists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The columns `kubectl get -o wide` adds after AGE (priority 1 in the Table).
fn wide_columns(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" => &["IP", "Node", "Nominated Node", "Readiness Gates"],
        "Deployment" | "ReplicaSet" | "DaemonSet" | "Job" | "CronJob" => {
            &["Containers", "Images", "Selector"]
        }
        "StatefulSet" => &["Containers", "Images"],
        "Service" => &["Selector"],
        "Node" => &[
            "Internal-IP",
            "External-IP",
            "OS-Image",
            "Kernel-Version",
            "Container-Runtime",
        ],
        _ => &[],
    }
}

/// The text of a label map as kubectl prints selectors: `app=web,tier=db`.
fn selector_text(labels: &Value) -> Value {
    let pairs: Vec<String> = labels
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    json!(if pairs.is_empty() {
        "<none>".to_string()
    } else {
        pairs.join(",")
    })
}

/// A field of each of a pod template's containers, joined with commas.
fn containers_field(spec: &Value, field: &str) -> Value {
    let values: Vec<&str> = spec["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c[field].as_str())
        .collect();
    json!(values.join(","))
}

/// A node's address of `kind` (InternalIP, ExternalIP), or `<none>`.
fn node_address(status: &Value, kind: &str) -> Value {
    let address = status["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == kind)
        .and_then(|a| a["address"].as_str());
    json!(address.unwrap_or("<none>"))
}

/// A text field, or `<none>` when it is not set.
fn or_none(value: &Value) -> Value {
    json!(value.as_str().filter(|v| !v.is_empty()).unwrap_or("<none>"))
}

/// kubectl's columns for a kind, between NAME and AGE, and the cell of each.
fn columns(kind: &str) -> &'static [&'static str] {
    match kind {
        "Namespace" => &["Status"],
        "ConfigMap" => &["Data"],
        "Secret" => &["Type", "Data"],
        "Pod" => &["Ready", "Status", "Restarts"],
        "Deployment" => &["Ready", "Up-to-date", "Available"],
        "ReplicaSet" => &["Desired", "Current", "Ready"],
        "Service" => &["Type", "Cluster-IP", "External-IP", "Port(s)"],
        "Node" => &["Status", "Roles", "Version"],
        "Job" => &["Status", "Completions", "Duration"],
        "CronJob" => &["Schedule", "Timezone", "Suspend", "Active", "Last Schedule"],
        "DaemonSet" => &[
            "Desired",
            "Current",
            "Ready",
            "Up-to-date",
            "Available",
            "Node Selector",
        ],
        "StatefulSet" => &["Ready"],
        "PriorityClass" => &["Value", "Global-Default"],
        "Endpoints" => &["Endpoints"],
        "EndpointSlice" => &["AddressType", "Ports", "Endpoints"],
        _ => &[],
    }
}

/// Up to three items joined by commas and how many more, as kubectl prints endpoints:
/// `10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more...`, `<none>` for none.
fn first_three(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    match items.len() {
        0 => "<none>".into(),
        1..=3 => items.join(","),
        more => format!("{} + {} more...", items[..3].join(","), more - 3),
    }
}

/// A Job's STATUS, as kubectl 1.28+ prints it: its last true terminal condition.
fn job_status(object: &Value) -> Value {
    if !object["metadata"]["deletionTimestamp"].is_null() {
        return json!("Terminating");
    }
    let conditions = object["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let holds = |kind: &str| {
        conditions
            .iter()
            .any(|c| c["type"] == kind && c["status"] == "True")
    };
    let status = [
        "Complete",
        "Failed",
        "FailureTarget",
        "SuccessCriteriaMet",
        "Suspended",
    ]
    .into_iter()
    .find(|kind| holds(kind))
    .unwrap_or("Running");
    json!(status)
}

/// The time from the RFC 3339 `from` to `until` (or now), kubectl's way; empty when
/// `from` is not set.
fn duration_cell(from: &Value, until: &Value) -> Value {
    let parse = |v: &Value| v.as_str().and_then(|t| humantime::parse_rfc3339(t).ok());
    let Some(from) = parse(from) else {
        return json!("");
    };
    json!(human_duration(
        from,
        parse(until).unwrap_or_else(SystemTime::now)
    ))
}

fn count(value: &Value) -> i64 {
    value.as_i64().unwrap_or(0)
}

/// One cell of `column` for `object` of `kind`, as kubectl's printers fill it.
fn cell(kind: &str, column: &str, object: &Value) -> Value {
    let (spec, status) = (&object["spec"], &object["status"]);
    match (kind, column) {
        ("Namespace", "Status") => status["phase"].clone(),
        ("Secret", "Type") => object["type"].clone(),
        (_, "Data") => json!(object["data"].as_object().map_or(0, |d| d.len())),
        ("Pod", "Ready") => {
            let statuses = status["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let ready = statuses
                .iter()
                .filter(|c| c["ready"] == json!(true))
                .count();
            let total = spec["containers"].as_array().map_or(0, Vec::len);
            json!(format!("{ready}/{total}"))
        }
        ("Pod", "Status") => json!(status["phase"].as_str().unwrap_or("Pending")),
        ("Pod", "Restarts") => json!(status["containerStatuses"].as_array().map_or(0, |s| {
            s.iter().map(|c| count(&c["restartCount"])).sum::<i64>()
        })),
        ("Deployment", "Ready") => json!(format!(
            "{}/{}",
            count(&status["readyReplicas"]),
            spec["replicas"].as_i64().unwrap_or(1)
        )),
        ("Deployment", "Up-to-date") => json!(count(&status["updatedReplicas"])),
        ("Deployment", "Available") => json!(count(&status["availableReplicas"])),
        ("ReplicaSet", "Desired") => json!(spec["replicas"].as_i64().unwrap_or(1)),
        ("ReplicaSet", "Current") => json!(count(&status["replicas"])),
        ("ReplicaSet", "Ready") => json!(count(&status["readyReplicas"])),
        ("Endpoints", "Endpoints") => json!(first_three(
            object["subsets"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|subset| {
                    let ports: Vec<i64> = subset["ports"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|p| count(&p["port"]))
                        .collect();
                    let ips: Vec<String> = subset["addresses"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|a| a["ip"].as_str().map(str::to_string))
                        .collect();
                    ips.into_iter().flat_map(move |ip| {
                        let ports = if ports.is_empty() {
                            vec![None]
                        } else {
                            ports.iter().copied().map(Some).collect()
                        };
                        ports
                            .into_iter()
                            .map(move |p| p.map_or(ip.clone(), |p| format!("{ip}:{p}")))
                    })
                })
        )),
        ("EndpointSlice", "AddressType") => object["addressType"].clone(),
        ("EndpointSlice", "Ports") => json!(first_three(
            object["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| count(&p["port"]).to_string())
        )),
        ("EndpointSlice", "Endpoints") => json!(first_three(
            object["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
                .filter_map(|a| a.as_str().map(str::to_string))
        )),
        ("PriorityClass", "Value") => json!(count(&object["value"])),
        ("PriorityClass", "Global-Default") => json!(object["globalDefault"] == json!(true)),
        ("Service", "Type") => json!(spec["type"].as_str().unwrap_or("ClusterIP")),
        ("Service", "Cluster-IP") => json!(spec["clusterIP"].as_str().unwrap_or("<none>")),
        ("Service", "External-IP") => json!("<none>"),
        ("Service", "Port(s)") => {
            let ports: Vec<String> = spec["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    format!(
                        "{}/{}",
                        count(&p["port"]),
                        p["protocol"].as_str().unwrap_or("TCP")
                    )
                })
                .collect();
            json!(if ports.is_empty() {
                "<none>".to_string()
            } else {
                ports.join(",")
            })
        }
        ("Node", "Status") => {
            let ready = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            json!(if ready { "Ready" } else { "NotReady" })
        }
        ("Job", "Status") => job_status(object),
        ("Job", "Completions") => json!(format!(
            "{}/{}",
            count(&status["succeeded"]),
            spec["completions"].as_i64().unwrap_or(1)
        )),
        ("Job", "Duration") => duration_cell(&status["startTime"], &status["completionTime"]),
        ("CronJob", "Schedule") => spec["schedule"].clone(),
        ("CronJob", "Timezone") => or_none(&spec["timeZone"]),
        ("CronJob", "Suspend") => json!(spec["suspend"] == json!(true)),
        ("CronJob", "Active") => json!(status["active"].as_array().map_or(0, Vec::len)),
        ("CronJob", "Last Schedule") => {
            match duration_cell(&status["lastScheduleTime"], &Value::Null) {
                text if text == "" => json!("<none>"),
                text => text,
            }
        }
        ("DaemonSet", "Desired") => json!(count(&status["desiredNumberScheduled"])),
        ("DaemonSet", "Current") => json!(count(&status["currentNumberScheduled"])),
        ("DaemonSet", "Ready") => json!(count(&status["numberReady"])),
        ("DaemonSet", "Up-to-date") => json!(count(&status["updatedNumberScheduled"])),
        ("DaemonSet", "Available") => json!(count(&status["numberAvailable"])),
        ("DaemonSet", "Node Selector") => selector_text(&spec["template"]["spec"]["nodeSelector"]),
        ("StatefulSet", "Ready") => json!(format!(
            "{}/{}",
            count(&status["readyReplicas"]),
            spec["replicas"].as_i64().unwrap_or(1)
        )),
        ("Node", "Roles") => json!("<none>"),
        ("Node", "Version") => status["nodeInfo"]["kubeletVersion"].clone(),
        ("Pod", "IP") => or_none(&status["podIP"]),
        ("Pod", "Node") => or_none(&spec["nodeName"]),
        ("Pod", "Nominated Node") => or_none(&status["nominatedNodeName"]),
        ("Pod", "Readiness Gates") => json!("<none>"),
        ("CronJob", "Containers") => containers_field(&spec["jobTemplate"]["spec"], "name"),
        ("CronJob", "Images") => containers_field(&spec["jobTemplate"]["spec"], "image"),
        ("CronJob", "Selector") => {
            selector_text(&spec["jobTemplate"]["spec"]["selector"]["matchLabels"])
        }
        (_, "Containers") => containers_field(spec, "name"),
        (_, "Images") => containers_field(spec, "image"),
        ("Service", "Selector") => selector_text(&spec["selector"]),
        (_, "Selector") => selector_text(&spec["selector"]["matchLabels"]),
        ("Node", "Internal-IP") => node_address(status, "InternalIP"),
        ("Node", "External-IP") => node_address(status, "ExternalIP"),
        ("Node", "OS-Image") => or_none(&status["nodeInfo"]["osImage"]),
        ("Node", "Kernel-Version") => or_none(&status["nodeInfo"]["kernelVersion"]),
        ("Node", "Container-Runtime") => or_none(&status["nodeInfo"]["containerRuntimeVersion"]),
        _ => Value::Null,
    }
}

/// The list as a `meta.k8s.io/v1` Table: kubectl prints its columns as they are.
pub(crate) fn table(resource: &Resource, items: &[Value], revision: i64) -> Value {
    let (extra, wide) = (columns(resource.kind), wide_columns(resource.kind));
    let definition = |name: &str, priority: u8| json!({"name": name, "type": "string", "format": "", "description": name, "priority": priority});
    let mut definitions = vec![json!({
        "name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0,
    })];
    definitions.extend(extra.iter().map(|name| definition(name, 0)));
    definitions.push(definition("Age", 0));
    definitions.extend(wide.iter().map(|name| definition(name, 1)));
    let rows: Vec<Value> = items
        .iter()
        .map(|object| {
            let mut cells = vec![object["metadata"]["name"].clone()];
            cells.extend(
                extra
                    .iter()
                    .map(|column| cell(resource.kind, column, object)),
            );
            cells.push(json!(age(object["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or_default())));
            cells.extend(
                wide.iter()
                    .map(|column| cell(resource.kind, column, object)),
            );
            json!({
                "cells": cells,
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": object["metadata"].clone(),
                },
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": revision.to_string()},
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

/// Now, as Kubernetes stamps objects (RFC 3339, seconds, UTC).
fn now() -> String {
    rfc3339(SystemTime::now())
}

pub(crate) fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// kubectl's AGE: `42s`, `3m10s`, `25m`, `5h3m`, `30h`, `3d4h`, `12d`.
fn age(created: &str) -> String {
    let Ok(then) = humantime::parse_rfc3339(created) else {
        return "<unknown>".into();
    };
    human_duration(then, SystemTime::now())
}

/// The time from `then` to `until` as kubectl prints durations.
fn human_duration(then: SystemTime, until: SystemTime) -> String {
    let s = until.duration_since(then).map_or(0, |d| d.as_secs());
    let (m, h, d) = (s / 60, s / 3600, s / 86_400);
    match s {
        _ if s < 120 => format!("{s}s"),
        _ if m < 10 && !s.is_multiple_of(60) => format!("{m}m{}s", s % 60),
        _ if h < 3 => format!("{m}m"),
        _ if h < 8 && !m.is_multiple_of(60) => format!("{h}h{}m", m % 60),
        _ if h < 48 => format!("{h}h"),
        _ if d < 8 && !h.is_multiple_of(24) => format!("{d}d{}h", h % 24),
        _ => format!("{d}d"),
    }
}

/// A version 4 UUID, as Kubernetes gives objects.
fn uid() -> String {
    let hex = crate::random_hex(16);
    format!(
        "{}-{}-4{}-{}{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        ["8", "9", "a", "b"][usize::from(hex.as_bytes()[16] % 4)],
        &hex[17..20],
        &hex[20..32]
    )
}

/// generateName's five random characters.
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    crate::random_hex(5)
        .as_bytes()
        .chunks(2)
        .map(|pair| {
            let byte =
                u8::from_str_radix(std::str::from_utf8(pair).unwrap_or("0"), 16).unwrap_or(0);
            char::from(ALPHABET[usize::from(byte) % ALPHABET.len()])
        })
        .take(5)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn times_round_trip_and_ages_read_as_kubectl_s() {
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20Z");
        assert_eq!(
            humantime::parse_rfc3339("2023-11-14T22:13:20Z").ok(),
            Some(t)
        );
        let ago = |seconds| rfc3339(SystemTime::now() - Duration::from_secs(seconds));
        assert_eq!(age(&ago(30)), "30s");
        assert_eq!(age(&ago(190)), "3m10s");
        assert_eq!(age(&ago(3 * 86_400)), "3d");
    }

    #[test]
    fn table_cells_read_as_kubectl_s_printers() {
        let pod = json!({
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"ready": true, "restartCount": 2}, {"ready": false, "restartCount": 1}]},
        });
        let cells: Vec<Value> = columns("Pod")
            .iter()
            .map(|c| cell("Pod", c, &pod))
            .collect();
        assert_eq!(cells, [json!("1/2"), json!("Running"), json!(3)]);
        let service = json!({"spec": {"clusterIP": "10.43.0.10", "ports": [
            {"port": 53, "protocol": "UDP"}, {"port": 80}]}});
        assert_eq!(cell("Service", "Port(s)", &service), json!("53/UDP,80/TCP"));
        assert_eq!(cell("Service", "Type", &service), json!("ClusterIP"));
        let node = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        assert_eq!(cell("Node", "Status", &node), json!("Ready"));
    }

    #[test]
    fn names_must_be_dns_names() {
        let ns = crate::resources::resource("namespaces").expect("served");
        let cm = crate::resources::resource("configmaps").expect("served");
        assert!(check_name(cm, "app.config-1").is_ok());
        assert!(check_name(ns, "app.config").is_err());
        assert!(check_name(cm, "Upper").is_err());
        assert!(check_name(cm, "-x").is_err());
        assert_eq!(uid().len(), 36);
        assert_eq!(random_suffix().len(), 5);
    }
}
