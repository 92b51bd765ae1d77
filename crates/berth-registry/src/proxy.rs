//! Pull-through cache mode (`--proxy URL`), as distribution's proxy: manifests and blobs
//! this registry lacks are fetched from the upstream registry on first request, kept
//! (content-addressed like any other), and served from here after; a tag is asked of
//! the upstream each time, and the copy here answers when the upstream cannot. Pushes
//! and deletes are refused: the upstream is the source of truth.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use berth_image::{Credentials, Digest, Reference, Registry, RegistryOptions};

use crate::errors::{Code, RegistryError};
use crate::storage::Storage;

/// The registry a cache pulls through to.
#[derive(Clone)]
pub struct Upstream {
    /// `host[:port]`.
    host: String,
    options: RegistryOptions,
    /// A client per repository, made once: each holds its connections and the token
    /// the upstream gave it, which every request would otherwise earn again.
    repositories: Arc<Mutex<HashMap<String, Arc<Registry>>>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// The upstream at `url` (`https://host[:port]`, or `http://` for a plain one), with
    /// the credentials to use there.
    pub fn new(url: &str, credentials: Option<Credentials>) -> Result<Self, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("--proxy {url}: an http:// or https:// URL"))?;
        let host = rest.trim_end_matches('/').to_string();
        if host.is_empty() || host.contains('/') {
            return Err(format!("--proxy {url}: the registry's URL, without a path"));
        }
        let insecure_registries = match scheme {
            "https" => Vec::new(),
            "http" => vec![host.clone()],
            other => return Err(format!("--proxy {url}: unsupported scheme {other}")),
        };
        Ok(Self {
            host,
            options: RegistryOptions {
                credentials,
                insecure_registries,
            },
            repositories: Arc::default(),
        })
    }

    fn repository(&self, name: &str) -> Result<Arc<Registry>, RegistryError> {
        let mut known = self.repositories.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(registry) = known.get(name) {
            return Ok(Arc::clone(registry));
        }
        let reference = Reference::parse(&format!("{}/{name}", self.host))
            .map_err(|e| RegistryError::new(Code::NameInvalid, &e.to_string()))?;
        let registry =
            Arc::new(Registry::new(&reference, &self.options).map_err(RegistryError::internal)?);
        known.insert(name.to_string(), Arc::clone(&registry));
        Ok(registry)
    }

    /// Brings manifest `reference` (a tag or a digest) of repository `name` here: a tag
    /// is asked of the upstream each time (its copy here answers when the upstream
    /// fails), a digest only when missing.
    pub async fn manifest(
        &self,
        storage: &Storage,
        name: &str,
        reference: &str,
    ) -> Result<(), RegistryError> {
        let by_digest = Digest::parse(reference).is_ok();
        if by_digest && storage.manifest(name, reference).is_ok() {
            return Ok(());
        }
        let fetched = self.repository(name)?.fetch_manifest(reference).await;
        match fetched {
            Ok((_, media_type, bytes)) => {
                let tag = (!by_digest).then_some(reference);
                storage.cache_manifest(name, tag, &media_type, &bytes)?;
                Ok(())
            }
            Err(error) if storage.manifest(name, reference).is_ok() => {
                tracing::warn!(%error, name, reference, "upstream failed; serving the cached manifest");
                Ok(())
            }
            Err(error) => Err(RegistryError::new(
                Code::ManifestUnknown,
                &error.to_string(),
            )),
        }
    }

    /// Brings blob `digest` of repository `name` here unless it is.
    pub async fn blob(
        &self,
        storage: &Storage,
        name: &str,
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        if storage.has_blob(name, digest) {
            return Ok(());
        }
        self.repository(name)?
            .fetch_blob(storage.content(), digest)
            .await
            .map_err(|e| RegistryError::new(Code::BlobUnknown, &e.to_string()))?;
        storage.adopt_blob(name, digest)
    }
}
