//! ControllerRevisions: the history of a DaemonSet's or StatefulSet's pod template, as
//! kube-controller-manager keeps it — one revision per distinct template, named
//! `<owner>-<hash>`, numbered in the order they became current, holding the template
//! itself. Pods say which revision made them in their `controller-revision-hash` label,
//! so a rollout can tell old pods from new, a StatefulSet can remake a pod of the
//! current revision while another rolls out, and `kubectl rollout history` lists them.

use std::collections::HashSet;
use std::sync::Arc;

use berth_runner::Cache;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

/// The label of pods (and revisions) naming the revision that made them.
pub(crate) const HASH_LABEL: &str = "controller-revision-hash";

/// One revision of an owner's template.
pub(crate) struct Revision {
    /// `<owner>-<hash>`.
    pub(crate) name: String,
    /// The template's hash.
    pub(crate) hash: String,
    /// The template.
    pub(crate) template: PodTemplateSpec,
}

/// The template a revision holds: its data's `spec.template`.
fn template_of(revision: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut template = revision
        .data
        .as_ref()?
        .0
        .get("spec")?
        .get("template")?
        .clone();
    if let Some(map) = template.as_object_mut() {
        map.remove("$patch");
    }
    serde_json::from_value(template).ok()
}

/// The revisions `owner` controls, oldest first.
fn owned<O: Resource<DynamicType = ()>>(
    owner: &O,
    revisions: &Cache<ControllerRevision>,
) -> Vec<Arc<ControllerRevision>> {
    let mut owned = revisions.controlled_by(owner);
    owned.sort_by_key(|r| r.revision);
    owned
}

/// The revision named `name` of `owner`, if it is still kept.
pub(crate) fn find<O: Resource<DynamicType = ()>>(
    owner: &O,
    revisions: &Cache<ControllerRevision>,
    name: &str,
) -> Option<Revision> {
    let revision = owned(owner, revisions)
        .into_iter()
        .find(|r| r.name_any() == name)?;
    Some(Revision {
        name: name.to_string(),
        hash: revision
            .labels()
            .get(HASH_LABEL)
            .cloned()
            .unwrap_or_default(),
        template: template_of(&revision)?,
    })
}

/// The revision of `template`, the owner's current one: made when new, renumbered as
/// the newest when an older one comes back (a rollback).
pub(crate) async fn current<O: Resource<DynamicType = ()>>(
    client: &Client,
    owner: &O,
    template: &PodTemplateSpec,
    revisions: &Cache<ControllerRevision>,
) -> Result<Revision, kube::Error> {
    let hash = crate::deployments::template_hash(template);
    let name = format!("{}-{hash}", owner.name_any());
    let owned = owned(owner, revisions);
    let newest = owned.iter().map(|r| r.revision).max().unwrap_or(0);
    let api: Api<ControllerRevision> =
        Api::namespaced(client.clone(), &owner.namespace().unwrap_or_default());
    match owned.iter().find(|r| r.name_any() == name) {
        Some(found) if found.revision < newest => {
            let patch = json!({"revision": newest + 1});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        Some(_) => {}
        None => {
            let mut labels = template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            labels.insert(HASH_LABEL.into(), hash.clone());
            let mut data = serde_json::to_value(template).map_err(kube::Error::SerdeError)?;
            data["$patch"] = json!("replace");
            let revision = json!({
                "metadata": {
                    "name": name, "namespace": owner.namespace(), "labels": labels,
                    "ownerReferences": [crate::pods::controller_reference(owner)],
                },
                "data": {"spec": {"template": data}},
                "revision": newest + 1,
            });
            let revision: ControllerRevision =
                serde_json::from_value(revision).map_err(kube::Error::SerdeError)?;
            match api.create(&PostParams::default(), &revision).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(error) => return Err(error),
            }
        }
    }
    Ok(Revision {
        name,
        hash,
        template: template.clone(),
    })
}

/// Deletes the oldest revisions beyond `limit` that no pod uses (their names or
/// hashes are not in `used`).
pub(crate) async fn prune<O: Resource<DynamicType = ()>>(
    client: &Client,
    owner: &O,
    revisions: &Cache<ControllerRevision>,
    (used, limit): (&HashSet<String>, i32),
) -> Result<(), kube::Error> {
    let idle: Vec<_> = owned(owner, revisions)
        .into_iter()
        .filter(|r| {
            let hash = r.labels().get(HASH_LABEL).cloned().unwrap_or_default();
            !used.contains(&r.name_any()) && !used.contains(&hash)
        })
        .collect();
    let excess = idle.len().saturating_sub(limit.max(0) as usize);
    let api: Api<ControllerRevision> =
        Api::namespaced(client.clone(), &owner.namespace().unwrap_or_default());
    for revision in idle.into_iter().take(excess) {
        match api
            .delete(&revision.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}
