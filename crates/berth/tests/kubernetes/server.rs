//! The test harness: a `berth server` of its own per test, on SQLite or on a real etcd,
//! with curl, kubectl and kube-rs clients pointed at it.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::etcd::{Etcd, free_port};
use berth_testkit::guard::{ChildGuard, Scratch};

/// A server of its own, stopped and cleaned up on drop.
pub struct Server {
    process: ChildGuard,
    /// Its own etcd, if any: dropped after the server (fields drop in order).
    _etcd: Option<Etcd>,
    pub scratch: Scratch,
    pub port: u16,
    flags: Vec<String>,
}

impl Server {
    pub fn start(name: &str, on_etcd: bool) -> Self {
        Self::start_with(name, on_etcd, &[])
    }

    /// A server started with more flags.
    pub fn start_with(name: &str, on_etcd: bool, flags: &[&str]) -> Self {
        let scratch = Scratch::new(&format!("server-{name}")).unwrap();
        let etcd = on_etcd.then(|| Etcd::start(&scratch.path().join("etcd")).unwrap());
        let endpoint = etcd.as_ref().map(|e| e.endpoint.clone());
        Self::launch(scratch, etcd, endpoint, flags)
    }

    /// A server on an etcd others share.
    pub fn start_on(name: &str, etcd: &Etcd) -> Self {
        let scratch = Scratch::new(&format!("server-{name}")).unwrap();
        Self::launch(scratch, None, Some(etcd.endpoint.clone()), &[])
    }

    fn launch(
        scratch: Scratch,
        etcd: Option<Etcd>,
        endpoint: Option<String>,
        flags: &[&str],
    ) -> Self {
        let port = free_port().unwrap();
        let mut flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        if let Some(endpoint) = endpoint {
            flags.extend(["--datastore".to_string(), format!("etcd://{endpoint}")]);
        }
        let process = spawn_server(scratch.path(), port, &flags);
        let server = Self {
            process,
            _etcd: etcd,
            scratch,
            port,
            flags,
        };
        server.wait_until_ready();
        server
    }

    /// Kills the server with SIGKILL.
    pub fn kill(&mut self) {
        let _ = self.process.0.kill();
        let _ = self.process.0.wait();
    }

    /// Kills the server with SIGKILL and starts it again on the same state and port.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        self.process = spawn_server(self.scratch.path(), self.port, &self.flags);
        self.wait_until_ready();
    }

    pub fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.kubeconfig().exists() || self.curl(&["/healthz"]).stdout != b"ok" {
            assert!(
                Instant::now() < deadline,
                "the server did not answer within 30 s: {}",
                std::fs::read_to_string(self.scratch.path().join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.scratch.path().join("data/admin.kubeconfig")
    }

    /// curl against the server, trusting its CA.
    pub fn curl(&self, args: &[&str]) -> Output {
        let ca = self.scratch.path().join("data/tls/ca.crt");
        let url = format!("https://127.0.0.1:{}{}", self.port, args[0]);
        Command::new("curl")
            .args(["-s", "--max-time", "10", "--cacert"])
            .arg(&ca)
            .arg(url)
            .args(&args[1..])
            .output()
            .unwrap()
    }

    /// `berth agent --simulate COUNT` with nodes `sim-0`…, stopped on drop.
    pub fn simulated_nodes(&self, count: usize) -> ChildGuard {
        self.simulated_nodes_named("sim", count)
    }

    /// Simulated nodes `PREFIX-0`…, renewing their Leases every second.
    pub fn simulated_nodes_named(&self, prefix: &str, count: usize) -> ChildGuard {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.scratch.path().join("agent.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args([
                "agent",
                "--simulate",
                &count.to_string(),
                "--node-name",
                prefix,
            ])
            .args(["--heartbeat-interval", "1s"])
            .args(["--server", &format!("https://127.0.0.1:{}", self.port)])
            // The full token pins the CA: nothing else is needed to join.
            .args(["--token", &self.token("token")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        ChildGuard(child)
    }

    /// Runs kubectl until its output satisfies `done`, for up to `limit`; the output.
    pub fn kubectl_until(
        &self,
        args: &[&str],
        limit: Duration,
        done: impl Fn(&str) -> bool,
    ) -> String {
        let log = || {
            let path = self.scratch.path().join("agent.log");
            format!(
                "agent log: {}",
                std::fs::read_to_string(path).unwrap_or_default()
            )
        };
        poll_kubectl(|args| self.kubectl(args), args, (limit, done), log)
    }

    /// The message of the latest event with `reason` about the object named `name`,
    /// once there is one.
    pub fn event_message(&self, name: &str, reason: &str) -> String {
        let selector = format!("involvedObject.name={name},reason={reason}");
        self.kubectl_until(
            &[
                "get",
                "events",
                "--field-selector",
                &selector,
                "-o",
                "jsonpath={.items[-1:].message}",
            ],
            Duration::from_secs(30),
            |text| !text.is_empty(),
        )
    }

    /// The admin's bearer token.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.scratch.path().join("data/admin-token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// GET `path` as the admin; the JSON answer.
    pub fn api(&self, path: &str) -> serde_json::Value {
        let header = format!("Authorization: Bearer {}", self.admin_token());
        let output = self.curl(&[path, "-H", &header]);
        serde_json::from_slice(&output.stdout).unwrap()
    }

    /// kubectl as the user of `token` (the admin kubeconfig with another token).
    pub fn kubectl_as(&self, token: &str, args: &[&str]) -> Output {
        let admin = std::fs::read_to_string(self.kubeconfig()).unwrap();
        let config = self.write(
            &format!("user-{}.kubeconfig", &token[..8.min(token.len())]),
            &admin.replace(&self.admin_token(), token),
        );
        self.kubectl_with(&config, args)
    }

    /// A kubeconfig (its path) for `user` in `group` with a client certificate the
    /// cluster CA signs, as `berth kubeconfig` writes it.
    pub fn certified(&self, user: &str, group: Option<&str>) -> String {
        let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
        command.args(["kubeconfig", "--user", user, "--data-dir"]);
        command.arg(self.scratch.path().join("data"));
        if let Some(group) = group {
            command.args(["--group", group]);
        }
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        self.write(
            &format!("{user}.kubeconfig"),
            &String::from_utf8_lossy(&output.stdout),
        )
    }

    /// kubectl with the kubeconfig at `config`.
    pub fn kubectl_with(&self, config: &str, args: &[&str]) -> Output {
        Command::new("timeout")
            .args(["60", "kubectl", "--kubeconfig", config])
            .env("HOME", self.scratch.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// A token the server wrote into its data directory.
    pub fn token(&self, file: &str) -> String {
        std::fs::read_to_string(self.scratch.path().join("data").join(file))
            .unwrap()
            .trim()
            .to_string()
    }

    /// kubectl with the admin kubeconfig and a cache of its own.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .args(["60", "kubectl"])
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.scratch.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let log = self.scratch.path().join("server.log");
        succeeded(self.kubectl(args), args, || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            format!("server log: {text}")
        })
    }

    pub fn write(&self, name: &str, text: &str) -> String {
        let path = self.scratch.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

/// Writes a self-signed certificate for the DNS name `name` and its key (openssl, RSA
/// 2048, a day long).
pub fn self_signed(cert: &std::path::Path, key: &std::path::Path, name: &str) {
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", &format!("/CN={name}")])
        .args(["-addext", &format!("subjectAltName=DNS:{name}")])
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
}

/// A cluster the stock kubectl drives as its admin, for helpers that work on any.
pub trait Kubectl {
    /// kubectl run with `args`.
    fn run_kubectl(&self, args: &[&str]) -> Output;
}

/// The standard output of kubectl run with `args`, which must have succeeded; a
/// failure shows what `log` says.
pub fn succeeded(output: Output, args: &[&str], log: impl Fn() -> String) -> String {
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        log()
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs kubectl (as `kubectl` runs it) until its output satisfies `done`, for up to
/// `limit`; the output. A failure shows what `log` says.
pub fn poll_kubectl(
    kubectl: impl Fn(&[&str]) -> Output,
    args: &[&str],
    (limit, done): (Duration, impl Fn(&str) -> bool),
    log: impl Fn() -> String,
) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let output = kubectl(args);
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        if done(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "kubectl {args:?} did not get there within {limit:?}: {text}{}\n{}",
            String::from_utf8_lossy(&output.stderr),
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `berth server` on `dir`'s data directory, listening on `port`.
fn spawn_server(dir: &std::path::Path, port: u16, flags: &[String]) -> ChildGuard {
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .args([
            "server",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.join("data"))
        // These servers have simulated nodes, or none: a machine's agent is tested on
        // a test host of its own (pods.rs).
        .arg("--disable-agent")
        .args(flags);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .unwrap();
    ChildGuard(
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}
