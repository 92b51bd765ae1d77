//! The Deployment controller: each version of a Deployment's pod template gets a
//! ReplicaSet of its own (named by the template's hash, with a revision number), and a
//! rollout moves replicas from the old ReplicaSets to the new one — Recreate: all old
//! ones to zero first; RollingUpdate: never more than maxSurge above the declared count
//! nor maxUnavailable below it. Rolling back is making an old template current again:
//! its ReplicaSet becomes the new one with the next revision. The status and the
//! Available and Progressing conditions are what `kubectl rollout status` reads; the
//! revision annotations are what `kubectl rollout history|undo` read.

use std::sync::Arc;
use std::time::Duration;

use berth_runner::{Action, Cache, Controller, Informers};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use sha2::Digest;

const REVISION: &str = "deployment.kubernetes.io/revision";
const HASH_LABEL: &str = "pod-template-hash";

/// Runs the controller until the client's watches end: called for each Deployment, and
/// for a Deployment when one of its ReplicaSets changes.
pub async fn run(client: Client, informers: Informers) {
    let sets = informers.cache::<ReplicaSet>().await;
    let controller = Controller::<Deployment>::new(&informers)
        .await
        .owns::<ReplicaSet>()
        .await;
    controller
        .run(|deployment| {
            let (client, sets) = (&client, &sets);
            async move {
                if deployment.metadata.deletion_timestamp.is_some() {
                    return Ok(Action::AwaitChange);
                }
                reconcile(client, &deployment, sets).await?;
                Ok(next_look(&deployment))
            }
        })
        .await;
}

/// When a rollout in progress needs a look though nothing changes: when its progress
/// deadline passes, counted from its Progressing condition's last update. A status
/// write changes the Deployment, and so brings a call with the new condition.
fn next_look(deployment: &Deployment) -> Action {
    let deadline = deployment
        .spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds);
    let conditions = deployment
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref());
    let progressing = conditions
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "Progressing")
        .filter(|c| c.reason.as_deref() == Some("ReplicaSetUpdated"));
    let since = progressing.and_then(|c| c.last_update_time.as_ref());
    match since.zip(deadline) {
        Some((since, deadline)) => {
            let end = since.0 + k8s_openapi::jiff::SignedDuration::from_secs(deadline.into());
            let left = end.duration_since(k8s_openapi::jiff::Timestamp::now());
            Action::RequeueAfter(
                Duration::try_from(left)
                    .unwrap_or_default()
                    .max(Duration::from_secs(1)),
            )
        }
        None => Action::AwaitChange,
    }
}

fn revision(set: &ReplicaSet) -> i64 {
    set.annotations()
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn replicas(set: &ReplicaSet) -> i32 {
    set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn available(set: &ReplicaSet) -> i32 {
    set.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// The template without the hash label, as JSON: what makes two versions the same.
fn template_key(template: &PodTemplateSpec) -> String {
    let mut template = template.clone();
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(HASH_LABEL);
    }
    serde_json::to_string(&template).unwrap_or_default()
}

/// The template's hash, in the alphabet Kubernetes uses for generated names.
pub(crate) fn template_hash(template: &PodTemplateSpec) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    sha2::Sha256::digest(template_key(template).as_bytes())
        .iter()
        .take(10)
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

/// maxSurge or maxUnavailable as a count of `desired` (percentages rounded up for surge,
/// down for unavailability, as Kubernetes does).
pub(crate) fn resolve(
    value: Option<&IntOrString>,
    desired: i32,
    round_up: bool,
    default: &str,
) -> i32 {
    let fallback = IntOrString::String(default.into());
    match value.unwrap_or(&fallback) {
        IntOrString::Int(n) => *n,
        IntOrString::String(text) => {
            let percent: f64 = text.trim_end_matches('%').parse().unwrap_or(0.0);
            let exact = f64::from(desired) * percent / 100.0;
            (if round_up {
                exact.ceil()
            } else {
                exact.floor()
            }) as i32
        }
    }
}

async fn reconcile(
    client: &Client,
    deployment: &Deployment,
    sets: &Cache<ReplicaSet>,
) -> Result<(), kube::Error> {
    let namespace = deployment.namespace().unwrap_or_default();
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), &namespace);
    let spec = deployment.spec.clone().unwrap_or_default();
    let desired = spec.replicas.unwrap_or(1);
    let mut owned = sets.controlled_by(deployment);
    owned.sort_by_key(|s| revision(s));
    let key = template_key(&spec.template);
    let max_revision = owned.iter().map(|s| revision(s)).max().unwrap_or(0);
    let current = owned.iter().position(|s| {
        s.spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .map(template_key)
            == Some(key.clone())
    });
    let paused = spec.paused.unwrap_or(false);
    let new = match current {
        Some(index) => {
            let set = owned.remove(index);
            if revision(&set) < max_revision && !paused {
                // A rollback: the old template is the newest revision again.
                let bump = json!({"metadata": {"annotations": {REVISION: (max_revision + 1).to_string()}}});
                Arc::new(
                    api.patch(
                        &set.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&bump),
                    )
                    .await?,
                )
            } else {
                set
            }
        }
        None if paused => return report(client, deployment, None, &owned).await,
        None => Arc::new(create_set(&api, deployment, max_revision + 1).await?),
    };
    annotate_revision(client, deployment, revision(&new)).await?;
    if !paused {
        roll(&api, deployment, (&new, &owned), desired).await?;
        prune_history(&api, &owned, spec.revision_history_limit.unwrap_or(10)).await?;
    }
    report(client, deployment, Some(&new), &owned).await
}

/// The ReplicaSet of the deployment's current template, at zero replicas.
async fn create_set(
    api: &Api<ReplicaSet>,
    deployment: &Deployment,
    revision: i64,
) -> Result<ReplicaSet, kube::Error> {
    let spec = deployment.spec.clone().unwrap_or_default();
    let hash = template_hash(&spec.template);
    let mut template = spec.template.clone();
    let metadata = template.metadata.get_or_insert_default();
    metadata
        .labels
        .get_or_insert_default()
        .insert(HASH_LABEL.into(), hash.clone());
    let labels = metadata.labels.clone();
    let mut selector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_default()
        .insert(HASH_LABEL.into(), hash.clone());
    let set = json!({
        "metadata": {
            "name": format!("{}-{hash}", deployment.name_any()),
            "labels": labels,
            "annotations": {
                REVISION: revision.to_string(),
                "deployment.kubernetes.io/desired-replicas": spec.replicas.unwrap_or(1).to_string(),
            },
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "Deployment", "name": deployment.name_any(),
                "uid": deployment.uid(), "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "replicas": 0,
            "minReadySeconds": spec.min_ready_seconds,
            "selector": selector,
            "template": template,
        },
    });
    let set: ReplicaSet = serde_json::from_value(set).map_err(kube::Error::SerdeError)?;
    api.create(&PostParams::default(), &set).await
}

async fn annotate_revision(
    client: &Client,
    deployment: &Deployment,
    revision: i64,
) -> Result<(), kube::Error> {
    let text = revision.to_string();
    if deployment.annotations().get(REVISION) == Some(&text) {
        return Ok(());
    }
    let api: Api<Deployment> =
        Api::namespaced(client.clone(), &deployment.namespace().unwrap_or_default());
    let patch = json!({"metadata": {"annotations": {REVISION: text}}});
    api.patch(
        &deployment.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map(drop)
}

async fn scale(api: &Api<ReplicaSet>, set: &ReplicaSet, replicas: i32) -> Result<(), kube::Error> {
    if self::replicas(set) == replicas {
        return Ok(());
    }
    let patch = json!({"spec": {"replicas": replicas}});
    api.patch(
        &set.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map(drop)
}

/// One step of the rollout toward `desired` replicas of the new set.
async fn roll(
    api: &Api<ReplicaSet>,
    deployment: &Deployment,
    (new, old): (&ReplicaSet, &[Arc<ReplicaSet>]),
    desired: i32,
) -> Result<(), kube::Error> {
    let strategy = deployment
        .spec
        .as_ref()
        .and_then(|s| s.strategy.clone())
        .unwrap_or_default();
    let old_running: i32 = old.iter().map(|s| replicas(s)).sum();
    if strategy.type_.as_deref() == Some("Recreate") {
        for set in old {
            scale(api, set, 0).await?;
        }
        let old_pods: i32 = old
            .iter()
            .map(|s| s.status.as_ref().map_or(0, |s| s.replicas))
            .sum();
        if old_pods == 0 {
            scale(api, new, desired).await?;
        }
        return Ok(());
    }
    let rolling = strategy.rolling_update.unwrap_or_default();
    let surge = resolve(rolling.max_surge.as_ref(), desired, true, "25%");
    let mut unavailable = resolve(rolling.max_unavailable.as_ref(), desired, false, "25%");
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    let new_replicas = replicas(new);
    let total = old_running + new_replicas;
    let mut new_target = new_replicas;
    if new_replicas < desired {
        let room = (desired + surge - total).min(desired - new_replicas);
        new_target += room.max(0);
    } else if old_running == 0 {
        new_target = desired;
    }
    if new_target != new_replicas {
        // As kube-controller-manager: a step that grows the new set shrinks nothing;
        // the next one counts the new pods as unavailable until they are.
        return scale(api, new, new_target).await;
    }
    // Old sets shrink as far as availability allows.
    let min_available = desired - unavailable;
    let new_unavailable = (new_target - available(new)).max(0);
    let mut budget = (old_running + new_target) - min_available - new_unavailable;
    for set in old {
        if budget <= 0 {
            break;
        }
        let cut = replicas(set).min(budget);
        scale(api, set, replicas(set) - cut).await?;
        budget -= cut;
    }
    Ok(())
}

/// Old sets at zero replicas beyond the history limit go, oldest first.
async fn prune_history(
    api: &Api<ReplicaSet>,
    old: &[Arc<ReplicaSet>],
    limit: i32,
) -> Result<(), kube::Error> {
    let idle: Vec<_> = old
        .iter()
        .filter(|s| replicas(s) == 0 && s.status.as_ref().is_none_or(|s| s.replicas == 0))
        .collect();
    let excess = idle.len().saturating_sub(limit.max(0) as usize);
    for set in idle.into_iter().take(excess) {
        match api
            .delete(&set.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Whether the rollout has made no progress for `deadline` seconds: its Progressing
/// condition was last updated (on the last change of counts) that long ago.
fn out_of_time(
    conditions: &[k8s_openapi::api::apps::v1::DeploymentCondition],
    deadline: Option<i32>,
) -> bool {
    let Some(deadline) = deadline else {
        return false;
    };
    let since = conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .and_then(|c| c.last_update_time.as_ref());
    since.is_some_and(|since| {
        k8s_openapi::jiff::Timestamp::now().as_second() - since.0.as_second() >= i64::from(deadline)
    })
}

/// The deployment's status from its sets, written only when it changed.
async fn report(
    client: &Client,
    deployment: &Deployment,
    new: Option<&ReplicaSet>,
    old: &[Arc<ReplicaSet>],
) -> Result<(), kube::Error> {
    let spec = deployment.spec.clone().unwrap_or_default();
    let desired = spec.replicas.unwrap_or(1);
    let status_of = |s: &ReplicaSet| s.status.clone().unwrap_or_default();
    let all: Vec<&ReplicaSet> = old.iter().map(|s| s.as_ref()).chain(new).collect();
    let sum = |f: &dyn Fn(&k8s_openapi::api::apps::v1::ReplicaSetStatus) -> i32| -> i32 {
        all.iter().map(|s| f(&status_of(s))).sum()
    };
    let replicas = sum(&|s| s.replicas);
    let ready = sum(&|s| s.ready_replicas.unwrap_or(0));
    let available_count = sum(&|s| s.available_replicas.unwrap_or(0));
    let updated = new.map_or(0, |s| status_of(s).replicas);
    let unavailable = spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .map_or(0, |r| {
            resolve(r.max_unavailable.as_ref(), desired, false, "25%")
        });
    let complete = updated == desired && replicas == desired && available_count == desired;
    let previous = deployment.status.clone().unwrap_or_default();
    let conditions = previous.conditions.clone().unwrap_or_default();
    let condition_is = |kind: &str, reason: &str| {
        conditions
            .iter()
            .any(|c| c.type_ == kind && c.reason.as_deref() == Some(reason))
    };
    let (progress_reason, progress_message) = match (complete, new) {
        (true, Some(set)) => (
            "NewReplicaSetAvailable",
            format!(
                "ReplicaSet \"{}\" has successfully progressed.",
                set.name_any()
            ),
        ),
        (_, Some(set)) => (
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{}\" is progressing.", set.name_any()),
        ),
        (_, None) => ("DeploymentPaused", "Deployment is paused".to_string()),
    };
    let counts_unchanged = previous.replicas == Some(replicas)
        && previous.updated_replicas == Some(updated)
        && previous.ready_replicas == Some(ready)
        && previous.available_replicas == Some(available_count);
    let stalled = !complete
        && counts_unchanged
        && new.is_some()
        && (condition_is("Progressing", "ProgressDeadlineExceeded")
            || out_of_time(&conditions, spec.progress_deadline_seconds));
    let (progress_status, progress_reason, progress_message) = match new {
        Some(set) if stalled => (
            "False",
            "ProgressDeadlineExceeded",
            format!(
                "ReplicaSet \"{}\" has timed out progressing.",
                set.name_any()
            ),
        ),
        _ => ("True", progress_reason, progress_message),
    };
    let available_reason = if available_count >= desired - unavailable {
        "MinimumReplicasAvailable"
    } else {
        "MinimumReplicasUnavailable"
    };
    let unchanged = counts_unchanged
        && previous.observed_generation == deployment.metadata.generation
        && condition_is("Progressing", progress_reason)
        && condition_is("Available", available_reason);
    if unchanged {
        return Ok(());
    }
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({"type": kind, "status": status, "reason": reason, "message": message,
               "lastUpdateTime": now, "lastTransitionTime": now})
    };
    let available_status = if available_reason == "MinimumReplicasAvailable" {
        "True"
    } else {
        "False"
    };
    let patch = json!({"status": {
        "replicas": replicas,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available_count,
        "unavailableReplicas": (desired - available_count).max(0),
        "observedGeneration": deployment.metadata.generation,
        "conditions": [
            condition("Available", available_status, available_reason, "Deployment has minimum availability."),
            condition("Progressing", progress_status, progress_reason, &progress_message),
        ],
    }});
    let api: Api<Deployment> =
        Api::namespaced(client.clone(), &deployment.namespace().unwrap_or_default());
    api.patch_status(
        &deployment.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn surge_rounds_up_and_unavailability_down() {
        let quarter = IntOrString::String("25%".into());
        assert_eq!(resolve(Some(&quarter), 3, true, "25%"), 1);
        assert_eq!(resolve(Some(&quarter), 3, false, "25%"), 0);
        assert_eq!(resolve(Some(&IntOrString::Int(2)), 3, false, "25%"), 2);
        assert_eq!(resolve(None, 8, false, "25%"), 2);
    }

    #[test]
    fn hashes_ignore_their_own_label() {
        let mut template = PodTemplateSpec::default();
        let mut labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        template.metadata.get_or_insert_default().labels = Some(labels.clone());
        let plain = template_hash(&template);
        labels.insert(HASH_LABEL.to_string(), plain.clone());
        template.metadata.get_or_insert_default().labels = Some(labels);
        assert_eq!(template_hash(&template), plain);
        assert_eq!(plain.len(), 10);
    }
}
