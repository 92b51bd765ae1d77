//! CEL expressions over Kubernetes objects, for the three places kube-apiserver runs
//! them: CustomResourceDefinitions' validation rules, ValidatingAdmissionPolicies and
//! admission webhooks' match conditions. The language is the `cel` crate's (cel-rust);
//! this crate binds JSON objects as CEL values the way Kubernetes does (integers as
//! `int`, objects as maps keyed by field name) and words what went wrong.
//!
//! The crate lacks Kubernetes' CEL libraries (`isURL`, `quantity`, `format`, the
//! `authorizer`…): an expression calling one fails to run, and callers decide what that
//! means where they stand — a warning for a validation rule, the failure policy for an
//! admission policy.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

/// An expression, parsed once.
pub struct Expression {
    program: cel::Program,
}

impl Expression {
    /// `source` parsed; the parser's complaint when it is not an expression.
    pub fn parse(source: &str) -> Result<Self, String> {
        cel::Program::compile(source)
            .map(|program| Self { program })
            .map_err(|e| e.to_string())
    }

    /// Whether the expression reads the variable `name` (`oldSelf`: a transition rule).
    pub fn reads(&self, name: &str) -> bool {
        self.program.references().has_variable(name)
    }

    /// The expression's value with `bindings` as its variables.
    pub fn evaluate(&self, bindings: &[(&str, &Value)]) -> Result<cel::Value, String> {
        let mut context = cel::Context::default();
        for (name, value) in bindings {
            context.add_variable_from_value(*name, to_cel(value));
        }
        self.program.execute(&context).map_err(|e| e.to_string())
    }

    /// The expression's truth: an error when it is not a boolean.
    pub fn holds(&self, bindings: &[(&str, &Value)]) -> Result<bool, String> {
        match self.evaluate(bindings)? {
            cel::Value::Bool(truth) => Ok(truth),
            other => Err(format!("it gave {other:?}, not a boolean")),
        }
    }

    /// The expression's value as JSON (an admission policy's variables, which later
    /// expressions read).
    pub fn evaluate_json(&self, bindings: &[(&str, &Value)]) -> Result<Value, String> {
        self.evaluate(bindings).map(|value| to_json(&value))
    }

    /// The expression's text, for messages built by expressions (`messageExpression`);
    /// None when it is empty or not a string.
    pub fn text(&self, bindings: &[(&str, &Value)]) -> Option<String> {
        match self.evaluate(bindings).ok()? {
            cel::Value::String(text) if !text.is_empty() => Some(text.to_string()),
            _ => None,
        }
    }
}

/// A JSON value as Kubernetes' CEL sees it: integers as `int`, objects as maps with
/// string keys.
fn to_cel(value: &Value) -> cel::Value {
    match value {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(int), _) => cel::Value::Int(int),
            (None, Some(uint)) => cel::Value::UInt(uint),
            _ => cel::Value::Float(n.as_f64().unwrap_or_default()),
        },
        Value::String(text) => cel::Value::String(Arc::new(text.clone())),
        Value::Array(items) => cel::Value::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(fields) => {
            let map: HashMap<String, cel::Value> = fields
                .iter()
                .map(|(key, value)| (key.clone(), to_cel(value)))
                .collect();
            cel::Value::from(map)
        }
    }
}

/// A CEL value as JSON: what a value of JSON's own kinds is; null for the rest
/// (functions, opaque values).
fn to_json(value: &cel::Value) -> Value {
    match value {
        cel::Value::Bool(b) => Value::from(*b),
        cel::Value::Int(int) => Value::from(*int),
        cel::Value::UInt(uint) => Value::from(*uint),
        cel::Value::Float(float) => Value::from(*float),
        cel::Value::String(text) => Value::from(text.as_str()),
        cel::Value::List(items) => Value::Array(items.iter().map(to_json).collect()),
        cel::Value::Map(map) => Value::Object(
            map.map
                .iter()
                .map(|(key, value)| (key_text(key), to_json(value)))
                .collect(),
        ),
        _ => Value::Null,
    }
}

fn key_text(key: &cel::objects::Key) -> String {
    match key {
        cel::objects::Key::String(text) => text.to_string(),
        cel::objects::Key::Int(int) => int.to_string(),
        cel::objects::Key::Uint(uint) => uint.to_string(),
        cel::objects::Key::Bool(b) => b.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn objects_are_read_as_kubernetes_cel_reads_them() {
        let object = json!({"spec": {"replicas": 3, "ports": [80, 443], "name": "web"}});
        let bindings = [("object", &object)];
        for (source, expected) in [
            ("object.spec.replicas <= 5", true),
            ("object.spec.ports.all(p, p > 0)", true),
            ("has(object.spec.image)", false),
            (
                "object.spec.name.startsWith('w') && size(object.spec.ports) == 2",
                true,
            ),
        ] {
            let expression = Expression::parse(source).unwrap();
            assert_eq!(expression.holds(&bindings), Ok(expected), "{source}");
        }
        let message = Expression::parse("'replicas: ' + string(object.spec.replicas)").unwrap();
        assert_eq!(message.text(&bindings).as_deref(), Some("replicas: 3"));
        assert!(Expression::parse("object.spec.").is_err());
        let library = Expression::parse("isURL(object.spec.name)").unwrap();
        assert!(library.holds(&bindings).is_err());
        assert!(
            Expression::parse("self == oldSelf")
                .unwrap()
                .reads("oldSelf")
        );
    }
}
