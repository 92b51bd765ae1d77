//! An object's outline read straight from its stored JSON: its metadata as it stands in
//! the text, and the few fields the cache's summary keeps, borrowed where the text
//! allows. Every change of the cluster passes through [`Entry::of`](super::Entry::of);
//! parsing the whole object into a `Value` and writing it out again only to add its
//! resourceVersion was a tenth of the server's time while pods were being scheduled.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

/// The top of an object: everything else is skipped, not built.
#[derive(Deserialize)]
pub(super) struct Outline<'a> {
    #[serde(borrow)]
    pub(super) metadata: &'a RawValue,
    #[serde(default, borrow)]
    pub(super) spec: Option<SpecOutline<'a>>,
    #[serde(default, borrow)]
    pub(super) status: Option<StatusOutline<'a>>,
}

/// What the summary keeps of an object's metadata, and whether it holds a
/// resourceVersion already.
#[derive(Deserialize)]
pub(super) struct MetadataOutline<'a> {
    #[serde(default, borrow)]
    pub(super) name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(super) namespace: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(super) labels: Option<BTreeMap<Cow<'a, str>, Cow<'a, str>>>,
    #[serde(default, rename = "resourceVersion")]
    pub(super) resource_version: Option<IgnoredAny>,
}

/// `spec.nodeName`.
#[derive(Deserialize)]
pub(super) struct SpecOutline<'a> {
    #[serde(default, borrow, rename = "nodeName")]
    pub(super) node_name: Option<Cow<'a, str>>,
}

/// `status.phase`.
#[derive(Deserialize)]
pub(super) struct StatusOutline<'a> {
    #[serde(default, borrow)]
    pub(super) phase: Option<Cow<'a, str>>,
}

/// The object's JSON with `"resourceVersion":"REVISION"` put first in its metadata, and
/// the outline read on the way; None when the text is not an object of that shape
/// (metadata not an object, a summary field not a string, a resourceVersion there
/// already), for the caller to take the long way.
pub(super) fn stamped(
    json: &[u8],
    revision: i64,
) -> Option<(Vec<u8>, Outline<'_>, MetadataOutline<'_>)> {
    let outline: Outline<'_> = serde_json::from_slice(json).ok()?;
    let metadata: MetadataOutline<'_> = serde_json::from_str(outline.metadata.get()).ok()?;
    if metadata.resource_version.is_some() {
        return None;
    }
    let raw = outline.metadata.get();
    let start = (raw.as_ptr() as usize).checked_sub(json.as_ptr() as usize)?;
    let inside = raw.strip_prefix('{')?;
    let empty = inside.trim_start().starts_with('}');
    let version = format!(
        "\"resourceVersion\":\"{revision}\"{}",
        if empty { "" } else { "," }
    );
    let mut stamped = Vec::with_capacity(json.len() + version.len());
    stamped.extend_from_slice(json.get(..=start)?);
    stamped.extend_from_slice(version.as_bytes());
    stamped.extend_from_slice(json.get(start + 1..)?);
    Some((stamped, outline, metadata))
}

/// The text of the object's metadata in `json`, as it stands.
pub(super) fn metadata(json: &[u8]) -> Option<&str> {
    let outline: Outline<'_> = serde_json::from_slice(json).ok()?;
    Some(outline.metadata.get())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn reparsed(json: &[u8]) -> serde_json::Value {
        serde_json::from_slice(json).unwrap()
    }

    #[test]
    fn the_revision_goes_first_in_the_metadata() {
        let json = br#"{"kind":"Pod","metadata":{"name":"web","labels":{"app":"a\"b"}},"spec":{"nodeName":"n1","containers":[{"name":"c"}]},"status":{"phase":"Running"}}"#;
        let (stamped, outline, metadata) = stamped(json, 42).unwrap();
        let mut expected = reparsed(json);
        expected["metadata"]["resourceVersion"] = serde_json::json!("42");
        assert_eq!(reparsed(&stamped), expected);
        assert!(stamped.starts_with(br#"{"kind":"Pod","metadata":{"resourceVersion":"42","name""#));
        assert_eq!(metadata.name.as_deref(), Some("web"));
        assert_eq!(metadata.labels.unwrap()["app"], "a\"b");
        assert_eq!(outline.spec.unwrap().node_name.as_deref(), Some("n1"));
        assert_eq!(outline.status.unwrap().phase.as_deref(), Some("Running"));
    }

    #[test]
    fn empty_metadata_takes_the_revision_alone() {
        let (stamped, _, _) = stamped(br#"{"metadata": { } ,"data":{}}"#, 7).unwrap();
        assert_eq!(
            reparsed(&stamped),
            serde_json::json!({"metadata": {"resourceVersion": "7"}, "data": {}})
        );
    }

    #[test]
    fn other_shapes_take_the_long_way() {
        for json in [
            &br#"{"metadata":{"name":"a","resourceVersion":"3"}}"#[..],
            br#"{"metadata":null}"#,
            br#"{"metadata":{"name":5}}"#,
            br#"{"metadata":{},"spec":"text"}"#,
            br#"{"metadata":{},"status":{"phase":1}}"#,
            br#"{"spec":{}}"#,
            b"not json",
        ] {
            assert!(
                stamped(json, 1).is_none(),
                "{}",
                String::from_utf8_lossy(json)
            );
        }
    }

    #[test]
    fn metadata_is_read_as_it_stands() {
        let json = br#"{"apiVersion":"v1","metadata":{"name":"x","uid":"u"},"spec":{"a":[1,2]}}"#;
        assert_eq!(metadata(json), Some(r#"{"name":"x","uid":"u"}"#));
    }
}
