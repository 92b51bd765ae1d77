//! Pulls from a registry that wants credentials: a pod's imagePullSecret (made with
//! `kubectl create secret docker-registry`) lets its image through; a pod without one
//! waits in ImagePullBackOff with the registry's refusal. And an image built and pushed
//! by Berth, to Berth's registry, run by a pod.

use berth_testkit::etcd::free_port;
use berth_testkit::registry::LocalRegistry;

use crate::pods::AllInOne;

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: with-secret
spec:
  terminationGracePeriodSeconds: 0
  imagePullSecrets:
  - name: absent
  - name: regcred
  containers:
  - name: web
    image: REGISTRY/private/webapp:1
---
apiVersion: v1
kind: Pod
metadata:
  name: without-secret
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: web
    image: REGISTRY/private/webapp:1
"#;

#[test]
fn image_pull_secrets_open_a_private_registry() {
    let cluster = AllInOne::start("pulls");
    let address = format!("127.0.0.1:{}", free_port().unwrap());
    let users = [("deployer", "s3cret-pass")];
    let host = cluster.host_path();
    let registry = LocalRegistry::start_with_users(
        &cluster.scratch_path().join("registry"),
        Some(&host),
        &address,
        &users,
    )
    .unwrap();
    let webapp =
        berth_testkit::images::webapp_image(&cluster.scratch_path().join("webapp")).unwrap();
    registry
        .push(&webapp, "private/webapp", "1", Some(users[0]))
        .unwrap();
    cluster.kubectl_ok(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        &format!("--docker-server={address}"),
        "--docker-username=deployer",
        "--docker-password=s3cret-pass",
    ]);
    cluster.apply("pods.yaml", &PODS.replace("REGISTRY", &address));
    cluster.pod_field("with-secret", ".status.phase", |phase| phase == "Running");
    let refused = cluster.pod_field(
        "without-secret",
        ".status.containerStatuses[0].state.waiting",
        |w| w.contains("ImagePullBackOff") || w.contains("ErrImagePull"),
    );
    let pulled = cluster.events("without-secret", "Failed");
    assert!(pulled.contains("pull access denied"), "{pulled}\n{refused}");
    cluster.kubectl_ok(&["delete", "pods", "--all", "--timeout=60s"]);
}

const BUILT_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: built
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: hello
    image: REGISTRY/apps/hello:1
"#;

/// Build → ship → run: `berth build` and `berth push` through a daemon on the node's
/// host, to the registry `berth server` runs for its cluster (on the host's loopback,
/// port 5000), and a pod of the cluster runs what was built.
#[test]
fn a_pod_runs_an_image_berth_built_and_pushed() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    use berth_testkit::guard::{CgroupGuard, ChildGuard};

    let cluster = AllInOne::start("built");
    let scratch = cluster.scratch_path().to_path_buf();
    let address = "127.0.0.1:5000";
    let berth = env!("CARGO_BIN_EXE_berth");
    let cgroup_parent = format!("berth-test/built-daemon-{}", std::process::id());
    let _cgroups = CgroupGuard::new(&cgroup_parent);
    let socket = scratch.join("daemon.sock");
    let daemon_dir = scratch.join("daemon");
    let (data, exec_root) = (daemon_dir.join("data"), daemon_dir.join("run"));
    let host = format!("unix://{}", socket.display());
    let _daemon = ChildGuard(
        cluster
            .host_command(&[
                berth,
                "daemon",
                "--cgroup-parent",
                &cgroup_parent,
                "--data-dir",
                &data.display().to_string(),
                "--exec-root",
                &exec_root.display().to_string(),
                "-H",
                &host,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&socket).is_err()
        || !cluster
            .on_host(&["curl", "-sf", &format!("http://{address}/v2/")])
            .status
            .success()
    {
        assert!(
            Instant::now() < deadline,
            "the daemon or the registry did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let berth_ok = |args: &[&str]| {
        let output = std::process::Command::new(berth)
            .args(["-H", &host])
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "berth {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let archive = scratch.join("busybox.tar");
    let layout = berth_testkit::images::busybox_image(&scratch.join("busybox")).unwrap();
    let tar = berth_testkit::layout::layout_archive(&layout, "busybox:latest").unwrap();
    std::fs::write(&archive, tar).unwrap();
    berth_ok(&["load", "-i", &archive.display().to_string()]);
    let context = scratch.join("hello");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(context.join("message"), "built by berth\n").unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        "FROM busybox\nCOPY message /message\nCMD [\"sh\", \"-c\", \"cat /message; sleep 3600\"]\n",
    )
    .unwrap();
    let image = format!("{address}/apps/hello:1");
    berth_ok(&["build", "-t", &image, &context.display().to_string()]);
    let pushed = berth_ok(&["push", &image]);
    assert!(pushed.contains("1: digest: sha256:"), "{pushed}");

    cluster.apply("built.yaml", &BUILT_POD.replace("REGISTRY", address));
    cluster.pod_field("built", ".status.phase", |phase| phase == "Running");
    let logs = cluster.kubectl_until(&["logs", "built"], Duration::from_secs(30), |out| {
        out.contains("built by berth")
    });
    assert!(logs.contains("built by berth"), "{logs}");
    cluster.kubectl_ok(&["delete", "pods", "--all", "--timeout=60s"]);
}
