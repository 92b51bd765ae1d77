//! The image store: images as records over the content store, their tags, and their
//! layers unpacked once under `layers/<diff_id>` and shared by every image and container
//! that uses them (each directory is an overlayfs lower layer).
//!
//! Lifecycle of an image: **import** (blobs committed to the content store, each layer
//! unpacked and checked against the config's diff_ids, an OCI manifest written, the record
//! and tags saved), **resolve** (by tag, full id or unique id prefix), **use** (config and
//! layer directories), **untag / remove** (layers and blobs nobody uses any more go too).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::content::ContentStore;
use crate::digest::Digest;
use crate::error::IoContext;
use crate::reference::Reference;
use crate::unpack::unpack_layer;
use crate::{Error, Result};

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_GZIP_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const LAYER_TAR_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
const LAYER_ZSTD_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// One image as the store keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageRecord {
    /// The image id: the digest of its config.
    pub id: Digest,
    /// The OCI manifest the store wrote for it.
    pub manifest: Digest,
    /// Its layers, bottom first.
    pub layers: Vec<LayerRecord>,
    /// When it entered the store, seconds since the epoch.
    pub added: u64,
}

/// One layer of an image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LayerRecord {
    /// Digest of the blob as stored (compressed or not).
    pub digest: Digest,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// The blob's media type.
    pub media_type: String,
    /// Bytes of the blob.
    pub size: u64,
    /// Bytes of the uncompressed tar.
    pub unpacked_size: u64,
}

/// A layer blob in the content store, to be part of an image.
#[derive(Debug, Clone)]
pub struct LayerBlob {
    /// Its digest in the content store.
    pub digest: Digest,
    /// Its media type; gzip is recognised by content either way.
    pub media_type: String,
}

/// What `remove` did, in Docker's terms.
#[derive(Debug, Clone, PartialEq)]
pub enum Removed {
    /// A tag was taken off.
    Untagged(String),
    /// An image was deleted.
    Deleted(Digest),
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    images: BTreeMap<String, ImageRecord>,
    /// `repository:tag` to image id.
    tags: BTreeMap<String, String>,
}

/// Images under one directory.
#[derive(Debug)]
pub struct ImageStore {
    content: ContentStore,
    layers: PathBuf,
    staging: PathBuf,
    index_path: PathBuf,
    index: Mutex<Index>,
}

impl ImageStore {
    /// The store under `root`, created if missing.
    pub fn open(root: &Path) -> Result<Self> {
        let content = ContentStore::open(root)?;
        let layers = root.join("layers");
        let staging = root.join("staging");
        for dir in [&layers, &staging] {
            std::fs::create_dir_all(dir).at(dir)?;
        }
        let index_path = root.join("images.json");
        let index = match std::fs::read(&index_path) {
            Ok(data) => serde_json::from_slice(&data).map_err(|e| Error::Invalid {
                what: index_path.display().to_string(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Index::default(),
            Err(e) => {
                return Err(Error::Io {
                    path: index_path,
                    source: e,
                });
            }
        };
        Ok(Self {
            content,
            layers,
            staging,
            index_path,
            index: Mutex::new(index),
        })
    }

    /// The content store holding the blobs.
    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    /// A directory beside the store's own for records kept about its images (the build
    /// cache's), made if missing.
    pub fn records_dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.layers.with_file_name(name);
        std::fs::create_dir_all(&dir).at(&dir)?;
        Ok(dir)
    }

    /// A fresh private directory for staging an archive.
    pub(crate) fn staging_dir(&self) -> Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix("load-")
            .tempdir_in(&self.staging)
            .at(&self.staging)
    }

    /// Adds an image from its config and layer blobs (already in the content store):
    /// unpacks each layer, checks it against the config's diff_ids, writes a manifest,
    /// and tags it. Returns the image id.
    pub fn import(
        &self,
        config: &[u8],
        layers: &[LayerBlob],
        tags: &[Reference],
    ) -> Result<Digest> {
        let config_digest = self.content.put(config, None)?;
        let parsed: Value =
            serde_json::from_slice(config).map_err(|e| invalid("image config", e))?;
        let diff_ids: Vec<Digest> = parsed["rootfs"]["diff_ids"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .map(|id| Digest::parse(id.as_str().unwrap_or_default()))
                    .collect()
            })
            .transpose()?
            .unwrap_or_default();
        if diff_ids.len() != layers.len() {
            return Err(Error::Invalid {
                what: "image".into(),
                reason: format!(
                    "its config lists {} layers (rootfs.diff_ids) but it has {}",
                    diff_ids.len(),
                    layers.len()
                ),
            });
        }
        let records = layers
            .iter()
            .zip(&diff_ids)
            .map(|(blob, diff_id)| self.unpack(blob, diff_id))
            .collect::<Result<Vec<_>>>()?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "digest": config_digest.as_str(), "size": config.len()},
            "layers": records.iter().map(|l| json!({
                "mediaType": l.media_type, "digest": l.digest.as_str(), "size": l.size,
            })).collect::<Vec<_>>(),
        });
        let manifest = self
            .content
            .put(&serde_json::to_vec(&manifest).unwrap_or_default(), None)?;
        let record = ImageRecord {
            id: config_digest.clone(),
            manifest,
            layers: records,
            added: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        let mut index = self.lock();
        index
            .images
            .entry(config_digest.to_string())
            .or_insert(record);
        for tag in tags {
            index
                .tags
                .insert(tag.to_string(), config_digest.to_string());
        }
        self.save(&index)?;
        Ok(config_digest)
    }

    /// Unpacks a layer blob into `layers/<diff_id>` unless it is there already.
    fn unpack(&self, blob: &LayerBlob, diff_id: &Digest) -> Result<LayerRecord> {
        let size = std::fs::metadata(self.content.path(&blob.digest))
            .at(self.content.path(&blob.digest))?
            .len();
        let target = self.layer_dir(diff_id);
        let mut magic = [0u8; 4];
        let _ = std::io::Read::read(&mut self.content.open_blob(&blob.digest)?, &mut magic);
        let media_type = if magic.starts_with(&[0x1f, 0x8b]) {
            LAYER_GZIP_TYPE
        } else if magic == [0x28, 0xb5, 0x2f, 0xfd] {
            LAYER_ZSTD_TYPE
        } else {
            LAYER_TAR_TYPE
        }
        .to_string();
        if target.is_dir() {
            let unpacked_size = self
                .lock()
                .images
                .values()
                .flat_map(|image| &image.layers)
                .find(|layer| layer.diff_id == *diff_id)
                .map_or(0, |layer| layer.unpacked_size);
            return Ok(LayerRecord {
                digest: blob.digest.clone(),
                diff_id: diff_id.clone(),
                media_type,
                size,
                unpacked_size,
            });
        }
        let partial = tempfile::Builder::new()
            .prefix(".partial-")
            .tempdir_in(&self.layers)
            .at(&self.layers)?;
        let unpacked = unpack_layer(self.content.open_blob(&blob.digest)?, partial.path())?;
        blob.digest
            .verify(&unpacked.digest, format!("layer blob {}", blob.digest))?;
        diff_id.verify(
            &unpacked.diff_id,
            format!("layer {} (diff_id)", blob.digest),
        )?;
        let partial = partial.keep();
        match std::fs::rename(&partial, &target) {
            Ok(()) => {}
            // Another import unpacked the same layer first: theirs is as good as ours.
            Err(_) if target.is_dir() => {
                let _ = std::fs::remove_dir_all(&partial);
            }
            Err(e) => {
                return Err(Error::Io {
                    path: target,
                    source: e,
                });
            }
        }
        Ok(LayerRecord {
            digest: blob.digest.clone(),
            diff_id: diff_id.clone(),
            media_type,
            size,
            unpacked_size: unpacked.size,
        })
    }

    /// The directory holding layer `diff_id` unpacked.
    pub fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.layers.join(diff_id.hex())
    }

    /// The unpacked layer directories of an image, bottom first.
    pub fn layer_dirs(&self, image: &ImageRecord) -> Vec<PathBuf> {
        image
            .layers
            .iter()
            .map(|l| self.layer_dir(&l.diff_id))
            .collect()
    }

    /// Every image with its tags, newest first.
    pub fn list(&self) -> Vec<(ImageRecord, Vec<String>)> {
        let index = self.lock();
        let mut images: Vec<(ImageRecord, Vec<String>)> = index
            .images
            .values()
            .map(|image| (image.clone(), tags_of(&index, &image.id)))
            .collect();
        images.sort_by(|a, b| b.0.added.cmp(&a.0.added).then(a.0.id.cmp(&b.0.id)));
        images
    }

    /// The image a name stands for: a tag, a full id (with or without `sha256:`), or a
    /// prefix of an id that only one image has.
    pub fn resolve(&self, name: &str) -> Result<ImageRecord> {
        let index = self.lock();
        resolve_in(&index, name).cloned()
    }

    /// The tags of an image.
    pub fn tags(&self, image: &ImageRecord) -> Vec<String> {
        tags_of(&self.lock(), &image.id)
    }

    /// The image's config document, as stored.
    pub fn config(&self, image: &ImageRecord) -> Result<Value> {
        let data = self.content.read(&image.id)?;
        serde_json::from_slice(&data).map_err(|e| invalid("image config", e))
    }

    /// Tags the image `source` names as `target`.
    pub fn tag(&self, source: &str, target: &Reference) -> Result<()> {
        let mut index = self.lock();
        let id = resolve_in(&index, source)?.id.to_string();
        index.tags.insert(target.to_string(), id);
        self.save(&index)
    }

    /// Takes tag `tag` off its image, which stays.
    pub fn untag(&self, tag: &str) -> Result<()> {
        let mut index = self.lock();
        if index.tags.remove(tag).is_none() {
            return Err(Error::NotFound(tag.to_string()));
        }
        self.save(&index)
    }

    /// `docker rmi`: a tag is taken off; the image goes when no tag is left (or with
    /// `force`, with all its tags), and its layers and blobs when nothing else uses them.
    pub fn remove(&self, name: &str, force: bool) -> Result<Vec<Removed>> {
        let mut index = self.lock();
        let image = resolve_in(&index, name)?.clone();
        let tags = tags_of(&index, &image.id);
        let by_tag = Reference::parse(name)
            .ok()
            .map(|r| r.to_string())
            .filter(|t| tags.contains(t));
        let mut removed = Vec::new();
        if let (Some(tag), false) = (&by_tag, force) {
            index.tags.remove(tag);
            removed.push(Removed::Untagged(tag.clone()));
            if tags.len() > 1 {
                self.save(&index)?;
                return Ok(removed);
            }
        } else if tags.len() > 1 && !force {
            return Err(Error::Invalid {
                what: "removal".into(),
                reason: format!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    &image.id.hex()[..12]
                ),
            });
        } else {
            for tag in tags {
                index.tags.remove(&tag);
                removed.push(Removed::Untagged(tag));
            }
        }
        index.images.remove(image.id.as_str());
        self.save(&index)?;
        self.collect_garbage(&index, &image)?;
        removed.push(Removed::Deleted(image.id));
        Ok(removed)
    }

    /// Deletes the removed image's blobs and layers that no remaining image uses.
    fn collect_garbage(&self, index: &Index, removed: &ImageRecord) -> Result<()> {
        let in_use = |digest: &Digest| {
            index.images.values().any(|image| {
                image.id == *digest
                    || image.manifest == *digest
                    || image
                        .layers
                        .iter()
                        .any(|l| l.digest == *digest || l.diff_id == *digest)
            })
        };
        for layer in &removed.layers {
            if !in_use(&layer.diff_id) {
                let dir = self.layer_dir(&layer.diff_id);
                std::fs::remove_dir_all(&dir)
                    .or_else(ignore_missing)
                    .at(&dir)?;
            }
            if !in_use(&layer.digest) {
                self.content.delete(&layer.digest)?;
            }
        }
        for digest in [&removed.id, &removed.manifest] {
            if !in_use(digest) {
                self.content.delete(digest)?;
            }
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes the index to a temp file, syncs it and renames it into place.
    fn save(&self, index: &Index) -> Result<()> {
        let data = serde_json::to_vec_pretty(index).unwrap_or_default();
        let partial = self.index_path.with_extension("json.partial");
        let mut file = std::fs::File::create(&partial).at(&partial)?;
        use std::io::Write;
        file.write_all(&data)
            .and_then(|()| file.sync_all())
            .at(&partial)?;
        std::fs::rename(&partial, &self.index_path).at(&self.index_path)
    }
}

fn ignore_missing(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

fn tags_of(index: &Index, id: &Digest) -> Vec<String> {
    index
        .tags
        .iter()
        .filter(|(_, image)| *image == id.as_str())
        .map(|(tag, _)| tag.clone())
        .collect()
}

fn resolve_in<'a>(index: &'a Index, name: &str) -> Result<&'a ImageRecord> {
    if let Ok(reference) = Reference::parse(name)
        && let Some(id) = index.tags.get(&reference.to_string())
        && let Some(image) = index.images.get(id)
    {
        return Ok(image);
    }
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut matches = index
            .images
            .values()
            .filter(|i| i.id.hex().starts_with(hex));
        if let (Some(image), None) = (matches.next(), matches.next()) {
            return Ok(image);
        }
    }
    // Docker names the missing image as a normalised reference: `nope:latest`.
    let shown = Reference::parse(name).map_or_else(|_| name.to_string(), |r| r.to_string());
    Err(Error::NotFound(shown))
}

fn invalid(what: &str, error: impl std::fmt::Display) -> Error {
    Error::Invalid {
        what: what.into(),
        reason: error.to_string(),
    }
}
