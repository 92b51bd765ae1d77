//! `docker load`: image archives as `docker save` writes them (a `manifest.json` naming
//! each image's config, tags and layer files; Docker 25+ lays the files out as an OCI
//! layout too) or plain OCI image layouts (`index.json` and `blobs/`). The archive is
//! staged with the same safe unpacking as a layer, and its files are then read with
//! symlinks resolved inside the staging directory, so no entry can point the store at a
//! host file.

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::digest::Digest;
use crate::error::IoContext;
use crate::reference::Reference;
use crate::store::{ImageStore, LayerBlob};
use crate::unpack::unpack_layer;
use crate::{Error, Result};

/// One image an archive brought in.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The image id.
    pub id: Digest,
    /// The tags it got.
    pub tags: Vec<Reference>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SavedImage {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// The annotations that name an image in an OCI index.
const NAME_ANNOTATIONS: [&str; 2] = [
    "io.containerd.image.name",
    "org.opencontainers.image.ref.name",
];

impl ImageStore {
    /// Loads every image of the archive read from `input` (a tar, gzip-compressed or not).
    pub fn load(&self, input: impl Read) -> Result<Vec<Loaded>> {
        let staging = self.staging_dir()?;
        unpack_layer(input, staging.path())?;
        let root = open_dir(staging.path())?;
        if let Ok(manifest) = read_staged(&root, "manifest.json") {
            let images: Vec<SavedImage> =
                serde_json::from_slice(&manifest).map_err(|e| Error::Invalid {
                    what: "archive manifest.json".into(),
                    reason: e.to_string(),
                })?;
            return images
                .iter()
                .map(|image| self.load_saved(&root, image))
                .collect();
        }
        let index = read_staged(&root, "index.json").map_err(|_| Error::Invalid {
            what: "image archive".into(),
            reason: "it holds neither manifest.json (docker save) nor index.json (OCI layout)"
                .into(),
        })?;
        let index: Value = serde_json::from_slice(&index).map_err(|e| Error::Invalid {
            what: "archive index.json".into(),
            reason: e.to_string(),
        })?;
        index["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|descriptor| self.load_oci(&root, descriptor))
            .collect()
    }

    fn load_saved(&self, root: &OwnedFd, image: &SavedImage) -> Result<Loaded> {
        let config = read_staged(root, &image.config)?;
        let layers = image
            .layers
            .iter()
            .map(|path| {
                let mut ingest = self.content().ingest()?;
                let mut file = open_staged(root, path)?;
                std::io::copy(&mut file, &mut ingest).at(path)?;
                Ok(LayerBlob {
                    digest: ingest.commit(None)?,
                    media_type: String::new(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let tags = image
            .repo_tags
            .iter()
            .flatten()
            .map(|t| Reference::parse(t))
            .collect::<Result<Vec<_>>>()?;
        let id = self.import(&config, &layers, &tags)?;
        Ok(Loaded { id, tags })
    }

    fn load_oci(&self, root: &OwnedFd, descriptor: &Value) -> Result<Loaded> {
        let manifest = self.blob_from_layout(root, descriptor)?;
        let manifest: Value = serde_json::from_slice(&manifest).map_err(|e| Error::Invalid {
            what: "manifest".into(),
            reason: e.to_string(),
        })?;
        if manifest["manifests"].is_array() {
            return Err(Error::Invalid {
                what: "image archive".into(),
                reason: "nested image indexes (multi-platform images) are not supported yet".into(),
            });
        }
        let config = self.blob_from_layout(root, &manifest["config"])?;
        let layers = manifest["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|layer| {
                let digest = descriptor_digest(layer)?;
                let mut ingest = self.content().ingest()?;
                let mut file = open_staged(root, &format!("blobs/sha256/{}", digest.hex()))?;
                std::io::copy(&mut file, &mut ingest).at(digest.as_str())?;
                ingest.commit(Some(&digest))?;
                Ok(LayerBlob {
                    digest,
                    media_type: layer["mediaType"].as_str().unwrap_or_default().to_string(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let tags: Vec<Reference> = NAME_ANNOTATIONS
            .iter()
            .filter_map(|key| descriptor["annotations"][key].as_str())
            // A bare tag (`latest`) names no repository: such images load untagged, as
            // with docker load.
            .filter(|name| name.contains('/') || name.contains(':'))
            .filter_map(|name| Reference::parse(name).ok())
            .take(1)
            .collect();
        let id = self.import(&config, &layers, &tags)?;
        Ok(Loaded { id, tags })
    }

    /// A blob of the staged layout, verified against the descriptor's digest.
    fn blob_from_layout(&self, root: &OwnedFd, descriptor: &Value) -> Result<Vec<u8>> {
        let digest = descriptor_digest(descriptor)?;
        let data = read_staged(root, &format!("blobs/sha256/{}", digest.hex()))?;
        digest.verify(&Digest::of(&data), format!("blob {digest}"))?;
        Ok(data)
    }
}

fn descriptor_digest(descriptor: &Value) -> Result<Digest> {
    Digest::parse(descriptor["digest"].as_str().unwrap_or_default())
}

fn open_dir(path: &Path) -> Result<OwnedFd> {
    let fd = nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .at(path)?;
    // SAFETY: a fresh descriptor from open.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens a staged file with every symlink resolved as if the staging directory were `/`.
fn open_staged(root: &OwnedFd, path: &str) -> Result<std::fs::File> {
    crate::resolve::open_in_root(root, path, libc::O_RDONLY)
        .map(std::fs::File::from)
        .map_err(|e| Error::Invalid {
            what: "image archive".into(),
            reason: format!("{path}: {e}"),
        })
}

fn read_staged(root: &OwnedFd, path: &str) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    open_staged(root, path)?.read_to_end(&mut data).at(path)?;
    Ok(data)
}
