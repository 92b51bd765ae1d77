//! `docker pull` and `docker run` of an image not yet here, from a real registry
//! (distribution 2.8 on the daemon's test host, seeded with skopeo).

use super::*;
use berth_testkit::registry::LocalRegistry;

/// A daemon and a registry on its test host holding the test kit's busybox as
/// `busybox:latest`.
fn daemon_and_registry(name: &str) -> (Daemon, LocalRegistry) {
    let daemon = Daemon::start(name);
    let registry = LocalRegistry::start(
        &daemon.scratch.path().join("registry"),
        Some(&daemon.host.path()),
        "127.0.0.1:5000",
    )
    .unwrap();
    let image =
        berth_testkit::images::busybox_image(&daemon.scratch.path().join("layout")).unwrap();
    registry.push(&image, "busybox", "latest", None).unwrap();
    (daemon, registry)
}

#[test]
fn docker_pull_fetches_an_image_that_then_runs_and_a_second_pull_finds_it_current() {
    let (daemon, registry) = daemon_and_registry("pull");
    let image = format!("{}/busybox", registry.address);
    let pulled = daemon.docker_ok(&["pull", &image]);
    assert!(pulled.contains("Pull complete"), "{pulled}");
    assert!(
        pulled.contains(&format!(
            "Status: Downloaded newer image for {image}:latest"
        )),
        "{pulled}"
    );
    let digest = pulled
        .lines()
        .find_map(|l| l.strip_prefix("Digest: "))
        .unwrap();
    assert!(digest.starts_with("sha256:"), "{pulled}");
    let out = daemon.docker_ok(&["run", "--rm", &image, "echo", "pulled"]);
    assert_eq!(out.trim(), "pulled");
    let again = daemon.docker_ok(&["pull", &image]);
    assert!(again.contains("Already exists"), "{again}");
    assert!(
        again.contains(&format!("Status: Image is up to date for {image}:latest")),
        "{again}"
    );
    let listed = daemon.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(listed.trim(), format!("{image}:latest"));
}

#[test]
fn docker_run_pulls_a_missing_image_and_missing_ones_are_named_as_docker_names_them() {
    let (daemon, registry) = daemon_and_registry("run-pull");
    let image = format!("{}/busybox:latest", registry.address);
    let run = daemon.docker(&["run", "--rm", &image, "echo", "ran"]);
    assert!(run.status.success(), "{run:?}");
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), "ran");
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("Unable to find image"),
        "{run:?}"
    );
    let tag = format!("{}/busybox:nope", registry.address);
    let missing_tag = daemon.docker(&["pull", &tag]);
    let stderr = String::from_utf8_lossy(&missing_tag.stderr);
    assert!(
        stderr.contains(&format!("manifest for {tag} not found: manifest unknown")),
        "{stderr}"
    );
    // distribution answers MANIFEST_UNKNOWN for a repository it never had, and Docker
    // words it the same way.
    let repository = format!("{}/nothing", registry.address);
    let missing_repository = daemon.docker(&["pull", &repository]);
    let stderr = String::from_utf8_lossy(&missing_repository.stderr);
    assert!(
        stderr.contains(&format!("manifest for {repository}:latest not found")),
        "{stderr}"
    );
    let all_tags = daemon.docker(&[
        "pull",
        "--all-tags",
        &format!("{}/busybox", registry.address),
    ]);
    let stderr = String::from_utf8_lossy(&all_tags.stderr);
    assert!(
        stderr.contains("berth does not support pulling every tag yet"),
        "{stderr}"
    );
    let unreachable = daemon.docker(&["pull", "127.0.0.1:5999/busybox"]);
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert!(stderr.contains("127.0.0.1:5999"), "{stderr}");
}

#[test]
fn docker_login_lets_pulls_into_a_registry_that_wants_users() {
    let daemon = Daemon::start("login");
    let registry = LocalRegistry::start_with_users(
        &daemon.scratch.path().join("registry"),
        Some(&daemon.host.path()),
        "127.0.0.1:5000",
        &[("ada", "s3cret")],
    )
    .unwrap();
    let image =
        berth_testkit::images::busybox_image(&daemon.scratch.path().join("layout")).unwrap();
    registry
        .push(&image, "private", "v1", Some(("ada", "s3cret")))
        .unwrap();
    let image = format!("{}/private:v1", registry.address);
    let anonymous = daemon.docker(&["pull", &image]);
    assert!(!anonymous.status.success(), "{anonymous:?}");
    assert!(
        String::from_utf8_lossy(&anonymous.stderr).contains("may require 'docker login'"),
        "{anonymous:?}"
    );
    let wrong = daemon.docker(&["login", "-u", "ada", "-p", "wrong", &registry.address]);
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        stderr.contains(&format!(
            "login attempt to http://{}/v2/ failed with status: 401 Unauthorized",
            registry.address
        )),
        "{stderr}"
    );
    let login = daemon.docker_ok(&["login", "-u", "ada", "-p", "s3cret", &registry.address]);
    assert!(login.contains("Login Succeeded"), "{login}");
    // berth's own CLI sends what docker login kept, as the docker CLI does.
    let by_berth = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["-H", &daemon.host(), "pull", &image])
        .env("DOCKER_CONFIG", daemon.scratch.path().join("docker-config"))
        .output()
        .unwrap();
    assert!(by_berth.status.success(), "{by_berth:?}");
    daemon.docker_ok(&["rmi", &image]);
    let pulled = daemon.docker_ok(&["pull", &image]);
    assert!(
        pulled.contains("Status: Downloaded newer image"),
        "{pulled}"
    );
    let out = daemon.docker_ok(&["run", "--rm", &image, "echo", "private"]);
    assert_eq!(out.trim(), "private");
}

#[test]
fn berth_pull_shows_each_layer_and_berth_run_pulls_what_is_missing() {
    let (daemon, registry) = daemon_and_registry("berth-pull");
    let image = format!("{}/busybox", registry.address);
    let pulled = daemon.berth_ok(&["pull", &image]);
    let lines: Vec<&str> = pulled.lines().collect();
    assert_eq!(
        lines.first(),
        Some(&"latest: Pulling from busybox"),
        "{pulled}"
    );
    assert!(
        lines.iter().any(|l| l.ends_with(": Pull complete")),
        "{pulled}"
    );
    assert!(
        !pulled.contains("Downloading"),
        "no progress flood off a terminal: {pulled}"
    );
    assert_eq!(
        lines.last(),
        Some(&format!("{image}:latest").as_str()),
        "{pulled}"
    );
    daemon.docker_ok(&["rmi", &image]);
    let ran = daemon.berth(&["run", "--rm", &image, "echo", "ran"]);
    assert!(ran.status.success(), "{ran:?}");
    assert!(
        String::from_utf8_lossy(&ran.stdout).ends_with("ran\n"),
        "{ran:?}"
    );
    assert!(
        String::from_utf8_lossy(&ran.stderr).contains("Unable to find image"),
        "{ran:?}"
    );
    let missing = daemon.berth(&["pull", &format!("{image}:nope")]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("manifest unknown"),
        "{missing:?}"
    );
}

#[test]
fn an_image_index_is_resolved_to_this_host_s_platform() {
    let (daemon, registry) = daemon_and_registry("index");
    let layout = daemon.scratch.path().join("multi-layout");
    let image = berth_testkit::images::busybox_multi_platform_image(&layout).unwrap();
    registry.push(&image, "multi", "latest", None).unwrap();
    let name = format!("{}/multi", registry.address);
    daemon.docker_ok(&["pull", &name]);
    let arch = daemon.docker_ok(&["image", "inspect", "-f", "{{.Architecture}}", &name]);
    let host = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    };
    assert_eq!(arch.trim(), host);
    let said = daemon.docker_ok(&["run", "--rm", &name, "sh", "-c", "echo $PLATFORM"]);
    assert_eq!(said.trim(), host);
}

#[test]
fn registries_beyond_loopback_need_tls_unless_named_insecure() {
    let mut daemon = Daemon::start("insecure");
    // An address of the test host that is not loopback's, on its lo.
    let added = daemon
        .on_host(&["ip", "addr", "add", "10.203.0.1/32", "dev", "lo"])
        .status()
        .unwrap();
    assert!(added.success());
    let registry = LocalRegistry::start(
        &daemon.scratch.path().join("registry"),
        Some(&daemon.host.path()),
        "10.203.0.1:5000",
    )
    .unwrap();
    let layout = daemon.scratch.path().join("layout");
    let image = berth_testkit::images::busybox_image(&layout).unwrap();
    registry.push(&image, "busybox", "latest", None).unwrap();
    let name = "10.203.0.1:5000/busybox:latest";
    let over_tls = daemon.docker(&["pull", name]);
    assert!(!over_tls.status.success(), "{over_tls:?}");
    let stderr = String::from_utf8_lossy(&over_tls.stderr);
    assert!(stderr.contains("https://10.203.0.1:5000/v2/"), "{stderr}");
    daemon.restart_with(&["--insecure-registry", "10.203.0.1:5000"]);
    let pulled = daemon.docker_ok(&["pull", name]);
    assert!(
        pulled.contains("Status: Downloaded newer image"),
        "{pulled}"
    );
}
