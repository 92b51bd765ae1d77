//! Kubernetes' protobuf encoding of request bodies, which kubectl's typed commands
//! (`kubectl create deployment|service|job|secret|...`, `kubectl expose`, `kubectl run`)
//! send for built-in kinds: the magic bytes `k8s\0`, a `runtime.Unknown` envelope, and
//! the object in it. Any kind decodes the same way: its message is looked up in the
//! descriptors compiled from `proto/` (see [`schema`] for where those come from), read
//! with prost-reflect, and turned into the JSON kube-apiserver would have read
//! ([`json`]) — so the rest of the server never sees protobuf.

mod json;
#[cfg(test)]
mod schema;

use std::sync::LazyLock;

use axum::http::StatusCode;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};
use serde_json::{Value, json};

use crate::status::Status;

/// The media type of the encoding.
pub(crate) const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\0";

/// The envelope's message.
const UNKNOWN: &str = "k8s.io.apimachinery.pkg.runtime.Unknown";

/// The body of a PUT to a resource's `/scale`.
pub(crate) const SCALE: Kind<'static> = Kind::new("autoscaling", "v1", "Scale");

/// The body of a ServiceAccount's `/token`.
pub(crate) const TOKEN_REQUEST: Kind<'static> =
    Kind::new("authentication.k8s.io", "v1", "TokenRequest");

/// `kubectl auth can-i`'s question.
pub(crate) const SELF_SUBJECT_ACCESS_REVIEW: Kind<'static> =
    Kind::new("authorization.k8s.io", "v1", "SelfSubjectAccessReview");

/// `kubectl auth can-i --list`'s question.
pub(crate) const SELF_SUBJECT_RULES_REVIEW: Kind<'static> =
    Kind::new("authorization.k8s.io", "v1", "SelfSubjectRulesReview");

/// Whether someone else may: webhooks' and authorizing proxies' question.
pub(crate) const SUBJECT_ACCESS_REVIEW: Kind<'static> =
    Kind::new("authorization.k8s.io", "v1", "SubjectAccessReview");

/// Whether a token is good: the question of servers that take the cluster's tokens.
pub(crate) const TOKEN_REVIEW: Kind<'static> =
    Kind::new("authentication.k8s.io", "v1", "TokenReview");

/// A pod's eviction, as `kubectl drain` asks for it.
pub(crate) const EVICTION: Kind<'static> = Kind::new("policy", "v1", "Eviction");

/// `kubectl auth whoami`'s question.
pub(crate) const SELF_SUBJECT_REVIEW: Kind<'static> =
    Kind::new("authentication.k8s.io", "v1", "SelfSubjectReview");

/// The descriptors of every message a decoded kind reaches, compiled from `proto/` by
/// the build script.
static DESCRIPTORS: LazyLock<DescriptorPool> = LazyLock::new(|| {
    let compiled = include_bytes!(concat!(env!("OUT_DIR"), "/kubernetes.binpb"));
    DescriptorPool::decode(compiled.as_slice()).expect("the build script compiled proto/")
});

/// An API kind: which message a protobuf body holds, and what its JSON is called.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kind<'a> {
    group: &'a str,
    version: &'a str,
    name: &'a str,
}

impl<'a> Kind<'a> {
    /// The kind `name` of `group` (empty for the core group) at `version`.
    pub(crate) const fn new(group: &'a str, version: &'a str, name: &'a str) -> Self {
        Self {
            group,
            version,
            name,
        }
    }

    /// `Deployment`, as objects' `kind` says it.
    pub(crate) fn name(&self) -> &'a str {
        self.name
    }

    /// `k8s.io.api.apps.v1.Deployment`: Kubernetes names a group's package by the
    /// group's first label, the core group's `core`.
    fn message_name(&self) -> String {
        let package = match self.group.split('.').next() {
            Some("") | None => "api.core".to_string(),
            // Their types live with their servers, not in k8s.io/api.
            Some("apiextensions") => "apiextensions_apiserver.pkg.apis.apiextensions".to_string(),
            Some("apiregistration") => "kube_aggregator.pkg.apis.apiregistration".to_string(),
            Some(label) => format!("api.{label}"),
        };
        format!("k8s.io.{package}.{}.{}", self.version, self.name)
    }

    pub(crate) fn api_version(&self) -> String {
        match self.group {
            "" => self.version.to_string(),
            group => format!("{group}/{}", self.version),
        }
    }
}

/// The JSON form of a protobuf-encoded object of kind `kind`: 415 when the kind has no
/// message here, 400 naming the problem when the body is not a well-formed `kind`.
pub(crate) fn decode(body: &[u8], kind: Kind) -> Result<Value, Status> {
    let descriptor = DESCRIPTORS
        .get_message_by_name(&kind.message_name())
        .ok_or_else(|| unsupported(kind))?;
    let raw = unwrap_envelope(body, kind).map_err(Status::bad_request)?;
    let malformed = |e: String| {
        Status::bad_request(format!(
            "the {} in the protobuf body is malformed: {e}",
            kind.name
        ))
    };
    let message =
        DynamicMessage::decode(descriptor, raw.as_slice()).map_err(|e| malformed(e.to_string()))?;
    let mut object = json::message(&message).map_err(|p| malformed(p.to_string()))?;
    object["apiVersion"] = json!(kind.api_version());
    object["kind"] = json!(kind.name);
    Ok(object)
}

/// kube-apiserver's answer to a body in a media type the kind is not served in.
fn unsupported(kind: Kind) -> Status {
    Status::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UnsupportedMediaType",
        format!(
            "the body of the request was in an unknown format - {} is not served in {MEDIA_TYPE}; accepted media types include: application/json",
            kind.name
        ),
    )
}

/// The message of `kind`, if one is declared here: its fields, and the messages they
/// hold, describe the kind's schema (strategic merge patches walk it).
pub(crate) fn message_of(kind: Kind) -> Option<MessageDescriptor> {
    DESCRIPTORS.get_message_by_name(&kind.message_name())
}

/// The JSON form of a protobuf body of whichever kind its envelope names; None when it
/// is not a well-formed one of a kind served here.
pub(crate) fn decode_named(body: &[u8]) -> Option<Value> {
    let (type_meta, _) = read_envelope(body).ok()?;
    let api_version = type_meta["apiVersion"].as_str()?;
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    decode(body, Kind::new(group, version, type_meta["kind"].as_str()?)).ok()
}

/// The encoded object inside a protobuf body, checked to be of kind `kind`.
fn unwrap_envelope(body: &[u8], kind: Kind) -> Result<Vec<u8>, String> {
    let (type_meta, raw) = read_envelope(body)?;
    for (field, expected) in [
        ("kind", kind.name.to_string()),
        ("apiVersion", kind.api_version()),
    ] {
        if let Some(sent) = type_meta[field].as_str()
            && sent != expected
        {
            return Err(format!(
                "the {field} in the data ({sent}) does not match the expected {field} ({expected})"
            ));
        }
    }
    Ok(raw)
}

/// What a protobuf body's envelope says: the TypeMeta (as JSON) and the encoded object.
fn read_envelope(body: &[u8]) -> Result<(Value, Vec<u8>), String> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or("the protobuf body does not start with Kubernetes' magic bytes")?;
    let unknown = DynamicMessage::decode(descriptor(UNKNOWN), envelope)
        .map_err(|e| format!("the protobuf envelope is malformed: {e}"))?;
    let type_meta = match unknown.get_field_by_name("typeMeta").as_deref() {
        Some(prost_reflect::Value::Message(type_meta)) => {
            json::message(type_meta).map_err(|p| p.to_string())?
        }
        _ => Value::Null,
    };
    let raw = unknown.get_field_by_name("raw");
    let raw = raw
        .and_then(|r| r.as_bytes().map(|b| b.to_vec()))
        .unwrap_or_default();
    Ok((type_meta, raw))
}

/// A message `proto/` declares.
fn descriptor(name: &str) -> MessageDescriptor {
    DESCRIPTORS
        .get_message_by_name(name)
        .unwrap_or_else(|| panic!("proto/ declares {name}"))
}

#[cfg(test)]
mod tests;
