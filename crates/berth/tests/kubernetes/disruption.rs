//! PodDisruptionBudgets as `kubectl drain` meets them, on simulated nodes: the budget's
//! status follows its pods, evictions stop where the budget says (429, and drain keeps
//! trying until its timeout), and go through once the budget allows.

use std::time::Duration;

use crate::server::Server;

const LIMIT: Duration = Duration::from_secs(60);

/// Three replicas, one per node, and a budget that wants all three.
const WEB: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector:
              matchLabels:
                app: web
            topologyKey: kubernetes.io/hostname
      containers:
      - name: web
        image: busybox
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
spec:
  minAvailable: 3
  selector:
    matchLabels:
      app: web
"#;

#[test]
fn kubectl_drain_evicts_only_what_the_disruption_budget_allows_on_sqlite() {
    kubectl_drain_evicts_only_what_the_disruption_budget_allows(false);
}

#[test]
fn kubectl_drain_evicts_only_what_the_disruption_budget_allows_on_etcd() {
    kubectl_drain_evicts_only_what_the_disruption_budget_allows(true);
}

fn kubectl_drain_evicts_only_what_the_disruption_budget_allows(on_etcd: bool) {
    let server = Server::start("drain", on_etcd);
    let _nodes = server.simulated_nodes(3);
    server.kubectl_until(&["get", "nodes", "--no-headers"], LIMIT, |text| {
        text.lines().filter(|l| l.contains(" Ready ")).count() == 3
    });
    let manifest = server.write("web.yaml", WEB);
    server.kubectl_ok(&["apply", "-f", &manifest]);
    // healthy/desired/expected, then the disruptions allowed.
    let healthy = |wanted: &str| {
        let path = "jsonpath={.status.currentHealthy}/{.status.desiredHealthy}/{.status.expectedPods} {.status.disruptionsAllowed}";
        server.kubectl_until(&["get", "pdb", "web", "-o", path], LIMIT, |text| {
            text == wanted
        })
    };
    healthy("3/3/3 0");
    let row: Vec<String> = server
        .kubectl_ok(&["get", "pdb", "web", "--no-headers"])
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(row[..4], ["web", "3", "N/A", "0"]);

    // The budget wants every pod: drain cordons the node and keeps being refused.
    let blocked = server.kubectl(&["drain", "sim-0", "--timeout=12s"]);
    assert!(!blocked.status.success());
    let stderr = String::from_utf8_lossy(&blocked.stderr);
    assert!(
        stderr.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{stderr}"
    );
    assert_eq!(
        server.kubectl_ok(&[
            "get",
            "node",
            "sim-0",
            "-o",
            "jsonpath={.spec.unschedulable}"
        ]),
        "true"
    );
    let on_node = |node: &str| {
        server.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "--field-selector",
            &format!("spec.nodeName={node}"),
            "-o",
            "name",
        ])
    };
    assert_eq!(on_node("sim-0").lines().count(), 1);

    // One may go: drain evicts it and waits for it to be gone.
    server.kubectl_ok(&[
        "patch",
        "pdb",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"minAvailable":2}}"#,
    ]);
    healthy("3/2/3 1");
    let drained = server.kubectl_ok(&["drain", "sim-0", "--timeout=60s"]);
    assert!(drained.contains("evicted"), "{drained}");
    assert!(drained.contains("node/sim-0 drained"), "{drained}");
    assert_eq!(on_node("sim-0"), "");
    // Its replacement has nowhere to go (one per node, sim-0 cordoned): none to spare.
    healthy("2/2/3 0");
    let pod = on_node("sim-1");
    let pod = pod.trim().trim_start_matches("pod/");
    let eviction = server.write(
        "eviction.json",
        &format!(r#"{{"apiVersion":"policy/v1","kind":"Eviction","metadata":{{"name":"{pod}","namespace":"default"}}}}"#),
    );
    let refused = server.kubectl(&[
        "create",
        "--raw",
        &format!("/api/v1/namespaces/default/pods/{pod}/eviction"),
        "-f",
        &eviction,
    ]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("TooManyRequests"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(server.kubectl(&["get", "pod", pod]).status.success());

    let both = server.write(
        "both.yaml",
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: both\nspec:\n  minAvailable: 1\n  maxUnavailable: 1\n  selector: {matchLabels: {app: web}}\n",
    );
    let refused = server.kubectl(&["apply", "-f", &both]);
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("minAvailable and maxUnavailable cannot be both set"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
