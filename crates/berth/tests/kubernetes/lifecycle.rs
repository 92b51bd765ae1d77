//! Lifecycle hooks on a real node: postStart runs once the container has started (and a
//! failing one kills it, with FailedPostStartHook), preStop runs before the container
//! is stopped, within the grace period.

use std::time::Duration;

use crate::pods::AllInOne;

/// `SHARED` stands for a host directory the preStop hook writes into.
const HOOKED: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: hooked
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: main
    image: busybox:1
    command: ["sleep", "3600"]
    lifecycle:
      postStart:
        exec: {command: ["sh", "-c", "echo started > /tmp/post-start"]}
      preStop:
        exec: {command: ["sh", "-c", "echo stopping > /shared/pre-stop"]}
    volumeMounts:
    - {name: shared, mountPath: /shared}
  volumes:
  - name: shared
    hostPath: {path: SHARED, type: Directory}
---
apiVersion: v1
kind: Pod
metadata:
  name: unhooked
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:1
    command: ["sleep", "3600"]
    lifecycle:
      postStart:
        exec: {command: ["sh", "-c", "exit 3"]}
"#;

#[test]
fn post_start_and_pre_stop_hooks_run_as_the_kubelet_runs_them() {
    let cluster = AllInOne::start("hooks");
    let shared = cluster.scratch_path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    cluster.apply(
        "hooked.yaml",
        &HOOKED.replace("SHARED", shared.to_str().unwrap()),
    );
    let limit = Duration::from_secs(60);
    cluster.pod_field("hooked", ".status.phase", |phase| phase == "Running");
    let written = cluster.kubectl_until(
        &["exec", "hooked", "--", "cat", "/tmp/post-start"],
        limit,
        |text| text == "started\n",
    );
    assert_eq!(written, "started\n");
    cluster.kubectl_ok(&["delete", "pod", "hooked", "--timeout=60s"]);
    assert_eq!(
        std::fs::read_to_string(shared.join("pre-stop")).unwrap(),
        "stopping\n"
    );

    let failed = cluster.events("unhooked", "FailedPostStartHook");
    assert!(
        failed.contains("PostStartHook failed: command exited with 3"),
        "{failed}"
    );
    cluster.pod_field(
        "unhooked",
        ".status.containerStatuses[0].restartCount",
        |n| n.parse::<u32>().is_ok_and(|n| n >= 1),
    );
}
