//! The node's local volumes (the local-path provisioner's, in berth-controllers): each
//! is a directory under `<data-dir>/agent/storage`, made when a pod first mounts it.
//! When such a volume is deleted (its claim gone, reclaim policy Delete) its directory
//! goes too, as Rancher's provisioner runs a helper pod to remove it.

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::PersistentVolume;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

/// Removes the directories of this node's deleted local volumes, until the process ends.
pub async fn collect(client: Client, folder: PathBuf) {
    let volumes: Api<PersistentVolume> = Api::all(client);
    let mut events = std::pin::pin!(watcher(volumes, watcher::Config::default()).default_backoff());
    while let Some(event) = events.next().await {
        let Ok(watcher::Event::Delete(volume)) = event else {
            continue;
        };
        if let Some(dir) = local_directory(&volume, &folder) {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => tracing::info!(dir = %dir.display(), "removed a deleted volume's data"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    tracing::warn!(dir = %dir.display(), %error, "could not remove a deleted volume's data");
                }
            }
        }
    }
}

/// The directory of `volume` when it is one of this node's local volumes to delete:
/// a hostPath directly under `folder`, reclaim policy Delete.
fn local_directory(volume: &PersistentVolume, folder: &Path) -> Option<PathBuf> {
    let spec = volume.spec.as_ref()?;
    if spec.persistent_volume_reclaim_policy.as_deref() == Some("Retain") {
        return None;
    }
    let path = PathBuf::from(&spec.host_path.as_ref()?.path);
    (path.parent() == Some(folder) && path.file_name().is_some()).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(path: &str, policy: &str) -> PersistentVolume {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "pvc-1"},
            "spec": {"hostPath": {"path": path}, "persistentVolumeReclaimPolicy": policy},
        }))
        .unwrap()
    }

    #[test]
    fn only_deleted_volumes_directly_in_the_folder_go() {
        let folder = Path::new("/data/agent/storage");
        let ours = volume("/data/agent/storage/pvc-1_default_data", "Delete");
        assert_eq!(
            local_directory(&ours, folder),
            Some(folder.join("pvc-1_default_data"))
        );
        assert_eq!(
            local_directory(&volume("/data/agent/storage/pvc-1", "Retain"), folder),
            None
        );
        assert_eq!(
            local_directory(&volume("/srv/data", "Delete"), folder),
            None
        );
        assert_eq!(
            local_directory(&volume("/data/agent/storage", "Delete"), folder),
            None
        );
        assert_eq!(
            local_directory(&volume("/data/agent/storage/a/b", "Delete"), folder),
            None
        );
    }
}
