//! Kubernetes' protobuf encoding of request bodies, which kubectl's typed commands
//! (`kubectl create namespace|configmap|secret`) send for built-in kinds: the magic bytes
//! `k8s\0`, a `runtime.Unknown` envelope, and the object in it — decoded with k8s-pb's
//! generated types into the JSON the rest of the server works with.

use base64::Engine;
use k8s_pb::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::{Map, Value, json};

/// The media type of the encoding.
pub(crate) const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\0";

/// The object inside a protobuf body, checked to be of kind `kind`.
fn unwrap_envelope(body: &[u8], kind: &str) -> Result<Vec<u8>, String> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or("the protobuf body does not start with Kubernetes' magic bytes")?;
    let unknown = Unknown::decode(envelope)
        .map_err(|e| format!("the protobuf envelope is malformed: {e}"))?;
    if let Some(sent) = unknown.type_meta.as_ref().and_then(|t| t.kind.as_deref())
        && sent != kind
    {
        return Err(format!(
            "the kind in the data ({sent}) does not match the expected kind ({kind})"
        ));
    }
    Ok(unknown.raw.unwrap_or_default())
}

/// The JSON form of a protobuf-encoded SelfSubjectAccessReview (`kubectl auth can-i`).
pub(crate) fn access_review(body: &[u8]) -> Result<Value, String> {
    use k8s_pb::api::authorization::v1::SelfSubjectAccessReview;
    let raw = unwrap_envelope(body, "SelfSubjectAccessReview")?;
    let review = SelfSubjectAccessReview::decode(raw.as_slice()).map_err(|e| {
        format!("the SelfSubjectAccessReview in the protobuf body is malformed: {e}")
    })?;
    let attributes = review
        .spec
        .and_then(|s| s.resource_attributes)
        .unwrap_or_default();
    Ok(json!({"spec": {"resourceAttributes": {
        "namespace": attributes.namespace,
        "verb": attributes.verb,
        "group": attributes.group,
        "resource": attributes.resource,
    }}}))
}

/// The JSON form of a protobuf-encoded object of kind `kind`.
pub(crate) fn decode(body: &[u8], kind: &str) -> Result<Value, String> {
    let raw = unwrap_envelope(body, kind)?;
    let malformed =
        |e: prost::DecodeError| format!("the {kind} in the protobuf body is malformed: {e}");
    let base64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut object = match kind {
        "ConfigMap" => {
            let config = ConfigMap::decode(raw.as_slice()).map_err(malformed)?;
            let binary: Map<String, Value> = config
                .binary_data
                .iter()
                .map(|(k, v)| (k.clone(), json!(base64(v))))
                .collect();
            let mut object = json!({"metadata": metadata(config.metadata), "data": config.data});
            if !binary.is_empty() {
                object["binaryData"] = Value::Object(binary);
            }
            if let Some(immutable) = config.immutable {
                object["immutable"] = json!(immutable);
            }
            object
        }
        "Secret" => {
            let secret = Secret::decode(raw.as_slice()).map_err(malformed)?;
            let data: Map<String, Value> = secret
                .data
                .iter()
                .map(|(k, v)| (k.clone(), json!(base64(v))))
                .collect();
            let mut object = json!({"metadata": metadata(secret.metadata), "data": data});
            if !secret.string_data.is_empty() {
                object["stringData"] = json!(secret.string_data);
            }
            if let Some(kind) = secret.r#type {
                object["type"] = json!(kind);
            }
            if let Some(immutable) = secret.immutable {
                object["immutable"] = json!(immutable);
            }
            object
        }
        "Namespace" => {
            let namespace = Namespace::decode(raw.as_slice()).map_err(malformed)?;
            let finalizers = namespace.spec.map(|s| s.finalizers).unwrap_or_default();
            json!({"metadata": metadata(namespace.metadata), "spec": {"finalizers": finalizers}})
        }
        other => return Err(format!("{other} is not served in protobuf: send JSON")),
    };
    object["apiVersion"] = json!("v1");
    object["kind"] = json!(kind);
    Ok(object)
}

/// The parts of ObjectMeta a client may set.
fn metadata(meta: Option<ObjectMeta>) -> Value {
    let meta = meta.unwrap_or_default();
    let mut out = Map::new();
    for (key, value) in [
        ("name", meta.name),
        ("generateName", meta.generate_name),
        ("namespace", meta.namespace),
        ("resourceVersion", meta.resource_version),
    ] {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            out.insert(key.into(), json!(value));
        }
    }
    if !meta.labels.is_empty() {
        out.insert("labels".into(), json!(meta.labels));
    }
    if !meta.annotations.is_empty() {
        out.insert("annotations".into(), json!(meta.annotations));
    }
    if !meta.finalizers.is_empty() {
        out.insert("finalizers".into(), json!(meta.finalizers));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_pb::apimachinery::pkg::runtime::TypeMeta;

    fn encode(kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some("v1".into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: None,
            content_type: None,
        };
        [MAGIC, &unknown.encode_to_vec()].concat()
    }

    #[test]
    fn a_configmap_decodes_to_its_json() {
        let config = ConfigMap {
            metadata: Some(ObjectMeta {
                name: Some("cfg".into()),
                labels: [("app".to_string(), "web".to_string())].into(),
                ..Default::default()
            }),
            data: [("a".to_string(), "b".to_string())].into(),
            binary_data: [("bin".to_string(), vec![0u8, 1])].into(),
            immutable: None,
        };
        let object =
            decode(&encode("ConfigMap", config.encode_to_vec()), "ConfigMap").unwrap_or_default();
        assert_eq!(
            object["metadata"],
            json!({"name": "cfg", "labels": {"app": "web"}})
        );
        assert_eq!(object["data"], json!({"a": "b"}));
        assert_eq!(object["binaryData"], json!({"bin": "AAE="}));
        assert_eq!(object["kind"], "ConfigMap");
    }

    #[test]
    fn wrong_envelopes_and_kinds_are_refused() {
        assert!(decode(b"{}", "ConfigMap").is_err());
        let secret = Secret::default().encode_to_vec();
        let refused = decode(&encode("Secret", secret), "ConfigMap").unwrap_err();
        assert!(refused.contains("does not match"), "{refused}");
    }
}
