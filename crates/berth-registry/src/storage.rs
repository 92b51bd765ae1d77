//! A registry's storage on disk, laid out as distribution lays out its filesystem
//! driver: blobs content-addressed once for every repository (berth-image's content
//! store), and per repository the links that say which blobs and manifests it holds and
//! where its tags point:
//!
//! ```text
//! <root>/blobs/sha256/<hex>                                  every blob and manifest
//! <root>/repositories/<name>/_layers/<hex>                   the repository holds a blob
//! <root>/repositories/<name>/_manifests/revisions/<hex>      …a manifest (its media type)
//! <root>/repositories/<name>/_manifests/tags/<tag>           a tag (its manifest's digest)
//! ```
//!
//! A link is written only after the blob it names is whole and verified, so a reader
//! never finds a link to a missing or partial blob.

use std::path::{Path, PathBuf};

use berth_image::{ContentStore, Digest, Ingest};

use crate::errors::{Code, RegistryError};

/// One registry's storage.
pub struct Storage {
    content: ContentStore,
    repositories: PathBuf,
}

/// A manifest as stored: its bytes and the media type it was pushed with.
pub struct Manifest {
    /// Its digest.
    pub digest: Digest,
    /// Its media type (`application/vnd.oci.image.manifest.v1+json`…).
    pub media_type: String,
    /// Its bytes, exactly as pushed.
    pub bytes: Vec<u8>,
}

impl Storage {
    /// The storage under `root`, made if missing.
    pub fn open(root: &Path) -> Result<Self, RegistryError> {
        let content = ContentStore::open(root).map_err(RegistryError::internal)?;
        let repositories = root.join("repositories");
        std::fs::create_dir_all(&repositories).map_err(RegistryError::internal)?;
        Ok(Self {
            content,
            repositories,
        })
    }

    fn repository(&self, name: &str) -> PathBuf {
        self.repositories.join(name)
    }

    /// Whether repository `name` holds blob `digest`.
    pub fn has_blob(&self, name: &str, digest: &Digest) -> bool {
        self.repository(name)
            .join("_layers")
            .join(digest.hex())
            .is_file()
    }

    /// Blob `digest` of repository `name`, opened, with its size.
    pub fn blob(&self, name: &str, digest: &Digest) -> Result<(std::fs::File, u64), RegistryError> {
        if !self.has_blob(name, digest) {
            return Err(RegistryError::new(Code::BlobUnknown, digest.as_str()));
        }
        let file = self
            .content
            .open_blob(digest)
            .map_err(|_| RegistryError::new(Code::BlobUnknown, digest.as_str()))?;
        let size = file.metadata().map_err(RegistryError::internal)?.len();
        Ok((file, size))
    }

    /// Starts an upload.
    pub fn ingest(&self) -> Result<Ingest, RegistryError> {
        self.content.ingest().map_err(RegistryError::internal)
    }

    /// Finishes an upload into repository `name`, refusing it unless its bytes hash to
    /// `expected`.
    pub fn commit(
        &self,
        name: &str,
        upload: Ingest,
        expected: &Digest,
    ) -> Result<(), RegistryError> {
        upload.commit(Some(expected)).map_err(|_| {
            RegistryError::new(
                Code::DigestInvalid,
                "the uploaded content does not match the digest",
            )
        })?;
        self.link_blob(name, expected)
    }

    /// Gives repository `name` blob `digest` that another repository holds (a
    /// cross-repository mount); false when `from` does not hold it.
    pub fn mount(&self, name: &str, from: &str, digest: &Digest) -> Result<bool, RegistryError> {
        if !self.has_blob(from, digest) {
            return Ok(false);
        }
        self.link_blob(name, digest).map(|()| true)
    }

    fn link_blob(&self, name: &str, digest: &Digest) -> Result<(), RegistryError> {
        write_link(&self.repository(name).join("_layers"), digest.hex(), "")
    }

    /// Removes blob `digest` from repository `name` (the bytes stay while others hold it).
    pub fn delete_blob(&self, name: &str, digest: &Digest) -> Result<(), RegistryError> {
        std::fs::remove_file(self.repository(name).join("_layers").join(digest.hex()))
            .map_err(|_| RegistryError::new(Code::BlobUnknown, digest.as_str()))
    }

    /// Stores `bytes` as a manifest of repository `name` (and tags it `tag`, if given);
    /// every blob and manifest it refers to must be in the repository already.
    pub fn put_manifest(
        &self,
        name: &str,
        tag: Option<&str>,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, RegistryError> {
        for (digest, is_manifest) in references(bytes)? {
            let held = if is_manifest {
                self.revision(name, &digest).is_file()
            } else {
                self.has_blob(name, &digest)
            };
            if !held {
                let code = if is_manifest {
                    Code::ManifestUnknown
                } else {
                    Code::ManifestBlobUnknown
                };
                return Err(RegistryError::new(code, digest.as_str()));
            }
        }
        let digest = self
            .content
            .put(bytes, None)
            .map_err(RegistryError::internal)?;
        let revisions = self.repository(name).join("_manifests/revisions");
        write_link(&revisions, digest.hex(), media_type)?;
        if let Some(tag) = tag {
            write_link(
                &self.repository(name).join("_manifests/tags"),
                tag,
                digest.as_str(),
            )?;
        }
        Ok(digest)
    }

    fn revision(&self, name: &str, digest: &Digest) -> PathBuf {
        self.repository(name)
            .join("_manifests/revisions")
            .join(digest.hex())
    }

    /// Manifest `reference` (a tag or a digest) of repository `name`.
    pub fn manifest(&self, name: &str, reference: &str) -> Result<Manifest, RegistryError> {
        let unknown = || RegistryError::new(Code::ManifestUnknown, reference);
        let digest = match Digest::parse(reference) {
            Ok(digest) => digest,
            Err(_) => {
                let tag = self
                    .repository(name)
                    .join("_manifests/tags")
                    .join(reference);
                let text = std::fs::read_to_string(tag).map_err(|_| unknown())?;
                Digest::parse(text.trim()).map_err(|_| unknown())?
            }
        };
        let media_type =
            std::fs::read_to_string(self.revision(name, &digest)).map_err(|_| unknown())?;
        let bytes = self.content.read(&digest).map_err(|_| unknown())?;
        Ok(Manifest {
            digest,
            media_type,
            bytes,
        })
    }

    /// Removes manifest `digest` from repository `name`, with the tags that point at it.
    pub fn delete_manifest(&self, name: &str, digest: &Digest) -> Result<(), RegistryError> {
        std::fs::remove_file(self.revision(name, digest))
            .map_err(|_| RegistryError::new(Code::ManifestUnknown, digest.as_str()))?;
        let tags = self.repository(name).join("_manifests/tags");
        for tag in std::fs::read_dir(&tags).into_iter().flatten().flatten() {
            if std::fs::read_to_string(tag.path()).is_ok_and(|d| d.trim() == digest.as_str()) {
                std::fs::remove_file(tag.path()).map_err(RegistryError::internal)?;
            }
        }
        Ok(())
    }

    /// Repository `name`'s tags, sorted; None when the repository does not exist.
    pub fn tags(&self, name: &str) -> Option<Vec<String>> {
        let repository = self.repository(name);
        if !repository.is_dir() {
            return None;
        }
        let tags = repository.join("_manifests/tags");
        let mut listed: Vec<String> = std::fs::read_dir(tags)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| entry.file_name().into_string().ok())
            .collect();
        listed.sort();
        Some(listed)
    }
}

/// The blobs and manifests a manifest refers to: (digest, whether it is a manifest).
fn references(bytes: &[u8]) -> Result<Vec<(Digest, bool)>, RegistryError> {
    #[derive(serde::Deserialize)]
    struct Descriptor {
        digest: String,
    }
    #[derive(serde::Deserialize)]
    struct Shape {
        config: Option<Descriptor>,
        #[serde(default)]
        layers: Vec<Descriptor>,
        #[serde(default)]
        manifests: Vec<Descriptor>,
    }
    let invalid = |detail: String| RegistryError::new(Code::ManifestInvalid, &detail);
    let shape: Shape = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    let parse = |d: Descriptor| Digest::parse(&d.digest).map_err(|e| invalid(e.to_string()));
    let blobs = shape
        .config
        .into_iter()
        .chain(shape.layers)
        .map(|d| parse(d).map(|d| (d, false)));
    let manifests = shape
        .manifests
        .into_iter()
        .map(|d| parse(d).map(|d| (d, true)));
    blobs.chain(manifests).collect()
}

/// Writes `content` to `dir/name` whole: a temp file of its own renamed into place, so
/// concurrent writers of one link never mix.
fn write_link(dir: &Path, name: &str, content: &str) -> Result<(), RegistryError> {
    std::fs::create_dir_all(dir).map_err(RegistryError::internal)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(RegistryError::internal)?;
    std::io::Write::write_all(&mut temp, content.as_bytes()).map_err(RegistryError::internal)?;
    temp.persist(dir.join(name))
        .map(drop)
        .map_err(RegistryError::internal)
}
