//! The multi-node suite: one `berth server` and three `berth agent`s, each on a test
//! host of its own on one switch, running the test kit's web app as a Deployment of six
//! replicas behind a LoadBalancer Service — reached from every node, from pods, by name
//! and through an Ingress (over TLS too, and with a connection upgrade passed through),
//! and cut off by NetworkPolicies exactly as far as they say;
//! kept answering when a node dies, when a host is cut off and comes back, and through a
//! rolling update and a drain under a steady 200 requests a second.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cluster::{Cluster, SERVER_NODE};
use crate::netpol::{fetch, until};

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

/// A second app behind its own Service, and an Ingress that routes a TLS host to the
/// web app and a plain one to the second app; its third host names a Secret that does
/// not exist.
const SITES: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  replicas: 2
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
      - name: api
        image: webapp:1
        readinessProbe:
          httpGet: {path: /healthz, port: 8080}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: api
spec:
  selector: {app: api}
  ports:
  - name: http
    port: 80
    targetPort: 8080
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: sites
spec:
  tls:
  - hosts: [secure.example]
    secretName: secure-tls
  - hosts: [absent.example]
    secretName: absent-tls
  rules:
  - host: secure.example
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: web
            port: {name: http}
  - host: api.example
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: api
            port: {number: 80}
  - host: absent.example
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: web
            port: {number: 8080}
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
fn services_and_ingresses_answer_on_every_node() {
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

    ingress_routes_hosts_over_http_and_tls(&cluster);
    policies_cut_exactly_the_traffic_they_say(&cluster);
}

/// Every pod of the namespace refuses connections, but the web app takes them from the
/// api app.
const POLICIES: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: deny-all
spec:
  podSelector: {}
  policyTypes: [Ingress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: api-to-web
spec:
  podSelector:
    matchLabels: {app: web}
  ingress:
  - from:
    - podSelector:
        matchLabels: {app: api}
    ports:
    - {port: 8080, protocol: TCP}
"#;

/// [`POLICIES`] across nodes: a web pod on another node than an api pod takes its
/// connections, and no longer another web pod's; the api pods take none.
fn policies_cut_exactly_the_traffic_they_say(cluster: &Cluster) {
    let webs: Vec<(String, String)> = serving_pods(cluster).into_iter().collect();
    let api = cluster.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "app=api",
        "-o",
        "jsonpath={.items[0].metadata.name} {.items[0].spec.nodeName} {.items[0].status.podIP}",
    ]);
    let [api, api_node, api_ip] = api.split(' ').collect::<Vec<_>>()[..] else {
        panic!("no api pod: {api}");
    };
    let (target, _) = webs.iter().find(|(_, node)| node != api_node).unwrap();
    let (other, _) = webs.iter().find(|(name, _)| name != target).unwrap();
    let jsonpath = "jsonpath={.status.podIP}";
    let ip = cluster.kubectl_ok(&["get", "pod", target, "-o", jsonpath]);
    let (web, api_url) = (
        format!("http://{ip}:8080/"),
        format!("http://{api_ip}:8080/"),
    );
    assert!(until(cluster, (other, &web), true).is_some());

    cluster.apply("policies.yaml", POLICIES);
    assert_eq!(
        until(cluster, (other, &web), false),
        None,
        "{other} to {target}"
    );
    let answer = fetch(cluster, api, &web).unwrap_or_default();
    assert!(
        answer.starts_with(&format!("hostname: {target}")),
        "{api} to {target}: {answer}"
    );
    assert_eq!(
        until(cluster, (other, &api_url), false),
        None,
        "{other} to {api}"
    );
}

/// The Ingress of [`SITES`] on every node's ports 80 and 443, as a client outside the
/// cluster (the server's host) sees it.
fn ingress_routes_hosts_over_http_and_tls(cluster: &Cluster) {
    let (cert, key) = (cluster.file("secure.crt"), cluster.file("secure.key"));
    crate::server::self_signed(&cert, &key, "secure.example");
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    cluster.kubectl_ok(&[
        "create",
        "secret",
        "tls",
        "secure-tls",
        "--cert",
        cert,
        "--key",
        key,
    ]);
    cluster.apply("sites.yaml", SITES);
    let status = "jsonpath={.status.readyReplicas}";
    cluster.kubectl_until(&["get", "deployment", "api", "-o", status], |text| {
        text == "2"
    });

    for node in NODES {
        let address = cluster.address(node);
        let fetch = |scheme: &str, host: &str| {
            let port = if scheme == "https" { 443 } else { 80 };
            let resolve = format!("{host}:{port}:{address}");
            let url = format!("{scheme}://{host}/");
            let args = [
                "curl",
                "-sf",
                "--max-time",
                "5",
                "--cacert",
                cert,
                "--resolve",
                &resolve,
                &url,
            ];
            let output = cluster.on(SERVER_NODE, &args);
            output
                .status
                .success()
                .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
        };
        // The TLS host with its certificate (curl checks it against the one made here).
        let secure = wait_for(|| fetch("https", "secure.example"));
        assert!(secure.starts_with("hostname: web-"), "{node}: {secure}");
        let plain = wait_for(|| fetch("http", "api.example"));
        assert!(plain.starts_with("hostname: api-"), "{node}: {plain}");
        // A host whose Secret is missing: plain HTTP only.
        let absent = wait_for(|| fetch("http", "absent.example"));
        assert!(absent.starts_with("hostname: web-"), "{node}: {absent}");
        assert_eq!(fetch("https", "absent.example"), None, "{node}");
    }
    let reported = "involvedObject.name=sites,reason=TLSSecretUnusable";
    let events = cluster.kubectl_until(
        &[
            "get",
            "events",
            "--field-selector",
            reported,
            "-o",
            "jsonpath={.items[*].message}",
        ],
        |text| !text.is_empty(),
    );
    assert!(
        events.contains("TLS Secret default/absent-tls not found"),
        "{events}"
    );

    // An upgraded connection is handed over both ways, as a WebSocket's is.
    let address: SocketAddr = format!("{}:80", cluster.address("node-2")).parse().unwrap();
    let echoed = cluster.on_thread(SERVER_NODE, move || {
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let ask = "GET /upgrade HTTP/1.1\r\nHost: api.example\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n";
        stream.write_all(ask.as_bytes()).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        stream.write_all(b"ping\n").unwrap();
        let mut echo = [0u8; 5];
        stream.read_exact(&mut echo).unwrap();
        (String::from_utf8_lossy(&head).into_owned(), echo)
    });
    let (head, echo) = echoed.join().unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(&echo, b"ping\n");
}

/// What `attempt` gives once it gives something (within a minute): routes reach every
/// node within moments of being written.
fn wait_for(attempt: impl Fn() -> Option<String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(found) = attempt() {
            return found;
        }
        assert!(Instant::now() < deadline, "never answered");
        std::thread::sleep(Duration::from_millis(200));
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
    /// `rate` requests a second to `target` from node `node`'s host.
    fn start(cluster: &Cluster, node: &str, target: SocketAddr, rate: u32) -> Self {
        const THREADS: u32 = 4;
        let stop = Arc::new(AtomicBool::new(false));
        let interval = Duration::from_secs(1) * THREADS / rate;
        let threads = (0..THREADS)
            .map(|_| {
                let stop = stop.clone();
                cluster.on_thread(node, move || send(target, interval, &stop))
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

/// One load thread: a request every `interval` until `stop`.
fn send(target: SocketAddr, interval: Duration, stop: &AtomicBool) -> Tally {
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

    // The rolling update replaces every pod; the load runs until the old ones are gone.
    let before = names(&serving_pods(&cluster));
    let load = Load::start(&cluster, "node-1", target, 200);
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
    let load = Load::start(&cluster, "node-1", target, 200);
    cluster.kubectl_ok(&["drain", "node-2", "--ignore-daemonsets", "--timeout=120s"]);
    six_serving_away_from(&cluster, &["node-2"]);
    let on_node_2 = "jsonpath={.items[?(@.spec.nodeName==\"node-2\")].metadata.name}";
    cluster.kubectl_until(
        &["get", "pods", "-l", "app=web", "-o", on_node_2],
        str::is_empty,
    );
    load.stop().assert_all_answered("the drain");
}

/// A pod on the server's node and one on a node behind a router, serving a large file
/// and a page, behind a Service.
const FAR: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: far
  labels: {app: far}
spec:
  terminationGracePeriodSeconds: 1
  nodeSelector: {kubernetes.io/hostname: far}
  containers:
  - name: far
    image: busybox:1
    command: ["sh", "-c", "mkdir /www; echo far > /www/index.html; dd if=/dev/zero of=/www/big bs=1000 count=1000; exec httpd -f -p 8080 -h /www"]
---
apiVersion: v1
kind: Pod
metadata:
  name: near
spec:
  terminationGracePeriodSeconds: 1
  nodeSelector: {kubernetes.io/hostname: first}
  containers:
  - name: near
    image: busybox:1
    command: ["sleep", "3600"]
---
apiVersion: v1
kind: Service
metadata:
  name: far
spec:
  selector: {app: far}
  ports:
  - {port: 80, targetPort: 8080}
"#;

#[test]
fn nodes_without_a_shared_link_carry_pod_traffic_over_vxlan() {
    let mut cluster = Cluster::start("mn-vxlan", true, &[]);
    cluster.join_across_a_router("far");
    cluster.apply("far.yaml", FAR);
    cluster.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/far",
        "pod/near",
        "--timeout=60s",
    ]);
    let ip = field(&cluster, "pod", "far", ".status.podIP");

    // A megabyte crosses: full-size packets fit the tunnel (or its path MTU is learnt).
    let fetch = format!("wget -qO- http://{ip}:8080/big | wc -c");
    let size = cluster.kubectl_until(&["exec", "near", "--", "sh", "-c", &fetch], |text| {
        text.trim() != "0"
    });
    assert_eq!(size.trim(), "1000000");
    let by_name = "http://far.default.svc.cluster.local/";
    let page = cluster.kubectl_ok(&["exec", "near", "--", "wget", "-qO-", by_name]);
    assert_eq!(page, "far\n");

    // Over the VXLAN device, on both ends, its MTU the link's less the tunnel's 50 bytes.
    let mtu = |node: &str, device: &str| {
        let output = cluster.on(node, &["ip", "-d", "link", "show", device]);
        let shown = String::from_utf8_lossy(&output.stdout).into_owned();
        let mtu: u32 = shown
            .split(" mtu ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("{node}: {shown}"));
        (mtu, shown)
    };
    for node in [SERVER_NODE, "far"] {
        let (link, _) = mtu(node, "eth0");
        let (tunnel, shown) = mtu(node, "berth.vxlan");
        assert!(shown.contains("vxlan id 1 "), "{node}: {shown}");
        assert_eq!(tunnel, link - 50, "{node}: {shown}");
    }
}
