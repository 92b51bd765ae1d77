//! The node's part of Services: their rules, as kube-proxy keeps them (berth-net's
//! nftables table), and their names, as the cluster DNS serves them — both from one
//! watch of the cluster's Services and EndpointSlices; any change wakes one sync, which
//! writes only the Service ports whose routes changed and replaces the names.
//!
//! A port's endpoints are the ready ones of its slices; while none is ready, those still
//! serving as they terminate (kube-proxy's fallback, so a rolling update's last old pod
//! keeps answering until its successor is ready).
//!
//! The cluster DNS address (kube-dns's cluster IP) is served by every node itself, as
//! NodeLocal DNSCache serves its own: the address is made local to the node and the DNS
//! server listens on it, so a pod's question never leaves its node.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;

use berth_net::{
    ClusterZone, DnsServer, Endpoint, NameTarget, Protocol, ServiceNames, ServiceProxy,
    ServiceRoute,
};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use tokio::sync::Notify;

use crate::ClusterDns;

/// The node's nftables table of Service rules (kube-proxy's is `kube-proxy`).
pub const PROXY_TABLE: &str = "berth-proxy";

/// The label that ties an EndpointSlice to its Service.
const SERVICE_NAME: &str = "kubernetes.io/service-name";

/// Keeps the node's Service rules and the cluster's names to the cluster's Services
/// until the process ends. `pod_range` is the node's: traffic from elsewhere is
/// masqueraded; connections made by the pods under `pods_cgroup`, and on the node, are
/// balanced when they connect.
pub async fn run(
    client: Client,
    (node, pod_range, pods_cgroup): (String, berth_net::Ipv4Net, String),
    (dns, ingress): (ClusterDns, Option<crate::IngressPorts>),
) {
    let zone = ClusterZone::new(&dns.domain);
    let _server = serve_names(&dns, &zone).await;
    let installed = tokio::task::spawn_blocking(move || {
        let mut proxy = ServiceProxy::install(PROXY_TABLE, pod_range)?;
        if let Err(error) = proxy.balance_connects(&pods_cgroup) {
            tracing::warn!(%error, "connections to Services are balanced by the nftables rules alone");
        }
        Ok::<_, berth_net::Error>(proxy)
    })
    .await;
    let mut proxy = match installed {
        Ok(Ok(proxy)) => Some(proxy),
        Ok(Err(error)) => {
            tracing::error!(%error, "could not install the Service rules: Services are not routed on this node");
            None
        }
        Err(_) => return,
    };
    let changed = Arc::new(Notify::new());
    let services = crate::reflected::<Service>(&client, &changed);
    let slices = crate::reflected::<EndpointSlice>(&client, &changed);
    if let Some(ports) = ingress {
        // Ingresses are read on each request; their changes only start and stop the
        // watches of the TLS Secrets they name.
        let served = Arc::new(Notify::new());
        let routes = crate::ingress::Routes::new(
            crate::reflected(&client, &served),
            crate::reflected(&client, &served),
            services.clone(),
        );
        tokio::spawn(crate::ingress::serve(client.clone(), routes, ports, served));
    }
    services.wait_until_ready().await.ok();
    slices.wait_until_ready().await.ok();
    loop {
        let (services, slices) = (services.state(), slices.state());
        zone.set(&names(&services, &slices));
        if let Some(mut rules) = proxy.take() {
            let wanted = routes(&services, &slices, (&node, dns.address));
            let synced = tokio::task::spawn_blocking(move || {
                let outcome = rules.sync(wanted);
                (rules, outcome)
            })
            .await;
            let Ok((rules, outcome)) = synced else {
                return;
            };
            proxy = Some(rules);
            match outcome {
                Ok(0) => {}
                Ok(count) => tracing::debug!(count, "Service ports re-routed"),
                Err(error) => tracing::warn!(%error, "could not sync the Service rules"),
            }
        }
        changed.notified().await;
    }
}

/// The DNS server of `zone` on the cluster DNS address, made local to the node; None
/// (and an error logged) when it cannot listen there.
async fn serve_names(dns: &ClusterDns, zone: &ClusterZone) -> Option<DnsServer> {
    let (address, answers) = (dns.address, Arc::new(zone.clone()));
    let started = tokio::task::spawn_blocking(move || {
        berth_net::add_local_address(address, "lo")?;
        DnsServer::start(address, answers, berth_net::host_resolvers())
    })
    .await;
    match started {
        Ok(Ok(server)) => Some(server),
        Ok(Err(error)) => {
            tracing::error!(%error, %address, "could not serve the cluster DNS on this node");
            None
        }
        Err(_) => None,
    }
}

/// The EndpointSlices of each Service, by (namespace, name).
fn by_service(slices: &[Arc<EndpointSlice>]) -> HashMap<(&str, &str), Vec<&EndpointSlice>> {
    let mut by_service: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
    for slice in slices {
        let namespace = slice.metadata.namespace.as_deref().unwrap_or_default();
        let labels = slice.metadata.labels.as_ref();
        if let Some(service) = labels.and_then(|l| l.get(SERVICE_NAME)) {
            by_service
                .entry((namespace, service.as_str()))
                .or_default()
                .push(slice);
        }
    }
    by_service
}

/// The names of every Service: its cluster IP, a headless one's ready endpoints, an
/// ExternalName one's alias, and its named ports.
fn names(services: &[Arc<Service>], slices: &[Arc<EndpointSlice>]) -> Vec<ServiceNames> {
    let by_service = by_service(slices);
    let mut names = Vec::new();
    for service in services {
        let namespace = service.metadata.namespace.clone().unwrap_or_default();
        let name = service.metadata.name.clone().unwrap_or_default();
        let Some(spec) = &service.spec else { continue };
        let cluster_ip = spec.cluster_ip.as_deref().unwrap_or_default();
        let target = if let Some(alias) = spec
            .external_name
            .clone()
            .filter(|_| spec.type_.as_deref() == Some("ExternalName"))
        {
            NameTarget::Alias(alias)
        } else if cluster_ip == "None" {
            let slices = by_service.get(&(namespace.as_str(), name.as_str()));
            NameTarget::Endpoints(ready_addresses(
                slices.map(Vec::as_slice).unwrap_or_default(),
            ))
        } else if let Ok(ip) = cluster_ip.parse() {
            NameTarget::ClusterIp(ip)
        } else {
            continue;
        };
        let ports = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|port| {
                let named = port.name.clone().filter(|n| !n.is_empty())?;
                let number = u16::try_from(port.port).ok()?;
                Some((named, protocol(port)?.as_str().to_string(), number))
            })
            .collect();
        names.push(ServiceNames {
            namespace,
            name,
            target,
            ports,
        });
    }
    names
}

/// The addresses of the ready endpoints of `slices`, each once.
fn ready_addresses(slices: &[&EndpointSlice]) -> Vec<Ipv4Addr> {
    let ready = slices
        .iter()
        .flat_map(|slice| &slice.endpoints)
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
        .filter_map(|e| e.addresses.first()?.parse().ok());
    ready.collect::<BTreeSet<Ipv4Addr>>().into_iter().collect()
}

/// The routes of every Service port that has a cluster IP, keyed
/// `namespace/name/protocol/port` — but the cluster DNS's, which each node serves itself.
fn routes(
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
    (node, served_here): (&str, Ipv4Addr),
) -> BTreeMap<String, ServiceRoute> {
    let by_service = by_service(slices);
    let mut routes = BTreeMap::new();
    for service in services {
        let namespace = service.metadata.namespace.as_deref().unwrap_or_default();
        let name = service.metadata.name.as_deref().unwrap_or_default();
        let Some(spec) = &service.spec else { continue };
        let Some(cluster_ip) = spec
            .cluster_ip
            .as_deref()
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        else {
            continue;
        };
        if cluster_ip == served_here {
            continue;
        }
        let slices = by_service
            .get(&(namespace, name))
            .map(Vec::as_slice)
            .unwrap_or_default();
        for port in spec.ports.iter().flatten() {
            let Some(protocol) = protocol(port) else {
                continue;
            };
            let Ok(number) = u16::try_from(port.port) else {
                continue;
            };
            let key = format!("{namespace}/{name}/{}/{number}", protocol.as_str());
            let route = ServiceRoute {
                cluster_ip,
                port: number,
                protocol,
                node_ports: node_ports(spec, port),
                endpoints: endpoints(slices, port, node),
                affinity: affinity(spec),
                internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
                external_local: spec.external_traffic_policy.as_deref() == Some("Local"),
            };
            routes.insert(key, route);
        }
    }
    routes
}

/// The ports `port` answers on the node's own addresses: its node port, and its own
/// port when the Service is a LoadBalancer that ServiceLB serves (no other class).
fn node_ports(spec: &ServiceSpec, port: &ServicePort) -> Vec<u16> {
    let node_port = port.node_port.filter(|p| *p != 0);
    let balanced =
        spec.type_.as_deref() == Some("LoadBalancer") && spec.load_balancer_class.is_none();
    let own = balanced.then_some(port.port);
    node_port
        .into_iter()
        .chain(own)
        .filter_map(|p| u16::try_from(p).ok())
        .collect()
}

/// How long a client keeps its endpoint under `sessionAffinity: ClientIP` (its timeout,
/// three hours unless set), in seconds.
fn affinity(spec: &ServiceSpec) -> Option<u32> {
    if spec.session_affinity.as_deref() != Some("ClientIP") {
        return None;
    }
    let timeout = spec
        .session_affinity_config
        .as_ref()
        .and_then(|c| c.client_ip.as_ref())
        .and_then(|c| c.timeout_seconds);
    Some(
        timeout
            .and_then(|t| u32::try_from(t).ok())
            .unwrap_or(10_800),
    )
}

fn protocol(port: &ServicePort) -> Option<Protocol> {
    match port.protocol.as_deref().unwrap_or("TCP") {
        "TCP" => Some(Protocol::Tcp),
        "UDP" => Some(Protocol::Udp),
        _ => None,
    }
}

/// The endpoints of Service port `port` in `slices`: the ready ones, or while none is,
/// those serving as they terminate.
fn endpoints(slices: &[&EndpointSlice], port: &ServicePort, node: &str) -> Vec<Endpoint> {
    let mut ready = BTreeSet::new();
    let mut terminating = BTreeSet::new();
    for slice in slices {
        let number = slice.ports.iter().flatten().find_map(|p| {
            let same_name =
                p.name.as_deref().unwrap_or_default() == port.name.as_deref().unwrap_or_default();
            let same_protocol =
                p.protocol.as_deref().unwrap_or("TCP") == port.protocol.as_deref().unwrap_or("TCP");
            (same_name && same_protocol)
                .then_some(p.port?)
                .and_then(|n| u16::try_from(n).ok())
        });
        let Some(number) = number else { continue };
        for endpoint in &slice.endpoints {
            let Some(ip) = endpoint
                .addresses
                .first()
                .and_then(|a| a.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            let conditions = endpoint.conditions.clone().unwrap_or_default();
            let local = endpoint.node_name.as_deref() == Some(node);
            let found = Endpoint {
                ip,
                port: number,
                local,
            };
            if conditions.ready != Some(false) {
                ready.insert(found);
            } else if conditions.serving == Some(true) && conditions.terminating == Some(true) {
                terminating.insert(found);
            }
        }
    }
    let chosen = if ready.is_empty() { terminating } else { ready };
    chosen.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DNS: Ipv4Addr = Ipv4Addr::new(10, 43, 0, 10);

    fn service(json: serde_json::Value) -> Arc<Service> {
        Arc::new(serde_json::from_value(json).unwrap())
    }

    fn slice(endpoints: serde_json::Value) -> Arc<EndpointSlice> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "web-abc", "namespace": "shop",
                             "labels": {SERVICE_NAME: "web"}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": endpoints,
            }))
            .unwrap(),
        )
    }

    fn web() -> Arc<Service> {
        service(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"clusterIP": "10.43.0.20", "type": "NodePort",
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080,
                                "protocol": "TCP", "nodePort": 30080}]},
        }))
    }

    #[test]
    fn ready_endpoints_are_routed_and_terminating_ones_only_while_none_is_ready() {
        let both = slice(serde_json::json!([
            {"addresses": ["10.42.0.5"], "conditions": {"ready": true}, "nodeName": "n1"},
            {"addresses": ["10.42.0.6"], "conditions": {"ready": false, "serving": true, "terminating": true}},
        ]));
        let routes = routes(&[web()], &[both], ("n1", DNS));
        let route = &routes["shop/web/tcp/80"];
        assert_eq!(route.cluster_ip, Ipv4Addr::new(10, 43, 0, 20));
        assert_eq!(route.node_ports, [30080]);
        let addresses: Vec<Ipv4Addr> = route.endpoints.iter().map(|e| e.ip).collect();
        assert_eq!(addresses, [Ipv4Addr::new(10, 42, 0, 5)]);
        assert_eq!(route.endpoints[0].port, 8080);
        assert!(route.endpoints[0].local);
        assert_eq!((route.affinity, route.internal_local), (None, false));

        let only_terminating = slice(serde_json::json!([
            {"addresses": ["10.42.0.6"], "conditions": {"ready": false, "serving": true, "terminating": true}},
            {"addresses": ["10.42.0.7"], "conditions": {"ready": false}},
        ]));
        let routes = super::routes(&[web()], &[only_terminating], ("n1", DNS));
        let addresses: Vec<Ipv4Addr> = routes["shop/web/tcp/80"]
            .endpoints
            .iter()
            .map(|e| e.ip)
            .collect();
        assert_eq!(addresses, [Ipv4Addr::new(10, 42, 0, 6)]);
    }

    #[test]
    fn affinity_and_traffic_policies_come_from_the_spec() {
        let sticky = service(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"clusterIP": "10.43.0.21", "sessionAffinity": "ClientIP",
                     "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
                     "internalTrafficPolicy": "Local", "externalTrafficPolicy": "Local",
                     "ports": [{"port": 80}]},
        }));
        let routes = routes(&[sticky], &[], ("n1", DNS));
        let route = &routes["shop/web/tcp/80"];
        assert_eq!(route.affinity, Some(60));
        assert!(route.internal_local && route.external_local);
    }

    #[test]
    fn headless_and_external_name_services_are_not_routed() {
        let headless = service(serde_json::json!({
            "metadata": {"name": "db", "namespace": "shop"},
            "spec": {"clusterIP": "None", "ports": [{"port": 5432}]},
        }));
        let external = service(serde_json::json!({
            "metadata": {"name": "ext", "namespace": "shop"},
            "spec": {"type": "ExternalName", "externalName": "example.com"},
        }));
        let (services, slices) = ([headless, external], [slice(serde_json::json!([]))]);
        assert!(routes(&services, &slices, ("n1", DNS)).is_empty());
        let names = names(&services, &slices);
        assert_eq!(names[0].target, NameTarget::Endpoints(vec![]));
        assert_eq!(names[1].target, NameTarget::Alias("example.com".into()));
    }

    #[test]
    fn services_are_named_with_their_named_ports_and_the_dns_is_not_routed() {
        let dns = service(serde_json::json!({
            "metadata": {"name": "kube-dns", "namespace": "kube-system"},
            "spec": {"clusterIP": "10.43.0.10",
                     "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]},
        }));
        let services = [web(), dns];
        assert_eq!(
            routes(&services, &[], ("n1", DNS))
                .keys()
                .collect::<Vec<_>>(),
            ["shop/web/tcp/80"]
        );
        let names = names(&services, &[]);
        assert_eq!(
            names[0].target,
            NameTarget::ClusterIp(Ipv4Addr::new(10, 43, 0, 20))
        );
        assert_eq!(
            names[0].ports,
            [("http".to_string(), "tcp".to_string(), 80)]
        );
        assert_eq!(names[1].ports, [("dns".to_string(), "udp".to_string(), 53)]);
    }
}
