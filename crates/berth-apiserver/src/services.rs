//! Service addresses, as kube-apiserver's Service storage hands them out: a cluster IP
//! from the service CIDR for every Service but headless and ExternalName ones, and a
//! node port from the node-port range for each port of NodePort and LoadBalancer
//! Services (and the health-check port of a LoadBalancer whose external traffic stays
//! local).
//!
//! Each address is claimed by creating a key that must not exist, so two writes — or two
//! servers — never hand out the same one: a cluster IP as the networking.k8s.io/v1
//! IPAddress object kube-apiserver 1.33's allocator stores, under `/registry/ipaddresses/`;
//! a node port as the same shape under `/registry/servicenodeports/`. A write that fails
//! gives back what it claimed, a stored Service what it no longer holds, a deleted one
//! what it held; the repair pass gives back what a crash between claim and write left.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::time::Duration;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::networking::v1::{IPAddress, IPAddressSpec, ParentReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use crate::Shared;
use crate::status::Status;

/// Where cluster IPs are claimed: one IPAddress object per address.
const ADDRESSES: &str = "/registry/ipaddresses/";

/// Where node ports are claimed, one key per port.
const NODE_PORTS: &str = "/registry/servicenodeports/";

/// How old a claim must be before the repair pass may give it back: a create claims its
/// addresses a moment before it stores the Service.
const CLAIM_GRACE: Duration = Duration::from_secs(60);

/// How often the repair pass runs.
const REPAIR_EVERY: Duration = Duration::from_secs(60);

/// The service CIDR k3s uses, which Berth's defaults follow.
pub const DEFAULT_SERVICE_CIDR: &str = "10.43.0.0/16";

/// The node ports kube-apiserver hands out by default.
pub const DEFAULT_NODE_PORT_RANGE: &str = "30000-32767";

/// The node ports Services may have: kube-apiserver's `--service-node-port-range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodePortRange {
    first: u16,
    last: u16,
}

impl NodePortRange {
    fn contains(self, port: i32) -> bool {
        (i32::from(self.first)..=i32::from(self.last)).contains(&port)
    }
}

impl FromStr for NodePortRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let wrong = || format!("{text:?} is not a port range such as {DEFAULT_NODE_PORT_RANGE}");
        let (first, last) = text.split_once('-').ok_or_else(wrong)?;
        let (first, last) = (
            first.trim().parse::<u16>().map_err(|_| wrong())?,
            last.trim().parse::<u16>().map_err(|_| wrong())?,
        );
        if first == 0 || first > last {
            return Err(wrong());
        }
        Ok(Self { first, last })
    }
}

impl std::fmt::Display for NodePortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// The addresses the server hands Services: its `--service-cidr` and
/// `--service-node-port-range`.
#[derive(Debug, Clone, Copy)]
pub struct ServiceRanges {
    /// Cluster IPs; its first address is the `kubernetes` Service's.
    pub cluster_ips: Ipv4Net,
    /// Node ports.
    pub node_ports: NodePortRange,
}

impl Default for ServiceRanges {
    fn default() -> Self {
        Self {
            cluster_ips: DEFAULT_SERVICE_CIDR.parse().expect("a valid CIDR"),
            node_ports: DEFAULT_NODE_PORT_RANGE.parse().expect("a valid range"),
        }
    }
}

impl ServiceRanges {
    /// The `kubernetes` Service's cluster IP: the range's first usable address.
    pub(crate) fn first_address(&self) -> Ipv4Addr {
        let network = u32::from(self.cluster_ips.network());
        Ipv4Addr::from(network + 1)
    }

    /// The addresses a Service may be given: the range without its network and
    /// broadcast addresses, as offsets from the network address.
    fn usable(&self) -> std::ops::RangeInclusive<u32> {
        let size = 1u32 << (32 - u32::from(self.cluster_ips.prefix_len()).min(31));
        1..=size.saturating_sub(2).max(1)
    }

    /// The lower part of the range, which dynamic allocation leaves to Services that ask
    /// for an address (kube-apiserver's reserved band: 1/16 of the range, 16 to 256).
    fn static_band(&self) -> u32 {
        (*self.usable().end() / 16).clamp(16, 256)
    }
}

/// What a Service's write claimed — given back if the write does not land — and what
/// the Service no longer holds, given back once it is stored.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    made: Vec<String>,
    dropped: Vec<String>,
}

impl Claims {
    /// Gives back what the write claimed: it did not land.
    pub(crate) async fn undo(self, shared: &Shared) {
        release(shared, &self.made).await;
    }

    /// Gives back what the stored Service no longer holds.
    pub(crate) async fn settle(self, shared: &Shared) {
        release(shared, &self.dropped).await;
    }
}

/// The keys of what a Service holds.
fn held_keys(service: &Service) -> BTreeSet<String> {
    let spec = service.spec.clone().unwrap_or_default();
    let addresses = spec
        .cluster_ips
        .unwrap_or_default()
        .into_iter()
        .chain(spec.cluster_ip)
        .filter(|ip| ip.parse::<Ipv4Addr>().is_ok())
        .map(|ip| format!("{ADDRESSES}{ip}"));
    let ports = spec
        .ports
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| p.node_port)
        .chain(spec.health_check_node_port)
        .filter(|port| *port != 0)
        .map(|port| format!("{NODE_PORTS}{port}"));
    addresses.chain(ports).collect()
}

/// Gives a deleted Service's addresses back.
pub(crate) async fn deleted(shared: &Shared, last: &Value) {
    if let Ok(service) = serde_json::from_value::<Service>(last.clone()) {
        let keys: Vec<String> = held_keys(&service).into_iter().collect();
        release(shared, &keys).await;
    }
}

async fn release(shared: &Shared, keys: &[String]) {
    for key in keys {
        if let Err(error) = shared.store.delete(key, 0).await
            && !matches!(error, berth_store::Error::NotFound(_))
        {
            tracing::warn!(%error, key, "could not give a Service's address back");
        }
    }
}

/// Gives `service` (in `namespace`, replacing `old` when an update) its cluster IP and
/// node ports — those it asks for if free and in range, others chosen — claiming them
/// unless a dry run. Errors name the field, as kube-apiserver's do.
pub(crate) async fn claim(
    shared: &Shared,
    namespace: &str,
    (service, old): (&mut Value, Option<&Value>),
    dry_run: bool,
) -> Result<Claims, Status> {
    let mut typed: Service = serde_json::from_value(service.clone())
        .map_err(|e| Status::bad_request(format!("the Service cannot be read: {e}")))?;
    let old: Option<Service> = old.and_then(|o| serde_json::from_value(o.clone()).ok());
    let name = typed.metadata.name.clone().unwrap_or_default();
    let parent = ParentReference {
        group: Some(String::new()),
        resource: "services".into(),
        namespace: Some(namespace.into()),
        name: name.clone(),
    };
    let invalid = |problem: String| Status::invalid("Service", &name, problem);
    let old_spec = old
        .as_ref()
        .and_then(|o| o.spec.clone())
        .unwrap_or_default();
    let spec = typed.spec.get_or_insert_default();
    drop_type_dependent_fields(spec, &old_spec);
    let mut claimer = Claimer {
        shared,
        parent,
        dry_run,
        claims: Claims::default(),
    };
    let outcome = async {
        assign_cluster_ip(&mut claimer, spec, &old_spec)
            .await
            .map_err(invalid)?;
        assign_node_ports(&mut claimer, spec, &old_spec)
            .await
            .map_err(invalid)
    }
    .await;
    if let Err(status) = outcome {
        claimer.claims.undo(shared).await;
        return Err(status);
    }
    let mut claims = claimer.claims;
    if let Some(old) = &old {
        let now = held_keys(&typed);
        claims.dropped = held_keys(old).difference(&now).cloned().collect();
    }
    match serde_json::to_value(&typed) {
        Ok(value) => *service = value,
        Err(e) => {
            claims.undo(shared).await;
            return Err(Status::bad_request(format!(
                "the Service cannot be written: {e}"
            )));
        }
    }
    Ok(claims)
}

/// What changing a Service's type leaves behind, cleared as kube-apiserver clears it when
/// the client left it as it was: the cluster IP of a Service becoming ExternalName, the
/// node ports of one becoming ClusterIP.
fn drop_type_dependent_fields(spec: &mut ServiceSpec, old: &ServiceSpec) {
    let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
    if kind == "ExternalName" && spec.cluster_ip.is_some() && spec.cluster_ip == old.cluster_ip {
        spec.cluster_ip = None;
        spec.cluster_ips = None;
    }
    if !has_node_ports(spec) {
        let old_ports = old.ports.clone().unwrap_or_default();
        for port in spec.ports.iter_mut().flatten() {
            let before = old_ports.iter().find(|p| same_port(p, port));
            if before.is_some_and(|b| b.node_port == port.node_port) {
                port.node_port = None;
            }
        }
    }
    if !needs_health_check_port(spec) && spec.health_check_node_port == old.health_check_node_port {
        spec.health_check_node_port = None;
    }
}

fn has_node_ports(spec: &ServiceSpec) -> bool {
    match spec.type_.as_deref() {
        Some("NodePort") => true,
        Some("LoadBalancer") => spec.allocate_load_balancer_node_ports != Some(false),
        _ => false,
    }
}

fn needs_health_check_port(spec: &ServiceSpec) -> bool {
    spec.type_.as_deref() == Some("LoadBalancer")
        && spec.external_traffic_policy.as_deref() == Some("Local")
}

fn same_port(a: &ServicePort, b: &ServicePort) -> bool {
    a.port == b.port && a.protocol == b.protocol
}

/// Claims addresses for one Service's write.
struct Claimer<'a> {
    shared: &'a Shared,
    parent: ParentReference,
    dry_run: bool,
    claims: Claims,
}

impl Claimer<'_> {
    /// Claims the key `name` under `directory`; false when someone holds it.
    async fn claim(&mut self, directory: &str, name: &str) -> Result<bool, String> {
        let key = format!("{directory}{name}");
        if self.dry_run {
            let held = self
                .shared
                .store
                .get(&key)
                .await
                .map_err(|e| e.to_string())?;
            return Ok(held.is_none());
        }
        let record = IPAddress {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(crate::objects::uid().map_err(|s| s.message().to_string())?),
                creation_timestamp: Some(Time(now())),
                labels: (directory == ADDRESSES).then(|| {
                    [
                        ("ipaddress.kubernetes.io/ip-family", "IPv4"),
                        ("ipaddress.kubernetes.io/managed-by", "ipallocator.k8s.io"),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
                }),
                ..ObjectMeta::default()
            },
            spec: Some(IPAddressSpec {
                parent_ref: self.parent.clone(),
            }),
        };
        let mut value = serde_json::to_value(&record).map_err(|e| e.to_string())?;
        value["apiVersion"] = "networking.k8s.io/v1".into();
        value["kind"] = "IPAddress".into();
        let bytes = serde_json::to_vec(&value).map_err(|e| e.to_string())?;
        match self.shared.store.create(&key, bytes).await {
            Ok(_) => {
                self.claims.made.push(key);
                Ok(true)
            }
            Err(berth_store::Error::Exists(_)) => Ok(false),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Claims a free key under `directory` among `candidates` (names), trying a few at
    /// random before going through them in order.
    async fn claim_any(
        &mut self,
        directory: &str,
        candidates: &[String],
    ) -> Result<Option<String>, String> {
        let taken: BTreeSet<String> = self
            .shared
            .cache
            .list(directory)
            .0
            .iter()
            .filter_map(|entry| entry.typed::<IPAddress>()?.metadata.name)
            .collect();
        let free: Vec<&String> = candidates.iter().filter(|c| !taken.contains(*c)).collect();
        if free.is_empty() {
            return Ok(None);
        }
        let start = random_index(free.len());
        for candidate in free.iter().cycle().skip(start).take(free.len()) {
            if self.claim(directory, candidate).await? {
                return Ok(Some(candidate.to_string()));
            }
        }
        Ok(None)
    }
}

/// A random index below `len`, from the OS's random source (0 when it fails: the order
/// only spreads the claims).
fn random_index(len: usize) -> usize {
    let random = crate::random_hex(8)
        .ok()
        .and_then(|hex| u64::from_str_radix(&hex, 16).ok())
        .unwrap_or(0);
    (random % len.max(1) as u64) as usize
}

/// Gives the Service its cluster IP: the one it had, the one it asks for, or a free one.
async fn assign_cluster_ip(
    claimer: &mut Claimer<'_>,
    spec: &mut ServiceSpec,
    old: &ServiceSpec,
) -> Result<(), String> {
    let kind = spec.type_.clone().unwrap_or_else(|| "ClusterIP".into());
    let asked = spec
        .cluster_ips
        .as_ref()
        .and_then(|ips| ips.first().cloned())
        .or_else(|| spec.cluster_ip.clone())
        .filter(|ip| !ip.is_empty());
    let had = old.cluster_ip.clone().filter(|ip| !ip.is_empty());
    if kind == "ExternalName" {
        if let Some(ip) = asked {
            return Err(format!(
                "spec.clusterIPs: Invalid value: []string{{{ip:?}}}: must be empty for 'ExternalName' services"
            ));
        }
        return Ok(());
    }
    let ip = match (asked, had) {
        (Some(asked), Some(had)) if asked != had => {
            return Err(format!(
                "spec.clusterIPs[0]: Invalid value: []string{{{asked:?}}}: may not change once set"
            ));
        }
        (_, Some(had)) => had,
        (Some(asked), None) if asked == "None" => {
            if has_node_ports(spec) {
                return Err(format!(
                    "spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for {kind} services"
                ));
            }
            asked
        }
        (Some(asked), None) => claim_asked_address(claimer, &asked).await?,
        (None, None) => claim_free_address(claimer).await?,
    };
    spec.cluster_ip = Some(ip.clone());
    spec.cluster_ips = Some(vec![ip.clone()]);
    if ip != "None" || spec.selector.is_some() {
        spec.ip_families = Some(vec!["IPv4".into()]);
        if spec.ip_family_policy.is_none() {
            spec.ip_family_policy = Some("SingleStack".into());
        }
    }
    Ok(())
}

async fn claim_asked_address(claimer: &mut Claimer<'_>, asked: &str) -> Result<String, String> {
    let list = format!("[]string{{{asked:?}}}");
    let address: Ipv4Addr = asked.parse().map_err(|_| {
        format!(
            "spec.clusterIPs[0]: Invalid value: {asked:?}: must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
        )
    })?;
    let ranges = claimer.shared.service_ranges;
    let offset = u32::from(address).wrapping_sub(u32::from(ranges.cluster_ips.network()));
    if !ranges.cluster_ips.contains(&address) || !ranges.usable().contains(&offset) {
        return Err(format!(
            "spec.clusterIPs: Invalid value: {list}: failed to allocate IP {asked}: the provided IP ({asked}) is not in the valid range. The range of valid IPs is {}",
            ranges.cluster_ips
        ));
    }
    if !claimer.claim(ADDRESSES, asked).await? {
        return Err(format!(
            "spec.clusterIPs: Invalid value: {list}: failed to allocate IP {asked}: provided IP is already allocated"
        ));
    }
    Ok(asked.to_string())
}

/// A free cluster IP, from the upper part of the range while it has one.
async fn claim_free_address(claimer: &mut Claimer<'_>) -> Result<String, String> {
    let ranges = claimer.shared.service_ranges;
    let network = u32::from(ranges.cluster_ips.network());
    let usable = ranges.usable();
    let address = |offset: u32| Ipv4Addr::from(network + offset).to_string();
    let upper: Vec<String> = (ranges.static_band() + 1..=*usable.end())
        .map(address)
        .collect();
    if let Some(ip) = claimer.claim_any(ADDRESSES, &upper).await? {
        return Ok(ip);
    }
    let lower: Vec<String> = (*usable.start()..=ranges.static_band().min(*usable.end()))
        .map(address)
        .collect();
    claimer.claim_any(ADDRESSES, &lower).await?.ok_or_else(|| {
        format!(
            "spec.clusterIPs: Internal error: failed to allocate a serviceIP: range is full ({})",
            ranges.cluster_ips
        )
    })
}

/// Gives each port of a NodePort or LoadBalancer Service its node port — the one it had,
/// the one it asks for, or a free one — and refuses node ports on other types.
async fn assign_node_ports(
    claimer: &mut Claimer<'_>,
    spec: &mut ServiceSpec,
    old: &ServiceSpec,
) -> Result<(), String> {
    let kind = spec.type_.clone().unwrap_or_else(|| "ClusterIP".into());
    let wanted = has_node_ports(spec);
    let old_ports = old.ports.clone().unwrap_or_default();
    let held: BTreeSet<i32> = old_ports
        .iter()
        .filter_map(|p| p.node_port)
        .chain(old.health_check_node_port)
        .collect();
    let mut given: BTreeSet<i32> = BTreeSet::new();
    let ports = spec.ports.get_or_insert_default();
    for (i, port) in ports.iter_mut().enumerate() {
        let field = format!("spec.ports[{i}].nodePort");
        let asked = port.node_port.filter(|p| *p != 0);
        if !wanted {
            if asked.is_some() && kind != "LoadBalancer" {
                return Err(format!(
                    "{field}: Forbidden: may not be used when `type` is '{kind}'"
                ));
            }
            if asked.is_none() {
                port.node_port = None;
            }
            continue;
        }
        let kept = old_ports
            .iter()
            .find(|p| same_port(p, port))
            .and_then(|p| p.node_port);
        let node_port = match asked.or(kept) {
            Some(asked) => {
                let free = held.contains(&asked)
                    || given.contains(&asked)
                    || claim_asked_port(claimer, &field, asked).await?;
                if !free {
                    return Err(format!(
                        "{field}: Invalid value: {asked}: provided port is already allocated"
                    ));
                }
                asked
            }
            None => claim_free_port(claimer).await?,
        };
        given.insert(node_port);
        port.node_port = Some(node_port);
    }
    if needs_health_check_port(spec) {
        let field = "spec.healthCheckNodePort";
        let port = match spec.health_check_node_port.filter(|p| *p != 0) {
            Some(asked) if held.contains(&asked) => asked,
            Some(asked) => {
                if !claim_asked_port(claimer, field, asked).await? {
                    return Err(format!(
                        "{field}: Invalid value: {asked}: provided port is already allocated"
                    ));
                }
                asked
            }
            None => claim_free_port(claimer).await?,
        };
        spec.health_check_node_port = Some(port);
    }
    Ok(())
}

/// Claims node port `asked`, refusing one outside the range; false when it is taken.
async fn claim_asked_port(
    claimer: &mut Claimer<'_>,
    field: &str,
    asked: i32,
) -> Result<bool, String> {
    let range = claimer.shared.service_ranges.node_ports;
    if !range.contains(asked) {
        return Err(format!(
            "{field}: Invalid value: {asked}: provided port is not in the valid range. The range of valid ports is {range}"
        ));
    }
    claimer.claim(NODE_PORTS, &asked.to_string()).await
}

async fn claim_free_port(claimer: &mut Claimer<'_>) -> Result<i32, String> {
    let range = claimer.shared.service_ranges.node_ports;
    let candidates: Vec<String> = (range.first..=range.last).map(|p| p.to_string()).collect();
    let port = claimer.claim_any(NODE_PORTS, &candidates).await?;
    port.and_then(|p| p.parse().ok()).ok_or_else(|| {
        format!(
            "spec.ports: Internal error: failed to allocate a nodePort: range is full ({range})"
        )
    })
}

/// Makes the cluster's own Services unless they are there: `kubernetes` in `default`
/// and `kube-dns` in `kube-system`.
pub(crate) async fn make_own(shared: &Shared, cluster_dns: Ipv4Addr) {
    let api = shared.service_ranges.first_address();
    let own = [
        (
            "default",
            "kubernetes",
            kubernetes_service(api, shared.bind.port()),
        ),
        ("kube-system", "kube-dns", dns_service(cluster_dns)),
    ];
    for (namespace, name, service) in own {
        if let Err(error) = ensure_service(shared, namespace, service).await {
            tracing::warn!(%error, "could not make the {name} Service");
        }
    }
}

/// Gives back leaked addresses every minute.
pub(crate) async fn repair_periodically(shared: std::sync::Arc<Shared>) {
    loop {
        tokio::time::sleep(REPAIR_EVERY).await;
        repair(&shared).await;
    }
}

/// The `kubernetes` Service, on the range's first address, as kube-apiserver makes it.
fn kubernetes_service(address: Ipv4Addr, port: u16) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "kubernetes",
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "clusterIP": address.to_string(),
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
        },
    })
}

/// The `kube-dns` Service on the cluster DNS address, as k3s's CoreDNS manifest names
/// it; every node answers on that address itself, so it has no pods.
fn dns_service(address: Ipv4Addr) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "kube-dns",
            "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
                       "kubernetes.io/name": "CoreDNS"},
        },
        "spec": {
            "clusterIP": address.to_string(),
            "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                      {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}],
        },
    })
}

/// Makes `service` in `namespace` unless a Service of its name is there.
async fn ensure_service(shared: &Shared, namespace: &str, service: Value) -> Result<(), String> {
    let name = crate::objects::name_of(&service).to_string();
    let key = format!("/registry/services/{namespace}/{name}");
    if shared
        .store
        .get(&key)
        .await
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Ok(());
    }
    let (key, mut object) = crate::prepare::own("services", Some(namespace), service)
        .map_err(|status| status.message().to_string())?;
    object["status"] = serde_json::json!({"loadBalancer": {}});
    let claims = claim(shared, namespace, (&mut object, None), false)
        .await
        .map_err(|status| status.message().to_string())?;
    let bytes = serde_json::to_vec(&object).map_err(|e| e.to_string())?;
    match shared.store.create(&key, bytes).await {
        Ok(_) => Ok(()),
        // Another server made it meanwhile.
        Err(berth_store::Error::Exists(_)) => {
            claims.undo(shared).await;
            Ok(())
        }
        Err(e) => {
            claims.undo(shared).await;
            Err(e.to_string())
        }
    }
}

/// Now, to the second, as objects' timestamps keep it.
fn now() -> Timestamp {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let seconds = i64::try_from(seconds).unwrap_or(i64::MAX);
    Timestamp::from_second(seconds).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Gives back claims older than [`CLAIM_GRACE`] that no Service holds: what a server
/// that stopped between claiming and storing left behind.
async fn repair(shared: &Shared) {
    let services: Vec<Service> = shared.cache.typed_list("/registry/services/");
    let held: BTreeSet<String> = services.iter().flat_map(held_keys).collect();
    let now = now();
    for directory in [ADDRESSES, NODE_PORTS] {
        let (entries, _) = shared.cache.list(directory);
        for entry in entries {
            let Some(record) = entry.typed::<IPAddress>() else {
                continue;
            };
            let name = record.metadata.name.unwrap_or_default();
            let key = format!("{directory}{name}");
            let created = record.metadata.creation_timestamp.map_or(now, |t| t.0);
            let old = now.duration_since(created).unsigned_abs() > CLAIM_GRACE;
            if old && !held.contains(&key) {
                tracing::info!(key, "giving back an address no Service holds");
                release(shared, &[key]).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_port_ranges_read_as_kube_apiserver_reads_them() {
        let range: NodePortRange = "30000-32767".parse().expect("a range");
        assert!(range.contains(30000) && range.contains(32767) && !range.contains(29999));
        assert_eq!(range.to_string(), "30000-32767");
        assert!("32767-30000".parse::<NodePortRange>().is_err());
        assert!("30000".parse::<NodePortRange>().is_err());
    }

    #[test]
    fn the_range_s_first_address_is_the_kubernetes_service_s() {
        let ranges = ServiceRanges::default();
        assert_eq!(ranges.first_address(), Ipv4Addr::new(10, 43, 0, 1));
        assert_eq!(ranges.usable(), 1..=65534);
        assert_eq!(ranges.static_band(), 256);
        let small = ServiceRanges {
            cluster_ips: "10.0.0.0/28".parse().expect("a CIDR"),
            ..ServiceRanges::default()
        };
        assert_eq!(small.usable(), 1..=14);
        assert_eq!(small.static_band(), 16);
    }
}
