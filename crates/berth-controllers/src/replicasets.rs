//! The ReplicaSet controller: keeps as many running pods as each ReplicaSet declares —
//! making them from its template when too few (so a pod that dies is replaced), deleting
//! the least useful when too many — and reports how many there are and how many are
//! ready in its status. ReplicationControllers, ReplicaSets' forerunners with the same
//! spec and status, run on the same loop.
//!
//! Like kube-controller-manager it remembers the creates and deletes it issued until its
//! cache shows them (expectations), so a call never counts twice what is in flight.

use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{PodTemplateSpec, ReplicationController};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use berth_runner::{Action, Cache, Controller, Informers};

use crate::cached_pod::CachedPod;
use crate::expectations::{Expectations, InFlight};
use crate::pods::{Naming, active, available, ready};

/// What the loop reads of a ReplicaSet or a ReplicationController.
pub(crate) trait Replicated:
    berth_runner::Cached + kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
{
    /// How many pods it wants.
    fn wanted(&self) -> i32;
    /// What its pods are made from.
    fn template(&self) -> PodTemplateSpec;
    /// How long a pod must have been ready to count as available.
    fn min_ready_seconds(&self) -> i32;
    /// What its status reports: replicas, ready, available, and the generation seen.
    fn reported(&self) -> (i32, i32, i32, Option<i64>);
}

/// Both kinds' specs and statuses have the same fields.
macro_rules! replicated {
    ($kind:ty) => {
        impl Replicated for $kind {
            fn wanted(&self) -> i32 {
                self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
            }
            fn template(&self) -> PodTemplateSpec {
                let spec = self.spec.as_ref();
                spec.and_then(|s| s.template.clone()).unwrap_or_default()
            }
            fn min_ready_seconds(&self) -> i32 {
                self.spec
                    .as_ref()
                    .and_then(|s| s.min_ready_seconds)
                    .unwrap_or(0)
            }
            fn reported(&self) -> (i32, i32, i32, Option<i64>) {
                let status = self.status.clone().unwrap_or_default();
                let (ready, available) = (status.ready_replicas, status.available_replicas);
                let generation = status.observed_generation;
                (
                    status.replicas,
                    ready.unwrap_or(0),
                    available.unwrap_or(0),
                    generation,
                )
            }
        }
    };
}

replicated!(ReplicaSet);
replicated!(ReplicationController);

/// Runs the controller until the client's watches end.
pub async fn run(client: Client, informers: Informers) {
    tokio::join!(
        run_for::<ReplicaSet>(client.clone(), informers.clone()),
        run_for::<ReplicationController>(client, informers),
    );
}

/// The controller of one kind: called for each set, and for a set when one of its pods
/// changes.
async fn run_for<K: Replicated>(client: Client, informers: Informers) {
    let pods = informers.cache::<CachedPod>().await;
    let expectations = Expectations::default();
    let controller = Controller::<K>::new(&informers)
        .await
        .owns::<CachedPod>()
        .await;
    controller
        .run(|set| {
            let (client, pods, expectations) = (&client, &pods, &expectations);
            expectations.with(set.uid(), async move |flight| {
                reconcile(client, set.as_ref(), pods, flight).await
            })
        })
        .await;
}

async fn reconcile<K: Replicated>(
    client: &Client,
    set: &K,
    pods: &Cache<CachedPod>,
    flight: &mut InFlight,
) -> Result<Action, kube::Error> {
    let owned = pods.controlled_by(set);
    flight.observe(&owned.iter().map(|p| p.name_any()).collect());
    let mut running: Vec<_> = owned
        .iter()
        .filter(|p| active(p) && !flight.deleting(&p.name_any()))
        .collect();
    let wanted = set.wanted().max(0) as usize;
    let have = running.len() + flight.creating();
    if have < wanted {
        let template = set.template();
        let make = || crate::pods::from_template(set, &template, Naming::Generated(set.name_any()));
        let count = (wanted - have).min(crate::pods::BURST);
        let (made, failure) = crate::pods::create_slow_start(client, count, make).await;
        made.into_iter().for_each(|name| flight.created(name));
        if let Some(error) = failure {
            return Err(error);
        }
    } else if running.len() > wanted && flight.creating() == 0 {
        // The least useful go first: not ready, then the newest.
        running.sort_by_key(|p| {
            (
                ready(p),
                std::cmp::Reverse(p.metadata.creation_timestamp.clone()),
            )
        });
        let surplus = (running.len() - wanted).min(crate::pods::BURST);
        let doomed: Vec<&CachedPod> = running.iter().take(surplus).map(|p| &***p).collect();
        let (deleted, failure) = crate::pods::delete_all(client, &doomed).await;
        deleted.into_iter().for_each(|name| flight.deleted(name));
        if let Some(error) = failure {
            return Err(error);
        }
    }
    report(client, set, &owned).await
}

/// The set's status from its pods, written only when it changed; a call again when a
/// ready pod is yet to count as available.
async fn report<K: Replicated>(
    client: &Client,
    set: &K,
    owned: &[std::sync::Arc<CachedPod>],
) -> Result<Action, kube::Error> {
    let counted: Vec<_> = owned.iter().filter(|p| active(p)).collect();
    let ready_count = counted.iter().filter(|p| ready(p)).count() as i32;
    let min_ready = set.min_ready_seconds();
    let now = k8s_openapi::jiff::Timestamp::now();
    let available_count = counted
        .iter()
        .filter(|p| available(p, min_ready, now))
        .count() as i32;
    let replicas = counted.len() as i32;
    let generation = set.meta().generation;
    let next = if available_count < ready_count {
        Action::RequeueAfter(Duration::from_secs(min_ready.max(1) as u64))
    } else {
        Action::AwaitChange
    };
    if set.reported() == (replicas, ready_count, available_count, generation) {
        return Ok(next);
    }
    let api: Api<K> = Api::namespaced(client.clone(), &set.namespace().unwrap_or_default());
    let patch = json!({"status": {
        "replicas": replicas,
        "fullyLabeledReplicas": replicas,
        "readyReplicas": ready_count,
        "availableReplicas": available_count,
        "observedGeneration": generation,
    }});
    api.patch_status(
        &set.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(next)
}
