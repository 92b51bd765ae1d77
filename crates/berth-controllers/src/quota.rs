//! ResourceQuotas' status, as kube-controller-manager's resourcequota controller keeps
//! it: `hard` as the spec says and `used` totalled from what exists in the namespace —
//! so what deleted objects used is given back. The API server charges new objects as it
//! admits them; both count with berth-quota.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, ResourceQuota, Secret, Service,
};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::cached_pod::CachedPod;
use crate::statuses::merge_status;
use berth_runner::{Action, Cache, Controller, Informers};

/// Runs until the client's watches end: called for each quota, and for a namespace's
/// quotas when an object they count changes there.
pub async fn run(client: Client, informers: Informers) {
    let controller = Controller::<ResourceQuota>::new(&informers).await;
    let quotas = controller.cache().clone();
    let controller = controller
        .watches::<CachedPod>(quotas.same_namespace())
        .await
        .watches::<PersistentVolumeClaim>(quotas.same_namespace())
        .await
        .watches::<Service>(quotas.same_namespace())
        .await
        .watches::<ConfigMap>(quotas.same_namespace())
        .await
        .watches::<Secret>(quotas.same_namespace())
        .await;
    let counted = Counted {
        pods: informers.cache().await,
        claims: informers.cache().await,
        services: informers.cache().await,
        maps: informers.cache().await,
        secrets: informers.cache().await,
    };
    let (client, counted) = (&client, &counted);
    controller
        .run(|quota| async move {
            reconcile(client, &quota, counted).await?;
            Ok(Action::AwaitChange)
        })
        .await;
}

/// The caches of what quotas count.
struct Counted {
    pods: Cache<CachedPod>,
    claims: Cache<PersistentVolumeClaim>,
    services: Cache<Service>,
    maps: Cache<ConfigMap>,
    secrets: Cache<Secret>,
}

/// Writes the quota's status when what its namespace uses changed.
async fn reconcile(
    client: &Client,
    quota: &ResourceQuota,
    counted: &Counted,
) -> Result<(), kube::Error> {
    let namespace = quota.namespace();
    let here = namespace.as_deref();
    let pods = counted.pods.in_namespace(here);
    let claims = counted.claims.in_namespace(here);
    let counts = [
        ("services", counted.services.in_namespace(here).len()),
        ("configmaps", counted.maps.in_namespace(here).len()),
        ("secrets", counted.secrets.in_namespace(here).len()),
    ];
    let objects = pods
        .iter()
        .map(|p| berth_quota::Object::Pod(p.as_ref()))
        .chain(claims.iter().map(|c| berth_quota::Object::Claim(c)))
        .chain(
            counts
                .iter()
                .flat_map(|(plural, n)| (0..*n).map(|_| berth_quota::Object::Other(plural))),
        )
        .collect::<Vec<_>>();
    let wanted = status_of(quota, &objects);
    let current = serde_json::to_value(&quota.status).unwrap_or_default();
    if current["hard"] == wanted["hard"] && current["used"] == wanted["used"] {
        return Ok(());
    }
    let api = Api::namespaced(client.clone(), &namespace.unwrap_or_default());
    merge_status::<ResourceQuota>(
        &api,
        &quota.name_any(),
        (&current, wanted),
        &["hard", "used"],
    )
    .await
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
