//! The `as=Table` form kubectl prints: each served kind's columns, in kube-apiserver's
//! order and with its priorities (`-o wide` shows priority 1), and each row's cells as
//! its printers (kubernetes/pkg/printers/internalversion) fill them — kubectl prints
//! what the server says, so any difference shows in `kubectl get`.

use std::collections::HashMap;
use std::time::SystemTime;

use serde_json::{Value, json};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceColumnDefinition;

use crate::resources::Resource;
use crate::status::Status;

/// What a Table's rows carry of their objects: the request's `includeObject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Include {
    /// Nothing (`None`).
    Nothing,
    /// The metadata, as a PartialObjectMetadata: the default.
    Metadata,
    /// The whole object: what `kubectl get --sort-by` reads its field from.
    Object,
}

/// What a Table's rows are to carry, from the request's `includeObject`.
pub(crate) fn included(query: &HashMap<String, String>) -> Result<Include, Status> {
    match query.get("includeObject").map(String::as_str) {
        None | Some("" | "Metadata") => Ok(Include::Metadata),
        Some("Object") => Ok(Include::Object),
        Some("None") => Ok(Include::Nothing),
        Some(other) => Err(Status::bad_request(format!(
            "includeObject: Unsupported value: {other:?}: supported values: \"Metadata\", \"None\", \"Object\""
        ))),
    }
}

/// One column of a kind's table.
struct Column {
    name: &'static str,
    /// The Table's type of its cells: `string`, `integer` or `boolean`.
    kind: &'static str,
    /// Whether only `kubectl get -o wide` shows it (priority 1).
    wide: bool,
}

/// A column of text cells.
const fn text(name: &'static str) -> Column {
    Column {
        name,
        kind: "string",
        wide: false,
    }
}

/// A column of counts.
const fn int(name: &'static str) -> Column {
    Column {
        name,
        kind: "integer",
        wide: false,
    }
}

/// A column of true/false cells.
const fn boolean(name: &'static str) -> Column {
    Column {
        name,
        kind: "boolean",
        wide: false,
    }
}

/// A text column only `-o wide` shows.
const fn wide(name: &'static str) -> Column {
    Column {
        name,
        kind: "string",
        wide: true,
    }
}

const NAME: Column = Column {
    name: "Name",
    kind: "string",
    wide: false,
};
const AGE: Column = text("Age");
const CONTAINERS: Column = wide("Containers");
const IMAGES: Column = wide("Images");
const SELECTOR: Column = wide("Selector");

/// A kind's columns, as a constant (the columns are made by const fns).
macro_rules! columns {
    ($($column:expr),* $(,)?) => {{
        const COLUMNS: &[Column] = &[$($column),*];
        COLUMNS
    }};
}

/// The columns of `kind`'s table, as kube-apiserver's printers declare them.
fn columns(kind: &str) -> &'static [Column] {
    match kind {
        "Namespace" => columns![NAME, text("Status"), AGE],
        "APIService" => columns![NAME, text("Service"), text("Available"), AGE],
        "CertificateSigningRequest" => columns![
            NAME,
            AGE,
            text("SignerName"),
            text("Requestor"),
            text("RequestedDuration"),
            text("Condition"),
        ],
        "ConfigMap" => columns![NAME, text("Data"), AGE],
        "Secret" => columns![NAME, text("Type"), text("Data"), AGE],
        "ServiceAccount" => columns![NAME, text("Secrets"), AGE],
        "Pod" => columns![
            NAME,
            text("Ready"),
            text("Status"),
            text("Restarts"),
            AGE,
            wide("IP"),
            wide("Node"),
            wide("Nominated Node"),
            wide("Readiness Gates"),
        ],
        "Service" => columns![
            NAME,
            text("Type"),
            text("Cluster-IP"),
            text("External-IP"),
            text("Port(s)"),
            AGE,
            SELECTOR,
        ],
        "Endpoints" => columns![NAME, text("Endpoints"), AGE],
        "EndpointSlice" => columns![
            NAME,
            text("AddressType"),
            text("Ports"),
            text("Endpoints"),
            AGE,
        ],
        "Node" => columns![
            NAME,
            text("Status"),
            text("Roles"),
            AGE,
            text("Version"),
            wide("Internal-IP"),
            wide("External-IP"),
            wide("OS-Image"),
            wide("Kernel-Version"),
            wide("Container-Runtime"),
        ],
        "Event" => columns![
            text("Last Seen"),
            text("Type"),
            text("Reason"),
            text("Object"),
            wide("Subobject"),
            wide("Source"),
            text("Message"),
            wide("First Seen"),
            wide("Count"),
            Column {
                name: "Name",
                kind: "string",
                wide: true,
            },
        ],
        "PersistentVolume" => columns![
            NAME,
            text("Capacity"),
            text("Access Modes"),
            text("Reclaim Policy"),
            text("Status"),
            text("Claim"),
            text("StorageClass"),
            text("VolumeAttributesClass"),
            text("Reason"),
            AGE,
            wide("VolumeMode"),
        ],
        "PersistentVolumeClaim" => columns![
            NAME,
            text("Status"),
            text("Volume"),
            text("Capacity"),
            text("Access Modes"),
            text("StorageClass"),
            text("VolumeAttributesClass"),
            AGE,
            wide("VolumeMode"),
        ],
        "Deployment" => columns![
            NAME,
            text("Ready"),
            text("Up-to-date"),
            text("Available"),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        "ReplicaSet" | "ReplicationController" => columns![
            NAME,
            int("Desired"),
            int("Current"),
            int("Ready"),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        "DaemonSet" => columns![
            NAME,
            int("Desired"),
            int("Current"),
            int("Ready"),
            int("Up-to-date"),
            int("Available"),
            text("Node Selector"),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        "StatefulSet" => columns![NAME, text("Ready"), AGE, CONTAINERS, IMAGES],
        "ControllerRevision" => columns![NAME, text("Controller"), text("Revision"), AGE],
        "Job" => columns![
            NAME,
            text("Status"),
            text("Completions"),
            text("Duration"),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        "CronJob" => columns![
            NAME,
            text("Schedule"),
            text("Timezone"),
            boolean("Suspend"),
            int("Active"),
            text("Last Schedule"),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        "HorizontalPodAutoscaler" => columns![
            NAME,
            text("Reference"),
            text("Targets"),
            text("MinPods"),
            text("MaxPods"),
            text("Replicas"),
            AGE,
        ],
        "Lease" => columns![NAME, text("Holder"), AGE],
        "StorageClass" => columns![
            NAME,
            text("Provisioner"),
            text("ReclaimPolicy"),
            text("VolumeBindingMode"),
            boolean("AllowVolumeExpansion"),
            AGE,
        ],
        "PriorityClass" => columns![
            NAME,
            int("Value"),
            boolean("Global-Default"),
            AGE,
            text("PreemptionPolicy"),
        ],
        "Role" | "ClusterRole" | "LimitRange" => columns![NAME, text("Created At")],
        "ResourceQuota" => columns![NAME, AGE, text("Request"), text("Limit")],
        "Ingress" => columns![
            NAME,
            text("Class"),
            text("Hosts"),
            text("Address"),
            text("Ports"),
            AGE,
        ],
        "IngressClass" => columns![NAME, text("Controller"), text("Parameters"), AGE],
        "NetworkPolicy" => columns![NAME, text("Pod-Selector"), AGE],
        "ValidatingAdmissionPolicy" => {
            columns![NAME, int("Validations"), text("ParamKind"), AGE]
        }
        "ValidatingAdmissionPolicyBinding" => {
            columns![NAME, text("PolicyName"), text("ParamRef"), AGE]
        }
        "PodTemplate" => columns![
            text("Template"),
            text("Containers"),
            text("Images"),
            text("Pod Labels"),
        ],
        "RuntimeClass" => columns![NAME, text("Handler"), AGE],
        "PodDisruptionBudget" => columns![
            NAME,
            text("Min Available"),
            text("Max Unavailable"),
            int("Allowed Disruptions"),
            AGE,
        ],
        "CSIDriver" => columns![
            NAME,
            boolean("AttachRequired"),
            boolean("PodInfoOnMount"),
            boolean("StorageCapacity"),
            text("TokenRequests"),
            boolean("RequiresRepublish"),
            text("Modes"),
            AGE,
        ],
        "VolumeAttachment" => columns![
            NAME,
            text("Attacher"),
            text("PV"),
            text("Node"),
            boolean("Attached"),
            AGE,
        ],
        "RoleBinding" | "ClusterRoleBinding" => columns![
            NAME,
            text("Role"),
            AGE,
            wide("Users"),
            wide("Groups"),
            wide("ServiceAccounts"),
        ],
        _ => columns![NAME, AGE],
    }
}

/// The list as a `meta.k8s.io/v1` Table, each row with what `include` asks of its
/// object: kubectl prints its columns as they are.
pub(crate) fn table(
    resource: &Resource,
    items: &[Value],
    revision: i64,
    include: Include,
) -> Value {
    let (definitions, cells) = match resource.custom() {
        Some(version) => custom_columns(&version.columns),
        None => built_in_columns(&resource.kind),
    };
    let rows: Vec<Value> = items
        .iter()
        .map(|object| {
            let mut row = json!({"cells": cells(object)});
            match include {
                Include::Nothing => {}
                Include::Metadata => row["object"] = crate::objects::metadata_only(object),
                Include::Object => row["object"] = resource.present(object.clone()),
            }
            if let Some(conditions) = row_conditions(&resource.kind, object) {
                row["conditions"] = conditions;
            }
            row
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

/// A table's column definitions, and what fills a row's cells from its object.
type Columns<'a> = (Vec<Value>, Box<dyn Fn(&Value) -> Vec<Value> + 'a>);

/// A column definition as Tables carry them.
fn definition(name: &str, kind: &str, format: &str, description: &str, priority: i32) -> Value {
    json!({
        "name": name, "type": kind, "format": format,
        "description": description, "priority": priority,
    })
}

fn built_in_columns(kind: &str) -> Columns<'_> {
    let columns = columns(kind);
    let definitions = columns
        .iter()
        .map(|c| {
            let format = if c.name == "Name" { "name" } else { "" };
            definition(c.name, c.kind, format, c.name, i32::from(c.wide))
        })
        .collect();
    let cells = move |object: &Value| columns.iter().map(|c| cell(kind, c.name, object)).collect();
    (definitions, Box::new(cells))
}

/// A custom resource's columns: its name, then its version's
/// `additionalPrinterColumns` (its age when it has none), each cell what the column's
/// JSONPath finds, dates shown as ages — as kube-apiserver's table convertor for
/// custom resources fills them.
fn custom_columns(given: &[CustomResourceColumnDefinition]) -> Columns<'_> {
    const AGE_PATH: &str = ".metadata.creationTimestamp";
    let name = definition(
        "Name",
        "string",
        "name",
        "Name must be unique within a namespace.",
        0,
    );
    let mut definitions = vec![name];
    let mut paths: Vec<(&str, &str)> = Vec::new();
    if given.is_empty() {
        definitions.push(definition("Age", "date", "", "", 0));
        paths.push((AGE_PATH, "date"));
    }
    for column in given {
        definitions.push(definition(
            &column.name,
            &column.type_,
            column.format.as_deref().unwrap_or_default(),
            column.description.as_deref().unwrap_or_default(),
            column.priority.unwrap_or(0),
        ));
        paths.push((&column.json_path, &column.type_));
    }
    let cells = move |object: &Value| {
        let mut cells = vec![json!(text_of(&object["metadata"]["name"]))];
        cells.extend(paths.iter().map(|(path, kind)| {
            use jsonpath_rust::JsonPath as _;
            let found = object
                .query(&format!("${path}"))
                .ok()
                .and_then(|values| values.first().map(|v| (*v).clone()));
            match found {
                Some(time) if *kind == "date" => json!(since(&time)),
                Some(value) => value,
                None => Value::Null,
            }
        }));
        cells
    };
    (definitions, Box::new(cells))
}

/// A finished pod's row says so, as kube-apiserver marks it (`Completed`).
fn row_conditions(kind: &str, object: &Value) -> Option<Value> {
    let (reason, message) = match (kind, object["status"]["phase"].as_str()) {
        ("Pod", Some("Succeeded")) => ("Succeeded", "The pod has completed successfully."),
        ("Pod", Some("Failed")) => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{
        "type": "Completed", "status": "True", "reason": reason, "message": message,
    }]))
}

/// An APIService's Service (`Local` when it has none) and its availability, as
/// kube-apiserver's printer shows them (`False (MissingEndpoints)`).
fn api_service_cell(column: &str, object: &Value) -> Value {
    let service = &object["spec"]["service"];
    if column == "Service" {
        return match service.is_null() {
            true => json!("Local"),
            false => json!(format!(
                "{}/{}",
                text_of(&service["namespace"]),
                text_of(&service["name"])
            )),
        };
    }
    let available = object["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Available");
    json!(match available {
        Some(c) if c["status"] == "True" => "True".to_string(),
        Some(c) => format!("{} ({})", text_of(&c["status"]), text_of(&c["reason"])),
        None => "Unknown".to_string(),
    })
}

/// A CertificateSigningRequest's cells: its condition is `Pending` until approved or
/// denied, then those conditions, with `Issued` once signed.
fn request_cell(column: &str, object: &Value) -> Value {
    let (spec, status) = (&object["spec"], &object["status"]);
    match column {
        "SignerName" => json!(text_of(&spec["signerName"])),
        "Requestor" => json!(text_of(&spec["username"])),
        "RequestedDuration" => json!(match spec["expirationSeconds"].as_i64() {
            Some(seconds) => duration_text(seconds),
            None => "<none>".into(),
        }),
        _ => {
            let mut conditions: Vec<&str> = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["status"] == "True")
                .filter_map(|c| c["type"].as_str())
                .collect();
            if status["certificate"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
            {
                conditions.push("Issued");
            }
            json!(match conditions.is_empty() {
                true => "Pending".to_string(),
                false => conditions.join(","),
            })
        }
    }
}

/// One cell of `column` for `object` of `kind`, as kube-apiserver's printers fill it.
fn cell(kind: &str, column: &str, object: &Value) -> Value {
    let (metadata, spec, status) = (&object["metadata"], &object["spec"], &object["status"]);
    match (kind, column) {
        ("Event", _) => event_cell(column, object),
        ("StorageClass", "Name") if crate::storage::is_default(object) => {
            json!(format!("{} (default)", text_of(&metadata["name"])))
        }
        (_, "Name") => json!(text_of(&metadata["name"])),
        (_, "Age") => json!(since(&metadata["creationTimestamp"])),
        ("Pod", _) => pod_cell(column, object),
        ("Node", _) => node_cell(column, object),
        ("Service", _) => service_cell(column, object),
        ("PersistentVolume" | "PersistentVolumeClaim", _) => volume_cell(kind, column, object),
        ("Job", _) => job_cell(column, object),
        ("HorizontalPodAutoscaler", _) => autoscaler_cell(column, object),
        ("Namespace", "Status") => json!(text_of(&status["phase"])),
        ("APIService", _) => api_service_cell(column, object),
        ("CertificateSigningRequest", _) => request_cell(column, object),
        ("Secret", "Type") => json!(text_of(&object["type"])),
        ("Secret", "Data") => json!(length(&object["data"])),
        ("ConfigMap", "Data") => json!(length(&object["data"]) + length(&object["binaryData"])),
        ("ServiceAccount", "Secrets") => json!(length(&object["secrets"])),
        ("Endpoints", "Endpoints") => json!(endpoints(&object["subsets"])),
        ("EndpointSlice", "AddressType") => json!(text_of(&object["addressType"])),
        ("EndpointSlice", "Ports") => json!(slice_ports(&object["ports"])),
        ("EndpointSlice", "Endpoints") => json!(slice_endpoints(&object["endpoints"])),
        ("Deployment" | "StatefulSet", "Ready") => json!(format!(
            "{}/{}",
            count(&status["readyReplicas"]),
            count(&spec["replicas"])
        )),
        ("Deployment", "Up-to-date") => json!(count(&status["updatedReplicas"])),
        ("Deployment", "Available") => json!(count(&status["availableReplicas"])),
        ("Deployment", "Selector") => json!(selector_text(&spec["selector"])),
        ("ReplicaSet" | "ReplicationController", "Desired") => json!(count(&spec["replicas"])),
        ("ReplicaSet" | "ReplicationController", "Current") => json!(count(&status["replicas"])),
        ("ReplicaSet" | "ReplicationController", "Ready") => {
            json!(count(&status["readyReplicas"]))
        }
        ("ReplicationController", "Selector") => json!(labels_text(&spec["selector"])),
        ("DaemonSet", "Desired") => json!(count(&status["desiredNumberScheduled"])),
        ("DaemonSet", "Current") => json!(count(&status["currentNumberScheduled"])),
        ("DaemonSet", "Ready") => json!(count(&status["numberReady"])),
        ("DaemonSet", "Up-to-date") => json!(count(&status["updatedNumberScheduled"])),
        ("DaemonSet", "Available") => json!(count(&status["numberAvailable"])),
        ("DaemonSet", "Node Selector") => {
            json!(labels_text(&spec["template"]["spec"]["nodeSelector"]))
        }
        ("ControllerRevision", "Controller") => json!(controller_of(metadata)),
        ("ControllerRevision", "Revision") => json!(count(&object["revision"])),
        ("CronJob", "Schedule") => json!(text_of(&spec["schedule"])),
        ("CronJob", "Timezone") => json!(or(&spec["timeZone"], "<none>")),
        ("CronJob", "Suspend") => json!(match spec["suspend"].as_bool() {
            Some(true) => "True",
            Some(false) => "False",
            None => "<unset>",
        }),
        ("CronJob", "Active") => json!(length(&status["active"])),
        ("CronJob", "Last Schedule") => json!(match status["lastScheduleTime"] {
            Value::Null => "<none>".to_string(),
            ref time => since(time),
        }),
        ("CronJob", "Containers" | "Images" | "Selector") => {
            cell("Job", column, &spec["jobTemplate"])
        }
        ("PodTemplate", "Containers") => json!(containers_field(object, "name")),
        ("PodTemplate", "Images") => json!(containers_field(object, "image")),
        (_, "Containers") => json!(containers_field(spec, "name")),
        (_, "Images") => json!(containers_field(spec, "image")),
        (_, "Selector") => json!(match selector_text(&spec["selector"]) {
            text if text.is_empty() => "<none>".to_string(),
            text => text,
        }),
        ("Lease", "Holder") => json!(text_of(&spec["holderIdentity"])),
        ("StorageClass", "Provisioner") => json!(text_of(&object["provisioner"])),
        ("StorageClass", "ReclaimPolicy") => json!(text_of(&object["reclaimPolicy"])),
        ("StorageClass", "VolumeBindingMode") => json!(text_of(&object["volumeBindingMode"])),
        ("StorageClass", "AllowVolumeExpansion") => {
            json!(object["allowVolumeExpansion"] == json!(true))
        }
        ("Role" | "ClusterRole" | "LimitRange", "Created At") => {
            json!(text_of(&metadata["creationTimestamp"]))
        }
        ("ResourceQuota", "Request") => json!(quota_usage(status, false)),
        ("ResourceQuota", "Limit") => json!(quota_usage(status, true)),
        ("RoleBinding" | "ClusterRoleBinding", _) => binding_cell(column, object),
        ("Ingress", _) => ingress_cell(column, object),
        ("IngressClass", "Controller") => json!(text_of(&spec["controller"])),
        ("IngressClass", "Parameters") => json!(ingress_class_parameters(&spec["parameters"])),
        ("ValidatingAdmissionPolicy", "Validations") => json!(items(&spec["validations"]).count()),
        ("ValidatingAdmissionPolicy", "ParamKind") => json!(match &spec["paramKind"] {
            Value::Object(kind) => format!(
                "{}/{}",
                text_of(&kind["apiVersion"]),
                text_of(&kind["kind"])
            ),
            _ => "<unset>".to_string(),
        }),
        ("ValidatingAdmissionPolicyBinding", "PolicyName") => {
            json!(text_of(&spec["policyName"]))
        }
        ("ValidatingAdmissionPolicyBinding", "ParamRef") => {
            json!(param_ref_text(&spec["paramRef"]))
        }
        ("NetworkPolicy", "Pod-Selector") => json!(match selector_text(&spec["podSelector"]) {
            text if text.is_empty() => "<none>".to_string(),
            text => text,
        }),
        ("PodTemplate", "Template") => json!(text_of(&metadata["name"])),
        ("PodTemplate", "Pod Labels") => {
            json!(labels_text(&object["template"]["metadata"]["labels"]))
        }
        ("RuntimeClass", "Handler") => json!(text_of(&object["handler"])),
        ("PodDisruptionBudget", "Min Available") => json!(int_or_string(&spec["minAvailable"])),
        ("PodDisruptionBudget", "Max Unavailable") => {
            json!(int_or_string(&spec["maxUnavailable"]))
        }
        ("PodDisruptionBudget", "Allowed Disruptions") => {
            json!(count(&status["disruptionsAllowed"]))
        }
        ("CSIDriver", _) => csi_driver_cell(column, spec),
        ("VolumeAttachment", "Attacher") => json!(text_of(&spec["attacher"])),
        ("VolumeAttachment", "PV") => json!(text_of(&spec["source"]["persistentVolumeName"])),
        ("VolumeAttachment", "Node") => json!(text_of(&spec["nodeName"])),
        ("VolumeAttachment", "Attached") => json!(status["attached"] == json!(true)),
        ("PriorityClass", "Value") => json!(count(&object["value"])),
        ("PriorityClass", "Global-Default") => json!(object["globalDefault"] == json!(true)),
        ("PriorityClass", "PreemptionPolicy") => json!(text_of(&object["preemptionPolicy"])),
        _ => Value::Null,
    }
}

/// A cell of an Ingress, as kubectl's printer fills it: its class, hosts (`*` for a
/// rule without one), load-balancer addresses and ports (443 too with TLS).
fn ingress_cell(column: &str, ingress: &Value) -> Value {
    let (spec, status) = (&ingress["spec"], &ingress["status"]);
    match column {
        "Class" => json!(or(&spec["ingressClassName"], "<none>")),
        "Hosts" => {
            let hosts: Vec<&str> = items(&spec["rules"])
                .map(|rule| or(&rule["host"], "*"))
                .collect();
            json!(if hosts.is_empty() {
                "*".to_string()
            } else {
                hosts.join(",")
            })
        }
        "Address" => {
            let addresses: Vec<&str> = items(&status["loadBalancer"]["ingress"])
                .map(|lb| or(&lb["ip"], text_of(&lb["hostname"])))
                .collect();
            json!(addresses.join(","))
        }
        "Ports" => json!(if items(&spec["tls"]).next().is_some() {
            "80, 443"
        } else {
            "80"
        }),
        _ => Value::Null,
    }
}

/// An IngressClass's parameters as `Kind.group/name`, or `<none>`.
fn ingress_class_parameters(parameters: &Value) -> String {
    if parameters.is_null() {
        return "<none>".into();
    }
    let kind = match parameters["apiGroup"].as_str() {
        Some(group) => format!("{}.{group}", text_of(&parameters["kind"])),
        None => text_of(&parameters["kind"]).to_string(),
    };
    format!("{kind}/{}", text_of(&parameters["name"]))
}

/// A cell of a CSIDriver: its capabilities as kubectl prints them.
fn csi_driver_cell(column: &str, spec: &Value) -> Value {
    let flag = |field: &str| json!(spec[field] == json!(true));
    match column {
        "AttachRequired" => flag("attachRequired"),
        "PodInfoOnMount" => flag("podInfoOnMount"),
        "StorageCapacity" => flag("storageCapacity"),
        "RequiresRepublish" => flag("requiresRepublish"),
        "TokenRequests" => {
            let audiences: Vec<&str> = items(&spec["tokenRequests"])
                .map(|t| text_of(&t["audience"]))
                .collect();
            json!(if audiences.is_empty() {
                "<unset>".to_string()
            } else {
                audiences.join(",")
            })
        }
        "Modes" => {
            let modes: Vec<&str> = items(&spec["volumeLifecycleModes"]).map(text_of).collect();
            json!(if modes.is_empty() {
                "<none>".to_string()
            } else {
                modes.join(",")
            })
        }
        _ => Value::Null,
    }
}

/// A cell of a RoleBinding or ClusterRoleBinding, as kubectl's printer fills it: the
/// role as `Kind/name`, and each kind of subject listed apart.
fn binding_cell(column: &str, binding: &Value) -> Value {
    let role = &binding["roleRef"];
    let subjects = |kind: &str| -> String {
        let names: Vec<String> = items(&binding["subjects"])
            .filter(|s| s["kind"] == kind)
            .map(|s| match kind {
                "ServiceAccount" => format!("{}/{}", text_of(&s["namespace"]), text_of(&s["name"])),
                _ => text_of(&s["name"]).to_string(),
            })
            .collect();
        names.join(", ")
    };
    match column {
        "Role" => json!(format!(
            "{}/{}",
            text_of(&role["kind"]),
            text_of(&role["name"])
        )),
        "Users" => json!(subjects("User")),
        "Groups" => json!(subjects("Group")),
        "ServiceAccounts" => json!(subjects("ServiceAccount")),
        _ => Value::Null,
    }
}

/// A quota's `used/hard` pairs as kubectl prints them (`pods: 1/2, requests.cpu:
/// 500m/1`): the limits.* resources in the Limit column, the rest in Request.
fn quota_usage(status: &Value, limits: bool) -> String {
    let pairs: Vec<String> = status["hard"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(name, _)| name.starts_with("limits.") == limits)
        .map(|(name, hard)| {
            let used = or(&status["used"][name], "0");
            format!("{name}: {used}/{}", text_of(hard))
        })
        .collect();
    pairs.join(", ")
}

/// An int-or-string field as kubectl prints it: `2`, `50%`, or `N/A` when unset.
fn int_or_string(value: &Value) -> String {
    match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => "N/A".into(),
    }
}

/// A text field, empty when it is not set.
/// A binding's paramRef as kubectl prints it: `namespace/name`, `*/name` for any
/// namespace, its selector, or `<unset>`.
fn param_ref_text(reference: &Value) -> String {
    if !reference.is_object() {
        return "<unset>".into();
    }
    match (
        text_of(&reference["name"]),
        text_of(&reference["namespace"]),
    ) {
        ("", _) => match selector_text(&reference["selector"]) {
            text if text.is_empty() => "*".into(),
            text => text,
        },
        (name, "") => format!("*/{name}"),
        (name, namespace) => format!("{namespace}/{name}"),
    }
}

fn text_of(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// A text field, or `fallback` when it is not set or empty.
fn or<'v>(value: &'v Value, fallback: &'v str) -> &'v str {
    value.as_str().filter(|v| !v.is_empty()).unwrap_or(fallback)
}

/// A number field, zero when it is not set (Go's zero value).
fn count(value: &Value) -> i64 {
    value.as_i64().unwrap_or(0)
}

/// How many entries a map or list has.
fn length(value: &Value) -> usize {
    match value {
        Value::Object(map) => map.len(),
        Value::Array(list) => list.len(),
        _ => 0,
    }
}

/// The entries of a list field, none when it is not set.
fn items(value: &Value) -> impl Iterator<Item = &Value> {
    value.as_array().into_iter().flatten()
}

/// A label map as kubectl prints it (`labels.FormatLabels`): sorted `k=v` pairs, or
/// `<none>`.
fn labels_text(labels: &Value) -> String {
    let mut pairs: Vec<String> = labels
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", text_of(v)))
        .collect();
    pairs.sort();
    if pairs.is_empty() {
        "<none>".into()
    } else {
        pairs.join(",")
    }
}

/// A LabelSelector as kube prints it (`LabelSelectorAsSelector(…).String()`): its
/// requirements sorted by key — `app=web`, `tier in (a,b)`, `env notin (x)`, `k`, `!k` —
/// empty when it selects everything.
fn selector_text(selector: &Value) -> String {
    let mut requirements: Vec<(String, String)> = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), format!("{k}={}", text_of(v))))
        .collect();
    for expression in items(&selector["matchExpressions"]) {
        let key = text_of(&expression["key"]);
        let mut values: Vec<&str> = items(&expression["values"]).map(text_of).collect();
        values.sort_unstable();
        let values = values.join(",");
        let text = match text_of(&expression["operator"]) {
            "In" => format!("{key} in ({values})"),
            "NotIn" => format!("{key} notin ({values})"),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other} ({values})"),
        };
        requirements.push((key.to_string(), text));
    }
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    let texts: Vec<String> = requirements.into_iter().map(|(_, text)| text).collect();
    texts.join(",")
}

/// A field of each of a pod template's containers, joined with commas.
fn containers_field(spec: &Value, field: &str) -> String {
    let values: Vec<&str> = items(&spec["template"]["spec"]["containers"])
        .map(|c| text_of(&c[field]))
        .collect();
    values.join(",")
}

/// The first three of `count` items joined by commas and how many more, as kubectl
/// prints endpoints: `10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more...`.
fn first_three(items: &[String], empty: &str) -> String {
    match items.len() {
        0 => empty.into(),
        1..=3 => items.join(","),
        more => format!("{} + {} more...", items[..3].join(","), more - 3),
    }
}

/// An Endpoints' addresses: each port of a subset with each of its addresses.
fn endpoints(subsets: &Value) -> String {
    if length(subsets) == 0 {
        return "<none>".into();
    }
    let mut list = Vec::new();
    for subset in items(subsets) {
        let ips: Vec<&str> = items(&subset["addresses"])
            .map(|a| text_of(&a["ip"]))
            .collect();
        if length(&subset["ports"]) == 0 {
            list.extend(ips.iter().map(|ip| ip.to_string()));
            continue;
        }
        for port in items(&subset["ports"]) {
            let port = count(&port["port"]);
            list.extend(ips.iter().map(|ip| match ip.contains(':') {
                true => format!("[{ip}]:{port}"),
                false => format!("{ip}:{port}"),
            }));
        }
    }
    first_three(&list, "")
}

/// An EndpointSlice's ports: the number, else the name, else `*`.
fn slice_ports(ports: &Value) -> String {
    let list: Vec<String> = items(ports)
        .map(|p| match (&p["port"], p["name"].as_str()) {
            (Value::Number(n), _) => n.to_string(),
            (_, Some(name)) => name.to_string(),
            _ => "*".into(),
        })
        .collect();
    first_three(&list, "<unset>")
}

/// An EndpointSlice's addresses, across its endpoints.
fn slice_endpoints(endpoints: &Value) -> String {
    let list: Vec<String> = items(endpoints)
        .flat_map(|e| items(&e["addresses"]))
        .map(|a| text_of(a).to_string())
        .collect();
    first_three(&list, "<unset>")
}

/// The object's controller as `kind.group/name` in lower case, or `<none>`.
fn controller_of(metadata: &Value) -> String {
    let Some(owner) = items(&metadata["ownerReferences"]).find(|o| o["controller"] == true) else {
        return "<none>".into();
    };
    let group = text_of(&owner["apiVersion"])
        .rsplit_once('/')
        .map_or("", |(group, _)| group);
    let kind = text_of(&owner["kind"]).to_lowercase();
    let kind = if group.is_empty() {
        kind
    } else {
        format!("{kind}.{group}")
    };
    format!("{kind}/{}", text_of(&owner["name"]))
}

/// What kubectl's pod row says of a pod: ready containers, the STATUS reason and the
/// restarts, by printers.go's rules.
struct PodRow {
    ready: usize,
    total: usize,
    reason: String,
    restarts: i64,
    last_restart: Option<SystemTime>,
}

/// When the container last terminated, if it did.
fn last_termination(container: &Value) -> Option<SystemTime> {
    parse_time(&container["lastState"]["terminated"]["finishedAt"])
}

/// `Signal:9`, `ExitCode:1`, or the terminated state's reason, with `prefix`.
fn terminated_reason(terminated: &Value, prefix: &str) -> String {
    match (text_of(&terminated["reason"]), count(&terminated["signal"])) {
        ("", 0) => format!("{prefix}ExitCode:{}", count(&terminated["exitCode"])),
        ("", signal) => format!("{prefix}Signal:{signal}"),
        (reason, _) => format!("{prefix}{reason}"),
    }
}

/// Whether the status holds condition `kind` as True.
fn has_condition(status: &Value, kind: &str) -> bool {
    items(&status["conditions"]).any(|c| c["type"] == kind && c["status"] == "True")
}

/// The init containers' part of the row: whether they are still running (and the
/// reason they give), counting restarts and ready sidecars into `row`.
fn init_containers(pod: &Value, row: &mut PodRow) -> bool {
    let init_specs = &pod["spec"]["initContainers"];
    let restartable = |name: &Value| {
        items(init_specs).any(|c| c["name"] == *name && c["restartPolicy"] == "Always")
    };
    for (i, container) in items(&pod["status"]["initContainerStatuses"]).enumerate() {
        row.restarts += count(&container["restartCount"]);
        row.last_restart = row.last_restart.max(last_termination(container));
        let state = &container["state"];
        let terminated = &state["terminated"];
        let waiting = text_of(&state["waiting"]["reason"]);
        if terminated.is_object() && count(&terminated["exitCode"]) == 0 {
            continue;
        }
        if restartable(&container["name"]) && container["started"] == true {
            row.ready += usize::from(container["ready"] == true);
            continue;
        }
        row.reason = if terminated.is_object() {
            terminated_reason(terminated, "Init:")
        } else if !waiting.is_empty() && waiting != "PodInitializing" {
            format!("Init:{waiting}")
        } else {
            format!("Init:{i}/{}", length(init_specs))
        };
        return true;
    }
    false
}

/// The pod's row, by kube-apiserver's printPod: the phase (or the status' reason), then
/// what the init containers and the containers (the last first) say, then Terminating
/// or Unknown for a pod being deleted.
fn pod_row(pod: &Value) -> PodRow {
    let (spec, status) = (&pod["spec"], &pod["status"]);
    let sidecars = items(&spec["initContainers"])
        .filter(|c| c["restartPolicy"] == "Always")
        .count();
    let mut row = PodRow {
        ready: 0,
        total: length(&spec["containers"]) + sidecars,
        reason: or(&status["reason"], text_of(&status["phase"])).to_string(),
        restarts: 0,
        last_restart: None,
    };
    if items(&status["conditions"])
        .any(|c| c["type"] == "PodScheduled" && c["reason"] == "SchedulingGated")
    {
        row.reason = "SchedulingGated".into();
    }
    let initializing = init_containers(pod, &mut row);
    if !initializing || has_condition(status, "Initialized") {
        let sidecar_statuses: Vec<&Value> = items(&status["initContainerStatuses"])
            .filter(|c| {
                items(&spec["initContainers"])
                    .any(|s| s["name"] == c["name"] && s["restartPolicy"] == "Always")
            })
            .collect();
        row.restarts = sidecar_statuses
            .iter()
            .map(|c| count(&c["restartCount"]))
            .sum();
        row.last_restart = sidecar_statuses
            .iter()
            .filter_map(|c| last_termination(c))
            .max();
        let mut running = false;
        let statuses: Vec<&Value> = items(&status["containerStatuses"]).collect();
        for container in statuses.into_iter().rev() {
            row.restarts += count(&container["restartCount"]);
            row.last_restart = row.last_restart.max(last_termination(container));
            let state = &container["state"];
            let waiting = text_of(&state["waiting"]["reason"]);
            if !waiting.is_empty() {
                row.reason = waiting.to_string();
            } else if state["terminated"].is_object() {
                row.reason = terminated_reason(&state["terminated"], "");
            } else if container["ready"] == true && state["running"].is_object() {
                running = true;
                row.ready += 1;
            }
        }
        if row.reason == "Completed" && running {
            row.reason = if has_condition(status, "Ready") {
                "Running"
            } else {
                "NotReady"
            }
            .into();
        }
    }
    let deleting = !pod["metadata"]["deletionTimestamp"].is_null();
    if deleting && status["reason"] == "NodeLost" {
        row.reason = "Unknown".into();
    } else if deleting && !matches!(text_of(&status["phase"]), "Succeeded" | "Failed") {
        row.reason = "Terminating".into();
    }
    row
}

/// A pod's cell, from its row ([`pod_row`]) or its fields for the wide columns.
fn pod_cell(column: &str, pod: &Value) -> Value {
    let (spec, status) = (&pod["spec"], &pod["status"]);
    match column {
        "Ready" => {
            let row = pod_row(pod);
            json!(format!("{}/{}", row.ready, row.total))
        }
        "Status" => json!(pod_row(pod).reason),
        "Restarts" => json!(match pod_row(pod) {
            PodRow {
                restarts,
                last_restart: Some(when),
                ..
            } if restarts != 0 => format!("{restarts} ({} ago)", human_duration(when)),
            row => row.restarts.to_string(),
        }),
        // kube-apiserver's conversion makes podIPs of a lone podIP.
        "IP" => json!(or(
            &status["podIPs"][0]["ip"],
            or(&status["podIP"], "<none>")
        )),
        "Node" => json!(or(&spec["nodeName"], "<none>")),
        "Nominated Node" => json!(or(&status["nominatedNodeName"], "<none>")),
        "Readiness Gates" => {
            let gates: Vec<&Value> = items(&spec["readinessGates"]).collect();
            if gates.is_empty() {
                return json!("<none>");
            }
            let met = gates
                .iter()
                .filter(|gate| {
                    items(&status["conditions"])
                        .find(|c| c["type"] == gate["conditionType"])
                        .is_some_and(|c| c["status"] == "True")
                })
                .count();
            json!(format!("{met}/{}", gates.len()))
        }
        _ => Value::Null,
    }
}

/// A node's cell: STATUS from its Ready condition (and SchedulingDisabled when
/// cordoned), ROLES from its `node-role.kubernetes.io/*` labels, its addresses and info.
fn node_cell(column: &str, node: &Value) -> Value {
    let status = &node["status"];
    let info = &status["nodeInfo"];
    let address = |kind: &str| {
        items(&status["addresses"])
            .find(|a| a["type"] == kind)
            .map_or("<none>", |a| text_of(&a["address"]))
            .to_string()
    };
    match column {
        "Status" => {
            let ready = items(&status["conditions"]).find(|c| c["type"] == "Ready");
            let mut states = vec![match ready {
                None => "Unknown",
                Some(c) if c["status"] == "True" => "Ready",
                Some(_) => "NotReady",
            }];
            if node["spec"]["unschedulable"] == true {
                states.push("SchedulingDisabled");
            }
            json!(states.join(","))
        }
        "Roles" => {
            let mut roles: Vec<&str> = node["metadata"]["labels"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(
                    |(key, value)| match key.strip_prefix("node-role.kubernetes.io/") {
                        Some(role) if !role.is_empty() => Some(role),
                        _ if key == "kubernetes.io/role" => {
                            value.as_str().filter(|v| !v.is_empty())
                        }
                        _ => None,
                    },
                )
                .collect();
            roles.sort_unstable();
            roles.dedup();
            json!(if roles.is_empty() {
                "<none>".to_string()
            } else {
                roles.join(",")
            })
        }
        "Version" => json!(text_of(&info["kubeletVersion"])),
        "Internal-IP" => json!(address("InternalIP")),
        "External-IP" => json!(address("ExternalIP")),
        "OS-Image" => json!(or(&info["osImage"], "<unknown>")),
        "Kernel-Version" => json!(or(&info["kernelVersion"], "<unknown>")),
        "Container-Runtime" => json!(or(&info["containerRuntimeVersion"], "<unknown>")),
        _ => Value::Null,
    }
}

/// A Service's cell: its cluster IP, external IPs by type, ports with node ports.
fn service_cell(column: &str, service: &Value) -> Value {
    let spec = &service["spec"];
    let kind = text_of(&spec["type"]);
    let external: Vec<&str> = items(&spec["externalIPs"]).map(text_of).collect();
    match column {
        "Type" => json!(kind),
        "Cluster-IP" => json!(or(&spec["clusterIPs"][0], or(&spec["clusterIP"], "<none>"))),
        "External-IP" => json!(match kind {
            "ClusterIP" | "NodePort" if external.is_empty() => "<none>".to_string(),
            "ClusterIP" | "NodePort" => external.join(","),
            "LoadBalancer" => {
                let mut balancers: Vec<&str> = items(&service["status"]["loadBalancer"]["ingress"])
                    .map(|i| or(&i["ip"], text_of(&i["hostname"])))
                    .filter(|a| !a.is_empty())
                    .collect();
                balancers.sort_unstable();
                balancers.dedup();
                balancers.extend(external);
                if balancers.is_empty() {
                    "<pending>".to_string()
                } else {
                    balancers.join(",")
                }
            }
            "ExternalName" => text_of(&spec["externalName"]).to_string(),
            _ => "<unknown>".to_string(),
        }),
        "Port(s)" => {
            let ports: Vec<String> = items(&spec["ports"])
                .map(|p| {
                    let protocol = text_of(&p["protocol"]);
                    match count(&p["nodePort"]) {
                        0 => format!("{}/{protocol}", count(&p["port"])),
                        node => format!("{}:{node}/{protocol}", count(&p["port"])),
                    }
                })
                .collect();
            json!(if ports.is_empty() {
                "<none>".to_string()
            } else {
                ports.join(",")
            })
        }
        "Selector" => json!(labels_text(&spec["selector"])),
        _ => Value::Null,
    }
}

/// Access modes as kubectl abbreviates them, in its order.
fn access_modes(modes: &Value) -> String {
    let given: Vec<&str> = items(modes).map(text_of).collect();
    let known = [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ];
    let short: Vec<&str> = known
        .iter()
        .filter(|(mode, _)| given.contains(mode))
        .map(|(_, short)| *short)
        .collect();
    short.join(",")
}

/// A PersistentVolume's or PersistentVolumeClaim's cell.
fn volume_cell(kind: &str, column: &str, object: &Value) -> Value {
    let (spec, status) = (&object["spec"], &object["status"]);
    let bound = kind == "PersistentVolume" || !text_of(&spec["volumeName"]).is_empty();
    match column {
        "Status" if !object["metadata"]["deletionTimestamp"].is_null() => json!("Terminating"),
        "Status" => json!(text_of(&status["phase"])),
        // A missing quantity prints as Go's zero Quantity: `0`.
        "Capacity" if kind == "PersistentVolume" => json!(or(&spec["capacity"]["storage"], "0")),
        "Capacity" if bound => json!(or(&status["capacity"]["storage"], "0")),
        "Access Modes" if kind == "PersistentVolume" => json!(access_modes(&spec["accessModes"])),
        "Access Modes" if bound => json!(access_modes(&status["accessModes"])),
        "Capacity" | "Access Modes" => json!(""),
        "Reclaim Policy" => json!(text_of(&spec["persistentVolumeReclaimPolicy"])),
        "Claim" => json!(match &spec["claimRef"] {
            Value::Null => String::new(),
            claim => format!(
                "{}/{}",
                text_of(&claim["namespace"]),
                text_of(&claim["name"])
            ),
        }),
        "StorageClass" => json!(or(
            &object["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"],
            text_of(&spec["storageClassName"])
        )),
        "VolumeAttributesClass" => json!(or(&spec["volumeAttributesClassName"], "<unset>")),
        "Reason" => json!(text_of(&status["reason"])),
        "Volume" => json!(text_of(&spec["volumeName"])),
        "VolumeMode" => json!(or(&spec["volumeMode"], "<unset>")),
        _ => Value::Null,
    }
}

/// A Job's cell: STATUS by its conditions (Complete and Failed before Terminating),
/// COMPLETIONS, DURATION and the template's.
fn job_cell(column: &str, job: &Value) -> Value {
    let (spec, status) = (&job["spec"], &job["status"]);
    let holds = |kind: &str| {
        items(&status["conditions"])
            .find(|c| c["type"] == kind)
            .is_some_and(|c| c["status"] == "True")
    };
    match column {
        "Status" => json!(if holds("Complete") {
            "Complete"
        } else if holds("Failed") {
            "Failed"
        } else if !job["metadata"]["deletionTimestamp"].is_null() {
            "Terminating"
        } else if holds("Suspended") {
            "Suspended"
        } else if holds("FailureTarget") {
            "FailureTarget"
        } else {
            "Running"
        }),
        "Completions" => {
            let succeeded = count(&status["succeeded"]);
            json!(
                match (spec["completions"].as_i64(), count(&spec["parallelism"])) {
                    (Some(completions), _) => format!("{succeeded}/{completions}"),
                    (None, parallelism) if parallelism > 1 => {
                        format!("{succeeded}/1 of {parallelism}")
                    }
                    (None, _) => format!("{succeeded}/1"),
                }
            )
        }
        "Duration" => json!(match (
            parse_time(&status["startTime"]),
            parse_time(&status["completionTime"])
        ) {
            (None, _) => String::new(),
            (Some(start), None) => human_duration(start),
            (Some(start), Some(end)) => duration_text(signed_seconds(start, end)),
        }),
        "Containers" => json!(containers_field(spec, "name")),
        "Images" => json!(containers_field(spec, "image")),
        "Selector" => json!(match selector_text(&spec["selector"]) {
            text if text.is_empty() => "<none>".to_string(),
            text => text,
        }),
        _ => Value::Null,
    }
}

/// An autoscaler's cell: its target, its metrics' current and target values, its
/// bounds and replicas.
fn autoscaler_cell(column: &str, autoscaler: &Value) -> Value {
    let (spec, status) = (&autoscaler["spec"], &autoscaler["status"]);
    match column {
        "Reference" => json!(format!(
            "{}/{}",
            text_of(&spec["scaleTargetRef"]["kind"]),
            text_of(&spec["scaleTargetRef"]["name"])
        )),
        "Targets" => json!(autoscaler_targets(spec, status)),
        "MinPods" => json!(
            spec["minReplicas"]
                .as_i64()
                .map_or("<unset>".to_string(), |n| n.to_string())
        ),
        "MaxPods" => json!(count(&spec["maxReplicas"])),
        "Replicas" => json!(count(&status["currentReplicas"])),
        _ => Value::Null,
    }
}

/// `current/target` of each metric (two at most, then `+ N more...`), as formatHPAMetrics.
fn autoscaler_targets(spec: &Value, status: &Value) -> String {
    let metrics: Vec<&Value> = items(&spec["metrics"]).collect();
    if metrics.is_empty() {
        return "<none>".into();
    }
    let texts: Vec<String> = metrics
        .iter()
        .enumerate()
        .map(|(i, metric)| {
            let kind = text_of(&metric["type"]);
            let field = match kind {
                "Resource" => "resource",
                "ContainerResource" => "containerResource",
                "Pods" => "pods",
                "Object" => "object",
                "External" => "external",
                _ => return "<unknown type>".to_string(),
            };
            let (source, current) = (&metric[field], &status["currentMetrics"][i][field]);
            let target = &source["target"];
            let known = |value: &Value| or(value, "<unknown>").to_string();
            let name = text_of(&source["name"]);
            match (field, target["averageValue"].as_str()) {
                ("resource" | "containerResource", Some(average)) => {
                    format!(
                        "{name}: {}/{average}",
                        known(&current["current"]["averageValue"])
                    )
                }
                ("resource" | "containerResource", None) => {
                    let percent = |v: &Value| v.as_i64().map(|n| format!("{n}%"));
                    let now = percent(&current["current"]["averageUtilization"]);
                    let goal = percent(&target["averageUtilization"]);
                    format!(
                        "{name}: {}/{}",
                        now.as_deref().unwrap_or("<unknown>"),
                        goal.as_deref().unwrap_or("<auto>")
                    )
                }
                ("pods", average) => format!(
                    "{}/{}",
                    known(&current["current"]["averageValue"]),
                    average.unwrap_or_default()
                ),
                (_, Some(average)) => format!(
                    "{}/{average} (avg)",
                    known(&current["current"]["averageValue"])
                ),
                (_, None) => format!(
                    "{}/{}",
                    known(&current["current"]["value"]),
                    text_of(&target["value"])
                ),
            }
        })
        .collect();
    match texts.len() {
        0..=2 => texts.join(", "),
        more => format!("{} + {} more...", texts[..2].join(", "), more - 2),
    }
}

/// An Event's cell: when last and first seen (eventTime or the series when the
/// timestamps are unset), the object it is about, where it came from.
fn event_cell(column: &str, event: &Value) -> Value {
    let involved = &event["involvedObject"];
    let first = || match parse_time(&event["firstTimestamp"]) {
        Some(time) => human_duration(time),
        None => since(&event["eventTime"]),
    };
    match column {
        "Last Seen" => json!(match parse_time(&event["lastTimestamp"]) {
            _ if event["series"].is_object() => since(&event["series"]["lastObservedTime"]),
            Some(time) => human_duration(time),
            None => first(),
        }),
        "First Seen" => json!(first()),
        "Count" => json!(match count(&event["count"]) {
            _ if event["series"].is_object() => count(&event["series"]["count"]),
            0 => 1,
            n => n,
        }),
        "Type" => json!(text_of(&event["type"])),
        "Reason" => json!(text_of(&event["reason"])),
        "Object" => {
            let kind = text_of(&involved["kind"]).to_lowercase();
            json!(match text_of(&involved["name"]) {
                "" => kind,
                name => format!("{kind}/{name}"),
            })
        }
        "Subobject" => json!(text_of(&involved["fieldPath"])),
        "Source" => {
            let component = or(
                &event["source"]["component"],
                text_of(&event["reportingComponent"]),
            );
            json!(match or(
                &event["source"]["host"],
                text_of(&event["reportingInstance"])
            ) {
                "" => component.to_string(),
                instance => format!("{component}, {instance}"),
            })
        }
        "Message" => json!(text_of(&event["message"]).trim()),
        "Name" => json!(text_of(&event["metadata"]["name"])),
        _ => Value::Null,
    }
}

/// An RFC 3339 time (seconds or finer), if `value` holds one.
fn parse_time(value: &Value) -> Option<SystemTime> {
    value
        .as_str()
        .and_then(|t| humantime::parse_rfc3339(t).ok())
}

/// kubectl's AGE of an RFC 3339 time: `42s`, `3m10s`, `25m`, `5h3m`, `30h`, `3d4h`,
/// `12d`, `2y30d`; `<unknown>` when it is not set.
fn since(time: &Value) -> String {
    parse_time(time).map_or_else(|| "<unknown>".into(), human_duration)
}

/// The time from `then` to now as kubectl prints durations.
fn human_duration(then: SystemTime) -> String {
    duration_text(signed_seconds(then, SystemTime::now()))
}

/// Seconds from `from` to `to`, negative when `to` is earlier.
fn signed_seconds(from: SystemTime, to: SystemTime) -> i64 {
    match to.duration_since(from) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// apimachinery's `duration.HumanDuration` of `s` seconds: a little clock skew reads
/// as `0s`, more as `<invalid>`.
fn duration_text(s: i64) -> String {
    let (m, h) = (s / 60, s / 3600);
    let (d, y) = (h / 24, h / (24 * 365));
    match s {
        _ if s < -1 => "<invalid>".into(),
        _ if s < 0 => "0s".into(),
        _ if s < 120 => format!("{s}s"),
        _ if m < 10 && s % 60 == 0 => format!("{m}m"),
        _ if m < 10 => format!("{m}m{}s", s % 60),
        _ if m < 180 => format!("{m}m"),
        _ if h < 8 && m % 60 == 0 => format!("{h}h"),
        _ if h < 8 => format!("{h}h{}m", m % 60),
        _ if h < 48 => format!("{h}h"),
        _ if h < 24 * 8 && h % 24 == 0 => format!("{d}d"),
        _ if h < 24 * 8 => format!("{d}d{}h", h % 24),
        _ if h < 24 * 365 * 2 => format!("{d}d"),
        _ if h < 24 * 365 * 8 && d % 365 == 0 => format!("{y}y"),
        _ if h < 24 * 365 * 8 => format!("{y}y{}d", d % 365),
        _ => format!("{y}y"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cells(kind: &str, object: &Value) -> Vec<Value> {
        columns(kind)
            .iter()
            .filter(|c| c.name != "Name" && c.name != "Age")
            .map(|c| cell(kind, c.name, object))
            .collect()
    }

    fn ago(seconds: u64) -> Value {
        json!(crate::objects::rfc3339(
            SystemTime::now() - Duration::from_secs(seconds)
        ))
    }

    #[test]
    fn rows_carry_what_include_object_asks() {
        let pods = crate::resources::resource("pods").expect("served");
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
        let row = |include| table(&pods, std::slice::from_ref(&pod), 7, include)["rows"][0].clone();
        assert_eq!(row(Include::Object)["object"], pod);
        assert_eq!(
            row(Include::Metadata)["object"]["kind"],
            "PartialObjectMetadata"
        );
        assert!(row(Include::Nothing).get("object").is_none());
        let query = |value: &str| HashMap::from([("includeObject".to_string(), value.to_string())]);
        assert_eq!(included(&query("Object")).ok(), Some(Include::Object));
        assert!(included(&query("Everything")).is_err());
    }

    #[test]
    fn durations_read_as_kubectl_s() {
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(crate::objects::rfc3339(t), "2023-11-14T22:13:20Z");
        assert_eq!(parse_time(&json!("2023-11-14T22:13:20Z")), Some(t));
        assert_eq!(since(&ago(30)), "30s");
        assert_eq!(since(&ago(190)), "3m10s");
        assert_eq!(since(&ago(3 * 86_400)), "3d");
        assert_eq!(since(&Value::Null), "<unknown>");
        assert_eq!(duration_text(5 * 3600 + 180), "5h3m");
        assert_eq!(duration_text(800 * 86_400), "2y70d");
        assert_eq!(duration_text(-1), "0s");
        assert_eq!(duration_text(-5), "<invalid>");
    }

    #[test]
    fn pod_status_follows_printers_go() {
        let running = json!({
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"ready": true, "restartCount": 2, "state": {"running": {}}},
                {"ready": false, "restartCount": 1, "state": {"running": {}}}]},
        });
        let pod_cells = |pod: &Value| cells("Pod", pod)[..3].to_vec();
        assert_eq!(
            pod_cells(&running),
            [json!("1/2"), json!("Running"), json!("3")]
        );
        let mut deleting = running.clone();
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert_eq!(pod_cells(&deleting)[1], "Terminating");
        deleting["status"]["reason"] = json!("NodeLost");
        assert_eq!(pod_cells(&deleting)[1], "Unknown");
        let crashing = json!({"spec": {"containers": [{"name": "a"}]}, "status": {
            "phase": "Running", "containerStatuses": [{"restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(65)}}}]}});
        assert_eq!(
            pod_cells(&crashing),
            [
                json!("0/1"),
                json!("CrashLoopBackOff"),
                json!("4 (65s ago)")
            ]
        );
        let done = |code: i64, reason: &str| {
            json!({"spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Succeeded", "containerStatuses": [{"ready": false,
                "state": {"terminated": {"exitCode": code, "reason": reason}}}]}})
        };
        assert_eq!(pod_cells(&done(0, "Completed"))[1], "Completed");
        assert_eq!(pod_cells(&done(1, "Error"))[1], "Error");
        assert_eq!(pod_cells(&done(137, ""))[1], "ExitCode:137");
        let initializing = json!({"spec": {
                "initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "a"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "i1", "state": {"terminated": {"exitCode": 0}}},
                {"name": "i2", "state": {"running": {}}}],
                "containerStatuses": [{"state": {"waiting": {"reason": "PodInitializing"}}}]}});
        assert_eq!(pod_cells(&initializing)[1], "Init:1/2");
        let addressed = json!({"status": {"podIP": "10.0.0.9"}});
        assert_eq!(pod_cell("IP", &addressed), "10.0.0.9");
        assert_eq!(pod_cell("IP", &initializing), "<none>");
        assert_eq!(
            row_conditions("Pod", &done(0, "Completed")).unwrap()[0]["reason"],
            "Succeeded"
        );
    }

    #[test]
    fn events_show_kubectl_s_columns() {
        let names: Vec<(&str, bool)> = columns("Event").iter().map(|c| (c.name, c.wide)).collect();
        assert_eq!(
            names[..4],
            [
                ("Last Seen", false),
                ("Type", false),
                ("Reason", false),
                ("Object", false)
            ]
        );
        let event = json!({"metadata": {"name": "web.1"}, "type": "Warning",
            "reason": "FailedScheduling", "message": " no nodes \n",
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{c}"},
            "source": {"component": "default-scheduler"}, "reportingInstance": "host-1",
            "firstTimestamp": ago(300), "lastTimestamp": ago(20), "count": 3});
        let all: Vec<Value> = columns("Event")
            .iter()
            .map(|c| cell("Event", c.name, &event))
            .collect();
        assert_eq!(
            all,
            [
                json!("20s"),
                json!("Warning"),
                json!("FailedScheduling"),
                json!("pod/web"),
                json!("spec.containers{c}"),
                json!("default-scheduler, host-1"),
                json!("no nodes"),
                json!("5m"),
                json!(3),
                json!("web.1"),
            ]
        );
        let new_style = json!({"eventTime": ago(10), "involvedObject": {"kind": "Node"}});
        assert_eq!(event_cell("Last Seen", &new_style), "10s");
        assert_eq!(event_cell("Count", &new_style), 1);
        assert_eq!(event_cell("Object", &new_style), "node");
    }

    #[test]
    fn other_kinds_follow_printers_go() {
        let service = json!({"spec": {"type": "NodePort", "clusterIPs": ["10.43.0.10"],
            "selector": {"b": "2", "a": "1"},
            "ports": [{"port": 53, "protocol": "UDP"}, {"port": 80, "protocol": "TCP", "nodePort": 30080}]}});
        assert_eq!(
            cells("Service", &service),
            [
                "NodePort",
                "10.43.0.10",
                "<none>",
                "53/UDP,80:30080/TCP",
                "a=1,b=2"
            ]
        );
        let node = json!({"metadata": {"labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        assert_eq!(
            cells("Node", &node)[..2],
            ["NotReady,SchedulingDisabled", "control-plane"]
        );
        let job = json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"parallelism": 3}, "status": {"succeeded": 1,
            "conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(cells("Job", &job)[..2], ["Complete", "1/1 of 3"]);
        let selector = json!({"matchLabels": {"app": "web"}, "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["db", "cache"]},
            {"key": "legacy", "operator": "DoesNotExist"}]});
        assert_eq!(
            selector_text(&selector),
            "app=web,!legacy,tier in (cache,db)"
        );
        let ep = json!([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
            "ports": [{"port": 80}, {"port": 443}]}]);
        assert_eq!(
            endpoints(&ep),
            "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more..."
        );
        let hpa = json!({"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
            "minReplicas": 2, "maxReplicas": 5, "metrics": [{"type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]},
            "status": {"currentReplicas": 2, "currentMetrics": [{"type": "Resource",
            "resource": {"name": "cpu", "current": {"averageUtilization": 10}}}]}});
        assert_eq!(
            cells("HorizontalPodAutoscaler", &hpa),
            [
                json!("Deployment/web"),
                json!("cpu: 10%/50%"),
                json!("2"),
                json!(5),
                json!(2)
            ]
        );
        let cronjob = json!({"spec": {"schedule": "* * * * *", "suspend": false,
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}}});
        assert_eq!(
            cells("CronJob", &cronjob),
            [
                json!("* * * * *"),
                json!("<none>"),
                json!("False"),
                json!(0),
                json!("<none>"),
                json!("c"),
                json!("i"),
                json!("<none>")
            ]
        );
        let claim = json!({"spec": {"volumeName": "pv-1", "storageClassName": "local",
            "volumeMode": "Filesystem"}, "status": {"phase": "Bound",
            "accessModes": ["ReadWriteMany", "ReadWriteOnce"], "capacity": {"storage": "1Gi"}}});
        assert_eq!(
            cells("PersistentVolumeClaim", &claim),
            [
                "Bound",
                "pv-1",
                "1Gi",
                "RWO,RWX",
                "local",
                "<unset>",
                "Filesystem"
            ]
        );
        let volume = json!({"spec": {"claimRef": {"namespace": "ns", "name": "data"}}});
        assert_eq!(
            cells("PersistentVolume", &volume)[..5],
            [
                json!("0"),
                json!(""),
                json!(""),
                json!(""),
                json!("ns/data")
            ]
        );
        let revision = json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1",
            "kind": "DaemonSet", "name": "agent", "controller": true}]}, "revision": 2});
        assert_eq!(
            cells("ControllerRevision", &revision),
            [json!("daemonset.apps/agent"), json!(2)]
        );
    }
}
