use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use serde_json::{Value, json};

use crate::{Findings, apply};

/// The CronTab of Kubernetes' CustomResourceDefinition guide, with a few more rules.
fn crontab() -> JSONSchemaProps {
    serde_json::from_value(json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["cronSpec"],
                "properties": {
                    "cronSpec": {"type": "string", "pattern": "^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$"},
                    "image": {"type": "string", "maxLength": 20},
                    "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                    "policy": {"type": "string", "enum": ["Allow", "Forbid"]},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "ports": {"type": "array", "maxItems": 2, "x-kubernetes-list-type": "set",
                              "items": {"type": "integer"}},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "port": {"x-kubernetes-int-or-string": true},
                    "note": {"type": "string", "nullable": true},
                },
            },
            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
        },
    }))
    .unwrap()
}

fn applied(object: Value) -> (Value, Findings) {
    let mut object = object;
    let findings = apply(&crontab(), &mut object, None);
    (object, findings)
}

#[test]
fn unknown_fields_are_pruned_and_named_but_object_fields_and_preserved_ones_stay() {
    let (object, findings) = applied(json!({
        "apiVersion": "stable.example.com/v1", "kind": "CronTab",
        "metadata": {"name": "a"},
        "spec": {"cronSpec": "* * * * */5", "colour": "red", "extra": {"anything": [1]},
                 "labels": {"team": "a"}},
        "unexpected": true,
    }));
    assert_eq!(findings.unknown, ["spec.colour", "unexpected"]);
    assert!(findings.errors.is_empty(), "{findings:?}");
    assert_eq!(object["spec"]["extra"], json!({"anything": [1]}));
    assert_eq!(object["metadata"]["name"], "a");
    assert!(object["spec"].get("colour").is_none());
}

#[test]
fn defaults_fill_missing_and_null_fields_but_not_nullable_ones() {
    let (object, _) = applied(json!({"spec": {"cronSpec": "* * * * *", "note": null}}));
    assert_eq!(object["spec"]["replicas"], 1);
    assert_eq!(object["spec"]["note"], Value::Null);
    let (object, _) = applied(json!({"spec": {"cronSpec": "* * * * *", "replicas": null}}));
    assert_eq!(object["spec"]["replicas"], 1);
}

#[test]
fn values_are_checked_with_kube_apiservers_messages() {
    let (_, findings) = applied(json!({"spec": {
        "cronSpec": "every minute", "replicas": "two", "image": "a-very-long-image-name:latest",
        "policy": "Maybe", "ports": [80, 80, 443], "port": true, "labels": {"team": 1},
    }}));
    assert_eq!(
        findings.errors,
        [
            "spec.cronSpec: Invalid value: \"every minute\": spec.cronSpec in body should match '^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$'",
            "spec.image: Too long: may not be longer than 20",
            "spec.labels.team: Invalid value: \"integer\": spec.labels.team in body must be of type string: \"integer\"",
            "spec.policy: Unsupported value: \"Maybe\": supported values: \"Allow\", \"Forbid\"",
            "spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer-or-string: \"boolean\"",
            "spec.ports: Too many: 3: must have at most 2 items",
            "spec.ports[1]: Duplicate value: 80",
            "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"",
        ]
    );
    let (_, findings) = applied(json!({"spec": {"replicas": 0}}));
    assert_eq!(
        findings.errors,
        [
            "spec.cronSpec: Required value",
            "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
        ]
    );
}

#[test]
fn a_valid_object_passes_whole() {
    let given = json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab",
        "metadata": {"name": "a"},
        "spec": {"cronSpec": "*/5 * * * *", "replicas": 3, "port": "http", "ports": [80]},
        "status": {"ready": true}});
    let (object, findings) = applied(given.clone());
    assert_eq!(findings, Findings::default());
    assert_eq!(object, given);
}

/// A gateway-like schema with CEL rules at the root, on an object and on list items.
fn with_rules() -> JSONSchemaProps {
    serde_json::from_value(json!({
        "type": "object",
        "x-kubernetes-validations": [
            {"rule": "self.metadata.name.startsWith('gw-')", "message": "names start with gw-"},
        ],
        "properties": {
            "spec": {
                "type": "object",
                "x-kubernetes-validations": [
                    {"rule": "self.listeners.all(l, l.port > 0)", "messageExpression": "'ports must be positive, not ' + string(self.listeners[0].port)"},
                    {"rule": "self.class == oldSelf.class", "message": "class is immutable", "reason": "FieldValueForbidden"},
                ],
                "properties": {
                    "class": {"type": "string"},
                    "listeners": {"type": "array", "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {"type": "object",
                            "x-kubernetes-validations": [{"rule": "self.name.size() <= 8"}],
                            "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}},
                },
            },
        },
    }))
    .unwrap()
}

fn judged(object: Value, old: Option<Value>) -> Findings {
    let mut object = object;
    apply(&with_rules(), &mut object, old.as_ref())
}

#[test]
fn cel_rules_refuse_in_kube_apiserver_s_words() {
    let gateway = |name: &str, class: &str, listener: &str, port: i64| {
        json!({"apiVersion": "example.com/v1", "kind": "Gateway", "metadata": {"name": name},
               "spec": {"class": class, "listeners": [{"name": listener, "port": port}]}})
    };
    assert_eq!(
        judged(gateway("gw-a", "x", "http", 80), None),
        Findings::default()
    );
    let findings = judged(gateway("a", "x", "a-long-listener", -1), None);
    assert_eq!(
        findings.errors,
        [
            "<nil>: Invalid value: \"object\": names start with gw-",
            "spec.listeners[0]: Invalid value: \"object\": failed rule: self.name.size() <= 8",
            "spec: Invalid value: \"object\": ports must be positive, not -1",
        ]
    );
    // The transition rule only judges updates.
    let old = gateway("gw-a", "x", "http", 80);
    let findings = judged(gateway("gw-a", "y", "http", 80), Some(old));
    assert_eq!(findings.errors, ["spec: Forbidden: class is immutable"]);
}

#[test]
fn rules_this_server_cannot_run_warn_instead_of_refusing() {
    let mut schema = with_rules();
    schema.x_kubernetes_validations = Some(vec![
        serde_json::from_value(json!({"rule": "isURL(self.metadata.name)"})).unwrap(),
    ]);
    let mut object = json!({"metadata": {"name": "gw-a"}, "spec": {"class": "x", "listeners": []}});
    let findings = apply(&schema, &mut object, None);
    assert!(findings.errors.is_empty(), "{findings:?}");
    assert_eq!(findings.warnings.len(), 1);
    assert!(
        findings.warnings[0].starts_with(
            "<nil>: the validation rule \"isURL(self.metadata.name)\" was not evaluated"
        ),
        "{findings:?}"
    );
}
