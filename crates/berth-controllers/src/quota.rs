//! ResourceQuotas' status, as kube-controller-manager's resourcequota controller keeps
//! it: `hard` as the spec says and `used` totalled from what exists in the namespace —
//! so what deleted objects used is given back. The API server charges new objects as it
//! admits them; both count with berth-quota.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Pod, ResourceQuota, Secret, Service,
};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::statuses::merge_status;
use berth_runner::Informers;

use crate::watched::Watched;

/// How soon a failed write is tried again.
const RETRY: Duration = Duration::from_secs(2);

/// How often everything is looked over when nothing changed.
const RECHECK: Duration = Duration::from_secs(60);

/// Runs until the client's watches end.
pub async fn run(client: Client, informers: Informers) {
    let mut watched = Watched::new(&informers);
    let quotas = watched.cache::<ResourceQuota>().await;
    let pods = watched.cache::<Pod>().await;
    let claims = watched.cache::<PersistentVolumeClaim>().await;
    let services = watched.cache::<Service>().await;
    let maps = watched.cache::<ConfigMap>().await;
    let secrets = watched.cache::<Secret>().await;
    loop {
        let all = quotas.state();
        // Without quotas there is nothing to total: objects change often, quotas seldom.
        if all.is_empty() {
            if !watched.next_change(RECHECK).await {
                return;
            }
            continue;
        }
        let (pods, claims) = (pods.state(), claims.state());
        let counts = [
            ("services", namespaces_of(&services.state())),
            ("configmaps", namespaces_of(&maps.state())),
            ("secrets", namespaces_of(&secrets.state())),
        ];
        let mut retry = false;
        for quota in all {
            let namespace = quota.namespace();
            let in_namespace = |object_namespace: Option<String>| object_namespace == namespace;
            let objects = pods
                .iter()
                .filter(|p| in_namespace(p.namespace()))
                .map(|p| berth_quota::Object::Pod(p))
                .chain(
                    claims
                        .iter()
                        .filter(|c| in_namespace(c.namespace()))
                        .map(|c| berth_quota::Object::Claim(c)),
                )
                .chain(counts.iter().flat_map(|(plural, namespaces)| {
                    namespaces
                        .iter()
                        .filter(|n| in_namespace(Some(n.to_string())))
                        .map(|_| berth_quota::Object::Other(plural))
                }))
                .collect::<Vec<_>>();
            let wanted = status_of(&quota, &objects);
            let current = serde_json::to_value(&quota.status).unwrap_or_default();
            if current["hard"] != wanted["hard"] || current["used"] != wanted["used"] {
                let api = Api::namespaced(client.clone(), &quota.namespace().unwrap_or_default());
                let change = (&current, wanted);
                retry |= !merge_status::<ResourceQuota>(
                    &api,
                    &quota.name_any(),
                    change,
                    &["hard", "used"],
                )
                .await;
            }
        }
        let wait = if retry { RETRY } else { RECHECK };
        if !watched.next_change(wait).await {
            return;
        }
    }
}

/// The namespace of each object, once per object.
fn namespaces_of<K: kube::Resource>(objects: &[Arc<K>]) -> Vec<String> {
    objects
        .iter()
        .filter_map(|o| o.meta().namespace.clone())
        .collect()
}

/// The quota's status: its hard limits, and what `objects` (its namespace's) use of each.
fn status_of(quota: &ResourceQuota, objects: &[berth_quota::Object<'_>]) -> Value {
    let hard = quota
        .spec
        .as_ref()
        .and_then(|s| s.hard.clone())
        .unwrap_or_default();
    let used: BTreeMap<&String, String> = hard
        .keys()
        .map(|resource| {
            let total: i128 = objects
                .iter()
                .map(|o| berth_quota::usage(*o, resource))
                .sum();
            (resource, berth_quota::format(resource, total))
        })
        .collect();
    json!({"hard": hard, "used": used})
}
