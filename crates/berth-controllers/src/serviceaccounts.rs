//! Every namespace's `default` ServiceAccount and `kube-root-ca.crt` ConfigMap (the
//! cluster CA, which pods' projected tokens come with), as kube-controller-manager's
//! serviceaccounts controller and root-ca-cert-publisher keep them: made in each active
//! namespace, made again when deleted, the CA written again when it differs.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use berth_runner::Informers;

use crate::watched::Watched;

/// The ConfigMap of the cluster CA in every namespace.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";

/// How soon a failed write is tried again.
const RETRY: Duration = Duration::from_secs(2);

/// How often everything is looked over when nothing changed.
const RECHECK: Duration = Duration::from_secs(60);

/// Runs both until the client's watches end; `root_ca` is the cluster CA's PEM.
pub async fn run(client: Client, informers: Informers, root_ca: String) {
    let mut watched = Watched::new(&informers);
    let namespaces = watched.cache::<Namespace>().await;
    let accounts = watched.cache::<ServiceAccount>().await;
    let maps = watched.cache::<ConfigMap>().await;
    loop {
        let with_default: BTreeSet<String> = accounts
            .state()
            .iter()
            .filter(|a| a.name_any() == "default")
            .filter_map(|a| a.namespace())
            .collect();
        let published: BTreeSet<String> = maps
            .state()
            .iter()
            .filter(|m| m.name_any() == ROOT_CA_CONFIG_MAP)
            .filter(|m| m.data.as_ref().and_then(|d| d.get("ca.crt")) == Some(&root_ca))
            .filter_map(|m| m.namespace())
            .collect();
        let mut retry = false;
        for namespace in namespaces.state().iter().filter(|n| active(n)) {
            let name = namespace.name_any();
            if !with_default.contains(&name) {
                retry |= !make_default_account(&client, &name).await;
            }
            if !published.contains(&name) {
                retry |= !publish_root_ca(&client, &name, &root_ca).await;
            }
        }
        let wait = if retry { RETRY } else { RECHECK };
        if !watched.next_change(wait).await {
            return;
        }
    }
}

fn active(namespace: &Namespace) -> bool {
    namespace.metadata.deletion_timestamp.is_none()
        && namespace.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating")
}

/// Makes the namespace's `default` account; false when it could not.
async fn make_default_account(client: &Client, namespace: &str) -> bool {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("default".into()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    match api.create(&PostParams::default(), &account).await {
        Ok(_) => true,
        Err(kube::Error::Api(status)) if status.code == 409 => true,
        Err(error) => {
            tracing::warn!(%error, namespace, "could not make the default ServiceAccount");
            false
        }
    }
}

/// Writes the CA into the namespace's `kube-root-ca.crt`; false when it could not.
async fn publish_root_ca(client: &Client, namespace: &str, root_ca: &str) -> bool {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let map = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": ROOT_CA_CONFIG_MAP,
            "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."},
        },
        "data": {"ca.crt": root_ca},
    });
    let params = PatchParams::apply("root-ca-cert-publisher").force();
    match api
        .patch(ROOT_CA_CONFIG_MAP, &params, &Patch::Apply(&map))
        .await
    {
        Ok(_) => true,
        Err(error) => {
            tracing::warn!(%error, namespace, "could not publish the root CA");
            false
        }
    }
}
