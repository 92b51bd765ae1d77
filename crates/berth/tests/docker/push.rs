//! `docker push` and `berth push` through the daemon: to distribution 2.8 (with and
//! without users, so also `docker login` and `berth login`/`logout`) and to Berth's own
//! registry, each pushed image pulled back by a daemon that did not have it.

use super::*;
use berth_testkit::registry::LocalRegistry;

/// A registry on the daemon's host holding the test kit's busybox as `busybox:latest`,
/// pulled into the daemon.
fn pulled_busybox(daemon: &Daemon, users: &[(&str, &str)]) -> LocalRegistry {
    let registry = LocalRegistry::start_with_users(
        &daemon.scratch.path().join("registry"),
        Some(&daemon.host.path()),
        "127.0.0.1:5000",
        users,
    )
    .unwrap();
    let image =
        berth_testkit::images::busybox_image(&daemon.scratch.path().join("layout")).unwrap();
    registry
        .push(&image, "busybox", "latest", users.first().copied())
        .unwrap();
    registry
}

#[test]
fn docker_push_mounts_what_the_registry_has_uploads_the_rest_and_pulls_back() {
    let daemon = Daemon::start("push");
    let registry = pulled_busybox(&daemon, &[]);
    let busybox = format!("{}/busybox", registry.address);
    daemon.docker_ok(&["pull", &busybox]);

    // A second name for the same image: its layer is mounted from the first repository.
    let copy = format!("{}/team/copy:v1", registry.address);
    daemon.docker_ok(&["tag", &busybox, &copy]);
    let pushed = daemon.docker_ok(&["push", &copy]);
    assert!(
        pushed.contains(&format!(
            "The push refers to repository [{}/team/copy]",
            registry.address
        )),
        "{pushed}"
    );
    assert!(pushed.contains("Mounted from busybox"), "{pushed}");
    let digest_line = pushed
        .lines()
        .find(|l| l.starts_with("v1: digest: sha256:"))
        .unwrap_or_else(|| panic!("no digest line: {pushed}"));
    assert!(digest_line.contains(" size: "), "{digest_line}");
    let again = daemon.docker_ok(&["push", &copy]);
    assert!(again.contains("Layer already exists"), "{again}");

    // A layer of our own (a committed change) is uploaded.
    daemon.docker_ok(&[
        "run",
        "--name",
        "maker",
        &busybox,
        "sh",
        "-c",
        "echo made here > /made",
    ]);
    let committed = format!("{}/committed:1", registry.address);
    daemon.docker_ok(&["commit", "maker", &committed]);
    let pushed = daemon.docker_ok(&["push", &committed]);
    assert!(pushed.contains(": Pushed"), "{pushed}");

    // Back from the registry into a daemon without them.
    daemon.docker_ok(&["rm", "maker"]);
    daemon.docker_ok(&["rmi", &committed, &copy, &busybox]);
    daemon.docker_ok(&["pull", &committed]);
    let out = daemon.docker_ok(&["run", "--rm", &committed, "cat", "/made"]);
    assert_eq!(out.trim(), "made here");

    let missing = daemon.docker(&["push", &format!("{}/nothing:1", registry.address)]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains(&format!(
            "An image does not exist locally with the tag: {}/nothing",
            registry.address
        )),
        "{stderr}"
    );
}

#[test]
fn pushes_to_a_registry_with_users_need_a_login_by_docker_or_berth() {
    let daemon = Daemon::start("push-login");
    let registry = pulled_busybox(&daemon, &[("ada", "s3cret")]);
    let busybox = format!("{}/busybox", registry.address);
    daemon.docker_ok(&["login", "-u", "ada", "-p", "s3cret", &registry.address]);
    daemon.docker_ok(&["pull", &busybox]);
    daemon.docker_ok(&["logout", &registry.address]);

    let private = format!("{}/private:v1", registry.address);
    daemon.docker_ok(&["tag", &busybox, &private]);
    let anonymous = daemon.docker(&["push", &private]);
    assert!(!anonymous.status.success(), "{anonymous:?}");
    let stderr = String::from_utf8_lossy(&anonymous.stderr);
    assert!(
        stderr.contains("unauthorized: authentication required"),
        "{stderr}"
    );

    // berth login keeps the credentials where docker does; both CLIs then push.
    let wrong = daemon.berth(&["login", "-u", "ada", "-p", "wrong", &registry.address]);
    assert!(!wrong.status.success(), "{wrong:?}");
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("401 Unauthorized"),
        "{wrong:?}"
    );
    let login = daemon.berth_ok(&["login", "-u", "ada", "-p", "s3cret", &registry.address]);
    assert!(login.contains("Login Succeeded"), "{login}");
    let pushed = daemon.berth_ok(&["push", &private]);
    assert!(
        pushed.lines().any(|l| l.starts_with("v1: digest: sha256:")),
        "{pushed}"
    );
    let by_docker = daemon.docker_ok(&["push", &private]);
    assert!(by_docker.contains("Layer already exists"), "{by_docker}");
    let logout = daemon.berth_ok(&["logout", &registry.address]);
    assert!(logout.contains("Removing login credentials"), "{logout}");
    let config = std::fs::read_to_string(
        daemon
            .scratch
            .path()
            .join("docker-config")
            .join("config.json"),
    )
    .unwrap();
    assert!(!config.contains(&registry.address), "{config}");
}

#[test]
fn docker_push_to_berth_s_own_registry_and_back() {
    let daemon = Daemon::start("push-berth");
    let source = pulled_busybox(&daemon, &[]);
    let busybox = format!("{}/busybox", source.address);
    daemon.docker_ok(&["pull", &busybox]);
    let _registry = ChildGuard(
        daemon
            .on_host(&[
                env!("CARGO_BIN_EXE_berth"),
                "registry",
                "serve",
                "--addr",
                "127.0.0.1:5001",
                "--root",
                &daemon
                    .scratch
                    .path()
                    .join("berth-registry")
                    .display()
                    .to_string(),
            ])
            .spawn()
            .unwrap(),
    );
    let ours = "127.0.0.1:5001/apps/busybox:1";
    daemon.docker_ok(&["tag", &busybox, ours]);
    // The registry answers once it listens.
    let deadline = Instant::now() + Duration::from_secs(20);
    while daemon.curl("http://127.0.0.1:5001/v2/").is_none() {
        assert!(
            Instant::now() < deadline,
            "berth registry serve did not answer"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pushed = daemon.docker_ok(&["push", ours]);
    assert!(pushed.contains(": Pushed"), "{pushed}");
    let digest = pushed
        .lines()
        .find_map(|l| l.strip_prefix("1: digest: "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest line: {pushed}"))
        .to_string();
    let listed = daemon
        .curl("http://127.0.0.1:5001/v2/apps/busybox/tags/list")
        .unwrap();
    assert!(listed.contains("\"1\""), "{listed}");
    daemon.docker_ok(&["rmi", ours, &busybox]);
    let pulled = daemon.docker_ok(&["pull", ours]);
    assert!(pulled.contains(&format!("Digest: {digest}")), "{pulled}");
    let out = daemon.docker_ok(&["run", "--rm", ours, "echo", "round trip"]);
    assert_eq!(out.trim(), "round trip");

    // A build reaches the registry only on the host's network; and --pull takes the base
    // image the registry now has over the one here.
    let dir = daemon.scratch.path().join("newer");
    std::fs::create_dir_all(&dir).unwrap();
    let dockerfile = format!(
        "FROM {ours}\nRUN --network=host wget -q -O /catalog http://127.0.0.1:5001/v2/apps/busybox/tags/list || echo offline > /catalog\n"
    );
    std::fs::write(dir.join("Dockerfile"), &dockerfile).unwrap();
    let context = dir.display().to_string();
    let refused = daemon.berth(&["build", &context]);
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("RUN --network=host needs the build's --network host"),
        "{refused:?}"
    );
    daemon.docker_ok(&["tag", ours, "older:1"]);
    daemon.berth_ok(&["build", "--network", "host", "-t", ours, &context]);
    let catalog = daemon.docker_ok(&["run", "--rm", ours, "cat", "/catalog"]);
    assert!(catalog.contains("\"apps/busybox\""), "{catalog}");
    daemon.docker_ok(&["push", ours]);
    daemon.docker_ok(&["tag", "older:1", ours]);
    let uses = daemon.scratch.path().join("uses");
    std::fs::create_dir_all(&uses).unwrap();
    std::fs::write(
        uses.join("Dockerfile"),
        format!("FROM {ours}\nCMD [\"cat\", \"/catalog\"]\n"),
    )
    .unwrap();
    let uses = uses.display().to_string();
    daemon.berth_ok(&["build", "-t", "local:1", &uses]);
    assert!(!daemon.docker(&["run", "--rm", "local:1"]).status.success());
    daemon.berth_ok(&["build", "--pull", "-t", "pulled:1", &uses]);
    let pulled = daemon.docker_ok(&["run", "--rm", "pulled:1"]);
    assert!(pulled.contains("\"apps/busybox\""), "{pulled}");
}
