//! The built-in ServiceLB, as k3s's klipper-lb: a LoadBalancer Service (one that names
//! no other `loadBalancerClass`) is answered on its ports at every node's address — the
//! nodes' Service rules do that — and this controller writes those addresses into its
//! `status.loadBalancer.ingress`, so `kubectl get svc` shows its EXTERNAL-IP. The same
//! for the Ingresses every node's built-in controller serves (class `berth`), so
//! `kubectl get ingress` shows their ADDRESS; and when such an Ingress names a TLS
//! Secret that is missing or lacks its certificate or key, a Warning event says so —
//! once, while it stays so — since the nodes then serve those hosts without TLS.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{LoadBalancerIngress, Node, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use berth_runner::{Action, Cache, Controller, Informers};
use kube::runtime::reflector::ObjectRef;

use crate::lock;

/// The source its events name.
const COMPONENT: &str = "berth-ingress";

/// Runs until the client's watches end: a controller of LoadBalancer Services and one
/// of Ingresses, each called for its objects when they change and for all of them when
/// a node does (the addresses are the Ready nodes'); Ingresses also when classes change
/// and when a Secret of their namespace does.
pub async fn run(client: Client, informers: Informers) {
    let nodes = informers.cache::<Node>().await;
    tokio::join!(
        services(&client, &informers, &nodes),
        ingresses(&client, &informers, &nodes),
    );
}

async fn services(client: &Client, informers: &Informers, nodes: &Cache<Node>) {
    let controller = Controller::<Service>::new(informers).await;
    let services = controller.cache().clone();
    let controller = controller
        .watches::<Node>(move |_| services.keys(is_ours))
        .await;
    controller
        .run(|service| async move {
            let wanted = ingress(&nodes.state());
            let current = service
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|l| l.ingress.clone())
                .unwrap_or_default();
            if is_ours(&service) && current != wanted {
                write_ingress(client, service.as_ref(), json!(wanted)).await?;
            }
            Ok(Action::AwaitChange)
        })
        .await;
}

async fn ingresses(client: &Client, informers: &Informers, nodes: &Cache<Node>) {
    let controller = Controller::<Ingress>::new(informers).await;
    let all = controller.cache().clone();
    let controller = controller
        .watches::<Node>({
            let all = all.clone();
            move |_| all.keys(|_| true)
        })
        .await
        .watches::<IngressClass>({
            let all = all.clone();
            move |_| all.keys(|_| true)
        })
        .await
        .watches::<Secret>(all.same_namespace())
        .await;
    let classes = informers.cache::<IngressClass>().await;
    let secrets = informers.cache::<Secret>().await;
    // The unusable Secrets each Ingress was told of, so it is told once while they stay so.
    let reported: Mutex<HashMap<ObjectRef<Ingress>, BTreeSet<String>>> = Mutex::default();
    let (classes, secrets, reported) = (&classes, &secrets, &reported);
    controller
        .run_or_gone(
            |served| async move {
                if !berth_labels::ingress_has_class(&served, "berth", &classes.state()) {
                    return Ok(Action::AwaitChange);
                }
                let key = ObjectRef::from_obj(served.as_ref());
                let told = lock(reported).remove(&key).unwrap_or_default();
                let told = report_unusable_secrets(client, &served, secrets, told).await;
                lock(reported).insert(key, told);
                let current = served
                    .status
                    .as_ref()
                    .and_then(|s| s.load_balancer.as_ref())
                    .and_then(|l| l.ingress.clone())
                    .unwrap_or_default();
                let addresses: Vec<Option<String>> =
                    ingress(&nodes.state()).into_iter().map(|w| w.ip).collect();
                if current.iter().map(|c| c.ip.clone()).collect::<Vec<_>>() != addresses {
                    let entries: Vec<_> = addresses.iter().map(|ip| json!({"ip": ip})).collect();
                    write_ingress(client, served.as_ref(), json!(entries)).await?;
                }
                Ok(Action::AwaitChange)
            },
            |gone| async move {
                lock(reported).remove(&gone);
                Ok(Action::AwaitChange)
            },
        )
        .await;
}

/// Records a Warning event on the Ingress for each TLS Secret it names that is missing
/// or lacks `tls.crt` or `tls.key`, unless it was already `told`; returns the Secrets
/// unusable now, so one that became usable and relapses is reported again.
async fn report_unusable_secrets(
    client: &Client,
    ingress: &Ingress,
    secrets: &Cache<Secret>,
    told: BTreeSet<String>,
) -> BTreeSet<String> {
    let mut unusable = BTreeSet::new();
    let namespace = ingress.namespace().unwrap_or_default();
    let entries = ingress.spec.iter().flat_map(|s| s.tls.iter().flatten());
    for entry in entries {
        let Some(name) = entry.secret_name.as_deref() else {
            continue;
        };
        let secret = secrets.get(&ObjectRef::new(name).within(&namespace));
        let Some(problem) = tls_problem(secret.as_deref()) else {
            continue;
        };
        if !told.contains(name) {
            let hosts = entry.hosts.as_deref().unwrap_or_default().join(", ");
            let message = format!(
                "TLS Secret {namespace}/{name} {problem}: hosts [{hosts}] are served without TLS"
            );
            let event = ("Warning", "TLSSecretUnusable", message.as_str());
            berth_events::record(client, ingress, event, COMPONENT).await;
        }
        unusable.insert(name.to_string());
    }
    unusable
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
/// Ingress).
async fn write_ingress<K>(
    client: &Client,
    object: &K,
    entries: serde_json::Value,
) -> Result<(), kube::Error>
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
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(drop)
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
