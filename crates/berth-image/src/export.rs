//! `docker save` and `docker import`: images out of the store as an archive that both
//! docker's loader (`manifest.json`) and OCI tools (`index.json`, `blobs/`) read, as
//! Docker 25+ writes them; and a root filesystem tarball in as a one-layer image.

use std::collections::BTreeSet;
use std::io::{BufReader, Read, Write};

use serde_json::{Value, json};

use crate::digest::{Digest, HashingReader};
use crate::reference::Reference;
use crate::store::{ImageRecord, ImageStore, LayerBlob};
use crate::unpack::decompressed;
use crate::{Error, Result};

fn write_error(error: std::io::Error) -> Error {
    Error::Invalid {
        what: "image archive".into(),
        reason: format!("could not be written: {error}"),
    }
}

impl ImageStore {
    /// Writes the images `names` stand for to `out` as one archive. Images named by a
    /// tag carry that tag.
    pub fn save_archive(&self, names: &[String], out: impl Write) -> Result<()> {
        let mut manifests = Vec::new();
        let mut index = Vec::new();
        let mut blobs = BTreeSet::new();
        for name in names {
            let image = self.resolve(name)?;
            let tag = Reference::parse(name)
                .ok()
                .map(|r| r.to_string())
                .filter(|t| self.tags(&image).contains(t));
            let layers: Vec<String> = image
                .layers
                .iter()
                .map(|l| format!("blobs/sha256/{}", l.digest.hex()))
                .collect();
            manifests.push(json!({
                "Config": format!("blobs/sha256/{}", image.id.hex()),
                "RepoTags": tag.iter().collect::<Vec<_>>(),
                "Layers": layers,
            }));
            let size = self.content().read(&image.manifest)?.len();
            let mut entry = json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": image.manifest.as_str(),
                "size": size,
            });
            if let Some(tag) = &tag {
                let short = tag.rsplit_once(':').map_or("latest", |(_, t)| t);
                entry["annotations"] = json!({
                    "io.containerd.image.name": tag,
                    "org.opencontainers.image.ref.name": short,
                });
            }
            index.push(entry);
            blobs.insert(image.id.clone());
            blobs.insert(image.manifest.clone());
            blobs.extend(image.layers.iter().map(|l| l.digest.clone()));
        }
        let mut archive = tar::Builder::new(out);
        let mut add = |path: &str, data: &[u8]| -> Result<()> {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            archive
                .append_data(&mut header, path, data)
                .map_err(write_error)
        };
        add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": index});
        add(
            "index.json",
            &serde_json::to_vec(&index).unwrap_or_default(),
        )?;
        add(
            "manifest.json",
            &serde_json::to_vec(&manifests).unwrap_or_default(),
        )?;
        for digest in &blobs {
            let path = self.content().path(digest);
            let mut file = self.content().open_blob(digest)?;
            archive
                .append_file(format!("blobs/sha256/{}", digest.hex()), &mut file)
                .map_err(|e| Error::Io { path, source: e })?;
        }
        archive
            .into_inner()
            .and_then(|mut out| out.flush())
            .map_err(write_error)
    }

    /// `docker import`: a root filesystem tarball (plain, gzip or zstd) becomes a
    /// one-layer image whose config is `config` (Cmd, Env… as `--change` set them).
    pub fn import_rootfs(
        &self,
        input: impl Read,
        config: Value,
        comment: &str,
        tags: &[Reference],
    ) -> Result<Digest> {
        let mut ingest = self.content().ingest()?;
        std::io::copy(&mut { input }, &mut ingest).map_err(|e| Error::Invalid {
            what: "imported tarball".into(),
            reason: e.to_string(),
        })?;
        let blob = ingest.commit(None)?;
        let diff_id = {
            let mut buffered = BufReader::new(self.content().open_blob(&blob)?);
            let tar = decompressed(&mut buffered).map_err(|e| Error::Invalid {
                what: "imported tarball".into(),
                reason: e.to_string(),
            })?;
            HashingReader::new(tar)
                .finish()
                .map_err(|e| Error::Invalid {
                    what: "imported tarball".into(),
                    reason: format!("not a readable tar stream: {e}"),
                })?
                .0
        };
        let now = now();
        let document = json!({
            "architecture": crate::pull::host_architecture(),
            "os": "linux",
            "created": now,
            "comment": comment,
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [diff_id.as_str()]},
            "history": [{"created": now, "comment": comment}],
        });
        let layer = LayerBlob {
            digest: blob,
            media_type: String::new(),
        };
        self.import(
            &serde_json::to_vec(&document).unwrap_or_default(),
            &[layer],
            tags,
        )
    }

    /// `docker commit`: an image of `base`'s layers and `layer` on top (an uncompressed
    /// tar already in the content store, whose digest is therefore also its diff_id),
    /// with `config` as what it runs and `note` in its history.
    pub fn commit(
        &self,
        base: &ImageRecord,
        layer: Digest,
        config: Value,
        note: &CommitNote,
        tags: &[Reference],
    ) -> Result<Digest> {
        let mut document = self.config(base)?;
        let now = now();
        document["created"] = json!(now);
        document["config"] = config;
        document["comment"] = json!(note.comment);
        if !note.author.is_empty() {
            document["author"] = json!(note.author);
        }
        let step = json!({"created": now, "author": note.author, "comment": note.comment});
        push(&mut document["history"], step);
        push(&mut document["rootfs"]["diff_ids"], json!(layer.as_str()));
        let mut layers: Vec<LayerBlob> = base
            .layers
            .iter()
            .map(|l| LayerBlob {
                digest: l.digest.clone(),
                media_type: l.media_type.clone(),
            })
            .collect();
        layers.push(LayerBlob {
            digest: layer,
            media_type: String::new(),
        });
        self.import(
            &serde_json::to_vec(&document).unwrap_or_default(),
            &layers,
            tags,
        )
    }
}

/// Who made a committed image and why (`docker commit -a` and `-m`).
#[derive(Debug, Clone, Default)]
pub struct CommitNote {
    /// The author.
    pub author: String,
    /// The commit message.
    pub comment: String,
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Appends to a JSON array, making it first if the document had none.
fn push(array: &mut Value, item: Value) {
    if !array.is_array() {
        *array = json!([]);
    }
    if let Value::Array(items) = array {
        items.push(item);
    }
}
