//! Pulls from a registry that wants credentials: a pod's imagePullSecret (made with
//! `kubectl create secret docker-registry`) lets its image through; a pod without one
//! waits in ImagePullBackOff with the registry's refusal.

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
