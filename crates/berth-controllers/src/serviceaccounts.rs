//! Every namespace's `default` ServiceAccount and `kube-root-ca.crt` ConfigMap (the
//! cluster CA, which pods' projected tokens come with), as kube-controller-manager's
//! serviceaccounts controller and root-ca-cert-publisher keep them: made in each active
//! namespace, made again when deleted, the CA written again when it differs.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use berth_runner::{Action, Controller, Informers};

/// The ConfigMap of the cluster CA in every namespace.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";

/// Runs the controller until the client's watches end: called for each namespace, and
/// for a namespace when its `default` account or its `kube-root-ca.crt` changes.
pub async fn run(client: Client, informers: Informers, root_ca: String) {
    let accounts = informers.cache::<ServiceAccount>().await;
    let maps = informers.cache::<ConfigMap>().await;
    let controller = Controller::<Namespace>::new(&informers)
        .await
        .watches::<ServiceAccount>(|account| namespace_of(account, "default"))
        .await
        .watches::<ConfigMap>(|map| namespace_of(map, ROOT_CA_CONFIG_MAP))
        .await;
    let (client, root_ca) = (&client, root_ca.as_str());
    controller
        .run(|namespace| {
            let (accounts, maps) = (&accounts, &maps);
            async move {
                if !active(&namespace) {
                    return Ok(Action::AwaitChange);
                }
                let name = namespace.name_any();
                if accounts
                    .get(&ObjectRef::new("default").within(&name))
                    .is_none()
                {
                    make_default_account(client, &name).await?;
                }
                let published = maps.get(&ObjectRef::new(ROOT_CA_CONFIG_MAP).within(&name));
                let data = published.as_ref().and_then(|m| m.data.as_ref());
                if data.and_then(|d| d.get("ca.crt")).map(String::as_str) != Some(root_ca) {
                    publish_root_ca(client, &name, root_ca).await?;
                }
                Ok(Action::AwaitChange)
            }
        })
        .await;
}

/// The namespace of `object` when it is the one named `name` there.
fn namespace_of<K: Resource>(object: &K, name: &str) -> Vec<ObjectRef<Namespace>> {
    match object.namespace() {
        Some(namespace) if object.name_any() == name => vec![ObjectRef::new(&namespace)],
        _ => Vec::new(),
    }
}

fn active(namespace: &Namespace) -> bool {
    namespace.metadata.deletion_timestamp.is_none()
        && namespace.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating")
}

/// Makes the namespace's `default` account.
async fn make_default_account(client: &Client, namespace: &str) -> Result<(), kube::Error> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("default".into()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    match api.create(&PostParams::default(), &account).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(error) => Err(error),
    }
}

/// Writes the CA into the namespace's `kube-root-ca.crt`.
async fn publish_root_ca(
    client: &Client,
    namespace: &str,
    root_ca: &str,
) -> Result<(), kube::Error> {
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
    api.patch(ROOT_CA_CONFIG_MAP, &params, &Patch::Apply(&map))
        .await
        .map(drop)
}
