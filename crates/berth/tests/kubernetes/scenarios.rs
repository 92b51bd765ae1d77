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

fn scenarios(server: &Server) {
    let _agent = server.simulated_nodes(3);
    simulated_nodes_run_their_pods(server);
    the_scheduler_places_pods_where_they_fit(server);
}

#[test]
fn scenarios_on_sqlite() {
    scenarios(&Server::start("sim-sqlite", false));
}

#[test]
fn scenarios_on_etcd() {
    scenarios(&Server::start("sim-etcd", true));
}
