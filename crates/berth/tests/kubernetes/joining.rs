//! A second machine joins: `berth agent --server URL --token TOKEN` on a test host of
//! its own, linked to the server's host by a veth pair, registers its Node, runs the
//! pods bound to it, and serves their logs and streams to the API server; pods on the
//! two nodes reach each other by address and through Services; a wrong token gets a
//! clear refusal and no Node.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use berth_testkit::etcd::free_port;
use berth_testkit::guard::{CgroupGuard, ChildGuard, NetnsGuard, Scratch};

use crate::server::poll_kubectl;

/// The server host's address on the link, and the joining host's.
const SERVER_IP: &str = "10.201.0.1";
const AGENT_IP: &str = "10.201.0.2";

/// Two test hosts on one link: the server (with its own agent) on one, a joining agent
/// on the other. Dropped in field order: processes first, then cgroups, files, hosts.
struct TwoHosts {
    agent: Option<ChildGuard>,
    _server: ChildGuard,
    _cgroups: [CgroupGuard; 2],
    scratch: Scratch,
    server_host: NetnsGuard,
    agent_host: NetnsGuard,
    port: u16,
    cgroup_parent: String,
}

impl TwoHosts {
    fn start() -> Self {
        let scratch = Scratch::new("join").unwrap();
        let id = std::process::id();
        let server_host = NetnsGuard::create(&format!("berth-join-s-{id}")).unwrap();
        let agent_host = NetnsGuard::create(&format!("berth-join-a-{id}")).unwrap();
        link(&server_host, &agent_host, id);
        let cgroup_parent = format!("berth-test/join-{id}");
        for dir in ["server/agent/images", "second/agent/images"] {
            let images = scratch.path().join(dir);
            std::fs::create_dir_all(&images).unwrap();
            let layout =
                berth_testkit::images::busybox_image(&scratch.path().join("busybox")).unwrap();
            let archive = berth_testkit::layout::layout_archive(&layout, "busybox:1").unwrap();
            std::fs::write(images.join("busybox.tar"), archive).unwrap();
        }
        let port = free_port().unwrap();
        let server = berth(&server_host, scratch.path(), "server")
            .args(["server", "--bind", &format!("{SERVER_IP}:{port}")])
            .arg("--data-dir")
            .arg(scratch.path().join("server"))
            .arg("--exec-root")
            .arg(scratch.path().join("server-run"))
            .args(["--node-name", "first", "--node-ip", SERVER_IP])
            .args(["--cgroup-parent", &format!("{cgroup_parent}/first")])
            .spawn()
            .unwrap();
        let hosts = Self {
            agent: None,
            _server: ChildGuard(server),
            _cgroups: [
                CgroupGuard::new(format!("{cgroup_parent}/first")),
                CgroupGuard::new(format!("{cgroup_parent}/second")),
            ],
            scratch,
            server_host,
            agent_host,
            port,
            cgroup_parent,
        };
        hosts.kubectl_until(&["get", "node", "first"], |text| text.contains(" Ready "));
        hosts
    }

    /// `berth agent` on the joining host with `token`, as `name`.
    fn agent(&self, token: &str, name: &str) -> Command {
        let mut command = berth(&self.agent_host, self.scratch.path(), name);
        command
            .args([
                "agent",
                "--server",
                &format!("https://{SERVER_IP}:{}", self.port),
            ])
            .args(["--token", token])
            .args(["--node-name", name, "--node-ip", AGENT_IP])
            .arg("--data-dir")
            .arg(self.scratch.path().join(name))
            .arg("--exec-root")
            .arg(self.scratch.path().join(format!("{name}-run")))
            .args(["--cgroup-parent", &format!("{}/{name}", self.cgroup_parent)]);
        command
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net={}", self.server_host.path().display()))
            .args(["timeout", "60", "kubectl"])
            .args(args)
            .env(
                "KUBECONFIG",
                self.scratch.path().join("server/admin.kubeconfig"),
            )
            .env("HOME", self.scratch.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn kubectl_until(&self, args: &[&str], done: impl Fn(&str) -> bool) -> String {
        let log = || self.logs();
        let limit = Duration::from_secs(60);
        poll_kubectl(|args| self.kubectl(args), args, (limit, done), log)
    }

    fn logs(&self) -> String {
        ["server", "second"]
            .iter()
            .map(|name| {
                let log = std::fs::read_to_string(self.scratch.path().join(format!("{name}.log")));
                format!("{name}: {}", log.unwrap_or_default())
            })
            .collect()
    }
}

/// `berth` on `host`, its stderr in `<dir>/<log>.log`.
fn berth(host: &NetnsGuard, dir: &Path, log: &str) -> Command {
    let log = std::fs::File::create(dir.join(format!("{log}.log"))).unwrap();
    let mut command = Command::new("nsenter");
    command
        .arg(format!("--net={}", host.path().display()))
        .arg(env!("CARGO_BIN_EXE_berth"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    command
}

/// A veth pair between the two hosts, addressed [`SERVER_IP`] and [`AGENT_IP`].
fn link(server: &NetnsGuard, agent: &NetnsGuard, id: u32) {
    let (a, b) = (format!("bj{id}s"), format!("bj{id}a"));
    let ip = |args: &[&str]| {
        let status = Command::new("ip").args(args).status().unwrap();
        assert!(status.success(), "ip {args:?}");
    };
    ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
    ip(&["link", "set", &a, "netns", server.name()]);
    ip(&["link", "set", &b, "netns", agent.name()]);
    for (host, device, address) in [(server, &a, SERVER_IP), (agent, &b, AGENT_IP)] {
        ip(&[
            "-n",
            host.name(),
            "addr",
            "add",
            &format!("{address}/24"),
            "dev",
            device,
        ]);
        ip(&["-n", host.name(), "link", "set", device, "up"]);
    }
}

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
    let mut hosts = TwoHosts::start();
    let token = std::fs::read_to_string(hosts.scratch.path().join("server/token")).unwrap();
    let token = token.trim();

    // A token whose CA hash is not the cluster's: refused, and no Node appears.
    let wrong = format!(
        "K10{}::server:{}",
        "0".repeat(64),
        token.rsplit(':').next().unwrap()
    );
    let refused = hosts
        .agent(&wrong, "impostor")
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{said}");
    assert!(said.contains("CA"), "{said}");
    let nodes = hosts.kubectl(&["get", "node", "impostor"]);
    assert!(
        !nodes.status.success(),
        "{}",
        String::from_utf8_lossy(&nodes.stdout)
    );

    hosts.agent = Some(ChildGuard(hosts.agent(token, "second").spawn().unwrap()));
    let node = hosts.kubectl_until(
        &["get", "node", "second", "-o", "jsonpath={.status.addresses[0].address} {.spec.podCIDR} {.status.conditions[?(@.type==\"Ready\")].status}"],
        |text| text.ends_with("True"),
    );
    assert_eq!(node, format!("{AGENT_IP} 10.42.1.0/24 True"));

    // Its pods run there, and their logs and streams come through its own API.
    let manifest = hosts.scratch.path().join("away.yaml");
    std::fs::write(&manifest, PINNED).unwrap();
    let applied = hosts.kubectl(&["apply", "-f", manifest.to_str().unwrap()]);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
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
    let curl = Command::new("nsenter")
        .arg(format!("--net={}", hosts.server_host.path().display()))
        .args(["curl", "-sf", "--max-time", "10", &format!("http://{ip}/")])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "served by away\n");

    let deleted = hosts.kubectl(&["delete", "pod", "away", "home", "--timeout=60s"]);
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
}
