//! The build cache for RUN: a step's layer kept under a key of everything that decides
//! its content — the filesystem below it (the chain of the keys before) and the command
//! with its environment, directory and user — so an unchanged step runs nothing. COPY
//! needs no records: its layer is hashed from the context and found in the content store
//! by that digest (`context.rs`). A key whose layer has left the store is a miss.

use std::path::PathBuf;

use berth_image::{ContentStore, Digest, ImageStore};

/// Where RUN layers are remembered; nowhere with `--no-cache`.
pub struct Cache {
    dir: Option<PathBuf>,
}

impl Cache {
    /// The cache of `images`' store, or none when `enabled` is false.
    pub fn open(images: &ImageStore, enabled: bool) -> Result<Self, berth_image::Error> {
        let dir = enabled
            .then(|| images.records_dir("build-cache"))
            .transpose()?;
        Ok(Self { dir })
    }

    /// The layer kept under `key`, if it is still in `content`.
    pub fn layer(&self, key: &Digest, content: &ContentStore) -> Option<Digest> {
        let text = std::fs::read_to_string(self.dir.as_ref()?.join(key.hex())).ok()?;
        let layer = Digest::parse(text.trim()).ok()?;
        content.contains(&layer).then_some(layer)
    }

    /// Remembers `layer` under `key`; a cache that cannot be written only costs a rerun.
    pub fn keep(&self, key: &Digest, layer: &Digest) {
        if let Some(dir) = &self.dir {
            let written = tempfile::NamedTempFile::new_in(dir).and_then(|mut temp| {
                std::io::Write::write_all(&mut temp, layer.as_str().as_bytes())?;
                temp.persist(dir.join(key.hex())).map_err(|e| e.error)
            });
            if let Err(error) = written {
                tracing::warn!(%error, "the build cache could not keep a layer");
            }
        }
    }
}

/// The key after `parent` of a step described by `parts`.
pub fn key(parent: &Digest, parts: &[&str]) -> Digest {
    let mut text = parent.as_str().to_string();
    for part in parts {
        text.push('\0');
        text.push_str(part);
    }
    Digest::of(text.as_bytes())
}
