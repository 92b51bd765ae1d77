//! Validation of values against their schemas, with kube-openapi's messages turned into
//! field errors as kube-apiserver reports them.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use serde_json::Value;

use crate::{child, item, items_schema, values_schema};

/// Validates a whole object; its `apiVersion`, `kind` and `metadata` are the API
/// server's to check.
pub(crate) fn validate_root(schema: &JSONSchemaProps, object: &Value, errors: &mut Vec<String>) {
    let Value::Object(fields) = object else {
        return validate(schema, object, "", errors);
    };
    let mut rest = fields.clone();
    for field in ["apiVersion", "kind", "metadata"] {
        rest.remove(field);
    }
    let mut without_object_fields = schema.clone();
    if let Some(required) = &mut without_object_fields.required {
        required.retain(|r| !matches!(r.as_str(), "apiVersion" | "kind" | "metadata"));
    }
    validate(&without_object_fields, &Value::Object(rest), "", errors);
}

/// The name of a value's JSON type, as the schema's `type` names them.
pub(crate) fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A value as field errors print it: strings quoted, numbers as they are.
fn shown(value: &Value) -> String {
    match value {
        Value::Number(n) if !(n.is_i64() || n.is_u64()) => bound(n.as_f64().unwrap_or_default()),
        other => other.to_string(),
    }
}

/// A bound as kube-openapi prints it (Go's `%v` of a float64): `1`, `0.5`.
fn bound(number: f64) -> String {
    if number.fract() == 0.0 && number.abs() < 1e15 {
        format!("{number:.0}")
    } else {
        number.to_string()
    }
}

/// Whether `value` is of the schema's `type` (`number` takes integers too).
fn has_type(expected: &str, value: &Value) -> bool {
    let actual = type_of(value);
    actual == expected || (expected == "number" && actual == "integer")
}

fn validate(schema: &JSONSchemaProps, value: &Value, path: &str, errors: &mut Vec<String>) {
    let invalid = |errors: &mut Vec<String>, message: String| {
        errors.push(format!(
            "{path}: Invalid value: {}: {path} in body {message}",
            shown(value)
        ));
    };
    if value.is_null() && schema.nullable == Some(true) {
        return;
    }
    if schema.x_kubernetes_int_or_string == Some(true) {
        if !matches!(type_of(value), "integer" | "string") {
            errors.push(format!(
                "{path}: Invalid value: \"{}\": {path} in body must be of type integer-or-string: \"{}\"",
                type_of(value),
                type_of(value)
            ));
        }
    } else if let Some(expected) = schema.type_.as_deref()
        && !has_type(expected, value)
    {
        let actual = type_of(value);
        errors.push(format!(
            "{path}: Invalid value: \"{actual}\": {path} in body must be of type {expected}: \"{actual}\""
        ));
        return;
    }
    if let Some(allowed) = &schema.enum_
        && !allowed.iter().any(|a| a.0 == *value)
    {
        let allowed: Vec<String> = allowed.iter().map(|a| shown(&a.0)).collect();
        errors.push(format!(
            "{path}: Unsupported value: {}: supported values: {}",
            shown(value),
            allowed.join(", ")
        ));
    }
    match value {
        Value::Number(number) => {
            if let Some(problem) = number_problem(schema, number.as_f64().unwrap_or_default()) {
                invalid(errors, problem);
            }
        }
        Value::String(text) => string_problems(schema, text, path, errors, invalid),
        Value::Array(values) => {
            let count = values.len();
            if let Some(max) = schema.max_items
                && count as i64 > max
            {
                errors.push(format!(
                    "{path}: Too many: {count}: must have at most {max} items"
                ));
            }
            if let Some(min) = schema.min_items
                && (count as i64) < min
            {
                invalid(errors, format!("should have at least {min} items"));
            }
            if schema.x_kubernetes_list_type.as_deref() == Some("set") {
                for (index, value) in values.iter().enumerate() {
                    if values[..index].contains(value) {
                        errors.push(format!(
                            "{}: Duplicate value: {}",
                            item(path, index),
                            shown(value)
                        ));
                    }
                }
            }
            if let Some(items) = items_schema(schema) {
                for (index, value) in values.iter().enumerate() {
                    validate(items, value, &item(path, index), errors);
                }
            }
        }
        Value::Object(fields) => {
            for required in schema.required.iter().flatten() {
                if !fields.contains_key(required) {
                    errors.push(format!("{}: Required value", child(path, required)));
                }
            }
            let count = fields.len() as i64;
            if let Some(max) = schema.max_properties
                && count > max
            {
                invalid(errors, format!("should have at most {max} properties"));
            }
            if let Some(min) = schema.min_properties
                && count < min
            {
                invalid(errors, format!("should have at least {min} properties"));
            }
            let properties = schema.properties.as_ref();
            for (name, value) in fields {
                let below = properties
                    .and_then(|p| p.get(name))
                    .or_else(|| values_schema(schema));
                if let Some(below) = below {
                    validate(below, value, &child(path, name), errors);
                }
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
    combinations(schema, value, path, errors, invalid);
}

/// What is wrong with a number by the schema's bounds.
fn number_problem(schema: &JSONSchemaProps, number: f64) -> Option<String> {
    if let Some(min) = schema.minimum {
        if schema.exclusive_minimum == Some(true) && number <= min {
            return Some(format!("should be greater than {}", bound(min)));
        }
        if number < min {
            return Some(format!("should be greater than or equal to {}", bound(min)));
        }
    }
    if let Some(max) = schema.maximum {
        if schema.exclusive_maximum == Some(true) && number >= max {
            return Some(format!("should be less than {}", bound(max)));
        }
        if number > max {
            return Some(format!("should be less than or equal to {}", bound(max)));
        }
    }
    if let Some(factor) = schema.multiple_of
        && factor != 0.0
        && (number / factor).fract() != 0.0
    {
        return Some(format!("should be a multiple of {}", bound(factor)));
    }
    None
}

fn string_problems(
    schema: &JSONSchemaProps,
    text: &str,
    path: &str,
    errors: &mut Vec<String>,
    invalid: impl Fn(&mut Vec<String>, String),
) {
    let length = text.chars().count() as i64;
    if let Some(max) = schema.max_length
        && length > max
    {
        errors.push(format!("{path}: Too long: may not be longer than {max}"));
    }
    if let Some(min) = schema.min_length
        && length < min
    {
        invalid(errors, format!("should be at least {min} chars long"));
    }
    if let Some(pattern) = &schema.pattern {
        // A pattern the definition's own check let through always compiles; one that
        // does not cannot be matched, which kube-apiserver reports the same way.
        let matches = regex::Regex::new(pattern).is_ok_and(|r| r.is_match(text));
        if !matches {
            invalid(errors, format!("should match '{pattern}'"));
        }
    }
}

/// allOf, anyOf, oneOf and not: each alternative validated on its own.
fn combinations(
    schema: &JSONSchemaProps,
    value: &Value,
    path: &str,
    errors: &mut Vec<String>,
    invalid: impl Fn(&mut Vec<String>, String),
) {
    let passes = |alternative: &JSONSchemaProps| {
        let mut found = Vec::new();
        validate(alternative, value, path, &mut found);
        found
    };
    for alternative in schema.all_of.iter().flatten() {
        errors.extend(passes(alternative));
    }
    if let Some(any) = &schema.any_of
        && !any.is_empty()
        && any.iter().all(|a| !passes(a).is_empty())
    {
        invalid(errors, "must validate at least one schema (anyOf)".into());
    }
    if let Some(one) = &schema.one_of {
        let passing = one.iter().filter(|a| passes(a).is_empty()).count();
        if !one.is_empty() && passing != 1 {
            invalid(
                errors,
                "must validate one and only one schema (oneOf)".into(),
            );
        }
    }
    if let Some(not) = &schema.not
        && passes(not).is_empty()
    {
        invalid(errors, "must not validate the schema (not)".into());
    }
}
