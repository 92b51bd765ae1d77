//! The forms a read may ask for in its Accept header instead of the objects themselves:
//! kubectl's `as=Table`, and the `as=PartialObjectMetadata` (`…List` for lists) that
//! metadata-only informers — the garbage collector's — ask for, which carries each
//! object's metadata and nothing else.

use std::collections::HashMap;

use axum::http::HeaderMap;
use serde_json::{Value, json};

use crate::cache::Entry;
use crate::status::Status;
use crate::tables::Include;

/// What a read answers with other than the objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// A `meta.k8s.io/v1` Table whose rows carry what `Include` says.
    Table(Include),
    /// Each object as a `meta.k8s.io/v1` PartialObjectMetadata.
    Metadata,
}

/// The form the request's Accept header names; None when it asks for objects. A Table
/// wins when a client names both (kubectl lists its choices in order of preference).
pub(crate) fn requested(
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<Option<Form>, Status> {
    let accept = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if accept.contains("as=Table") {
        return crate::tables::included(query).map(|include| Some(Form::Table(include)));
    }
    Ok(accept
        .contains("as=PartialObjectMetadata")
        .then_some(Form::Metadata))
}

/// The JSON text of a cached object as a PartialObjectMetadata, in parts cut from its
/// own text without parsing the rest; None when its metadata cannot be found that way.
pub(crate) fn metadata_text(entry: &Entry) -> Option<[&[u8]; 3]> {
    let metadata = entry.metadata_json()?;
    Some([
        br#"{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":"#,
        metadata.as_bytes(),
        b"}",
    ])
}

/// A list's objects as a PartialObjectMetadataList at `revision`.
pub(crate) fn metadata_list(items: &[Value], revision: i64) -> Value {
    json!({
        "kind": "PartialObjectMetadataList",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": revision.to_string()},
        "items": items.iter().map(crate::objects::metadata_only).collect::<Vec<_>>(),
    })
}

/// An object (or one event's) in `form`: a one-row Table or its metadata.
pub(crate) fn one(
    form: Form,
    resource: &crate::resources::Resource,
    object: Value,
    revision: i64,
) -> Value {
    match form {
        Form::Table(include) => crate::tables::table(resource, &[object], revision, include),
        Form::Metadata => crate::objects::metadata_only(&object),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn accepting(accept: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("accept", accept.parse().unwrap());
        headers
    }

    #[test]
    fn the_accept_header_names_the_form() {
        let none = HashMap::new();
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
        let kube_rs = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
        assert_eq!(
            requested(&accepting(kubectl), &none).unwrap(),
            Some(Form::Table(Include::Metadata))
        );
        assert_eq!(
            requested(&accepting(kube_rs), &none).unwrap(),
            Some(Form::Metadata)
        );
        assert_eq!(
            requested(&accepting("application/json"), &none).unwrap(),
            None
        );
    }

    #[test]
    fn metadata_keeps_only_the_metadata() {
        let pod = json!({"kind": "Pod", "metadata": {"name": "a", "uid": "u"}, "spec": {}});
        let listed = metadata_list(&[pod], 7);
        assert_eq!(listed["kind"], "PartialObjectMetadataList");
        assert_eq!(listed["metadata"]["resourceVersion"], "7");
        assert_eq!(
            listed["items"][0],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": {"name": "a", "uid": "u"}})
        );
    }
}
