//! The objects a pod refers to — configMaps, secrets and persistent volume claims, from
//! its volumes (also projected ones), its containers' environment and its image pull
//! secrets — as Kubernetes' podutil visits them. The API server's Node authorizer lets a
//! node read only what its pods refer to; the agent watches what its pods' volumes show.
//!
//! Depends on nothing of ours.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{EnvFromSource, EnvVar, PodSpec, Volume};

/// The kinds of object a pod refers to by name in its own namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A ConfigMap.
    ConfigMap,
    /// A Secret.
    Secret,
    /// A PersistentVolumeClaim.
    Claim,
}

impl Kind {
    /// The kind's resource name (`configmaps`…).
    pub fn plural(self) -> &'static str {
        match self {
            Self::ConfigMap => "configmaps",
            Self::Secret => "secrets",
            Self::Claim => "persistentvolumeclaims",
        }
    }

    /// The kind of resource `plural`, if pods refer to that kind.
    pub fn of_plural(plural: &str) -> Option<Self> {
        [Self::ConfigMap, Self::Secret, Self::Claim]
            .into_iter()
            .find(|kind| kind.plural() == plural)
    }
}

/// An object a pod refers to, in the pod's namespace.
pub type Reference = (Kind, String);

/// Every object the pod spec refers to.
pub fn all(spec: &PodSpec) -> BTreeSet<Reference> {
    let mut found = in_volumes(spec);
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers);
    for container in containers {
        in_environment(&container.env_from, &container.env, &mut found);
    }
    for container in spec.ephemeral_containers.iter().flatten() {
        in_environment(&container.env_from, &container.env, &mut found);
    }
    for secret in spec.image_pull_secrets.iter().flatten() {
        found.insert((Kind::Secret, secret.name.clone()));
    }
    found
}

/// The objects the pod's volumes show (what changes to reach running containers).
pub fn in_volumes(spec: &PodSpec) -> BTreeSet<Reference> {
    let mut found = BTreeSet::new();
    for volume in spec.volumes.iter().flatten() {
        in_volume(volume, &mut found);
    }
    found
}

fn in_volume(volume: &Volume, found: &mut BTreeSet<Reference>) {
    if let Some(source) = &volume.config_map {
        found.insert((Kind::ConfigMap, source.name.clone()));
    }
    if let Some(name) = volume.secret.as_ref().and_then(|s| s.secret_name.clone()) {
        found.insert((Kind::Secret, name));
    }
    if let Some(claim) = &volume.persistent_volume_claim {
        found.insert((Kind::Claim, claim.claim_name.clone()));
    }
    let projected = volume
        .projected
        .iter()
        .flat_map(|p| p.sources.iter().flatten());
    for source in projected {
        if let Some(map) = &source.config_map {
            found.insert((Kind::ConfigMap, map.name.clone()));
        }
        if let Some(secret) = &source.secret {
            found.insert((Kind::Secret, secret.name.clone()));
        }
    }
}

fn in_environment(
    sources: &Option<Vec<EnvFromSource>>,
    vars: &Option<Vec<EnvVar>>,
    found: &mut BTreeSet<Reference>,
) {
    for source in sources.iter().flatten() {
        if let Some(map) = &source.config_map_ref {
            found.insert((Kind::ConfigMap, map.name.clone()));
        }
        if let Some(secret) = &source.secret_ref {
            found.insert((Kind::Secret, secret.name.clone()));
        }
    }
    for from in vars
        .iter()
        .flatten()
        .filter_map(|var| var.value_from.as_ref())
    {
        if let Some(key) = &from.config_map_key_ref {
            found.insert((Kind::ConfigMap, key.name.clone()));
        }
        if let Some(key) = &from.secret_key_ref {
            found.insert((Kind::Secret, key.name.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_come_from_volumes_environment_and_pull_secrets() {
        let spec: PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [{"name": "a", "envFrom": [{"configMapRef": {"name": "env-map"}}],
                "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "pw", "key": "k"}}}]}],
            "initContainers": [{"name": "i", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "init-map", "key": "k"}}}]}],
            "imagePullSecrets": [{"name": "registry"}],
            "volumes": [
                {"name": "v1", "configMap": {"name": "files"}},
                {"name": "v2", "secret": {"secretName": "certs"}},
                {"name": "v3", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "v4", "projected": {"sources": [{"secret": {"name": "token"}}, {"configMap": {"name": "ca"}}]}}
            ]
        }))
        .expect("a pod spec");
        let volumes: Vec<Reference> = in_volumes(&spec).into_iter().collect();
        assert_eq!(
            volumes,
            vec![
                (Kind::ConfigMap, "ca".into()),
                (Kind::ConfigMap, "files".into()),
                (Kind::Secret, "certs".into()),
                (Kind::Secret, "token".into()),
                (Kind::Claim, "data".into()),
            ]
        );
        let all = all(&spec);
        assert_eq!(all.len(), 9);
        for name in ["env-map", "init-map"] {
            assert!(all.contains(&(Kind::ConfigMap, name.into())), "{name}");
        }
        for name in ["pw", "registry"] {
            assert!(all.contains(&(Kind::Secret, name.into())), "{name}");
        }
        assert_eq!(Kind::of_plural("secrets"), Some(Kind::Secret));
        assert_eq!(Kind::of_plural("pods"), None);
    }
}
