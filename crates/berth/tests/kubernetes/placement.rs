//! Where the scheduler puts pods beyond "where they fit": preferred node affinity, pod
//! anti-affinity, topology spread, host ports, and priority with preemption — on three
//! simulated nodes of 4 CPUs each.

use std::collections::HashMap;
use std::time::Duration;

use crate::server::Server;

const LIMIT: Duration = Duration::from_secs(30);

/// Pods as one YAML stream: `(name, labels, spec lines after containers)`.
fn pods(server: &Server, file: &str, pods: &[(String, &str, &str)]) -> String {
    let documents: Vec<String> = pods
        .iter()
        .map(|(name, labels, spec)| {
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\nspec:\n  containers: [{{name: c, image: busybox}}]\n{spec}"
            )
        })
        .collect();
    server.write(file, &documents.join("---\n"))
}

/// The nodes of the pods labelled `selector`, once `count` of them are bound.
fn nodes_of(server: &Server, selector: &str, count: usize) -> HashMap<String, usize> {
    let text = server.kubectl_until(
        &[
            "get",
            "pods",
            "-l",
            selector,
            "-o",
            "jsonpath={.items[*].spec.nodeName}",
        ],
        LIMIT,
        |text| text.split_whitespace().count() == count,
    );
    let mut nodes = HashMap::new();
    for node in text.split_whitespace() {
        *nodes.entry(node.to_string()).or_default() += 1;
    }
    nodes
}

/// The one pod labelled `selector` that is bound to no node (bound ones may still be
/// Pending until their node reports them running).
fn unbound(server: &Server, selector: &str) -> String {
    let rows = server.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        selector,
        "--no-headers",
        "-o",
        "custom-columns=NAME:.metadata.name,NODE:.spec.nodeName",
    ]);
    let unbound: Vec<&str> = rows
        .lines()
        .filter(|row| row.ends_with("<none>"))
        .filter_map(|row| row.split_whitespace().next())
        .collect();
    assert_eq!(unbound.len(), 1, "{rows}");
    unbound[0].to_string()
}

fn named(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i}")).collect()
}

fn affinities_are_honoured(server: &Server) {
    let prefers = "  affinity:\n    nodeAffinity:\n      preferredDuringSchedulingIgnoredDuringExecution:\n      - weight: 50\n        preference:\n          matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [sim-1]}]\n";
    let manifest = pods(
        server,
        "prefers.yaml",
        &[("prefers".into(), "p: x", prefers)],
    );
    server.kubectl_ok(&["apply", "-f", &manifest]);
    assert_eq!(nodes_of(server, "p=x", 1).get("sim-1"), Some(&1));

    // Four pods that must not share a node: three run, the fourth waits — kept out, as
    // kube-scheduler words it, by the anti-affinity of those placed first.
    let apart = "  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - topologyKey: kubernetes.io/hostname\n        labelSelector: {matchLabels: {app: apart}}\n";
    let set: Vec<_> = named("apart", 4)
        .into_iter()
        .map(|n| (n, "app: apart", apart))
        .collect();
    server.kubectl_ok(&["apply", "-f", &pods(server, "apart.yaml", &set)]);
    let placed = server.kubectl_until(
        &[
            "get",
            "pods",
            "-l",
            "app=apart",
            "-o",
            "jsonpath={.items[*].spec.nodeName}",
        ],
        LIMIT,
        |text| text.split_whitespace().count() == 3,
    );
    let distinct: std::collections::HashSet<&str> = placed.split_whitespace().collect();
    assert_eq!(distinct.len(), 3, "{placed}");
    assert_eq!(
        server.event_message(&unbound(server, "app=apart"), "FailedScheduling"),
        "0/3 nodes are available: 3 node(s) didn't satisfy existing pods anti-affinity rules. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
    );
    server.kubectl_ok(&["delete", "pods", "-l", "app=apart", "--wait=false"]);
}

fn spread_and_ports_are_honoured(server: &Server) {
    // Zone a is one node, zone b two (labelled at the start: the scheduler's node and
    // pod caches are separate watches): six pods spread evenly over the zones put three
    // on the lone node, where least-allocated alone would put two.
    let spread = "  topologySpreadConstraints:\n  - {maxSkew: 1, topologyKey: zone, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: spread}}}\n";
    let set: Vec<_> = named("spread", 6)
        .into_iter()
        .map(|n| (n, "app: spread", spread))
        .collect();
    server.kubectl_ok(&["apply", "-f", &pods(server, "spread.yaml", &set)]);
    let spread = nodes_of(server, "app=spread", 6);
    assert_eq!(spread.get("sim-0"), Some(&3), "{spread:?}");
    server.kubectl_ok(&["delete", "pods", "-l", "app=spread", "--wait=false"]);

    let port = "  nodeSelector: {kubernetes.io/hostname: sim-2}\n  hostNetwork: false\n";
    let with_port = |name: &str| {
        let manifest = pods(
            server,
            &format!("{name}.yaml"),
            &[(name.into(), "port: \"8080\"", port)],
        );
        std::fs::read_to_string(&manifest).unwrap().replace(
            "image: busybox}",
            "image: busybox, ports: [{containerPort: 80, hostPort: 8080}]}",
        )
    };
    let both = format!("{}---\n{}", with_port("port-0"), with_port("port-1"));
    server.kubectl_ok(&["apply", "-f", &server.write("ports.yaml", &both)]);
    nodes_of(server, "port=8080", 1);
    assert_eq!(
        server.event_message(&unbound(server, "port=8080"), "FailedScheduling"),
        "0/3 nodes are available: 1 node(s) didn't have free ports for the requested pod ports, 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling."
    );
    server.kubectl_ok(&["delete", "pods", "-l", "port=8080", "--wait=false"]);
}

fn priority_preempts(server: &Server) {
    let missing = server.kubectl(&[
        "run",
        "lost",
        "--image=busybox",
        "--overrides",
        r#"{"spec":{"priorityClassName":"nope"}}"#,
    ]);
    let said = String::from_utf8_lossy(&missing.stderr);
    assert!(
        said.contains(r#"pods "lost" is forbidden: no PriorityClass with name nope was found"#),
        "{said}"
    );
    let class = server.write(
        "high.yaml",
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: high}\nvalue: 1000\n",
    );
    server.kubectl_ok(&["apply", "-f", &class]);
    let listed = server.kubectl_ok(&["get", "priorityclasses", "--no-headers"]);
    assert!(listed.contains("system-node-critical"), "{listed}");
    default_priority_follows_its_class(server);

    // Each node all but full of a low pod; the important pod takes one's place.
    let cpu = |amount: &str| {
        format!(
            "  containers: [{{name: c, image: busybox, resources: {{requests: {{cpu: \"{amount}\"}}}}}}]\n"
        )
    };
    let low: Vec<String> = named("low", 3)
        .iter()
        .map(|name| format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{tier: low}}}}\nspec:\n{}", cpu("3")))
        .collect();
    server.kubectl_ok(&["apply", "-f", &server.write("low.yaml", &low.join("---\n"))]);
    nodes_of(server, "tier=low", 3);
    let vip = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: vip}}\nspec:\n  priorityClassName: high\n{}",
        cpu("2")
    );
    server.kubectl_ok(&["apply", "-f", &server.write("vip.yaml", &vip)]);
    let running = server.kubectl_until(
        &[
            "get",
            "pod",
            "vip",
            "-o",
            "jsonpath={.status.phase} {.spec.priority}",
        ],
        LIMIT,
        |text| text.starts_with("Running"),
    );
    assert_eq!(running, "Running 1000");
    let left = server.kubectl_until(
        &["get", "pods", "-l", "tier=low", "-o", "name"],
        LIMIT,
        |text| text.lines().count() == 2,
    );
    let victim = named("low", 3)
        .into_iter()
        .find(|name| !left.contains(name.as_str()))
        .unwrap();
    let preempted = server.event_message(&victim, "Preempted");
    assert!(preempted.starts_with("Preempted by pod "), "{preempted}");
}

/// A pod that names no class gets the globalDefault one's value, and 0 once it is gone.
fn default_priority_follows_its_class(server: &Server) {
    let class = server.write(
        "everyday.yaml",
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: everyday}\nvalue: 10\nglobalDefault: true\n",
    );
    server.kubectl_ok(&["apply", "-f", &class]);
    let probe = [
        "run",
        "probe",
        "--image=busybox",
        "--dry-run=server",
        "-o",
        "jsonpath={.spec.priority}",
    ];
    assert_eq!(server.kubectl_until(&probe, LIMIT, |p| p == "10"), "10");
    server.kubectl_ok(&["delete", "priorityclass", "everyday"]);
    assert_eq!(server.kubectl_until(&probe, LIMIT, |p| p == "0"), "0");
}

fn placement(server: &Server) {
    let _agent = server.simulated_nodes(3);
    server.kubectl_until(&["get", "nodes", "--no-headers"], LIMIT, |text| {
        text.lines().filter(|l| l.contains(" Ready ")).count() == 3
    });
    server.kubectl_ok(&["label", "node", "sim-0", "zone=a"]);
    server.kubectl_ok(&["label", "node", "sim-1", "sim-2", "zone=b"]);
    affinities_are_honoured(server);
    spread_and_ports_are_honoured(server);
    priority_preempts(server);
}

#[test]
fn placement_on_sqlite() {
    placement(&Server::start("place-sqlite", false));
}

#[test]
fn placement_on_etcd() {
    placement(&Server::start("place-etcd", true));
}
