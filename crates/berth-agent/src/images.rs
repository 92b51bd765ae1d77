//! Images for pods: pulled as each container's `imagePullPolicy` says (through the
//! engine, as `docker pull` pulls), and the air-gap images of `<data-dir>/agent/images`
//! imported when the agent starts, as k3s's, so a node runs pods without a registry.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_engine::Engine;
use berth_image::{Credentials, Reference};
use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use kube::{Api, ResourceExt};

use crate::status::Waiting;

/// Makes sure the container's image is in the store, pulling it when its policy says
/// (`Always`; `IfNotPresent` when missing, the default for a tag other than
/// `latest`): how long a pull took, if one was made; why the container waits when the
/// image cannot be had. `report` hears whether a pull starts (true) or the image is
/// used as it is (false).
pub async fn ensure(
    (engine, client): (&Arc<Engine>, &kube::Client),
    (pod, container): (&Pod, &Container),
    report: &(dyn Fn(bool) + Sync),
) -> Result<Option<Duration>, Waiting> {
    let image = container.image.clone().unwrap_or_default();
    let reference = Reference::parse(&image).map_err(|e| {
        Waiting::new(
            "InvalidImageName",
            format!("Failed to apply default image tag {image:?}: {e}"),
        )
    })?;
    let policy = container.image_pull_policy.clone().unwrap_or_else(|| {
        if reference.tag == "latest" {
            "Always".into()
        } else {
            "IfNotPresent".into()
        }
    });
    let present = engine.images().resolve(&image).is_ok();
    match policy.as_str() {
        "Never" | "IfNotPresent" if present => {
            report(false);
            return Ok(None);
        }
        "Never" => {
            return Err(Waiting::new(
                "ErrImageNeverPull",
                format!("Container image {image:?} is not present with pull policy of Never"),
            ));
        }
        "IfNotPresent" | "Always" => {}
        other => {
            return Err(Waiting::new(
                "InvalidImageName",
                format!("imagePullPolicy {other:?} is not Always, IfNotPresent or Never"),
            ));
        }
    }
    report(true);
    let started = Instant::now();
    let credentials = pull_credentials(client, pod, &reference).await;
    match engine.pull_image(&reference, credentials, &|_| {}).await {
        Ok(_) => Ok(Some(started.elapsed())),
        Err(error) => Err(Waiting::new(
            "ErrImagePull",
            format!("Failed to pull image {image:?}: {error}"),
        )),
    }
}

/// The credentials the pod's first imagePullSecret holding one for the image's
/// registry has (a `kubernetes.io/dockerconfigjson` secret, or an old `dockercfg` one);
/// None to pull anonymously. A secret that is missing is passed over, as the kubelet
/// passes it over.
async fn pull_credentials(
    client: &kube::Client,
    pod: &Pod,
    reference: &Reference,
) -> Option<Credentials> {
    let (registry, _) = reference.registry_and_path();
    let secrets: Api<Secret> =
        Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let names = pod
        .spec
        .iter()
        .flat_map(|s| s.image_pull_secrets.iter().flatten());
    for name in names {
        let Ok(Some(secret)) = secrets.get_opt(&name.name).await else {
            tracing::warn!(secret = %name.name, "an imagePullSecret is missing");
            continue;
        };
        let data = secret.data.unwrap_or_default();
        let found = match (data.get(".dockerconfigjson"), data.get(".dockercfg")) {
            (Some(config), _) => Credentials::from_docker_config(&config.0, &registry),
            // The old format is the `auths` map alone.
            (None, Some(old)) => {
                let wrapped = serde_json::json!({"auths": serde_json::from_slice::<serde_json::Value>(&old.0).ok()?});
                Credentials::from_docker_config(wrapped.to_string().as_bytes(), &registry)
            }
            (None, None) => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// Imports every `*.tar` (and `*.tar.gz`) archive of `dir`, as `docker load` would;
/// a missing folder is no error, a bad archive is logged and skipped.
pub fn import_air_gap_images(engine: &Engine, dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut archives: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.to_string_lossy();
            name.ends_with(".tar") || name.ends_with(".tar.gz") || name.ends_with(".tgz")
        })
        .collect();
    archives.sort();
    for archive in archives {
        let loaded = std::fs::File::open(&archive)
            .map_err(|source| berth_image::Error::Io {
                path: archive.clone(),
                source,
            })
            .and_then(|file| engine.images().load(std::io::BufReader::new(file)));
        match loaded {
            Ok(images) => {
                for image in images {
                    let tags: Vec<String> = image.tags.iter().map(ToString::to_string).collect();
                    tracing::info!(archive = %archive.display(), id = %image.id, tags = ?tags, "imported an air-gap image");
                }
            }
            Err(error) => {
                tracing::warn!(archive = %archive.display(), %error, "could not import an air-gap image archive");
            }
        }
    }
}
