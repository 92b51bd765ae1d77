//! Pushes to OCI distribution registries, as `docker push` does: each blob the registry
//! lacks is mounted from another repository of the same registry that holds it, or
//! uploaded — a few layers at once, each streamed from the content store in one `PATCH`
//! and resumed from where the registry says it ends if the connection breaks —, then the
//! config, then the manifest under the tag. The manifest goes last, so a push that fails
//! leaves no tag behind.

use std::io::{Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Method, Response, StatusCode};
use serde::Deserialize;

use crate::content::ContentStore;
use crate::digest::Digest;
use crate::error::IoContext;
use crate::registry::{Registry, RequestBody, empty, header, read_all, registry_error, spec_error};
use crate::{Error, Result};

/// Layers uploaded at once, as Docker's default `max-concurrent-uploads`.
const CONCURRENT_UPLOADS: usize = 5;

/// Times a broken upload is resumed before the push gives up.
const RESUMES: usize = 3;

/// How often an upload in flight reports its bytes.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// What a push is doing, for progress displays (Docker's push messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushProgress {
    /// The layers to push, by digest, bottom first.
    Preparing(Vec<Digest>),
    /// A layer the registry already holds in this repository.
    LayerExists(Digest),
    /// A layer the registry took from another of its repositories instead of an upload.
    Mounted {
        /// The layer.
        layer: Digest,
        /// The repository it came from.
        from: String,
    },
    /// Bytes of a layer uploaded so far, and its size.
    Pushing {
        /// The layer.
        layer: Digest,
        /// Bytes sent.
        current: u64,
        /// Its size.
        total: u64,
    },
    /// A layer uploaded and accepted.
    Pushed(Digest),
}

/// What a push left in the registry: the manifest under the tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The manifest's digest.
    pub digest: Digest,
    /// The manifest's size in bytes.
    pub size: u64,
}

/// The parts of a manifest a push uploads before it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageManifest {
    media_type: Option<String>,
    config: Blob,
    layers: Vec<Blob>,
}

#[derive(Deserialize)]
struct Blob {
    digest: Digest,
    size: u64,
}

impl Registry {
    /// Pushes the image whose manifest is blob `manifest` of `content` under this
    /// reference's tag. `mount_from` names repositories of the same registry that may
    /// hold its blobs already (the image's other names there).
    pub async fn push(
        &self,
        content: &ContentStore,
        manifest: &Digest,
        mount_from: &[String],
        progress: &(dyn Fn(PushProgress) + Sync),
    ) -> Result<Pushed> {
        let bytes = content.read(manifest)?;
        let parsed: ImageManifest = serde_json::from_slice(&bytes).map_err(|e| Error::Invalid {
            what: format!("manifest {manifest}"),
            reason: e.to_string(),
        })?;
        progress(PushProgress::Preparing(
            parsed.layers.iter().map(|l| l.digest.clone()).collect(),
        ));
        // Owned per upload: futures that borrow from the iterator would not be Send.
        let uploads = parsed.layers.into_iter().map(|layer| async move {
            self.push_blob(content, &layer, mount_from, progress).await
        });
        futures_util::stream::iter(uploads)
            .buffer_unordered(CONCURRENT_UPLOADS)
            .try_collect::<Vec<()>>()
            .await?;
        self.push_blob(content, &parsed.config, mount_from, &|_| {})
            .await?;
        let media_type = parsed
            .media_type
            .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".into());
        let url = format!(
            "{}/v2/{}/manifests/{}",
            self.base, self.repository, self.reference.tag
        );
        let body = || Ok(full(bytes.clone()));
        let headers = [("Content-Type", media_type.as_str())];
        let response = self.request(Method::PUT, &url, &headers, &body).await?;
        if response.status() != StatusCode::CREATED {
            return Err(refusal(response, "PUT", &url).await);
        }
        Ok(Pushed {
            digest: manifest.clone(),
            size: bytes.len() as u64,
        })
    }

    /// Puts one blob in the repository unless it is there: mounted if another
    /// repository has it, else uploaded.
    async fn push_blob(
        &self,
        content: &ContentStore,
        blob: &Blob,
        mount_from: &[String],
        progress: &(dyn Fn(PushProgress) + Sync),
    ) -> Result<()> {
        let url = self.blob_url(&blob.digest);
        let head = self.request(Method::HEAD, &url, &[], &empty).await?;
        match head.status() {
            status if status.is_success() => {
                progress(PushProgress::LayerExists(blob.digest.clone()));
                return Ok(());
            }
            StatusCode::NOT_FOUND => {}
            _ => return Err(refusal(head, "HEAD", &url).await),
        }
        let uploads = format!("{}/v2/{}/blobs/uploads/", self.base, self.repository);
        for from in mount_from.iter().filter(|from| **from != self.repository) {
            let query =
                serde_urlencoded::to_string([("mount", blob.digest.as_str()), ("from", from)])
                    .unwrap_or_default();
            let response = self.start_upload(&format!("{uploads}?{query}")).await?;
            if response.status() == StatusCode::CREATED {
                let (layer, from) = (blob.digest.clone(), from.clone());
                progress(PushProgress::Mounted { layer, from });
                return Ok(());
            }
            // The registry began an upload instead: drop it, try the next source.
            let abandoned = self.location(&response)?;
            let _ = self.request(Method::DELETE, &abandoned, &[], &empty).await;
        }
        let response = self.start_upload(&uploads).await?;
        let location = self
            .upload(content, blob, self.location(&response)?, progress)
            .await?;
        let separator = if location.contains('?') { '&' } else { '?' };
        let done = format!("{location}{separator}digest={}", blob.digest);
        let headers = [("Content-Length", "0")];
        let response = self.request(Method::PUT, &done, &headers, &empty).await?;
        if response.status() != StatusCode::CREATED {
            return Err(refusal(response, "PUT", &done).await);
        }
        progress(PushProgress::Pushed(blob.digest.clone()));
        Ok(())
    }

    /// POSTs to the uploads (a plain start or a mount): 201 or 202, else the refusal.
    async fn start_upload(&self, url: &str) -> Result<Response<Incoming>> {
        let headers = [("Content-Length", "0")];
        let response = self.request(Method::POST, url, &headers, &empty).await?;
        match response.status() {
            StatusCode::CREATED | StatusCode::ACCEPTED => Ok(response),
            _ => Err(refusal(response, "POST", url).await),
        }
    }

    /// Streams the blob to upload `location` in one PATCH, resuming from where the
    /// registry says the upload ends when the connection breaks; where the upload is
    /// after it.
    async fn upload(
        &self,
        content: &ContentStore,
        blob: &Blob,
        mut location: String,
        progress: &(dyn Fn(PushProgress) + Sync),
    ) -> Result<String> {
        let path = content.path(&blob.digest);
        let sent = Arc::new(AtomicU64::new(0));
        let mut offset = 0;
        for attempt in 0..=RESUMES {
            if offset == blob.size {
                break;
            }
            let (length, range) = (
                (blob.size - offset).to_string(),
                format!("{offset}-{}", blob.size - 1),
            );
            let headers = [
                ("Content-Type", "application/octet-stream"),
                ("Content-Length", length.as_str()),
                ("Content-Range", range.as_str()),
            ];
            let body = || file_body(&path, offset, Arc::clone(&sent));
            let patch = self.request(Method::PATCH, &location, &headers, &body);
            let report = |current| {
                progress(PushProgress::Pushing {
                    layer: blob.digest.clone(),
                    current,
                    total: blob.size,
                });
            };
            match reporting(patch, &sent, report).await {
                Ok(response) if response.status() == StatusCode::ACCEPTED => {
                    report(blob.size);
                    return self.location(&response);
                }
                Ok(response) if !response.status().is_server_error() || attempt == RESUMES => {
                    return Err(refusal(response, "PATCH", &location).await);
                }
                Err(error) if attempt == RESUMES => return Err(error),
                broken => {
                    tracing::debug!(layer = %blob.digest, ?broken, "resuming an upload");
                    (location, offset) = self.upload_end(&location).await?;
                }
            }
        }
        Ok(location)
    }

    /// Where upload `location` is now and how many bytes it holds (its `Range`).
    async fn upload_end(&self, location: &str) -> Result<(String, u64)> {
        let response = self.request(Method::GET, location, &[], &empty).await?;
        if response.status() != StatusCode::NO_CONTENT {
            return Err(refusal(response, "GET", location).await);
        }
        let range = header(&response, "range");
        let end = range
            .rsplit_once('-')
            .and_then(|(_, end)| end.parse::<u64>().ok())
            .map_or(0, |end| end + 1);
        Ok((self.location(&response)?, end))
    }

    /// The `Location` of a response, made absolute.
    fn location(&self, response: &Response<Incoming>) -> Result<String> {
        match header(response, "location") {
            location if location.starts_with('/') => Ok(format!("{}{location}", self.base)),
            location if !location.is_empty() => Ok(location),
            _ => Err(registry_error(format!(
                "{} answered an upload without a Location",
                self.base
            ))),
        }
    }
}

/// Awaits `request`, reporting the bytes `sent` counts every [`PROGRESS_EVERY`].
async fn reporting<T>(
    request: impl Future<Output = T>,
    sent: &AtomicU64,
    report: impl Fn(u64),
) -> T {
    let mut request = std::pin::pin!(request);
    let mut ticker = tokio::time::interval(PROGRESS_EVERY);
    ticker.tick().await;
    loop {
        tokio::select! {
            done = &mut request => return done,
            _ = ticker.tick() => report(sent.load(Ordering::Relaxed)),
        }
    }
}

/// The file at `path` from `offset` on as a body, counting what is read into `sent`.
fn file_body(path: &Path, offset: u64, sent: Arc<AtomicU64>) -> Result<RequestBody> {
    let mut file = std::fs::File::open(path).at(path)?;
    file.seek(SeekFrom::Start(offset)).at(path)?;
    sent.store(offset, Ordering::Relaxed);
    let chunks =
        tokio_util::io::ReaderStream::with_capacity(tokio::fs::File::from_std(file), 1 << 18).map(
            move |chunk| {
                chunk.map(|bytes| {
                    sent.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    Frame::data(bytes)
                })
            },
        );
    Ok(BodyExt::boxed(StreamBody::new(chunks)))
}

fn full(bytes: Vec<u8>) -> RequestBody {
    Full::new(Bytes::from(bytes))
        .map_err(|never| match never {})
        .boxed()
}

/// A registry's refusal of a push step, as Docker words it: the spec's error code and
/// message (`unauthorized: authentication required`), or the status when it gave none.
async fn refusal(response: Response<Incoming>, verb: &str, url: &str) -> Error {
    let status = response.status();
    let body = read_all(response, url).await.unwrap_or_default();
    let said = match spec_error(&body) {
        (Some(_), said) => said,
        // A HEAD's refusal has no body to say it in.
        (None, _) if status == StatusCode::UNAUTHORIZED => {
            "unauthorized: authentication required".into()
        }
        (None, _) => format!("{verb} {url}: {status}"),
    };
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        Error::RegistryDenied(said)
    } else {
        registry_error(said)
    }
}
