//! The pod's PersistentVolumeClaims, as kube-scheduler's VolumeBinding plugin sees
//! them: a claim bound to a volume with node affinity (a local volume) admits only the
//! nodes it names; a claim not bound yet (its class binds WaitForFirstConsumer) is
//! given the chosen node in its `volume.kubernetes.io/selected-node` annotation, which
//! the provisioner makes the volume on.

use berth_runner::Cache;
use k8s_openapi::api::core::v1::{Node, NodeSelector, PersistentVolume, PersistentVolumeClaim};
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::cached_pod::CachedPod;

/// The annotation naming the node a claim's volume is to be made on.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";

/// What the pod's claims ask of its node.
#[derive(Debug, Default, Clone)]
pub(crate) struct Needs {
    /// The node affinity of each bound volume: all must admit the node.
    pub affinities: Vec<NodeSelector>,
    /// The claims (by name) to give the chosen node.
    pub unbound: Vec<String>,
}

impl Needs {
    /// What the pod's claims need, or why it cannot be placed yet.
    pub(crate) fn of(
        pod: &CachedPod,
        claims: &Cache<PersistentVolumeClaim>,
        volumes: &Cache<PersistentVolume>,
    ) -> Result<Self, String> {
        let namespace = pod.namespace().unwrap_or_default();
        let mut needs = Needs::default();
        let names = pod
            .spec
            .iter()
            .flat_map(|s| s.extras().volumes.iter().flatten())
            .filter_map(|v| v.persistent_volume_claim.as_ref())
            .map(|c| c.claim_name.clone());
        for name in names {
            let claim = claims
                .get(&ObjectRef::new(&name).within(&namespace))
                .ok_or_else(|| format!("persistentvolumeclaim \"{name}\" not found"))?;
            if claim.metadata.deletion_timestamp.is_some() {
                return Err(format!("persistentvolumeclaim \"{name}\" is being deleted"));
            }
            let bound = claim.spec.as_ref().and_then(|s| s.volume_name.as_deref());
            match bound.filter(|v| !v.is_empty()) {
                Some(volume) => {
                    let affinity = volumes
                        .get(&ObjectRef::new(volume))
                        .and_then(|v| v.spec.as_ref()?.node_affinity.as_ref()?.required.clone());
                    needs.affinities.extend(affinity);
                }
                None if !claim.annotations().contains_key(SELECTED_NODE) => {
                    needs.unbound.push(name)
                }
                None => {}
            }
        }
        Ok(needs)
    }

    /// Whether every bound volume can be reached from the node.
    pub(crate) fn admit(&self, node: &Node) -> bool {
        self.affinities
            .iter()
            .all(|selector| super::node_affinity::selector_admits(selector, node))
    }

    /// Gives the unbound claims the chosen node; false if one could not be.
    pub(crate) async fn select(&self, client: &Client, pod: &CachedPod, node: &str) -> bool {
        let api: Api<PersistentVolumeClaim> =
            Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
        let patch = json!({"metadata": {"annotations": {SELECTED_NODE: node}}});
        for claim in &self.unbound {
            let patched = api
                .patch(claim, &PatchParams::default(), &Patch::Merge(&patch))
                .await;
            if let Err(error) = patched {
                tracing::warn!(%error, claim, "could not select a node for the claim");
                return false;
            }
        }
        true
    }
}
