//! Label selectors (`-l app=web,tier!=db,env in (a,b),!legacy`) and field selectors
//! (`--field-selector metadata.name=x`), as Kubernetes parses and applies them.

use serde_json::Value;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector: every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LabelSelector(Vec<Requirement>);

/// Splits on commas outside parentheses.
fn terms(text: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(text[start..].trim());
    out.into_iter().filter(|t| !t.is_empty()).collect()
}

fn set(values: &str) -> Option<Vec<String>> {
    let inner = values.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|v| v.trim().to_string()).collect())
}

impl LabelSelector {
    /// Parses `text`; the error names the term that could not be read.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for term in terms(text) {
            let invalid = || format!("unable to parse requirement: {term:?}");
            let requirement = if let Some(key) = term.strip_prefix('!') {
                Requirement::NotExists(key.trim().to_string())
            } else if let Some((key, value)) = term.split_once("!=") {
                Requirement::NotIn(key.trim().to_string(), vec![value.trim().to_string()])
            } else if let Some((key, value)) =
                term.split_once("==").or_else(|| term.split_once('='))
            {
                Requirement::In(key.trim().to_string(), vec![value.trim().to_string()])
            } else if let Some((key, values)) = term.split_once(" notin ") {
                Requirement::NotIn(key.trim().to_string(), set(values).ok_or_else(invalid)?)
            } else if let Some((key, values)) = term.split_once(" in ") {
                Requirement::In(key.trim().to_string(), set(values).ok_or_else(invalid)?)
            } else if term
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            {
                Requirement::Exists(term.to_string())
            } else {
                return Err(invalid());
            };
            requirements.push(requirement);
        }
        Ok(Self(requirements))
    }

    /// Whether an object's labels meet every requirement.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        self.holds(|key| labels[key].as_str())
    }

    /// Whether the labels `label` looks up meet every requirement.
    pub(crate) fn holds<'l>(&self, label: impl Fn(&str) -> Option<&'l str>) -> bool {
        self.0.iter().all(|requirement| match requirement {
            Requirement::In(key, values) => {
                label(key).is_some_and(|v| values.iter().any(|w| w == v))
            }
            Requirement::NotIn(key, values) => {
                label(key).is_none_or(|v| values.iter().all(|w| w != v))
            }
            Requirement::Exists(key) => label(key).is_some(),
            Requirement::NotExists(key) => label(key).is_none(),
        })
    }
}

/// A field selector: `label=value`, `label==value` or `label!=value` terms over the
/// fields kube-apiserver lets clients select a kind's objects by.
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldSelector {
    kind: String,
    terms: Vec<(String, String, bool)>,
}

/// The fields of `kind` besides metadata.name and metadata.namespace that selectors
/// may name (kube-apiserver's `…ToSelectableFields`).
fn selectable(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "Event" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "Node" => &["spec.unschedulable"],
        "Namespace" => &["status.phase"],
        "Secret" => &["type"],
        "Service" => &["spec.clusterIP", "spec.type"],
        "ReplicaSet" | "ReplicationController" => &["status.replicas"],
        "Job" => &["status.successful"],
        _ => &[],
    }
}

/// The value of the selectable field `label` of `object` of `kind`, as text: empty when
/// unset, but booleans and counts read as kube-apiserver formats them when unset.
fn field_value(kind: &str, label: &str, object: &Value) -> String {
    let path = match (kind, label) {
        ("Event", "source") => {
            let component = object["source"]["component"].as_str().unwrap_or_default();
            return if component.is_empty() {
                text(&object["reportingComponent"], "")
            } else {
                component.to_string()
            };
        }
        // kube-apiserver's conversion makes podIPs of a lone podIP.
        ("Pod", "status.podIP") if object["status"]["podIPs"].is_array() => "status.podIPs.0.ip",
        ("Job", "status.successful") => "status.succeeded",
        (_, path) => path,
    };
    let found = path
        .split('.')
        .fold(object, |node, part| match part.parse::<usize>() {
            Ok(index) => &node[index],
            Err(_) => &node[part],
        });
    let unset = match label {
        "spec.hostNetwork" | "spec.unschedulable" => "false",
        "status.replicas" | "status.successful" => "0",
        _ => "",
    };
    text(found, unset)
}

/// A JSON value as text: strings as they are, `unset` for null.
fn text(value: &Value, unset: &str) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => unset.to_string(),
        other => other.to_string(),
    }
}

impl FieldSelector {
    /// Parses `text` for objects of `kind`; a field the kind does not offer is refused,
    /// as kube-apiserver refuses it.
    pub(crate) fn parse(text: &str, kind: &str) -> Result<Self, String> {
        let mut terms_out = Vec::new();
        for term in terms(text) {
            let (path, value, equal) = if let Some((p, v)) = term.split_once("!=") {
                (p, v, false)
            } else if let Some((p, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (p, v, true)
            } else {
                return Err(format!("invalid selector: {term:?}; expected field=value"));
            };
            let path = path.trim();
            if !["metadata.name", "metadata.namespace"].contains(&path)
                && !selectable(kind).contains(&path)
            {
                return Err(format!("field label not supported: {path}"));
            }
            terms_out.push((path.to_string(), value.trim().to_string(), equal));
        }
        Ok(Self {
            kind: kind.to_string(),
            terms: terms_out,
        })
    }

    /// Whether the object's fields meet every term.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        self.holds(|label| field_value(&self.kind, label, object))
    }

    /// Whether the fields `field` reads (as text, empty when absent) meet every term.
    fn holds(&self, field: impl Fn(&str) -> String) -> bool {
        self.terms
            .iter()
            .all(|(path, value, equal)| (field(path) == *value) == *equal)
    }
}

/// What a list or watch selects: its label and field selectors together.
pub(crate) struct Selection {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Selection {
    /// The `labelSelector` and `fieldSelector` of a query for objects of `kind`.
    pub(crate) fn parse(
        query: &std::collections::HashMap<String, String>,
        kind: &str,
    ) -> Result<Self, crate::status::Status> {
        let selector = |key: &str| query.get(key).map_or("", String::as_str);
        let bad = crate::status::Status::bad_request;
        Ok(Self {
            labels: LabelSelector::parse(selector("labelSelector")).map_err(bad)?,
            fields: FieldSelector::parse(selector("fieldSelector"), kind).map_err(bad)?,
        })
    }

    /// Whether `object` is selected.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }

    /// Whether a cached object is selected, read whole only when a field selector asks
    /// about fields its summary lacks.
    pub(crate) fn matches_entry(&self, entry: &crate::cache::Entry) -> bool {
        let summary = &entry.summary;
        let summarized = |(path, _, _): &(String, String, bool)| {
            crate::cache::SUMMARY_FIELDS.contains(&path.as_str())
        };
        if !self.fields.terms.iter().all(summarized) {
            return self.matches(&entry.object());
        }
        self.labels.holds(|key| summary.label(key))
            && self
                .fields
                .holds(|path| summary.field(path).unwrap_or_default().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors_read_and_match_as_kubernetes_s() {
        let object = json!({"metadata": {"name": "a", "labels": {"app": "web", "env": "prod"}}});
        let matches = |text: &str| LabelSelector::parse(text).expect("parses").matches(&object);
        assert!(matches("app=web"));
        assert!(matches("app==web,env!=dev"));
        assert!(matches("env in (prod, staging),!legacy"));
        assert!(matches("app"));
        assert!(!matches("env notin (prod)"));
        assert!(!matches("app=db"));
        assert!(!matches("tier"));
        assert!(LabelSelector::parse("env in prod").is_err());
        let fields = FieldSelector::parse("metadata.name=a,metadata.namespace!=x", "ConfigMap")
            .expect("parses");
        assert!(fields.matches(&object));
        assert!(
            !FieldSelector::parse("metadata.name=b", "ConfigMap")
                .expect("parses")
                .matches(&object)
        );
    }

    #[test]
    fn field_selectors_offer_each_kind_s_fields() {
        let event = json!({"metadata": {"name": "e"}, "reason": "Evicted", "type": "Warning",
            "involvedObject": {"kind": "Pod", "name": "web"}, "reportingComponent": "kubelet"});
        let matches = |text: &str| {
            FieldSelector::parse(text, "Event")
                .expect("parses")
                .matches(&event)
        };
        assert!(matches("involvedObject.name=web,reason=Evicted"));
        assert!(matches(
            "source=kubelet,reportingComponent=kubelet,type!=Normal"
        ));
        assert!(matches("involvedObject.fieldPath="));
        assert!(!matches("involvedObject.kind=Node"));
        assert_eq!(
            FieldSelector::parse("reason=x", "ConfigMap").unwrap_err(),
            "field label not supported: reason"
        );
        let node = json!({"metadata": {"name": "n"}});
        let nodes = FieldSelector::parse("spec.unschedulable=false", "Node").expect("parses");
        assert!(nodes.matches(&node));
        let pod = json!({"status": {"podIPs": [{"ip": "10.0.0.5"}]}});
        let pods = FieldSelector::parse("status.podIP=10.0.0.5,spec.hostNetwork=false", "Pod");
        assert!(pods.expect("parses").matches(&pod));
    }
}
