//! The multi-node suite: one `berth server` and three `berth agent`s, each on a test
//! host of its own on one switch, running the test kit's web app as a Deployment of six
//! replicas behind a LoadBalancer Service — reached from every node, from pods and by
//! name; kept answering when a node dies, when a host is cut off and comes back, and
//! through a rolling update and a drain under a steady 200 requests a second.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cluster::{Cluster, SERVER_NODE};

/// The agents' node names.
const NODES: [&str; 3] = ["node-1", "node-2", "node-3"];

/// The web app: six replicas, Ready once they answer, and a preStop pause so that every
/// node's Service rules forget a pod before it stops; its Service on each node's
/// address at port 8080, as well as on a cluster IP and a node port.
const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 6
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: web
        image: webapp:1
        ports:
        - containerPort: 8080
        readinessProbe:
          httpGet: {path: /healthz, port: 8080}
          periodSeconds: 1
        lifecycle:
          preStop:
            exec:
              command: ["sleep", "2"]
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: LoadBalancer
  selector: {app: web}
  ports:
  - name: http
    port: 8080
    targetPort: 8080
"#;

/// The server (without a node of its own) and three agents; nodes silent for 8 s are
/// unreachable, and their pods evicted 2 s later.
fn three_nodes(label: &str) -> Cluster {
    let flags = [
        "--node-monitor-grace-period=8s",
        "--default-unreachable-toleration-seconds=2",
    ];
    let mut cluster = Cluster::start(label, false, &flags);
    cluster.agent_flags(&["--heartbeat-interval=2s"]);
    for node in NODES {
        cluster.join(node);
    }
    cluster
}

/// Applies the web app and waits until its six replicas are available.
fn deploy_web(cluster: &Cluster) {
    cluster.apply("web.yaml", WEB);
    wait_available(cluster);
}

fn wait_available(cluster: &Cluster) {
    let status =
        "jsonpath={.status.updatedReplicas}/{.status.availableReplicas}/{.status.replicas}";
    cluster.kubectl_until(&["get", "deployment", "web", "-o", status], |text| {
        text == "6/6/6"
    });
}

/// The web pods, as (name, node), that run, are Ready and are not being deleted.
fn serving_pods(cluster: &Cluster) -> BTreeSet<(String, String)> {
    let lines = cluster.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.metadata.deletionTimestamp} {.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
    ]);
    lines
        .lines()
        .filter_map(|line| match line.split(' ').collect::<Vec<_>>()[..] {
            [name, node, "", "True"] => Some((name.to_string(), node.to_string())),
            _ => None,
        })
        .collect()
}

fn names(pods: &BTreeSet<(String, String)>) -> BTreeSet<String> {
    pods.iter().map(|(name, _)| name.clone()).collect()
}

/// Waits until six web pods serve, none of them on `avoided` nodes; their names.
fn six_serving_away_from(cluster: &Cluster, avoided: &[&str]) -> BTreeSet<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let pods = serving_pods(cluster);
        let elsewhere = pods
            .iter()
            .all(|(_, node)| !avoided.contains(&node.as_str()));
        if pods.len() == 6 && elsewhere {
            return names(&pods);
        }
        assert!(
            Instant::now() < deadline,
            "six web pods away from {avoided:?} never served: {pods:?}\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The hostnames `url` answers with on node `node`'s host, asked until every one of
/// `expected` has answered (or 400 times).
fn answering(
    cluster: &Cluster,
    node: &str,
    url: &str,
    expected: &BTreeSet<String>,
) -> BTreeSet<String> {
    let script = format!("for i in $(seq 40); do curl -s --max-time 3 {url}; done");
    let mut seen = BTreeSet::new();
    for _ in 0..10 {
        let output = cluster.on(node, &["sh", "-c", &script]);
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        seen.extend(
            text.lines()
                .filter_map(|line| line.strip_prefix("hostname: "))
                .map(str::to_string),
        );
        if seen.is_superset(expected) {
            break;
        }
    }
    seen
}

fn field(cluster: &Cluster, kind: &str, name: &str, path: &str) -> String {
    let jsonpath = format!("jsonpath={{{path}}}");
    cluster.kubectl_until(&["get", kind, name, "-o", &jsonpath], |text| {
        !text.is_empty()
    })
}

#[test]
fn a_service_answers_on_every_node_from_all_its_replicas() {
    let cluster = three_nodes("mn-svc");
    deploy_web(&cluster);
    let pods: BTreeSet<String> = serving_pods(&cluster)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(pods.len(), 6, "{pods:?}");
    let ip = field(&cluster, "service", "web", ".spec.clusterIP");
    let node_port = field(&cluster, "service", "web", ".spec.ports[0].nodePort");

    // The cluster IP balances over all six replicas from every node.
    for node in NODES {
        let seen = answering(&cluster, node, &format!("http://{ip}:8080/"), &pods);
        assert_eq!(seen, pods, "through {ip} on {node}");
    }

    // The node port and the load balancer's port answer on every node's address, from
    // the server's host, which has no Service rules of its own: the traffic crosses
    // the switch, and its replies come back through the node it went to.
    let mut addresses: Vec<String> = NODES.iter().map(|node| cluster.address(node)).collect();
    for address in &addresses {
        for port in [node_port.as_str(), "8080"] {
            let answer = cluster.curl(SERVER_NODE, &format!("http://{address}:{port}/"));
            assert!(
                answer.starts_with("hostname: web-"),
                "{address}:{port}: {answer:?}"
            );
        }
    }
    addresses.sort();
    let ingress = field(
        &cluster,
        "service",
        "web",
        ".status.loadBalancer.ingress[*].ip",
    );
    let mut listed: Vec<&str> = ingress.split(' ').collect();
    listed.sort();
    assert_eq!(listed, addresses);

    // Pods on every node reach it by name, short and whole.
    let placed = serving_pods(&cluster);
    for node in NODES {
        let (pod, _) = placed
            .iter()
            .find(|(_, on)| on == node)
            .unwrap_or_else(|| panic!("no web pod on {node}: {placed:?}"));
        for url in [
            "http://web:8080/",
            "http://web.default.svc.cluster.local:8080/",
        ] {
            let answer = cluster.kubectl_ok(&["exec", pod, "--", "wget", "-qO-", url]);
            assert!(
                answer.starts_with("hostname: web-"),
                "{url} from {pod}: {answer}"
            );
        }
    }
}

#[test]
fn a_lost_node_s_pods_come_back_elsewhere_and_a_partition_heals() {
    let mut cluster = three_nodes("mn-loss");
    deploy_web(&cluster);
    let ip = field(&cluster, "service", "web", ".spec.clusterIP");
    let url = format!("http://{ip}:8080/");

    // node-3's machine dies: its node goes unreachable, its pods are made again on
    // the others, and the Service answers from the live ones only.
    cluster.kill_node("node-3");
    let ready = ".status.conditions[?(@.type==\"Ready\")].status";
    let jsonpath = format!("jsonpath={{{ready}}}");
    cluster.kubectl_until(&["get", "node", "node-3", "-o", &jsonpath], |text| {
        text == "Unknown"
    });
    let live = six_serving_away_from(&cluster, &["node-3"]);
    for node in ["node-1", "node-2"] {
        let seen = answering(&cluster, node, &url, &live);
        assert_eq!(seen, live, "through {ip} on {node}");
    }

    // node-2's host is cut off: its pods are made again on node-1. Once it is back,
    // its agent stops the pods it was told to delete: six web servers run in all.
    cluster.disconnect("node-2");
    cluster.kubectl_until(&["get", "node", "node-2", "-o", &jsonpath], |text| {
        text == "Unknown"
    });
    let live = six_serving_away_from(&cluster, &["node-2", "node-3"]);
    assert_eq!(answering(&cluster, "node-1", &url, &live), live);
    cluster.reconnect("node-2");
    cluster.kubectl_until(&["get", "node", "node-2", "-o", &jsonpath], |text| {
        text == "True"
    });
    let on_node_2 = "jsonpath={.items[?(@.spec.nodeName==\"node-2\")].metadata.name}";
    cluster.kubectl_until(
        &["get", "pods", "-l", "app=web", "-o", on_node_2],
        str::is_empty,
    );
    assert_eq!(serving_pods(&cluster).len(), 6);
    // The agent stops what it was told to delete once it hears of it: six servers run.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let servers = ["node-1", "node-2"].map(|node| cluster.processes(node, "testapp"));
        if servers.iter().sum::<usize>() == 6 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "web servers on node-1 and node-2: {servers:?}\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(answering(&cluster, "node-2", &url, &live), live);
}

/// A steady stream of HTTP requests from one host, each on a new connection, and what
/// became of them.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Tally>>,
}

/// Requests answered, and the failures with when and why.
#[derive(Default)]
struct Tally {
    answered: usize,
    failed: Vec<String>,
}

impl Tally {
    /// Every request was answered, and there were some.
    fn assert_all_answered(&self, during: &str) {
        let failed = &self.failed;
        assert!(
            failed.is_empty(),
            "{during}: {} failed: {failed:?}",
            failed.len()
        );
        assert!(
            self.answered > 100,
            "{during}: only {} answered",
            self.answered
        );
    }
}

impl Load {
    /// `rate` requests a second to `target` from the host whose network namespace is `netns`.
    fn start(netns: PathBuf, target: SocketAddr, rate: u32) -> Self {
        const THREADS: u32 = 4;
        let stop = Arc::new(AtomicBool::new(false));
        let interval = Duration::from_secs(1) * THREADS / rate;
        let threads = (0..THREADS)
            .map(|_| {
                let (netns, stop) = (netns.clone(), stop.clone());
                std::thread::spawn(move || send(&netns, target, interval, &stop))
            })
            .collect();
        Self { stop, threads }
    }

    fn stop(self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = Tally::default();
        for thread in self.threads {
            let tally = thread.join().unwrap();
            all.answered += tally.answered;
            all.failed.extend(tally.failed);
        }
        all
    }
}

/// One load thread: joins the host's network, then sends a request every `interval`.
fn send(
    netns: &std::path::Path,
    target: SocketAddr,
    interval: Duration,
    stop: &AtomicBool,
) -> Tally {
    let namespace = std::fs::File::open(netns).unwrap();
    nix::sched::setns(namespace.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut next = started;
    while !stop.load(Ordering::SeqCst) {
        match request(target) {
            Ok(()) => tally.answered += 1,
            Err(error) => tally
                .failed
                .push(format!("{:?} in: {error}", started.elapsed())),
        }
        // Paced to the rate, not to the answers.
        next += interval;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    tally
}

fn request(target: SocketAddr) -> Result<(), String> {
    let timeout = Duration::from_secs(3);
    let mut stream = TcpStream::connect_timeout(&target, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET / HTTP/1.0\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| e.to_string())?;
    if answer.starts_with("HTTP/1.1 200") && answer.contains("hostname: web-") {
        Ok(())
    } else {
        Err(format!("answered {answer:?}"))
    }
}

#[test]
fn a_rolling_update_and_a_drain_under_load_lose_no_request() {
    let cluster = three_nodes("mn-roll");
    deploy_web(&cluster);
    let ip = field(&cluster, "service", "web", ".spec.clusterIP");
    let target: SocketAddr = format!("{ip}:8080").parse().unwrap();
    let netns = cluster.netns("node-1");

    // The rolling update replaces every pod; the load runs until the old ones are gone.
    let before = names(&serving_pods(&cluster));
    let load = Load::start(netns.clone(), target, 200);
    cluster.kubectl_ok(&["set", "env", "deployment/web", "ROUND=2"]);
    cluster.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    wait_available(&cluster);
    let all = "jsonpath={.items[*].metadata.name}";
    let left = cluster.kubectl_until(&["get", "pods", "-l", "app=web", "-o", all], |text| {
        text.split(' ').count() == 6
    });
    let tally = load.stop();
    let after: BTreeSet<String> = left.split(' ').map(str::to_string).collect();
    assert!(before.is_disjoint(&after), "{before:?} then {after:?}");
    tally.assert_all_answered("the rolling update");

    // The drain evicts node-2's pods; the load runs until they are gone.
    let load = Load::start(netns, target, 200);
    cluster.kubectl_ok(&["drain", "node-2", "--ignore-daemonsets", "--timeout=120s"]);
    six_serving_away_from(&cluster, &["node-2"]);
    let on_node_2 = "jsonpath={.items[?(@.spec.nodeName==\"node-2\")].metadata.name}";
    cluster.kubectl_until(
        &["get", "pods", "-l", "app=web", "-o", on_node_2],
        str::is_empty,
    );
    load.stop().assert_all_answered("the drain");
}
