//! ResourceQuota accounting as Kubernetes' quota evaluators do it: which resources a
//! quota can limit, what one object uses of each, and how usage is written back. The
//! API server's admission charges a new object against its namespace's quotas and the
//! controller manager's quota controller totals what exists; both count with this crate
//! so they never disagree. Amounts are thousandths (berth-quantity's), so CPU is in
//! millicores and one object counts 1000.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// The object counts a quota can limit, by their plain names and as `count/<plural>`.
pub const COUNTED: [&str; 5] = [
    "pods",
    "services",
    "configmaps",
    "secrets",
    "persistentvolumeclaims",
];

/// The compute resources a quota can limit on pods; `cpu` and `memory` mean requests.
pub const COMPUTE: [&str; 6] = [
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

/// Storage the claims of a namespace ask for, in total.
pub const STORAGE: &str = "requests.storage";

/// Whether a quota can limit `resource`.
pub fn supported(resource: &str) -> bool {
    let counted = resource.strip_prefix("count/").unwrap_or(resource);
    COUNTED.contains(&counted) || COMPUTE.contains(&resource) || resource == STORAGE
}

/// An object a quota counts.
#[derive(Debug, Clone, Copy)]
pub enum Object<'a> {
    /// A pod: counted, and its compute resources, while it has not ended.
    Pod(&'a dyn QuotaPod),
    /// A claim: counted, and the storage it asks for.
    Claim(&'a PersistentVolumeClaim),
    /// Any other object, by its resource's plural: counted.
    Other(&'static str),
}

/// A pod as a quota reads it — its phase and what its containers declare — whichever
/// type holds it: the API server's whole pod, the controllers' cached one.
pub trait QuotaPod: std::fmt::Debug + Sync {
    /// Its phase, None until reported.
    fn phase(&self) -> Option<&str>;
    /// What each container, then each init container, declares of `resource` (`cpu`,
    /// `memory`).
    fn declared(&self, resource: &str) -> (Vec<Declared<'_>>, Vec<Declared<'_>>);
}

/// What one container declares of a resource.
#[derive(Debug, Clone, Copy, Default)]
pub struct Declared<'a> {
    /// Its request.
    pub request: Option<&'a Quantity>,
    /// Its limit.
    pub limit: Option<&'a Quantity>,
}

impl<'a> Declared<'a> {
    /// What a container with these requests and limits declares of `resource`.
    pub fn of<A: Amounts>(requests: Option<&'a A>, limits: Option<&'a A>, resource: &str) -> Self {
        Declared {
            request: requests.and_then(|r| r.amount(resource)),
            limit: limits.and_then(|l| l.amount(resource)),
        }
    }
}

/// Amounts by resource name, whichever type holds them.
pub trait Amounts {
    /// The amount of `resource`, if named.
    fn amount(&self, resource: &str) -> Option<&Quantity>;
}

impl Amounts for BTreeMap<String, Quantity> {
    fn amount(&self, resource: &str) -> Option<&Quantity> {
        self.get(resource)
    }
}

impl QuotaPod for Pod {
    fn phase(&self) -> Option<&str> {
        self.status.as_ref()?.phase.as_deref()
    }

    fn declared(&self, resource: &str) -> (Vec<Declared<'_>>, Vec<Declared<'_>>) {
        let Some(spec) = self.spec.as_ref() else {
            return (Vec::new(), Vec::new());
        };
        let of = |c| declared_by(c, resource);
        let init = spec.init_containers.iter().flatten().map(of);
        (spec.containers.iter().map(of).collect(), init.collect())
    }
}

/// What `container` declares of `resource`.
fn declared_by<'a>(container: &'a Container, resource: &str) -> Declared<'a> {
    let resources = container.resources.as_ref();
    let requests = resources.and_then(|r| r.requests.as_ref());
    Declared::of(
        requests,
        resources.and_then(|r| r.limits.as_ref()),
        resource,
    )
}

/// What `object` uses of `resource`, in thousandths.
pub fn usage(object: Object<'_>, resource: &str) -> i128 {
    let counted = resource.strip_prefix("count/").unwrap_or(resource);
    match object {
        Object::Pod(pod) if ended(pod) => 0,
        Object::Pod(_) if counted == "pods" => 1000,
        Object::Pod(pod) => pod_compute(pod, resource),
        Object::Claim(_) if counted == "persistentvolumeclaims" => 1000,
        Object::Claim(claim) if resource == STORAGE => claim
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .and_then(|q| berth_quantity::milli(&q.0))
            .unwrap_or(0),
        Object::Other(plural) if counted == plural => 1000,
        _ => 0,
    }
}

/// Whether the pod has ended: a quota stops counting it then.
fn ended(pod: &dyn QuotaPod) -> bool {
    matches!(pod.phase(), Some("Succeeded" | "Failed"))
}

/// The pod's effective request or limit of a compute resource: its containers' sum, or
/// its largest init container's if more, as Kubernetes' quota counts it.
fn pod_compute(pod: &dyn QuotaPod, resource: &str) -> i128 {
    let Some((kind, name)) = compute_parts(resource) else {
        return 0;
    };
    let amount = |d: &Declared| amount_of(d, kind).unwrap_or(0);
    let (containers, init) = pod.declared(name);
    let sum: i128 = containers.iter().map(amount).sum();
    let init = init.iter().map(amount).max();
    sum.max(init.unwrap_or(0))
}

/// `requests.cpu` as (`requests`, `cpu`); bare `cpu` and `memory` are requests.
fn compute_parts(resource: &str) -> Option<(&'static str, &str)> {
    match resource.split_once('.') {
        Some(("requests", name)) => Some(("requests", name)),
        Some(("limits", name)) => Some(("limits", name)),
        None if COMPUTE.contains(&resource) => Some(("requests", resource)),
        _ => None,
    }
}

/// What a container declares under `kind` (`requests` or `limits`); a limit alone
/// stands for the request too, as Kubernetes defaults it.
fn amount_of(declared: &Declared, kind: &str) -> Option<i128> {
    let quantity = match kind {
        "requests" => declared.request.or(declared.limit),
        _ => declared.limit,
    };
    quantity.and_then(|q| berth_quantity::milli(&q.0))
}

/// The pod's containers (init containers too) that declare nothing of a compute
/// `resource` a quota limits: Kubernetes refuses such a pod rather than count it as 0.
pub fn undeclared(pod: &Pod, resource: &str) -> Vec<String> {
    let Some((kind, name)) = compute_parts(resource) else {
        return Vec::new();
    };
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .filter(|c| amount_of(&declared_by(c, name), kind).is_none())
        .map(|c| c.name.clone())
        .collect()
}

/// An amount of `resource` as Kubernetes writes it in quotas: counts whole, CPU in
/// cores or millicores, bytes with the largest binary suffix that divides them.
pub fn format(resource: &str, milli: i128) -> String {
    let bytes = resource.ends_with("memory") || resource == STORAGE;
    if !bytes {
        return berth_quantity::format_milli(milli);
    }
    let value = milli / 1000;
    let suffixes = [("Gi", 1i128 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)];
    match suffixes
        .iter()
        .find(|(_, unit)| value != 0 && value % unit == 0)
    {
        Some((suffix, unit)) => format!("{}{suffix}", value / unit),
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn pods_use_their_effective_requests_and_limits_until_they_end() {
        let running = pod(serde_json::json!({
            "spec": {
                "initContainers": [{"name": "init", "resources": {"requests": {"cpu": "2"}}}],
                "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "64Mi"}}},
                    {"name": "b", "resources": {"limits": {"cpu": "1", "memory": "128Mi"}}},
                ],
            },
        }));
        let object = Object::Pod(&running);
        assert_eq!(usage(object, "pods"), 1000);
        assert_eq!(usage(object, "count/pods"), 1000);
        assert_eq!(
            usage(object, "requests.cpu"),
            2000,
            "the init container is larger"
        );
        assert_eq!(usage(object, "memory"), 192 * 1024 * 1024 * 1000);
        assert_eq!(usage(object, "limits.cpu"), 1000);
        assert_eq!(undeclared(&running, "limits.memory"), ["init", "a"]);
        assert_eq!(format("memory", usage(object, "memory")), "192Mi");
        assert_eq!(format("cpu", 1500), "1500m");
        let ended =
            pod(serde_json::json!({"spec": {"containers": []}, "status": {"phase": "Succeeded"}}));
        assert_eq!(usage(Object::Pod(&ended), "pods"), 0);
        assert_eq!(usage(Object::Other("configmaps"), "count/configmaps"), 1000);
        assert_eq!(usage(Object::Other("secrets"), "configmaps"), 0);
        assert!(supported("count/secrets") && supported("limits.memory"));
        assert!(!supported("requests.nvidia.com/gpu"));
    }
}
