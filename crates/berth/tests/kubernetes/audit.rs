//! Audit logging as kube-apiserver's `--audit-policy-file` and `--audit-log-path` give
//! it: a policy written the way clusters publish theirs decides what is recorded, in
//! how much detail, and each recorded request is a JSON line of audit.k8s.io/v1.

use std::process::Command;

use berth_testkit::guard::Scratch;
use serde_json::Value;

use crate::server::Server;

const POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
omitStages:
- RequestReceived
rules:
- level: None
  nonResourceURLs: ["/healthz*", "/readyz*", "/livez*", "/version", "/openapi*", "/api", "/apis*"]
- level: Metadata
  resources:
  - group: ""
    resources: ["secrets"]
- level: RequestResponse
  omitManagedFields: true
  resources:
  - group: ""
    resources: ["configmaps"]
- level: Request
  resources:
  - group: ""
    resources: ["pods"]
- level: Metadata
"#;

/// The audit log's events.
fn events(log: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The events of `verb` on `resource`.
fn of<'a>(events: &'a [Value], verb: &str, resource: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["verb"] == verb && e["objectRef"]["resource"] == resource)
        .collect()
}

#[test]
fn the_audit_policy_decides_what_the_log_records() {
    let files = Scratch::new("audit-policy").unwrap();
    let policy = files.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let log = files.path().join("audit.log");
    let server = Server::start_with(
        "audit",
        false,
        &[
            "--audit-policy-file",
            policy.to_str().unwrap(),
            "--audit-log-path",
            log.to_str().unwrap(),
        ],
    );
    server.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "db",
        "--from-literal=password=hunter2",
    ]);
    server.kubectl_ok(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=mode=fast",
    ]);
    server.kubectl_ok(&["create", "namespace", "audited"]);
    server.kubectl_ok(&[
        "label",
        "namespace",
        "audited",
        "pod-security.kubernetes.io/audit=restricted",
    ]);
    server.kubectl_ok(&["run", "web", "-n", "audited", "--image=busybox"]);
    let viewer = server.token("viewer-token");
    let refused = server.kubectl_as(&viewer, &["delete", "configmap", "settings"]);
    assert!(!refused.status.success());

    let events = events(&log);
    assert!(
        events.iter().all(|e| e["stage"] != "RequestReceived"
            && e["apiVersion"] == "audit.k8s.io/v1"
            && e["kind"] == "Event"),
        "{events:#?}"
    );
    assert!(
        events.iter().all(|e| e["requestURI"] != "/version"),
        "{events:#?}"
    );
    // Secrets at Metadata: who did what, never the data.
    let secret = of(&events, "create", "secrets");
    assert_eq!(secret.len(), 1, "{events:#?}");
    assert_eq!(secret[0]["level"], "Metadata");
    assert_eq!(secret[0]["user"]["username"], "system:admin");
    assert_eq!(secret[0]["responseStatus"]["code"], 201);
    assert_eq!(secret[0]["objectRef"]["namespace"], "default");
    assert!(secret[0].get("requestObject").is_none());
    assert!(
        !serde_json::to_string(&events)
            .unwrap()
            .contains("aHVudGVyMg")
    );
    assert_eq!(secret[0]["sourceIPs"][0], "127.0.0.1");
    assert!(
        secret[0]["userAgent"]
            .as_str()
            .unwrap()
            .starts_with("kubectl"),
        "{}",
        secret[0]
    );
    // ConfigMaps with both bodies, managed fields left out.
    let configmap = of(&events, "create", "configmaps");
    assert_eq!(configmap[0]["level"], "RequestResponse");
    assert_eq!(
        configmap[0]["requestObject"]["data"]["mode"], "fast",
        "{}",
        configmap[0]
    );
    let response = &configmap[0]["responseObject"];
    assert_eq!(response["metadata"]["name"], "settings");
    assert!(
        response["metadata"].get("managedFields").is_none(),
        "{response}"
    );
    // A refusal is recorded as one.
    let deleted = of(&events, "delete", "configmaps");
    assert_eq!(deleted[0]["responseStatus"]["code"], 403);
    assert_eq!(
        deleted[0]["annotations"]["authorization.k8s.io/decision"],
        "forbid"
    );
    // PodSecurity's audit mode notes the pod that breaks the restricted level.
    let pod = of(&events, "create", "pods");
    assert_eq!(pod[0]["level"], "Request");
    assert_eq!(pod[0]["requestObject"]["metadata"]["name"], "web");
    let violations = pod[0]["annotations"]["pod-security.kubernetes.io/audit-violations"]
        .as_str()
        .unwrap_or_default();
    assert!(
        violations.starts_with("would violate PodSecurity \"restricted:latest\": "),
        "{}",
        pod[0]
    );

    // A watch is recorded when it starts and when it ends.
    server.kubectl(&["get", "configmaps", "--watch", "--request-timeout=1s"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let events = crate::audit::events(&log);
        let stages: Vec<&Value> = events
            .iter()
            .filter(|e| e["verb"] == "watch")
            .filter(|e| e["requestURI"].as_str().unwrap().contains("timeout=1s"))
            .map(|e| &e["stage"])
            .collect();
        if stages == ["ResponseStarted", "ResponseComplete"] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{stages:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_policy_with_a_field_it_does_not_know_stops_the_server_naming_it() {
    let files = Scratch::new("audit-bad-policy").unwrap();
    let policy = files.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  resourceGroups: [apps]\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args([
            "server",
            "--disable-agent",
            "--bind",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(files.path().join("data"))
        .arg("--audit-policy-file")
        .arg(&policy)
        .args(["--audit-log-path", "-"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown field `resourceGroups`"),
        "{stderr}"
    );
}
