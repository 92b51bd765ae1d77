//! The local-path provisioner, as k3s bundles Rancher's: a claim of a StorageClass whose
//! provisioner is [`PROVISIONER`] gets a PersistentVolume that is a directory on one
//! node — the node the scheduler chose for the claim's first pod (the class binds
//! WaitForFirstConsumer) — under the storage folder that node's agent reports in its
//! [`STORAGE_ANNOTATION`]. The volume's node affinity keeps every later pod of the
//! claim on that node; the agent makes the directory when a pod mounts it. A deleted
//! claim releases its volume, which goes too when its reclaim policy is Delete.

use berth_runner::{Action, Cache, Controller, Informers};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::scheduler::SELECTED_NODE;

/// The provisioner name of Berth's local volumes.
pub const PROVISIONER: &str = "berth.dev/local-path";

/// The Node annotation naming the folder its agent keeps local volumes in.
pub const STORAGE_ANNOTATION: &str = "berth.dev/local-storage";

/// What the provisioner watches.
struct Caches {
    claims: Cache<PersistentVolumeClaim>,
    volumes: Cache<PersistentVolume>,
    classes: Cache<StorageClass>,
    nodes: Cache<Node>,
}

/// Runs the provisioner until the client's watches end: a controller of claims (called
/// when a claim, its class or its selected node changes) and one of volumes (called
/// when a volume or the claim it was made for changes).
pub async fn run(client: Client, informers: Informers) {
    let caches = Caches {
        claims: informers.cache().await,
        volumes: informers.cache().await,
        classes: informers.cache().await,
        nodes: informers.cache().await,
    };
    let (client, caches) = (&client, &caches);
    let claims = {
        let claims = caches.claims.clone();
        Controller::<PersistentVolumeClaim>::new(&informers)
            .await
            .watches::<StorageClass>({
                let claims = claims.clone();
                move |_| claims.keys(|_| true)
            })
            .await
            .watches::<Node>(move |node| {
                let name = node.name_any();
                claims.keys(|c| c.annotations().get(SELECTED_NODE) == Some(&name))
            })
            .await
    };
    let volumes = Controller::<PersistentVolume>::new(&informers)
        .await
        .watches::<PersistentVolumeClaim>(|claim| {
            vec![ObjectRef::new(&format!(
                "pvc-{}",
                claim.uid().unwrap_or_default()
            ))]
        })
        .await;
    tokio::join!(
        claims.run(|claim| async move {
            provision(client, caches, &claim).await?;
            Ok(Action::AwaitChange)
        }),
        volumes.run(|volume| async move {
            reclaim(client, caches, &volume).await?;
            Ok(Action::AwaitChange)
        }),
    );
}

/// Makes and binds the claim's volume, when it is one of ours, unbound and placed.
async fn provision(
    client: &Client,
    caches: &Caches,
    claim: &PersistentVolumeClaim,
) -> Result<(), kube::Error> {
    let spec = claim.spec.clone().unwrap_or_default();
    let unbound = spec.volume_name.as_deref().unwrap_or_default().is_empty();
    let class = spec
        .storage_class_name
        .as_deref()
        .and_then(|name| caches.classes.get(&ObjectRef::new(name)));
    let ours = class.as_ref().is_some_and(|c| c.provisioner == PROVISIONER);
    let node = claim
        .annotations()
        .get(SELECTED_NODE)
        .and_then(|name| caches.nodes.get(&ObjectRef::new(name)));
    let (Some(class), Some(node), true, true) = (class, node, unbound, ours) else {
        return Ok(());
    };
    if claim.metadata.deletion_timestamp.is_some() {
        return Ok(());
    }
    let Some(folder) = node.annotations().get(STORAGE_ANNOTATION) else {
        tracing::debug!(node = %node.name_any(), "the node reports no local storage folder yet");
        return Ok(());
    };
    let namespace = claim.namespace().unwrap_or_default();
    let name = format!("pvc-{}", claim.uid().unwrap_or_default());
    if caches.volumes.get(&ObjectRef::new(&name)).is_none() {
        let path = format!("{folder}/{name}_{namespace}_{}", claim.name_any());
        let volume: PersistentVolume =
            serde_json::from_value(volume_for(claim, &class, (&name, &node.name_any(), &path)))
                .map_err(kube::Error::SerdeError)?;
        let volumes: Api<PersistentVolume> = Api::all(client.clone());
        match volumes.create(&PostParams::default(), &volume).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(error) => return Err(error),
        }
    }
    bind(client, claim, &name).await
}

/// The volume for `claim`: `name`, a directory at `path` on `node`.
fn volume_for(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    (name, node, path): (&str, &str, &str),
) -> Value {
    let spec = claim.spec.clone().unwrap_or_default();
    let size = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map_or("0".to_string(), |q| q.0.clone());
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": name,
            "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
        },
        "spec": {
            "capacity": {"storage": size},
            "accessModes": spec.access_modes.unwrap_or_else(|| vec!["ReadWriteOnce".into()]),
            "persistentVolumeReclaimPolicy": class.reclaim_policy.clone().unwrap_or_else(|| "Delete".into()),
            "storageClassName": class.name_any(),
            "volumeMode": "Filesystem",
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": claim.namespace(),
                "name": claim.name_any(),
                "uid": claim.uid(),
            },
            "hostPath": {"path": path, "type": "DirectoryOrCreate"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]},
            ]}]}},
        },
    })
}

/// Binds the claim and its volume to each other, as the PV controller does.
async fn bind(
    client: &Client,
    claim: &PersistentVolumeClaim,
    volume: &str,
) -> Result<(), kube::Error> {
    let params = PatchParams::default();
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let bound = json!({"status": {"phase": "Bound"}});
    volumes
        .patch_status(volume, &params, &Patch::Merge(&bound))
        .await?;
    let claims: Api<PersistentVolumeClaim> =
        Api::namespaced(client.clone(), &claim.namespace().unwrap_or_default());
    let spec = claim.spec.clone().unwrap_or_default();
    let binding = json!({
        "metadata": {"annotations": {"pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes"}},
        "spec": {"volumeName": volume},
    });
    claims
        .patch(&claim.name_any(), &params, &Patch::Merge(&binding))
        .await?;
    let size = spec
        .resources
        .and_then(|r| r.requests)
        .and_then(|r| r.get("storage").cloned());
    let status = json!({"status": {
        "phase": "Bound",
        "accessModes": spec.access_modes,
        "capacity": {"storage": size},
    }});
    claims
        .patch_status(&claim.name_any(), &params, &Patch::Merge(&status))
        .await
        .map(drop)
}

/// A volume of ours whose claim is gone: deleted under the Delete policy, else Released.
async fn reclaim(
    client: &Client,
    caches: &Caches,
    volume: &PersistentVolume,
) -> Result<(), kube::Error> {
    let provisioned = volume.annotations().get("pv.kubernetes.io/provisioned-by");
    let spec = volume.spec.clone().unwrap_or_default();
    let claim = spec.claim_ref.as_ref();
    let claimed = claim.is_none_or(|claim| {
        let key = ObjectRef::new(claim.name.as_deref().unwrap_or_default())
            .within(claim.namespace.as_deref().unwrap_or_default());
        caches
            .claims
            .get(&key)
            .is_some_and(|c| c.uid() == claim.uid)
    });
    let phase = volume.status.as_ref().and_then(|s| s.phase.as_deref());
    if provisioned.map(String::as_str) != Some(PROVISIONER) || claimed || phase == Some("Released")
    {
        return Ok(());
    }
    let api: Api<PersistentVolume> = Api::all(client.clone());
    if spec.persistent_volume_reclaim_policy.as_deref() == Some("Retain") {
        let released = json!({"status": {"phase": "Released"}});
        api.patch_status(
            &volume.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&released),
        )
        .await?;
    } else {
        match api
            .delete(&volume.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}
