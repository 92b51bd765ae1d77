//! A second machine joins: `berth agent --server URL --token TOKEN` on a test host of
//! its own, on the server's switch, registers its Node, runs the
//! pods bound to it, and serves their logs and streams to the API server; pods on the
//! two nodes reach each other by address and through Services; a wrong token gets a
//! clear refusal and no Node.

use std::process::Stdio;

use crate::cluster::{Cluster, SERVER_NODE};

const PINNED: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: away
  labels: {app: away}
spec:
  terminationGracePeriodSeconds: 1
  nodeSelector: {kubernetes.io/hostname: second}
  containers:
  - name: away
    image: busybox:1
    command: ["sh", "-c", "echo running on $(hostname); mkdir /www; echo served by away > /www/index.html; exec httpd -f -p 8080 -h /www"]
---
apiVersion: v1
kind: Pod
metadata:
  name: home
spec:
  terminationGracePeriodSeconds: 1
  nodeSelector: {kubernetes.io/hostname: first}
  containers:
  - name: home
    image: busybox:1
    command: ["sleep", "3600"]
---
apiVersion: v1
kind: Service
metadata:
  name: away
spec:
  selector: {app: away}
  ports:
  - {port: 80, targetPort: 8080}
"#;

#[test]
fn a_second_agent_joins_with_the_server_url_and_token_alone() {
    let mut hosts = Cluster::start("join", true, &[]);
    let token = hosts.token();

    // A token whose CA hash is not the cluster's: refused, and no Node appears.
    let wrong = format!(
        "K10{}::server:{}",
        "0".repeat(64),
        token.rsplit(':').next().unwrap()
    );
    let refused = hosts
        .agent_command("second", &wrong)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{said}");
    assert!(said.contains("CA"), "{said}");
    let nodes = hosts.kubectl(&["get", "node", "second"]);
    assert!(
        !nodes.status.success(),
        "{}",
        String::from_utf8_lossy(&nodes.stdout)
    );

    hosts.join("second");
    let node = hosts.kubectl_until(
        &["get", "node", "second", "-o", "jsonpath={.status.addresses[0].address} {.spec.podCIDR} {.status.conditions[?(@.type==\"Ready\")].status}"],
        |text| text.ends_with("True"),
    );
    assert_eq!(
        node,
        format!("{} 10.42.1.0/24 True", hosts.address("second"))
    );

    // Its pods run there, and their logs and streams come through its own API.
    hosts.apply("away.yaml", PINNED);
    let placed = hosts.kubectl_until(
        &[
            "get",
            "pod",
            "away",
            "-o",
            "jsonpath={.spec.nodeName} {.status.phase}",
        ],
        |text| text == "second Running",
    );
    assert_eq!(placed, "second Running");
    hosts.kubectl_until(&["logs", "away"], |text| text == "running on away\n");
    let exec = hosts.kubectl_until(&["exec", "away", "--", "hostname"], |text| !text.is_empty());
    assert_eq!(exec, "away\n");

    // The nodes route each other's pod ranges: a pod on the first node reaches the
    // pod on the second by its address, and through its Service by name; the first
    // host reaches it through the Service's cluster IP.
    hosts.kubectl_until(
        &["get", "pod", "home", "-o", "jsonpath={.status.phase}"],
        |text| text == "Running",
    );
    let address = hosts.kubectl_until(
        &["get", "pod", "away", "-o", "jsonpath={.status.podIP}"],
        |text| !text.is_empty(),
    );
    assert!(address.starts_with("10.42.1."), "{address}");
    let direct = format!("http://{address}:8080/");
    let fetched = hosts.kubectl_until(&["exec", "home", "--", "wget", "-qO-", &direct], |text| {
        !text.is_empty()
    });
    assert_eq!(fetched, "served by away\n");
    let by_name = "http://away.default.svc.cluster.local/";
    let fetched = hosts.kubectl_until(&["exec", "home", "--", "wget", "-qO-", by_name], |text| {
        !text.is_empty()
    });
    assert_eq!(fetched, "served by away\n");
    let ip = hosts.kubectl_until(
        &["get", "svc", "away", "-o", "jsonpath={.spec.clusterIP}"],
        |text| !text.is_empty(),
    );
    let served = hosts.curl(SERVER_NODE, &format!("http://{ip}/"));
    assert_eq!(served, "served by away\n");

    hosts.kubectl_ok(&["delete", "pod", "away", "home", "--timeout=60s"]);
}
