//! CustomResourceDefinitions' structural schemas applied to custom objects, in the order
//! and with the messages of kube-apiserver: fields the schema does not declare are
//! pruned (and reported, so strict field validation can refuse them), defaults fill what
//! is missing, then every value is validated against its schema and, when it passes,
//! against the schema's CEL rules (`x-kubernetes-validations`, in `rules.rs`).
//!
//! Written here rather than taken from a JSON-Schema crate because what Kubernetes does
//! is not plain JSON Schema: pruning, `default`, `nullable` and the `x-kubernetes-*`
//! extensions have no counterpart there, and users compare its error messages with
//! kube-apiserver's.

mod prune;
mod rules;
mod validate;

pub use rules::unrunnable_rules;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde_json::Value;

/// What applying a schema to an object found.
#[derive(Debug, Default, PartialEq)]
pub struct Findings {
    /// The fields pruned for not being in the schema: `spec.foo`.
    pub unknown: Vec<String>,
    /// What is wrong with the values, each a field error in Kubernetes' words:
    /// `spec.replicas: Required value`.
    pub errors: Vec<String>,
    /// CEL rules that could not be run here, so did not judge the object.
    pub warnings: Vec<String>,
}

/// Applies `schema` (a version's `openAPIV3Schema`) to `object`, a whole custom object:
/// prunes it, fills its defaults and validates it — its CEL rules against `old`, the
/// stored object an update changes. `apiVersion`, `kind` and `metadata` are the API
/// server's to check and are left alone.
pub fn apply(schema: &JSONSchemaProps, object: &mut Value, old: Option<&Value>) -> Findings {
    let mut unknown = Vec::new();
    prune::prune_root(schema, object, &mut unknown);
    prune::default(schema, object);
    let mut errors = Vec::new();
    validate::validate_root(schema, object, &mut errors);
    let mut verdicts = rules::Verdicts::default();
    if errors.is_empty() {
        rules::check_root(schema, object, old, &mut verdicts);
    }
    errors.extend(verdicts.errors);
    // In the order of the fields' paths, whatever order the object's fields came in.
    unknown.sort();
    errors.sort();
    Findings {
        unknown,
        errors,
        warnings: verdicts.warnings,
    }
}

/// The schema of the items of an array.
fn items_schema(schema: &JSONSchemaProps) -> Option<&JSONSchemaProps> {
    match schema.items.as_ref()? {
        JSONSchemaPropsOrArray::Schema(items) => Some(items),
        JSONSchemaPropsOrArray::Schemas(items) => items.first(),
    }
}

/// The schema of the values of a map (`additionalProperties` with a schema).
fn values_schema(schema: &JSONSchemaProps) -> Option<&JSONSchemaProps> {
    match schema.additional_properties.as_ref()? {
        JSONSchemaPropsOrBool::Schema(values) => Some(values),
        JSONSchemaPropsOrBool::Bool(_) => None,
    }
}

/// Whether the schema keeps fields it does not declare.
fn preserves_unknown(schema: &JSONSchemaProps) -> bool {
    schema.x_kubernetes_preserve_unknown_fields == Some(true)
        || matches!(
            schema.additional_properties,
            Some(JSONSchemaPropsOrBool::Bool(true))
        )
}

/// A field's path below `parent`: `spec.replicas`.
fn child(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

/// An item's path below `parent`: `spec.ports[0]`.
fn item(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

#[cfg(test)]
mod tests;
