//! Containers through the docker CLI and the Python SDK: run in the foreground and
//! detached, logs, ps, inspect, stop, rm, limits and Docker's default confinement.

use super::*;

/// A daemon with the busybox image loaded.
pub(crate) fn daemon_with_busybox(name: &str) -> Daemon {
    let daemon = Daemon::start(name);
    let archive = daemon.archive("busybox");
    daemon.docker_ok(&["load", "-i", archive.to_str().unwrap()]);
    daemon
}

#[test]
fn docker_run_passes_output_and_exit_status_and_rm_leaves_nothing() {
    let daemon = daemon_with_busybox("run");
    let output = daemon.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "err\n");
    assert_eq!(
        daemon.docker_ok(&["ps", "-aq"]).trim(),
        "",
        "--rm left the container"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(daemon.scratch.path().to_str().unwrap()),
        "a rootfs stayed mounted"
    );
}

#[test]
fn a_detached_container_shows_in_ps_logs_and_inspect_and_stops() {
    let daemon = daemon_with_busybox("detached");
    let id = daemon.docker_ok(&[
        "run",
        "-d",
        "--name",
        "sleeper",
        "busybox",
        "sh",
        "-c",
        "echo started; exec sleep 300",
    ]);
    assert_eq!(id.trim().len(), 64, "{id}");
    let ps = daemon.docker_ok(&["ps", "--format", "{{.Names}} {{.Image}} {{.State}}"]);
    assert_eq!(ps.trim(), "sleeper busybox running");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while daemon.docker_ok(&["logs", "sleeper"]).trim() != "started" {
        assert!(
            std::time::Instant::now() < deadline,
            "no log line within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let state = daemon.docker_ok(&[
        "inspect",
        "sleeper",
        "--format",
        "{{.State.Status}} {{.Config.Hostname}}",
    ]);
    assert_eq!(state.trim(), format!("running {}", &id.trim()[..12]));
    let conflict = daemon.docker(&["rm", "sleeper"]);
    assert!(
        String::from_utf8_lossy(&conflict.stderr).contains("container is running"),
        "{conflict:?}"
    );
    daemon.docker_ok(&["stop", "-t", "1", "sleeper"]);
    let exited = daemon.docker_ok(&[
        "inspect",
        "sleeper",
        "--format",
        "{{.State.Status}} {{.State.ExitCode}}",
    ]);
    // sleep as pid 1 has no SIGTERM handler: stop escalates to SIGKILL, as with Docker.
    assert_eq!(exited.trim(), "exited 137");
    daemon.docker_ok(&["rm", "sleeper"]);
    let missing = daemon.docker(&["inspect", "sleeper"]);
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("No such object: sleeper"),
        "{missing:?}"
    );
}

#[test]
fn limits_capabilities_and_seccomp_are_docker_s() {
    let daemon = daemon_with_busybox("confined");
    let script = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; \
                  grep -E '^(CapEff|Seccomp):' /proc/self/status | tr -d '\\t'";
    let out = daemon.docker_ok(&[
        "run", "--rm", "--memory", "32m", "busybox", "sh", "-c", script,
    ]);
    // Docker's default capability set is 0xa80425fb.
    assert_eq!(out.trim(), "33554432\nCapEff:00000000a80425fb\nSeccomp:2");
    let dropped = daemon.docker_ok(&[
        "run",
        "--rm",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "NET_RAW",
        "busybox",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert_eq!(dropped.split_whitespace().last(), Some("0000000000002000"));
}

#[test]
fn init_runs_as_pid_1_and_passes_signals_on() {
    let daemon = daemon_with_busybox("init");
    let pid1 = daemon.docker_ok(&["run", "--rm", "--init", "busybox", "cat", "/proc/1/cmdline"]);
    assert_eq!(
        pid1.split('\0').take(3).collect::<Vec<_>>(),
        ["/sbin/docker-init", "--", "cat"]
    );
    // A shell as PID 1 ignores SIGTERM; under the init it gets it and dies of it.
    daemon.docker_ok(&[
        "run", "-d", "--init", "--name", "term", "busybox", "sleep", "300",
    ]);
    daemon.docker_ok(&["stop", "-t", "60", "term"]);
    let code = daemon.docker_ok(&["inspect", "-f", "{{.State.ExitCode}}", "term"]);
    assert_eq!(
        code.trim(),
        "143",
        "killed by the forwarded SIGTERM, not SIGKILL"
    );
}

#[test]
fn security_opt_chooses_the_seccomp_profile_and_no_new_privileges() {
    let daemon = daemon_with_busybox("security-opt");
    let status = "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\\t'";
    let unconfined = daemon.docker_ok(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "no-new-privileges",
        "busybox",
        "sh",
        "-c",
        status,
    ]);
    assert_eq!(unconfined.trim(), "NoNewPrivs:1\nSeccomp:0");
    // A profile of our own, read by the CLI and sent whole: mkdir is refused.
    let profile = daemon.scratch.path().join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let refused = daemon.docker(&[
        "run",
        "--rm",
        "--security-opt",
        &format!("seccomp={}", profile.display()),
        "busybox",
        "mkdir",
        "/tmp/x",
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Operation not permitted"),
        "{refused:?}"
    );
    let bad = daemon.docker(&[
        "run",
        "--rm",
        "--security-opt",
        "sandbox=off",
        "busybox",
        "true",
    ]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("Invalid --security-opt"),
        "{bad:?}"
    );
}

#[test]
fn a_missing_image_and_a_taken_name_are_refused_by_name() {
    let daemon = daemon_with_busybox("refusals");
    // An image not here is pulled: from a loopback registry that is not there, as a
    // test reaches nothing beyond its hosts.
    let missing = daemon.docker(&["run", "--rm", "127.0.0.1:5999/nosuchimage"]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("Unable to find image '127.0.0.1:5999/nosuchimage:latest' locally"),
        "{missing:?}"
    );
    assert!(
        stderr.contains("http://127.0.0.1:5999/v2/nosuchimage/manifests/latest"),
        "{missing:?}"
    );
    daemon.docker_ok(&["create", "--name", "taken", "busybox", "true"]);
    let taken = daemon.docker(&["create", "--name", "taken", "busybox", "true"]);
    assert!(
        String::from_utf8_lossy(&taken.stderr).contains("is already in use"),
        "{taken:?}"
    );
}

#[test]
fn the_python_sdk_runs_and_manages_containers() {
    let daemon = daemon_with_busybox("python-run");
    let script = r#"
import sys, time, docker
client = docker.DockerClient(base_url=sys.argv[1])
assert client.containers.run("busybox", ["echo", "hi"], remove=True) == b"hi\n"
c = client.containers.run("busybox", ["sh", "-c", "echo ready; exec sleep 300"], detach=True, name="py")
c.reload()
assert c.status == "running", c.status
# Killed once it has said it is ready: running does not mean it has written yet.
deadline = time.time() + 10
while c.logs() != b"ready\n" and time.time() < deadline:
    time.sleep(0.05)
c.kill()
assert c.wait()["StatusCode"] == 137
assert c.logs() == b"ready\n", c.logs()
c.remove()
assert client.containers.list(all=True) == []
print("ok")
"#;
    daemon.python_sdk(script, "ok");
}

#[test]
fn a_container_outlives_a_killed_daemon_and_is_found_again() {
    let mut daemon = daemon_with_busybox("restore");
    daemon.docker_ok(&["run", "-d", "--name", "survivor", "busybox", "sleep", "300"]);
    let pid: i32 = daemon
        .docker_ok(&["inspect", "survivor", "--format", "{{.State.Pid}}"])
        .trim()
        .parse()
        .unwrap();
    daemon.kill_and_restart();
    assert!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok(),
        "the container died with its daemon"
    );
    let ps = daemon.docker_ok(&["ps", "--format", "{{.Names}} {{.State}}"]);
    assert_eq!(ps.trim(), "survivor running");
    daemon.docker_ok(&["kill", "survivor"]);
    daemon.docker_ok(&["wait", "survivor"]);
    let state = daemon.docker_ok(&[
        "inspect",
        "survivor",
        "--format",
        "{{.State.Status}} {{.State.ExitCode}}",
    ]);
    assert_eq!(state.trim(), "exited 137");
}

#[test]
fn restart_policies_restart_with_back_off_until_their_limit_or_a_stop() {
    let daemon = daemon_with_busybox("restart");
    daemon.docker_ok(&[
        "run",
        "-d",
        "--name",
        "failing",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "exit 3",
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let inspect = |name: &str| {
        daemon.docker_ok(&[
            "inspect",
            name,
            "--format",
            "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}",
        ])
    };
    // Two restarts, then it stays down with its last status.
    while inspect("failing").trim() != "2 exited 3" {
        assert!(
            Instant::now() < deadline,
            "on-failure:2 ended as {}",
            inspect("failing")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon.docker_ok(&[
        "run",
        "-d",
        "--name",
        "always",
        "--restart",
        "always",
        "busybox",
        "true",
    ]);
    while !inspect("always").starts_with('3') {
        assert!(
            Instant::now() < deadline,
            "always ended as {}",
            inspect("always")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon.docker_ok(&["stop", "always"]);
    let stopped = inspect("always");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        inspect("always"),
        stopped,
        "a stopped container was restarted"
    );
    let conflict = daemon.docker(&["run", "--rm", "--restart", "always", "busybox", "true"]);
    assert!(
        String::from_utf8_lossy(&conflict.stderr).contains("conflicting options"),
        "{conflict:?}"
    );
}

#[test]
fn docker_exec_runs_in_the_container_with_stdin_user_and_exit_status() {
    let daemon = daemon_with_busybox("exec");
    let id = daemon.docker_ok(&["run", "-d", "--name", "target", "busybox", "sleep", "300"]);
    let out = daemon.docker(&[
        "exec",
        "target",
        "sh",
        "-c",
        "hostname; echo err >&2; exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        &id.trim()[..12]
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    let user = daemon.docker_ok(&[
        "exec",
        "-u",
        "1000",
        "-e",
        "GREETING=hi",
        "target",
        "sh",
        "-c",
        "id -u; echo $GREETING",
    ]);
    assert_eq!(user, "1000\nhi\n");
    let exec_i = ["exec", "-i", "target", "sh", "-c", "cat; echo done"];
    assert_eq!(
        through_stdin(daemon.docker_command(&exec_i)),
        "through stdin\ndone\n"
    );
    // An interactive shell on a terminal (script gives docker one) answers as it runs,
    // not only once it has ended.
    let (status, shown) = shell_on_terminal(&daemon, "docker exec -it target sh");
    assert_eq!(status.code(), Some(5), "{shown}");
    assert!(
        shown.contains("/dev/pts/") && shown.contains("42\r\n"),
        "{shown}"
    );
    let script = r#"
import sys, docker
client = docker.DockerClient(base_url=sys.argv[1])
code, out = client.containers.get("target").exec_run(["sh", "-c", "echo from python; exit 2"])
assert (code, out) == (2, b"from python\n"), (code, out)
print("ok")
"#;
    let python = Command::new("python3")
        .args(["-c", script, &daemon.host()])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&python.stdout).trim(),
        "ok",
        "{}",
        String::from_utf8_lossy(&python.stderr)
    );
}

/// What `command` prints with `through stdin` and a newline on its stdin.
fn through_stdin(mut command: Command) -> String {
    let mut piped = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut piped.stdin.take().unwrap(), b"through stdin\n").unwrap();
    let output = piped.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `client` (a shell line that runs `sh` in a container on a TTY) on a terminal that
/// `script` gives it, sized 33x101, with a session typed in that prints its tty, waits
/// for the terminal's size to reach the shell, prints 42 and exits 5; the client's exit
/// status and what the terminal showed.
fn shell_on_terminal(daemon: &Daemon, client: &str) -> (std::process::ExitStatus, String) {
    let mut terminal = Command::new("timeout")
        .args([
            "-k",
            "5",
            "60",
            "script",
            "-qec",
            &format!("stty rows 33 cols 101; {client}"),
            "/dev/null",
        ])
        .env("DOCKER_CONFIG", daemon.scratch.path().join("docker-config"))
        .env("DOCKER_HOST", daemon.host())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The input stays open until the client has ended: script ends the session at its end.
    let mut typed = terminal.stdin.take().unwrap();
    // The terminal takes the client's size (a resize), which the shell waits for.
    let input =
        b"tty; until [ \"$(stty size)\" = \"33 101\" ]; do :; done; echo $((6*7)); exit 5\n";
    std::io::Write::write_all(&mut typed, input).unwrap();
    let status = terminal.wait().unwrap();
    drop(typed);
    let mut shown = String::new();
    std::io::Read::read_to_string(&mut terminal.stdout.take().unwrap(), &mut shown).unwrap();
    (status, shown)
}

#[test]
fn berth_exec_is_a_client_of_the_same_api() {
    let daemon = daemon_with_busybox("berth-exec");
    daemon.docker_ok(&["run", "-d", "--name", "target", "busybox", "sleep", "300"]);
    let out = daemon.berth(&[
        "exec",
        "-e",
        "A=1",
        "-w",
        "/tmp",
        "target",
        "sh",
        "-c",
        "echo $A $PWD; echo err >&2; exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1 /tmp\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    let mut exec_i = Command::new(env!("CARGO_BIN_EXE_berth"));
    exec_i.args([
        "-H",
        &daemon.host(),
        "exec",
        "-i",
        "target",
        "sh",
        "-c",
        "cat; echo done",
    ]);
    assert_eq!(through_stdin(exec_i), "through stdin\ndone\n");
    let berth = env!("CARGO_BIN_EXE_berth");
    let (status, shown) = shell_on_terminal(
        &daemon,
        &format!("{berth} -H {} exec -it target sh", daemon.host()),
    );
    assert_eq!(status.code(), Some(5), "{shown}");
    assert!(
        shown.contains("/dev/pts/") && shown.contains("42\r\n"),
        "{shown}"
    );
    let detached = daemon.berth_ok(&["exec", "-d", "target", "touch", "/tmp/detached"]);
    assert_eq!(detached, "");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !daemon
        .docker(&["exec", "target", "test", "-e", "/tmp/detached"])
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "the detached exec never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    let tty = daemon.berth(&["exec", "-t", "target", "true"]);
    assert!(
        String::from_utf8_lossy(&tty.stderr).contains("the input device is not a TTY"),
        "{tty:?}"
    );
}

#[test]
fn berth_run_is_a_client_of_the_same_api() {
    let daemon = daemon_with_busybox("berth-run");
    let output = daemon.berth(&[
        "run",
        "--rm",
        "-e",
        "WHO=berth",
        "busybox",
        "sh",
        "-c",
        "echo $WHO; echo err >&2; exit 5",
    ]);
    assert_eq!(output.status.code(), Some(5), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "berth\n");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "err\n");
    assert_eq!(daemon.docker_ok(&["ps", "-aq"]).trim(), "");
    let missing = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["-H", &daemon.host(), "run", "--rm", "127.0.0.1:5999/nosuch"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("Unable to find image '127.0.0.1:5999/nosuch' locally"),
        "{missing:?}"
    );
    assert!(stderr.contains("127.0.0.1:5999"), "{missing:?}");
}

#[test]
fn docker_stats_reads_the_container_s_cgroup() {
    let daemon = daemon_with_busybox("stats");
    daemon.docker_ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        "--memory",
        "64m",
        "busybox",
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    let stats = daemon.docker_ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.MemUsage}} {{.PIDs}} {{.CPUPerc}}",
        "busy",
    ]);
    let fields: Vec<&str> = stats.split_whitespace().collect();
    // busy 1.2MiB / 64MiB 1 98.50%
    assert_eq!(fields.first(), Some(&"busy"), "{stats}");
    assert_eq!(fields.get(3), Some(&"64MiB"), "{stats}");
    assert_eq!(fields.get(4), Some(&"1"), "{stats}");
    let cpu: f64 = fields
        .get(5)
        .and_then(|c| c.trim_end_matches('%').parse().ok())
        .unwrap_or(0.0);
    assert!(cpu > 10.0, "a busy loop shows {cpu}% CPU: {stats}");
}

#[test]
fn docker_stats_bounds_an_unlimited_container_by_host_memory_and_counts_its_traffic() {
    let daemon = daemon_with_busybox("stats-host");
    daemon.docker_ok(&["run", "-d", "--name", "free", "busybox", "sleep", "300"]);
    // Traffic out of its eth0: pings to the bridge's gateway.
    daemon.docker_ok(&["exec", "free", "ping", "-c", "3", "-W", "1", "172.17.0.1"]);
    let stats = daemon.docker_ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.MemUsage}}|{{.NetIO}}",
        "free",
    ]);
    let (memory, network) = stats.trim().split_once('|').unwrap();
    let limit = memory.split(" / ").nth(1).unwrap();
    let units = [
        ("KiB", 1u64 << 10),
        ("MiB", 1 << 20),
        ("GiB", 1 << 30),
        ("TiB", 1 << 40),
    ];
    let bytes = units
        .iter()
        .find_map(|(unit, size)| {
            let number: f64 = limit.strip_suffix(unit)?.parse().ok()?;
            Some(number * *size as f64)
        })
        .unwrap_or_else(|| panic!("limit {limit} is not the host's memory: {stats}"));
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let total: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap()
        * 1024.0;
    assert!(
        (bytes - total).abs() / total < 0.01,
        "{limit} against {total} bytes"
    );
    assert!(!network.starts_with("0B / "), "no traffic counted: {stats}");
    assert!(!network.ends_with(" / 0B"), "no traffic counted: {stats}");
}

#[test]
fn pause_unpause_rename_top_and_restart() {
    let daemon = daemon_with_busybox("lifecycle");
    daemon.docker_ok(&["run", "-d", "--name", "first", "busybox", "sleep", "300"]);
    daemon.docker_ok(&["pause", "first"]);
    let paused = daemon.docker_ok(&[
        "inspect",
        "first",
        "--format",
        "{{.State.Status}} {{.State.Paused}}",
    ]);
    assert_eq!(paused.trim(), "paused true");
    let again = daemon.docker(&["pause", "first"]);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already paused"),
        "{again:?}"
    );
    daemon.docker_ok(&["unpause", "first"]);
    daemon.docker_ok(&["rename", "first", "second"]);
    let top = daemon.docker_ok(&["top", "second"]);
    assert!(top.lines().any(|l| l.ends_with("sleep 300")), "{top}");
    let started = daemon.docker_ok(&["inspect", "second", "--format", "{{.State.StartedAt}}"]);
    daemon.docker_ok(&["restart", "-t", "0", "second"]);
    let after = daemon.docker_ok(&[
        "inspect",
        "second",
        "--format",
        "{{.State.Status}} {{.State.StartedAt}}",
    ]);
    assert!(
        after.starts_with("running ") && !after.ends_with(started.trim()),
        "{started} -> {after}"
    );
    // A paused container still stops promptly: it is thawed first.
    daemon.docker_ok(&["pause", "second"]);
    let stop = std::time::Instant::now();
    daemon.docker_ok(&["stop", "-t", "1", "second"]);
    assert!(
        stop.elapsed() < Duration::from_secs(20),
        "stop of a paused container hung"
    );
}

#[test]
fn health_checks_turn_unhealthy_then_healthy() {
    let daemon = daemon_with_busybox("health");
    daemon.docker_ok(&[
        "run",
        "-d",
        "--name",
        "checked",
        "--health-cmd",
        "test -e /tmp/ok",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "busybox",
        "sleep",
        "300",
    ]);
    let health = || {
        daemon
            .docker_ok(&["inspect", "checked", "--format", "{{.State.Health.Status}}"])
            .trim()
            .to_string()
    };
    let wait_for = |expected: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while health() != expected {
            assert!(
                Instant::now() < deadline,
                "health stayed {} instead of {expected}",
                health()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for("unhealthy");
    daemon.docker_ok(&["exec", "checked", "touch", "/tmp/ok"]);
    wait_for("healthy");
    let ps = daemon.docker_ok(&["ps", "--format", "{{.Status}}"]);
    assert!(ps.trim().ends_with("(healthy)"), "{ps}");
    // Each change of health is an event.
    let events = daemon.docker_ok(&[
        "events",
        "--since",
        "0",
        "--until",
        "1",
        "--filter",
        "event=health_status",
        "--format",
        "{{.Action}}",
    ]);
    assert_eq!(events, "", "nothing happened before 1970");
    let until = format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 1
    );
    let events = daemon.docker_ok(&[
        "events",
        "--since",
        "0",
        "--until",
        &until,
        "--filter",
        "event=health_status",
        "--format",
        "{{.Action}}",
    ]);
    let events: Vec<&str> = events.lines().collect();
    assert_eq!(
        events,
        ["health_status: unhealthy", "health_status: healthy"]
    );
}

#[test]
fn logs_follow_streams_until_the_container_exits() {
    let daemon = daemon_with_busybox("follow");
    daemon.docker_ok(&[
        "run",
        "-d",
        "--name",
        "talker",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo line $i; sleep 0.3; done",
    ]);
    let followed = daemon.docker_ok(&["logs", "-f", "talker"]);
    assert_eq!(followed, "line 1\nline 2\nline 3\n");
    let tail = daemon.docker_ok(&["logs", "--tail", "1", "talker"]);
    assert_eq!(tail, "line 3\n");
    let stamped = daemon.docker_ok(&["logs", "-t", "talker"]);
    assert!(stamped.lines().all(|l| l.contains("Z line ")), "{stamped}");
}

#[test]
fn docker_cp_copies_both_ways_and_resolves_links_inside_the_container() {
    let daemon = daemon_with_busybox("cp");
    let id = daemon.docker_ok(&["run", "-d", "--name", "files", "busybox", "sleep", "300"]);
    let host_dir = daemon.scratch.path().join("cp");
    std::fs::create_dir(&host_dir).unwrap();
    let unique = format!("berth-cp-probe-{}", std::process::id());
    let host_file = host_dir.join(&unique);
    std::fs::write(&host_file, "from the host\n").unwrap();

    daemon.docker_ok(&["cp", host_file.to_str().unwrap(), "files:/tmp/"]);
    assert_eq!(
        daemon.docker_ok(&["exec", "files", "cat", &format!("/tmp/{unique}")]),
        "from the host\n"
    );

    let out = host_dir.join("hostname");
    daemon.docker_ok(&["cp", "files:/etc/hostname", out.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap().trim(),
        &id.trim()[..12]
    );

    // A directory comes out whole, as the container sees it (its /etc/hostname bind too).
    let etc = host_dir.join("etc-copy");
    daemon.docker_ok(&["cp", "files:/etc", etc.to_str().unwrap()]);
    assert!(etc.join("passwd").is_file(), "no passwd in the copied /etc");
    let copied_hostname = std::fs::read_to_string(etc.join("hostname")).unwrap_or_default();
    assert_eq!(copied_hostname.trim(), &id.trim()[..12]);

    // A link in the container to /etc leads to the container's /etc, never the host's.
    daemon.docker_ok(&["exec", "files", "ln", "-s", "/etc", "/tmp/etclink"]);
    daemon.docker_ok(&["cp", host_file.to_str().unwrap(), "files:/tmp/etclink/"]);
    assert!(
        !Path::new("/etc").join(&unique).exists(),
        "docker cp wrote into the host's /etc"
    );
    daemon.docker_ok(&["exec", "files", "test", "-f", &format!("/etc/{unique}")]);

    // A stopped container's files are reachable too, and its root is unmounted after.
    daemon.docker_ok(&["stop", "-t", "0", "files"]);
    let stopped = host_dir.join("from-stopped");
    daemon.docker_ok(&[
        "cp",
        &format!("files:/tmp/{unique}"),
        stopped.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(&stopped).unwrap(),
        "from the host\n"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(daemon.scratch.path().join("data").to_str().unwrap()),
        "the copy left the root mounted"
    );
    let missing = daemon.docker(&["cp", "files:/no/such/file", host_dir.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("Could not find the file /no/such/file"),
        "{missing:?}"
    );
}

#[test]
fn berth_ps_and_images_print_docker_s_tables() {
    let daemon = daemon_with_busybox("listing");
    daemon.docker_ok(&["run", "-d", "--name", "listed", "busybox", "sleep", "300"]);
    let berth = |args: &[&str]| daemon.berth_ok(args);
    // The columns that do not depend on the moment of the call are docker's exactly.
    let columns = |text: &str, keep: &[usize]| -> Vec<String> {
        text.lines()
            .map(|l| {
                let cells: Vec<&str> = l
                    .split("   ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .collect();
                keep.iter()
                    .map(|i| cells.get(*i).copied().unwrap_or_default().to_string())
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    };
    let ours = berth(&["ps"]);
    let theirs = daemon.docker_ok(&["ps"]);
    assert_eq!(
        columns(&ours, &[0, 1, 2]),
        columns(&theirs, &[0, 1, 2]),
        "\n{ours}\n{theirs}"
    );
    assert!(
        ours.lines().nth(1).is_some_and(|l| l.ends_with("listed")),
        "{ours}"
    );
    assert_eq!(berth(&["ps", "-q"]), daemon.docker_ok(&["ps", "-q"]));
    let ours = berth(&["images"]);
    let theirs = daemon.docker_ok(&["images"]);
    assert_eq!(
        columns(&ours, &[0, 1, 2]),
        columns(&theirs, &[0, 1, 2]),
        "\n{ours}\n{theirs}"
    );
    assert_eq!(
        ours.lines()
            .nth(1)
            .and_then(|l| l.split_whitespace().last()),
        theirs
            .lines()
            .nth(1)
            .and_then(|l| l.split_whitespace().last())
    );
}

#[test]
fn an_image_in_use_is_kept_and_prune_removes_only_what_is_unused() {
    let daemon = daemon_with_busybox("prune");
    daemon.docker_ok(&["run", "--name", "done", "busybox", "true"]);
    let refused = daemon.docker(&["rmi", "busybox"]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("image is being used by container"),
        "{refused:?}"
    );
    daemon.docker_ok(&["tag", "busybox", "other:1"]);
    assert_eq!(
        daemon.docker_ok(&["rmi", "other:1"]).trim(),
        "Untagged: other:1"
    );
    daemon.docker_ok(&["run", "-d", "--name", "running", "busybox", "sleep", "300"]);
    let pruned = daemon.docker_ok(&["container", "prune", "-f"]);
    assert!(pruned.contains("Deleted Containers:"), "{pruned}");
    assert_eq!(
        daemon
            .docker_ok(&["ps", "-a", "--format", "{{.Names}}"])
            .trim(),
        "running"
    );
    // The image is still used by the running container: its layers stay.
    daemon.docker_ok(&["image", "prune", "-f"]);
    assert_eq!(
        daemon
            .docker_ok(&["images", "--format", "{{.Repository}}"])
            .trim(),
        "busybox"
    );
    daemon.docker_ok(&["run", "--rm", "busybox", "true"]);
}

#[test]
fn json_file_logs_rotate_and_logs_follow_across_rotations() {
    let daemon = daemon_with_busybox("log-rotation");
    let script = "sleep 0.5; i=1; while [ $i -le 300 ]; do echo line $i; i=$((i+1)); done";
    daemon.docker_ok(&[
        "run",
        "-d",
        "--name",
        "many",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=100",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    let followed = daemon.docker_ok(&["logs", "-f", "many"]);
    let expected: Vec<String> = (1..=300).map(|i| format!("line {i}")).collect();
    assert_eq!(followed.lines().collect::<Vec<_>>(), expected);
    assert_eq!(daemon.docker_ok(&["logs", "many"]), followed);
    let log = daemon.docker_ok(&["inspect", "-f", "{{.LogPath}}", "many"]);
    let log = std::path::PathBuf::from(log.trim());
    assert!(std::fs::metadata(&log).unwrap().len() <= 1024);
    assert!(std::path::Path::new(&format!("{}.10", log.display())).exists());

    // Two files at most: the oldest lines are gone.
    daemon.docker_ok(&[
        "run",
        "--name",
        "few",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=2",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    let kept = daemon.docker_ok(&["logs", "few"]);
    let kept: Vec<&str> = kept.lines().collect();
    assert_eq!(kept.last(), Some(&"line 300"));
    assert!(kept.len() < 100, "{} lines kept", kept.len());
    let bad = daemon.docker(&[
        "run",
        "--rm",
        "--log-opt",
        "max-size=lots",
        "busybox",
        "true",
    ]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("invalid max-size"),
        "{bad:?}"
    );
}

#[test]
fn run_i_passes_stdin_and_run_it_gets_a_terminal_of_the_client_s_size() {
    let daemon = daemon_with_busybox("stdin");
    let mut cat = daemon
        .docker_command(&["run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo done"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(cat.stdin.as_mut().unwrap(), b"through stdin\n").unwrap();
    drop(cat.stdin.take());
    let output = cat.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "through stdin\ndone\n"
    );

    // `script` gives the CLI a terminal of 33x111 rows and columns; the container's
    // terminal takes that size, and its shell's exit status is the run's.
    let command = format!(
        "stty rows 33 cols 111; DOCKER_HOST={} DOCKER_CONFIG={} docker run -it --rm busybox sh",
        daemon.host(),
        daemon.scratch.path().join("docker-config").display()
    );
    let mut script = Command::new("timeout")
        .args(["60", "script", "-qec", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = script.stdin.take().unwrap();
    // The client sends its size just after the start: wait for it, then report.
    let typed = b"while [ \"$(stty size)\" = \"0 0\" ]; do sleep 0.05; done; echo in-$((6*7)); stty size; exit 3\n";
    std::io::Write::write_all(&mut input, typed).unwrap();
    // The input stays open until the run ends, as a person's keyboard would.
    let output = script.wait_with_output().unwrap();
    drop(input);
    let text = String::from_utf8_lossy(&output.stdout).replace('\r', "");
    assert!(text.contains("\nin-42\n33 111\n"), "{text}");
    assert_eq!(output.status.code(), Some(3), "{text}");
}
