//! Simulated nodes, as kwok makes them: registered with a chosen capacity, kept alive
//! through their Leases, and running the pods bound to them without starting anything —
//! each such pod is reported Running and Ready with an address of its node's range. For
//! scheduler and controller tests and benchmarks at a scale no machine could run.
//!
//! Pods that should finish, as a Job's do, say how in two annotations:
//! `simulate.berth.dev/exit-code: "N"` makes every container exit with N once it has run
//! for `simulate.berth.dev/run-seconds` (0 when not given). Then, as a kubelet would,
//! the node reports a pod that stays down (restartPolicy Never, or OnFailure with exit
//! code 0) finished — phase Succeeded for 0, Failed otherwise, each container
//! terminated with that code, Ready False — and restarts the containers of any other
//! (their restartCount grows, one restart per run, at least a second apart).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

/// What the simulated nodes are.
#[derive(Debug, Clone)]
pub struct Simulation {
    /// Nodes are `PREFIX-0` … `PREFIX-(count-1)`.
    pub prefix: String,
    /// How many nodes.
    pub count: usize,
    /// Each node's allocatable CPU, memory and pods: `4`, `16Gi`, `110`.
    pub capacity: (String, String, String),
    /// How often the nodes' Leases are renewed ([`crate::LEASE_RENEW_INTERVAL`] by
    /// default, as kubelets do).
    pub heartbeat: std::time::Duration,
}

impl Simulation {
    fn names(&self) -> Vec<String> {
        (0..self.count)
            .map(|i| format!("{}-{i}", self.prefix))
            .collect()
    }
}

/// The annotation that makes a pod's containers exit with its value as exit code.
pub const EXIT_CODE: &str = "simulate.berth.dev/exit-code";

/// The annotation saying how many seconds the containers run before they exit.
pub const RUN_SECONDS: &str = "simulate.berth.dev/run-seconds";

/// The Kubernetes version simulated nodes report.
const KUBELET_VERSION: &str = "v1.32.0-berth-simulated";

/// Registers the nodes, then keeps them alive and runs their pods until the client's
/// server goes away for good.
pub async fn run(client: Client, simulation: Simulation) -> Result<(), kube::Error> {
    let names = simulation.names();
    for (index, name) in names.iter().enumerate() {
        crate::node::create_or_update(&client, &node_object(&simulation, name, index)).await?;
    }
    tracing::info!(nodes = names.len(), prefix = %simulation.prefix, "simulated nodes registered");
    let heartbeat = tokio::spawn(heartbeat(
        client.clone(),
        names.clone(),
        simulation.heartbeat,
    ));
    let result = run_pods(client, &names).await;
    heartbeat.abort();
    result
}

fn node_object(simulation: &Simulation, name: &str, index: usize) -> Node {
    let (cpu, memory, pods) = &simulation.capacity;
    let resources: BTreeMap<String, Quantity> = [
        ("cpu", cpu),
        ("memory", memory),
        ("pods", pods),
        ("ephemeral-storage", &"100Gi".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Quantity(v.clone())))
    .collect();
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "type": "berth-simulated",
            },
        },
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "addresses": [{"type": "InternalIP", "address": node_address(index)}],
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "simulated node is ready",
                "lastHeartbeatTime": now, "lastTransitionTime": now,
            }],
            "nodeInfo": {
                "kubeletVersion": KUBELET_VERSION,
                "containerRuntimeVersion": "berth://simulated",
                "osImage": "simulated", "kernelVersion": "simulated",
                "operatingSystem": "linux", "architecture": "amd64",
                "machineID": "", "systemUUID": "", "bootID": "", "kubeProxyVersion": "",
            },
        },
    }))
    .unwrap_or_default()
}

/// The node's address: 10.200.x.y by its index.
fn node_address(index: usize) -> String {
    format!("10.200.{}.{}", index / 250, index % 250 + 1)
}

/// Renews every node's Lease each `interval`.
async fn heartbeat(client: Client, names: Vec<String>, interval: std::time::Duration) {
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    loop {
        for name in &names {
            if let Err(error) = crate::node::renew(&leases, name).await {
                tracing::warn!(%error, node = %name, "could not renew the node lease");
            }
        }
        tokio::time::sleep(interval).await;
    }
}

/// Reports every pod bound to one of `names` Running and Ready, and finishes the
/// deletion of those being deleted, as their kubelet would.
async fn run_pods(client: Client, names: &[String]) -> Result<(), kube::Error> {
    let pods: Api<Pod> = Api::all(client.clone());
    let index: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let mut next_address: HashMap<usize, u32> = HashMap::new();
    let mut exiting: HashSet<String> = HashSet::new();
    let config = watcher::Config::default().fields("spec.nodeName!=");
    // A watch that fell behind the server's history ends with 410 and is listed anew,
    // after a back-off: routine on a busy server, not a reason to stop.
    let mut events = std::pin::pin!(watcher(pods, config).default_backoff());
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(%error, "the watch of pods failed; watching again");
                continue;
            }
        };
        let pod = match event {
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => pod,
            watcher::Event::Delete(pod) => {
                exiting.remove(&pod.uid().unwrap_or_default());
                continue;
            }
            _ => continue,
        };
        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        let Some(&node_index) = node.and_then(|n| index.get(n)) else {
            continue;
        };
        let namespaced: Api<Pod> =
            Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
        if pod.metadata.deletion_timestamp.is_some() {
            let now = DeleteParams::default().grace_period(0);
            if let Err(error) = namespaced.delete(&pod.name_any(), &now).await {
                tracing::debug!(%error, pod = %pod.name_any(), "could not finish a deletion");
            }
            continue;
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            continue;
        }
        if phase != Some("Running") {
            let counter = next_address.entry(node_index).or_insert(1);
            *counter += 1;
            let address = format!(
                "10.{}.{}.{}",
                100 + node_index / 250,
                node_index % 250,
                *counter % 250 + 1
            );
            let mut status = running(&pod, &address, &node_address(node_index));
            // Only the version of the pod this event showed: a stale event must not
            // undo a later status (a pod that finished meanwhile).
            status["metadata"] = json!({"resourceVersion": pod.resource_version()});
            if let Err(error) = report(&namespaced, &pod, &status).await {
                tracing::debug!(%error, pod = %pod.name_any(), "could not report a pod running");
                continue;
            }
        }
        // Its containers start exiting only once it is reported running.
        if let Some(exit) = planned_exit(&pod)
            && exiting.insert(pod.uid().unwrap_or_default())
        {
            tokio::spawn(run_to_exit(namespaced.clone(), pod.clone(), exit));
        }
    }
    Ok(())
}

/// The status a kubelet reports for a pod whose containers all started.
fn running(pod: &Pod, address: &str, host: &str) -> serde_json::Value {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let containers: Vec<serde_json::Value> = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .map(|c| {
            json!({
                "name": c.name, "image": c.image, "imageID": "", "ready": true, "started": true,
                "restartCount": 0, "state": {"running": {"startedAt": now}},
            })
        })
        .collect();
    let condition = |kind: &str| json!({"type": kind, "status": "True", "lastProbeTime": null, "lastTransitionTime": now});
    let conditions = ["Initialized", "Ready", "ContainersReady", "PodScheduled"].map(condition);
    json!({"status": {
        "phase": "Running",
        "podIP": address, "podIPs": [{"ip": address}],
        "hostIP": host, "hostIPs": [{"ip": host}],
        "startTime": now,
        "conditions": conditions,
        "containerStatuses": containers,
    }})
}

/// How the pod's containers are to exit: their exit code and run time, from the pod's
/// annotations; None for pods that run until deleted (or whose annotation is no number,
/// which is logged).
fn planned_exit(pod: &Pod) -> Option<(i32, Duration)> {
    let annotations = pod.metadata.annotations.as_ref()?;
    let code = annotations.get(EXIT_CODE)?;
    let Ok(code) = code.trim().parse() else {
        tracing::warn!(pod = %pod.name_any(), %code, "{EXIT_CODE} is not a number: ignored");
        return None;
    };
    let seconds = annotations
        .get(RUN_SECONDS)
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(0.0);
    Some((code, Duration::from_secs_f64(seconds)))
}

/// Merges `status` into the pod's status, as a kubelet reports it.
async fn report(
    pods: &Api<Pod>,
    pod: &Pod,
    status: &serde_json::Value,
) -> Result<Pod, kube::Error> {
    pods.patch_status(
        &pod.name_any(),
        &PatchParams::default(),
        &Patch::Merge(status),
    )
    .await
}

/// Lets the pod's containers run and exit as planned, again and again while the
/// restart policy restarts them, until the pod is finished or gone.
async fn run_to_exit(pods: Api<Pod>, pod: Pod, (code, run): (i32, Duration)) {
    let policy = pod.spec.as_ref().and_then(|s| s.restart_policy.clone());
    let stays_down = match policy.as_deref().unwrap_or("Always") {
        "Never" => true,
        "OnFailure" => code == 0,
        _ => false,
    };
    let mut restarts = 0;
    loop {
        let pause = if stays_down || restarts == 0 {
            run
        } else {
            run.max(Duration::from_secs(1))
        };
        tokio::time::sleep(pause).await;
        let status = if stays_down {
            finished(&pod, code)
        } else {
            restarts += 1;
            restarted(&pod, code, restarts)
        };
        if let Err(error) = report(&pods, &pod, &status).await {
            return tracing::debug!(%error, pod = %pod.name_any(), "the exiting pod is gone");
        }
        if stays_down {
            return;
        }
    }
}

/// The status a kubelet reports for a pod whose containers exited with `code` for good.
fn finished(pod: &Pod, code: i32) -> serde_json::Value {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let state = json!({"ready": false, "started": false, "restartCount": 0,
                       "state": exit_state(code, &now)});
    let condition = |kind: &str, status: &str| {
        json!({"type": kind, "status": status, "reason": "PodCompleted",
               "lastProbeTime": null, "lastTransitionTime": now})
    };
    json!({"status": {
        "phase": if code == 0 { "Succeeded" } else { "Failed" },
        "conditions": [
            condition("Initialized", "True"), condition("Ready", "False"),
            condition("ContainersReady", "False"), condition("PodScheduled", "True"),
        ],
        "containerStatuses": container_statuses(pod, &state),
    }})
}

/// The status after the kubelet restarted the pod's containers, which had exited with
/// `code`, for the `restarts`th time.
fn restarted(pod: &Pod, code: i32, restarts: i32) -> serde_json::Value {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let state = json!({"ready": true, "started": true, "restartCount": restarts,
                       "state": {"running": {"startedAt": now}},
                       "lastState": exit_state(code, &now)});
    json!({"status": {"containerStatuses": container_statuses(pod, &state)}})
}

/// A container state: terminated with `code`, as a kubelet words it.
fn exit_state(code: i32, now: &str) -> serde_json::Value {
    let reason = if code == 0 { "Completed" } else { "Error" };
    json!({"terminated": {"exitCode": code, "reason": reason, "startedAt": now, "finishedAt": now}})
}

/// Every container's status: its name and image, and `state`'s fields.
fn container_statuses(pod: &Pod, state: &serde_json::Value) -> Vec<serde_json::Value> {
    pod.spec
        .iter()
        .flat_map(|s| &s.containers)
        .map(|c| {
            let mut status = json!({"name": c.name, "image": c.image, "imageID": ""});
            if let (Some(status), Some(state)) = (status.as_object_mut(), state.as_object()) {
                status.extend(state.clone());
            }
            status
        })
        .collect()
}
