//! The pod as the controllers cache it: the fields the scheduler, the workload
//! controllers, endpoints, quota, disruption and node controllers read, under
//! k8s-openapi's names and types, and nothing else. k8s-openapi's `Pod` holds every
//! optional field inline — 2.2 KiB for the pod, 2.1 KiB per container, 750 bytes per
//! container status, before anything is set — and at 150,000 pods the controller
//! manager's typed pods were most of the server's memory (issue 18). This one is a
//! fraction of that, and the same field paths keep the controllers' code reading as it
//! reads Kubernetes' pods.
//!
//! A cached pod is never written back: controllers change pods by patches, and create
//! theirs from templates as k8s-openapi's `Pod`, so what it leaves out is never lost.

use std::borrow::Cow;
use std::collections::BTreeMap;

use berth_labels::LabelSet;
use berth_quota::Declared;
use k8s_openapi::api::core::v1::{
    Affinity, ContainerPort, ContainerStateTerminated, EphemeralVolumeSource,
    PersistentVolumeClaimVolumeSource, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::{Deserialize, Deserializer};

/// A pod without what no controller reads (annotations, managedFields, most of its
/// spec and status).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(from = "WirePod")]
pub struct CachedPod {
    /// Its metadata, without annotations and managedFields, and without its labels:
    /// they are in [`CachedPod::labels`].
    pub metadata: ObjectMeta,
    /// Its labels as a short list rather than the metadata's B-tree (540 bytes for
    /// the first node of any map, a quarter of a cached pod). Private, so that every
    /// read goes through [`CachedPod::labels`], which hides kube's `ResourceExt::labels`
    /// (the metadata's, always empty here).
    labels: LabelSet,
    /// What the scheduler and the workload controllers read of its spec.
    pub spec: Option<PodSpec>,
    /// What they read of its status.
    pub status: Option<PodStatus>,
}

impl CachedPod {
    /// Its labels.
    pub fn labels(&self) -> &LabelSet {
        &self.labels
    }
}

/// A pod as sent, as far as [`CachedPod`] reads it.
#[derive(Deserialize)]
struct WirePod {
    #[serde(default)]
    metadata: ObjectMeta,
    spec: Option<PodSpec>,
    status: Option<PodStatus>,
}

/// The pod's metadata less what no controller reads of a pod (annotations and
/// managedFields, often most of its metadata), its labels set apart.
impl From<WirePod> for CachedPod {
    fn from(pod: WirePod) -> Self {
        let mut metadata = pod.metadata;
        metadata.annotations = None;
        metadata.managed_fields = None;
        let labels = metadata.labels.take().into_iter().flatten().collect();
        Self {
            metadata,
            labels,
            spec: pod.spec,
            status: pod.status,
        }
    }
}

impl k8s_openapi::Resource for CachedPod {
    const API_VERSION: &'static str = "v1";
    const GROUP: &'static str = "";
    const KIND: &'static str = "Pod";
    const VERSION: &'static str = "v1";
    const URL_PATH_SEGMENT: &'static str = "pods";
    type Scope = k8s_openapi::NamespaceResourceScope;
}

impl k8s_openapi::Metadata for CachedPod {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// What controllers read of a pod's spec: placement (node, selector, affinity,
/// tolerations, spread, priority) and what it asks of a node (containers' resources and
/// host ports, overhead, claims).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(from = "WireSpec")]
pub struct PodSpec {
    /// Its containers.
    pub containers: Box<[Container]>,
    /// The node it is bound to.
    pub node_name: Option<Box<str>>,
    /// Node and pod (anti-)affinity; boxed, as most pods have none.
    pub affinity: Option<Box<Affinity>>,
    /// The taints it tolerates.
    pub tolerations: Option<Box<[Toleration]>>,
    /// Its priority, resolved from its class by admission.
    pub priority: Option<i32>,
    /// Whether it may preempt lower-priority pods.
    pub preemption_policy: Option<Cow<'static, str>>,
    /// The scheduler it asks for.
    pub scheduler_name: Option<Cow<'static, str>>,
    /// What few pods set, boxed: None when the pod sets none of it. Read through
    /// [`PodSpec::extras`].
    pub extras: Option<Box<Extras>>,
}

/// The parts of a pod's spec that few pods set: five fields of most pods' spec for
/// one pointer, which brings a cached pod into a smaller class of the allocator.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Extras {
    /// Its init containers.
    pub init_containers: Option<Box<[Container]>>,
    /// The labels a node needs to take it.
    pub node_selector: Option<BTreeMap<String, String>>,
    /// How it spreads over topology domains.
    pub topology_spread_constraints: Option<Box<[TopologySpreadConstraint]>>,
    /// Its volumes that are claims; the others are dropped as it is read.
    pub volumes: Option<Box<[Volume]>>,
    /// What running it costs beyond its containers (RuntimeClass overhead).
    pub overhead: Option<BTreeMap<String, Quantity>>,
}

/// The extras of a pod that sets none.
static NO_EXTRAS: Extras = Extras {
    init_containers: None,
    node_selector: None,
    topology_spread_constraints: None,
    volumes: None,
    overhead: None,
};

impl PodSpec {
    /// What few pods set: init containers, node selector, spread, claims, overhead.
    pub fn extras(&self) -> &Extras {
        self.extras.as_deref().unwrap_or(&NO_EXTRAS)
    }
}

/// A pod's spec as sent, as far as [`PodSpec`] reads it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSpec {
    #[serde(default)]
    containers: Box<[Container]>,
    init_containers: Option<Box<[Container]>>,
    node_name: Option<Box<str>>,
    node_selector: Option<BTreeMap<String, String>>,
    affinity: Option<Box<Affinity>>,
    tolerations: Option<Box<[Toleration]>>,
    topology_spread_constraints: Option<Box<[TopologySpreadConstraint]>>,
    priority: Option<i32>,
    #[serde(default, deserialize_with = "preemption_policy")]
    preemption_policy: Option<Cow<'static, str>>,
    #[serde(default, deserialize_with = "scheduler_name")]
    scheduler_name: Option<Cow<'static, str>>,
    #[serde(default, deserialize_with = "claims_only")]
    volumes: Option<Box<[Volume]>>,
    overhead: Option<BTreeMap<String, Quantity>>,
}

impl From<WireSpec> for PodSpec {
    fn from(spec: WireSpec) -> Self {
        let extras = Extras {
            init_containers: spec.init_containers,
            node_selector: spec.node_selector,
            topology_spread_constraints: spec.topology_spread_constraints,
            volumes: spec.volumes,
            overhead: spec.overhead,
        };
        Self {
            containers: spec.containers,
            node_name: spec.node_name,
            affinity: spec.affinity,
            tolerations: spec.tolerations,
            priority: spec.priority,
            preemption_policy: spec.preemption_policy,
            scheduler_name: spec.scheduler_name,
            extras: (extras != NO_EXTRAS).then(|| Box::new(extras)),
        }
    }
}

/// Text that is nearly always one of a few words (a phase, a condition's type or
/// status, the default scheduler's name): borrowed from `words` when it is one, so that
/// the hundred thousand pods of a cluster do not each hold their copy.
fn common(text: String, words: &[&'static str]) -> Cow<'static, str> {
    match words.iter().find(|word| **word == text) {
        Some(word) => Cow::Borrowed(word),
        None => Cow::Owned(text),
    }
}

/// Reads text that is nearly always one of `words` (see [`common`]).
fn one_of<'de, D: Deserializer<'de>>(
    deserializer: D,
    words: &[&'static str],
) -> Result<Cow<'static, str>, D::Error> {
    String::deserialize(deserializer).map(|text| common(text, words))
}

fn condition_type<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Cow<'static, str>, D::Error> {
    let types = [
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
        "DisruptionTarget",
        "PodReadyToStartContainers",
    ];
    one_of(deserializer, &types)
}

fn condition_status<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Cow<'static, str>, D::Error> {
    one_of(deserializer, &["True", "False", "Unknown"])
}

/// Reads optional text that is nearly always one of `words` (see [`common`]).
fn maybe_one_of<'de, D: Deserializer<'de>>(
    deserializer: D,
    words: &[&'static str],
) -> Result<Option<Cow<'static, str>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(|text| text.map(|t| common(t, words)))
}

fn phase<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Cow<'static, str>>, D::Error> {
    let phases = ["Pending", "Running", "Succeeded", "Failed", "Unknown"];
    maybe_one_of(deserializer, &phases)
}

fn scheduler_name<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Cow<'static, str>>, D::Error> {
    maybe_one_of(deserializer, &["default-scheduler"])
}

fn preemption_policy<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Cow<'static, str>>, D::Error> {
    maybe_one_of(deserializer, &["PreemptLowerPriority", "Never"])
}

/// The pod's volumes that name a claim, its own or an ephemeral one; the scheduler
/// keeps a pod on its claims' node, and the rest are the agent's.
fn claims_only<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Box<[Volume]>>, D::Error> {
    let mut volumes = Option::<Vec<Volume>>::deserialize(deserializer)?.unwrap_or_default();
    volumes.retain(|v| v.persistent_volume_claim.is_some() || v.ephemeral.is_some());
    Ok((!volumes.is_empty()).then(|| volumes.into_boxed_slice()))
}

/// A volume of a pod, as far as it names a claim.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    /// Its name in the pod.
    pub name: String,
    /// The claim it mounts.
    pub persistent_volume_claim: Option<PersistentVolumeClaimVolumeSource>,
    /// The claim made for the pod alone.
    pub ephemeral: Option<Box<EphemeralVolumeSource>>,
}

/// What controllers read of a container: its name, resources and ports.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// Its name.
    pub name: String,
    /// What it requests and is limited to.
    pub resources: Option<ResourceRequirements>,
    /// Its ports: host ports for the scheduler, named ones for Services.
    pub ports: Option<Box<[ContainerPort]>>,
}

/// What a container requests and is limited to.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct ResourceRequirements {
    /// What it requests of each resource.
    pub requests: Option<ResourceList>,
    /// What it is limited to.
    pub limits: Option<ResourceList>,
}

/// Amounts by resource name (`cpu`, `memory`…), as Kubernetes' `ResourceList`: a short
/// list rather than k8s-openapi's B-tree, whose first node is 546 bytes however few
/// resources a container names.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResourceList(Vec<(String, Quantity)>);

impl ResourceList {
    /// The amount of `resource`, if named.
    pub fn get(&self, resource: &str) -> Option<&Quantity> {
        self.0
            .iter()
            .find(|(name, _)| name == resource)
            .map(|(_, q)| q)
    }
}

impl<'de> Deserialize<'de> for ResourceList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let amounts = BTreeMap::<String, Quantity>::deserialize(deserializer)?;
        Ok(ResourceList(amounts.into_iter().collect()))
    }
}

/// What controllers read of a pod's status.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    /// Pending, Running, Succeeded, Failed or Unknown.
    #[serde(default, deserialize_with = "phase")]
    pub phase: Option<Cow<'static, str>>,
    /// Its conditions (Ready, PodScheduled…).
    pub conditions: Option<Box<[PodCondition]>>,
    /// Its containers' states.
    pub container_statuses: Option<Box<[ContainerStatus]>>,
    /// Its init containers' states.
    pub init_container_statuses: Option<Box<[ContainerStatus]>>,
    /// Its address.
    #[serde(rename = "podIP")]
    pub pod_ip: Option<Box<str>>,
    /// When its node's agent took it.
    pub start_time: Option<Time>,
    /// The node preemption set aside for it.
    pub nominated_node_name: Option<Box<str>>,
}

/// What controllers read of a pod's condition.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodCondition {
    /// Ready, ContainersReady, Initialized, PodScheduled, DisruptionTarget…
    #[serde(rename = "type", deserialize_with = "condition_type")]
    pub type_: Cow<'static, str>,
    /// True, False or Unknown.
    #[serde(deserialize_with = "condition_status")]
    pub status: Cow<'static, str>,
    /// When its status last changed: a pod is available once ready for minReadySeconds.
    pub last_transition_time: Option<Time>,
}

/// What controllers read of a container's status: restarts and how it ended.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    /// The container's name.
    pub name: String,
    /// Whether it passes its readiness probe.
    #[serde(default)]
    pub ready: bool,
    /// How often it restarted.
    #[serde(default)]
    pub restart_count: i32,
    /// What it is doing now, as far as it ended.
    pub state: Option<ContainerState>,
}

/// What controllers read of a container's state: how it ended, if it did (boxed: most
/// containers run).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct ContainerState {
    /// Its exit code and when it ended.
    pub terminated: Option<Box<ContainerStateTerminated>>,
}

impl berth_quota::QuotaPod for CachedPod {
    fn phase(&self) -> Option<&str> {
        self.status.as_ref()?.phase.as_deref()
    }

    fn declared(&self, resource: &str) -> (Vec<Declared<'_>>, Vec<Declared<'_>>) {
        let of = |c| Container::declared(c, resource);
        let spec = self.spec.iter();
        let containers = spec.clone().flat_map(|s| &s.containers).map(of);
        let init = spec
            .flat_map(|s| s.extras().init_containers.iter().flatten())
            .map(of);
        (containers.collect(), init.collect())
    }
}

impl Container {
    /// What it declares of `resource`, for quotas.
    fn declared(&self, resource: &str) -> Declared<'_> {
        let resources = self.resources.as_ref();
        let requests = resources.and_then(|r| r.requests.as_ref());
        Declared::of(
            requests,
            resources.and_then(|r| r.limits.as_ref()),
            resource,
        )
    }
}

impl berth_quota::Amounts for ResourceList {
    fn amount(&self, resource: &str) -> Option<&Quantity> {
        self.get(resource)
    }
}

#[cfg(test)]
mod tests {
    use super::CachedPod;
    use serde_json::json;

    #[test]
    fn a_cached_pod_keeps_what_controllers_read() {
        let pod: CachedPod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "p", "labels": {"app": "web"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
                "managedFields": [{"manager": "kubectl"}],
            },
            "spec": {
                "nodeName": "n1",
                "containers": [{
                    "name": "app",
                    "resources": {"requests": {"cpu": "1"}},
                    "ports": [{"containerPort": 80, "name": "http"}],
                    "env": [{"name": "A", "value": "1"}],
                    "readinessProbe": {"tcpSocket": {"port": 80}},
                }],
                "volumes": [
                    {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                    {"name": "token", "projected": {"sources": []}},
                ],
            },
            "status": {"phase": "Running", "podIP": "10.42.0.5", "containerStatuses": [
                {"name": "app", "ready": true, "restartCount": 2, "image": "web", "imageID": "",
                 "state": {"terminated": {"exitCode": 1}}},
            ]},
        }))
        .unwrap();
        assert_eq!(pod.labels().get("app"), Some("web"));
        assert!(pod.metadata.labels.is_none());
        assert!(pod.metadata.annotations.is_none() && pod.metadata.managed_fields.is_none());
        let spec = pod.spec.unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("n1"));
        let volumes: Vec<_> = spec
            .extras()
            .volumes
            .iter()
            .flatten()
            .map(|v| &v.name)
            .collect();
        assert_eq!(volumes, ["data"]);
        let container = &spec.containers[0];
        assert!(container.resources.is_some() && container.ports.is_some());
        let status = pod.status.unwrap();
        // A common word is borrowed, not held by every pod.
        assert!(matches!(
            status.phase,
            Some(std::borrow::Cow::Borrowed("Running"))
        ));
        assert_eq!(status.pod_ip.as_deref(), Some("10.42.0.5"));
        let app = &status.container_statuses.unwrap()[0];
        assert!(app.ready && app.restart_count == 2);
        let ended = app.state.as_ref().and_then(|s| s.terminated.as_ref());
        assert_eq!(ended.map(|t| t.exit_code), Some(1));
    }
}
