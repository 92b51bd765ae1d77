//! The node agent, the kubelet of Berth. It joins a cluster with a token alone
//! ([`join`]), registers its Node with what the host has ([`node`]), and runs the pods
//! bound to it as containers of its own engine ([`kubelet`]): a sandbox per pod
//! holding its namespaces, its containers joining them, their status reported as the
//! kubelet reports it. `--simulate N` runs simulated nodes instead ([`simulate`]), for
//! scheduler and controller tests at a scale no machine could run.
//!
//! Depends on berth-engine (and berth-image for references and the host's
//! architecture), and on the Kubernetes API as a client.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_engine::{BridgeConfig, CniNetwork, Engine, EngineConfig};
use kube::Client;
use kube::runtime::watcher;

mod api;
mod dns;
mod downward;
mod eviction;
mod images;
mod ingress;
pub mod join;
pub mod kubelet;
mod metrics;
pub mod node;
mod policies;
mod probes;
mod routes;
mod security;
mod services;
pub mod simulate;
mod spec;
mod status;
mod storage;
mod streams;
mod watches;

/// How often the agent renews its node Lease, as the kubelet does by default.
pub const LEASE_RENEW_INTERVAL: Duration = Duration::from_secs(10);

/// The bridge pods are wired to, the gateway of the node's pod range.
pub const POD_BRIDGE: &str = "berth-pods";

/// The events the agent's engine keeps: its one subscriber, the agent, keeps up (and
/// one that lags looks at every pod again), and nobody asks for past ones.
const EVENT_HISTORY: usize = 64;

/// The nftables table of the agent's engine, beside a `berth daemon`'s `berth`.
pub const FIREWALL_TABLE: &str = "berth-agent";

/// What a real node agent is.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The Node's name.
    pub node_name: String,
    /// Its address; the host's first non-loopback IPv4 address when None.
    pub node_ip: Option<Ipv4Addr>,
    /// The agent's state: `<data-dir>/agent` (its engine, pods' volumes, the air-gap
    /// `images` folder).
    pub data_dir: PathBuf,
    /// Its runtime state, gone at reboot.
    pub run_dir: PathBuf,
    /// The `berth` binary its engine runs container monitors from.
    pub berth_binary: PathBuf,
    /// How often the Lease is renewed.
    pub heartbeat: Duration,
    /// Registries pulled from over plain HTTP besides loopback ones.
    pub insecure_registries: Vec<String>,
    /// The cgroup under which pods' containers go (`kubepods`).
    pub cgroup_parent: String,
    /// The port of the agent's HTTPS API on the node's address (the kubelet's 10250).
    pub port: u16,
    /// The directory whose CNI network configuration pods are set up with
    /// (`/etc/cni/net.d`); the built-in bridge when it holds none.
    pub cni_conf_dir: PathBuf,
    /// Where the CNI plugins are, searched in order.
    pub cni_bin_dirs: Vec<PathBuf>,
    /// The Services' cluster IPs, routed to the node's Service rules.
    pub service_cidr: berth_net::Ipv4Net,
    /// The cluster's pod addresses: other nodes' pods are reached without NAT.
    pub cluster_cidr: berth_net::Ipv4Net,
    /// The cluster DNS, which the node serves and its pods ask.
    pub dns: ClusterDns,
    /// The ports the built-in Ingress controller answers on; None for none.
    pub ingress: Option<IngressPorts>,
}

/// Where the built-in Ingress controller listens on every address of the node, as
/// k3s's bundled one: HTTP on 80 and HTTPS on 443.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngressPorts {
    /// Plain HTTP, for every host.
    pub http: u16,
    /// HTTPS, for the hosts whose Ingress names a TLS Secret.
    pub https: u16,
}

/// The cluster DNS: the address pods ask (kube-dns's cluster IP, served by every node
/// itself) and the cluster's domain — the kubelet's `--cluster-dns` and
/// `--cluster-domain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDns {
    /// The address.
    pub address: Ipv4Addr,
    /// The domain (`cluster.local`).
    pub domain: String,
}

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The API server refused or failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// The engine could not be opened.
    #[error("open the node's engine: {0}")]
    Engine(#[from] berth_engine::Error),
    /// The node has no address to report.
    #[error("no IPv4 address to report for the node: pass --node-ip")]
    NoAddress,
    /// The agent's API could not be served.
    #[error("serve the agent's API: {0}")]
    Serve(String),
    /// The pod range is not one.
    #[error("the node's pod range {0:?} is not an IPv4 CIDR")]
    PodCidr(String),
    /// The CNI configuration cannot be read.
    #[error("read the CNI network configuration: {0}")]
    Cni(#[from] berth_net::Error),
}

/// A node whose agent has registered it and opened its engine, ready to run its pods.
pub struct Agent {
    kubelet: Arc<kubelet::Kubelet>,
    heartbeat: tokio::task::JoinHandle<()>,
    api: tokio::task::JoinHandle<()>,
}

impl Agent {
    /// Registers the node (NotReady until it has a pod range, unless it had one
    /// already), renews its Lease from now on, opens its engine on the node's pod range,
    /// imports the air-gap images and re-adopts what a previous agent left running.
    pub async fn start(client: Client, config: AgentConfig) -> Result<Self, AgentError> {
        let ip = config
            .node_ip
            .or_else(node::first_address)
            .ok_or(AgentError::NoAddress)?;
        let identity = node::NodeIdentity {
            name: config.node_name.clone(),
            ip,
            port: config.port,
        };
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| berth_engine::Error::Io(config.data_dir.clone(), e))?;
        // A node that has its pod range already (an agent restarting) stays Ready: its
        // pods run on meanwhile.
        let known = node::existing_pod_cidr(&client, &identity.name)
            .await?
            .is_some();
        node::register(&client, &identity, &config.data_dir, known).await?;
        let heartbeat = tokio::spawn(node::heartbeat(
            client.clone(),
            identity.name.clone(),
            config.heartbeat,
        ));
        let cidr = node::pod_cidr(&client, &identity.name).await?;
        let range: berth_net::Ipv4Net = cidr
            .parse()
            .map_err(|_| AgentError::PodCidr(cidr.clone()))?;
        let cni = pod_network(&config, range)?;
        if cni.is_none() {
            route_services(&config, range);
        }
        let engine = Arc::new(open_engine(&config, range, cni)?);
        let node = (identity.name.clone(), range, config.cgroup_parent.clone());
        let names = (config.dns.clone(), config.ingress);
        tokio::spawn(services::run(client.clone(), node, names));
        let own = routes::OwnNode {
            name: identity.name.clone(),
            address: ip,
            range,
        };
        tokio::spawn(routes::run(client.clone(), own));
        tokio::spawn(policies::run(client.clone(), identity.name.clone()));
        images::import_air_gap_images(&engine, &config.data_dir.join("images"));
        engine.restore();
        let address = api::address(std::net::IpAddr::V4(ip), config.port);
        let api = api::serve(&client, (&identity.name, address), Arc::clone(&engine)).await?;
        node::register(&client, &identity, &config.data_dir, true).await?;
        tracing::info!(node = %identity.name, %ip, pod_cidr = %cidr, "node agent running");
        tokio::spawn(storage::collect(
            client.clone(),
            config.data_dir.join("storage"),
        ));
        let kubelet = Arc::new(kubelet::Kubelet {
            client,
            engine,
            node: identity,
            pods_dir: config.data_dir.join("pods"),
            dns: config.dns.clone(),
            api_service: config
                .service_cidr
                .hosts()
                .next()
                .unwrap_or(config.service_cidr.network()),
        });
        Ok(Self {
            kubelet,
            heartbeat,
            api,
        })
    }

    /// The node's engine, whose containers are the pods' (for the operator's view).
    pub fn engine(&self) -> Arc<Engine> {
        Arc::clone(&self.kubelet.engine)
    }

    /// Runs the node's pods until its engine stops.
    pub async fn run(self) {
        kubelet::run(Arc::clone(&self.kubelet)).await;
        self.heartbeat.abort();
        self.api.abort();
    }
}

/// The node's engine: pods on the bridge whose gateway is the first address of the
/// node's pod range.
fn open_engine(
    config: &AgentConfig,
    range: berth_net::Ipv4Net,
    cni: Option<CniNetwork>,
) -> Result<Engine, AgentError> {
    let gateway = range
        .hosts()
        .next()
        .ok_or_else(|| AgentError::PodCidr(range.to_string()))?;
    Ok(Engine::open(&EngineConfig {
        data_dir: config.data_dir.join("engine"),
        run_dir: config.run_dir.clone(),
        berth_binary: config.berth_binary.clone(),
        cgroup_parent: config.cgroup_parent.clone(),
        bridge: BridgeConfig {
            name: POD_BRIDGE.into(),
            address: Some(format!("{gateway}/{}", range.prefix_len())),
            routed: Some(config.cluster_cidr),
        },
        init_path: None,
        insecure_registries: config.insecure_registries.clone(),
        firewall_table: FIREWALL_TABLE.into(),
        cni,
        event_history: EVENT_HISTORY,
    })?)
}

/// Routes the Service range to the pods' bridge (up from the start, not from the first
/// pod), so the node reaches cluster IPs with or without a default route; pods reach
/// them through their gateway, the bridge. On a CNI network the host's routes serve.
fn route_services(config: &AgentConfig, range: berth_net::Ipv4Net) {
    if config.cni_conf_dir.is_dir()
        && berth_net::cni::load_dir(&config.cni_conf_dir).is_ok_and(|n| n.is_some())
    {
        return;
    }
    let routed = range
        .hosts()
        .next()
        .ok_or_else(|| berth_net::Error::Invalid(format!("no gateway in {range}")))
        .and_then(|gateway| berth_net::ensure_bridge(POD_BRIDGE, gateway, range.prefix_len()))
        .and_then(|()| berth_net::route_through(config.service_cidr, POD_BRIDGE));
    if let Err(error) = routed {
        tracing::warn!(%error, "cluster IPs are left to the host's routes");
    }
}

/// The CNI network of the configuration directory, given the node's pod range; None
/// when the directory holds none, for the engine's own bridge.
fn pod_network(
    config: &AgentConfig,
    range: berth_net::Ipv4Net,
) -> Result<Option<CniNetwork>, AgentError> {
    let Some((file, network)) = berth_net::cni::load_dir(&config.cni_conf_dir)? else {
        tracing::info!(
            bridge = POD_BRIDGE,
            "pods on the built-in bridge: no CNI configuration in {}",
            config.cni_conf_dir.display()
        );
        return Ok(None);
    };
    tracing::info!(network = %network.name, file = %file.display(), "pods on a CNI network");
    Ok(Some(CniNetwork {
        config: network,
        plugins: berth_net::cni::Plugins::new(config.cni_bin_dirs.clone()),
        pod_range: Some(range),
    }))
}

/// A kind the agent watches with kube's watcher (and keeps in a reflector's store).
pub(crate) trait Watchable:
    kube::Resource<DynamicType = ()>
    + Clone
    + std::fmt::Debug
    + serde::de::DeserializeOwned
    + Send
    + Sync
    + 'static
{
}

impl<K> Watchable for K where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

/// A store of every `K` of the cluster, kept by a watch that wakes `changed` on every
/// event: for the loops that act on the whole of a kind (Services, Nodes).
pub(crate) fn reflected<K: Watchable>(
    client: &Client,
    changed: &Arc<tokio::sync::Notify>,
) -> kube::runtime::reflector::Store<K> {
    let api = kube::Api::<K>::all(client.clone());
    let (store, _) = reflect(api, watcher::Config::default(), Some(Arc::clone(changed)));
    store
}

/// A store of the `K`s that `config` selects through `api`, kept by a watch (slimmed,
/// re-listed with back-off) that wakes `changed`, if any, on every event; the watch's
/// task, to stop it.
pub(crate) fn reflect<K: Watchable>(
    api: kube::Api<K>,
    config: watcher::Config,
    changed: Option<Arc<tokio::sync::Notify>>,
) -> (kube::runtime::reflector::Store<K>, tokio::task::AbortHandle) {
    use futures_util::StreamExt;
    use kube::runtime::WatchStreamExt;
    let (store, writer) = kube::runtime::reflector::store();
    let events = watcher(api, config).modify(slim);
    let stream = kube::runtime::reflector(writer, events).default_backoff();
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            if let Err(error) = event {
                tracing::debug!(%error, kind = %K::kind(&()), "a watch restarts");
            }
            if let Some(changed) = &changed {
                changed.notify_one();
            }
        }
    });
    (store, task.abort_handle())
}

/// Drops what no loop of the agent reads and the API server keeps on every object: its
/// managed fields and kubectl's last-applied copy of the whole object, which together
/// are often more than half of it — a cache of 1,000 Services holds less for it.
fn slim<K: kube::Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
    if let Some(annotations) = object.meta_mut().annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lease_renews_within_the_grace_period() {
        assert!(super::LEASE_RENEW_INTERVAL.as_secs() * 2 <= 20);
    }
}
