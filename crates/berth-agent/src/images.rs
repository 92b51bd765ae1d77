//! Images for pods: pulled as each container's `imagePullPolicy` says (through the
//! engine, as `docker pull` pulls), and the air-gap images of `<data-dir>/agent/images`
//! imported when the agent starts, as k3s's, so a node runs pods without a registry.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_engine::Engine;
use berth_image::Reference;
use k8s_openapi::api::core::v1::Container;

use crate::status::Waiting;

/// Makes sure the container's image is in the store, pulling it when its policy says
/// (`Always`; `IfNotPresent` when missing, the default for a tag other than
/// `latest`): how long a pull took, if one was made; why the container waits when the
/// image cannot be had. `report` hears whether a pull starts (true) or the image is
/// used as it is (false).
pub async fn ensure(
    engine: &Arc<Engine>,
    container: &Container,
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
    match engine.pull_image(&reference, None, &|_| {}).await {
        Ok(_) => Ok(Some(started.elapsed())),
        Err(error) => Err(Waiting::new(
            "ErrImagePull",
            format!("Failed to pull image {image:?}: {error}"),
        )),
    }
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
