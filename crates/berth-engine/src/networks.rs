//! Networks: the default bridge, user-defined bridges with their own subnets and DNS,
//! `host` and `none`; and what a container gets on them while it runs — a network
//! namespace, and on each of its networks (`--network`, more at create or by `docker
//! network connect`) an interface, eth0 onwards, with an address, a veth pair to the
//! bridge and its names in the network's DNS; the first holds the default route and
//! the published ports. Records live in `<data>/networks/<id>.json`. The kernel side (bridges,
//! nftables table, DNS servers) is set up at the first use, so an engine that never
//! starts a networked container changes nothing on the host.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use berth_net::{
    DnsServer, Firewall, Ipv4Net, NameTable, Names, NetworkRules, Pool, PortMapping, Protocol,
};
use serde::{Deserialize, Serialize};

use crate::model::{Container, CreateRequest, Endpoint, EndpointConfig, PublishedPort, Status};
use crate::{Engine, Error, Result};

/// The default bridge's address and prefix, as Docker's.
const DEFAULT_BRIDGE_ADDRESS: &str = "172.17.0.1/16";
/// Names of the networks every engine has.
const PREDEFINED: [&str; 3] = ["bridge", "host", "none"];

/// A network as the engine keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Network {
    /// 64 hex digits.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `bridge`, `host` or `null`.
    pub driver: String,
    /// When it was made, RFC 3339.
    pub created: String,
    /// Its subnet (bridge networks).
    pub subnet: Option<Ipv4Net>,
    /// The bridge's address, containers' gateway (bridge networks).
    pub gateway: Option<Ipv4Addr>,
    /// The bridge interface (bridge networks).
    pub bridge: String,
    /// No way out of the host (`--internal`).
    pub internal: bool,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

impl Network {
    /// Whether containers on it find each other by name (user-defined bridges).
    pub fn has_dns(&self) -> bool {
        self.driver == "bridge" && self.name != "bridge"
    }
}

/// `docker network create`'s request.
#[derive(Debug, Clone, Default)]
pub struct NetworkRequest {
    /// The name.
    pub name: String,
    /// `bridge` (the default).
    pub driver: String,
    /// `--subnet`.
    pub subnet: Option<String>,
    /// `--gateway`.
    pub gateway: Option<String>,
    /// `--internal`.
    pub internal: bool,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// Where the engine's bridge networks start from (dockerd's `--bridge` and `--bip`).
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// The default bridge's interface name.
    pub name: String,
    /// Its address and prefix; Docker's 172.17.0.1/16 when None.
    pub address: Option<String>,
    /// Destinations its containers reach without NAT: the cluster's pod range, which the
    /// nodes route between them. None: all outbound traffic is masqueraded, as Docker's.
    pub routed: Option<Ipv4Net>,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self {
            name: berth_net::DEFAULT_BRIDGE.to_string(),
            address: None,
            routed: None,
        }
    }
}

/// The kernel side, once set up.
#[derive(Default)]
struct Live {
    firewall: Option<Firewall>,
    dns: HashMap<String, (DnsServer, Names)>,
}

/// The networks of an engine.
pub(crate) struct Networks {
    dir: PathBuf,
    sandboxes: PathBuf,
    /// The nftables table of this engine (an agent's engine has its own beside a
    /// daemon's).
    firewall_table: String,
    records: Mutex<BTreeMap<String, Network>>,
    pools: Mutex<HashMap<String, Pool>>,
    live: Mutex<Live>,
    /// Host ports held open for the containers that publish them: no other program can
    /// take them, and the kernel picks free ones for `-P`.
    reservations: Mutex<HashMap<String, Vec<Reservation>>>,
    /// The default bridge and the destinations it reaches without NAT.
    routed: Option<(String, Ipv4Net)>,
}

impl std::fmt::Debug for Networks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Networks").field("dir", &self.dir).finish()
    }
}

#[allow(dead_code)] // Held only for the port they keep.
enum Reservation {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Networks {
    /// Loads the records under `dir`, making the predefined networks on first use.
    pub(crate) fn open(
        dir: &Path,
        sandboxes: &Path,
        bridge: &BridgeConfig,
        firewall_table: &str,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io(dir.to_path_buf(), e))?;
        let mut records = BTreeMap::new();
        for entry in std::fs::read_dir(dir)
            .map_err(|e| Error::Io(dir.to_path_buf(), e))?
            .flatten()
        {
            if let Ok(data) = std::fs::read(entry.path())
                && let Ok(network) = serde_json::from_slice::<Network>(&data)
            {
                records.insert(network.id.clone(), network);
            }
        }
        let networks = Self {
            dir: dir.to_path_buf(),
            sandboxes: sandboxes.to_path_buf(),
            firewall_table: firewall_table.to_string(),
            records: Mutex::new(BTreeMap::new()),
            pools: Mutex::default(),
            live: Mutex::default(),
            reservations: Mutex::default(),
            routed: bridge.routed.map(|range| (bridge.name.clone(), range)),
        };
        let (subnet, gateway) = default_bridge_address(bridge)?;
        for name in PREDEFINED {
            let mut network = match records.values().find(|n| n.name == name) {
                Some(network) => network.clone(),
                None => Network {
                    id: crate::containers::random_hex(32)?,
                    name: name.to_string(),
                    driver: match name {
                        "none" => "null",
                        other => other,
                    }
                    .to_string(),
                    created: berth_runtime::state::now_rfc3339(),
                    subnet: None,
                    gateway: None,
                    bridge: String::new(),
                    internal: false,
                    labels: BTreeMap::new(),
                },
            };
            if name == "bridge" {
                network.subnet = Some(subnet);
                network.gateway = Some(gateway);
                network.bridge = bridge.name.clone();
            }
            networks.save(&network)?;
            records.insert(network.id.clone(), network);
        }
        let mut pools = HashMap::new();
        for network in records.values() {
            if let Some(subnet) = network.subnet {
                pools.insert(
                    network.id.clone(),
                    Pool::new(subnet, network.gateway).map_err(net_error)?,
                );
            }
        }
        *lock(&networks.records) = records;
        *lock(&networks.pools) = pools;
        Ok(networks)
    }

    fn save(&self, network: &Network) -> Result<()> {
        let path = self.dir.join(format!("{}.json", network.id));
        std::fs::write(
            &path,
            serde_json::to_vec_pretty(network).unwrap_or_default(),
        )
        .map_err(|e| Error::Io(path, e))
    }

    fn find(&self, name: &str) -> Result<Network> {
        let records = lock(&self.records);
        if let Some(network) = records.values().find(|n| n.name == name || n.id == name) {
            return Ok(network.clone());
        }
        let mut matches = records
            .values()
            .filter(|n| !name.is_empty() && n.id.starts_with(name));
        match (matches.next(), matches.next()) {
            (Some(network), None) => Ok(network.clone()),
            _ => Err(Error::NoSuchNetwork(name.to_string())),
        }
    }

    /// Sets up the firewall table, every bridge and every DNS server, once; `running`
    /// gives the endpoints whose ports the table starts with, asked only that once.
    fn ensure_live(&self, running: impl FnOnce() -> Vec<Endpoint>) -> Result<()> {
        let mut live = lock(&self.live);
        if live.firewall.is_some() {
            return Ok(());
        }
        let running = running();
        let records: Vec<Network> = lock(&self.records).values().cloned().collect();
        let mappings: Vec<PortMapping> = running.iter().flat_map(mappings).collect();
        let firewall = Firewall::install(&self.firewall_table, &mappings).map_err(net_error)?;
        for network in records.iter().filter(|n| n.driver == "bridge") {
            bring_up(network, &mut live)?;
        }
        firewall
            .set_networks(&self.rules(&records))
            .map_err(net_error)?;
        live.firewall = Some(firewall);
        Ok(())
    }
}

/// The default bridge's subnet and address (`--bip`).
fn default_bridge_address(bridge: &BridgeConfig) -> Result<(Ipv4Net, Ipv4Addr)> {
    let text = bridge.address.as_deref().unwrap_or(DEFAULT_BRIDGE_ADDRESS);
    let address: Ipv4Net = text.parse().map_err(|_| {
        Error::Invalid(format!(
            "invalid --bip {text}: want an address/prefix such as {DEFAULT_BRIDGE_ADDRESS}"
        ))
    })?;
    Ok((address.trunc(), address.addr()))
}

/// A network's bridge up with its address, and its DNS server when it has one.
fn bring_up(network: &Network, live: &mut Live) -> Result<()> {
    let (Some(subnet), Some(gateway)) = (network.subnet, network.gateway) else {
        return Ok(());
    };
    berth_net::ensure_bridge(&network.bridge, gateway, subnet.prefix_len()).map_err(net_error)?;
    if network.has_dns() && !live.dns.contains_key(&network.id) {
        let names = Names::default();
        let server = DnsServer::start(
            gateway,
            Arc::new(names.clone()),
            berth_net::host_resolvers(),
        )
        .map_err(net_error)?;
        live.dns.insert(network.id.clone(), (server, names));
    }
    Ok(())
}

impl Networks {
    /// The firewall's rules for `records`.
    fn rules(&self, records: &[Network]) -> Vec<NetworkRules> {
        records
            .iter()
            .filter_map(|n| {
                let routed = self
                    .routed
                    .as_ref()
                    .filter(|(bridge, _)| *bridge == n.bridge);
                Some(NetworkRules {
                    bridge: n.bridge.clone(),
                    subnet: n.subnet?,
                    internal: n.internal,
                    routed: routed.map(|(_, range)| *range),
                })
            })
            .collect()
    }
}

pub(crate) fn net_error(error: berth_net::Error) -> Error {
    Error::Network(error.to_string())
}

/// The port mappings of an endpoint, in the firewall's words.
fn mappings(endpoint: &Endpoint) -> Vec<PortMapping> {
    endpoint
        .ports
        .iter()
        .map(|p| PortMapping {
            host_ip: (!p.host_ip.is_unspecified()).then_some(p.host_ip),
            host_port: p.host_port,
            protocol: if p.protocol == "udp" {
                Protocol::Udp
            } else {
                Protocol::Tcp
            },
            container_ip: endpoint.ip,
            container_port: p.container_port,
        })
        .collect()
}

/// What `--network` asks for.
enum Mode {
    Host,
    None,
    Container(String),
    Bridge(String),
}

fn mode(container: &Container) -> Mode {
    mode_of(&container.request.host_config.network_mode)
}

/// What a `NetworkMode` asks for.
fn mode_of(network_mode: &str) -> Mode {
    match network_mode {
        "host" => Mode::Host,
        "none" => Mode::None,
        "" | "default" | "bridge" => Mode::Bridge("bridge".into()),
        other => match other.strip_prefix("container:") {
            Some(name) => Mode::Container(name.to_string()),
            None => Mode::Bridge(other.to_string()),
        },
    }
}

/// What a starting container gets from its network: the namespace to join (None for
/// the host's), its endpoint, and the contents of its /etc/resolv.conf.
pub(crate) struct Sandbox {
    pub(crate) netns: Option<PathBuf>,
    /// Whether the namespace is the container's own, to release when it stops.
    pub(crate) owned: bool,
    pub(crate) endpoint: Option<Endpoint>,
    /// Its endpoints on the networks beyond the first, eth1 onwards.
    pub(crate) extra_endpoints: Vec<Endpoint>,
    pub(crate) resolv_conf: String,
}

impl Sandbox {
    /// Every endpoint, the first network's first.
    pub(crate) fn endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        self.endpoint.iter().chain(&self.extra_endpoints)
    }
}

impl Engine {
    /// Publishes a network event; `connect` and `disconnect` name the container.
    pub(crate) fn emit_network(&self, network_id: &str, action: &str, container: Option<&str>) {
        let Ok(network) = self.networks.find(network_id) else {
            return;
        };
        let mut attributes = BTreeMap::from([
            ("name".to_string(), network.name),
            ("type".to_string(), network.driver),
        ]);
        if let Some(container) = container {
            attributes.insert("container".into(), container.to_string());
        }
        self.emit("network", action, &network.id, attributes);
    }

    /// Every network, by name.
    pub fn networks(&self) -> Vec<Network> {
        let mut list: Vec<Network> = lock(&self.networks.records).values().cloned().collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// The network a name, id or unique id prefix stands for.
    pub fn network(&self, name: &str) -> Result<Network> {
        self.networks.find(name)
    }

    /// The running containers on a network, with their endpoints.
    pub fn network_endpoints(&self, network: &Network) -> Vec<(Container, Endpoint)> {
        self.containers(false)
            .into_iter()
            .filter_map(|c| {
                let endpoint = c
                    .state
                    .endpoints()
                    .find(|e| e.network_id == network.id)
                    .cloned()?;
                Some((c, endpoint))
            })
            .collect()
    }

    /// `docker network create`: a bridge network with its own subnet (the first free one
    /// of Docker's pools unless asked), bridge and DNS server.
    pub fn create_network(&self, request: NetworkRequest) -> Result<Network> {
        let driver = if request.driver.is_empty() {
            "bridge"
        } else {
            request.driver.as_str()
        };
        if driver != "bridge" {
            return Err(Error::Invalid(format!(
                "plugin \"{driver}\" not found: only the bridge driver makes networks"
            )));
        }
        if !crate::containers::is_docker_name(&request.name) {
            return Err(Error::Invalid(format!(
                "invalid network name {:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
                request.name
            )));
        }
        let mut records = lock(&self.networks.records);
        if records.values().any(|n| n.name == request.name) {
            return Err(Error::Conflict(format!(
                "network with name {} already exists",
                request.name
            )));
        }
        let taken: Vec<Ipv4Net> = records.values().filter_map(|n| n.subnet).collect();
        let subnet = match &request.subnet {
            Some(text) => {
                let subnet: Ipv4Net = text.parse().map_err(|_| {
                    Error::Invalid(format!(
                        "invalid subnet {text}: want an IPv4 CIDR such as 10.1.0.0/24"
                    ))
                })?;
                if let Some(other) = taken.iter().find(|t| overlaps(t, &subnet)) {
                    return Err(Error::Conflict(format!(
                        "invalid pool request: Pool overlaps with other one on this address space ({other})"
                    )));
                }
                subnet
            }
            None => {
                let routes = berth_net::host_routes();
                berth_net::default_subnets()
                    .find(|s| !taken.iter().chain(&routes).any(|t| overlaps(t, s)))
                    .ok_or_else(|| {
                        Error::Invalid(
                            "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network".into(),
                        )
                    })?
            }
        };
        let gateway = match &request.gateway {
            Some(text) => Some(text.parse::<Ipv4Addr>().map_err(|_| {
                Error::Invalid(format!("invalid gateway {text}: want an IPv4 address"))
            })?),
            None => None,
        };
        let pool = Pool::new(subnet, gateway).map_err(|e| Error::Invalid(e.to_string()))?;
        let id = crate::containers::random_hex(32)?;
        let network = Network {
            bridge: format!("br-{}", &id[..12]),
            id,
            name: request.name,
            driver: driver.to_string(),
            created: berth_runtime::state::now_rfc3339(),
            subnet: Some(pool.subnet()),
            gateway: Some(pool.gateway()),
            internal: request.internal,
            labels: request.labels,
        };
        self.networks.save(&network)?;
        records.insert(network.id.clone(), network.clone());
        let all: Vec<Network> = records.values().cloned().collect();
        drop(records);
        lock(&self.networks.pools).insert(network.id.clone(), pool);
        let mut live = lock(&self.networks.live);
        if let Some(firewall) = &live.firewall {
            let firewall = firewall.clone();
            bring_up(&network, &mut live)?;
            firewall
                .set_networks(&self.networks.rules(&all))
                .map_err(net_error)?;
        }
        drop(live);
        self.emit_network(&network.id, "create", None);
        Ok(network)
    }

    /// `docker network rm`: refused for the predefined networks and while containers run
    /// on it.
    pub fn remove_network(&self, name: &str) -> Result<()> {
        let network = self.networks.find(name)?;
        if PREDEFINED.contains(&network.name.as_str()) {
            return Err(Error::Forbidden(format!(
                "{} is a pre-defined network and cannot be removed",
                network.name
            )));
        }
        if let Some((container, _)) = self.network_endpoints(&network).first() {
            return Err(Error::Forbidden(format!(
                "error while removing network: network {} has active endpoints (name:\"{}\" id:\"{}\")",
                network.name,
                container.name,
                &container.id[..12]
            )));
        }
        self.emit_network(&network.id, "destroy", None);
        let mut records = lock(&self.networks.records);
        records.remove(&network.id);
        let all: Vec<Network> = records.values().cloned().collect();
        drop(records);
        lock(&self.networks.pools).remove(&network.id);
        let path = self.networks.dir.join(format!("{}.json", network.id));
        let _ = std::fs::remove_file(&path);
        let mut live = lock(&self.networks.live);
        live.dns.remove(&network.id);
        if let Some(firewall) = &live.firewall {
            firewall
                .set_networks(&self.networks.rules(&all))
                .map_err(net_error)?;
            berth_net::delete_link(&network.bridge).map_err(net_error)?;
        }
        Ok(())
    }

    /// The address `--add-host NAME:host-gateway` stands for: the default bridge's, as
    /// Docker's is docker0's, whatever network the container is on.
    pub(crate) fn host_gateway(&self) -> Option<std::net::IpAddr> {
        let bridge = self.networks.find("bridge").ok()?;
        bridge.gateway.map(std::net::IpAddr::V4)
    }

    /// Refuses `--dns` and `--add-host` where they cannot hold: in another container's
    /// network (Docker's conflict), `--dns` on a network whose own DNS server answers
    /// the container, which does not forward to servers of the container's choosing,
    /// `--network-alias` on a network without names (as Docker refuses it), and a second
    /// network beside one that shares a namespace or has none.
    pub(crate) fn check_name_settings(&self, request: &CreateRequest) -> Result<()> {
        let host = &request.host_config;
        let dns = host.dns.as_ref().is_some_and(|d| !d.is_empty());
        let hosts = host.extra_hosts.as_ref().is_some_and(|h| !h.is_empty());
        let mode = mode_of(&host.network_mode);
        if matches!(mode, Mode::Container(_)) && (dns || hosts) {
            return Err(Error::Invalid(
                "conflicting options: dns and the network mode (--dns and --add-host cannot be set with --network container:)".into(),
            ));
        }
        let first = self.first_network(&mode);
        for (key, settings) in endpoints_config(request) {
            let Ok(network) = self.network_named(key) else {
                continue;
            };
            check_aliases(&network, settings)?;
            if first.as_ref().is_none_or(|f| f.id != network.id)
                && let Some(refusal) = conflict(&mode, &network)
            {
                return Err(Error::Invalid(refusal.into()));
            }
        }
        match first {
            Some(network) if dns && network.has_dns() => Err(Error::Invalid(format!(
                "berth does not support --dns on network {}: its DNS server answers the container there",
                network.name
            ))),
            _ => Ok(()),
        }
    }

    /// The network `--network` names; None for another container's.
    fn first_network(&self, mode: &Mode) -> Option<Network> {
        match mode {
            Mode::Host => self.networks.find("host").ok(),
            Mode::None => self.networks.find("none").ok(),
            Mode::Container(_) => None,
            Mode::Bridge(name) => self.networks.find(name).ok(),
        }
    }

    /// `docker network connect`: a running container gets an interface on `network` at
    /// once, with its names in the network's DNS; a stopped one keeps the settings for
    /// its next start.
    pub fn connect_network(
        &self,
        network: &str,
        container: &str,
        settings: EndpointConfig,
    ) -> Result<()> {
        let network = self.networks.find(network)?;
        let container = self.container(container)?;
        let mode = mode(&container);
        if self.is_on(&container, &network) {
            return Err(Error::Forbidden(format!(
                "endpoint with name {} already exists in network {}",
                container.name, network.name
            )));
        }
        if let Some(refusal) = conflict(&mode, &network) {
            return Err(Error::Invalid(refusal.into()));
        }
        check_aliases(&network, &settings)?;
        wanted_address(&settings)?;
        settings.mac()?;
        if container.state.status == Status::Running {
            self.ensure_live()?;
        }
        let attached = self.update_record(&container.id, |record| {
            let attached = match (record.state.status, record.state.sandbox.clone()) {
                (Status::Running, Some(netns)) => {
                    let first = record.state.endpoint.is_none();
                    let index = free_interface(&record.state);
                    let endpoint =
                        self.attach_endpoint(record, &network, &settings, &netns, index, first)?;
                    if first {
                        record.state.endpoint = Some(endpoint);
                    } else {
                        record.state.extra_endpoints.push(endpoint);
                    }
                    true
                }
                _ => false,
            };
            record
                .request
                .networking_config
                .get_or_insert_default()
                .endpoints_config
                .get_or_insert_default()
                .insert(network.name.clone(), settings);
            if self
                .first_network(&mode)
                .is_some_and(|f| f.id == network.id)
            {
                record.state.left_first_network = false;
            }
            Ok(attached)
        })?;
        if attached {
            self.refresh_names();
            self.rewrite_etc(&container.id)?;
            self.emit_network(&network.id, "connect", Some(&container.id));
        }
        Ok(())
    }

    /// `docker network disconnect`: a running container loses its interface on
    /// `network` and its names there; a stopped one the settings of its next start. Off
    /// the network `--network` named, it joins only the others from then on; the next
    /// of them takes the default route if the container runs.
    pub fn disconnect_network(&self, network: &str, container: &str) -> Result<()> {
        let network = self.networks.find(network)?;
        let container = self.container(container)?;
        let first = self.first_of(&container).filter(|f| f.id == network.id);
        if let Some(first) = first.as_ref().filter(|f| f.driver != "bridge") {
            return Err(Error::Invalid(if first.driver == "host" {
                CONFLICT_HOST.into()
            } else {
                format!(
                    "berth does not support disconnecting a container from the {} network",
                    first.name
                )
            }));
        }
        let (gone, promoted) = self.update_record(&container.id, |record| {
            let key = endpoints_config(&record.request)
                .map(|(key, _)| key)
                .find(|key| self.network_named(key).is_ok_and(|n| n.id == network.id))
                .cloned();
            let gone = take_endpoint(&mut record.state, &network.id);
            if first.is_none() && key.is_none() && gone.is_none() {
                return Err(Error::Forbidden(format!(
                    "container {} is not connected to network {}",
                    record.id, network.name
                )));
            }
            if let (Some(key), Some(config)) = (key, record.request.networking_config.as_mut())
                && let Some(endpoints) = config.endpoints_config.as_mut()
            {
                endpoints.remove(&key);
            }
            record.state.left_first_network |= first.is_some();
            Ok((gone, promote_next(&mut record.state)))
        })?;
        let Some(endpoint) = gone else {
            return Ok(());
        };
        let _ = berth_net::delete_link(&endpoint.host_veth);
        self.release(&endpoint);
        if !endpoint.ports.is_empty() {
            lock(&self.networks.reservations).remove(&container.id);
        }
        if let Some((netns, gateway)) = promoted {
            berth_net::set_default_route(&netns, gateway).map_err(net_error)?;
        }
        self.refresh_names();
        self.rewrite_etc(&container.id)?;
        self.emit_network(&network.id, "disconnect", Some(&container.id));
        Ok(())
    }

    /// The network `--network` named, unless the container was disconnected from it.
    fn first_of(&self, container: &Container) -> Option<Network> {
        if container.state.left_first_network {
            return None;
        }
        self.first_network(&mode(container))
    }

    /// Changes a container's record under the containers' lock and saves it.
    fn update_record<T>(
        &self,
        id: &str,
        change: impl FnOnce(&mut Container) -> Result<T>,
    ) -> Result<T> {
        let mut records = self.containers.lock();
        let record = records
            .get_mut(id)
            .ok_or_else(|| Error::NoSuchContainer(id.to_string()))?;
        let result = change(record)?;
        self.save(record)?;
        Ok(result)
    }

    /// Whether the container is on `network`: by `--network`, by its EndpointsConfig, or
    /// by an endpoint while it runs.
    fn is_on(&self, container: &Container, network: &Network) -> bool {
        self.first_of(container).is_some_and(|n| n.id == network.id)
            || container
                .state
                .endpoints()
                .any(|e| e.network_id == network.id)
            || endpoints_config(&container.request)
                .any(|(key, _)| self.network_named(key).is_ok_and(|n| n.id == network.id))
    }

    /// Sets up a starting container's network.
    pub(crate) fn connect(&self, container: &Container) -> Result<Sandbox> {
        if let Some(pod) = &container.pod_sandbox {
            return self.sandbox_network(pod);
        }
        let own_netns = self.networks.sandboxes.join(&container.id);
        match mode(container) {
            Mode::Host => Ok(Sandbox {
                netns: None,
                owned: false,
                endpoint: None,
                extra_endpoints: Vec::new(),
                resolv_conf: std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
            }),
            Mode::None => {
                berth_net::netns::create(&own_netns).map_err(net_error)?;
                Ok(Sandbox {
                    netns: Some(own_netns),
                    owned: true,
                    endpoint: None,
                    extra_endpoints: Vec::new(),
                    resolv_conf: host_resolv_conf(),
                })
            }
            Mode::Container(name) => {
                let other = self.container(&name)?;
                if other.state.status != Status::Running {
                    return Err(Error::Conflict(format!(
                        "cannot join network namespace of a non running container: {}",
                        other.id
                    )));
                }
                let netns = match &other.state.sandbox {
                    Some(path) => path.clone(),
                    None => PathBuf::from(format!("/proc/{}/ns/net", other.state.pid)),
                };
                Ok(Sandbox {
                    netns: Some(netns),
                    owned: false,
                    endpoint: None,
                    extra_endpoints: Vec::new(),
                    resolv_conf: host_resolv_conf(),
                })
            }
            Mode::Bridge(name) => self.connect_bridge(container, &name, own_netns),
        }
    }

    fn connect_bridge(&self, container: &Container, name: &str, netns: PathBuf) -> Result<Sandbox> {
        let mut networks = Vec::new();
        if !container.state.left_first_network {
            let network = self.networks.find(name)?;
            if network.driver != "bridge" {
                return Err(Error::Invalid(format!(
                    "container cannot be connected to network {}: use --network {}",
                    network.name, network.name
                )));
            }
            let settings = self.endpoint_settings(container, &network);
            networks.push((network, settings));
        }
        let first = networks.first().map(|(n, _)| n.id.clone());
        networks.extend(self.extra_networks(container, first.as_deref())?);
        self.ensure_live()?;
        let mut endpoints = Vec::new();
        let wired = self.wire(container, &networks, &netns, &mut endpoints);
        if let Err(error) = wired {
            self.disconnect(&container.id, &Some(netns), &endpoints);
            return Err(error);
        }
        let resolv_conf = self.resolv_conf(&endpoints);
        let mut endpoints = endpoints.into_iter();
        Ok(Sandbox {
            netns: Some(netns),
            owned: true,
            endpoint: endpoints.next(),
            extra_endpoints: endpoints.collect(),
            resolv_conf,
        })
    }

    /// The resolv.conf of a container on the networks of `endpoints`: the DNS server of
    /// the first of them that has one, or the host's servers.
    fn resolv_conf<'a>(&self, endpoints: impl IntoIterator<Item = &'a Endpoint>) -> String {
        let server = endpoints
            .into_iter()
            .find(|e| self.networks.find(&e.network_id).is_ok_and(|n| n.has_dns()));
        match server {
            Some(endpoint) => format!(
                "nameserver {}\n{}options ndots:0\n",
                endpoint.gateway,
                host_search_lines()
            ),
            None => host_resolv_conf(),
        }
    }

    /// Rewrites a running container's /etc/hosts and /etc/resolv.conf after its networks
    /// changed: its name at each network's address, as Docker writes them, and — on the
    /// default bridge and connected to a network with names — that network's DNS server
    /// from now on (Docker switches to its resolver likewise), and back.
    fn rewrite_etc(&self, id: &str) -> Result<()> {
        let container = self.container(id)?;
        if container.state.status != Status::Running {
            return Ok(());
        }
        let host = &container.request.host_config;
        let addresses: Vec<String> = container
            .state
            .endpoints()
            .map(|e| e.ip.to_string())
            .collect();
        let names = crate::containers::host_names_of(&container);
        let hosts = crate::etc::hosts(host, &names, &addresses, self.host_gateway())?;
        let base = self.resolv_conf(container.state.endpoints());
        let resolv_conf = crate::etc::resolv_conf(host, &base);
        let etc = self.container_dir(id).join("etc");
        for (file, text) in [("hosts", hosts), ("resolv.conf", resolv_conf)] {
            let path = etc.join(file);
            if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
                continue;
            }
            std::fs::write(&path, text).map_err(|e| Error::Io(path, e))?;
        }
        Ok(())
    }

    /// Sets up the firewall table, bridges and DNS servers if no container did yet.
    fn ensure_live(&self) -> Result<()> {
        self.networks.ensure_live(|| self.live_endpoints())
    }

    /// The first endpoints of the running containers and the pod sandboxes: the ones
    /// whose ports are published.
    fn live_endpoints(&self) -> Vec<Endpoint> {
        let containers = self.containers(false).into_iter().map(|c| c.state.endpoint);
        let pods = self.sandboxes().into_iter().map(|s| s.endpoint);
        containers.chain(pods).flatten().collect()
    }

    /// A new namespace at `netns` wired to each of `networks`, eth0 onwards, the first
    /// with the default route and the container's published ports; each endpoint made
    /// is pushed to `wired`, for the caller to undo on failure.
    fn wire(
        &self,
        container: &Container,
        networks: &[(Network, EndpointConfig)],
        netns: &Path,
        wired: &mut Vec<Endpoint>,
    ) -> Result<()> {
        berth_net::netns::create(netns).map_err(net_error)?;
        for (index, (network, settings)) in networks.iter().enumerate() {
            wired.push(self.attach_endpoint(
                container,
                network,
                settings,
                netns,
                index,
                index == 0,
            )?);
            if index == 0
                && let Some(first) = wired.first_mut()
            {
                first.ports = self.reserve_ports(container)?;
                if let Some(firewall) = &lock(&self.networks.live).firewall {
                    firewall.publish(&mappings(first)).map_err(net_error)?;
                }
            }
        }
        Ok(())
    }

    /// An address on `network` for the container, wired into `netns` as `eth{index}`,
    /// with the default route through the network's gateway when it is the `first`
    /// interface; the address is released again when the wiring fails.
    fn attach_endpoint(
        &self,
        container: &Container,
        network: &Network,
        settings: &EndpointConfig,
        netns: &Path,
        index: usize,
        first: bool,
    ) -> Result<Endpoint> {
        let wanted = wanted_address(settings)?;
        let asked_mac = settings.mac()?;
        let (ip, prefix, gateway) = {
            let mut pools = lock(&self.networks.pools);
            let pool = pools
                .get_mut(&network.id)
                .ok_or_else(|| Error::NoSuchNetwork(network.name.clone()))?;
            let ip = pool
                .allocate(wanted)
                .map_err(|e| Error::Invalid(e.to_string()))?;
            (ip, pool.subnet().prefix_len(), pool.gateway())
        };
        let octets = ip.octets();
        let mac = asked_mac.unwrap_or([0x02, 0x42, octets[0], octets[1], octets[2], octets[3]]);
        let mut endpoint = Endpoint {
            network_id: network.id.clone(),
            network_name: network.name.clone(),
            endpoint_id: crate::containers::random_hex(32)?,
            ip,
            prefix,
            gateway,
            mac: mac
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
            host_veth: format!("veth{}", &crate::containers::random_hex(4)?[..7]),
            interface: format!("eth{index}"),
            dns_names: Vec::new(),
            ports: Vec::new(),
        };
        if network.has_dns() {
            endpoint.dns_names.push(container.name.clone());
            endpoint
                .dns_names
                .extend(settings.aliases.iter().flatten().cloned());
            endpoint.dns_names.push(container.id[..12].to_string());
        }
        let interface = berth_net::Interface {
            host_name: endpoint.host_veth.clone(),
            name: endpoint.interface.clone(),
            address: ip,
            prefix,
            gateway: first.then_some(gateway),
            mac,
        };
        if let Err(error) = berth_net::attach(netns, &network.bridge, &interface) {
            self.release(&endpoint);
            return Err(net_error(error));
        }
        Ok(endpoint)
    }

    /// The networks a container is on besides the one `--network` names (of id `first`):
    /// the others its EndpointsConfig names (a second `--network`, `docker network
    /// connect`).
    fn extra_networks(
        &self,
        container: &Container,
        first: Option<&str>,
    ) -> Result<Vec<(Network, EndpointConfig)>> {
        let mut extra: Vec<(Network, EndpointConfig)> = Vec::new();
        for (key, settings) in endpoints_config(&container.request) {
            let network = self.network_named(key)?;
            if Some(network.id.as_str()) == first || extra.iter().any(|(n, _)| n.id == network.id) {
                continue;
            }
            if let Some(refusal) = conflict(&Mode::Bridge(String::new()), &network) {
                return Err(Error::Invalid(refusal.into()));
            }
            extra.push((network, settings.clone()));
        }
        Ok(extra)
    }

    /// The settings a container's EndpointsConfig gives for `network`, under any name of
    /// it; none when it gives none.
    fn endpoint_settings(&self, container: &Container, network: &Network) -> EndpointConfig {
        endpoints_config(&container.request)
            .find(|(key, _)| self.network_named(key).is_ok_and(|n| n.id == network.id))
            .map(|(_, settings)| settings.clone())
            .unwrap_or_default()
    }

    /// The network an EndpointsConfig key names: `default` is the default bridge.
    fn network_named(&self, key: &str) -> Result<Network> {
        self.networks
            .find(if key == "default" { "bridge" } else { key })
    }

    /// Gives an endpoint's address back to its network's pool and takes its published
    /// ports off the firewall.
    fn release(&self, endpoint: &Endpoint) {
        if let Some(firewall) = &lock(&self.networks.live).firewall {
            let _ = firewall.unpublish(&mappings(endpoint));
        }
        if let Some(pool) = lock(&self.networks.pools).get_mut(&endpoint.network_id) {
            pool.release(endpoint.ip);
        }
    }

    /// Holds the host ports a container publishes, picking free ones where none is named.
    fn reserve_ports(&self, container: &Container) -> Result<Vec<PublishedPort>> {
        let host = &container.request.host_config;
        let mut wanted: Vec<(String, crate::model::PortBinding)> = Vec::new();
        for (port, bindings) in host.port_bindings.iter().flatten() {
            for binding in bindings.iter().flatten() {
                wanted.push((port.clone(), binding.clone()));
            }
        }
        if host.publish_all_ports {
            let image = self.images.resolve(&container.image_id)?;
            let config = self.images.config(&image)?;
            let mut exposed: Vec<String> = container
                .request
                .exposed_ports
                .iter()
                .flatten()
                .map(|(k, _)| k.clone())
                .collect();
            if let Some(ports) = config["config"]["ExposedPorts"].as_object() {
                exposed.extend(ports.keys().cloned());
            }
            for port in exposed {
                if !wanted.iter().any(|(p, _)| *p == port) {
                    wanted.push((port, crate::model::PortBinding::default()));
                }
            }
        }
        let mut published = Vec::new();
        let mut held = Vec::new();
        for (port, binding) in wanted {
            let (number, protocol) = port.split_once('/').unwrap_or((&port, "tcp"));
            let container_port: u16 = number
                .parse()
                .map_err(|_| Error::Invalid(format!("invalid port specification: {port:?}")))?;
            if !matches!(protocol, "tcp" | "udp") {
                return Err(Error::Invalid(format!("invalid proto: {protocol}")));
            }
            let host_ip: Ipv4Addr = match binding.host_ip.as_str() {
                "" => Ipv4Addr::UNSPECIFIED,
                text => text.parse().map_err(|_| {
                    Error::Invalid(format!(
                        "invalid IP address {text}: only IPv4 is published yet"
                    ))
                })?,
            };
            let host_port: u16 = match binding.host_port.as_str() {
                "" => 0,
                text => text.parse().map_err(|_| {
                    Error::Invalid(format!(
                        "invalid host port {text:?}: port ranges are not supported yet"
                    ))
                })?,
            };
            let (reservation, host_port) = self.reserve(container, host_ip, host_port, protocol)?;
            held.push(reservation);
            published.push(PublishedPort {
                host_ip,
                host_port,
                protocol: protocol.to_string(),
                container_port,
            });
        }
        lock(&self.networks.reservations).insert(container.id.clone(), held);
        Ok(published)
    }

    fn reserve(
        &self,
        container: &Container,
        ip: Ipv4Addr,
        port: u16,
        protocol: &str,
    ) -> Result<(Reservation, u16)> {
        let bound = if protocol == "udp" {
            UdpSocket::bind((ip, port))
                .and_then(|s| Ok((s.local_addr()?.port(), Reservation::Udp(s))))
        } else {
            TcpListener::bind((ip, port))
                .and_then(|s| Ok((s.local_addr()?.port(), Reservation::Tcp(s))))
        };
        match bound {
            Ok((port, reservation)) => Ok((reservation, port)),
            Err(error) => {
                let ours = self.containers(false).iter().any(|c| {
                    c.state
                        .endpoint
                        .iter()
                        .flat_map(|e| &e.ports)
                        .any(|p| p.host_port == port && p.protocol == protocol)
                });
                Err(Error::Conflict(if ours {
                    format!("Bind for {ip}:{port} failed: port is already allocated")
                } else {
                    format!(
                        "driver failed programming external connectivity on endpoint {} ({}): failed to bind host port {ip}:{port}/{protocol}: {error}",
                        container.name, container.id
                    )
                }))
            }
        }
    }

    /// Undoes a container's network: its ports, its addresses and its namespace.
    pub(crate) fn disconnect<'a>(
        &self,
        id: &str,
        netns: &Option<PathBuf>,
        endpoints: impl IntoIterator<Item = &'a Endpoint>,
    ) {
        lock(&self.networks.reservations).remove(id);
        for endpoint in endpoints {
            self.release(endpoint);
        }
        // The veth pair goes with the namespace, in the kernel's own time: deleting it
        // here would hold the container's exit up for an RCU grace period.
        if let Some(netns) = netns {
            let _ = berth_net::netns::remove(netns);
        }
    }

    /// Points each user network's DNS at its running containers: every client is
    /// answered the names on the network, and a container that is on other networks
    /// too the names on those as well, as Docker's resolver answers it.
    pub(crate) fn refresh_names(&self) {
        let running = self.containers(false);
        let tables = name_tables(&running);
        let live = lock(&self.networks.live);
        for (network_id, (_, names)) in &live.dns {
            names.set_with_clients(
                tables.get(network_id).cloned().unwrap_or_default(),
                client_names(&running, network_id, &tables),
            );
        }
    }

    /// After a restart of the daemon: the addresses and host ports of the containers
    /// that still run are theirs again, and their networks' DNS answers again.
    pub(crate) fn restore_networks(&self) {
        let running = self.containers(false);
        let endpoints: Vec<Endpoint> = running
            .iter()
            .flat_map(|c| c.state.endpoints().cloned())
            .chain(self.sandboxes().into_iter().filter_map(|s| s.endpoint))
            .collect();
        {
            let mut pools = lock(&self.networks.pools);
            for endpoint in &endpoints {
                if let Some(pool) = pools.get_mut(&endpoint.network_id) {
                    pool.claim(endpoint.ip);
                }
            }
        }
        for container in &running {
            for port in container.state.endpoint.iter().flat_map(|e| &e.ports) {
                if let Ok((reservation, _)) =
                    self.reserve(container, port.host_ip, port.host_port, &port.protocol)
                {
                    lock(&self.networks.reservations)
                        .entry(container.id.clone())
                        .or_default()
                        .push(reservation);
                }
            }
        }
        if !endpoints.is_empty() && self.networks.ensure_live(|| endpoints).is_ok() {
            self.refresh_names();
        }
    }

    /// At the daemon's shutdown: with no container left running, the bridges, DNS
    /// servers and firewall table go; running containers keep them (live restore).
    pub fn shutdown_networks(&self) {
        if !self.containers(false).is_empty() || !self.sandboxes().is_empty() {
            return;
        }
        let mut live = lock(&self.networks.live);
        live.dns.clear();
        if let Some(firewall) = live.firewall.take() {
            let _ = firewall.remove();
            for network in lock(&self.networks.records)
                .values()
                .filter(|n| n.driver == "bridge")
            {
                let _ = berth_net::delete_link(&network.bridge);
            }
        }
    }
}

/// Takes a container's endpoint on the network of `network_id` away, wherever it is.
fn take_endpoint(state: &mut crate::model::State, network_id: &str) -> Option<Endpoint> {
    if state
        .endpoint
        .as_ref()
        .is_some_and(|e| e.network_id == network_id)
    {
        return state.endpoint.take();
    }
    let position = state
        .extra_endpoints
        .iter()
        .position(|e| e.network_id == network_id)?;
    Some(state.extra_endpoints.remove(position))
}

/// With its first endpoint gone, a running container's next one becomes its first:
/// its namespace and the gateway the default route is to go through now.
fn promote_next(state: &mut crate::model::State) -> Option<(PathBuf, Ipv4Addr)> {
    if state.status != Status::Running
        || state.endpoint.is_some()
        || state.extra_endpoints.is_empty()
    {
        return None;
    }
    let next = state.extra_endpoints.remove(0);
    let gateway = next.gateway;
    state.endpoint = Some(next);
    Some((state.sandbox.clone()?, gateway))
}

/// The lowest N of the `ethN` a running container has no interface named.
fn free_interface(state: &crate::model::State) -> usize {
    let taken = |i: usize| {
        let name = format!("eth{i}");
        state
            .endpoints()
            .any(|e| e.interface == name || (i == 0 && e.interface.is_empty()))
    };
    (0..).find(|&i| !taken(i)).unwrap_or_default()
}

/// The names on each network: its running containers' names and aliases there.
fn name_tables(running: &[Container]) -> HashMap<String, NameTable> {
    let mut tables: HashMap<String, NameTable> = HashMap::new();
    for endpoint in running.iter().flat_map(|c| c.state.endpoints()) {
        let table = tables.entry(endpoint.network_id.clone()).or_default();
        for name in &endpoint.dns_names {
            table.entry(name.clone()).or_default().push(endpoint.ip);
        }
    }
    tables
}

/// What the DNS server of `network_id` answers each container on it besides its own
/// names, by the container's address there: the names on its other networks.
fn client_names(
    running: &[Container],
    network_id: &str,
    tables: &HashMap<String, NameTable>,
) -> HashMap<Ipv4Addr, NameTable> {
    let mut clients = HashMap::new();
    for container in running {
        let mut endpoints = container.state.endpoints();
        let Some(client) = endpoints.find(|e| e.network_id == network_id) else {
            continue;
        };
        let mut known = NameTable::new();
        for other in container.state.endpoints() {
            if other.network_id == network_id {
                continue;
            }
            for (name, addresses) in tables.get(&other.network_id).into_iter().flatten() {
                known
                    .entry(name.clone())
                    .or_insert_with(|| addresses.clone());
            }
        }
        if !known.is_empty() {
            clients.insert(client.ip, known);
        }
    }
    clients
}

/// Docker's refusal of a container connected to a host network, or leaving it.
const CONFLICT_HOST: &str =
    "container cannot be disconnected from host network or connected to host network";
/// Docker's refusal of a second network for a container in another's namespace or the
/// host's.
const CONFLICT_SHARED: &str = "container sharing network namespace with another container or host cannot be connected to any other network";
/// Docker's refusal of a second network beside `none`.
const CONFLICT_NONE: &str = "container cannot be connected to multiple networks with one of the networks in private (none) mode";

/// Docker's refusal of a container in `mode` on `network` besides its first; None when
/// it may be.
fn conflict(mode: &Mode, network: &Network) -> Option<&'static str> {
    match (mode, network.driver.as_str()) {
        (_, "host") => Some(CONFLICT_HOST),
        (Mode::Host | Mode::Container(_), _) => Some(CONFLICT_SHARED),
        (Mode::None, _) | (_, "null") => Some(CONFLICT_NONE),
        (Mode::Bridge(_), _) => None,
    }
}

/// Refuses aliases on a network without names, as Docker does.
fn check_aliases(network: &Network, settings: &EndpointConfig) -> Result<()> {
    if network.has_dns() || settings.aliases.as_ref().is_none_or(|a| a.is_empty()) {
        return Ok(());
    }
    Err(Error::Invalid(
        "network-scoped alias is supported only for containers in user defined networks (--network-alias)".into(),
    ))
}

/// The endpoint settings of create and `docker network connect`, by network key.
fn endpoints_config(request: &CreateRequest) -> impl Iterator<Item = (&String, &EndpointConfig)> {
    request
        .networking_config
        .iter()
        .filter_map(|n| n.endpoints_config.as_ref())
        .flatten()
}

/// The fixed address settings ask for (`--ip`), if any.
fn wanted_address(settings: &EndpointConfig) -> Result<Option<Ipv4Addr>> {
    match settings
        .ipam_config
        .as_ref()
        .map(|i| i.ipv4_address.as_str())
    {
        Some(text) if !text.is_empty() => text
            .parse::<Ipv4Addr>()
            .map(Some)
            .map_err(|_| Error::Invalid(format!("invalid IPv4 address {text}"))),
        _ => Ok(None),
    }
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The host's resolv.conf without loopback nameservers, which a container cannot reach;
/// with none left, Docker's fallback of Google's public servers.
pub(crate) fn host_resolv_conf() -> String {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| {
            let server = line.strip_prefix("nameserver").map(str::trim);
            !server.is_some_and(|s| s.starts_with("127.") || s == "::1")
        })
        .collect();
    let mut out = kept.join("\n");
    if !kept.iter().any(|l| l.starts_with("nameserver")) {
        out.push_str("\nnameserver 8.8.8.8\nnameserver 8.8.4.4");
    }
    out.push('\n');
    out
}

fn host_search_lines() -> String {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("search"))
        .map(|l| format!("{l}\n"))
        .collect()
}
