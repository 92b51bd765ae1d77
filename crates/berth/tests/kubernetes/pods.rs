//! Real pods: an all-in-one `berth server` (the API server, the controllers and the
//! machine's own agent) on a test host of its own, with the test kit's busybox in the
//! agent's air-gap images folder, driven by the stock kubectl — pods run as containers,
//! are reachable on their pod address and host port, report the kubelet's states and
//! reasons, and leave nothing behind when deleted.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::etcd::free_port;
use berth_testkit::guard::{CgroupGuard, ChildGuard, NetnsGuard, Scratch};

use crate::server::{poll_kubectl, succeeded};

/// An all-in-one server on a test host; on drop the server stops, then the pods'
/// processes, mounts and the host go.
pub(crate) struct AllInOne {
    // Dropped in this order.
    process: ChildGuard,
    _cgroups: CgroupGuard,
    scratch: Scratch,
    host: NetnsGuard,
    port: u16,
    cgroup_parent: String,
}

impl AllInOne {
    pub(crate) fn start(name: &str) -> Self {
        Self::start_with(name, |_| {})
    }

    /// A server whose scratch folder `prepare` fills first: the node's CNI
    /// configuration directory is its `cni/net.d` (empty unless `prepare` writes one,
    /// for the built-in bridge whatever the machine's /etc/cni/net.d holds).
    pub(crate) fn start_with(name: &str, prepare: impl FnOnce(&Path)) -> Self {
        let scratch = Scratch::new(&format!("aio-{name}")).unwrap();
        prepare(scratch.path());
        let images = scratch.path().join("data/agent/images");
        std::fs::create_dir_all(&images).unwrap();
        let layout = berth_testkit::images::busybox_image(&scratch.path().join("busybox")).unwrap();
        let archive = berth_testkit::layout::layout_archive(&layout, "busybox:1").unwrap();
        std::fs::write(images.join("busybox.tar"), archive).unwrap();
        let host = NetnsGuard::create(&format!("berth-aio-{name}-{}", std::process::id())).unwrap();
        let cgroup_parent = format!("berth-test/aio-{name}-{}", std::process::id());
        let port = free_port().unwrap();
        let process = spawn(scratch.path(), &host, port, &cgroup_parent);
        let cluster = Self {
            process,
            _cgroups: CgroupGuard::new(&cgroup_parent),
            scratch,
            host,
            port,
            cgroup_parent,
        };
        cluster.wait_until_ready();
        cluster
    }

    fn wait_until_ready(&self) {
        self.kubectl_until(&["get", "nodes"], Duration::from_secs(30), |text| {
            text.contains("test-node") && text.contains(" Ready ")
        });
    }

    /// Kills the server (and so its agent) with SIGKILL and starts it again.
    pub(crate) fn kill_and_restart(&mut self) {
        let _ = self.process.0.kill();
        let _ = self.process.0.wait();
        self.process = spawn(
            self.scratch.path(),
            &self.host,
            self.port,
            &self.cgroup_parent,
        );
        self.wait_until_ready();
    }

    /// A command on the test host, `args` its start, as the cluster's admin.
    pub(crate) fn host_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net={}", self.host.path().display()))
            .args(args)
            .env(
                "KUBECONFIG",
                self.scratch.path().join("data/admin.kubeconfig"),
            )
            .env("HOME", self.scratch.path());
        command
    }

    /// The cgroup (under each hierarchy's root) the node's pods go in.
    pub(crate) fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }

    /// The test host's network namespace.
    pub(crate) fn host_path(&self) -> std::path::PathBuf {
        self.host.path()
    }

    /// The folder of the cluster's state and the test's files.
    pub(crate) fn scratch_path(&self) -> &Path {
        self.scratch.path()
    }

    /// A command run on the test host.
    pub(crate) fn on_host(&self, args: &[&str]) -> Output {
        self.host_command(&["timeout", "60"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    pub(crate) fn kubectl(&self, args: &[&str]) -> Output {
        let mut all = vec!["kubectl"];
        all.extend(args);
        self.on_host(&all)
    }

    pub(crate) fn kubectl_ok(&self, args: &[&str]) -> String {
        succeeded(self.kubectl(args), args, || self.log())
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.scratch.path().join("server.log")).unwrap_or_default()
    }

    /// Runs kubectl until its output satisfies `done`; the output.
    pub(crate) fn kubectl_until(
        &self,
        args: &[&str],
        limit: Duration,
        done: impl Fn(&str) -> bool,
    ) -> String {
        let log = || format!("server log: {}", self.log());
        poll_kubectl(|args| self.kubectl(args), args, (limit, done), log)
    }

    /// A pod's field, once it satisfies `done`.
    pub(crate) fn pod_field(&self, pod: &str, path: &str, done: impl Fn(&str) -> bool) -> String {
        let jsonpath = format!("jsonpath={{{path}}}");
        self.kubectl_until(
            &["get", "pod", pod, "-o", &jsonpath],
            Duration::from_secs(60),
            done,
        )
    }

    /// The messages of the events about `object` with `reason`, once there are some.
    pub(crate) fn events(&self, object: &str, reason: &str) -> String {
        let selector = format!("involvedObject.name={object},reason={reason}");
        self.kubectl_until(
            &[
                "get",
                "events",
                "--field-selector",
                &selector,
                "-o",
                "jsonpath={.items[*].message}",
            ],
            Duration::from_secs(30),
            |text| !text.is_empty(),
        )
    }

    pub(crate) fn apply(&self, name: &str, manifest: &str) {
        let path = self.scratch.path().join(name);
        std::fs::write(&path, manifest).unwrap();
        self.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    }

    pub(crate) fn curl(&self, url: &str) -> String {
        let output = self.on_host(&["curl", "-sf", "--max-time", "10", url]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl crate::server::Kubectl for AllInOne {
    fn run_kubectl(&self, args: &[&str]) -> Output {
        self.kubectl(args)
    }
}

/// `berth server` with its agent, on the test host, its state in `dir`.
fn spawn(dir: &Path, host: &NetnsGuard, port: u16, cgroup_parent: &str) -> ChildGuard {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .unwrap();
    let process = Command::new("nsenter")
        .arg(format!("--net={}", host.path().display()))
        .arg(env!("CARGO_BIN_EXE_berth"))
        .args(["server", "--bind", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("run"))
        .args(["--node-name", "test-node", "--node-ip", "127.0.0.1"])
        .args(["--cgroup-parent", cgroup_parent])
        .arg("--cni-conf-dir")
        .arg(dir.join("cni/net.d"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    ChildGuard(process)
}

/// Mounts still held under `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&dir))
        .map(String::from)
        .collect()
}

const WEB_POD: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: greeting
data:
  word: hello
  page.txt: from a configMap
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
spec:
  terminationGracePeriodSeconds: 2
  initContainers:
  - name: prepare
    image: busybox:1
    command: ["sh", "-c", "echo prepared > /www/init.txt"]
    volumeMounts:
    - {name: www, mountPath: /www}
  containers:
  - name: httpd
    image: busybox:1
    command: ["sh", "-c"]
    args:
    - echo "$(GREETING) from $(hostname) at $POD_IP on $NODE" > /www/index.html && ln -s /config/page.txt /www/page.txt && exec httpd -f -p 8080 -h /www
    env:
    - name: GREETING
      valueFrom:
        configMapKeyRef: {name: greeting, key: word}
    - name: POD_IP
      valueFrom:
        fieldRef: {fieldPath: status.podIP}
    - name: NODE
      valueFrom:
        fieldRef: {fieldPath: spec.nodeName}
    ports:
    - containerPort: 8080
      hostPort: 18080
    volumeMounts:
    - {name: www, mountPath: /www}
    - {name: config, mountPath: /config, readOnly: true}
  volumes:
  - name: www
    emptyDir: {}
  - name: config
    configMap: {name: greeting}
"#;

const CONFINED_PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: filtered
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox:1
    command: ["sh", "-c", "touch /tmp/file && ! mkdir /tmp/dir"]
    securityContext:
      seccompProfile: {type: Localhost, localhostProfile: profiles/no-mkdir.json}
---
apiVersion: v1
kind: Pod
metadata:
  name: confined
spec:
  restartPolicy: Never
  securityContext: {runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000}
  containers:
  - name: main
    image: busybox:1
    command:
    - sh
    - -c
    - test "$(id -u):$(id -g)" = 1000:3000 && id -G | grep -qw 2000 && touch /data/made && ! touch /root-file 2>/dev/null
    securityContext:
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
    volumeMounts:
    - {name: data, mountPath: /data}
  volumes:
  - name: data
    emptyDir: {}
---
apiVersion: v1
kind: Pod
metadata:
  name: as-root
spec:
  securityContext: {runAsNonRoot: true}
  containers:
  - name: main
    image: busybox:1
"#;

#[test]
fn security_contexts_set_users_groups_and_confinement() {
    let cluster = AllInOne::start("confined");
    // A node's own seccomp profile, as the kubelet's /var/lib/kubelet/seccomp holds them.
    let profiles = cluster.scratch.path().join("data/agent/seccomp/profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    let no_mkdir = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#;
    std::fs::write(profiles.join("no-mkdir.json"), no_mkdir).unwrap();
    cluster.apply("confined.yaml", CONFINED_PODS);
    let filtered = cluster.pod_field("filtered", ".status.phase", |p| {
        matches!(p, "Succeeded" | "Failed")
    });
    assert_eq!(
        filtered,
        "Succeeded",
        "{}",
        cluster.kubectl_ok(&["logs", "filtered"])
    );
    let phase = cluster.pod_field("confined", ".status.phase", |p| {
        matches!(p, "Succeeded" | "Failed")
    });
    assert_eq!(
        phase,
        "Succeeded",
        "{}",
        cluster.kubectl_ok(&["get", "pod", "confined", "-o", "yaml"])
    );
    let refused = cluster.pod_field(
        "as-root",
        ".status.containerStatuses[0].state.waiting.message",
        |m| !m.is_empty(),
    );
    assert!(
        refused.contains("container has runAsNonRoot and image will run as root"),
        "{refused}"
    );
    cluster.kubectl_ok(&["delete", "pods", "--all", "--timeout=60s"]);
}

#[test]
fn one_command_gives_a_node_that_runs_pods_and_removes_them_whole() {
    let mut cluster = AllInOne::start("web");
    let node = cluster.kubectl_ok(&[
        "get",
        "node",
        "test-node",
        "-o",
        "jsonpath={.spec.podCIDR} {.status.nodeInfo.containerRuntimeVersion} {.status.capacity.pods}",
    ]);
    assert!(node.starts_with("10.42.0.0/24 berth://"), "{node}");
    assert!(node.ends_with(" 110"), "{node}");
    cluster.apply("web.yaml", WEB_POD);
    let ip = cluster.pod_field("web", ".status.podIP", |ip| ip.starts_with("10.42.0."));
    cluster.pod_field("web", ".status.phase", |phase| phase == "Running");
    let ready = cluster.pod_field(
        "web",
        ".status.conditions[?(@.type==\"Ready\")].status",
        |s| s == "True",
    );
    assert_eq!(ready, "True");
    let expected = format!("hello from web at {ip} on test-node\n");
    assert_eq!(cluster.curl(&format!("http://{ip}:8080/")), expected);
    assert_eq!(cluster.curl("http://127.0.0.1:18080/"), expected);
    assert_eq!(
        cluster.curl(&format!("http://{ip}:8080/init.txt")),
        "prepared\n"
    );
    assert_eq!(
        cluster.curl(&format!("http://{ip}:8080/page.txt")),
        "from a configMap"
    );
    let init = cluster.pod_field(
        "web",
        ".status.initContainerStatuses[0].state.terminated.reason",
        |r| !r.is_empty(),
    );
    assert_eq!(init, "Completed");
    // The node's operator sees the pod's containers, by the dockershim's names.
    let socket = cluster.scratch.path().join("run/agent/berth.sock");
    let listed = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .args(["ps", "-a", "--pods"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("k8s_httpd_web_default_"), "{listed}");
    assert!(listed.contains("k8s_prepare_web_default_"), "{listed}");

    // A changed configMap reaches the volume in place.
    let patch = r#"{"data":{"page.txt":"changed in place"}}"#;
    cluster.kubectl_ok(&[
        "patch",
        "configmap",
        "greeting",
        "--type",
        "merge",
        "-p",
        patch,
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster.curl(&format!("http://{ip}:8080/page.txt")) != "changed in place" {
        assert!(
            Instant::now() < deadline,
            "the configMap change did not reach the volume"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let started = cluster.events("web", "Started");
    assert!(started.contains("Started container: prepare"), "{started}");
    assert!(started.contains("Started container: httpd"), "{started}");

    // The agent restarts without touching the pod, and adopts it again.
    let id = ".status.containerStatuses[0].containerID";
    let container = cluster.pod_field("web", id, |c| c.starts_with("berth://"));
    cluster.kill_and_restart();
    assert_eq!(cluster.curl(&format!("http://{ip}:8080/")), expected);
    cluster.kubectl_ok(&["label", "pod", "web", "seen=again"]);
    assert_eq!(cluster.pod_field("web", id, |c| !c.is_empty()), container);
    let restarts = ".status.containerStatuses[0].restartCount";
    assert_eq!(cluster.pod_field("web", restarts, |c| !c.is_empty()), "0");

    cluster.kubectl_ok(&["delete", "pod", "web", "--timeout=30s"]);
    let gone = cluster.kubectl(&["get", "pod", "web"]);
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("NotFound"),
        "{gone:?}"
    );
    let agent_run = cluster.scratch.path().join("run/agent");
    assert_eq!(mounts_under(&agent_run.join("pods")), Vec::<String>::new());
    assert_eq!(mounts_under(&agent_run.join("netns")), Vec::<String>::new());
}

const FAILING_PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: exits
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox:1
    command: ["sh", "-c", "exit 3"]
---
apiVersion: v1
kind: Pod
metadata:
  name: completes
spec:
  restartPolicy: OnFailure
  containers:
  - name: main
    image: busybox:1
    command: ["true"]
---
apiVersion: v1
kind: Pod
metadata:
  name: crashes
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: busybox:1
    command: ["/no/such/command"]
---
apiVersion: v1
kind: Pod
metadata:
  name: unconfigured
spec:
  containers:
  - name: main
    image: busybox:1
    command: ["sleep", "100"]
    env:
    - name: X
      valueFrom:
        configMapKeyRef: {name: missing, key: x}
---
apiVersion: v1
kind: Pod
metadata:
  name: unpullable
spec:
  containers:
  - name: main
    image: 127.0.0.1:9/nothing:1
---
apiVersion: v1
kind: Pod
metadata:
  name: host-pid
spec:
  hostPID: true
  containers:
  - name: main
    image: busybox:1
"#;

#[test]
fn failing_pods_show_the_kubelets_states_and_reasons() {
    let cluster = AllInOne::start("failing");
    cluster.apply("failing.yaml", FAILING_PODS);
    let status = ".status.containerStatuses[0]";
    cluster.pod_field("exits", ".status.phase", |p| p == "Failed");
    let exited = cluster.pod_field(
        "exits",
        &format!("{status}.state.terminated.exitCode"),
        |c| !c.is_empty(),
    );
    assert_eq!(exited, "3");
    let reason = cluster.pod_field("exits", &format!("{status}.state.terminated.reason"), |r| {
        !r.is_empty()
    });
    assert_eq!(reason, "Error");
    cluster.pod_field("completes", ".status.phase", |p| p == "Succeeded");

    cluster.pod_field("crashes", &format!("{status}.state.waiting.reason"), |r| {
        r == "CrashLoopBackOff"
    });
    let last = cluster.pod_field(
        "crashes",
        &format!("{status}.lastState.terminated.message"),
        |m| !m.is_empty(),
    );
    assert!(last.contains("/no/such/command"), "{last}");
    let restarts = cluster.pod_field("crashes", &format!("{status}.restartCount"), |c| {
        !c.is_empty()
    });
    assert!(restarts.parse::<u32>().unwrap() >= 1, "{restarts}");
    let backoff = cluster.events("crashes", "BackOff");
    assert!(
        backoff.contains("Back-off restarting failed container main in pod crashes_default"),
        "{backoff}"
    );
    let refused = cluster.events("host-pid", "FailedCreatePodSandBox");
    assert!(
        refused.contains("berth does not support spec.hostPID yet"),
        "{refused}"
    );
    let failed = cluster.events("unconfigured", "Failed");
    assert!(
        failed.contains(r#"Error: configmap "missing" not found"#),
        "{failed}"
    );

    let unconfigured = cluster.pod_field("unconfigured", &format!("{status}.state.waiting"), |w| {
        w.contains("CreateContainerConfigError")
    });
    assert!(
        unconfigured.contains(r#"configmap \"missing\" not found"#),
        "{unconfigured}"
    );

    let pulled = cluster.pod_field("unpullable", &format!("{status}.state.waiting"), |w| {
        w.contains("ImagePullBackOff")
    });
    assert!(pulled.contains("Back-off pulling image"), "{pulled}");
    let events_free_listing = cluster.kubectl_ok(&["get", "pods"]);
    for (pod, shown) in [
        ("exits", "Error"),
        ("completes", "Completed"),
        ("crashes", "CrashLoopBackOff"),
        ("unconfigured", "CreateContainerConfigError"),
        ("unpullable", "ImagePullBackOff"),
    ] {
        let line = events_free_listing
            .lines()
            .find(|l| l.starts_with(pod))
            .unwrap_or_default();
        assert!(line.contains(shown), "{pod}: {events_free_listing}");
    }
    cluster.kubectl_ok(&["delete", "pods", "--all", "--timeout=60s"]);
    assert_eq!(
        mounts_under(&cluster.scratch.path().join("run/agent")),
        Vec::<String>::new()
    );
}

const PROBED_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: probed
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox:1
    command:
    - sh
    - -c
    - |
      mkdir -p /www; echo ok > /www/ready; touch /tmp/alive
      (sleep 6; rm /www/ready; sleep 3; rm /tmp/alive) &
      exec httpd -f -p 8080 -h /www
    ports:
    - {name: http, containerPort: 8080}
    # Generous timeouts: a loaded test machine must not fail the probes by slowness.
    readinessProbe:
      httpGet: {path: /ready, port: http}
      periodSeconds: 1
      timeoutSeconds: 5
    livenessProbe:
      exec:
        command: ["test", "-e", "/tmp/alive"]
      initialDelaySeconds: 2
      periodSeconds: 1
      timeoutSeconds: 5
      failureThreshold: 2
"#;

#[test]
fn probes_gate_readiness_and_restart_what_fails_them() {
    let cluster = AllInOne::start("probed");
    cluster.apply("probed.yaml", PROBED_POD);
    let ready = ".status.conditions[?(@.type==\"Ready\")].status";
    cluster.pod_field("probed", ready, |s| s == "True");
    cluster.pod_field("probed", ready, |s| s == "False");
    let unready = cluster.events("probed", "Unhealthy");
    assert!(
        unready.contains("Readiness probe failed: HTTP probe failed with statuscode: 404"),
        "{unready}"
    );
    let restarts = ".status.containerStatuses[0].restartCount";
    cluster.pod_field("probed", restarts, |c| {
        c.parse::<u32>().is_ok_and(|c| c >= 1)
    });
    let killed = cluster.events("probed", "Killing");
    assert!(
        killed.contains("Container web failed liveness probe, will be restarted"),
        "{killed}"
    );
    let unhealthy = cluster.events("probed", "Unhealthy");
    assert!(
        unhealthy.contains("Liveness probe failed: command exited with 1"),
        "{unhealthy}"
    );
    cluster.kubectl_ok(&["delete", "pod", "probed", "--timeout=30s"]);
}

/// `REGISTRY` stands for the local registry's address.
const WORKLOADS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: web
        image: REGISTRY/webapp:1
        ports:
        - {name: http, containerPort: 8080}
        readinessProbe:
          httpGet: {path: /healthz, port: http}
          periodSeconds: 1
        livenessProbe:
          httpGet: {path: /healthz, port: http}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: finishes
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox:1
        command: ["sh", "-c", "echo done"]
---
apiVersion: batch/v1
kind: Job
metadata:
  name: fails
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox:1
        command: ["sh", "-c", "exit 7"]
---
apiVersion: v1
kind: Pod
metadata:
  name: greedy
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox:1
    command: ["sh", "-c", "head -c 200m /dev/zero | tail"]
    resources:
      limits: {memory: 32Mi}
---
apiVersion: v1
kind: Pod
metadata:
  name: talker
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: busybox:1
    command: ["sh", "-c", "echo one; echo two >&2; sleep 1; echo three; exec sleep 3600"]
"#;

/// The lines of a log whose streams may interleave, sorted, after checking
/// that the last line written (a second after the others) came last.
fn interleaved(log: &str) -> Vec<&str> {
    assert!(log.ends_with("three\n"), "{log:?}");
    let mut lines: Vec<&str> = log.lines().collect();
    lines.sort_unstable();
    lines
}

#[test]
fn controllers_workloads_run_as_real_pods() {
    let cluster = AllInOne::start("workloads");
    // The test kit's web app, pulled from a registry on the node's loopback.
    let address = format!("127.0.0.1:{}", free_port().unwrap());
    let registry = berth_testkit::registry::LocalRegistry::start(
        &cluster.scratch.path().join("registry"),
        Some(&cluster.host.path()),
        &address,
    )
    .unwrap();
    let webapp =
        berth_testkit::images::webapp_image(&cluster.scratch.path().join("webapp")).unwrap();
    registry.push(&webapp, "webapp", "1", None).unwrap();
    cluster.apply("workloads.yaml", &WORKLOADS.replace("REGISTRY", &address));
    cluster.kubectl_ok(&[
        "wait",
        "--for=condition=Available",
        "deployment/web",
        "--timeout=60s",
    ]);
    let pods = cluster.kubectl_ok(&["get", "pods", "-l", "app=web", "-o", "name"]);
    let pod = pods
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("pod/")
        .to_string();
    let pulled = cluster.events(&pod, "Pulled");
    assert!(pulled.contains(&format!("{address}/webapp:1")), "{pulled}");
    let first = pods.lines().next().unwrap().to_string();
    cluster.kubectl_ok(&["delete", &first, "--timeout=30s"]);
    cluster.kubectl_until(
        &[
            "get",
            "pods",
            "-l",
            "app=web",
            "--field-selector=status.phase=Running",
            "-o",
            "name",
        ],
        Duration::from_secs(60),
        |text| text.lines().count() == 2 && !text.contains(&first),
    );

    cluster.kubectl_ok(&[
        "wait",
        "--for=condition=Complete",
        "job/finishes",
        "--timeout=60s",
    ]);
    cluster.kubectl_ok(&[
        "wait",
        "--for=condition=Failed",
        "job/fails",
        "--timeout=60s",
    ]);
    let code = cluster.kubectl_until(
        &[
            "get",
            "pods",
            "-l",
            "job-name=fails",
            "-o",
            "jsonpath={.items[0].status.containerStatuses[0].state.terminated.exitCode}",
        ],
        Duration::from_secs(30),
        |text| !text.is_empty(),
    );
    assert_eq!(code, "7");

    let oom = cluster.pod_field(
        "greedy",
        ".status.containerStatuses[0].state.terminated.reason",
        |r| !r.is_empty(),
    );
    assert_eq!(oom, "OOMKilled");
    let code = cluster.pod_field(
        "greedy",
        ".status.containerStatuses[0].state.terminated.exitCode",
        |c| !c.is_empty(),
    );
    assert_eq!(code, "137");

    // kubectl logs, through the API server to the node's agent.
    assert_eq!(cluster.kubectl_ok(&["logs", "job/finishes"]), "done\n");
    cluster.kubectl_until(
        &["logs", "talker", "--tail=1"],
        Duration::from_secs(30),
        |text| text == "three\n",
    );
    // stdout and stderr reach the log through two pipes, so, as with
    // containerd, lines written at the same instant to both may swap.
    assert_eq!(
        interleaved(&cluster.kubectl_ok(&["logs", "talker"])),
        ["one", "three", "two"]
    );
    let stamped = cluster.kubectl_ok(&["logs", "talker", "--timestamps", "--tail=1"]);
    assert!(
        stamped.starts_with("20") && stamped.ends_with("Z three\n"),
        "{stamped}"
    );
    let followed = cluster.on_host(&["timeout", "3", "kubectl", "logs", "-f", "talker"]);
    assert_eq!(
        interleaved(&String::from_utf8_lossy(&followed.stdout)),
        ["one", "three", "two"]
    );
    let previous = cluster.kubectl(&["logs", "talker", "--previous"]);
    assert!(
        String::from_utf8_lossy(&previous.stderr)
            .contains(r#"previous terminated container "main" in pod "talker" not found"#),
        "{previous:?}"
    );
    cluster.kubectl_ok(&["delete", "deployment", "web", "--timeout=60s"]);
    cluster.kubectl_ok(&["delete", "jobs", "--all", "--timeout=60s"]);
    cluster.kubectl_ok(&["delete", "pods", "--all", "--timeout=60s"]);
}
