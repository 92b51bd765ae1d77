//! The cluster keeping its declarations true, on simulated nodes (`berth agent
//! --simulate`): nodes register and heartbeat, pods bound to them run and are deleted
//! gracefully.

use std::time::Duration;

use crate::server::Server;

const LIMIT: Duration = Duration::from_secs(30);

fn simulated_nodes_run_their_pods(server: &Server) {
    let _agent = server.simulated_nodes(3);
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

#[test]
fn simulated_nodes_on_sqlite() {
    simulated_nodes_run_their_pods(&Server::start("sim-sqlite", false));
}

#[test]
fn simulated_nodes_on_etcd() {
    simulated_nodes_run_their_pods(&Server::start("sim-etcd", true));
}
