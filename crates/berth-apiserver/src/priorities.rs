//! Pod priority, as kube-apiserver's Priority admission plugin gives it: a new pod's
//! `spec.priority` (and `preemptionPolicy`) come from the PriorityClass it names, or
//! from the cluster's globalDefault class, or are 0. The scheduler orders and preempts
//! by that number, so clients may not set it themselves.
//!
//! The system classes `system-cluster-critical` and `system-node-critical` exist in every
//! cluster (made at start, as upstream's bootstrap does).

use std::sync::Arc;

use axum::http::StatusCode;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use serde_json::{Value, json};

use crate::cache::Memo;
use crate::status::Status;

/// Where PriorityClasses are kept.
const PREFIX: &str = "/registry/priorityclasses/";

/// The classes every cluster has: name, value, description.
pub(crate) const SYSTEM_CLASSES: [(&str, i32, &str); 2] = [
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
];

/// Whether `name` with `value` is one of the system classes.
pub(crate) fn is_system_class(name: &str, value: i32) -> bool {
    SYSTEM_CLASSES
        .iter()
        .any(|(n, v, _)| *n == name && *v == value)
}

/// The system classes as objects to create.
pub(crate) fn system_classes() -> impl Iterator<Item = Value> {
    SYSTEM_CLASSES.iter().map(|(name, value, description)| {
        json!({
            "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value, "description": description,
        })
    })
}

/// Gives a pod being created its priority and preemption policy from its class, read
/// from the watch cache (as kube-apiserver's plugin reads its informer) so that pod
/// creates cost no store read.
pub(crate) async fn admit(shared: &crate::Shared, pod: &mut Value) -> Result<(), Status> {
    let name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let spec = &mut pod["spec"];
    let class = match spec["priorityClassName"].as_str().filter(|c| !c.is_empty()) {
        Some(wanted) => Some(named(shared, wanted).await?.ok_or_else(|| {
            forbidden(
                &name,
                format!("no PriorityClass with name {wanted} was found"),
            )
        })?),
        None => global_default(shared),
    };
    let value = class.as_ref().map_or(0, |c| c.value);
    if let Some(given) = spec["priority"].as_i64()
        && given != i64::from(value)
    {
        return Err(forbidden(
            &name,
            format!(
                "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {value} from the given PriorityClass name"
            ),
        ));
    }
    spec["priority"] = json!(value);
    if let Some(class) = class {
        spec["priorityClassName"] = json!(class.metadata.name);
        if let Some(policy) = &class.preemption_policy {
            spec["preemptionPolicy"] = json!(policy);
        }
    }
    Ok(())
}

fn forbidden(pod: &str, why: String) -> Status {
    Status::new(
        StatusCode::FORBIDDEN,
        "Forbidden",
        format!("pods \"{pod}\" is forbidden: {why}"),
    )
}

fn store_error(error: berth_store::Error) -> Status {
    Status::from_store(error, "priorityclasses", "")
}

/// The class called `name`: from the cache, or from the store when the cache does not
/// have it yet (one made a moment ago).
async fn named(shared: &crate::Shared, name: &str) -> Result<Option<Arc<PriorityClass>>, Status> {
    let key = format!("{PREFIX}{name}");
    if let Some(class) = shared.cache.typed(&key) {
        return Ok(Some(Arc::new(class)));
    }
    let stored = shared.store.get(&key).await.map_err(store_error)?;
    Ok(stored.and_then(|kv| serde_json::from_slice(&kv.value).ok().map(Arc::new)))
}

/// The class pods get when they name none, kept until a PriorityClass changes: read
/// from every class the cache holds for each new pod, it was 1.5% of the server under
/// pod creates.
pub(crate) type DefaultClass = Memo<(), Option<Arc<PriorityClass>>>;

/// Makes the memo of the default class.
pub(crate) fn default_class() -> DefaultClass {
    Memo::new(&[PREFIX])
}

/// The class marked globalDefault (the lowest, should there be several).
fn global_default(shared: &crate::Shared) -> Option<Arc<PriorityClass>> {
    shared.default_priority.get_or(&shared.cache, (), || {
        let (entries, _) = shared.cache.list(PREFIX);
        entries
            .iter()
            .filter_map(|entry| entry.typed::<PriorityClass>())
            .filter(|c| c.global_default == Some(true))
            .min_by_key(|c| c.value)
            .map(Arc::new)
    })
}
