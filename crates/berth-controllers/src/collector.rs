//! The garbage collector: deletes pods, ReplicaSets and Jobs whose owners are all gone — those
//! a controller made while its owner was being deleted, or whose owner was removed
//! without cascading — as kube-controller-manager's garbage collector does. An owner is
//! gone when no object of its kind, name and uid exists.

use std::collections::HashMap;
use std::time::Duration;

use berth_runner::Cache;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client, ResourceExt};

use berth_runner::Informers;

use crate::watched::Watched;

/// The longest a collection waits when nothing changed; the shortest between two.
const RETRY: Duration = Duration::from_secs(5);
const PAUSE: Duration = Duration::from_millis(500);

/// Runs the collector until the client's watches end.
pub async fn run(client: Client, informers: Informers) {
    let mut watched = Watched::new(&informers);
    let pods = watched.cache::<Pod>().await;
    let sets = watched.cache::<ReplicaSet>().await;
    let jobs = watched.cache::<Job>().await;
    loop {
        let mut owners = HashMap::new();
        collect(&client, &sets, &mut owners).await;
        collect(&client, &jobs, &mut owners).await;
        collect(&client, &pods, &mut owners).await;
        tokio::time::sleep(PAUSE).await;
        if !watched.next_change(RETRY).await {
            return;
        }
    }
}

/// Deletes the objects of `store` none of whose owners exist. `owners` remembers, for
/// this pass, which owners (by uid) were found.
async fn collect<K>(client: &Client, store: &Cache<K>, owners: &mut HashMap<String, bool>)
where
    K: berth_runner::Cached + kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
{
    for object in store.state() {
        let references = object.owner_references();
        if references.is_empty() || object.meta().deletion_timestamp.is_some() {
            continue;
        }
        let namespace = object.namespace().unwrap_or_default();
        let mut orphaned = true;
        for reference in references {
            let alive = match owners.get(&reference.uid) {
                Some(alive) => *alive,
                None => {
                    let alive = exists(client, &namespace, reference).await;
                    owners.insert(reference.uid.clone(), alive);
                    alive
                }
            };
            orphaned &= !alive;
        }
        if orphaned {
            let api: Api<K> = Api::namespaced(client.clone(), &namespace);
            match api
                .delete(&object.name_any(), &DeleteParams::background())
                .await
            {
                Ok(_) => {
                    tracing::info!(object = %object.name_any(), "collected: its owners are gone")
                }
                Err(error) => tracing::debug!(%error, "could not collect an orphan"),
            }
        }
    }
}

/// Whether the owner a reference names exists (same uid). Unreadable counts as alive:
/// nothing is deleted on doubt.
async fn exists(client: &Client, namespace: &str, reference: &OwnerReference) -> bool {
    let (group, version) = match reference.api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", reference.api_version.as_str()),
    };
    let kind = GroupVersionKind::gvk(group, version, &reference.kind);
    let resource = ApiResource::from_gvk(&kind);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    match api.get_opt(&reference.name).await {
        Ok(Some(owner)) => owner.uid().as_deref() == Some(reference.uid.as_str()),
        Ok(None) => false,
        Err(_) => true,
    }
}
