//! Compose against the daemon, on the project in examples/compose: a web app counting its
//! visits in a key-value store, both built from Dockerfiles on the test kit's `webapp`
//! image, the web app reaching the store by its service name once the store is healthy.
//! It comes up with `berth compose up -d --wait`, with Debian's docker-compose 1.29 and
//! with podman-compose 1.0.3 (through the daemon's libpod API),
//! answers on its published port, keeps its counts in a volume across `down` and `up`,
//! and `down -v` leaves nothing behind.

use super::*;

/// The example project's folder.
fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/compose")
}

/// A daemon with the test kit's `webapp` image, the example's base, loaded.
fn daemon_with_base(name: &str) -> Daemon {
    let daemon = Daemon::start(name);
    let archive = daemon.archive("webapp");
    daemon.docker_ok(&["load", "-i", &archive.display().to_string()]);
    daemon
}

/// The web app's answer on its published port, once it gives one.
fn visit(daemon: &Daemon) -> String {
    visit_port(daemon, 8080)
}

fn visit_port(daemon: &Daemon, port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(answer) = daemon.curl(&format!("http://127.0.0.1:{port}/")) {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "the web app never answered: {}\n{}",
            daemon.docker_ok(&["ps", "-a"]),
            String::from_utf8_lossy(&daemon.docker(&["logs", "shop-web-1"]).stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `berth compose -f examples/compose/compose.yaml -p shop ARGS` with the environment
/// `env`, which must succeed; its stdout.
fn compose(daemon: &Daemon, env: &[(&str, &str)], args: &[&str]) -> String {
    let file = example().join("compose.yaml");
    let output = Command::new("timeout")
        .args([
            "60",
            env!("CARGO_BIN_EXE_berth"),
            "-H",
            &daemon.host(),
            "compose",
            "-f",
        ])
        .arg(&file)
        .args(["-p", "shop"])
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "compose {args:?}: {output:?}\ndaemon log: {}",
        read_log(daemon.scratch.path())
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn compose_up_runs_services_that_find_each_other_by_name_and_down_removes_them() {
    let daemon = daemon_with_base("compose");
    let up = compose(&daemon, &[], &["up", "-d", "--wait"]);
    assert!(up.contains("Network shop_default  Created"), "{up}");
    assert!(up.contains("Image compose-web:latest  Built"), "{up}");
    assert!(up.contains("Container shop-web-1  Started"), "{up}");
    assert_eq!(visit(&daemon), "seen 1 times\n");
    assert_eq!(visit(&daemon), "seen 2 times\n");

    // The labels are what docker ps filters on; filters Berth lacks are refused.
    let kv = daemon.docker_ok(&[
        "ps",
        "--filter",
        "label=com.docker.compose.project=shop",
        "--filter",
        "label=com.docker.compose.service=kv",
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(kv.trim(), "shop-kv-1");
    // Names are matched as Docker matches them: a regular expression on `/<name>`.
    let exact = daemon.docker_ok(&[
        "ps",
        "--filter",
        "name=^/shop-kv-1$",
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(exact.trim(), "shop-kv-1");
    let neither = daemon.docker_ok(&["ps", "-q", "--filter", "name=^shop"]);
    assert_eq!(neither.trim(), "");
    let ancestor = daemon.docker(&["ps", "--filter", "ancestor=busybox"]);
    assert!(
        String::from_utf8_lossy(&ancestor.stderr).contains("container filter \"ancestor\""),
        "{ancestor:?}"
    );
    let ps = compose(&daemon, &[], &["ps"]);
    assert!(
        ps.contains("shop-kv-1") && ps.contains("shop-web-1"),
        "{ps}"
    );
    assert!(ps.contains("compose-web:latest"), "{ps}");

    // Up again with nothing changed touches nothing; a changed port recreates only web,
    // which finds the same store.
    let again = compose(&daemon, &[], &["up", "-d"]);
    assert!(again.contains("Container shop-kv-1  Running"), "{again}");
    assert!(again.contains("Container shop-web-1  Running"), "{again}");
    assert!(!again.contains("Built"), "{again}");
    let moved = compose(&daemon, &[("WEB_PORT", "8081")], &["up", "-d", "--wait"]);
    assert!(moved.contains("Container shop-kv-1  Running"), "{moved}");
    assert!(moved.contains("Container shop-web-1  Recreated"), "{moved}");
    assert_eq!(visit_port(&daemon, 8081), "seen 3 times\n");

    // A command in the store's container, and a one-off container of it on the volume.
    let hits = compose(&daemon, &[], &["exec", "-T", "kv", "cat", "/data/hits"]);
    assert_eq!(hits, "3\n");
    let once = ["run", "--rm", "--entrypoint", "cat", "kv", "/data/hits"];
    assert_eq!(compose(&daemon, &[], &once), "3\n");
    let oneoffs = daemon.docker_ok(&[
        "ps",
        "-aq",
        "--filter",
        "label=com.docker.compose.oneoff=True",
    ]);
    assert_eq!(oneoffs.trim(), "");

    let logs = compose(&daemon, &[], &["logs", "kv"]);
    assert!(
        logs.contains("shop-kv-1 | testapp: listening on port 6379"),
        "{logs}"
    );
    assert!(!logs.contains("shop-web-1"), "{logs}");

    // Stop takes the dependent first, start the dependency first.
    let stopped = compose(&daemon, &[], &["stop"]);
    let (web, kv) = (
        stopped.find("shop-web-1  Stopped"),
        stopped.find("shop-kv-1  Stopped"),
    );
    assert!(web.is_some() && kv.is_some() && web < kv, "{stopped}");
    let started = compose(&daemon, &[], &["start"]);
    let (web, kv) = (
        started.find("shop-web-1  Started"),
        started.find("shop-kv-1  Started"),
    );
    assert!(web.is_some() && kv.is_some() && kv < web, "{started}");
    assert_eq!(visit_port(&daemon, 8081), "seen 4 times\n");

    // Without -v the counts outlive the containers.
    compose(&daemon, &[], &["down"]);
    assert_eq!(daemon.docker_ok(&["ps", "-aq"]).trim(), "");
    let volumes = daemon.docker_ok(&["volume", "ls", "-q"]);
    assert!(volumes.lines().any(|v| v == "shop_counts"), "{volumes}");
    compose(&daemon, &[], &["up", "-d", "--wait"]);
    assert_eq!(visit(&daemon), "seen 5 times\n");

    let down = compose(&daemon, &[], &["down", "-v"]);
    assert!(down.contains("Network shop_default  Removed"), "{down}");
    assert_eq!(daemon.docker_ok(&["ps", "-aq"]).trim(), "");
    let networks = daemon.docker_ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!networks.contains("shop_default"), "{networks}");
    let volumes = daemon.docker_ok(&["volume", "ls", "-q"]);
    assert!(!volumes.lines().any(|v| v == "shop_counts"), "{volumes}");
}

/// Debian's docker-compose 1.29 (Python, the Docker SDK) against the daemon.
fn docker_compose(daemon: &Daemon, project: &Path, args: &[&str]) -> Output {
    Command::new("timeout")
        .args(["120", "docker-compose"])
        .args(args)
        .current_dir(project)
        .env("DOCKER_HOST", daemon.host())
        .env("DOCKER_CONFIG", daemon.scratch.path().join("docker-config"))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn docker_compose_brings_the_same_project_up_and_down() {
    let daemon = daemon_with_base("docker-compose");
    let project = example();
    let up = docker_compose(&daemon, &project, &["-p", "shop", "up", "-d"]);
    assert!(
        up.status.success(),
        "{}\n{}\ndaemon log: {}",
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr),
        read_log(daemon.scratch.path())
    );
    // docker-compose 1.29 names containers <project>_<service>_<n>.
    assert_eq!(visit(&daemon), "seen 1 times\n");
    let web = daemon.docker_ok(&[
        "ps",
        "--filter",
        "name=shop_web_1",
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(web.trim(), "shop_web_1");
    let down = docker_compose(&daemon, &project, &["-p", "shop", "down", "-v"]);
    assert!(down.status.success(), "{down:?}");
    assert_eq!(daemon.docker_ok(&["ps", "-aq"]).trim(), "");
    let volumes = daemon.docker_ok(&["volume", "ls", "-q"]);
    assert!(!volumes.lines().any(|v| v == "shop_counts"), "{volumes}");
}

/// podman-compose 1.0.3 (Python, driving the podman CLI, which speaks the libpod API with
/// `CONTAINER_HOST` set) against the daemon.
fn podman_compose(daemon: &Daemon, project: &Path, args: &[&str]) -> Output {
    super::podman::podman_command(daemon, 180, "podman-compose")
        .args(args)
        .current_dir(project)
        .output()
        .unwrap()
}

#[test]
fn podman_compose_brings_the_same_project_up_and_down() {
    let daemon = daemon_with_base("podman-compose");
    let project = example();
    let up = podman_compose(&daemon, &project, &["-p", "shop", "up", "-d"]);
    let said = |output: &Output| {
        format!(
            "{}\n{}\ndaemon log: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            read_log(daemon.scratch.path())
        )
    };
    // podman-compose carries on past a failed podman command: its output tells.
    assert!(
        up.status.success() && !String::from_utf8_lossy(&up.stdout).contains("exit code: 1"),
        "{}",
        said(&up)
    );
    // podman-compose 1.0.3 names containers <project>_<service>_<n>, as docker-compose 1.29.
    assert_eq!(visit(&daemon), "seen 1 times\n");
    let ps = podman_compose(&daemon, &project, &["-p", "shop", "ps"]);
    let listed = String::from_utf8_lossy(&ps.stdout);
    assert!(
        listed.contains("shop_web_1") && listed.contains("shop_kv_1"),
        "{}",
        said(&ps)
    );
    let down = podman_compose(&daemon, &project, &["-p", "shop", "down", "-v"]);
    assert!(down.status.success(), "{}", said(&down));
    assert_eq!(daemon.docker_ok(&["ps", "-aq"]).trim(), "");
    let volumes = daemon.docker_ok(&["volume", "ls", "-q"]);
    assert!(!volumes.lines().any(|v| v == "shop_counts"), "{volumes}");
}

/// `berth compose -f FILE -p PROJECT ARGS` left running, with its output's lines as
/// they come (its stderr kept for the end).
fn compose_running(
    daemon: &Daemon,
    file: &Path,
    project: &str,
    args: &[&str],
) -> (ChildGuard, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["-H", &daemon.host(), "compose", "-f"])
        .arg(file)
        .args(["-p", project])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = berth_testkit::lines_of(child.stdout.take().unwrap());
    (ChildGuard(child), lines)
}

/// The lines up to and with `wanted`, which must come within 30 s.
fn lines_until(lines: &std::sync::mpsc::Receiver<String>, wanted: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while seen.last().is_none_or(|l: &String| l != wanted) {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("no {wanted:?} among {seen:?}"),
        }
    }
    seen
}

/// Ctrl+C to a running command.
fn interrupt(command: &mut ChildGuard) {
    let pid = command.0.id().to_string();
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
}

#[test]
fn attached_compose_up_follows_the_output_and_ctrl_c_stops_the_services() {
    let daemon = daemon_with_base("compose-attached");
    let file = example().join("compose.yaml");
    let (mut guard, lines) = compose_running(&daemon, &file, "shop", &["up", "kv"]);
    let output = lines_until(&lines, "shop-kv-1 | testapp: listening on port 6379");
    assert!(
        output.contains(&"Attaching to shop-kv-1".to_string()),
        "{output:?}"
    );
    // Only kv was named, and it depends on nothing.
    assert!(
        !output.iter().any(|l| l.contains("shop-web-1")),
        "{output:?}"
    );

    interrupt(&mut guard);
    let status = guard.0.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut guard.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("Gracefully stopping..."), "{stderr}");
    let state = daemon.docker_ok(&["inspect", "-f", "{{.State.Status}}", "shop-kv-1"]);
    assert_eq!(state.trim(), "exited");
}

#[test]
fn compose_watch_syncs_files_into_containers_and_rebuilds_on_dockerfile_changes() {
    let daemon = daemon_with_base("compose-watch");
    let project = daemon.scratch.path().join("live");
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::write(project.join("src/first.txt"), "first").unwrap();
    std::fs::write(
        project.join("Dockerfile"),
        "FROM webapp\nCOPY src /app/src\nCMD [\"kv\", \"6379\", \"/tmp\"]\n",
    )
    .unwrap();
    let compose = r#"services:
  app:
    build: .
    develop:
      watch:
        - action: sync
          path: ./src
          target: /app/src
          ignore: ["*.tmp"]
        - action: rebuild
          path: ./Dockerfile
"#;
    std::fs::write(project.join("compose.yaml"), compose).unwrap();
    let file = project.join("compose.yaml");
    let (mut guard, lines) = compose_running(&daemon, &file, "live", &["watch"]);
    lines_until(&lines, "Watch enabled");
    let read = |path: &str| {
        let out = daemon.docker(&["exec", "live-app-1", "cat", path]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let until = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    assert_eq!(read("/app/src/first.txt").as_deref(), Some("first"));

    // A new file and a changed one arrive; an ignored one does not; a deleted one goes.
    std::fs::write(project.join("src/skip.tmp"), "ignored").unwrap();
    std::fs::create_dir_all(project.join("src/deeper")).unwrap();
    std::fs::write(project.join("src/deeper/new.txt"), "new").unwrap();
    until("the new file was not synced", &|| {
        read("/app/src/deeper/new.txt").as_deref() == Some("new")
    });
    std::fs::write(project.join("src/first.txt"), "changed").unwrap();
    until("the change was not synced", &|| {
        read("/app/src/first.txt").as_deref() == Some("changed")
    });
    assert_eq!(read("/app/src/skip.tmp"), None);
    std::fs::remove_file(project.join("src/first.txt")).unwrap();
    until("the deletion was not synced", &|| {
        read("/app/src/first.txt").is_none()
    });

    // A changed Dockerfile rebuilds the image and recreates the container.
    let id = |name: &str| daemon.docker_ok(&["inspect", "-f", "{{.Id}}", name]);
    let before = id("live-app-1");
    std::fs::write(
        project.join("Dockerfile"),
        "FROM webapp\nCOPY src /app/src\nLABEL rebuilt=yes\nCMD [\"kv\", \"6379\", \"/tmp\"]\n",
    )
    .unwrap();
    until("the container was not recreated", &|| {
        let now = daemon.docker(&["inspect", "-f", "{{.Id}}", "live-app-1"]);
        now.status.success() && String::from_utf8_lossy(&now.stdout) != before
    });
    let labels = daemon.docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Config.Labels.rebuilt}}",
        "live-app",
    ]);
    assert_eq!(labels.trim(), "yes");
    assert_eq!(read("/app/src/deeper/new.txt").as_deref(), Some("new"));

    interrupt(&mut guard);
    let status = guard.0.wait().unwrap();
    assert!(status.success(), "{status}");

    // up --watch: attached to the output and watching; Ctrl+C stops the service.
    let (mut attached, lines) = compose_running(&daemon, &file, "live", &["up", "--watch"]);
    // The output and the watch start together: a change counts once both are under way.
    let seen = lines_until(&lines, "Attaching to live-app-1");
    if !seen.iter().any(|line| line == "Watch enabled") {
        lines_until(&lines, "Watch enabled");
    }
    std::fs::write(project.join("src/later.txt"), "later").unwrap();
    until("up --watch did not sync", &|| {
        read("/app/src/later.txt").as_deref() == Some("later")
    });
    interrupt(&mut attached);
    assert!(attached.0.wait().unwrap().success());
    let state = daemon.docker_ok(&["inspect", "-f", "{{.State.Status}}", "live-app-1"]);
    assert_eq!(state.trim(), "exited");
    let detached = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["-H", &daemon.host(), "compose", "-f"])
        .arg(&file)
        .args(["up", "-d", "--watch"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&detached.stderr)
            .contains("--watch cannot be combined with --detach"),
        "{detached:?}"
    );
}
