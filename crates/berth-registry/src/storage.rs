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
//! <root>/repositories/<name>/_manifests/referrers/<subject>/<hex>  a referrer's descriptor
//! ```
//!
//! A link is written only after the blob it names is whole and verified, so a reader
//! never finds a link to a missing or partial blob.

use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use berth_image::{ContentStore, Digest, Ingest};

use crate::errors::{Code, RegistryError};

/// One registry's storage.
pub struct Storage {
    content: ContentStore,
    root: PathBuf,
    repositories: PathBuf,
    /// Held shared by whatever adds links (uploads, mounts, manifests, a HEAD that
    /// promises a push will use a blob) and exclusively by garbage collection, so a
    /// collection never judges a blob unused while a push is linking it.
    lock: RwLock<()>,
}

/// A manifest just stored: its digest and the manifest it refers to, if any (`subject`,
/// which the response names in `OCI-Subject`).
pub struct Stored {
    /// Its digest.
    pub digest: Digest,
    /// Its subject's digest.
    pub subject: Option<Digest>,
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
            root: root.to_path_buf(),
            repositories,
            lock: RwLock::new(()),
        })
    }

    fn shared(&self) -> RwLockReadGuard<'_, ()> {
        self.lock
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The lock garbage collection holds while it runs.
    pub(crate) fn exclusive(&self) -> RwLockWriteGuard<'_, ()> {
        self.lock
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn repositories_dir(&self) -> &Path {
        &self.repositories
    }

    /// Where the content store keeps blobs and manifests.
    pub(crate) fn content_dir(&self) -> PathBuf {
        self.root.join("blobs/sha256")
    }

    /// Where uploads in progress are written.
    pub(crate) fn ingest_dir(&self) -> PathBuf {
        self.root.join("ingest")
    }

    pub(crate) fn read_content(&self, digest: &Digest) -> Option<Vec<u8>> {
        self.content.read(digest).ok()
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

    /// Whether repository `name` holds blob `digest`, renewing its link when it does: a
    /// client asks before a push that will then reference the blob without uploading
    /// it, so garbage collection must leave it a grace period again.
    pub fn has_blob_for_push(&self, name: &str, digest: &Digest) -> bool {
        let _shared = self.shared();
        let link = self.repository(name).join("_layers").join(digest.hex());
        std::fs::File::options()
            .write(true)
            .open(link)
            .and_then(|file| file.set_modified(std::time::SystemTime::now()))
            .is_ok()
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

    /// Starts upload `id`, kept on disk under its id so it outlives a restart.
    pub fn ingest_upload(&self, id: &str) -> Result<Ingest, RegistryError> {
        self.content
            .ingest_named(id)
            .map_err(RegistryError::internal)
    }

    /// Upload `id` as an earlier process of this registry left it, if it did.
    pub fn resume_upload(&self, id: &str) -> Option<Ingest> {
        self.content.resume(id).ok().flatten()
    }

    /// Finishes an upload into repository `name`, refusing it unless its bytes hash to
    /// `expected`.
    pub fn commit(
        &self,
        name: &str,
        upload: Ingest,
        expected: &Digest,
    ) -> Result<(), RegistryError> {
        let _shared = self.shared();
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
        let _shared = self.shared();
        if !self.has_blob(from, digest) {
            return Ok(false);
        }
        self.link_blob(name, digest).map(|()| true)
    }

    /// Gives repository `name` blob `digest`, which the content store holds (a
    /// pull-through cache's fetched blob).
    pub(crate) fn adopt_blob(&self, name: &str, digest: &Digest) -> Result<(), RegistryError> {
        let _shared = self.shared();
        self.link_blob(name, digest)
    }

    /// The content store, for blobs fetched from elsewhere.
    pub(crate) fn content(&self) -> &ContentStore {
        &self.content
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
    ) -> Result<Stored, RegistryError> {
        let _shared = self.shared();
        let shape = Shape::parse(bytes)?;
        for (digest, is_manifest) in shape.references()? {
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
        self.store_manifest(name, tag, media_type, bytes, &shape)
    }

    /// Keeps `bytes` as a manifest of repository `name` (tagged `tag`, if given) without
    /// asking for what it names: a pull-through cache fetches blobs when they are asked.
    pub(crate) fn cache_manifest(
        &self,
        name: &str,
        tag: Option<&str>,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Stored, RegistryError> {
        let _shared = self.shared();
        self.store_manifest(name, tag, media_type, bytes, &Shape::parse(bytes)?)
    }

    fn store_manifest(
        &self,
        name: &str,
        tag: Option<&str>,
        media_type: &str,
        bytes: &[u8],
        shape: &Shape,
    ) -> Result<Stored, RegistryError> {
        let digest = self
            .content
            .put(bytes, None)
            .map_err(RegistryError::internal)?;
        let subject = shape.subject()?;
        if let Some(subject) = &subject {
            let referrer = shape.referrer(&digest, media_type, bytes.len());
            write_link(
                &self.referrers(name, subject),
                digest.hex(),
                &referrer.to_string(),
            )?;
        }
        let revisions = self.repository(name).join("_manifests/revisions");
        write_link(&revisions, digest.hex(), media_type)?;
        if let Some(tag) = tag {
            write_link(
                &self.repository(name).join("_manifests/tags"),
                tag,
                digest.as_str(),
            )?;
        }
        Ok(Stored { digest, subject })
    }

    /// Where the manifests of repository `name` that name `subject` are listed.
    fn referrers(&self, name: &str, subject: &Digest) -> PathBuf {
        self.repository(name)
            .join("_manifests/referrers")
            .join(subject.hex())
    }

    /// The descriptors of repository `name`'s manifests whose subject is `subject` and,
    /// when `artifact_type` is given, whose artifact type is that, in digest order.
    pub fn referrers_of(
        &self,
        name: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Vec<serde_json::Value> {
        let mut entries: Vec<_> = std::fs::read_dir(self.referrers(name, subject))
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path())
            .collect();
        entries.sort();
        entries
            .iter()
            .filter_map(|path| std::fs::read(path).ok())
            .filter_map(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .filter(|d| artifact_type.is_none_or(|wanted| d["artifactType"] == wanted))
            .collect()
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
        let _shared = self.shared();
        let repository = self.repository(name);
        let revision = self.revision(name, digest);
        if !revision.is_file() {
            return Err(RegistryError::new(Code::ManifestUnknown, digest.as_str()));
        }
        self.remove_revision(&repository, digest, &revision)?;
        let tags = repository.join("_manifests/tags");
        for tag in std::fs::read_dir(&tags).into_iter().flatten().flatten() {
            if std::fs::read_to_string(tag.path()).is_ok_and(|d| d.trim() == digest.as_str()) {
                std::fs::remove_file(tag.path()).map_err(RegistryError::internal)?;
            }
        }
        Ok(())
    }

    /// Removes the revision link of manifest `digest` at `revision` in `repository`, and
    /// its entry among its subject's referrers.
    pub(crate) fn remove_revision(
        &self,
        repository: &Path,
        digest: &Digest,
        revision: &Path,
    ) -> Result<(), RegistryError> {
        let subject = self
            .read_content(digest)
            .and_then(|bytes| Shape::parse(&bytes).ok()?.subject().ok()?);
        std::fs::remove_file(revision).map_err(RegistryError::internal)?;
        if let Some(subject) = subject {
            let link = repository
                .join("_manifests/referrers")
                .join(subject.hex())
                .join(digest.hex());
            std::fs::remove_file(link).map_err(RegistryError::internal)?;
        }
        Ok(())
    }

    /// Every repository's name, sorted.
    pub fn repository_names(&self) -> Vec<String> {
        let mut names: Vec<String> = crate::gc::repositories(&self.repositories)
            .iter()
            .filter_map(|dir| dir.strip_prefix(&self.repositories).ok())
            .map(|name| name.to_string_lossy().into_owned())
            .filter(|name| !name.is_empty())
            .collect();
        names.sort();
        names
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

/// What the registry reads of a manifest: what it refers to, and what the referrers API
/// lists of it.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Shape {
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
    subject: Option<Descriptor>,
    artifact_type: Option<String>,
    annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    digest: String,
    media_type: Option<String>,
}

impl Shape {
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, RegistryError> {
        serde_json::from_slice(bytes)
            .map_err(|e| RegistryError::new(Code::ManifestInvalid, &e.to_string()))
    }

    /// The blobs and manifests it refers to: (digest, whether it is a manifest).
    pub(crate) fn references(&self) -> Result<Vec<(Digest, bool)>, RegistryError> {
        let blobs = self.config.iter().chain(&self.layers).map(|d| (d, false));
        let manifests = self.manifests.iter().map(|d| (d, true));
        blobs
            .chain(manifests)
            .map(|(d, is_manifest)| parse_digest(&d.digest).map(|digest| (digest, is_manifest)))
            .collect()
    }

    /// The manifest it is about (`subject`), if any.
    fn subject(&self) -> Result<Option<Digest>, RegistryError> {
        self.subject
            .as_ref()
            .map(|subject| parse_digest(&subject.digest))
            .transpose()
    }

    /// Its descriptor as the referrers API lists it: the artifact type is its own or,
    /// as the spec says, its config's media type.
    fn referrer(&self, digest: &Digest, media_type: &str, size: usize) -> serde_json::Value {
        let artifact_type = self
            .artifact_type
            .clone()
            .or_else(|| self.config.as_ref().and_then(|c| c.media_type.clone()));
        let mut descriptor = serde_json::json!({
            "mediaType": media_type, "digest": digest.as_str(), "size": size,
        });
        if let Some(artifact_type) = artifact_type {
            descriptor["artifactType"] = artifact_type.into();
        }
        if let Some(annotations) = &self.annotations {
            descriptor["annotations"] = annotations.clone().into();
        }
        descriptor
    }
}

fn parse_digest(text: &str) -> Result<Digest, RegistryError> {
    Digest::parse(text).map_err(|e| RegistryError::new(Code::ManifestInvalid, &e.to_string()))
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
