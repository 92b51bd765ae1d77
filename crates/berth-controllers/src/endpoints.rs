//! The Endpoints and EndpointSlice controllers: for every Service with a selector, the
//! addresses of the pods it selects and the ports they serve it on — what Service
//! proxies and cluster DNS route to. A pod is a ready address once its Ready condition
//! is True, a not-ready one before; a terminating pod leaves the Endpoints and stays in
//! the slice marked terminating, as in Kubernetes.
//!
//! Endpoints are named after their Service and carry the
//! `endpoints.kubernetes.io/managed-by` label, so the controller removes only its own
//! when a Service goes; slices are owned by their Service and go with it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use berth_runner::{Action, Cache, Controller, Informers};
use k8s_openapi::api::core::v1::{Endpoints, Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::cached_pod::CachedPod;
use crate::labels::has_all;
use crate::lock;
use crate::pods::ready;

/// The label marking Endpoints this controller keeps.
const ENDPOINTS_MANAGER: (&str, &str) =
    ("endpoints.kubernetes.io/managed-by", "endpoint-controller");

/// The label marking EndpointSlices this controller keeps.
const SLICE_MANAGER: (&str, &str) = (
    "endpointslice.kubernetes.io/managed-by",
    "endpointslice-controller.k8s.io",
);

/// The label naming a slice's Service.
const SERVICE_NAME: &str = "kubernetes.io/service-name";

/// The field manager of the controller's server-side applies.
const MANAGER: &str = "endpoint-controller";

/// Runs both controllers until the client's watches end: called for each Service, for
/// the Services that select a pod (as it was and as it is) when it changes, and for a
/// Service when its Endpoints change or it is gone (its Endpoints are then removed).
pub async fn run(client: Client, informers: Informers) {
    let pods = informers.cache::<CachedPod>().await;
    let endpoints = informers.cache::<Endpoints>().await;
    let controller = Controller::<Service>::new(&informers).await;
    let services = controller.cache().clone();
    let controller = controller
        .watches::<CachedPod>(move |pod| selecting(&services, pod))
        .await
        .watches::<Endpoints>(|object| vec![same_name::<Service>(object)])
        .await;
    let written: Mutex<HashMap<(String, String), Value>> = Mutex::default();
    let (client, caches, written) = (&client, (&pods, &endpoints), &written);
    controller
        .run_or_gone(
            |service| async move {
                reconcile(client, &service, caches, written).await?;
                Ok(Action::AwaitChange)
            },
            |gone| async move {
                let key = (
                    gone.namespace.clone().unwrap_or_default(),
                    gone.name.clone(),
                );
                lock(written).remove(&key);
                remove_orphan(client, caches.1, &key).await?;
                Ok(Action::AwaitChange)
            },
        )
        .await;
}

/// The Services in the pod's namespace whose selector selects it.
fn selecting(services: &Cache<Service>, pod: &CachedPod) -> Vec<ObjectRef<Service>> {
    let namespace = pod.namespace();
    let selects = |service: &Service| {
        let selector = service.spec.as_ref().and_then(|s| s.selector.as_ref());
        selector.is_some_and(|s| !s.is_empty() && has_all(s, pod.labels()))
    };
    services.keys_in(namespace.as_deref(), selects)
}

/// The Service named as `object` (its Endpoints) is.
fn same_name<K: kube::Resource<DynamicType = ()>>(object: &Endpoints) -> ObjectRef<K> {
    ObjectRef::new(&object.name_any()).within(&object.namespace().unwrap_or_default())
}

fn key<K: kube::Resource>(object: &K) -> (String, String) {
    (object.namespace().unwrap_or_default(), object.name_any())
}

/// One selected pod as an endpoint: its address and the ports it serves on.
struct Backend<'a> {
    pod: &'a CachedPod,
    ip: String,
    ports: Vec<Value>,
    ready: bool,
    terminating: bool,
}

/// The pods the Service selects that have an address and serve every port it names.
fn backends<'a>(service: &Service, pods: &'a [std::sync::Arc<CachedPod>]) -> Vec<Backend<'a>> {
    let Some(spec) = service.spec.as_ref() else {
        return Vec::new();
    };
    let Some(selector) = spec.selector.as_ref().filter(|s| !s.is_empty()) else {
        return Vec::new();
    };
    let namespace = service.namespace();
    let ports = spec.ports.as_deref().unwrap_or_default();
    let mut found: Vec<Backend> = pods
        .iter()
        .filter(|p| p.namespace() == namespace && has_all(selector, p.labels()))
        .filter_map(|pod| {
            let status = pod.status.as_ref()?;
            let ip = status
                .pod_ip
                .as_deref()
                .filter(|ip| !ip.is_empty())?
                .to_string();
            if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
                return None;
            }
            let ports = ports
                .iter()
                .map(|port| served_on(pod, port))
                .collect::<Option<Vec<_>>>()?;
            Some(Backend {
                pod: pod.as_ref(),
                ip,
                ports,
                ready: ready(pod),
                terminating: pod.metadata.deletion_timestamp.is_some(),
            })
        })
        .collect();
    found.sort_by(|a, b| a.ip.cmp(&b.ip));
    found
}

/// The Service port as the pod serves it: the target port, named ports looked up in
/// the pod's containers; None when the pod has no port of that name.
fn served_on(pod: &CachedPod, port: &ServicePort) -> Option<Value> {
    let number = match port.target_port.as_ref() {
        None => port.port,
        Some(IntOrString::Int(number)) => *number,
        Some(IntOrString::String(name)) => match name.parse() {
            Ok(number) => number,
            Err(_) => {
                pod.spec
                    .iter()
                    .flat_map(|s| &s.containers)
                    .flat_map(|c| c.ports.iter().flatten())
                    .find(|p| p.name.as_deref() == Some(name))?
                    .container_port
            }
        },
    };
    Some(json!({
        "name": port.name.clone().unwrap_or_default(),
        "port": number,
        "protocol": port.protocol.clone().unwrap_or_else(|| "TCP".into()),
    }))
}

/// Writes the Service's Endpoints and slice when they differ from what was last written
/// (or the Endpoints were removed by someone else).
async fn reconcile(
    client: &Client,
    service: &Service,
    (pods, existing): (&Cache<CachedPod>, &Cache<Endpoints>),
    written: &Mutex<HashMap<(String, String), Value>>,
) -> Result<(), kube::Error> {
    let has_selector = service
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|s| !s.is_empty());
    if !has_selector {
        return Ok(());
    }
    let here = pods.in_namespace(service.namespace().as_deref());
    let found = backends(service, &here);
    let wanted =
        json!({"endpoints": endpoints_of(service, &found), "slice": slice_of(service, &found)});
    let key = key(service);
    let present = existing
        .get(&ObjectRef::new(&key.1).within(&key.0))
        .is_some();
    if present && lock(written).get(&key) == Some(&wanted) {
        return Ok(());
    }
    let namespace = service.namespace().unwrap_or_default();
    let params = PatchParams::apply(MANAGER).force();
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), &namespace);
    endpoints
        .patch(
            &service.name_any(),
            &params,
            &Patch::Apply(&wanted["endpoints"]),
        )
        .await?;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &namespace);
    slices
        .patch(
            &slice_name(service),
            &params,
            &Patch::Apply(&wanted["slice"]),
        )
        .await?;
    lock(written).insert(key, wanted);
    Ok(())
}

/// The Service's slice: its name and five characters of its uid, as the random suffix
/// of upstream's slice names — stable here, so the slice is found again without a list.
fn slice_name(service: &Service) -> String {
    let uid = service.uid().unwrap_or_default();
    let digits: String = uid.chars().filter(char::is_ascii_alphanumeric).collect();
    let suffix = digits.chars().take(5).collect::<String>().to_lowercase();
    format!("{}-{suffix}", service.name_any())
}

/// One Endpoints subset being gathered: ready addresses, not-ready ones, their ports.
#[derive(Default)]
struct Subset {
    ready: Vec<Value>,
    not_ready: Vec<Value>,
    ports: Vec<Value>,
}

/// Endpoints: pods grouped into subsets by the ports they serve on.
fn endpoints_of(service: &Service, found: &[Backend]) -> Value {
    let mut subsets: BTreeMap<String, Subset> = BTreeMap::new();
    for backend in found.iter().filter(|b| !b.terminating) {
        let ports = Value::Array(backend.ports.clone());
        let subset = subsets.entry(ports.to_string()).or_insert_with(|| Subset {
            ports: backend.ports.clone(),
            ..Subset::default()
        });
        let address = json!({
            "ip": backend.ip,
            "nodeName": backend.pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            "targetRef": target(backend.pod),
        });
        if backend.ready {
            subset.ready.push(address);
        } else {
            subset.not_ready.push(address);
        }
    }
    let subsets: Vec<Value> = subsets
        .into_values()
        .map(|gathered| {
            let mut subset = json!({"ports": gathered.ports});
            if !gathered.ready.is_empty() {
                subset["addresses"] = json!(gathered.ready);
            }
            if !gathered.not_ready.is_empty() {
                subset["notReadyAddresses"] = json!(gathered.not_ready);
            }
            subset
        })
        .collect();
    let mut labels = service.labels().clone();
    labels.insert(ENDPOINTS_MANAGER.0.into(), ENDPOINTS_MANAGER.1.into());
    json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": service.name_any(), "namespace": service.namespace(), "labels": labels},
        "subsets": subsets,
    })
}

/// The one IPv4 slice of the Service.
fn slice_of(service: &Service, found: &[Backend]) -> Value {
    let endpoints: Vec<Value> = found
        .iter()
        .map(|b| {
            json!({
                "addresses": [b.ip],
                "conditions": {
                    "ready": b.ready && !b.terminating,
                    "serving": b.ready,
                    "terminating": b.terminating,
                },
                "nodeName": b.pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                "targetRef": target(b.pod),
            })
        })
        .collect();
    let ports = found.first().map_or_else(Vec::new, |b| b.ports.clone());
    let mut labels = service.labels().clone();
    labels.insert(SERVICE_NAME.into(), service.name_any());
    labels.insert(SLICE_MANAGER.0.into(), SLICE_MANAGER.1.into());
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "name": slice_name(service),
            "namespace": service.namespace(),
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "Service", "name": service.name_any(),
                "uid": service.uid(), "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    })
}

fn target(pod: &CachedPod) -> Value {
    json!({"kind": "Pod", "name": pod.name_any(), "namespace": pod.namespace(), "uid": pod.uid()})
}

/// Deletes the Endpoints this controller made for a Service that is gone.
async fn remove_orphan(
    client: &Client,
    endpoints: &Cache<Endpoints>,
    (namespace, name): &(String, String),
) -> Result<(), kube::Error> {
    let key = ObjectRef::new(name).within(namespace);
    let Some(object) = endpoints.get(&key) else {
        return Ok(());
    };
    let ours =
        object.labels().get(ENDPOINTS_MANAGER.0).map(String::as_str) == Some(ENDPOINTS_MANAGER.1);
    if !ours {
        return Ok(());
    }
    let api: Api<Endpoints> = Api::namespaced(client.clone(), namespace);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error),
    }
}
