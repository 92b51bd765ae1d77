//! The stock kubectl against `berth server` (its dispatcher picks the client matching the
//! server's /version): TLS and the admin kubeconfig, authentication, discovery, tables,
//! create, apply, label, annotate, patch, delete, watch and authorization.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::guard::ChildGuard;

use crate::server::Server;

const MANIFEST: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: team
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: team
data:
  color: blue
  size: large
";

/// `kubectl apply --server-side`: the object made, then changed by field ownership; a
/// field another manager set is a conflict until forced.
fn server_side_apply_suite(server: &Server) {
    let config = |color: &str, extra: &str| {
        server.write(
            "ssa.yaml",
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  namespace: default\ndata:\n  color: {color}\n{extra}"
            ),
        )
    };
    let apply = |file: &str, force: bool| {
        let mut args = vec!["apply", "--server-side", "-f", file];
        if force {
            args.push("--force-conflicts");
        }
        server.kubectl(&args)
    };
    let get =
        |path: &str| server.kubectl_ok(&["get", "cm", "ssa", "-o", &format!("jsonpath={path}")]);
    let applied = apply(&config("blue", "  size: large\n"), false);
    assert_eq!(
        String::from_utf8_lossy(&applied.stdout),
        "configmap/ssa serverside-applied\n"
    );
    assert_eq!(get("{.metadata.managedFields[*].manager}"), "kubectl");
    server.kubectl_ok(&[
        "patch",
        "cm",
        "ssa",
        "--type=merge",
        "-p",
        r#"{"data":{"color":"red"}}"#,
    ]);
    let refused = apply(&config("blue", ""), false);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains(
            r#"Apply failed with 1 conflict: conflict with "kubectl-patch" using v1: .data.color"#
        ),
        "{message}"
    );
    assert!(apply(&config("blue", ""), true).status.success());
    // The field the applier stopped naming is gone; the forced one is its own now.
    assert_eq!(get("{.data}"), r#"{"color":"blue"}"#);
    assert_eq!(get("{.metadata.managedFields[*].manager}"), "kubectl");
    server.kubectl_ok(&["delete", "cm", "ssa"]);
}

/// What kubectl shows of workloads: wide tables, describe, explain from the OpenAPI
/// schemas; and deletes that cascade to dependents or orphan them.
fn workloads_suite(server: &Server) {
    let deployment = server.write(
        "web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers: [{name: web, image: \"webapp:1\", ports: [{containerPort: 8080}]}]\n",
    );
    server.kubectl_ok(&["apply", "-f", &deployment]);
    let wide = server.kubectl_ok(&["get", "deployment", "web", "-o", "wide"]);
    let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert!(
        wide.lines()
            .nth(1)
            .unwrap()
            .ends_with("web          webapp:1   app=web"),
        "{wide}"
    );
    let described = server.kubectl_ok(&["describe", "deployment", "web"]);
    for line in [
        "Selector:               app=web",
        "Replicas:               2 desired",
        "Image:         webapp:1",
    ] {
        assert!(
            described.contains(line),
            "{line:?} missing from:\n{described}"
        );
    }
    let explained = server.kubectl_ok(&["explain", "deployment.spec.replicas"]);
    assert!(
        explained.contains("FIELD: replicas <integer>"),
        "{explained}"
    );
    assert!(explained.contains("Number of desired pods."), "{explained}");
    let swagger = server.api("/openapi/v2");
    assert_eq!(swagger["swagger"], "2.0");
    assert_eq!(
        swagger["definitions"]["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"]
            [0]["kind"],
        "Deployment"
    );

    // A ReplicaSet the Deployment owns: orphaned, then deleted in the foreground.
    let uid = server.kubectl_ok(&["get", "deployment", "web", "-o", "jsonpath={.metadata.uid}"]);
    let owned = server.write(
        "web-rs.yaml",
        &format!("apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: web-1\n  ownerReferences: [{{apiVersion: apps/v1, kind: Deployment, name: web, uid: \"{uid}\", controller: true}}]\nspec:\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers: [{{name: web, image: \"webapp:1\"}}]\n"),
    );
    server.kubectl_ok(&["apply", "-f", &owned]);
    assert_eq!(
        server.kubectl_ok(&["delete", "deployment", "web", "--cascade=orphan"]),
        "deployment.apps \"web\" deleted\n"
    );
    assert_eq!(
        server.kubectl_ok(&[
            "get",
            "rs",
            "web-1",
            "-o",
            "jsonpath={.metadata.ownerReferences}"
        ]),
        ""
    );
    server.kubectl_ok(&["apply", "-f", &deployment]);
    let uid = server.kubectl_ok(&["get", "deployment", "web", "-o", "jsonpath={.metadata.uid}"]);
    let adopt = format!(
        r#"{{"metadata":{{"ownerReferences":[{{"apiVersion":"apps/v1","kind":"Deployment","name":"web","uid":"{uid}","controller":true,"blockOwnerDeletion":true}}]}}}}"#
    );
    server.kubectl_ok(&["patch", "rs", "web-1", "--type=merge", "-p", &adopt]);
    server.kubectl_ok(&["delete", "deployment", "web", "--cascade=foreground"]);
    assert!(
        !server.kubectl(&["get", "rs", "web-1"]).status.success(),
        "the owned ReplicaSet went with its owner"
    );
}

fn kubectl_suite(server: &Server) {
    // Only the admin's token gets in; the answer is a Kubernetes Status.
    let anonymous = server.curl(&["/api/v1/namespaces"]);
    let status: serde_json::Value = serde_json::from_slice(&anonymous.stdout).unwrap();
    assert_eq!(
        (status["kind"].as_str(), status["code"].as_i64()),
        (Some("Status"), Some(401))
    );

    let version = server.kubectl_ok(&["version", "-o", "json"]);
    let version: serde_json::Value = serde_json::from_str(&version).unwrap();
    assert_eq!(version["serverVersion"]["minor"], "32");

    let namespaces = server.kubectl_ok(&["get", "namespaces"]);
    let rows: Vec<Vec<&str>> = namespaces
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["NAME", "STATUS", "AGE"]);
    assert!(
        rows.iter().any(|r| r[..2] == ["default", "Active"]),
        "{namespaces}"
    );

    // kubectl's typed commands send protobuf.
    assert_eq!(
        server.kubectl_ok(&["create", "namespace", "typed"]),
        "namespace/typed created\n"
    );
    server.kubectl_ok(&[
        "-n",
        "typed",
        "create",
        "configmap",
        "literal",
        "--from-literal=k=v",
    ]);
    server.kubectl_ok(&[
        "-n",
        "typed",
        "create",
        "secret",
        "generic",
        "hidden",
        "--from-literal=p=s3cret",
    ]);
    assert_eq!(
        server.kubectl_ok(&[
            "-n",
            "typed",
            "get",
            "secret",
            "hidden",
            "-o",
            "jsonpath={.type} {.data.p}"
        ]),
        "Opaque czNjcmV0"
    );
    assert_eq!(
        server.kubectl_ok(&[
            "-n",
            "typed",
            "get",
            "cm",
            "literal",
            "-o",
            "jsonpath={.data.k}"
        ]),
        "v"
    );

    let manifest = server.write("app.yaml", MANIFEST);
    assert_eq!(
        server.kubectl_ok(&["apply", "-f", &manifest]),
        "namespace/team created\nconfigmap/settings created\n"
    );
    assert_eq!(
        server.kubectl_ok(&["apply", "-f", &manifest]),
        "namespace/team unchanged\nconfigmap/settings unchanged\n"
    );
    // Beside the namespace's kube-root-ca.crt, which the controllers publish
    // soon after the namespace appears.
    let listed = server.kubectl_until(
        &["-n", "team", "get", "configmaps"],
        Duration::from_secs(10),
        |out| out.contains("kube-root-ca.crt"),
    );
    let rows: Vec<Vec<&str>> = listed
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().take(2).collect())
        .collect();
    assert_eq!(
        rows,
        [["kube-root-ca.crt", "1"], ["settings", "2"]],
        "{listed}"
    );
    assert_eq!(
        server.kubectl_ok(&[
            "-n",
            "team",
            "get",
            "cm",
            "settings",
            "-o",
            "jsonpath={.data.color}"
        ]),
        "blue"
    );
    let yaml = server.kubectl_ok(&["-n", "team", "get", "cm", "settings", "-o", "yaml"]);
    assert!(
        yaml.contains("uid: ") && yaml.contains("resourceVersion: "),
        "{yaml}"
    );
    let all = server.kubectl_ok(&["get", "cm", "-A", "--no-headers"]);
    assert!(
        all.lines()
            .any(|l| l.starts_with("team ") && l.contains(" settings ")),
        "{all}"
    );

    let again = server.kubectl(&["create", "-f", &manifest]);
    assert!(
        String::from_utf8_lossy(&again.stderr)
            .contains("Error from server (AlreadyExists): error when creating"),
        "{again:?}"
    );
    let bad = server.write(
        "bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n  namespace: team\n",
    );
    let refused = server.kubectl(&["create", "-f", &bad]);
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("metadata.name: Invalid value: \"Bad_Name\""),
        "{refused:?}"
    );
    let nowhere = server.write(
        "nowhere.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: nowhere\n",
    );
    let missing = server.kubectl(&["create", "-f", &nowhere]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("namespaces \"nowhere\" not found"));

    // label, annotate and the three kinds of patch; a changed manifest re-applied.
    server.kubectl_ok(&["-n", "team", "label", "cm", "settings", "tier=web"]);
    server.kubectl_ok(&["-n", "team", "annotate", "cm", "settings", "owner=ops"]);
    server.kubectl_ok(&[
        "-n",
        "team",
        "patch",
        "cm",
        "settings",
        "--type=merge",
        "-p",
        r#"{"data":{"color":"red"}}"#,
    ]);
    server.kubectl_ok(&[
        "-n",
        "team",
        "patch",
        "cm",
        "settings",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/data/shape","value":"round"}]"#,
    ]);
    server.kubectl_ok(&[
        "-n",
        "team",
        "patch",
        "cm",
        "settings",
        "-p",
        r#"{"data":{"size":"small"}}"#,
    ]);
    let patched = server.kubectl_ok(&[
        "-n", "team", "get", "cm", "settings", "-o",
        "jsonpath={.metadata.labels.tier} {.metadata.annotations.owner} {.data.color} {.data.shape} {.data.size}",
    ]);
    assert_eq!(patched, "web ops red round small");
    // Selectors and paging.
    assert_eq!(
        server.kubectl_ok(&[
            "-n",
            "team",
            "get",
            "cm",
            "-l",
            "tier in (web, api)",
            "-o",
            "name"
        ]),
        "configmap/settings\n"
    );
    assert_eq!(
        server.kubectl_ok(&["-n", "team", "get", "cm", "-l", "tier=db", "-o", "name"]),
        ""
    );
    for name in ["second", "third"] {
        server.kubectl_ok(&["-n", "typed", "create", "configmap", name]);
    }
    // The namespace's kube-root-ca.crt is published by the controllers, in its own time.
    server.kubectl_until(
        &["-n", "typed", "get", "cm", "-o", "name"],
        Duration::from_secs(30),
        |names| names.starts_with("configmap/kube-root-ca.crt\n"),
    );
    assert_eq!(
        server.kubectl_ok(&["-n", "typed", "get", "cm", "--chunk-size=1", "-o", "name"]),
        "configmap/kube-root-ca.crt\nconfigmap/literal\nconfigmap/second\nconfigmap/third\n"
    );
    let first = server.api("/api/v1/namespaces/typed/configmaps?limit=3");
    assert_eq!(first["items"].as_array().unwrap().len(), 3);
    let token = first["metadata"]["continue"].as_str().unwrap();
    let rest = server.api(&format!(
        "/api/v1/namespaces/typed/configmaps?limit=3&continue={token}"
    ));
    assert_eq!(rest["items"][0]["metadata"]["name"], "third");
    assert!(rest["metadata"]["continue"].is_null(), "{rest}");
    // Later pages show the list as it was at the first: what changed since is not in it.
    let first = server.api("/api/v1/namespaces/typed/configmaps?limit=2");
    let token = first["metadata"]["continue"].as_str().unwrap();
    server.kubectl_ok(&["-n", "typed", "delete", "configmap", "third"]);
    server.kubectl_ok(&["-n", "typed", "create", "configmap", "zfourth"]);
    let rest = server.api(&format!(
        "/api/v1/namespaces/typed/configmaps?limit=5&continue={token}"
    ));
    let names: Vec<&str> = rest["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["second", "third"], "{rest}");
    server.kubectl_ok(&["-n", "typed", "create", "configmap", "third"]);
    server.kubectl_ok(&["-n", "typed", "delete", "configmap", "zfourth"]);
    assert_eq!(
        server.kubectl_ok(&[
            "-n",
            "typed",
            "get",
            "cm",
            "--field-selector",
            "metadata.name=third",
            "-o",
            "name"
        ]),
        "configmap/third\n"
    );
    let bad_patch = server.kubectl(&[
        "-n",
        "team",
        "patch",
        "cm",
        "settings",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/data/nothing"}]"#,
    ]);
    assert!(!bad_patch.status.success());
    let changed = server.write(
        "changed.yaml",
        &MANIFEST.replace("color: blue", "color: green"),
    );
    assert_eq!(
        server.kubectl_ok(&["apply", "-f", &changed]),
        "namespace/team unchanged\nconfigmap/settings configured\n"
    );
    assert_eq!(
        server.kubectl_ok(&[
            "-n",
            "team",
            "get",
            "cm",
            "settings",
            "-o",
            "jsonpath={.data.color}"
        ]),
        "green"
    );

    assert_eq!(
        server.kubectl_ok(&["-n", "team", "delete", "cm", "settings"]),
        "configmap \"settings\" deleted\n"
    );
    // Resources of API groups, stored as declared (their controllers come later).
    let apps = server.write(
        "deploy.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: team\nspec:\n  replicas: 3\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers: [{name: web, image: webapp}]\n",
    );
    assert_eq!(
        server.kubectl_ok(&["apply", "-f", &apps]),
        "deployment.apps/web created\n"
    );
    assert_eq!(
        server.kubectl_ok(&[
            "-n",
            "team",
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.apiVersion} {.spec.replicas}"
        ]),
        "apps/v1 3"
    );
    let deployments = server.kubectl_ok(&["-n", "team", "get", "deployments"]);
    let header: Vec<&str> = deployments
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    assert!(
        deployments
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("web    0/3 "),
        "{deployments}"
    );
    assert_eq!(
        server.kubectl_ok(&["-n", "team", "scale", "deployment", "web", "--replicas=5"]),
        "deployment.apps/web scaled\n"
    );
    assert_eq!(
        server.kubectl_ok(&[
            "-n",
            "team",
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.replicas} {.metadata.generation}"
        ]),
        "5 2"
    );
    let resources = server.kubectl_ok(&["api-resources", "--no-headers"]);
    for wanted in [
        "deployments",
        "horizontalpodautoscalers",
        "leases",
        "pods",
        "services",
    ] {
        assert!(
            resources.lines().any(|l| l.starts_with(wanted)),
            "{wanted} missing: {resources}"
        );
    }
    server.kubectl_ok(&["delete", "-f", &apps]);

    // kubectl get -w prints each change as a row of the kind's table.
    let mut watcher = Command::new("timeout")
        .args([
            "60",
            "kubectl",
            "-n",
            "team",
            "get",
            "cm",
            "-w",
            "--no-headers",
        ])
        .env("KUBECONFIG", server.kubeconfig())
        .env("HOME", server.scratch.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let output = watcher.stdout.take().unwrap();
    let _watcher = ChildGuard(watcher);
    let lines = berth_testkit::lines_of(output);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Until the watch is up, each attempt adds a configmap the watch may report.
        let _ = server.kubectl(&[
            "-n",
            "team",
            "create",
            "configmap",
            "watched",
            "--from-literal=a=b",
        ]);
        if let Ok(row) = lines.recv_timeout(Duration::from_millis(500)) {
            let cells: Vec<&str> = row.split_whitespace().collect();
            if cells[0] == "kube-root-ca.crt" {
                continue; // listed first: it was there before the watch
            }
            assert_eq!(cells[..2], ["watched", "1"], "{row}");
            break;
        }
        assert!(Instant::now() < deadline, "kubectl get -w printed nothing");
    }
    server.kubectl_ok(&["-n", "team", "delete", "configmap", "watched"]);

    // A namespace goes with what is in it; the system ones stay.
    assert_eq!(
        server.kubectl_ok(&["delete", "namespace", "typed"]),
        "namespace \"typed\" deleted\n"
    );
    let left: Vec<String> = server.api("/api/v1/configmaps")["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| format!("{}/{}", m["metadata"]["namespace"], m["metadata"]["name"]))
        .filter(|m| !m.ends_with("\"kube-root-ca.crt\""))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(
        !server
            .api("/api/v1/configmaps")
            .to_string()
            .contains("\"typed\"")
    );
    let system = server.kubectl(&["delete", "namespace", "default"]);
    assert!(
        String::from_utf8_lossy(&system.stderr).contains("this namespace may not be deleted"),
        "{system:?}"
    );
    let gone = server.kubectl(&["-n", "team", "get", "cm", "settings"]);
    assert_eq!(
        String::from_utf8_lossy(&gone.stderr).trim(),
        "Error from server (NotFound): configmaps \"settings\" not found"
    );
}

/// `jsonpath` output read as JSON: the object or list it printed, or a string of words.
fn parsed(output: &str) -> serde_json::Value {
    serde_json::from_str(output).unwrap_or_else(|_| output.into())
}

/// Whether `typed` is `json` but for fields of `0` or `false` that `json` leaves out: a
/// Go client's protobuf carries every non-pointer field, and nothing tells those from
/// pointers set to zero (which must be kept), so the protobuf route keeps them.
fn same_but_zeros(typed: &serde_json::Value, json: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (typed, json) {
        (Value::Object(typed), Value::Object(json)) => {
            typed.iter().all(|(key, value)| match json.get(key) {
                Some(expected) => same_but_zeros(value, expected),
                None => *value == 0 || *value == false,
            }) && json.keys().all(|key| typed.contains_key(key))
        }
        (Value::Array(typed), Value::Array(json)) => {
            typed.len() == json.len() && typed.iter().zip(json).all(|(t, j)| same_but_zeros(t, j))
        }
        _ => typed == json,
    }
}

/// The text with the random suffix of each pod's `kube-api-access-XXXXX` volume (the
/// ServiceAccount admission's) taken out, so two pods' specs compare.
fn without_access_suffix(text: &str) -> String {
    const PREFIX: &str = "kube-api-access-";
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(PREFIX) {
        let after = at + PREFIX.len();
        out.push_str(&rest[..after]);
        rest = rest.get(after + 5..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

/// kubectl's typed commands send protobuf: each makes the object its JSON twin (the same
/// command's `--dry-run=client -o json`, created from the file) makes.
fn typed_commands_suite(server: &Server) {
    let get = |kind: &str, name: &str, path: &str| {
        server.kubectl_ok(&["get", kind, name, "-o", &format!("jsonpath={path}")])
    };
    // The command with `NAME` as `name`, run as is and, named `<name>-json`, through JSON.
    let both = |command: &[&str], kind: &str, name: &str, path: &str| {
        let named = |n: &str| {
            command
                .iter()
                .map(|a| a.replace("NAME", n))
                .collect::<Vec<_>>()
        };
        let typed = named(name);
        server.kubectl_ok(&typed.iter().map(String::as_str).collect::<Vec<_>>());
        let twin = format!("{name}-json");
        let mut dry = named(&twin);
        dry.extend(["--dry-run=client", "-o", "json"].map(String::from));
        let json = server.kubectl_ok(&dry.iter().map(String::as_str).collect::<Vec<_>>());
        let file = server.write(&format!("{twin}.json"), &json);
        server.kubectl_ok(&["create", "-f", &file]);
        let made = without_access_suffix(&get(kind, name, path));
        let expected = without_access_suffix(&get(kind, &twin, path).replace(&twin, name));
        assert!(
            same_but_zeros(&parsed(&made), &parsed(&expected)),
            "{kind} {name}: {made} is not {expected}"
        );
        made
    };
    let deployment = both(
        &[
            "create",
            "deployment",
            "NAME",
            "--image=busybox",
            "--replicas=2",
        ],
        "deployment",
        "web",
        "{.spec}",
    );
    assert!(deployment.contains(r#""replicas":2"#), "{deployment}");
    assert_eq!(
        get(
            "deployment",
            "web",
            "{.spec.template.spec.containers[0].image} {.spec.template.spec.restartPolicy}"
        ),
        "busybox Always"
    );
    let ports = both(
        &["create", "service", "clusterip", "NAME", "--tcp=80:8080"],
        "service",
        "web",
        "{.spec.ports}",
    );
    assert_eq!(
        parsed(&ports)[0],
        serde_json::json!({"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080})
    );
    both(
        &["expose", "deployment", "web", "--name=NAME", "--port=80"],
        "service",
        "exposed",
        "{.spec.ports}",
    );
    assert_eq!(
        get(
            "service",
            "exposed",
            "{.spec.ports[0].targetPort} {.spec.selector.app}"
        ),
        "80 web"
    );
    let schedule = "--schedule=*/1 * * * *";
    both(
        &["create", "cronjob", "NAME", "--image=busybox", schedule],
        "cronjob",
        "tick",
        "{.spec}",
    );
    both(
        &["create", "job", "NAME", "--image=busybox"],
        "job",
        "once",
        "{.spec.template.spec.containers}",
    );
    both(
        &["create", "job", "NAME", "--from=cronjob/tick"],
        "job",
        "manual",
        "{.spec.template.spec.containers}",
    );
    assert_eq!(
        get(
            "job",
            "manual",
            r"{.metadata.annotations.cronjob\.kubernetes\.io/instantiate} {.metadata.ownerReferences[0].name}"
        ),
        "manual tick"
    );
    both(
        &[
            "create",
            "priorityclass",
            "NAME",
            "--value=1000",
            "--description=first",
        ],
        "priorityclass",
        "high",
        "{.value} {.description} {.preemptionPolicy}",
    );
    both(
        &[
            "run",
            "NAME",
            "--image=busybox",
            "--restart=Never",
            "--env=A=B",
        ],
        "pod",
        "single",
        "{.spec.containers}",
    );
    assert_eq!(get("pod", "single", "{.spec.restartPolicy}"), "Never");
    assert_eq!(get("job", "once", "{.spec.backoffLimit}"), "6");
    for (kind, names) in [
        ("deployment", "web web-json"),
        ("service", "web web-json exposed exposed-json"),
        // The jobs before the CronJob that owns two of them, and takes them along.
        ("job", "once once-json manual manual-json"),
        ("cronjob", "tick tick-json"),
        ("priorityclass", "high high-json"),
        ("pod", "single single-json"),
    ] {
        let mut delete = vec!["delete", "--wait=false", kind];
        delete.extend(names.split(' '));
        server.kubectl_ok(&delete);
    }
}

/// The admin may do anything; the node token only what a node agent does.
fn authorization_suite(server: &Server) {
    assert_eq!(
        server
            .kubectl_ok(&["auth", "can-i", "delete", "secrets"])
            .trim(),
        "yes"
    );
    let join = server.token("node-token");
    let as_node = |args: &[&str]| server.kubectl_as(&join, args);
    let answer =
        |output: std::process::Output| String::from_utf8_lossy(&output.stdout).trim().to_string();
    assert_eq!(answer(as_node(&["auth", "can-i", "create", "pods"])), "yes");
    assert_eq!(
        answer(as_node(&["auth", "can-i", "create", "configmaps"])),
        "no"
    );
    assert!(
        !as_node(&["get", "configmaps", "-A"]).status.success(),
        "the join token reads no configMaps"
    );
    let refused = as_node(&["create", "configmap", "nope"]);
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr).trim(),
        "error: failed to create configmap: configmaps is forbidden: User \"system:node\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"default\""
    );

    // The viewer reads everything but secrets and changes nothing.
    let viewer = server.token("viewer-token");
    assert!(
        server
            .kubectl_as(&viewer, &["get", "configmaps", "-A"])
            .status
            .success()
    );
    assert_eq!(
        answer(server.kubectl_as(&viewer, &["auth", "can-i", "list", "secrets"])),
        "no"
    );
    let refused = server.kubectl_as(&viewer, &["create", "namespace", "nope"]);
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("User \"system:viewer\" cannot create resource \"namespaces\""),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // Client certificates the cluster CA signs: the user is the common name, the group
    // the organization.
    let certified = |user: &str, group: Option<&str>| server.certified(user, group);
    let as_cert = |config: &str, args: &[&str]| server.kubectl_with(config, args);
    // A node by its own certificate: its Node, its Lease and the pods bound to it, and
    // only the configMaps and secrets those pods use.
    let node_a = certified("system:node:node-a", Some("system:nodes"));
    let as_a = |args: &[&str]| as_cert(&node_a, args);
    let node = |name: &str| {
        server.write(
            &format!("{name}.yaml"),
            &format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n"),
        )
    };
    assert!(as_a(&["create", "-f", &node("node-a")]).status.success());
    let refused = as_a(&["create", "-f", &node("node-b")]);
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("User \"system:node:node-a\" may only modify its own Node"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let lease = server.write("lease.yaml", "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: node-a\n  namespace: kube-node-lease\nspec:\n  holderIdentity: node-a\n");
    assert!(as_a(&["create", "-f", &lease]).status.success());
    for name in ["settings-a", "settings-b"] {
        server.kubectl_ok(&["create", "configmap", name, "--from-literal=k=v"]);
    }
    for name in ["password-a", "password-b"] {
        server.kubectl_ok(&["create", "secret", "generic", name, "--from-literal=k=v"]);
    }
    server.kubectl_ok(&["create", "serviceaccount", "robot"]);
    for (pod, bound_to, suffix) in [("on-a", "node-a", "a"), ("on-b", "node-b", "b")] {
        let manifest = server.write(&format!("{pod}.yaml"), &format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {pod}\nspec:\n  nodeName: {bound_to}\n  serviceAccountName: robot\n  containers:\n  - name: c\n    image: i\n    env:\n    - name: P\n      valueFrom: {{secretKeyRef: {{name: password-{suffix}, key: k}}}}\n  volumes:\n  - {{name: v, configMap: {{name: settings-{suffix}}}}}\n"));
        server.kubectl_ok(&["create", "-f", &manifest]);
    }
    // The Node authorizer's graph: what on-a uses, one object at a time (also as a
    // list of one by name, as the kubelet watches it), and nothing of on-b's.
    assert!(as_a(&["get", "configmap", "settings-a"]).status.success());
    assert!(as_a(&["get", "secret", "password-a"]).status.success());
    assert!(
        as_a(&[
            "get",
            "configmaps",
            "--field-selector",
            "metadata.name=settings-a"
        ])
        .status
        .success()
    );
    for refused in [
        as_a(&["get", "configmap", "settings-b"]),
        as_a(&["get", "secret", "password-b"]),
        as_a(&["get", "secrets"]),
        as_a(&["get", "configmaps", "-A"]),
        as_a(&["get", "persistentvolumeclaims", "-A"]),
    ] {
        assert!(!refused.status.success());
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("forbidden"),
            "{}",
            String::from_utf8_lossy(&refused.stderr)
        );
    }
    let refused = as_a(&["get", "secret", "password-b"]);
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("no relationship found between node 'node-a' and this object"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(as_a(&["label", "pod", "on-a", "seen=yes"]).status.success());
    assert!(!as_a(&["label", "pod", "on-b", "seen=yes"]).status.success());
    assert!(as_a(&["get", "pods"]).status.success());
    let alice = certified("alice", Some("system:masters"));
    assert!(
        as_cert(&alice, &["create", "namespace", "alices"])
            .status
            .success()
    );
    let bob = certified("bob", None);
    let refused = as_cert(&bob, &["get", "namespaces"]);
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("User \"bob\" cannot list resource \"namespaces\""),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let node_b = certified("system:node:node-b", Some("system:nodes"));
    assert!(
        as_cert(&node_b, &["create", "-f", &node("node-b")])
            .status
            .success()
    );
    assert!(
        !as_cert(&node_b, &["label", "node", "node-a", "x=y"])
            .status
            .success()
    );

    service_account_tokens(server, &|args| as_cert(&node_a, args));

    let forged = format!("{join}0");
    assert!(
        !server
            .kubectl_as(&forged, &["get", "pods"])
            .status
            .success(),
        "a forged token is refused"
    );
    server.kubectl_ok(&["delete", "pod", "on-b", "--grace-period=0", "--force"]);
    server.kubectl_ok(&["delete", "serviceaccount", "robot"]);
    server.kubectl_ok(&["delete", "configmap", "settings-a", "settings-b"]);
    server.kubectl_ok(&["delete", "secret", "password-a", "password-b"]);
}

/// TokenRequest as `kubectl create token` uses it: tokens authenticate their account
/// (which may do nothing without RBAC), carry kube-apiserver's claims, die with the pod
/// they are bound to, and a node gets them only for its own pods. `as_node_a` runs
/// kubectl as node-a, which runs pod on-a (on-b runs on node-b); both run as `robot`.
fn service_account_tokens(server: &Server, as_node_a: &dyn Fn(&[&str]) -> std::process::Output) {
    let token = server.kubectl_ok(&["create", "token", "robot", "--duration=15m"]);
    let token = token.trim();
    let refused = server.kubectl_as(token, &["get", "pods"]);
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("User \"system:serviceaccount:default:robot\" cannot list resource \"pods\""),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], "system:serviceaccount:default:robot");
    assert_eq!(
        claims["aud"][0],
        "https://kubernetes.default.svc.cluster.local"
    );
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    let jwks: serde_json::Value =
        serde_json::from_str(&server.kubectl_ok(&["get", "--raw", "/openid/v1/jwks"])).unwrap();
    assert_eq!(jwks["keys"][0]["alg"], "ES256");
    let short = server.kubectl(&["create", "token", "robot", "--duration=5m"]);
    assert!(
        String::from_utf8_lossy(&short.stderr)
            .contains("may not specify a duration less than 10 minutes"),
        "{}",
        String::from_utf8_lossy(&short.stderr)
    );

    // Bound to a pod: valid while the pod lives. node-a gets one for its own pod only.
    let bound = |kubectl: &dyn Fn(&[&str]) -> std::process::Output, pod: &str| {
        kubectl(&[
            "create",
            "token",
            "robot",
            "--bound-object-kind=Pod",
            &format!("--bound-object-name={pod}"),
        ])
    };
    let mine = bound(as_node_a, "on-a");
    assert!(
        mine.status.success(),
        "{}",
        String::from_utf8_lossy(&mine.stderr)
    );
    let theirs = bound(as_node_a, "on-b");
    assert!(
        String::from_utf8_lossy(&theirs.stderr)
            .contains("may only request tokens bound to pods on node node-a"),
        "{}",
        String::from_utf8_lossy(&theirs.stderr)
    );
    let token = String::from_utf8_lossy(&mine.stdout).trim().to_string();
    let as_pod = server.kubectl_as(&token, &["get", "pods"]);
    assert!(String::from_utf8_lossy(&as_pod.stderr).contains("forbidden"));
    server.kubectl_ok(&["delete", "pod", "on-a", "--grace-period=0", "--force"]);
    let gone = server.kubectl_as(&token, &["get", "pods"]);
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("Unauthorized"),
        "a token bound to a deleted pod is dead: {}",
        String::from_utf8_lossy(&gone.stderr)
    );
}

/// An Event manifest about the pod `web` of the `evented` namespace.
fn event(name: &str, reason: &str, component: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Event\nmetadata:\n  name: {name}\n  namespace: evented\ninvolvedObject: {{kind: Pod, name: web, namespace: evented, fieldPath: \"spec.containers{{web}}\"}}\nreason: {reason}\ntype: Warning\nmessage: \"the pod was tested \"\nsource: {{component: {component}, host: node-1}}\nfirstTimestamp: \"2020-01-01T00:00:00Z\"\nlastTimestamp: \"2021-01-01T00:00:00Z\"\ncount: 3\n"
    )
}

/// The words of each line kubectl printed.
fn words(output: &str) -> Vec<Vec<&str>> {
    output
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect()
}

/// kubectl's view of events and of a pod being deleted, as kube-apiserver's tables
/// show them; events selected by their fields.
fn events_and_terminating_suite(server: &Server) {
    server.kubectl_ok(&["create", "namespace", "evented"]);
    let first = server.write("event-1.yaml", &event("web.1", "Testing", "tester"));
    server.kubectl_ok(&["create", "-f", &first]);
    let table = server.kubectl_ok(&["-n", "evented", "get", "events"]);
    let rows = words(&table);
    assert_eq!(
        rows[0],
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "{table}"
    );
    assert_eq!(
        rows[1][1..],
        [
            "Warning", "Testing", "pod/web", "the", "pod", "was", "tested"
        ],
        "{table}"
    );
    let wide = server.kubectl_ok(&["-n", "evented", "get", "events", "-o", "wide"]);
    let rows = words(&wide);
    assert_eq!(
        rows[0],
        [
            "LAST",
            "SEEN",
            "TYPE",
            "REASON",
            "OBJECT",
            "SUBOBJECT",
            "SOURCE",
            "MESSAGE",
            "FIRST",
            "SEEN",
            "COUNT",
            "NAME"
        ],
        "{wide}"
    );
    assert!(
        wide.contains("spec.containers{web}   tester, node-1   the pod was tested   "),
        "{wide}"
    );
    assert_eq!(rows[1][rows[1].len() - 2..], ["3", "web.1"], "{wide}");

    // Events are selected by the fields kube-apiserver offers, and only by those.
    let second = server.write("event-2.yaml", &event("web.2", "Other", "other"));
    server.kubectl_ok(&["create", "-f", &second]);
    let select = |selector: &str| {
        server.kubectl_ok(&[
            "-n",
            "evented",
            "get",
            "events",
            "--field-selector",
            selector,
            "-o",
            "name",
        ])
    };
    assert_eq!(
        select("involvedObject.name=web,reason=Testing"),
        "event/web.1\n"
    );
    assert_eq!(select("source=other,type=Warning"), "event/web.2\n");
    assert_eq!(select("involvedObject.kind=Node"), "");
    // --sort-by reads the field from the whole objects the rows carry (includeObject).
    let sorted = server.kubectl_ok(&[
        "-n",
        "evented",
        "get",
        "events",
        "--sort-by=.reason",
        "--no-headers",
    ]);
    let reasons: Vec<&str> = words(&sorted).iter().map(|row| row[2]).collect();
    assert_eq!(reasons, ["Other", "Testing"], "{sorted}");
    let refused = server.kubectl(&["get", "events", "--field-selector", "colour=red"]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("field label not supported: colour"),
        "{refused:?}"
    );

    // A pod its finalizer keeps while it is deleted reads Terminating until it goes.
    let held = server.write(
        "held.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: held\n  namespace: evented\n  finalizers: [example.com/hold]\nspec:\n  containers: [{name: c, image: busybox}]\n",
    );
    server.kubectl_ok(&["create", "-f", &held]);
    let pod = || server.kubectl_ok(&["-n", "evented", "get", "pod", "held", "--no-headers"]);
    assert_eq!(words(&pod())[0][1..3], ["0/1", "Pending"]);
    server.kubectl_ok(&["-n", "evented", "delete", "pod", "held", "--wait=false"]);
    assert_eq!(words(&pod())[0][1..3], ["0/1", "Terminating"]);
    server.kubectl_ok(&[
        "-n",
        "evented",
        "patch",
        "pod",
        "held",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    assert!(
        !server
            .kubectl(&["-n", "evented", "get", "pod", "held"])
            .status
            .success(),
        "the pod outlived its finalizer"
    );
    server.kubectl_ok(&["delete", "namespace", "evented"]);
}

/// Bad input gets a Kubernetes Status with the right code and writes nothing.
fn bad_input_suite(server: &Server) {
    let header = format!("Authorization: Bearer {}", server.admin_token());
    let post = |body_file: &str| {
        let output = server.curl(&[
            "/api/v1/namespaces/default/configmaps",
            "-H",
            &header,
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &format!("@{body_file}"),
        ]);
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    let huge = format!(
        r#"{{"metadata":{{"name":"huge"}},"data":{{"k":"{}"}}}}"#,
        "x".repeat(3 * 1024 * 1024)
    );
    let answer = post(&server.write("huge.json", &huge));
    assert_eq!(
        (answer["code"].as_i64(), answer["reason"].as_str()),
        (Some(413), Some("RequestEntityTooLarge")),
        "{answer}"
    );
    let answer = post(&server.write("broken.json", r#"{"metadata": {"name": "#));
    assert_eq!(answer["code"], 400, "{answer}");
    let typo = server.write(
        "typo.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\ndatta:\n  k: v\n",
    );
    let refused = server.kubectl(&["create", "-f", &typo]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains(r#"unknown field "datta""#),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    for name in ["huge", "broken", "typo"] {
        assert!(
            !server.kubectl(&["get", "configmap", name]).status.success(),
            "{name} was written"
        );
    }
    // A protobuf body that breaks off: refused naming the problem, not a crash.
    let broken = server.write("broken.pb", "k8s\0\n\x05");
    let output = server.curl(&[
        "/apis/apps/v1/namespaces/default/deployments",
        "-H",
        &header,
        "-H",
        "Content-Type: application/vnd.kubernetes.protobuf",
        "--data-binary",
        &format!("@{broken}"),
    ]);
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["code"], 400, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("the protobuf envelope is malformed")),
        "{answer}"
    );
    let wrong = server.curl(&["/api/v1/namespaces", "-H", "Authorization: Bearer wrong"]);
    let answer: serde_json::Value = serde_json::from_slice(&wrong.stdout).unwrap();
    assert_eq!(answer["code"], 401);
}

#[test]
fn kubectl_drives_the_server_on_sqlite() {
    let server = Server::start("sqlite", false);
    kubectl_suite(&server);
    typed_commands_suite(&server);
    server_side_apply_suite(&server);
    workloads_suite(&server);
    events_and_terminating_suite(&server);
    authorization_suite(&server);
    bad_input_suite(&server);
}

#[test]
fn kubectl_drives_the_server_on_etcd() {
    let server = Server::start("etcd", true);
    kubectl_suite(&server);
    typed_commands_suite(&server);
    server_side_apply_suite(&server);
    workloads_suite(&server);
    events_and_terminating_suite(&server);
}
