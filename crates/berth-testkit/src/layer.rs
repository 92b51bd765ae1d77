//! Layers made in memory, reproducibly: entries sorted by path, fixed owners and times, so
//! the same content always gives the same digests and test images can be cached by digest.

use std::collections::BTreeMap;
use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use crate::Result;
use crate::error::IoContext;

/// One entry of a layer.
#[derive(Debug, Clone)]
enum Entry {
    Dir { mode: u32 },
    File { data: Vec<u8>, mode: u32 },
    Symlink { target: String },
}

/// Builds a gzip-compressed layer tarball from directories, files and symlinks.
#[derive(Debug, Default)]
pub struct LayerBuilder {
    entries: BTreeMap<String, Entry>,
}

/// A finished layer: its compressed bytes and the two digests the image model needs.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The gzip-compressed tarball, as stored in the blob store.
    pub compressed: Vec<u8>,
    /// `sha256:` of the compressed bytes: the layer's descriptor digest.
    pub digest: String,
    /// `sha256:` of the uncompressed tar: the image config's `rootfs.diff_ids` entry.
    pub diff_id: String,
}

/// `sha256:<hex>` of `bytes`, the digest form every OCI document uses.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl LayerBuilder {
    /// An empty layer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a directory (and its missing parents).
    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        self.add_parents(path);
        self.entries.insert(clean(path), Entry::Dir { mode });
        self
    }

    /// Adds a regular file with the given content and permission bits.
    pub fn file(mut self, path: &str, data: impl Into<Vec<u8>>, mode: u32) -> Self {
        self.add_parents(path);
        self.entries.insert(
            clean(path),
            Entry::File {
                data: data.into(),
                mode,
            },
        );
        self
    }

    /// Adds a symbolic link pointing at `target`.
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.add_parents(path);
        self.entries.insert(
            clean(path),
            Entry::Symlink {
                target: target.to_string(),
            },
        );
        self
    }

    fn add_parents(&mut self, path: &str) {
        let path = clean(path);
        let mut parent = std::path::Path::new(&path).parent();
        while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
            let key = dir.to_string_lossy().into_owned();
            self.entries
                .entry(key)
                .or_insert(Entry::Dir { mode: 0o755 });
            parent = dir.parent();
        }
    }

    /// Writes the tarball, compresses it and computes its digests.
    pub fn build(self) -> Result<Layer> {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, entry) in &self.entries {
            append(&mut tar, path, entry).at(path)?;
        }
        let uncompressed = tar.into_inner().at("layer tar")?;
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(&uncompressed).at("layer gzip")?;
        let compressed = gz.finish().at("layer gzip")?;
        Ok(Layer {
            digest: sha256_digest(&compressed),
            diff_id: sha256_digest(&uncompressed),
            compressed,
        })
    }
}

fn clean(path: &str) -> String {
    path.trim_matches('/').to_string()
}

fn append(tar: &mut tar::Builder<Vec<u8>>, path: &str, entry: &Entry) -> std::io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    match entry {
        Entry::Dir { mode } => {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(*mode);
            header.set_size(0);
            tar.append_data(&mut header, format!("{path}/"), std::io::empty())
        }
        Entry::File { data, mode } => {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(*mode);
            header.set_size(data.len() as u64);
            tar.append_data(&mut header, path, data.as_slice())
        }
        Entry::Symlink { target } => {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_mode(0o777);
            header.set_size(0);
            tar.append_link(&mut header, path, target)
        }
    }
}
