//! Objects as the API server keeps and shows them: parsing and checking what clients
//! send (kind, names as DNS names, the namespace), the fields the server owns (uid,
//! creationTimestamp, resourceVersion from the store revision) and defaults.

use std::time::SystemTime;

use serde_json::{Value, json};

use crate::kinds::NameRule;
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

/// A name the kind accepts (its [`NameRule`]), or kube-apiserver's words for why not.
fn check_name(resource: &Resource, name: &str) -> Result<(), String> {
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    let rule = match resource.name_rule {
        NameRule::Label if name.len() <= 63 && valid_label(name) => return Ok(()),
        NameRule::Label => {
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
        }
        NameRule::Subdomain if name.len() <= 253 && name.split('.').all(valid_label) => {
            return Ok(());
        }
        NameRule::Subdomain => {
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        }
        NameRule::PathSegment => match name {
            "." | ".." => "may not be '.' or '..'",
            _ if name.contains('/') => "may not contain '/'",
            _ if name.contains('%') => "may not contain '%'",
            _ => return Ok(()),
        },
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
        (_, Some(base)) if !base.is_empty() => format!("{base}{}", random_suffix()?),
        _ => {
            return Err(Status::invalid(
                &resource.kind,
                "",
                "metadata.name: Required value: name or generateName is required",
            ));
        }
    };
    check_name(resource, &name).map_err(|m| Status::invalid(&resource.kind, &name, m))?;
    check_namespace(&mut object, namespace)?;
    let metadata = &mut object["metadata"];
    metadata["name"] = json!(name);
    metadata["uid"] = json!(uid()?);
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
                &resource.kind,
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
/// patch (RFC 7386), or a strategic merge patch along the kind's `schema`
/// (crate::strategic) — which custom kinds have not, so they do not take one.
pub(crate) fn apply_patch(
    object: &mut Value,
    (content_type, schema): (&str, Option<&prost_reflect::MessageDescriptor>),
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
        "application/strategic-merge-patch+json" => match schema {
            Some(schema) => crate::strategic::apply(object, parsed, schema),
            None => Err("strategic merge patches are not served for custom resources: use application/json-patch+json or application/merge-patch+json".into()),
        },
        other => Err(format!(
            "the patch type {other:?} is not served: use application/json-patch+json, application/merge-patch+json or application/strategic-merge-patch+json"
        )),
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

/// A 404 unless `namespace` exists, a 403 while it is being deleted: objects are only
/// made in namespaces that live (kube-apiserver's NamespaceLifecycle).
pub(crate) async fn require_namespace(
    store: &dyn berth_store::Store,
    namespace: &str,
) -> Result<(), Status> {
    match store
        .get(&format!("/registry/namespaces/{namespace}"))
        .await
    {
        Ok(Some(kv))
            if from_stored(&kv).is_some_and(|n| !n["metadata"]["deletionTimestamp"].is_null()) =>
        {
            Err(Status::new(
                axum::http::StatusCode::FORBIDDEN,
                "Forbidden",
                format!(
                    "unable to create new content in namespace {namespace} because it is being terminated"
                ),
            ))
        }
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(Status::not_found("namespaces", namespace)),
        Err(e) => Err(Status::from_store(e, "namespaces", namespace)),
    }
}

/// One of the server's own objects of `resource` (in `namespace`, for a namespaced
/// kind), named, stamped and read through its kind's schema as a client's would be:
/// its store key and stored form.
pub(crate) fn prepare_own(
    resource: &Resource,
    namespace: Option<&str>,
    object: Value,
) -> Result<(String, Value), Status> {
    let prefix = match namespace {
        Some(namespace) => format!("{}{namespace}/", resource.directory),
        None => resource.directory.clone(),
    };
    let (key, object) = prepare_create(resource, namespace, object, &prefix)?;
    let admitted = resource.admit(object, (crate::kinds::FieldValidation::Strict, None))?;
    Ok((key, admitted.object))
}

/// Makes the objects every cluster has, once: its namespaces, the system
/// PriorityClasses, the default StorageClass and the default RBAC policy.
pub(crate) async fn ensure_system_objects(store: &dyn berth_store::Store) -> crate::Result<()> {
    let namespaces = SYSTEM_NAMESPACES
        .iter()
        .map(|name| ("namespaces", json!({"metadata": {"name": name}})));
    let classes = crate::priorities::system_classes().map(|class| ("priorityclasses", class));
    let storage = [
        ("storageclasses", crate::storage::default_class()),
        ("ingressclasses", crate::networking::default_ingress_class()),
    ];
    let policy = crate::rbac::bootstrap_policy();
    for (plural, object) in namespaces.chain(classes).chain(storage).chain(policy) {
        let resource = crate::resources::resource(plural)
            .map_err(|_| crate::Error::Setup(format!("the {plural} resource is missing")))?;
        // The objects are the server's own: one it cannot read is a bug to stop at.
        let refused = |status: Status| {
            crate::Error::Setup(format!("a default object of {plural}: {status:?}"))
        };
        let (key, object) = prepare_own(&resource, None, object).map_err(refused)?;
        match store
            .create(&key, serde_json::to_vec(&object).unwrap_or_default())
            .await
        {
            Ok(_) | Err(berth_store::Error::Exists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Changes the object stored at `key` as `change` says (which returns false to leave
/// it), written only if nobody wrote it meanwhile: the server's own status writes, such
/// as an APIService's availability or a signed certificate. The error, in words.
pub(crate) async fn update_stored(
    store: &dyn berth_store::Store,
    key: &str,
    change: impl FnOnce(&mut Value) -> bool,
) -> Result<(), String> {
    let stored = store
        .get(key)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the object is gone")?;
    let mut object: Value = serde_json::from_slice(&stored.value).map_err(|e| e.to_string())?;
    if !change(&mut object) {
        return Ok(());
    }
    let value = serde_json::to_vec(&object).map_err(|e| e.to_string())?;
    store
        .update(key, value, stored.mod_revision)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Now, as Kubernetes stamps objects (RFC 3339, seconds, UTC).
fn now() -> String {
    rfc3339(SystemTime::now())
}

pub(crate) fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// The random hex of `bytes` bytes, or a 500 when the OS cannot give it.
fn random_or_status(bytes: usize) -> Result<String, Status> {
    crate::random_hex(bytes).map_err(|e| {
        Status::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            e.to_string(),
        )
    })
}

/// A version 4 UUID, as Kubernetes gives objects.
pub(crate) fn uid() -> Result<String, Status> {
    let hex = random_or_status(16)?;
    Ok(format!(
        "{}-{}-4{}-{}{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        ["8", "9", "a", "b"][usize::from(hex.as_bytes()[16] % 4)],
        &hex[17..20],
        &hex[20..32]
    ))
}

/// generateName's five random characters.
pub(crate) fn random_suffix() -> Result<String, Status> {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    Ok(random_or_status(5)?
        .as_bytes()
        .chunks(2)
        .map(|pair| {
            let byte =
                u8::from_str_radix(std::str::from_utf8(pair).unwrap_or("0"), 16).unwrap_or(0);
            char::from(ALPHABET[usize::from(byte) % ALPHABET.len()])
        })
        .take(5)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn names_must_be_dns_names() {
        let ns = crate::resources::resource("namespaces").expect("served");
        let cm = crate::resources::resource("configmaps").expect("served");
        assert!(check_name(&cm, "app.config-1").is_ok());
        assert!(check_name(&ns, "app.config").is_err());
        assert!(check_name(&cm, "Upper").is_err());
        assert!(check_name(&cm, "-x").is_err());
        assert_eq!(uid().map(|u| u.len()).ok(), Some(36));
        assert_eq!(random_suffix().map(|s| s.len()).ok(), Some(5));
    }
}
