//! Black-box tests of `berth daemon` through the stock clients: the `docker` CLI (28.x)
//! and the Python `docker` SDK, each pointed at a daemon of its own with a private data
//! directory and socket.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::guard::{CgroupGuard, ChildGuard, NetnsGuard, Scratch};

mod build;
mod changes;
mod compose;
mod containers;
mod events;
mod images;
mod networks;
mod podman;
mod pull;
mod push;
mod settings;
mod volumes;

/// A daemon serving its own socket from its own data directory and cgroup parent, on a
/// test host of its own (a network namespace, so its bridges, nftables table and ports
/// are its alone); on drop its containers are removed, then it is killed and its files,
/// cgroups and host go.
struct Daemon {
    // Dropped in this order: the daemon stops before its directory, cgroups and host go.
    process: ChildGuard,
    scratch: Scratch,
    _cgroups: CgroupGuard,
    host: NetnsGuard,
    cgroup_parent: String,
    socket: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Containers outlive their daemon by design (live restore): remove them first.
        if let Ok(Some(_)) | Err(_) = self.process.0.try_wait() {
            return;
        }
        let ids = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).lines() {
            self.docker(&["rm", "-f", id]);
        }
    }
}

impl Daemon {
    fn start(name: &str) -> Self {
        let scratch = Scratch::new(&format!("daemon-{name}")).unwrap();
        let socket = scratch.path().join("berth.sock");
        let cgroup_parent = format!("berth-test/daemon-{name}-{}", std::process::id());
        let host = NetnsGuard::create(&format!("berth-{name}-{}", std::process::id())).unwrap();
        let process = spawn_daemon(scratch.path(), &socket, &cgroup_parent, &host, &[]);
        Self {
            process,
            scratch,
            _cgroups: CgroupGuard::new(&cgroup_parent),
            host,
            cgroup_parent,
            socket,
        }
    }

    /// `curl` on the daemon's host: the body of `url`, or None when it cannot be had.
    fn curl(&self, url: &str) -> Option<String> {
        let output = self
            .on_host(&["curl", "-sf", "--max-time", "10", url])
            .output()
            .unwrap();
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// A command run on the daemon's host (in its network namespace).
    fn on_host(&self, args: &[&str]) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net={}", self.host.path().display()))
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// Kills the daemon with SIGKILL and starts a new one on the same state.
    fn kill_and_restart(&mut self) {
        self.restart_with(&[]);
    }

    /// Kills the daemon with SIGKILL and starts a new one on the same state with the
    /// daemon flags `extra`.
    fn restart_with(&mut self, extra: &[&str]) {
        let _ = self.process.0.kill();
        let _ = self.process.0.wait();
        self.process = spawn_daemon(
            self.scratch.path(),
            &self.socket,
            &self.cgroup_parent,
            &self.host,
            extra,
        );
    }

    fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The stock docker CLI against this daemon, with a private config directory; killed
    /// after a minute, so that a hang fails the test instead of stalling the run.
    fn docker(&self, args: &[&str]) -> Output {
        self.docker_command(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// The docker command line for `args`, to spawn with pipes of the caller's choice.
    fn docker_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("timeout");
        command
            .args(["60", "docker"])
            .env("DOCKER_CONFIG", self.scratch.path().join("docker-config"))
            .env("DOCKER_HOST", self.host())
            .args(args);
        command
    }

    /// Runs a Python docker SDK script with the daemon's address as its argument; its
    /// stdout must be `expected`.
    fn python_sdk(&self, script: &str, expected: &str) {
        let output = Command::new("python3")
            .args(["-c", script, &self.host()])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            expected,
            "{}\ndaemon log: {}",
            String::from_utf8_lossy(&output.stderr),
            read_log(self.scratch.path())
        );
    }

    /// Berth's own CLI against this daemon, with the docker CLI's config directory,
    /// killed after a minute.
    fn berth(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .args(["60", env!("CARGO_BIN_EXE_berth"), "-H", &self.host()])
            .env("DOCKER_CONFIG", self.scratch.path().join("docker-config"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `berth ARGS`, which must succeed; its stdout.
    fn berth_ok(&self, args: &[&str]) -> String {
        let output = self.berth(args);
        assert!(output.status.success(), "berth {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `docker ARGS`, which must succeed; its stdout.
    fn docker_ok(&self, args: &[&str]) -> String {
        let output = self.docker(args);
        assert!(
            output.status.success(),
            "docker {args:?}: {}\nstderr: {}\ndaemon log: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            read_log(self.scratch.path())
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Writes the test kit's image `name` as a `docker load` archive; its path.
    fn archive(&self, name: &str) -> PathBuf {
        let dir = self.scratch.path().join(format!("image-{name}"));
        let image = match name {
            "busybox" => berth_testkit::images::busybox_image(&dir).unwrap(),
            _ => berth_testkit::images::webapp_image(&dir).unwrap(),
        };
        let path = self.scratch.path().join(format!("{name}.tar"));
        let tar = berth_testkit::layout::layout_archive(&image, &format!("{name}:latest")).unwrap();
        std::fs::write(&path, tar).unwrap();
        path
    }
}

/// Starts `berth daemon` on `dir`, on the test host `host`, and waits until it listens on
/// `socket`.
fn spawn_daemon(
    dir: &Path,
    socket: &Path,
    cgroup_parent: &str,
    host: &NetnsGuard,
    extra: &[&str],
) -> ChildGuard {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("daemon.log"))
        .unwrap();
    let _ = std::fs::remove_file(socket);
    // nsenter joins the namespace and executes the daemon in its own place.
    let process = Command::new("nsenter")
        .arg(format!("--net={}", host.path().display()))
        .arg(env!("CARGO_BIN_EXE_berth"))
        .args([
            "daemon",
            "--log-level",
            "info",
            "--cgroup-parent",
            cgroup_parent,
            "--data-dir",
        ])
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("run"))
        .arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut process = ChildGuard(process);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        if let Ok(Some(status)) = process.0.try_wait() {
            panic!("the daemon exited with {status}: {}", read_log(dir));
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not listen within 20 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    process
}

/// Seconds since the epoch, as `docker events --since/--until` take them.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default()
}
