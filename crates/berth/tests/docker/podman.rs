//! The podman CLI in remote mode (`CONTAINER_HOST`) against the daemon's libpod API:
//! containers run, list, log, stop and go; images are listed and removed; volumes keep
//! their labels; networks come and go; a setting the engine does not carry out is
//! refused by name.

use super::*;

/// `PROGRAM`, a podman client, against the daemon, killed after `seconds`: remote mode
/// through `CONTAINER_HOST`, with a private config directory.
pub(super) fn podman_command(daemon: &Daemon, seconds: u32, program: &str) -> Command {
    let mut command = Command::new("timeout");
    command
        .arg(seconds.to_string())
        .arg(program)
        .env("CONTAINER_HOST", daemon.host())
        .env(
            "XDG_CONFIG_HOME",
            daemon.scratch.path().join("podman-config"),
        )
        .stdin(Stdio::null());
    command
}

/// `podman ARGS` against the daemon.
fn podman(daemon: &Daemon, args: &[&str]) -> Output {
    podman_command(daemon, 60, "podman")
        .args(args)
        .output()
        .unwrap()
}

/// `podman ARGS`, which must succeed; its stdout.
fn podman_ok(daemon: &Daemon, args: &[&str]) -> String {
    let output = podman(daemon, args);
    assert!(
        output.status.success(),
        "podman {args:?}: {}\nstderr: {}\ndaemon log: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        read_log(daemon.scratch.path())
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn podman_remote_runs_lists_logs_stops_and_removes_containers() {
    let daemon = containers::daemon_with_busybox("podman");
    let script = "echo $WORD; exec sleep 1000";
    podman_ok(
        &daemon,
        &[
            "run",
            "-d",
            "--name",
            "echo",
            "-e",
            "WORD=hello",
            "busybox",
            "sh",
            "-c",
            script,
        ],
    );
    assert_eq!(
        podman_ok(&daemon, &["ps", "--format", "{{.Names}}"]).trim(),
        "echo"
    );
    let state = |daemon: &Daemon| {
        podman_ok(
            daemon,
            &["inspect", "--format", "{{.State.Status}}", "echo"],
        )
        .trim()
        .to_string()
    };
    assert_eq!(state(&daemon), "running");
    let deadline = Instant::now() + Duration::from_secs(10);
    while podman_ok(&daemon, &["logs", "echo"]).trim() != "hello" {
        assert!(Instant::now() < deadline, "the container never said hello");
        std::thread::sleep(Duration::from_millis(100));
    }
    podman_ok(&daemon, &["stop", "-t", "1", "echo"]);
    assert_eq!(state(&daemon), "exited");
    assert_eq!(podman_ok(&daemon, &["ps", "-q"]).trim(), "");
    podman_ok(&daemon, &["rm", "echo"]);
    assert_eq!(podman_ok(&daemon, &["ps", "-aq"]).trim(), "");
    assert_eq!(daemon.docker_ok(&["ps", "-aq"]).trim(), "");

    let images = podman_ok(&daemon, &["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(images.contains("busybox:latest"), "{images}");
    let refused = podman(&daemon, &["run", "--umask", "0077", "busybox", "true"]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && said.contains("umask"),
        "{refused:?}"
    );
    assert_eq!(daemon.docker_ok(&["ps", "-aq"]).trim(), "");
    podman_ok(&daemon, &["rmi", "busybox"]);
    assert_eq!(daemon.docker_ok(&["images", "-q"]).trim(), "");
}

#[test]
fn podman_remote_manages_labelled_volumes_and_networks() {
    let daemon = Daemon::start("podman-objects");
    let runtime = podman_ok(&daemon, &["info", "--format", "{{.Host.OCIRuntime.Name}}"]);
    assert_eq!(runtime.trim(), "berth");
    podman_ok(
        &daemon,
        &["volume", "create", "--label", "app=shop", "data"],
    );
    let labels = podman_ok(
        &daemon,
        &["volume", "inspect", "--format", "{{.Labels}}", "data"],
    );
    assert_eq!(labels.trim(), "map[app:shop]");
    let listed = podman_ok(
        &daemon,
        &["volume", "ls", "--filter", "label=app=shop", "-q"],
    );
    assert_eq!(listed.trim(), "data");
    podman_ok(&daemon, &["volume", "rm", "data"]);
    assert!(
        !podman(&daemon, &["volume", "exists", "data"])
            .status
            .success()
    );

    podman_ok(
        &daemon,
        &["network", "create", "--label", "app=shop", "shopnet"],
    );
    podman_ok(&daemon, &["network", "exists", "shopnet"]);
    let networks = daemon.docker_ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(networks.lines().any(|n| n == "shopnet"), "{networks}");
    podman_ok(&daemon, &["network", "rm", "shopnet"]);
    assert!(
        !podman(&daemon, &["network", "exists", "shopnet"])
            .status
            .success()
    );
    let refused = podman(&daemon, &["network", "create", "--ipv6", "v6net"]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("IPv4 only"),
        "{refused:?}"
    );
}
