//! Local storage eviction, as the kubelet's eviction manager does it for emptyDir
//! volumes on disk: a volume that holds more than its `sizeLimit` gets its pod evicted
//! (its containers killed, the pod Failed with reason `Evicted`), since a directory on
//! the node's disk cannot be bounded the way a tmpfs is.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

/// How often volumes are measured: the kubelet's eviction monitoring interval.
pub(crate) const MONITORING_INTERVAL: Duration = Duration::from_secs(10);

/// An emptyDir on disk with a size limit.
#[derive(Debug, Clone)]
pub(crate) struct DiskLimit {
    volume: String,
    dir: PathBuf,
    bytes: u64,
    /// The limit as the pod wrote it, for the message.
    written: String,
}

/// The pod's emptyDirs on disk that have a size limit, in `volumes` (its volumes'
/// directory).
pub(crate) fn disk_limits(pod: &Pod, volumes: &Path) -> Vec<DiskLimit> {
    let spec_volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_ref());
    spec_volumes
        .into_iter()
        .flatten()
        .filter_map(|volume| {
            let empty = volume.empty_dir.as_ref()?;
            if empty.medium.as_deref().is_some_and(|m| !m.is_empty()) {
                return None;
            }
            let written = empty.size_limit.as_ref()?.0.clone();
            let bytes = berth_quantity::milli(&written)? / 1000;
            Some(DiskLimit {
                volume: volume.name.clone(),
                dir: volumes.join(&volume.name),
                bytes: u64::try_from(bytes).ok()?,
                written,
            })
        })
        .collect()
}

/// The kubelet's eviction message for the first volume over its limit, if one is.
/// Blocking: it walks the volumes.
pub(crate) fn exceeded(limits: &[DiskLimit]) -> Option<String> {
    limits.iter().find(|l| usage(&l.dir) > l.bytes).map(|l| {
        format!(
            "Usage of EmptyDir volume {:?} exceeds the limit {:?}. ",
            l.volume, l.written
        )
    })
}

/// The disk a directory's files take (their allocated blocks, as `du` counts them),
/// not following symbolic links.
fn usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            total += metadata.blocks() * 512;
            if metadata.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_over_its_limit_is_named_in_the_kubelet_s_words() {
        let dir = std::env::temp_dir().join(format!("berth-eviction-{}", std::process::id()));
        let volume = dir.join("scratch");
        std::fs::create_dir_all(volume.join("nested")).unwrap();
        std::fs::write(volume.join("nested/data"), vec![1u8; 64 * 1024]).unwrap();
        let limit = |bytes| DiskLimit {
            volume: "scratch".into(),
            dir: volume.clone(),
            bytes,
            written: "32Ki".into(),
        };
        assert_eq!(
            exceeded(&[limit(32 * 1024)]).as_deref(),
            Some("Usage of EmptyDir volume \"scratch\" exceeds the limit \"32Ki\". ")
        );
        assert_eq!(exceeded(&[limit(1 << 20)]), None);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
