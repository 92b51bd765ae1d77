//! Persistent volumes on a real node: the default StorageClass `local-path`, claims
//! made from a StatefulSet's templates, provisioned on the node its pod was scheduled
//! to, mounted into the pod, and still holding the data when the pod is replaced.

use std::time::Duration;

use crate::pods::AllInOne;

const DATABASE: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  serviceName: db
  replicas: 1
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: db
        image: busybox:1
        command: ["sh", "-c", "echo boot >> /data/boots && exec sleep 3600"]
        volumeMounts:
        - {name: data, mountPath: /data}
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests: {storage: 1Gi}
"#;

#[test]
fn a_statefulsets_claim_is_provisioned_locally_and_keeps_its_data_across_pods() {
    let cluster = AllInOne::start("storage");
    let classes = cluster.kubectl_ok(&["get", "storageclass"]);
    assert!(classes.contains("local-path (default)"), "{classes}");
    assert!(classes.contains("WaitForFirstConsumer"), "{classes}");
    cluster.apply("db.yaml", DATABASE);
    let limit = Duration::from_secs(60);
    let claim = cluster.kubectl_until(
        &[
            "get",
            "pvc",
            "data-db-0",
            "-o",
            "jsonpath={.status.phase} {.spec.storageClassName} {.spec.volumeName}",
        ],
        limit,
        |text| text.starts_with("Bound"),
    );
    assert!(claim.starts_with("Bound local-path pvc-"), "{claim}");
    let volume = claim
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .to_string();
    let placed = cluster.kubectl_ok(&[
        "get",
        "pv",
        &volume,
        "-o",
        "jsonpath={.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]} {.spec.claimRef.name} {.status.phase}",
    ]);
    assert_eq!(placed, "test-node data-db-0 Bound");
    cluster.pod_field("db-0", ".status.phase", |phase| phase == "Running");
    let first_uid = cluster.pod_field("db-0", ".metadata.uid", |u| !u.is_empty());
    let script = "cat /data/boots; grep db-0 /etc/hosts";
    let first = cluster.kubectl_until(&["exec", "db-0", "--", "sh", "-c", script], limit, |text| {
        text.starts_with("boot\n")
    });
    assert!(first.starts_with("boot\n"), "{first}");
    assert!(
        first.contains("db-0.db.default.svc.cluster.local"),
        "{first}"
    );
    // The replacement pod mounts the same volume: the first boot is still there.
    cluster.kubectl_ok(&["delete", "pod", "db-0", "--timeout=60s"]);
    cluster.pod_field("db-0", ".metadata.uid", |u| !u.is_empty() && u != first_uid);
    cluster.pod_field("db-0", ".status.phase", |phase| phase == "Running");
    let second = cluster.kubectl_until(
        &["exec", "db-0", "--", "cat", "/data/boots"],
        limit,
        |text| text == "boot\nboot\n",
    );
    assert_eq!(second, "boot\nboot\n");
    // The claim deleted, its volume goes (reclaim policy Delete).
    cluster.kubectl_ok(&["delete", "statefulset", "db", "--timeout=60s"]);
    cluster.kubectl_ok(&["delete", "pvc", "data-db-0", "--timeout=60s"]);
    cluster.kubectl_until(&["get", "pv", "-o", "name"], limit, |text| {
        !text.contains(&volume)
    });
    // And the node removes its data.
    let folder = cluster.scratch_path().join("data/agent/storage");
    let deadline = std::time::Instant::now() + limit;
    while std::fs::read_dir(&folder).is_ok_and(|mut d| d.next().is_some()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the volume's data stayed in {}",
            folder.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
