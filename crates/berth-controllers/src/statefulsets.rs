//! The StatefulSet controller: pods with stable names `<set>-0` … `<set>-(N-1)`, each
//! with its own PersistentVolumeClaims `<claim>-<set>-<ordinal>` from the
//! volumeClaimTemplates, made before the pod and kept when it goes (the default
//! Retain policy), as kube-controller-manager's.
//!
//! OrderedReady (the default) makes ordinal N only once 0 … N-1 are Running and Ready,
//! and scales down from the highest ordinal, one at a time, while the others are
//! healthy; Parallel makes and deletes them all at once. A pod that dies is made again
//! under its name. Templates are versioned as ControllerRevisions, named in each pod's
//! `controller-revision-hash`; a RollingUpdate replaces pods from the highest ordinal
//! down to `partition`, one at a time, each once the rest are Running and Ready, and
//! pods below the partition are remade at the current revision. The status — replicas,
//! ready, current and updated counts, current and update revisions — is what
//! `kubectl rollout status sts` reads.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use berth_runner::{Action, Cache, Controller, Informers};
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Volume};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::cached_pod::CachedPod;
use crate::pods::{Naming, running_and_ready};
use crate::revisions::{HASH_LABEL, Revision};

/// The name events give the controller.
const COMPONENT: &str = "statefulset-controller";

/// What the controller reads.
struct Caches {
    pods: Cache<CachedPod>,
    claims: Cache<PersistentVolumeClaim>,
    revisions: Cache<ControllerRevision>,
}

/// Runs the controller until the client's watches end: called for each StatefulSet, for
/// its own when one of its pods or revisions changes, and for a namespace's sets when
/// one of its claims does (claims from a set's templates name no owner).
pub async fn run(client: Client, informers: Informers) {
    let caches = Caches {
        pods: informers.cache::<CachedPod>().await,
        claims: informers.cache::<PersistentVolumeClaim>().await,
        revisions: informers.cache::<ControllerRevision>().await,
    };
    let controller = Controller::<StatefulSet>::new(&informers).await;
    let sets = controller.cache().clone();
    let controller = controller
        .owns::<CachedPod>()
        .await
        .owns::<ControllerRevision>()
        .await
        .watches::<PersistentVolumeClaim>(sets.same_namespace())
        .await;
    controller
        .run(|set| {
            let (client, caches) = (&client, &caches);
            async move {
                if set.metadata.deletion_timestamp.is_none() {
                    reconcile(client, &set, caches).await?;
                }
                Ok(Action::AwaitChange)
            }
        })
        .await;
}

/// The ordinal in a pod's name `<set>-<ordinal>`, if it is one of the set's names.
fn ordinal(set: &str, pod: &str) -> Option<i32> {
    let digits = pod.strip_prefix(set)?.strip_prefix('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The name of the claim of `template` for the pod of `ordinal`.
fn claim_name(claim: &str, set: &str, ordinal: i32) -> String {
    format!("{claim}-{set}-{ordinal}")
}

/// The set's pod of `ordinal` at `revision`: its stable name, identity labels, host
/// name, and a volume for each of its claims.
fn pod_for(set: &StatefulSet, revision: &Revision, ordinal: i32) -> Result<Pod, kube::Error> {
    let name = format!("{}-{ordinal}", set.name_any());
    let mut pod =
        crate::pods::from_template(set, &revision.template, Naming::Exactly(name.clone()))?;
    let labels = pod.metadata.labels.get_or_insert_default();
    labels.insert(HASH_LABEL.into(), revision.name.clone());
    labels.insert("statefulset.kubernetes.io/pod-name".into(), name.clone());
    labels.insert("apps.kubernetes.io/pod-index".into(), ordinal.to_string());
    let spec = set.spec.clone().unwrap_or_default();
    let pod_spec = pod.spec.get_or_insert_default();
    pod_spec.hostname = Some(name);
    pod_spec.subdomain = spec.service_name.filter(|s| !s.is_empty());
    let volumes = pod_spec.volumes.get_or_insert_default();
    for claim in spec.volume_claim_templates.iter().flatten() {
        let claim = claim.name_any();
        volumes.retain(|v| v.name != claim);
        let volume = json!({"name": claim, "persistentVolumeClaim": {
            "claimName": claim_name(&claim, &set.name_any(), ordinal)}});
        volumes.push(serde_json::from_value::<Volume>(volume).map_err(kube::Error::SerdeError)?);
    }
    Ok(pod)
}

/// Makes the claims of the pod of `ordinal` that do not exist yet.
async fn ensure_claims(
    client: &Client,
    set: &StatefulSet,
    claims: &Cache<PersistentVolumeClaim>,
    ordinal: i32,
) -> Result<(), kube::Error> {
    let namespace = set.namespace().unwrap_or_default();
    let spec = set.spec.clone().unwrap_or_default();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
    for template in spec.volume_claim_templates.iter().flatten() {
        let name = claim_name(&template.name_any(), &set.name_any(), ordinal);
        if claims
            .get(&ObjectRef::new(&name).within(&namespace))
            .is_some()
        {
            continue;
        }
        let mut labels = spec.selector.match_labels.clone().unwrap_or_default();
        labels.extend(template.labels().clone());
        let claim = json!({
            "metadata": {"name": name, "namespace": namespace, "labels": labels,
                         "annotations": template.metadata.annotations},
            "spec": template.spec,
        });
        let claim: PersistentVolumeClaim =
            serde_json::from_value(claim).map_err(kube::Error::SerdeError)?;
        match api.create(&PostParams::default(), &claim).await {
            Ok(_) => {
                let pod = format!("{}-{ordinal}", set.name_any());
                let message = format!(
                    "create Claim {name} Pod {pod} in StatefulSet {} success",
                    set.name_any()
                );
                announce(client, set, "SuccessfulCreate", &message).await;
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

async fn announce(client: &Client, set: &StatefulSet, reason: &str, message: &str) {
    berth_events::record(client, set, ("Normal", reason, message), COMPONENT).await;
}

/// The set's current and update revisions: the update one is its template's; the
/// current one what the status says (while it is kept), else the update one.
async fn revisions(
    client: &Client,
    set: &StatefulSet,
    caches: &Caches,
) -> Result<(Revision, Revision), kube::Error> {
    let template = set.spec.clone().unwrap_or_default().template;
    let update = crate::revisions::current(client, set, &template, &caches.revisions).await?;
    let current = set
        .status
        .as_ref()
        .and_then(|s| s.current_revision.as_deref())
        .filter(|name| *name != update.name)
        .and_then(|name| crate::revisions::find(set, &caches.revisions, name));
    let current = current.unwrap_or(Revision {
        name: update.name.clone(),
        hash: update.hash.clone(),
        template: update.template.clone(),
    });
    Ok((current, update))
}

/// What one pass does next, in order.
#[derive(Debug, PartialEq)]
enum Step {
    /// Make the pod of this ordinal (and its claims) at the current revision (true) or
    /// the update revision (false).
    Create(i32, bool),
    /// Delete this pod: failed, condemned, or of an old revision.
    Delete(Arc<CachedPod>),
}

/// The steps of this pass over the set's pods, by ordinal, as kube-controller-manager
/// orders them.
fn plan(set: &StatefulSet, pods: &BTreeMap<i32, Arc<CachedPod>>, update: &str) -> Vec<Step> {
    let spec = set.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let ordered = spec.pod_management_policy.as_deref() != Some("Parallel");
    let strategy = spec.update_strategy.unwrap_or_default();
    let partition = strategy
        .rolling_update
        .and_then(|r| r.partition)
        .unwrap_or(0);
    let mut steps = Vec::new();
    let mut healthy = true;
    for ordinal in 0..replicas {
        let step = match pods.get(&ordinal) {
            None => Some(Step::Create(ordinal, ordinal < partition)),
            Some(pod)
                if crate::pods::finished(pod) && pod.metadata.deletion_timestamp.is_none() =>
            {
                Some(Step::Delete(pod.clone()))
            }
            Some(pod) if running_and_ready(pod) => None,
            Some(_) => {
                healthy = false;
                if ordered {
                    return steps;
                }
                None
            }
        };
        if let Some(step) = step {
            healthy = false;
            steps.push(step);
            if ordered {
                return steps;
            }
        }
    }
    // Condemned pods: the highest first; ordered, one at a time and only while the
    // rest are healthy.
    let condemned: Vec<&Arc<CachedPod>> = pods.range(replicas..).rev().map(|(_, p)| p).collect();
    if !condemned.is_empty() {
        if ordered
            && (!healthy
                || condemned
                    .iter()
                    .any(|p| p.metadata.deletion_timestamp.is_some()))
        {
            return steps;
        }
        let going = condemned
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| Step::Delete(p.clone()));
        steps.extend(if ordered {
            going.take(1).collect::<Vec<_>>()
        } else {
            going.collect()
        });
        return steps;
    }
    if healthy && strategy.type_.as_deref() != Some("OnDelete") {
        let old = pods
            .range(partition.max(0)..replicas)
            .rev()
            .map(|(_, p)| p)
            .find(|p| p.labels().get(HASH_LABEL) != Some(update));
        steps.extend(old.map(|p| Step::Delete(p.clone())));
    }
    steps
}

async fn reconcile(client: &Client, set: &StatefulSet, caches: &Caches) -> Result<(), kube::Error> {
    let (current, update) = revisions(client, set, caches).await?;
    let name = set.name_any();
    let owned = caches.pods.controlled_by(set);
    let pods: BTreeMap<i32, Arc<CachedPod>> = owned
        .iter()
        .filter_map(|p| Some((ordinal(&name, &p.name_any())?, p.clone())))
        .collect();
    for step in plan(set, &pods, &update.name) {
        match step {
            Step::Create(ordinal, at_current) => {
                ensure_claims(client, set, &caches.claims, ordinal).await?;
                let revision = if at_current { &current } else { &update };
                let pod = pod_for(set, revision, ordinal)?;
                match crate::pods::create(client, &pod).await {
                    Ok(_) => {
                        let message = format!(
                            "create Pod {} in StatefulSet {name} successful",
                            pod.name_any()
                        );
                        announce(client, set, "SuccessfulCreate", &message).await;
                    }
                    // Made already; the cache is behind.
                    Err(kube::Error::Api(status)) if status.code == 409 => {}
                    Err(error) => return Err(error),
                }
            }
            Step::Delete(pod) => {
                if crate::pods::delete(client, &pod).await? {
                    let message = format!(
                        "delete Pod {} in StatefulSet {name} successful",
                        pod.name_any()
                    );
                    announce(client, set, "SuccessfulDelete", &message).await;
                }
            }
        }
    }
    let used: HashSet<String> = [current.name.clone(), update.name.clone()]
        .into_iter()
        .chain(
            owned
                .iter()
                .filter_map(|p| p.labels().get(HASH_LABEL).map(str::to_string)),
        )
        .collect();
    let limit = set
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10);
    crate::revisions::prune(client, set, &caches.revisions, (&used, limit)).await?;
    report(client, set, &pods, (&current.name, &update.name)).await
}

/// The set's status from its pods, written when it changed. Once every pod is of the
/// update revision and ready, that revision becomes the current one.
async fn report(
    client: &Client,
    set: &StatefulSet,
    pods: &BTreeMap<i32, Arc<CachedPod>>,
    (current, update): (&str, &str),
) -> Result<(), kube::Error> {
    let live: Vec<&Arc<CachedPod>> = pods
        .values()
        .filter(|p| !crate::pods::finished(p))
        .collect();
    let at = |revision: &str| {
        live.iter()
            .filter(|p| p.labels().get(HASH_LABEL) == Some(revision))
            .count() as i32
    };
    let replicas = live.len() as i32;
    let ready_count = live.iter().filter(|p| running_and_ready(p)).count() as i32;
    let updated = at(update);
    let wanted = set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let rolled = updated == wanted && replicas == wanted && ready_count == wanted;
    let current = if rolled { update } else { current };
    let current_count = at(current);
    let previous = set.status.clone().unwrap_or_default();
    let unchanged = previous.replicas == replicas
        && previous.ready_replicas.unwrap_or(0) == ready_count
        && previous.available_replicas.unwrap_or(0) == ready_count
        && previous.updated_replicas.unwrap_or(0) == updated
        && previous.current_replicas.unwrap_or(0) == current_count
        && previous.current_revision.as_deref() == Some(current)
        && previous.update_revision.as_deref() == Some(update)
        && previous.observed_generation == set.metadata.generation;
    if unchanged {
        return Ok(());
    }
    let status = json!({"status": {
        "replicas": replicas,
        "readyReplicas": ready_count,
        "availableReplicas": ready_count,
        "currentReplicas": current_count,
        "updatedReplicas": updated,
        "currentRevision": current,
        "updateRevision": update,
        "observedGeneration": set.metadata.generation,
        "collisionCount": 0,
    }});
    let api: Api<StatefulSet> =
        Api::namespaced(client.clone(), &set.namespace().unwrap_or_default());
    api.patch_status(
        &set.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&status),
    )
    .await
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(replicas: i32, policy: &str, partition: i32) -> StatefulSet {
        serde_json::from_value(json!({"metadata": {"name": "web", "uid": "u"}, "spec": {
            "replicas": replicas, "podManagementPolicy": policy, "serviceName": "web",
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}},
            "selector": {"matchLabels": {"app": "web"}},
            "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {}}],
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": "i"}]}}}}))
        .unwrap()
    }

    fn pod(ordinal: i32, revision: &str, ready: bool) -> (i32, Arc<CachedPod>) {
        let status = if ready {
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]})
        } else {
            json!({"phase": "Pending"})
        };
        let pod = json!({"metadata": {"name": format!("web-{ordinal}"),
                                      "labels": {HASH_LABEL: revision}}, "status": status});
        (ordinal, Arc::new(serde_json::from_value(pod).unwrap()))
    }

    fn names(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .map(|s| match s {
                Step::Create(ordinal, _) => format!("+{ordinal}"),
                Step::Delete(pod) => format!("-{}", pod.name_any()),
            })
            .collect()
    }

    #[test]
    fn ordinals_are_the_names_numbers() {
        assert_eq!(ordinal("web", "web-12"), Some(12));
        assert_eq!(ordinal("web", "web-x"), None);
        assert_eq!(ordinal("web", "webby-1"), None);
        assert_eq!(ordinal("web", "web--1"), None);
    }

    #[test]
    fn ordered_pods_wait_for_their_predecessors() {
        let set = set(3, "OrderedReady", 0);
        let none = BTreeMap::new();
        assert_eq!(names(&plan(&set, &none, "r")), ["+0"]);
        let starting = BTreeMap::from([pod(0, "r", false)]);
        assert!(plan(&set, &starting, "r").is_empty());
        let one = BTreeMap::from([pod(0, "r", true)]);
        assert_eq!(names(&plan(&set, &one, "r")), ["+1"]);
        let parallel = super::tests::set(3, "Parallel", 0);
        assert_eq!(names(&plan(&parallel, &none, "r")), ["+0", "+1", "+2"]);
    }

    #[test]
    fn scaling_down_and_updates_go_from_the_top() {
        let set = set(1, "OrderedReady", 0);
        let three = BTreeMap::from([pod(0, "r", true), pod(1, "r", true), pod(2, "r", true)]);
        assert_eq!(names(&plan(&set, &three, "r")), ["-web-2"]);
        let set = super::tests::set(3, "OrderedReady", 1);
        assert_eq!(names(&plan(&set, &three, "new")), ["-web-2"]);
        let two_done = BTreeMap::from([pod(0, "r", true), pod(1, "r", true), pod(2, "new", true)]);
        assert_eq!(names(&plan(&set, &two_done, "new")), ["-web-1"]);
        // The partition keeps web-0 at the old revision.
        let done = BTreeMap::from([pod(0, "r", true), pod(1, "new", true), pod(2, "new", true)]);
        assert!(plan(&set, &done, "new").is_empty());
    }

    #[test]
    fn pods_get_their_identity_and_claims() {
        let set = set(3, "OrderedReady", 0);
        let revision = Revision {
            name: "web-abc".into(),
            hash: "abc".into(),
            template: set.spec.clone().unwrap().template,
        };
        let pod = pod_for(&set, &revision, 1).unwrap();
        assert_eq!(pod.name_any(), "web-1");
        let labels = pod.labels();
        assert_eq!(labels["apps.kubernetes.io/pod-index"], "1");
        assert_eq!(labels["statefulset.kubernetes.io/pod-name"], "web-1");
        assert_eq!(labels[HASH_LABEL], "web-abc");
        let spec = pod.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("web-1"));
        assert_eq!(spec.subdomain.as_deref(), Some("web"));
        let volume = &spec.volumes.unwrap()[0];
        let claim = volume.persistent_volume_claim.as_ref().unwrap();
        assert_eq!(
            (volume.name.as_str(), claim.claim_name.as_str()),
            ("www", "www-web-1")
        );
    }
}
