//! CEL validation rules (`x-kubernetes-validations`), evaluated as kube-apiserver
//! evaluates them: at each value whose schema has rules, with `self` bound to the value
//! (a whole object's `metadata` narrowed to its name and generateName) and `oldSelf` to
//! the same value before an update — rules that name `oldSelf` are transition rules,
//! checked only when there was an old value. The expressions run through berth-cel; a
//! rule it cannot run (a Kubernetes library function it lacks, such as `isURL` or
//! `quantity`) is let through with a warning rather than refusing what kube-apiserver
//! might accept.

use berth_cel::Expression;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, ValidationRule,
};
use serde_json::Value;

use crate::validate::type_of;
use crate::{child, items_schema, values_schema};

/// What the rules said of an object: refusals, and rules that could not be run.
#[derive(Default)]
pub(crate) struct Verdicts {
    pub(crate) errors: Vec<String>,
    pub(crate) warnings: Vec<String>,
}

/// Checks the rules of a whole object (and of everything in it) against `old`, its
/// stored version when this is an update.
pub(crate) fn check_root(
    schema: &JSONSchemaProps,
    object: &Value,
    old: Option<&Value>,
    verdicts: &mut Verdicts,
) {
    let root_view = |object: &Value| {
        let mut view = object.clone();
        if let Some(metadata) = object["metadata"].as_object() {
            let kept = ["name", "generateName"]
                .iter()
                .filter_map(|k| Some((k.to_string(), metadata.get(*k)?.clone())))
                .collect();
            view["metadata"] = Value::Object(kept);
        }
        view
    };
    let old_view = old.map(root_view);
    check_rules(schema, &root_view(object), old_view.as_ref(), "", verdicts);
    let Value::Object(fields) = object else {
        return;
    };
    for (name, value) in fields.iter().filter(|(name, _)| *name != "metadata") {
        let below = schema.properties.as_ref().and_then(|p| p.get(name));
        if let Some(below) = below {
            let old = old.and_then(|o| o.get(name));
            check(below, value, old, &child("", name), verdicts);
        }
    }
}

/// Checks the rules of `value` and of what it holds.
fn check(
    schema: &JSONSchemaProps,
    value: &Value,
    old: Option<&Value>,
    path: &str,
    verdicts: &mut Verdicts,
) {
    check_rules(schema, value, old, path, verdicts);
    match value {
        Value::Object(fields) => {
            for (name, field) in fields {
                let below = schema
                    .properties
                    .as_ref()
                    .and_then(|p| p.get(name))
                    .or_else(|| values_schema(schema));
                if let Some(below) = below {
                    let old = old.and_then(|o| o.get(name));
                    check(below, field, old, &child(path, name), verdicts);
                }
            }
        }
        Value::Array(items) => {
            let Some(below) = items_schema(schema) else {
                return;
            };
            for (index, item) in items.iter().enumerate() {
                let old = old.and_then(|o| correlated(schema, item, o));
                check(below, item, old, &format!("{path}[{index}]"), verdicts);
            }
        }
        _ => {}
    }
}

/// The old item an item of a `x-kubernetes-list-type: map` list was, by its keys: only
/// such items have an old self.
fn correlated<'a>(schema: &JSONSchemaProps, item: &Value, old: &'a Value) -> Option<&'a Value> {
    if schema.x_kubernetes_list_type.as_deref() != Some("map") {
        return None;
    }
    let keys = schema.x_kubernetes_list_map_keys.as_ref()?;
    old.as_array()?
        .iter()
        .find(|candidate| keys.iter().all(|k| candidate.get(k) == item.get(k)))
}

fn check_rules(
    schema: &JSONSchemaProps,
    value: &Value,
    old: Option<&Value>,
    path: &str,
    verdicts: &mut Verdicts,
) {
    for rule in schema.x_kubernetes_validations.iter().flatten() {
        match evaluate(&rule.rule, value, old) {
            Outcome::Passed | Outcome::NotApplicable => {}
            Outcome::Failed => verdicts.errors.push(refusal(rule, value, old, path)),
            Outcome::Unrunnable(why) => verdicts.warnings.push(format!(
                "{}: the validation rule {:?} was not evaluated: {why}",
                shown_path(path),
                rule.rule
            )),
        }
    }
}

/// What running a rule came to.
enum Outcome {
    Passed,
    Failed,
    /// A transition rule on a value that had no old self.
    NotApplicable,
    /// The rule does not parse or run here.
    Unrunnable(String),
}

/// Runs `rule` with `self` and `oldSelf` bound.
fn evaluate(rule: &str, value: &Value, old: Option<&Value>) -> Outcome {
    let expression = match Expression::parse(rule) {
        Ok(expression) => expression,
        Err(error) => return Outcome::Unrunnable(error),
    };
    if expression.reads("oldSelf") && old.is_none() {
        return Outcome::NotApplicable;
    }
    match expression.holds(&bindings(value, old)) {
        Ok(true) => Outcome::Passed,
        Ok(false) => Outcome::Failed,
        Err(error) => Outcome::Unrunnable(error),
    }
}

/// `self`, and `oldSelf` when there is one.
fn bindings<'a>(value: &'a Value, old: Option<&'a Value>) -> Vec<(&'static str, &'a Value)> {
    let mut bindings = vec![("self", value)];
    bindings.extend(old.map(|old| ("oldSelf", old)));
    bindings
}

/// The field error of a failed rule, as kube-apiserver words it.
fn refusal(rule: &ValidationRule, value: &Value, old: Option<&Value>, path: &str) -> String {
    let message = rule
        .message_expression
        .as_deref()
        .and_then(|source| Expression::parse(source).ok()?.text(&bindings(value, old)))
        .or_else(|| rule.message.clone().filter(|m| !m.is_empty()))
        .unwrap_or_else(|| format!("failed rule: {}", rule.rule));
    let field = match rule.field_path.as_deref() {
        Some(relative) if !relative.is_empty() => child(path, relative.trim_start_matches('.')),
        _ => path.to_string(),
    };
    let field = shown_path(&field);
    let kind = type_of(value);
    match rule.reason.as_deref() {
        Some("FieldValueForbidden") => format!("{field}: Forbidden: {message}"),
        Some("FieldValueRequired") => format!("{field}: Required value: {message}"),
        Some("FieldValueDuplicate") => format!("{field}: Duplicate value: \"{kind}\": {message}"),
        _ => format!("{field}: Invalid value: \"{kind}\": {message}"),
    }
}

/// A path as field errors show it: `<nil>` for the object itself.
fn shown_path(path: &str) -> &str {
    if path.is_empty() { "<nil>" } else { path }
}

/// The rules of a schema (and of the schemas inside it) that cannot be run here, each
/// with why: what a definition's author is told when it is created.
pub fn unrunnable_rules(schema: &JSONSchemaProps, path: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (index, rule) in schema.x_kubernetes_validations.iter().flatten().enumerate() {
        if let Err(error) = Expression::parse(&rule.rule) {
            found.push(format!(
                "{path}.x-kubernetes-validations[{index}].rule: not evaluated by this server: {error}"
            ));
        }
    }
    for (name, below) in schema.properties.iter().flatten() {
        found.extend(unrunnable_rules(
            below,
            &format!("{path}.properties[{name}]"),
        ));
    }
    if let Some(items) = items_schema(schema) {
        found.extend(unrunnable_rules(items, &format!("{path}.items")));
    }
    if let Some(values) = values_schema(schema) {
        found.extend(unrunnable_rules(
            values,
            &format!("{path}.additionalProperties"),
        ));
    }
    found
}
