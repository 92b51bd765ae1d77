//! The cluster keeping its declarations true, on simulated nodes (`berth agent
//! --simulate`): nodes register and heartbeat, pods bound to them run and are deleted
//! gracefully; the scheduler places pods where they fit and says why when none does.

use std::time::Duration;

use crate::server::Server;

const LIMIT: Duration = Duration::from_secs(30);

fn simulated_nodes_run_their_pods(server: &Server) {
    server.kubectl_until(&["get", "nodes", "--no-headers"], LIMIT, |text| {
        text.lines().filter(|l| l.contains(" Ready ")).count() == 3
    });
    server.kubectl_until(
        &["-n", "kube-node-lease", "get", "leases", "-o", "name"],
        LIMIT,
        |text| text.lines().count() == 3,
    );
    let pod = server.write(
        "bound.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bound\nspec:\n  nodeName: sim-1\n  containers: [{name: c, image: busybox}]\n",
    );
    server.kubectl_ok(&["apply", "-f", &pod]);
    let running = server.kubectl_until(
        &[
            "get",
            "pod",
            "bound",
            "-o",
            "jsonpath={.status.phase} {.status.podIP}",
        ],
        LIMIT,
        |text| text.starts_with("Running "),
    );
    assert!(running.contains(" 10."), "{running}");
    // The pod's node finishes its graceful deletion.
    server.kubectl_ok(&["delete", "pod", "bound", "--timeout=30s"]);
    assert!(!server.kubectl(&["get", "pod", "bound"]).status.success());
}

fn pod(server: &Server, name: &str, cpu: &str, extra: &str) -> String {
    server.write(
        &format!("{name}.yaml"),
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{extra}  containers: [{{name: c, image: busybox, resources: {{requests: {{cpu: \"{cpu}\"}}}}}}]\n"
        ),
    )
}

/// The FailedScheduling messages about pod `name`, once there is one.
fn scheduling_failures(server: &Server, name: &str) -> String {
    let selector = format!("involvedObject.name={name},reason=FailedScheduling");
    server.kubectl_until(
        &[
            "get",
            "events",
            "--field-selector",
            &selector,
            "-o",
            "jsonpath={.items[*].message}",
        ],
        LIMIT,
        |text| !text.is_empty(),
    )
}

fn the_scheduler_places_pods_where_they_fit(server: &Server) {
    server.kubectl_ok(&["apply", "-f", &pod(server, "small", "100m", "")]);
    let placed = server.kubectl_until(
        &[
            "get",
            "pod",
            "small",
            "-o",
            "jsonpath={.status.phase} {.spec.nodeName}",
        ],
        LIMIT,
        |text| text.starts_with("Running sim-"),
    );
    assert!(placed.starts_with("Running sim-"), "{placed}");

    // Too big for any node, one of them tainted: Pending, with kube-scheduler's reasons.
    server.kubectl_ok(&["taint", "nodes", "sim-0", "dedicated=gpu:NoSchedule"]);
    server.kubectl_ok(&["apply", "-f", &pod(server, "huge", "64", "")]);
    assert_eq!(
        scheduling_failures(server, "huge"),
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu."
    );
    assert_eq!(
        server.kubectl_ok(&[
            "get",
            "pod",
            "huge",
            "-o",
            "jsonpath={.status.phase} {.status.conditions[0].reason}"
        ]),
        "Pending Unschedulable"
    );

    // A pod no node's labels match is placed once a node gets them.
    let zoned = pod(server, "zoned", "1", "  nodeSelector: {zone: b}\n");
    server.kubectl_ok(&["apply", "-f", &zoned]);
    assert_eq!(
        scheduling_failures(server, "zoned"),
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 node(s) didn't match Pod's node affinity/selector."
    );
    server.kubectl_ok(&["label", "node", "sim-2", "zone=b"]);
    server.kubectl_until(
        &[
            "get",
            "pod",
            "zoned",
            "-o",
            "jsonpath={.status.phase} {.spec.nodeName}",
        ],
        LIMIT,
        |text| text == "Running sim-2",
    );
}

/// Running pods of ReplicaSet `set`, by name.
fn running_pods(server: &Server, set: &str) -> Vec<String> {
    let listed = server.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        &format!("set={set}"),
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.status.phase}{\"\\n\"}{end}",
    ]);
    listed
        .lines()
        .filter(|l| l.ends_with(" Running"))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect()
}

fn replica_sets_keep_their_pods(server: &Server) {
    let set = server.write(
        "keeper.yaml",
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: keeper\nspec:\n  replicas: 3\n  selector:\n    matchLabels: {set: keeper}\n  template:\n    metadata:\n      labels: {set: keeper}\n    spec:\n      containers: [{name: c, image: busybox, resources: {requests: {cpu: 100m}}}]\n",
    );
    server.kubectl_ok(&["apply", "-f", &set]);
    let deadline = std::time::Instant::now() + LIMIT;
    let wait_for = |count: usize| loop {
        let running = running_pods(server, "keeper");
        let ready = server.kubectl_ok(&[
            "get",
            "rs",
            "keeper",
            "-o",
            "jsonpath={.status.readyReplicas}",
        ]);
        if running.len() == count && ready == count.to_string() {
            return running;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{running:?} running, {ready:?} ready, wanted {count}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let first = wait_for(3);
    // A pod that dies is replaced.
    server.kubectl_ok(&["delete", "pod", &first[0], "--wait=false"]);
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let running = running_pods(server, "keeper");
        if running.len() == 3 && !running.contains(&first[0]) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not replaced: {running:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server.kubectl_ok(&["scale", "rs", "keeper", "--replicas=1"]);
    let deadline = std::time::Instant::now() + LIMIT;
    while running_pods(server, "keeper").len() != 1 {
        assert!(std::time::Instant::now() < deadline, "not scaled down");
        std::thread::sleep(Duration::from_millis(100));
    }
    server.kubectl_ok(&["delete", "rs", "keeper"]);
    server.kubectl_until(
        &["get", "pods", "-l", "set=keeper", "-o", "name"],
        LIMIT,
        str::is_empty,
    );
}

fn scenarios(server: &Server) {
    let _agent = server.simulated_nodes(3);
    simulated_nodes_run_their_pods(server);
    the_scheduler_places_pods_where_they_fit(server);
    replica_sets_keep_their_pods(server);
}

#[test]
fn scenarios_on_sqlite() {
    scenarios(&Server::start("sim-sqlite", false));
}

#[test]
fn scenarios_on_etcd() {
    scenarios(&Server::start("sim-etcd", true));
}
