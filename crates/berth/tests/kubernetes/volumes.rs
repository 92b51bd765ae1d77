//! What a pod learns of itself and the volumes beyond configMaps and secrets: the
//! downward API (env resourceFieldRef, downwardAPI and projected volumes), memory-backed
//! emptyDirs with their size limit, disk ones evicting their pod when outgrown, and
//! hostAliases in /etc/hosts.

use std::time::Duration;

use crate::pods::AllInOne;

const SELF_AWARE: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: fast
---
apiVersion: v1
kind: Pod
metadata:
  name: aware
  labels: {app: aware, tier: back}
spec:
  terminationGracePeriodSeconds: 1
  hostAliases:
  - ip: 10.1.2.3
    hostnames: [registry.internal, mirror.internal]
  containers:
  - name: main
    image: busybox:1
    command: ["sleep", "3600"]
    resources:
      requests: {cpu: 250m, memory: 64Mi}
      limits: {memory: 128Mi}
    env:
    - name: CPU_REQUEST
      valueFrom:
        resourceFieldRef: {resource: requests.cpu, divisor: 1m}
    - name: MEMORY_LIMIT
      valueFrom:
        resourceFieldRef: {resource: limits.memory, divisor: 1Mi}
    volumeMounts:
    - {name: info, mountPath: /info}
    - {name: all, mountPath: /all}
    - {name: scratch, mountPath: /scratch}
  volumes:
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: name, fieldRef: {fieldPath: metadata.name}}
      - {path: memory, resourceFieldRef: {containerName: main, resource: requests.memory, divisor: 1Mi}}
  - name: all
    projected:
      sources:
      - configMap:
          name: settings
          items: [{key: mode, path: settings/mode}]
      - downwardAPI:
          items: [{path: namespace, fieldRef: {fieldPath: metadata.namespace}}]
  - name: scratch
    emptyDir: {medium: Memory, sizeLimit: 8Mi}
"#;

#[test]
fn pods_see_the_downward_api_projected_and_memory_volumes_and_host_aliases() {
    let cluster = AllInOne::start("volumes");
    cluster.apply("aware.yaml", SELF_AWARE);
    cluster.pod_field("aware", ".status.phase", |phase| phase == "Running");
    let script = "echo $CPU_REQUEST $MEMORY_LIMIT; cat /info/labels; echo; cat /info/name /info/memory; echo; \
                  cat /all/settings/mode /all/namespace; echo; grep internal /etc/hosts; \
                  grep ' /scratch ' /proc/mounts | cut -d' ' -f3; \
                  dd if=/dev/zero of=/scratch/big bs=1M count=16 2>/dev/null && echo unbounded || echo bounded";
    let shown = cluster.kubectl_until(
        &["exec", "aware", "--", "sh", "-c", script],
        Duration::from_secs(60),
        |text| !text.is_empty(),
    );
    let expected = "250 128\napp=\"aware\"\ntier=\"back\"\naware64\nfastdefault\n\
                    10.1.2.3\tregistry.internal\n10.1.2.3\tmirror.internal\ntmpfs\nbounded\n";
    assert_eq!(shown, expected);
    // The pod runs as the namespace's default account, whose token (bound to the pod),
    // the cluster CA and the namespace it finds where client libraries look.
    let credentials = "/var/run/secrets/kubernetes.io/serviceaccount";
    let read = |file: &str| {
        cluster.kubectl_ok(&[
            "exec",
            "aware",
            "--",
            "cat",
            &format!("{credentials}/{file}"),
        ])
    };
    assert_eq!(read("namespace"), "default");
    let ca = std::fs::read_to_string(cluster.scratch_path().join("data/tls/ca.crt")).unwrap();
    assert_eq!(
        read("ca.crt").split_whitespace().collect::<String>(),
        ca.split_whitespace().collect::<String>()
    );
    let token = read("token");
    let as_pod = cluster.on_host(&["kubectl", "--token", &token, "get", "pods"]);
    assert!(
        String::from_utf8_lossy(&as_pod.stderr).contains(
            "User \"system:serviceaccount:default:default\" cannot list resource \"pods\""
        ),
        "{}",
        String::from_utf8_lossy(&as_pod.stderr)
    );

    // The pod's containers are in a cgroup of the pod, under its QoS class's, as the
    // kubelet lays them out (in every hierarchy, on cgroup v1); it goes with the pod.
    let uid = cluster.pod_field("aware", ".metadata.uid", |u| !u.is_empty());
    let relative = format!("{}/burstable/pod{uid}", cluster.cgroup_parent());
    let hierarchies = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|e| e.path());
    let pod_cgroups: Vec<std::path::PathBuf> = std::iter::once("/sys/fs/cgroup".into())
        .chain(hierarchies)
        .map(|root: std::path::PathBuf| root.join(&relative))
        .filter(|dir| dir.is_dir())
        .collect();
    assert!(
        !pod_cgroups.is_empty(),
        "no cgroup {relative} in any hierarchy"
    );
    // The pod's cgroup bounds its containers together, as the kubelet sets it: the
    // memory limit every container declares, the weight of the CPU requested, and no
    // CPU quota, which not every container declares.
    let setting = |file: &str| {
        pod_cgroups
            .iter()
            .find_map(|dir| std::fs::read_to_string(dir.join(file)).ok())
            .map(|text| text.trim().to_string())
    };
    if let Some(max) = setting("memory.max") {
        assert_eq!(max, "134217728");
        assert_eq!(setting("cpu.max").as_deref(), Some("max 100000"));
    } else {
        assert_eq!(
            setting("memory.limit_in_bytes").as_deref(),
            Some("134217728")
        );
        assert_eq!(setting("cpu.shares").as_deref(), Some("256"));
        assert_eq!(setting("cpu.cfs_quota_us").as_deref(), Some("-1"));
    }
    for dir in &pod_cgroups {
        let members = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir());
        assert_eq!(
            members.count(),
            1,
            "{} should hold the one container",
            dir.display()
        );
    }
    cluster.kubectl_ok(&["delete", "pod", "aware", "--timeout=60s"]);
    let left: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(cluster.scratch_path().to_str().unwrap()) && l.contains("tmpfs"))
        .map(String::from)
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let stayed: Vec<_> = pod_cgroups.iter().filter(|dir| dir.exists()).collect();
    assert!(stayed.is_empty(), "{stayed:?}");

    // An emptyDir on disk that outgrows its sizeLimit gets its pod evicted.
    cluster.apply("hoarder.yaml", HOARDER);
    let volumes = cluster.kubectl_ok(&[
        "get",
        "pod",
        "hoarder",
        "-o",
        "jsonpath={.spec.volumes[*].name}",
    ]);
    assert_eq!(
        volumes, "cache",
        "automountServiceAccountToken: false adds no credentials"
    );
    let reason = cluster.pod_field("hoarder", ".status.reason", |r| !r.is_empty());
    assert_eq!(reason, "Evicted");
    assert_eq!(
        cluster.kubectl_ok(&[
            "get",
            "pod",
            "hoarder",
            "-o",
            "jsonpath={.status.phase}: {.status.message}"
        ]),
        "Failed: Usage of EmptyDir volume \"cache\" exceeds the limit \"1Mi\". "
    );
    let evicted = cluster.events("hoarder", "Evicted");
    assert!(evicted.contains("exceeds the limit"), "{evicted}");
    cluster.kubectl_ok(&["delete", "pod", "hoarder", "--timeout=60s"]);
}

const HOARDER: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: hoarder
spec:
  terminationGracePeriodSeconds: 30
  automountServiceAccountToken: false
  containers:
  - name: main
    image: busybox:1
    command: ["sh", "-c", "dd if=/dev/zero of=/cache/big bs=1M count=4 && exec sleep 3600"]
    volumeMounts:
    - {name: cache, mountPath: /cache}
  volumes:
  - name: cache
    emptyDir: {sizeLimit: 1Mi}
"#;
