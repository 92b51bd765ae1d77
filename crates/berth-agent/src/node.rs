//! The agent's own Node: registered with what the host has (CPUs, memory, the data
//! directory's disk, 110 pods), the four conditions a kubelet reports, its addresses
//! and node info; kept alive by renewing its Lease, as kubelets do.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// The Node annotation naming the folder the node's local volumes are made in (the
/// local-path provisioner's, in berth-controllers, reads it).
pub const STORAGE_ANNOTATION: &str = "berth.dev/local-storage";

/// How many pods a node takes, the kubelet's default `--max-pods`.
const MAX_PODS: &str = "110";

/// What the agent says of its node.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    /// The Node's name.
    pub name: String,
    /// Its address (InternalIP), where the API server reaches the agent.
    pub ip: Ipv4Addr,
    /// The port of the agent's API there.
    pub port: u16,
}

/// Creates the Node, or brings an existing one's status up to date: Ready once `ready`
/// (its pod network is up), NotReady before, as a kubelet whose network is not ready.
pub async fn register(
    client: &Client,
    node: &NodeIdentity,
    data_dir: &Path,
    ready: bool,
) -> Result<(), kube::Error> {
    let version = client.apiserver_version().await?.git_version;
    let object = Node {
        metadata: ObjectMeta {
            name: Some(node.name.clone()),
            labels: Some(labels(&node.name)),
            annotations: Some(BTreeMap::from([(
                STORAGE_ANNOTATION.to_string(),
                data_dir.join("storage").display().to_string(),
            )])),
            ..ObjectMeta::default()
        },
        spec: None,
        status: Some(status(node, data_dir, &version, ready)),
    };
    create_or_update(client, &object).await
}

/// Creates `node`, or gives the existing Node of its name its status.
pub(crate) async fn create_or_update(client: &Client, node: &Node) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    match nodes.create(&PostParams::default(), node).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let name = node.metadata.name.clone().unwrap_or_default();
            if let Some(annotations) = &node.metadata.annotations {
                let metadata = json!({"metadata": {"annotations": annotations}});
                nodes
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&metadata))
                    .await?;
            }
            let status = json!({"status": node.status});
            nodes
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .map(drop)
        }
        Err(error) => Err(error),
    }
}

/// The well-known labels a kubelet gives its Node.
fn labels(name: &str) -> BTreeMap<String, String> {
    [
        ("kubernetes.io/hostname", name),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", berth_image::host_architecture()),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", berth_image::host_architecture()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The node's status: capacity read from the host, conditions, addresses, node info.
fn status(node: &NodeIdentity, data_dir: &Path, kubelet_version: &str, ready: bool) -> NodeStatus {
    let capacity = capacity(data_dir);
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let condition = |kind: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: kind.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
    };
    NodeStatus {
        allocatable: Some(capacity.clone()),
        capacity: Some(capacity),
        conditions: Some(vec![
            condition(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            condition(
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
            ),
            condition(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            if ready {
                condition(
                    "Ready",
                    "True",
                    "KubeletReady",
                    "kubelet is posting ready status",
                )
            } else {
                condition(
                    "Ready",
                    "False",
                    "KubeletNotReady",
                    "container runtime network not ready: the node has no pod range yet",
                )
            },
        ]),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: node.ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: node.name.clone(),
            },
        ]),
        node_info: Some(node_info(kubelet_version)),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(node.port),
            }),
        }),
        ..NodeStatus::default()
    }
}

/// CPUs this process may use, the host's memory, the data directory's disk, and pods.
pub(crate) fn capacity(data_dir: &Path) -> BTreeMap<String, Quantity> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let memory_kib = read_meminfo("MemTotal:").unwrap_or(0);
    let disk = nix::sys::statvfs::statvfs(data_dir)
        .map(|s| s.blocks() * s.fragment_size())
        .unwrap_or(0);
    [
        ("cpu", cpus.to_string()),
        ("memory", format!("{memory_kib}Ki")),
        ("ephemeral-storage", disk.to_string()),
        ("pods", MAX_PODS.to_string()),
        ("hugepages-2Mi", "0".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Quantity(v)))
    .collect()
}

/// A `/proc/meminfo` field, in KiB.
fn read_meminfo(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The kernel, OS image, architecture and runtime, as `kubectl get nodes -o wide` shows.
fn node_info(kubelet_version: &str) -> NodeSystemInfo {
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let os_image = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "Linux".into());
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    NodeSystemInfo {
        architecture: berth_image::host_architecture().into(),
        boot_id: read("/proc/sys/kernel/random/boot_id"),
        container_runtime_version: format!("berth://{}", env!("CARGO_PKG_VERSION")),
        kernel_version: kernel,
        kube_proxy_version: String::new(),
        kubelet_version: kubelet_version.into(),
        machine_id: read("/etc/machine-id"),
        operating_system: "linux".into(),
        os_image,
        system_uuid: String::new(),
        ..NodeSystemInfo::default()
    }
}

/// The pod range of the Node, if it exists and has one.
pub async fn existing_pod_cidr(client: &Client, name: &str) -> Result<Option<String>, kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    Ok(nodes
        .get_opt(name)
        .await?
        .and_then(|n| n.spec)
        .and_then(|s| s.pod_cidr))
}

/// Waits until the Node has a pod range (`spec.podCIDR`, given by the controller
/// manager's node IPAM) and returns it.
pub async fn pod_cidr(client: &Client, name: &str) -> Result<String, kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut told = false;
    loop {
        let node = nodes.get(name).await?;
        if let Some(cidr) = node.spec.and_then(|s| s.pod_cidr) {
            return Ok(cidr);
        }
        if !told {
            tracing::info!(node = %name, "waiting for the controller manager to give the node a pod range");
            told = true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Renews the node's Lease every `interval`, for as long as the agent runs.
pub async fn heartbeat(client: Client, name: String, interval: Duration) {
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    loop {
        if let Err(error) = renew(&leases, &name).await {
            tracing::warn!(%error, node = %name, "could not renew the node lease");
        }
        tokio::time::sleep(interval).await;
    }
}

/// Renews the Lease `name` in kube-node-lease, made if missing.
pub(crate) async fn renew(leases: &Api<Lease>, name: &str) -> Result<(), kube::Error> {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now},
    });
    let apply = PatchParams::apply("berth-agent").force();
    leases
        .patch(name, &apply, &Patch::Apply(&lease))
        .await
        .map(drop)
}

/// The host's first IPv4 address outside loopback, for a node given no `--node-ip`.
pub fn first_address() -> Option<Ipv4Addr> {
    nix::ifaddrs::getifaddrs()
        .ok()?
        .filter_map(|interface| {
            let address = interface.address?;
            let ip = address.as_sockaddr_in()?.ip();
            (!ip.is_loopback()).then_some(ip)
        })
        .next()
}
