//! Pruning and defaulting, as kube-apiserver's structural pruning and defaulting walk
//! an object: only through what the schema declares.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use serde_json::{Map, Value};

use crate::{child, item, items_schema, preserves_unknown, values_schema};

/// The fields every object (and every embedded resource) has besides its schema's.
const OBJECT_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// Prunes a whole object: its `apiVersion`, `kind` and `metadata` stay.
pub(crate) fn prune_root(schema: &JSONSchemaProps, object: &mut Value, unknown: &mut Vec<String>) {
    prune_object(schema, object, "", &OBJECT_FIELDS, unknown);
}

/// Removes from `value` what `schema` does not declare, recording each field's path.
fn prune(schema: &JSONSchemaProps, value: &mut Value, path: &str, unknown: &mut Vec<String>) {
    let kept: &[&str] = if schema.x_kubernetes_embedded_resource == Some(true) {
        &OBJECT_FIELDS
    } else {
        &[]
    };
    match value {
        Value::Object(_) => prune_object(schema, value, path, kept, unknown),
        Value::Array(values) => {
            if let Some(items) = items_schema(schema) {
                for (index, value) in values.iter_mut().enumerate() {
                    prune(items, value, &item(path, index), unknown);
                }
            }
        }
        _ => {}
    }
}

fn prune_object(
    schema: &JSONSchemaProps,
    value: &mut Value,
    path: &str,
    kept: &[&str],
    unknown: &mut Vec<String>,
) {
    let Value::Object(fields) = value else {
        return;
    };
    let properties = schema.properties.as_ref();
    let values = values_schema(schema);
    let preserve = preserves_unknown(schema);
    fields.retain(|name, _| {
        let declared = kept.contains(&name.as_str())
            || properties.is_some_and(|p| p.contains_key(name))
            || values.is_some();
        if !declared && !preserve {
            unknown.push(child(path, name));
        }
        declared || preserve
    });
    for (name, value) in fields.iter_mut() {
        let below = properties.and_then(|p| p.get(name)).or(values);
        if let Some(below) = below {
            prune(below, value, &child(path, name), unknown);
        }
    }
}

/// Fills in the defaults of fields left out, then those within them.
pub(crate) fn default(schema: &JSONSchemaProps, value: &mut Value) {
    match value {
        Value::Object(fields) => default_fields(schema, fields),
        Value::Array(values) => {
            if let Some(items) = items_schema(schema) {
                for value in values {
                    default(items, value);
                }
            }
        }
        _ => {}
    }
}

fn default_fields(schema: &JSONSchemaProps, fields: &mut Map<String, Value>) {
    for (name, property) in schema.properties.iter().flatten() {
        // A null where the schema allows none is dropped, as kube-apiserver drops it,
        // so the default (if any) takes its place.
        if fields.get(name).is_some_and(Value::is_null) && property.nullable != Some(true) {
            fields.remove(name);
        }
        if !fields.contains_key(name)
            && let Some(default) = &property.default
        {
            fields.insert(name.clone(), default.0.clone());
        }
        if let Some(value) = fields.get_mut(name) {
            default(property, value);
        }
    }
    if let Some(values) = values_schema(schema) {
        for value in fields.values_mut() {
            default(values, value);
        }
    }
}
