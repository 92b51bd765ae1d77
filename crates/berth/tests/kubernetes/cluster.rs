//! A cluster of test machines: `berth server` on one host and `berth agent`s joined to
//! it, each on a host of its own on one switch ([`crate::hosts`]), each node with the
//! test kit's images (`busybox:1`, `webapp:1`) in its air-gap images folder. Nodes can
//! be killed, their hosts cut off and reconnected; everything goes on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use berth_testkit::etcd::free_port;
use berth_testkit::guard::{CgroupGuard, ChildGuard, Scratch};

use crate::hosts::{Host, Router, Switch};
use crate::server::{poll_kubectl, succeeded};

/// A node agent and its machine. Dropped in field order: the process, its pods, the host.
struct Agent {
    name: String,
    process: Option<ChildGuard>,
    pods: Option<CgroupGuard>,
    host: Host,
}

/// The server's host and the agents' hosts on one switch.
pub(crate) struct Cluster {
    // Dropped in this order: agents, the server, files, hosts, the switch.
    agents: Vec<Agent>,
    _server: ChildGuard,
    _server_pods: CgroupGuard,
    images: Vec<(&'static str, Vec<u8>)>,
    scratch: Scratch,
    server_host: Host,
    switch: Switch,
    far: Option<(Router, Switch)>,
    label: String,
    port: u16,
    agent_flags: Vec<String>,
}

/// Where the server runs its own node, if it does.
pub(crate) const SERVER_NODE: &str = "first";

impl Cluster {
    /// The server on host 1 with `flags`; with `own_node` it also runs its own agent
    /// as node [`SERVER_NODE`], otherwise it runs with `--disable-agent`.
    pub(crate) fn start(label: &str, own_node: bool, flags: &[&str]) -> Self {
        let scratch = Scratch::new(label).unwrap();
        let images = test_images(scratch.path());
        let switch = Switch::create(label, "10.203.0");
        let server_host = switch.plug(label, 1);
        let port = free_port().unwrap();
        let cgroup = format!("berth-test/{label}-{}", std::process::id());
        let mut server = berth(&server_host, scratch.path(), "server");
        server
            .args([
                "server",
                "--bind",
                &format!("{}:{port}", server_host.address()),
            ])
            .arg("--data-dir")
            .arg(scratch.path().join("server"))
            .args(flags);
        if own_node {
            place_images(&images, &scratch.path().join("server"));
            server
                .arg("--exec-root")
                .arg(scratch.path().join("server-run"))
                .args([
                    "--node-name",
                    SERVER_NODE,
                    "--node-ip",
                    server_host.address(),
                ])
                .args(["--cgroup-parent", &format!("{cgroup}/{SERVER_NODE}")])
                .arg("--cni-conf-dir")
                .arg(no_cni(scratch.path(), SERVER_NODE));
        } else {
            server.arg("--disable-agent");
        }
        let cluster = Self {
            agents: Vec::new(),
            _server: ChildGuard(server.spawn().unwrap()),
            _server_pods: CgroupGuard::new(format!("{cgroup}/{SERVER_NODE}")),
            images,
            scratch,
            server_host,
            switch,
            far: None,
            label: label.to_string(),
            port,
            agent_flags: Vec::new(),
        };
        cluster.kubectl_until(&["get", "--raw", "/readyz"], |text| text == "ok");
        if own_node {
            cluster.wait_ready(SERVER_NODE);
        }
        cluster
    }

    /// The join token the server printed.
    pub(crate) fn token(&self) -> String {
        let token = std::fs::read_to_string(self.scratch.path().join("server/token")).unwrap();
        token.trim().to_string()
    }

    /// `berth agent --server URL --token TOKEN` for node `name`, on its host (plugged in
    /// on first use).
    pub(crate) fn agent_command(&mut self, name: &str, token: &str) -> Command {
        self.agent_mut(name);
        let host = self.host(name);
        let cgroup = format!("berth-test/{}-{}/{name}", self.label, std::process::id());
        let data = self.scratch.path().join(name);
        place_images(&self.images, &data);
        let address = host.address().to_string();
        let mut command = berth(host, self.scratch.path(), name);
        command
            .args(["agent", "--server", &self.server_url(), "--token", token])
            .args(["--node-name", name, "--node-ip", &address])
            .arg("--data-dir")
            .arg(&data)
            .arg("--exec-root")
            .arg(self.scratch.path().join(format!("{name}-run")))
            .args(["--cgroup-parent", &cgroup])
            .arg("--cni-conf-dir")
            .arg(no_cni(self.scratch.path(), name))
            .args(&self.agent_flags);
        let agent = self.agent_mut(name);
        agent.pods.get_or_insert_with(|| CgroupGuard::new(cgroup));
        command
    }

    /// Flags every agent started from now on gets.
    pub(crate) fn agent_flags(&mut self, flags: &[&str]) {
        self.agent_flags = flags.iter().map(|flag| flag.to_string()).collect();
    }

    /// Joins node `name` from a host on another LAN (10.204.0.0/24), which a router
    /// joins to the server's: the node shares no link with the others.
    pub(crate) fn join_across_a_router(&mut self, name: &str) {
        if self.far.is_none() {
            let far = Switch::create(&format!("{}-far", self.label), "10.204.0");
            let router = self.switch.route_to(&far, &self.label);
            let hosts =
                std::iter::once(&self.server_host).chain(self.agents.iter().map(|a| &a.host));
            for host in hosts {
                host.route(&far.network(), &self.switch.gateway());
            }
            self.far = Some((router, far));
        }
        let (_, far) = self.far.as_ref().unwrap();
        let number = u8::try_from(11 + self.agents.len()).unwrap();
        let host = far.plug(&format!("{}-far", self.label), number);
        host.route(&self.switch.network(), &far.gateway());
        self.agents.push(Agent {
            name: name.to_string(),
            process: None,
            pods: None,
            host,
        });
        self.join(name);
    }

    /// Joins node `name` with the server's token, and waits until it is Ready.
    pub(crate) fn join(&mut self, name: &str) {
        let token = self.token();
        let process = self.agent_command(name, &token).spawn().unwrap();
        self.agent_mut(name).process = Some(ChildGuard(process));
        self.wait_ready(name);
    }

    /// The machine of node `name` dies: its agent and every process of its pods are
    /// killed at once.
    pub(crate) fn kill_node(&mut self, name: &str) {
        let agent = self.agent_mut(name);
        agent.process = None;
        agent.pods = None;
    }

    /// Cuts node `name`'s host off the network.
    pub(crate) fn disconnect(&self, name: &str) {
        self.switch.disconnect(self.host(name));
    }

    /// Connects node `name`'s host again.
    pub(crate) fn reconnect(&self, name: &str) {
        self.switch.reconnect(self.host(name));
    }

    /// How many processes of node `name`'s pods have `needle` in their command line.
    pub(crate) fn processes(&self, name: &str, needle: &str) -> usize {
        let group = format!("berth-test/{}-{}/{name}", self.label, std::process::id());
        let root = ["/sys/fs/cgroup/pids", "/sys/fs/cgroup"]
            .iter()
            .map(|hierarchy| Path::new(hierarchy).join(&group))
            .find(|dir| dir.is_dir());
        let mut pids = Vec::new();
        if let Some(root) = root {
            processes_below(&root, &mut pids);
        }
        pids.iter()
            .filter(|pid| {
                let command = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                String::from_utf8_lossy(&command).contains(needle)
            })
            .count()
    }

    /// Node `name`'s host's network namespace.
    fn netns(&self, name: &str) -> PathBuf {
        self.host(name).netns().path()
    }

    /// Node `name`'s address.
    pub(crate) fn address(&self, name: &str) -> String {
        self.host(name).address().to_string()
    }

    /// `args` run on node `name`'s host (the server's for [`SERVER_NODE`]), for at most
    /// a minute.
    pub(crate) fn on(&self, name: &str, args: &[&str]) -> Output {
        self.host(name)
            .command("timeout")
            .arg("60")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// What `url` answers on node `name`'s host (empty on failure).
    pub(crate) fn curl(&self, name: &str, url: &str) -> String {
        let output = self.on(name, &["curl", "-sf", "--max-time", "5", url]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// kubectl as the cluster's admin, on the server's host.
    pub(crate) fn kubectl(&self, args: &[&str]) -> Output {
        self.server_host
            .command("timeout")
            .args(["60", "kubectl"])
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

    /// kubectl's output; it must succeed.
    pub(crate) fn kubectl_ok(&self, args: &[&str]) -> String {
        succeeded(self.kubectl(args), args, || self.logs())
    }

    /// Runs kubectl until its output satisfies `done` (within two minutes); the output.
    pub(crate) fn kubectl_until(&self, args: &[&str], done: impl Fn(&str) -> bool) -> String {
        let limit = Duration::from_secs(120);
        poll_kubectl(
            |args| self.kubectl(args),
            args,
            (limit, done),
            || self.logs(),
        )
    }

    /// The file `name` in the cluster's scratch folder.
    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.scratch.path().join(name)
    }

    /// `work` run on a thread of its own on node `name`'s host (its network namespace):
    /// for clients the test holds in its own hands.
    pub(crate) fn on_thread<T: Send + 'static>(
        &self,
        name: &str,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let netns = self.netns(name);
        std::thread::spawn(move || {
            let namespace = std::fs::File::open(netns).unwrap();
            nix::sched::setns(namespace, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            work()
        })
    }

    /// `kubectl apply` of `manifest`, kept in the scratch folder as `name`.
    pub(crate) fn apply(&self, name: &str, manifest: &str) {
        let path = self.scratch.path().join(name);
        std::fs::write(&path, manifest).unwrap();
        self.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    }

    /// Every process's log.
    pub(crate) fn logs(&self) -> String {
        std::iter::once("server")
            .chain(self.agents.iter().map(|agent| agent.name.as_str()))
            .map(|name| {
                let log = std::fs::read_to_string(self.scratch.path().join(format!("{name}.log")));
                format!("--- {name}:\n{}", log.unwrap_or_default())
            })
            .collect()
    }

    fn wait_ready(&self, name: &str) {
        let ready = "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}";
        self.kubectl_until(&["get", "node", name, "-o", ready], |text| text == "True");
    }

    fn server_url(&self) -> String {
        format!("https://{}:{}", self.server_host.address(), self.port)
    }

    fn host(&self, name: &str) -> &Host {
        if name == SERVER_NODE {
            return &self.server_host;
        }
        let agent = self.agents.iter().find(|agent| agent.name == name);
        &agent.unwrap_or_else(|| panic!("no node {name}")).host
    }

    /// Node `name`'s agent, its host plugged in on first use (ports 11, 12, …).
    fn agent_mut(&mut self, name: &str) -> &mut Agent {
        let index = match self.agents.iter().position(|agent| agent.name == name) {
            Some(index) => index,
            None => {
                let number = u8::try_from(11 + self.agents.len()).unwrap();
                let host = self.switch.plug(&self.label, number);
                if let Some((_, far)) = &self.far {
                    host.route(&far.network(), &self.switch.gateway());
                }
                self.agents.push(Agent {
                    name: name.to_string(),
                    process: None,
                    pods: None,
                    host,
                });
                self.agents.len() - 1
            }
        };
        &mut self.agents[index]
    }
}

impl crate::server::Kubectl for Cluster {
    fn run_kubectl(&self, args: &[&str]) -> Output {
        self.kubectl(args)
    }
}

/// The test kit's images as `docker load` archives, named as the nodes know them.
fn test_images(scratch: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let busybox = berth_testkit::images::busybox_image(&scratch.join("busybox")).unwrap();
    let webapp = berth_testkit::images::webapp_image(&scratch.join("webapp")).unwrap();
    vec![
        (
            "busybox.tar",
            berth_testkit::layout::layout_archive(&busybox, "busybox:1").unwrap(),
        ),
        (
            "webapp.tar",
            berth_testkit::layout::layout_archive(&webapp, "webapp:1").unwrap(),
        ),
    ]
}

/// Puts the images in the air-gap images folder of the node whose data is `data`.
fn place_images(images: &[(&str, Vec<u8>)], data: &Path) {
    let folder = data.join("agent/images");
    std::fs::create_dir_all(&folder).unwrap();
    for (file, archive) in images {
        std::fs::write(folder.join(file), archive).unwrap();
    }
}

/// The processes in the cgroup `dir` and the groups below it.
fn processes_below(dir: &Path, pids: &mut Vec<String>) {
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    pids.extend(procs.lines().map(str::to_string));
    for child in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if child.path().is_dir() {
            processes_below(&child.path(), pids);
        }
    }
}

/// `berth` on `host`, its stderr in `<dir>/<log>.log`.
/// An empty CNI configuration folder for node `name`: its pods use the built-in bridge
/// whatever the machine's /etc/cni/net.d holds (podman's package puts a bridge there).
fn no_cni(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join(format!("{name}-cni"))
}

fn berth(host: &Host, dir: &Path, log: &str) -> Command {
    let log = std::fs::File::create(dir.join(format!("{log}.log"))).unwrap();
    let mut command = host.command(env!("CARGO_BIN_EXE_berth"));
    command
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    command
}
