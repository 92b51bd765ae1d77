//! Pulls from OCI distribution registries: the manifest by tag, an image index resolved
//! to this host's platform, then the config and the layers, fetched a few at a time into
//! the content store and verified by digest (the connection and its credentials are
//! `registry.rs`'s).
//!
//! Fetching is async and touches only the content store; making the image of what was
//! fetched ([`crate::ImageStore::import`], which unpacks layers) is the caller's, on a
//! thread that may block.

use futures_util::StreamExt;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Response, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::content::ContentStore;
use crate::digest::Digest;
use crate::registry::{Registry, empty, header, read_all, registry_error, spec_error};
use crate::store::{ImageStore, LayerBlob};
use crate::{Error, Result};

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Layers fetched at once, as Docker's default `max-concurrent-downloads`.
const CONCURRENT_LAYERS: usize = 3;

/// What a pull is doing, for progress displays (Docker's pull messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullProgress {
    /// The manifest was found: the layers to come, by digest.
    Resolved {
        /// The manifest's digest, as the registry holds it.
        digest: Digest,
        /// The layers, bottom first.
        layers: Vec<Digest>,
    },
    /// A layer the content store already has.
    LayerExists(Digest),
    /// Bytes of a layer so far, and its size.
    Downloading {
        /// The layer.
        layer: Digest,
        /// Bytes fetched.
        current: u64,
        /// Its size, from the manifest.
        total: u64,
    },
    /// A layer fetched and verified.
    Downloaded(Digest),
}

/// What a pull fetched into the content store: enough for
/// [`crate::ImageStore::import`].
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The image config.
    pub config: Vec<u8>,
    /// The layer blobs, bottom first.
    pub layers: Vec<LayerBlob>,
    /// The digest of the manifest (of the platform's manifest for an index).
    pub manifest_digest: Digest,
}

/// The layers and config of one platform's manifest.
#[derive(Debug, Deserialize)]
struct Manifest {
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    digest: String,
    #[serde(default)]
    media_type: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Debug, Deserialize)]
struct Platform {
    os: String,
    architecture: String,
}

impl Registry {
    /// Fetches the image into `store`'s content store, reporting what it does.
    pub async fn fetch(
        &self,
        store: &ImageStore,
        progress: &(dyn Fn(PullProgress) + Sync),
    ) -> Result<Fetched> {
        let (manifest_digest, manifest) = self.platform_manifest().await?;
        let layers: Vec<(LayerBlob, u64)> = manifest
            .layers
            .iter()
            .map(|l| {
                let blob = LayerBlob {
                    digest: Digest::parse(&l.digest)?,
                    media_type: l.media_type.clone(),
                };
                Ok((blob, l.size))
            })
            .collect::<Result<_>>()?;
        progress(PullProgress::Resolved {
            digest: manifest_digest.clone(),
            layers: layers.iter().map(|(blob, _)| blob.digest.clone()).collect(),
        });
        let config_digest = Digest::parse(&manifest.config.digest)?;
        let config = self.fetch_bytes(&config_digest).await?;
        // Owned per fetch: futures that borrow from the iterator would not be Send.
        let fetches = layers.clone().into_iter().map(|(blob, size)| async move {
            self.fetch_layer(store, &blob.digest, size, progress).await
        });
        let fetched: Vec<Result<()>> = futures_util::stream::iter(fetches)
            .buffered(CONCURRENT_LAYERS)
            .collect()
            .await;
        fetched.into_iter().collect::<Result<Vec<()>>>()?;
        Ok(Fetched {
            config,
            layers: layers.into_iter().map(|(blob, _)| blob).collect(),
            manifest_digest,
        })
    }

    /// The manifest for this host's platform: the tag's own, or the one its index
    /// lists for linux and this architecture.
    async fn platform_manifest(&self) -> Result<(Digest, Manifest)> {
        let (digest, body) = self.manifest(&self.reference.tag).await?;
        let document: Value = serde_json::from_slice(&body)
            .map_err(|e| registry_error(format!("invalid manifest: {e}")))?;
        let media_type = document["mediaType"].as_str().unwrap_or_default();
        if document["schemaVersion"] == 1 {
            return Err(registry_error(format!(
                "{}: berth does not support Docker image manifest schema 1",
                self.reference
            )));
        }
        if media_type == OCI_INDEX || media_type == DOCKER_LIST || document["manifests"].is_array()
        {
            let index: Vec<Descriptor> =
                serde_json::from_value(document["manifests"].clone()).unwrap_or_default();
            let arch = host_architecture();
            let chosen = index
                .iter()
                .find(|m| {
                    m.platform
                        .as_ref()
                        .is_some_and(|p| p.os == "linux" && p.architecture == arch)
                })
                .ok_or_else(|| {
                    registry_error(format!(
                        "no matching manifest for linux/{arch} in the manifest list entries"
                    ))
                })?;
            let (digest, body) = self.manifest(&chosen.digest).await?;
            let manifest = serde_json::from_slice(&body)
                .map_err(|e| registry_error(format!("invalid manifest: {e}")))?;
            return Ok((digest, manifest));
        }
        let manifest = serde_json::from_value(document)
            .map_err(|e| registry_error(format!("invalid manifest: {e}")))?;
        Ok((digest, manifest))
    }

    /// A manifest by tag or digest, with its digest (checked when asked by digest).
    async fn manifest(&self, tag_or_digest: &str) -> Result<(Digest, Vec<u8>)> {
        let (digest, _, body) = self.fetch_manifest(tag_or_digest).await?;
        Ok((digest, body))
    }

    /// A manifest of this repository by tag or digest, as the registry holds it: its
    /// digest (checked when asked by digest), media type and bytes. What a pull-through
    /// cache keeps.
    pub async fn fetch_manifest(&self, tag_or_digest: &str) -> Result<(Digest, String, Vec<u8>)> {
        let url = format!(
            "{}/v2/{}/manifests/{tag_or_digest}",
            self.base, self.repository
        );
        let accept = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST].join(", ");
        let response = self.get(&url, &accept).await?;
        let media_type = header(&response, "content-type");
        let body = read_all(response, &url).await?;
        let digest = Digest::of(&body);
        if tag_or_digest.starts_with("sha256:") {
            Digest::parse(tag_or_digest)?.verify(&digest, format!("manifest {tag_or_digest}"))?;
        }
        Ok((digest, media_type, body))
    }

    /// Blob `digest` of this repository into `content`, verified, unless it is there.
    pub async fn fetch_blob(&self, content: &ContentStore, digest: &Digest) -> Result<()> {
        self.fetch_into(content, digest, 0, &|_| {}).await
    }

    /// A small blob (the config), verified.
    async fn fetch_bytes(&self, digest: &Digest) -> Result<Vec<u8>> {
        let url = self.blob_url(digest);
        let body = read_all(self.get(&url, "*/*").await?, &url).await?;
        digest.verify(&Digest::of(&body), format!("blob {digest}"))?;
        Ok(body)
    }

    /// A layer into the content store, unless it is there.
    async fn fetch_layer(
        &self,
        store: &ImageStore,
        digest: &Digest,
        total: u64,
        progress: &(dyn Fn(PullProgress) + Sync),
    ) -> Result<()> {
        self.fetch_into(store.content(), digest, total, progress)
            .await
    }

    /// A blob of `total` bytes into `content`, unless it is there, reporting progress.
    async fn fetch_into(
        &self,
        content: &ContentStore,
        digest: &Digest,
        total: u64,
        progress: &(dyn Fn(PullProgress) + Sync),
    ) -> Result<()> {
        if content.contains(digest) {
            progress(PullProgress::LayerExists(digest.clone()));
            return Ok(());
        }
        let url = self.blob_url(digest);
        let mut body = self.get(&url, "*/*").await?.into_body();
        let mut ingest = content.ingest()?;
        let (mut current, mut reported) = (0, 0);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| registry_error(format!("Get \"{url}\": {e}")))?;
            if let Some(data) = frame.data_ref() {
                std::io::Write::write_all(&mut ingest, data).map_err(|e| Error::Io {
                    path: content.path(digest),
                    source: e,
                })?;
                current += data.len() as u64;
                // Every 512 KiB is often enough for a progress bar.
                if current - reported >= 1 << 19 || current == total {
                    reported = current;
                    progress(PullProgress::Downloading {
                        layer: digest.clone(),
                        current,
                        total,
                    });
                }
            }
        }
        ingest.commit(Some(digest))?;
        progress(PullProgress::Downloaded(digest.clone()));
        Ok(())
    }

    /// GETs `url`: answers a 401 by authenticating once, follows redirects, and turns
    /// GETs `url`: authenticates when the registry asks, follows redirects, and turns
    /// what is not a success into an error in Docker's words.
    async fn get(&self, url: &str, accept: &str) -> Result<Response<Incoming>> {
        let mut url = url.to_string();
        let headers = [("Accept", accept)];
        for _ in 0..8 {
            // Credentials go only to the registry, not to where it redirects.
            let response = if url.starts_with(&self.base) {
                self.request(Method::GET, &url, &headers, &empty).await?
            } else {
                self.send(Method::GET, &url, &headers, None, empty()?)
                    .await?
            };
            let status = response.status();
            if status.is_redirection() {
                url = header(&response, "location");
                continue;
            }
            if status.is_success() {
                return Ok(response);
            }
            let body = response.into_body().collect().await.map(|b| b.to_bytes());
            return Err(self.refusal(status, &body.unwrap_or_default()));
        }
        Err(registry_error(format!("Get \"{url}\": too many redirects")))
    }

    /// A registry's refusal, as Docker words it.
    fn refusal(&self, status: StatusCode, body: &[u8]) -> Error {
        let (code, said) = spec_error(body);
        match (status, code.as_deref().unwrap_or_default()) {
            (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, _) | (_, "NAME_UNKNOWN") => {
                self.denied()
            }
            (StatusCode::NOT_FOUND, _) => {
                Error::RegistryMissing(format!("manifest for {} not found: {said}", self.reference))
            }
            _ => registry_error(format!(
                "{} answered {status} for {}: {said}",
                self.base, self.reference
            )),
        }
    }

    fn denied(&self) -> Error {
        Error::RegistryMissing(format!(
            "pull access denied for {}, repository does not exist or may require 'docker login'",
            self.reference.repository
        ))
    }
}

/// This host's architecture in OCI's words (`amd64`, `arm64`): the platform pulls pick.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
