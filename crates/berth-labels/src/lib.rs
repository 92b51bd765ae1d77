//! Label selectors as Kubernetes evaluates them: the `matchLabels` and
//! `matchExpressions` of a LabelSelector (pod affinity, topology spread, Services'
//! plain selectors, workloads' selectors) and the requirements of a node selector term;
//! and which Ingresses an IngressClass selects.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Labels as objects carry them: absent means none.
pub type Labels = Option<BTreeMap<String, String>>;

/// What selectors read of an object's labels: the value of one key. Objects carry
/// [`Labels`]; what is cached by the hundred thousand carries a [`LabelSet`].
pub trait LabelValues {
    /// The value of label `key`, if the object has it.
    fn value(&self, key: &str) -> Option<&str>;
}

impl LabelValues for Labels {
    fn value(&self, key: &str) -> Option<&str> {
        self.as_ref().and_then(|l| l.get(key)).map(String::as_str)
    }
}

/// An object's labels in one short sorted list: a B-tree's first node is 540 bytes
/// however few labels it holds, and the API server's cache and the controllers' keep
/// one label set per pod of the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSet(Box<[(Box<str>, Box<str>)]>);

impl LabelSet {
    /// The value of label `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|at| &*self.0[at].1)
    }

    /// The labels as key and value, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }
}

impl<K: Into<Box<str>>, V: Into<Box<str>>> FromIterator<(K, V)> for LabelSet {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        let mut pairs: Vec<(Box<str>, Box<str>)> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.dedup_by(|a, b| a.0 == b.0);
        Self(pairs.into_boxed_slice())
    }
}

impl LabelValues for LabelSet {
    fn value(&self, key: &str) -> Option<&str> {
        self.get(key)
    }
}

/// Whether `selector` selects an object labelled `labels`. An empty selector selects
/// everything (as `{}` does in Kubernetes); operators it does not know select nothing.
pub fn selects(selector: &LabelSelector, labels: &impl LabelValues) -> bool {
    let value = |key: &str| labels.value(key);
    let plain = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| value(k) == Some(v.as_str()));
    plain
        && selector
            .match_expressions
            .iter()
            .flatten()
            .all(|e| requirement_holds(&e.operator, value(&e.key), e.values.as_deref()))
}

/// Whether `labels` carry every pair of `wanted` (a Service's or a nodeSelector's map).
pub fn has_all(wanted: &BTreeMap<String, String>, labels: &impl LabelValues) -> bool {
    wanted
        .iter()
        .all(|(k, v)| labels.value(k) == Some(v.as_str()))
}

/// One requirement `key OPERATOR values` against the key's value on an object (None
/// when the object lacks the key), with the operators of label and node selectors.
pub fn requirement_holds(operator: &str, value: Option<&str>, values: Option<&[String]>) -> bool {
    let values = values.unwrap_or_default();
    let among = || value.is_some_and(|v| values.iter().any(|w| w == v));
    let compared = |ordering: std::cmp::Ordering| {
        let number = |text: &str| text.parse::<i64>().ok();
        match (
            value.and_then(number),
            values.first().and_then(|w| number(w)),
        ) {
            (Some(v), Some(w)) => v.cmp(&w) == ordering,
            _ => false,
        }
    };
    match operator {
        "In" => among(),
        "NotIn" => !among(),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => compared(std::cmp::Ordering::Greater),
        "Lt" => compared(std::cmp::Ordering::Less),
        _ => false,
    }
}

/// Whether the controller of IngressClass `class` serves `ingress`: the Ingress names
/// it (in `spec.ingressClassName`, or the older `kubernetes.io/ingress.class`
/// annotation), or names none and `class` is the default among `classes` (annotated
/// `ingressclass.kubernetes.io/is-default-class: "true"`).
pub fn ingress_has_class(
    ingress: &k8s_openapi::api::networking::v1::Ingress,
    class: &str,
    classes: &[impl AsRef<k8s_openapi::api::networking::v1::IngressClass>],
) -> bool {
    let annotation = |metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
                      key: &str| {
        metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .cloned()
    };
    let named = ingress
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.clone())
        .or_else(|| annotation(&ingress.metadata, "kubernetes.io/ingress.class"));
    match named {
        Some(named) => named == class,
        None => classes.iter().map(AsRef::as_ref).any(|c| {
            c.metadata.name.as_deref() == Some(class)
                && annotation(&c.metadata, "ingressclass.kubernetes.io/is-default-class").as_deref()
                    == Some("true")
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn selectors_combine_labels_and_expressions() {
        let selector: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "edge"]},
                {"key": "canary", "operator": "DoesNotExist"},
            ],
        }))
        .unwrap();
        assert!(selects(
            &selector,
            &labels(&[("app", "web"), ("tier", "edge")])
        ));
        assert!(!selects(
            &selector,
            &labels(&[("app", "web"), ("tier", "back")])
        ));
        assert!(!selects(
            &selector,
            &labels(&[("app", "web"), ("tier", "front"), ("canary", "1")])
        ));
        assert!(!selects(&selector, &None));
        assert!(selects(&LabelSelector::default(), &None));
    }

    #[test]
    fn a_label_set_reads_as_the_map_it_was_made_from() {
        let pairs = [("tier", "edge"), ("app", "web"), ("canary", "1")];
        let set: LabelSet = pairs.into_iter().collect();
        let map = labels(&pairs);
        for key in ["app", "tier", "canary", "zone", ""] {
            assert_eq!(set.value(key), map.value(key), "{key}");
        }
        let keys: Vec<&str> = set.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["app", "canary", "tier"]);
        let selector: LabelSelector =
            serde_json::from_value(json!({"matchLabels": {"app": "web", "tier": "edge"}})).unwrap();
        assert!(selects(&selector, &set));
        assert!(!selects(&selector, &LabelSet::default()));
    }

    #[test]
    fn node_operators_compare_numbers() {
        let five = ["5".to_string()];
        assert!(requirement_holds("Gt", Some("7"), Some(&five)));
        assert!(!requirement_holds("Gt", Some("5"), Some(&five)));
        assert!(requirement_holds("Lt", Some("3"), Some(&five)));
        assert!(!requirement_holds("Lt", Some("x"), Some(&five)));
        assert!(requirement_holds("NotIn", None, Some(&five)));
        assert!(!requirement_holds("Sideways", Some("5"), Some(&five)));
    }
}
