//! The downward API: what a pod may learn of itself — its metadata as files of a
//! `downwardAPI` volume (or a `projected` one's source), and its containers' resources
//! (`resourceFieldRef`, in env and in files) — with the kubelet's rules: a limit not set
//! is the node's allocatable amount, CPU rounds up to the divisor, labels and
//! annotations are written as `key="value"` lines.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, DownwardAPIVolumeFile, Pod, ResourceFieldSelector};
use kube::ResourceExt;

use crate::spec::{Refusal, VolumeFile};

/// The value of `selector` for the container `container` of `pod` (the one named in the
/// selector when it names one); `data_dir` is the agent's, for the node's disk.
pub(crate) fn resource_value(
    pod: &Pod,
    container: &str,
    selector: &ResourceFieldSelector,
    data_dir: &Path,
) -> Result<String, Refusal> {
    let name = selector
        .container_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(container);
    let found: Option<&Container> = pod
        .spec
        .iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .find(|c| c.name == name);
    let container = found.ok_or_else(|| {
        Refusal::Invalid(format!(
            "resourceFieldRef: the pod has no container {name:?}"
        ))
    })?;
    let (kind, resource) = selector
        .resource
        .split_once('.')
        .filter(|(kind, _)| matches!(*kind, "limits" | "requests"))
        .filter(|(_, r)| matches!(*r, "cpu" | "memory" | "ephemeral-storage"))
        .ok_or_else(|| {
            Refusal::Invalid(format!(
                "resourceFieldRef: unsupported container resource {:?}",
                selector.resource
            ))
        })?;
    let resources = container.resources.clone().unwrap_or_default();
    let set = if kind == "limits" {
        resources.limits
    } else {
        resources.requests
    };
    let declared = set
        .as_ref()
        .and_then(|s| s.get(resource))
        .map(|q| q.0.clone());
    let amount = match declared {
        Some(text) => text,
        // A limit not set is what the node can give.
        None if kind == "limits" => crate::node::capacity(data_dir)
            .get(resource)
            .map(|q| q.0.clone())
            .unwrap_or_default(),
        None => "0".into(),
    };
    let milli = |text: &str| {
        berth_quantity::milli(text)
            .ok_or_else(|| Refusal::Invalid(format!("resourceFieldRef: bad quantity {text:?}")))
    };
    let divisor = milli(selector.divisor.as_ref().map_or("1", |q| q.0.as_str()))?;
    if divisor <= 0 {
        return Err(Refusal::Invalid(
            "resourceFieldRef: divisor must be positive".into(),
        ));
    }
    // Rounded up, as the kubelet rounds.
    let value = milli(&amount)?;
    Ok(((value + divisor - 1) / divisor).to_string())
}

/// The files of a `downwardAPI` volume (or projected source): path, content, mode.
pub(crate) fn files(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    data_dir: &Path,
) -> Result<Vec<VolumeFile>, Refusal> {
    items
        .iter()
        .map(|item| {
            let content = match (&item.field_ref, &item.resource_field_ref) {
                (Some(field), None) => metadata_field(pod, &field.field_path)?,
                (None, Some(selector)) => {
                    let container = selector.container_name.as_deref().unwrap_or_default();
                    resource_value(pod, container, selector, data_dir)?
                }
                _ => {
                    return Err(Refusal::Invalid(format!(
                        "downwardAPI item {:?}: exactly one of fieldRef and resourceFieldRef",
                        item.path
                    )));
                }
            };
            Ok((item.path.clone(), content.into_bytes(), item.mode))
        })
        .collect()
}

/// A metadata field as a downward API file holds it.
fn metadata_field(pod: &Pod, path: &str) -> Result<String, Refusal> {
    let lines = |map: &BTreeMap<String, String>| {
        map.iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let keyed = |prefix: &str, map: &BTreeMap<String, String>| {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(map.get(key).cloned().unwrap_or_default())
    };
    if let Some(value) = keyed("metadata.labels['", pod.labels())
        .or_else(|| keyed("metadata.annotations['", pod.annotations()))
    {
        return Ok(value);
    }
    Ok(match path {
        "metadata.name" => pod.name_any(),
        "metadata.namespace" => pod.namespace().unwrap_or_default(),
        "metadata.uid" => pod.uid().unwrap_or_default(),
        "metadata.labels" => lines(pod.labels()),
        "metadata.annotations" => lines(pod.annotations()),
        other => {
            return Err(Refusal::Invalid(format!(
                "downwardAPI: unsupported fieldRef fieldPath {other:?}"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web", "tier": "front"}},
            "spec": {"containers": [{
                "name": "main",
                "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
            }]},
        }))
        .unwrap()
    }

    fn selector(resource: &str, divisor: Option<&str>) -> ResourceFieldSelector {
        serde_json::from_value(serde_json::json!({"resource": resource, "divisor": divisor}))
            .unwrap()
    }

    #[test]
    fn resources_round_up_to_their_divisor_and_unset_limits_are_the_nodes() {
        let dir = Path::new("/");
        let value = |resource, divisor| {
            resource_value(&pod(), "main", &selector(resource, divisor), dir).unwrap()
        };
        assert_eq!(value("requests.cpu", None), "1");
        assert_eq!(value("requests.cpu", Some("1m")), "250");
        assert_eq!(value("limits.memory", Some("1Mi")), "128");
        assert_eq!(value("requests.memory", None), (64 << 20).to_string());
        let cpus = std::thread::available_parallelism()
            .unwrap()
            .get()
            .to_string();
        assert_eq!(value("limits.cpu", None), cpus);
        assert!(resource_value(&pod(), "main", &selector("limits.gpu", None), dir).is_err());
    }

    #[test]
    fn labels_are_written_as_quoted_lines() {
        let items: Vec<DownwardAPIVolumeFile> = serde_json::from_value(serde_json::json!([
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        ]))
        .unwrap();
        let written = files(&pod(), &items, Path::new("/")).unwrap();
        assert_eq!(written[0].1, b"app=\"web\"\ntier=\"front\"");
        assert_eq!(written[1].1, b"web");
    }
}
