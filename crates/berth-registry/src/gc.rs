//! Garbage collection while the registry serves — distribution can only collect in a
//! read-only mode, and its users ask for exactly this. One pass, under the storage's
//! write lock (pushes wait for it; pulls do not):
//!
//! 1. Retention: beyond the newest `keep_tags` tags of a repository, tags are removed.
//! 2. Mark, per repository: the manifests tags point at, what live indexes list, the
//!    referrers of live manifests, and every manifest younger than the grace period (a
//!    push of an index uploads its children first); then the blobs those manifests name.
//! 3. Sweep: other manifests go, and blob links older than the grace period that no
//!    live manifest names — a blob just uploaded, or one a client just asked about (HEAD
//!    and mounts renew the link), is what an in-flight push will reference next.
//! 4. Blob bytes no repository links any more, and uploads abandoned longer than the
//!    grace period, are deleted.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use berth_image::Digest;

use crate::errors::RegistryError;
use crate::storage::{Shape, Storage};

/// What a collection keeps, and how long it leaves what may still be in use.
#[derive(Debug, Clone)]
pub struct GcPolicy {
    /// Untagged manifests, unreferenced blob links and abandoned uploads younger than
    /// this are kept.
    pub grace: Duration,
    /// Keep only this many tags per repository, the most recently pushed.
    pub keep_tags: Option<usize>,
}

impl Default for GcPolicy {
    /// An hour's grace, every tag kept.
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(3600),
            keep_tags: None,
        }
    }
}

/// What one collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Tags removed by retention.
    pub tags: usize,
    /// Manifests removed from repositories.
    pub manifests: usize,
    /// Blob links removed from repositories.
    pub links: usize,
    /// Blobs (and manifests) deleted from disk.
    pub blobs: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Abandoned uploads deleted.
    pub uploads: usize,
}

impl Storage {
    /// Collects garbage as of `now` (the current time, but for tests).
    pub fn collect(&self, policy: &GcPolicy, now: SystemTime) -> Result<GcReport, RegistryError> {
        let _exclusive = self.exclusive();
        let expired = |path: &Path| {
            let modified = path.metadata().and_then(|m| m.modified());
            modified.is_ok_and(|m| now.duration_since(m).unwrap_or_default() > policy.grace)
        };
        let mut report = GcReport::default();
        let mut linked = BTreeSet::new();
        for repository in repositories(self.repositories_dir()) {
            if let Some(keep) = policy.keep_tags {
                report.tags += retain_tags(&repository, keep)?;
            }
            let live = self.live_manifests(&repository, &expired);
            let revisions = repository.join("_manifests/revisions");
            let mut live_blobs = BTreeSet::new();
            for (hex, path) in entries(&revisions) {
                let Ok(digest) = Digest::parse(&format!("sha256:{hex}")) else {
                    continue;
                };
                if live.contains(&hex) {
                    live_blobs.extend(self.blobs_of(&digest));
                    linked.insert(hex);
                } else {
                    self.remove_revision(&repository, &digest, &path)?;
                    report.manifests += 1;
                }
            }
            for (hex, path) in entries(&repository.join("_layers")) {
                if live_blobs.contains(&hex) || !expired(&path) {
                    linked.insert(hex);
                } else {
                    remove(&path)?;
                    report.links += 1;
                }
            }
        }
        for (hex, path) in entries(&self.content_dir()) {
            if !linked.contains(&hex) && expired(&path) {
                report.bytes += path.metadata().map(|m| m.len()).unwrap_or(0);
                remove(&path)?;
                report.blobs += 1;
            }
        }
        for (_, path) in entries(&self.ingest_dir()) {
            if expired(&path) {
                remove(&path)?;
                report.uploads += 1;
            }
        }
        Ok(report)
    }

    /// The hex digests of the manifests of `repository` that stay: tagged, young, or
    /// reachable from those through index entries and referrers.
    fn live_manifests(
        &self,
        repository: &Path,
        expired: &dyn Fn(&Path) -> bool,
    ) -> BTreeSet<String> {
        let tags = entries(&repository.join("_manifests/tags"));
        let tagged = tags.iter().filter_map(|(_, path)| {
            let text = std::fs::read_to_string(path).ok()?;
            Some(Digest::parse(text.trim()).ok()?.hex().to_string())
        });
        let young = entries(&repository.join("_manifests/revisions"))
            .into_iter()
            .filter(|(_, path)| !expired(path))
            .map(|(hex, _)| hex);
        let mut pending: Vec<String> = tagged.chain(young).collect();
        let mut live = BTreeSet::new();
        while let Some(hex) = pending.pop() {
            if !live.insert(hex.clone()) {
                continue;
            }
            let referrers = repository.join("_manifests/referrers").join(&hex);
            pending.extend(entries(&referrers).into_iter().map(|(hex, _)| hex));
            let Ok(digest) = Digest::parse(&format!("sha256:{hex}")) else {
                continue;
            };
            if let Some(shape) = self.shape(&digest) {
                let children = shape.references().unwrap_or_default().into_iter();
                pending.extend(
                    children
                        .filter(|(_, is_manifest)| *is_manifest)
                        .map(|(d, _)| d.hex().to_string()),
                );
            }
        }
        live
    }

    /// The hex digests of the blobs (config and layers) manifest `digest` names.
    fn blobs_of(&self, digest: &Digest) -> Vec<String> {
        let Some(shape) = self.shape(digest) else {
            return Vec::new();
        };
        let references = shape.references().unwrap_or_default().into_iter();
        references
            .filter(|(_, is_manifest)| !is_manifest)
            .map(|(d, _)| d.hex().to_string())
            .collect()
    }

    fn shape(&self, digest: &Digest) -> Option<Shape> {
        Shape::parse(&self.read_content(digest)?).ok()
    }
}

/// Removes the tags of `repository` beyond the `keep` most recently written; how many.
fn retain_tags(repository: &Path, keep: usize) -> Result<usize, RegistryError> {
    let mut tags: Vec<(SystemTime, PathBuf)> = entries(&repository.join("_manifests/tags"))
        .into_iter()
        .filter_map(|(_, path)| Some((path.metadata().ok()?.modified().ok()?, path)))
        .collect();
    tags.sort_by(|a, b| b.cmp(a));
    let old = tags.get(keep..).unwrap_or_default();
    for (_, path) in old {
        remove(path)?;
    }
    Ok(old.len())
}

/// Every repository under `root`: the directories holding `_layers` or `_manifests`
/// (names have slashes, so they nest).
pub(crate) fn repositories(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        if dir.join("_layers").is_dir() || dir.join("_manifests").is_dir() {
            found.push(dir.clone());
        }
        for (name, path) in entries(&dir) {
            if !name.starts_with('_') && path.is_dir() {
                pending.push(path);
            }
        }
    }
    found
}

/// The entries of `dir` by name (none when it is missing).
fn entries(dir: &Path) -> Vec<(String, PathBuf)> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| Some((entry.file_name().into_string().ok()?, entry.path())))
        .collect()
}

fn remove(path: &Path) -> Result<(), RegistryError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(RegistryError::internal(e)),
        _ => Ok(()),
    }
}
