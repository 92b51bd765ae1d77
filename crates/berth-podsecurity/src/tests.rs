use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodSpec;
use serde_json::json;

use crate::{Level, violations};

fn spec(value: serde_json::Value) -> PodSpec {
    serde_json::from_value(value).unwrap()
}

fn checked(level: Level, value: serde_json::Value) -> Vec<String> {
    violations(level, &BTreeMap::new(), &spec(value))
}

/// A pod as most manifests write one: no security context at all.
fn plain() -> serde_json::Value {
    json!({"containers": [{"name": "app", "image": "nginx"}]})
}

#[test]
fn a_plain_pod_meets_baseline_but_not_restricted() {
    assert!(checked(Level::Baseline, plain()).is_empty());
    assert_eq!(
        checked(Level::Restricted, plain()),
        [
            r#"allowPrivilegeEscalation != false (container "app" must set securityContext.allowPrivilegeEscalation=false)"#,
            r#"unrestricted capabilities (container "app" must set securityContext.capabilities.drop=["ALL"])"#,
            r#"runAsNonRoot != true (pod or container "app" must set securityContext.runAsNonRoot=true)"#,
            r#"seccompProfile (pod or container "app" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#,
        ]
    );
}

#[test]
fn a_hardened_pod_meets_restricted() {
    let hardened = json!({
        "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "app", "image": "nginx", "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}],
        "volumes": [{"name": "data", "emptyDir": {}}, {"name": "config", "configMap": {"name": "c"}}],
    });
    assert_eq!(checked(Level::Restricted, hardened), Vec::<String>::new());
}

#[test]
fn baseline_refuses_the_host_and_privilege() {
    let escaping = json!({
        "hostNetwork": true, "hostPID": true,
        "securityContext": {"sysctls": [{"name": "net.core.somaxconn", "value": "1024"},
                                        {"name": "net.ipv4.tcp_syncookies", "value": "1"}]},
        "containers": [
            {"name": "a", "image": "x", "ports": [{"containerPort": 80, "hostPort": 8080}],
             "securityContext": {"privileged": true, "capabilities": {"add": ["NET_ADMIN", "CHOWN"]}}},
            {"name": "b", "image": "x", "securityContext": {"privileged": true,
             "seccompProfile": {"type": "Unconfined"}}},
        ],
        "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
    });
    assert_eq!(
        checked(Level::Baseline, escaping),
        [
            r#"non-default capabilities (container "a" must not include "NET_ADMIN" in securityContext.capabilities.add)"#,
            "host namespaces (hostNetwork=true, hostPID=true)",
            r#"hostPath volumes (volume "root")"#,
            r#"hostPort (container "a" uses hostPort 8080)"#,
            r#"privileged (containers "a", "b" must not set securityContext.privileged=true)"#,
            r#"seccompProfile (container "b" must not set securityContext.seccompProfile.type to "Unconfined")"#,
            "forbidden sysctls (net.core.somaxconn)",
        ]
    );
}

#[test]
fn restricted_refuses_root_and_other_volume_types() {
    let root = json!({
        "securityContext": {"runAsNonRoot": true, "runAsUser": 0,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "app", "image": "x", "securityContext": {
            "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}],
        "volumes": [{"name": "nfs", "nfs": {"server": "s", "path": "/"}}],
    });
    assert_eq!(
        checked(Level::Restricted, root),
        [
            r#"restricted volume types (volume "nfs" uses restricted volume type "nfs")"#,
            "runAsUser=0 (pod must not set runAsUser=0)",
        ]
    );
    assert_eq!(Level::parse("restricted"), Some(Level::Restricted));
    assert_eq!(Level::parse("strict"), None);
}
