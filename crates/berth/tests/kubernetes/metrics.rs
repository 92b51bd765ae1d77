//! Resource metrics of real pods: the agent reads its containers' cgroups, the API
//! server scrapes it as metrics-server scrapes kubelets, `kubectl top` shows the usage
//! and the HorizontalPodAutoscaler scales a CPU-burning Deployment out and back.

use std::time::Duration;

use crate::pods::AllInOne;

/// A Deployment whose pods burn their CPU limit (200m, twice their request) while the
/// `load` configMap says `on`, and idle once it says `off`; an HPA holding them at 50 %
/// of their request, scaling down without a stabilization window.
const BURNER: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: load
data:
  state: "on"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: burner
spec:
  replicas: 1
  selector:
    matchLabels: {app: burner}
  template:
    metadata:
      labels: {app: burner}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: burn
        image: busybox:1
        command:
        - sh
        - -c
        - while true; do if [ "$(cat /load/state)" = on ]; then i=0; while [ $i -lt 5000 ]; do i=$((i+1)); done; else sleep 1; fi; done
        resources:
          requests: {cpu: 100m}
          limits: {cpu: 200m}
        volumeMounts:
        - {name: load, mountPath: /load}
      volumes:
      - name: load
        configMap: {name: load}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: burner
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: burner}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource:
      name: cpu
      target: {type: Utilization, averageUtilization: 50}
  behavior:
    scaleDown: {stabilizationWindowSeconds: 0}
"#;

/// Millicores in `kubectl top`'s CPU column (`187m`).
fn millicores(column: &str) -> u64 {
    column.trim_end_matches('m').parse().unwrap_or(0)
}

#[test]
fn kubectl_top_shows_real_usage_and_the_hpa_scales_a_burning_deployment_out_and_back() {
    let cluster = AllInOne::start("metrics");
    cluster.apply("burner.yaml", BURNER);
    let limit = Duration::from_secs(120);
    // The first scrapes: a pod burning its 200m, and the node busy too.
    let top = cluster.kubectl_until(
        &["top", "pod", "-l", "app=burner", "--no-headers"],
        limit,
        |text| {
            text.split_whitespace()
                .nth(1)
                .is_some_and(|cpu| millicores(cpu) >= 100)
        },
    );
    let memory = top.split_whitespace().nth(2).unwrap_or_default();
    assert!(memory.ends_with("Mi"), "{top}");
    cluster.kubectl_until(&["top", "node", "--no-headers"], limit, |text| {
        text.split_whitespace()
            .nth(1)
            .is_some_and(|cpu| millicores(cpu) >= 100)
    });
    // Twice its request: out to the maximum.
    cluster.kubectl_until(
        &[
            "get",
            "deployment",
            "burner",
            "-o",
            "jsonpath={.status.readyReplicas}",
        ],
        limit,
        |n| n == "3",
    );
    let hpa = cluster.kubectl_until(
        &[
            "get",
            "hpa",
            "burner",
            "-o",
            "jsonpath={.status.currentMetrics[0].resource.current.averageUtilization}",
        ],
        limit,
        |u| u.parse::<u32>().is_ok_and(|u| u > 50),
    );
    assert!(
        hpa.parse::<u32>().unwrap() <= 250,
        "utilization {hpa}% over the limit"
    );
    // Idle: back to the minimum.
    cluster.kubectl_ok(&[
        "patch",
        "configmap",
        "load",
        "-p",
        r#"{"data":{"state":"off"}}"#,
    ]);
    cluster.kubectl_until(
        &[
            "get",
            "deployment",
            "burner",
            "-o",
            "jsonpath={.spec.replicas}",
        ],
        limit,
        |n| n == "1",
    );
}
