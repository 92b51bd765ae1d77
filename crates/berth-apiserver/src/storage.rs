//! Storage classes: the default one every cluster has (`local-path`, Berth's local
//! volumes, as k3s ships Rancher's local-path provisioner), and the DefaultStorageClass
//! admission — a claim that names no class gets the default class.

use serde_json::{Value, json};

use crate::Shared;

/// The annotation that makes a class the default.
const IS_DEFAULT: &str = "storageclass.kubernetes.io/is-default-class";

/// The default class, made with the cluster.
pub(crate) fn default_class() -> Value {
    json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": "local-path", "annotations": {IS_DEFAULT: "true"}},
        "provisioner": "berth.dev/local-path",
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    })
}

/// Whether `class` is marked the default.
pub(crate) fn is_default(class: &Value) -> bool {
    class["metadata"]["annotations"][IS_DEFAULT] == "true"
}

/// Gives a claim that names no class the default class, if there is one (the newest,
/// when several are marked, as kube-apiserver picks).
pub(crate) fn admit(shared: &Shared, claim: &mut Value) {
    if !claim["spec"]["storageClassName"].is_null() {
        return;
    }
    let (classes, _) = shared.cache.list("/registry/storageclasses/");
    let default = classes
        .iter()
        .map(|e| e.object())
        .filter(is_default)
        .max_by(|a, b| {
            let created = |c: &Value| {
                c["metadata"]["creationTimestamp"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            };
            created(a).cmp(&created(b))
        });
    if let Some(class) = default {
        claim["spec"]["storageClassName"] = class["metadata"]["name"].clone();
    }
}
