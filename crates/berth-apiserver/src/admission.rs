//! What both kinds of dynamic admission share — admission webhooks (`webhooks.rs`) and
//! ValidatingAdmissionPolicies (`policies.rs`): the write being admitted, whether a
//! rule and the namespace and object selectors take it in, the `request` an
//! AdmissionReview (and CEL) sees of it, and the CEL every admission expression sees —
//! `object`, `oldObject`, `request`, `params`, `namespaceObject`, `variables` — with
//! the `matchConditions` both kinds check before anything else.

use berth_cel::Expression;
use k8s_openapi::api::admissionregistration::v1::{MatchCondition, RuleWithOperations};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Value, json};

use crate::Shared;
use crate::identity::UserInfo;
use crate::kinds::Hooks;
use crate::resources::Resource;

/// What a write does, as AdmissionReviews name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        }
    }

    /// The options kind a review carries for it.
    pub(crate) fn options_kind(self) -> &'static str {
        match self {
            Operation::Create => "CreateOptions",
            Operation::Update => "UpdateOptions",
            Operation::Delete => "DeleteOptions",
        }
    }
}

/// One write, as the webhooks are asked about it.
pub(crate) struct Write<'a> {
    pub(crate) operation: Operation,
    pub(crate) resource: &'a Resource,
    pub(crate) subresource: Option<&'a str>,
    pub(crate) namespace: Option<&'a str>,
    pub(crate) name: &'a str,
    pub(crate) user: UserInfo,
    pub(crate) dry_run: bool,
}

/// What decides whether an admission check applies to a write: its rules, and the
/// selectors of namespaces and objects.
pub(crate) struct Scope<'a> {
    pub(crate) rules: &'a [RuleWithOperations],
    pub(crate) namespace_selector: Option<&'a LabelSelector>,
    pub(crate) object_selector: Option<&'a LabelSelector>,
}

/// Whether `write` is in `scope`: a rule matches its operation and resource, and its
/// namespace and the object (new or old) are selected.
pub(crate) fn in_scope(
    shared: &Shared,
    scope: &Scope<'_>,
    write: &Write<'_>,
    (object, old): (&Value, Option<&Value>),
) -> bool {
    let resource = match write.subresource {
        Some(sub) => format!("{}/{sub}", write.resource.plural),
        None => write.resource.plural.clone(),
    };
    let ruled = scope
        .rules
        .iter()
        .any(|rule| rule_matches(rule, write, &resource));
    if !ruled {
        return false;
    }
    let labels_of = |value: &Value| -> berth_labels::Labels {
        serde_json::from_value(value["metadata"]["labels"].clone()).ok()
    };
    if let Some(selector) = scope.object_selector {
        let selected = [Some(object), old]
            .into_iter()
            .flatten()
            .filter(|o| !o.is_null())
            .any(|o| berth_labels::selects(selector, &labels_of(o)));
        if !selected {
            return false;
        }
    }
    let Some(selector) = scope.namespace_selector else {
        return true;
    };
    let namespace_labels = match (write.namespace, write.resource.hooks()) {
        (Some(namespace), _) => shared
            .cache
            .typed::<Namespace>(&format!("/registry/namespaces/{namespace}"))
            .and_then(|n| n.metadata.labels),
        // A namespace is selected by its own labels; other cluster objects always are.
        (None, Hooks::Namespaces) => labels_of(object),
        (None, _) => return true,
    };
    berth_labels::selects(selector, &namespace_labels)
}

fn rule_matches(rule: &RuleWithOperations, write: &Write<'_>, resource: &str) -> bool {
    let any = |list: &Option<Vec<String>>, wanted: &str| {
        list.iter()
            .flatten()
            .any(|item| item == "*" || item == wanted)
    };
    let resources = rule.resources.iter().flatten().any(|pattern| {
        pattern == "*/*"
            || pattern == resource
            || (pattern == "*" && write.subresource.is_none())
            || match pattern.split_once('/') {
                Some((plural, "*")) => {
                    plural == write.resource.plural && write.subresource.is_some()
                }
                Some(("*", sub)) => write.subresource == Some(sub),
                _ => false,
            }
    });
    let scope = match rule.scope.as_deref() {
        Some("Cluster") => !write.resource.namespaced,
        Some("Namespaced") => write.resource.namespaced,
        _ => true,
    };
    any(&rule.operations, write.operation.name())
        && any(&rule.api_groups, &write.resource.group)
        && any(&rule.api_versions, &write.resource.version)
        && resources
        && scope
}

/// What a review's `request` says of `write` besides its objects: also CEL's `request`.
pub(crate) fn request_of(write: &Write<'_>, uid: &str) -> Value {
    let resource = write.resource;
    let kind = json!({"group": resource.group, "version": resource.version, "kind": resource.kind});
    let gvr =
        json!({"group": resource.group, "version": resource.version, "resource": resource.plural});
    let mut request = json!({
        "uid": uid,
        "kind": kind,
        "resource": gvr,
        "requestKind": kind,
        "requestResource": gvr,
        "name": write.name,
        "operation": write.operation.name(),
        "userInfo": write.user,
        "dryRun": write.dry_run,
        "options": {"kind": write.operation.options_kind(), "apiVersion": "meta.k8s.io/v1"},
    });
    if let Some(namespace) = write.namespace {
        request["namespace"] = json!(namespace);
    }
    if let Some(sub) = write.subresource {
        request["subResource"] = json!(sub);
        request["requestSubResource"] = json!(sub);
    }
    request
}

/// The variables of an admission expression.
pub(crate) struct Bindings {
    pub(crate) object: Value,
    pub(crate) old_object: Value,
    pub(crate) request: Value,
    pub(crate) namespace_object: Value,
    pub(crate) params: Value,
    pub(crate) variables: Value,
}

impl Bindings {
    /// What expressions about `write` see: the object (null for a delete), the old one
    /// (null for a create), the request and the namespace.
    pub(crate) fn new(
        shared: &Shared,
        write: &Write<'_>,
        (object, old): (&Value, Option<&Value>),
    ) -> Self {
        let namespace_object = write
            .namespace
            .and_then(|namespace| {
                shared
                    .cache
                    .typed::<Value>(&format!("/registry/namespaces/{namespace}"))
            })
            .unwrap_or(Value::Null);
        let object = match write.operation {
            Operation::Delete => Value::Null,
            _ => object.clone(),
        };
        Self {
            object,
            old_object: old.cloned().unwrap_or(Value::Null),
            request: request_of(write, ""),
            namespace_object,
            params: Value::Null,
            variables: Value::Object(Default::default()),
        }
    }

    pub(crate) fn list(&self) -> [(&'static str, &Value); 6] {
        [
            ("object", &self.object),
            ("oldObject", &self.old_object),
            ("request", &self.request),
            ("namespaceObject", &self.namespace_object),
            ("params", &self.params),
            ("variables", &self.variables),
        ]
    }
}

/// Whether every match condition holds; an error names the condition that could not
/// be run.
pub(crate) fn conditions_met(
    conditions: &[MatchCondition],
    bindings: &Bindings,
) -> Result<bool, String> {
    for condition in conditions {
        let holds = Expression::parse(&condition.expression)
            .and_then(|expression| expression.holds(&bindings.list()))
            .map_err(|e| format!("matchCondition {:?} failed: {e}", condition.name))?;
        if !holds {
            return Ok(false);
        }
    }
    Ok(true)
}

/// What is wrong with match conditions, `at` their path: expressions that do not parse.
pub(crate) fn condition_problems(conditions: &[MatchCondition], at: &str) -> Vec<String> {
    let expressions = conditions.iter().map(|c| c.expression.as_str());
    expression_problems(expressions, at)
}

/// `{at}[i].expression` for each expression that does not parse.
pub(crate) fn expression_problems<'a>(
    expressions: impl Iterator<Item = &'a str>,
    at: &str,
) -> Vec<String> {
    expressions
        .enumerate()
        .filter_map(|(index, source)| {
            let error = Expression::parse(source).err()?;
            Some(format!(
                "{at}[{index}].expression: Invalid value: {source:?}: compilation failed: {error}"
            ))
        })
        .collect()
}
