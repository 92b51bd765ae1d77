//! The built-in ServiceLB, as k3s's klipper-lb: a LoadBalancer Service (one that names
//! no other `loadBalancerClass`) is answered on its ports at every node's address — the
//! nodes' Service rules do that — and this controller writes those addresses into its
//! `status.loadBalancer.ingress`, so `kubectl get svc` shows its EXTERNAL-IP. The same
//! for the Ingresses every node's built-in controller serves (class `berth`), so
//! `kubectl get ingress` shows their ADDRESS; and when such an Ingress names a TLS
//! Secret that is missing or lacks its certificate or key, a Warning event says so —
//! once, while it stays so — since the nodes then serve those hosts without TLS.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{LoadBalancerIngress, Node, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use berth_runner::Informers;

use crate::watched::Watched;

/// The source its events name.
const COMPONENT: &str = "berth-ingress";

/// How soon a failed write is tried again.
const RETRY: Duration = Duration::from_secs(2);

/// How often everything is looked over when nothing changed.
const RECHECK: Duration = Duration::from_secs(60);

/// Runs until the client's watches end.
pub async fn run(client: Client, informers: Informers) {
    let mut watched = Watched::new(&informers);
    let services = watched.cache::<Service>().await;
    let nodes = watched.cache::<Node>().await;
    let ingresses = watched.cache::<Ingress>().await;
    let classes = watched.cache::<IngressClass>().await;
    let secrets = watched.cache::<Secret>().await;
    let mut reported = BTreeSet::new();
    loop {
        let wanted = ingress(&nodes.state());
        let mut retry = false;
        let current_classes = classes.state();
        let served: Vec<_> = ingresses
            .state()
            .into_iter()
            .filter(|i| berth_labels::ingress_has_class(i, "berth", &current_classes))
            .collect();
        report_missing_secrets(&client, &served, &secrets, &mut reported).await;
        for served in served {
            let current = served
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|l| l.ingress.clone())
                .unwrap_or_default();
            let addresses: Vec<Option<String>> = wanted.iter().map(|w| w.ip.clone()).collect();
            if current.iter().map(|c| c.ip.clone()).collect::<Vec<_>>() != addresses {
                let entries = json!(
                    addresses
                        .iter()
                        .map(|ip| json!({"ip": ip}))
                        .collect::<Vec<_>>()
                );
                retry |= !write_ingress(&client, served.as_ref(), entries).await;
            }
        }
        for service in services.state().iter().filter(|s| is_ours(s)) {
            let current = service
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|l| l.ingress.clone())
                .unwrap_or_default();
            if current != wanted {
                retry |= !write_ingress(&client, service.as_ref(), json!(wanted)).await;
            }
        }
        let wait = if retry { RETRY } else { RECHECK };
        if !watched.next_change(wait).await {
            return;
        }
    }
}

/// An unusable TLS Secret an Ingress names: the Ingress's uid, the Secret's name.
type Unusable = (String, String);

/// Records a Warning event on each served Ingress naming a TLS Secret that is missing
/// or lacks `tls.crt` or `tls.key`, unless it was already `reported`; forgets those
/// that became usable (or are no longer named), so a relapse is reported again.
async fn report_missing_secrets(
    client: &Client,
    served: &[std::sync::Arc<Ingress>],
    secrets: &berth_runner::Cache<Secret>,
    reported: &mut BTreeSet<Unusable>,
) {
    let mut unusable = BTreeSet::new();
    for ingress in served {
        let namespace = ingress.namespace().unwrap_or_default();
        let entries = ingress.spec.iter().flat_map(|s| s.tls.iter().flatten());
        for entry in entries {
            let Some(name) = entry.secret_name.as_deref() else {
                continue;
            };
            let secret =
                secrets.get(&kube::runtime::reflector::ObjectRef::new(name).within(&namespace));
            let Some(problem) = tls_problem(secret.as_deref()) else {
                continue;
            };
            let key = (ingress.uid().unwrap_or_default(), name.to_string());
            if !reported.contains(&key) {
                let hosts = entry.hosts.as_deref().unwrap_or_default().join(", ");
                let message = format!(
                    "TLS Secret {namespace}/{name} {problem}: hosts [{hosts}] are served without TLS"
                );
                let event = ("Warning", "TLSSecretUnusable", message.as_str());
                berth_events::record(client, ingress.as_ref(), event, COMPONENT).await;
            }
            unusable.insert(key);
        }
    }
    *reported = unusable;
}

/// Why a TLS Secret cannot serve: missing, or without its certificate or key.
fn tls_problem(secret: Option<&Secret>) -> Option<&'static str> {
    let Some(secret) = secret else {
        return Some("not found");
    };
    let has = |key: &str| {
        secret
            .data
            .as_ref()
            .and_then(|data| data.get(key))
            .is_some_and(|value| !value.0.is_empty())
    };
    if !has("tls.crt") {
        Some("has no tls.crt")
    } else if !has("tls.key") {
        Some("has no tls.key")
    } else {
        None
    }
}

/// Whether ServiceLB serves `service`: a LoadBalancer with no other class.
fn is_ours(service: &Service) -> bool {
    let spec = service.spec.as_ref();
    spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
        && spec
            .and_then(|s| s.load_balancer_class.as_deref())
            .is_none()
}

/// The ingress of every ServiceLB Service: the InternalIP of each Ready node, sorted.
fn ingress(nodes: &[std::sync::Arc<Node>]) -> Vec<LoadBalancerIngress> {
    let mut addresses: Vec<String> = nodes
        .iter()
        .filter(|node| crate::nodes::is_ready(node))
        .filter_map(|node| {
            let status = node.status.as_ref()?;
            let addresses = status.addresses.as_ref()?;
            let internal = addresses.iter().find(|a| a.type_ == "InternalIP")?;
            Some(internal.address.clone())
        })
        .collect();
    addresses.sort();
    addresses.dedup();
    addresses
        .into_iter()
        .map(|ip| LoadBalancerIngress {
            ip: Some(ip),
            ip_mode: Some("VIP".into()),
            ..LoadBalancerIngress::default()
        })
        .collect()
}

/// Writes `entries` as the status.loadBalancer.ingress of `object` (a Service or an
/// Ingress); false when it could not.
async fn write_ingress<K>(client: &Client, object: &K, entries: serde_json::Value) -> bool
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    let namespace = object.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), &namespace);
    let patch = json!({"status": {"loadBalancer": {"ingress": entries}}});
    let name = object.name_any();
    match api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => true,
        Err(error) => {
            let kind = K::kind(&());
            tracing::warn!(%error, %kind, %name, %namespace, "could not write the load balancer's addresses");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ip: &str, ready: &str) -> std::sync::Arc<Node> {
        std::sync::Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "status": {"addresses": [{"type": "Hostname", "address": name},
                                         {"type": "InternalIP", "address": ip}],
                           "conditions": [{"type": "Ready", "status": ready}]},
            }))
            .unwrap(),
        )
    }

    #[test]
    fn ready_nodes_internal_addresses_are_the_ingress() {
        let nodes = [
            node("b", "10.0.0.2", "True"),
            node("a", "10.0.0.1", "True"),
            node("c", "10.0.0.3", "Unknown"),
        ];
        let ips: Vec<String> = ingress(&nodes).into_iter().filter_map(|i| i.ip).collect();
        assert_eq!(ips, ["10.0.0.1", "10.0.0.2"]);
    }

    #[test]
    fn only_classless_load_balancers_are_served() {
        let service = |spec: serde_json::Value| -> Service {
            serde_json::from_value(json!({"metadata": {"name": "s"}, "spec": spec})).unwrap()
        };
        assert!(is_ours(&service(json!({"type": "LoadBalancer"}))));
        assert!(!is_ours(&service(
            json!({"type": "LoadBalancer", "loadBalancerClass": "example.com/lb"})
        )));
        assert!(!is_ours(&service(json!({"type": "NodePort"}))));
    }
}
