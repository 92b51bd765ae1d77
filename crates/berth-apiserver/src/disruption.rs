//! PodDisruptionBudgets and the pods' `eviction` subresource, as kube-apiserver serves
//! them: an eviction deletes its pod unless a budget covering the pod allows no more
//! disruptions, in which case it is refused with 429 and `kubectl drain` waits and tries
//! again. The budget's `disruptionsAllowed` is the disruption controller's to compute
//! (berth-controllers' `disruption.rs`); each eviction spends one, recorded in
//! `disruptedPods` until the controller sees the pod go.

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::Response;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde_json::{Value, json};

use crate::Shared;
use crate::identity::Identity;
use crate::kinds::Schema;
use crate::resources::resource;
use crate::status::Status;
use crate::stored::Place;
use crate::writes::{self, DeleteOptions, Part, WriteOptions};

impl Schema for PodDisruptionBudget {
    const HAS_STATUS: bool = true;

    fn problems(&self) -> Vec<String> {
        let spec = self.spec.clone().unwrap_or_default();
        if spec.min_available.is_some() && spec.max_unavailable.is_some() {
            return vec![
                "spec: Invalid value: \"\": minAvailable and maxUnavailable cannot be both set"
                    .into(),
            ];
        }
        Vec::new()
    }
}

/// `POST pods/NAME/eviction`: the pod deleted, as its Eviction's deleteOptions say, if
/// no budget forbids it.
pub(crate) async fn evict(
    shared: &Shared,
    place: &Place,
    name: &str,
    identity: &Identity,
    eviction: Value,
) -> Result<Response, Status> {
    let delete_options = match &eviction["deleteOptions"] {
        Value::Null => Vec::new(),
        options => serde_json::to_vec(options).unwrap_or_default(),
    };
    let options = DeleteOptions::from_request(&HashMap::new(), &delete_options, identity.clone())?;
    let (_, _, pod) = crate::stored::current(shared, place, name).await?;
    let pod: Pod = serde_json::from_value(pod)
        .map_err(|e| Status::bad_request(format!("the pod {name}: {e}")))?;
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    // A pod that has ended disrupts nothing: budgets count only the running.
    if !matches!(phase, Some("Succeeded" | "Failed")) {
        spend_budget(shared, place, &pod).await?;
    }
    writes::delete(shared, place, name, &options).await?;
    let status = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Success", "code": 201,
    });
    Ok(writes::respond(StatusCode::CREATED, &status, &[]))
}

/// Takes one disruption from the budget covering `pod`, if one does: refused when it
/// allows none, or when more than one covers the pod.
async fn spend_budget(shared: &Shared, place: &Place, pod: &Pod) -> Result<(), Status> {
    let namespace = place.namespace.clone().unwrap_or_default();
    let labels = pod.metadata.labels.clone();
    let covering: Vec<PodDisruptionBudget> = shared
        .cache
        .typed_list::<PodDisruptionBudget>(&format!("/registry/poddisruptionbudgets/{namespace}/"))
        .into_iter()
        .filter(|budget| {
            let selector = budget.spec.as_ref().and_then(|s| s.selector.as_ref());
            selector.is_some_and(|s| berth_labels::selects(s, &labels))
        })
        .collect();
    let budget = match covering.as_slice() {
        [] => return Ok(()),
        [budget] => budget,
        _ => {
            return Err(Status::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
    };
    let budget_name = budget.metadata.name.clone().unwrap_or_default();
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let budgets = Place {
        resource: resource("poddisruptionbudgets")?,
        namespace: Some(namespace),
    };
    let options = WriteOptions::by_server("disruption");
    let spend = |mut budget: Value| {
        let generation = budget["metadata"]["generation"].as_i64();
        let status = &mut budget["status"];
        let allowed = status["disruptionsAllowed"].as_i64().unwrap_or(0);
        if status["observedGeneration"].as_i64() != generation {
            return Err(too_many(format!(
                "Cannot evict pod as it would violate the pod's disruption budget. The disruption budget {budget_name} is still being processed by the server."
            )));
        }
        if allowed <= 0 {
            return Err(too_many(
                "Cannot evict pod as it would violate the pod's disruption budget.".into(),
            ));
        }
        status["disruptionsAllowed"] = json!(allowed - 1);
        status["disruptedPods"][&pod_name] =
            json!(crate::objects::rfc3339(std::time::SystemTime::now()));
        Ok(crate::objects::without_revision(budget))
    };
    writes::change(
        shared,
        &budgets,
        &budget_name,
        (Part::Status, &options),
        spend,
    )
    .await?;
    Ok(())
}

fn too_many(message: String) -> Status {
    Status::new(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", message)
}
