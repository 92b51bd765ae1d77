//! Events about objects, as `kubectl describe` and `kubectl get events` show them: the
//! controllers' and the node agent's (the kubelet's Pulling, Started, BackOff…).
//!
//! Depends on nothing of ours: only the Kubernetes API, as a client.

use k8s_openapi::api::core::v1::Event;
use kube::api::PostParams;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

/// Records an event of `kind` (Normal or Warning) with `reason` and `message` about
/// `object`, from `component`. A failure is logged, never fatal: events are advice.
pub async fn record<K>(
    client: &Client,
    object: &K,
    (kind, reason, message): (&str, &str, &str),
    component: &str,
) where
    K: Resource<DynamicType = ()>,
{
    let namespace = object.namespace().unwrap_or_else(|| "default".into());
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let event = json!({
        "metadata": {"generateName": format!("{}.", object.name_any()), "namespace": namespace},
        "involvedObject": {
            "apiVersion": K::api_version(&()), "kind": K::kind(&()),
            "name": object.name_any(), "namespace": object.namespace(), "uid": object.uid(),
        },
        "type": kind, "reason": reason, "message": message,
        "source": {"component": component},
        "reportingComponent": component,
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    });
    let event: Event = match serde_json::from_value(event) {
        Ok(event) => event,
        Err(error) => return tracing::warn!(%error, "could not build an event"),
    };
    let events: Api<Event> = Api::namespaced(client.clone(), &namespace);
    if let Err(error) = events.create(&PostParams::default(), &event).await {
        tracing::debug!(%error, reason, "could not record an event");
    }
}
