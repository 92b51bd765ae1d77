//! Objects as JSON, whatever their kind: what clients send parsed and patched, the
//! resourceVersion read from the store revision, the fields the server owns (uid,
//! creationTimestamp, generation) carried over an update, and a metadata-only view.
//! Checking an object against its resource is `prepare.rs`'.

use std::time::SystemTime;

use serde_json::{Value, json};

use crate::status::Status;

/// The namespaces every cluster has.
pub(crate) const SYSTEM_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

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

/// The store revision an object read from the store or the watch cache is at: its
/// resourceVersion.
pub(crate) fn revision_of(object: &Value) -> Option<i64> {
    object["metadata"]["resourceVersion"].as_str()?.parse().ok()
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

/// Now, as Kubernetes stamps objects (RFC 3339, seconds, UTC).
pub(crate) fn now() -> String {
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

/// `object`'s metadata as a PartialObjectMetadata.
pub(crate) fn metadata_only(object: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": object["metadata"].clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn uids_and_suffixes_have_kubernetes_shapes() {
        assert_eq!(uid().map(|u| u.len()).ok(), Some(36));
        assert_eq!(random_suffix().map(|s| s.len()).ok(), Some(5));
    }
}
