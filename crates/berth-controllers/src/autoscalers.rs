//! The HorizontalPodAutoscaler controller (autoscaling/v2), with Kubernetes' algorithm:
//! for each Resource metric (CPU or memory), the pods' usage from metrics.k8s.io is
//! compared with the target — a Utilization target with usage over requests, an
//! AverageValue target with the average usage per pod; the desired count is
//! `ceil(pods × usage / target)` unless that ratio is within the 10% tolerance;
//! the largest over the metrics wins, kept within minReplicas..maxReplicas. A scale down
//! takes the highest recommendation of the stabilization window (300 s unless
//! `behavior.scaleDown.stabilizationWindowSeconds` says otherwise), so a dip does not
//! shed pods at once. The target is scaled through its `scale` subresource.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscaler, ResourceMetricSource};
use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use berth_runner::{Action, Controller, Informers};
use kube::runtime::reflector::ObjectRef;

use crate::cached_pod::CachedPod;
use crate::lock;
use berth_quantity::{format_milli, milli};

/// How often autoscalers look at their metrics.
const PERIOD: Duration = Duration::from_secs(2);
/// Ratios this close to 1 change nothing.
const TOLERANCE: f64 = 0.1;
/// The default scale-down stabilization window.
const SCALE_DOWN_WINDOW: Duration = Duration::from_secs(300);

/// Each autoscaler's recent recommendations.
type Recommendations = HashMap<ObjectRef<HorizontalPodAutoscaler>, Vec<(Instant, i32)>>;

/// Runs the controller until the client's watches end: each autoscaler looks at its
/// metrics every PERIOD, and at once when it changes.
pub async fn run(client: Client, informers: Informers) {
    let controller = Controller::<HorizontalPodAutoscaler>::new(&informers).await;
    let recommendations: Mutex<Recommendations> = Mutex::default();
    let (client, recommendations) = (&client, &recommendations);
    controller
        .run_or_gone(
            |hpa| async move {
                let key = ObjectRef::from_obj(hpa.as_ref());
                let mut history = lock(recommendations).remove(&key).unwrap_or_default();
                let result = reconcile(client, &hpa, &mut history).await;
                lock(recommendations).insert(key, history);
                result?;
                Ok(Action::RequeueAfter(PERIOD))
            },
            |gone| async move {
                lock(recommendations).remove(&gone);
                Ok(Action::AwaitChange)
            },
        )
        .await;
}

async fn reconcile(
    client: &Client,
    hpa: &HorizontalPodAutoscaler,
    history: &mut Vec<(Instant, i32)>,
) -> Result<(), kube::Error> {
    let namespace = hpa.namespace().unwrap_or_default();
    let Some(spec) = hpa.spec.as_ref() else {
        return Ok(());
    };
    let reference = &spec.scale_target_ref;
    let (group, version) = reference
        .api_version
        .as_deref()
        .unwrap_or("apps/v1")
        .split_once('/')
        .unwrap_or(("", "v1"));
    let kind = GroupVersionKind::gvk(group, version, &reference.kind);
    let targets: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &namespace, &ApiResource::from_gvk(&kind));
    let scale = targets.get_scale(&reference.name).await?;
    let current = scale.spec.and_then(|s| s.replicas).unwrap_or(0);
    let selector = scale.status.and_then(|s| s.selector).unwrap_or_default();
    let usage = usage(client, &namespace, &selector).await?;
    let mut desired = None;
    let mut current_metrics = Vec::new();
    for metric in spec.metrics.iter().flatten() {
        let Some(resource) = metric.resource.as_ref() else {
            continue;
        };
        let Some(reading) = read(resource, &usage) else {
            continue;
        };
        current_metrics.push(json!({"type": "Resource", "resource": {
            "name": resource.name, "current": reading.current}}));
        let wanted = if (reading.ratio - 1.0).abs() <= TOLERANCE {
            current
        } else {
            (reading.ratio * f64::from(reading.pods)).ceil() as i32
        };
        desired = Some(desired.map_or(wanted, |d: i32| d.max(wanted)));
    }
    let Some(desired) = desired else {
        return Ok(());
    };
    let desired = desired.clamp(spec.min_replicas.unwrap_or(1), spec.max_replicas);
    let window = spec
        .behavior
        .as_ref()
        .and_then(|b| b.scale_down.as_ref())
        .and_then(|s| s.stabilization_window_seconds)
        .map_or(SCALE_DOWN_WINDOW, |s| Duration::from_secs(s.max(0) as u64));
    let now = Instant::now();
    history.push((now, desired));
    history.retain(|(at, _)| now.duration_since(*at) <= window);
    // Scaling down: the highest recommendation of the window.
    let stabilized = history.iter().map(|(_, d)| *d).max().unwrap_or(desired);
    let decided = if desired < current {
        stabilized.min(current)
    } else {
        desired
    };
    if decided != current {
        let patch = json!({"spec": {"replicas": decided}});
        targets
            .patch_scale(
                &reference.name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        tracing::info!(hpa = %hpa.name_any(), from = current, to = decided, "scaled");
    }
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), &namespace);
    let status = json!({"status": {
        "currentReplicas": current,
        "desiredReplicas": decided,
        "currentMetrics": current_metrics,
        "lastScaleTime": (decided != current).then(|| k8s_openapi::jiff::Timestamp::now().to_string()),
    }});
    api.patch_status(
        &hpa.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&status),
    )
    .await
    .map(drop)
}

/// What one Resource metric reads now against its target.
struct Reading {
    /// Usage over the target: above 1 asks for more pods.
    ratio: f64,
    /// How many pods were measured.
    pods: i32,
    /// The metric's `current` in the HPA's status.
    current: serde_json::Value,
}

/// The metric's reading from the pods' usage: against a Utilization target, usage over
/// requests in percent; against an AverageValue target, the average usage per pod.
fn read(resource: &ResourceMetricSource, usage: &Usage) -> Option<Reading> {
    let key = resource.name.as_str();
    let (used, requested, pods): (i128, i128, i32) = usage
        .values()
        .filter_map(|per| per.get(key).copied())
        .fold((0, 0, 0), |(u, r, n), (used, requested)| {
            (u + used, r + requested, n + 1)
        });
    if pods == 0 {
        return None;
    }
    let average = used / i128::from(pods);
    let target = &resource.target;
    if let Some(wanted) = target.average_utilization {
        if requested == 0 {
            return None;
        }
        let utilization = (100 * used / requested) as i32;
        return Some(Reading {
            ratio: f64::from(utilization) / f64::from(wanted.max(1)),
            pods,
            current: json!({"averageUtilization": utilization, "averageValue": format_milli(average)}),
        });
    }
    let wanted = target.average_value.as_ref().and_then(|q| milli(&q.0))?;
    Some(Reading {
        ratio: average as f64 / wanted.max(1) as f64,
        pods,
        current: json!({"averageValue": format_milli(average)}),
    })
}

/// Each measured pod's usage and request, in thousandths, per resource.
type Usage = HashMap<String, HashMap<&'static str, (i128, i128)>>;

/// Each selected pod's (usage, request) per resource, in millis, for the pods the
/// metrics API reports.
async fn usage(client: &Client, namespace: &str, selector: &str) -> Result<Usage, kube::Error> {
    let params = ListParams::default().labels(selector);
    let metrics_kind = GroupVersionKind::gvk("metrics.k8s.io", "v1beta1", "PodMetrics");
    let mut resource = ApiResource::from_gvk(&metrics_kind);
    resource.plural = "pods".into();
    let metrics: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let pods: Api<CachedPod> = Api::namespaced(client.clone(), namespace);
    let requests: HashMap<String, CachedPod> = pods
        .list(&params)
        .await?
        .items
        .into_iter()
        .map(|p| (p.name_any(), p))
        .collect();
    let mut found = HashMap::new();
    for sample in metrics.list(&params).await?.items {
        let Some(pod) = requests.get(&sample.name_any()) else {
            continue;
        };
        let mut per = HashMap::new();
        for key in ["cpu", "memory"] {
            let used: i128 = sample.data["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["usage"][key].as_str().and_then(milli))
                .sum();
            let requested: i128 = pod
                .spec
                .iter()
                .flat_map(|s| &s.containers)
                .filter_map(|c| c.resources.as_ref()?.requests.as_ref()?.get(key))
                .filter_map(|q| milli(&q.0))
                .sum();
            per.insert(key, (used, requested));
        }
        found.insert(sample.name_any(), per);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(per_pod: &[(i128, i128)]) -> Usage {
        per_pod
            .iter()
            .enumerate()
            .map(|(i, used)| (format!("p{i}"), HashMap::from([("memory", *used)])))
            .collect()
    }

    fn metric(target: serde_json::Value) -> ResourceMetricSource {
        serde_json::from_value(json!({"name": "memory", "target": target})).unwrap()
    }

    #[test]
    fn average_values_compare_usage_per_pod() {
        let mib = 1024 * 1024 * 1000;
        let both = usage(&[(100 * mib, 0), (100 * mib, 0)]);
        let reading = read(
            &metric(json!({"type": "AverageValue", "averageValue": "50Mi"})),
            &both,
        )
        .unwrap();
        assert_eq!((reading.ratio, reading.pods), (2.0, 2));
        assert_eq!(reading.current["averageValue"], "104857600");
    }

    #[test]
    fn utilization_needs_requests() {
        let none = usage(&[(10, 0)]);
        assert!(
            read(
                &metric(json!({"type": "Utilization", "averageUtilization": 50})),
                &none
            )
            .is_none()
        );
        let half = usage(&[(10, 40), (30, 40)]);
        let reading = read(
            &metric(json!({"type": "Utilization", "averageUtilization": 50})),
            &half,
        )
        .unwrap();
        assert_eq!(reading.current["averageUtilization"], 50);
    }
}
