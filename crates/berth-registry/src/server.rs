//! The distribution API over [`Storage`]: `/v2/`, blobs (GET, HEAD, DELETE), uploads
//! (monolithic, chunked with `Content-Range`, resumable with GET, cross-repository
//! mounts), manifests by tag and digest (PUT, GET, HEAD, DELETE), tag lists with
//! `n`/`last` pagination, and the referrers API. Blob reads honour `Range`. Every upload
//! is verified against its digest before any repository links it.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use berth_image::{Digest, Ingest};
use futures_util::StreamExt;
use serde::Deserialize;

use crate::auth::Htpasswd;
use crate::errors::{Code, RegistryError};
use crate::gc::{GcPolicy, GcReport};
use crate::proxy::Upstream;
use crate::storage::Storage;
use crate::token::{Scope, TokenAuth};

/// The media type a manifest pushed without one is taken to be.
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The manifest media types the registry stores (OCI's and Docker's schema 2).
const MANIFEST_TYPES: [&str; 4] = [
    OCI_MANIFEST,
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// The largest manifest accepted, as distribution limits them.
const MANIFEST_LIMIT: usize = 4 << 20;

/// The registry's state: its storage, the uploads in progress, who may come in.
struct Registry {
    storage: Storage,
    htpasswd: Option<Htpasswd>,
    token: Option<TokenAuth>,
    /// Each with when a request last worked on it, so abandoned ones can go.
    uploads: Mutex<HashMap<String, (Ingest, Instant)>>,
    /// The registry this one caches, when it is a pull-through cache.
    proxy: Option<Upstream>,
    ids: (RandomState, AtomicU64),
}

type Answer = Result<Response, RegistryError>;

impl Registry {
    /// Takes upload `id` out while one request works on it, so two never write it at
    /// once (the second finds it unknown); one an earlier process began is taken up
    /// again from its file.
    fn take(&self, id: &str) -> Result<Ingest, RegistryError> {
        let taken = self.uploads.lock().expect("uploads").remove(id);
        taken
            .map(|(upload, _)| upload)
            .or_else(|| self.storage.resume_upload(id))
            .ok_or_else(|| RegistryError::new(Code::BlobUploadUnknown, id))
    }

    /// Puts upload `id` back for the next request.
    fn put_back(&self, id: &str, upload: Ingest) {
        self.uploads
            .lock()
            .expect("uploads")
            .insert(id.to_string(), (upload, Instant::now()));
    }

    /// Forgets uploads no request has worked on for `grace` (their files go with them).
    fn drop_abandoned(&self, grace: Duration) {
        let mut uploads = self.uploads.lock().expect("uploads");
        uploads.retain(|_, (_, touched)| touched.elapsed() <= grace);
    }
}

/// Collects garbage every `every`, on a blocking thread, logging what went.
async fn collect_garbage(registry: Arc<Registry>, every: Duration, policy: GcPolicy) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        ticker.tick().await;
        registry.drop_abandoned(policy.grace);
        let (registry, policy) = (Arc::clone(&registry), policy.clone());
        let outcome = tokio::task::spawn_blocking(move || {
            registry.storage.collect(&policy, SystemTime::now())
        })
        .await;
        match outcome {
            Ok(Ok(report)) if report != GcReport::default() => {
                tracing::info!(?report, "registry garbage collected");
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(?error, "registry garbage collection failed"),
            Err(error) => tracing::warn!(%error, "registry garbage collection panicked"),
        }
    }
}

/// How a registry is served besides where.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// An htpasswd file (bcrypt): only its users come in, with basic auth.
    pub htpasswd: Option<PathBuf>,
    /// Token authentication: only requests with a token of this authority come in.
    pub token: Option<TokenSettings>,
    /// A certificate chain and its key (PEM): HTTPS instead of plain HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Collect garbage this often while serving (never when None).
    pub gc_every: Option<Duration>,
    /// What a collection keeps.
    pub gc_policy: GcPolicy,
    /// Be a pull-through cache of this registry (`--proxy`).
    pub proxy: Option<Upstream>,
}

/// Where tokens come from and what a registry checks of them (`--auth token`).
#[derive(Debug, Clone, Default)]
pub struct TokenSettings {
    /// The authorization server clients get tokens from.
    pub realm: String,
    /// The name of this registry's service: a token's audience.
    pub service: String,
    /// Who signs the tokens: a token's issuer.
    pub issuer: String,
    /// The certificates (PEM) whose keys sign them.
    pub root_cert_bundle: PathBuf,
}

/// Serves the registry stored under `root` on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    root: &Path,
    options: &ServeOptions,
) -> std::io::Result<()> {
    let storage = Storage::open(root).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
    let htpasswd = options
        .htpasswd
        .as_deref()
        .map(Htpasswd::load)
        .transpose()
        .map_err(std::io::Error::other)?;
    let token = options
        .token
        .as_ref()
        .map(|t| TokenAuth::new(&t.realm, &t.service, &t.issuer, &t.root_cert_bundle))
        .transpose()
        .map_err(std::io::Error::other)?;
    let registry = Arc::new(Registry {
        storage,
        htpasswd,
        token,
        uploads: Mutex::new(HashMap::new()),
        proxy: options.proxy.clone(),
        ids: (RandomState::new(), AtomicU64::new(0)),
    });
    if let Some(every) = options.gc_every {
        let policy = options.gc_policy.clone();
        tokio::spawn(collect_garbage(Arc::clone(&registry), every, policy));
    }
    let app = axum::Router::new().fallback(route).with_state(registry);
    match &options.tls {
        None => axum::serve(listener, app).await,
        Some((cert, key)) => {
            let config = tls_config(cert, key)?;
            axum_server::from_tcp_rustls(listener.into_std()?, config)?
                .serve(app.into_make_service())
                .await
        }
    }
}

/// A server TLS config of the chain in `cert` and the key in `key` (PEM files).
fn tls_config(cert: &Path, key: &Path) -> std::io::Result<axum_server::tls_rustls::RustlsConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let setup = |what: &Path, e: &dyn std::fmt::Display| {
        std::io::Error::other(format!("{}: {e}", what.display()))
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| setup(cert, &e))?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| setup(key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| setup(cert, &e))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| setup(cert, &e))?;
    Ok(axum_server::tls_rustls::RustlsConfig::from_config(
        Arc::new(config),
    ))
}

/// The query parameters the API uses.
#[derive(Debug, Default, Deserialize)]
struct Params {
    digest: Option<String>,
    mount: Option<String>,
    from: Option<String>,
    n: Option<usize>,
    last: Option<String>,
    #[serde(rename = "artifactType")]
    artifact_type: Option<String>,
}

/// What a request's path names under `/v2/<name>/`, with the repository's name.
enum Target<'a> {
    Blob(&'a str, &'a str),
    Upload(&'a str, &'a str),
    Manifest(&'a str, &'a str),
    Tags(&'a str),
    Referrers(&'a str, &'a str),
}

impl<'a> Target<'a> {
    fn name(&self) -> &'a str {
        match self {
            Self::Blob(name, _)
            | Self::Upload(name, _)
            | Self::Manifest(name, _)
            | Self::Referrers(name, _)
            | Self::Tags(name) => name,
        }
    }
}

fn target(path: &str) -> Option<Target<'_>> {
    let rest = path.strip_prefix("/v2/")?;
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Target::Tags(name));
    }
    if let Some((name, id)) = rest.rsplit_once("/blobs/uploads/") {
        return Some(Target::Upload(name, id));
    }
    if let Some(name) = rest.strip_suffix("/blobs/uploads") {
        return Some(Target::Upload(name, ""));
    }
    if let Some((name, digest)) = rest.rsplit_once("/blobs/") {
        return Some(Target::Blob(name, digest));
    }
    if let Some((name, digest)) = rest.rsplit_once("/referrers/") {
        return Some(Target::Referrers(name, digest));
    }
    let (name, reference) = rest.rsplit_once("/manifests/")?;
    Some(Target::Manifest(name, reference))
}

async fn route(
    State(registry): State<Arc<Registry>>,
    method: Method,
    uri: Uri,
    Query(params): Query<Params>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(htpasswd) = &registry.htpasswd
        && !htpasswd.allows(headers.get(header::AUTHORIZATION))
    {
        return unauthorized();
    }
    if let Some(token) = &registry.token {
        let scope = match uri.path() {
            "/v2/_catalog" => Some(Scope::catalog()),
            path => target(path).map(|target| scope_of(&method, &target)),
        };
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|a| a.to_str().ok());
        if !token.allows(authorization, scope.as_ref()) {
            let mut response = RegistryError::new(Code::Unauthorized, "").into_response();
            let challenge = header_value(&token.challenge(scope.as_ref()));
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
            return response;
        }
    }
    if uri.path() == "/v2/" {
        return with_version(StatusCode::OK, "{}").into_response();
    }
    if uri.path() == "/v2/_catalog" {
        return list_catalog(&registry, params);
    }
    let answer = match target(uri.path()) {
        Some(target) => {
            let name = target.name();
            if valid_name(name) {
                dispatch(&registry, (method, target), params, &headers, body).await
            } else {
                Err(RegistryError::new(Code::NameInvalid, name))
            }
        }
        None => Err(RegistryError::new(Code::Unsupported, uri.path())),
    };
    answer.unwrap_or_else(IntoResponse::into_response)
}

async fn dispatch(
    registry: &Registry,
    (method, target): (Method, Target<'_>),
    params: Params,
    headers: &HeaderMap,
    body: Body,
) -> Answer {
    if let Some(upstream) = &registry.proxy {
        pull_through(registry, upstream, &method, &target).await?;
    }
    match (method, target) {
        (Method::HEAD, Target::Blob(name, digest)) => {
            // A push asks before it skips an upload: the blob gets a new grace period.
            let digest = digest_of(digest)?;
            registry.storage.has_blob_for_push(name, &digest);
            get_blob(registry, name, &digest, headers).await
        }
        (Method::GET, Target::Blob(name, digest)) => {
            get_blob(registry, name, &digest_of(digest)?, headers).await
        }
        (Method::DELETE, Target::Blob(name, digest)) => {
            registry.storage.delete_blob(name, &digest_of(digest)?)?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        (Method::POST, Target::Upload(name, "")) => {
            start_upload(registry, name, params, body).await
        }
        (Method::PATCH, Target::Upload(name, id)) => {
            let start = content_range_start(headers);
            let size = append(registry, id, start, body).await?;
            Ok(upload_status(StatusCode::ACCEPTED, name, id, size))
        }
        (Method::PUT, Target::Upload(name, id)) => {
            let digest = digest_of(params.digest.as_deref().unwrap_or_default())?;
            append(registry, id, None, body).await?;
            registry.storage.commit(name, registry.take(id)?, &digest)?;
            Ok(blob_created(name, &digest))
        }
        (Method::GET, Target::Upload(name, id)) => {
            let upload = registry.take(id)?;
            let size = upload.size();
            registry.put_back(id, upload);
            Ok(upload_status(StatusCode::NO_CONTENT, name, id, size))
        }
        (Method::DELETE, Target::Upload(_, id)) => {
            registry.take(id)?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (Method::PUT, Target::Manifest(name, reference)) => {
            put_manifest(registry, name, reference, headers, body).await
        }
        (method @ (Method::GET | Method::HEAD), Target::Manifest(name, reference)) => {
            let manifest = registry.storage.manifest(name, reference)?;
            let mut response = if method == Method::HEAD {
                let length = manifest.bytes.len();
                let mut response = Response::new(Body::empty());
                response
                    .headers_mut()
                    .insert(header::CONTENT_LENGTH, length.into());
                response
            } else {
                Response::new(Body::from(manifest.bytes))
            };
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, header_value(&manifest.media_type));
            headers.insert(
                "Docker-Content-Digest",
                header_value(manifest.digest.as_str()),
            );
            Ok(response)
        }
        (Method::DELETE, Target::Manifest(name, reference)) => {
            registry
                .storage
                .delete_manifest(name, &digest_of(reference)?)?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        (Method::GET, Target::Tags(name)) => list_tags(registry, name, params),
        (Method::GET, Target::Referrers(name, digest)) => {
            list_referrers(registry, name, &digest_of(digest)?, params)
        }
        (method, _) => Err(RegistryError::new(Code::Unsupported, method.as_str())),
    }
}

/// A repository name as the spec allows: lowercase components of letters and digits
/// joined by `.`, `_`, `__` or dashes, separated by `/`.
fn valid_name(name: &str) -> bool {
    let component = |c: &str| {
        let edge = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        edge(c.bytes().next())
            && edge(c.bytes().last())
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    };
    name.len() <= 255 && name.split('/').all(component)
}

/// What a request needs a token to grant: reads pull, writes push, deletes delete.
fn scope_of(method: &Method, target: &Target<'_>) -> Scope {
    let actions = match (method, target) {
        (&Method::DELETE, _) => vec!["delete"],
        (_, Target::Upload(..)) | (&Method::PUT, Target::Manifest(..)) => vec!["pull", "push"],
        _ => vec!["pull"],
    };
    Scope {
        kind: "repository",
        name: target.name().to_string(),
        actions,
    }
}

/// 401 with the challenge a client answers with basic credentials.
fn unauthorized() -> Response {
    let mut response = RegistryError::new(Code::Unauthorized, "").into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"berth-registry\""),
    );
    response
}

fn digest_of(text: &str) -> Result<Digest, RegistryError> {
    Digest::parse(text).map_err(|_| RegistryError::new(Code::DigestInvalid, text))
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("invalid"))
}

fn with_version(status: StatusCode, body: &'static str) -> impl IntoResponse {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (
                header::HeaderName::from_static("docker-distribution-api-version"),
                "registry/2.0",
            ),
        ],
        body,
    )
}

/// What a pull-through cache does before answering: brings the manifest or blob asked
/// for from the upstream; refuses what would write.
async fn pull_through(
    registry: &Registry,
    upstream: &Upstream,
    method: &Method,
    target: &Target<'_>,
) -> Result<(), RegistryError> {
    let storage = &registry.storage;
    match (method, target) {
        (&Method::GET | &Method::HEAD, Target::Manifest(name, reference)) => {
            upstream.manifest(storage, name, reference).await
        }
        (&Method::GET | &Method::HEAD, Target::Blob(name, digest)) => {
            upstream.blob(storage, name, &digest_of(digest)?).await
        }
        (&Method::GET, Target::Tags(_) | Target::Referrers(..)) => Ok(()),
        _ => Err(RegistryError::new(
            Code::Unsupported,
            "a pull-through cache takes no pushes or deletes",
        )),
    }
}

/// Blob `digest` whole, or the part a `Range: bytes=<start>-<end>` asks for (206).
async fn get_blob(registry: &Registry, name: &str, digest: &Digest, headers: &HeaderMap) -> Answer {
    let (file, size) = registry.storage.blob(name, digest)?;
    let range = match headers.get(header::RANGE) {
        Some(asked) => Some(byte_range(asked, size).ok_or_else(|| {
            let detail = format!(
                "{} of a blob of {size} bytes",
                asked.to_str().unwrap_or("?")
            );
            RegistryError::new(Code::RangeNotSatisfiable, &detail)
        })?),
        None => None,
    };
    let (start, end) = range.unwrap_or((0, size.saturating_sub(1)));
    let bytes = crate::mapped::map(&file, size).map_err(RegistryError::internal)?;
    let part = if size == 0 {
        bytes
    } else {
        bytes.slice(start as usize..=end as usize)
    };
    let length = part.len();
    let mut response = Response::new(Body::from(part));
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let content_range = format!("bytes {start}-{end}/{size}");
        response
            .headers_mut()
            .insert(header::CONTENT_RANGE, header_value(&content_range));
    }
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, length.into());
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert("Docker-Content-Digest", header_value(digest.as_str()));
    Ok(response)
}

/// The inclusive byte range `bytes=<start>-<end>` (or `<start>-`, or `-<suffix>`) asks
/// of a blob of `size` bytes; None when it asks for none of them.
fn byte_range(asked: &HeaderValue, size: u64) -> Option<(u64, u64)> {
    let spec = asked.to_str().ok()?.strip_prefix("bytes=")?;
    let (start, end) = spec.trim().split_once('-')?;
    let last = size.checked_sub(1)?;
    let (start, end) = match (start.parse::<u64>().ok(), end.parse::<u64>().ok()) {
        (Some(start), Some(end)) => (start, end.min(last)),
        (Some(start), None) if end.is_empty() => (start, last),
        (None, Some(suffix)) if start.is_empty() && suffix > 0 => {
            (size.saturating_sub(suffix), last)
        }
        _ => return None,
    };
    (start <= end).then_some((start, end))
}

/// POST to the uploads: a mount, a whole blob in one request (`?digest=`), or a new
/// upload session.
async fn start_upload(registry: &Registry, name: &str, params: Params, body: Body) -> Answer {
    if let (Some(mount), Some(from)) = (&params.mount, &params.from) {
        let digest = digest_of(mount)?;
        if registry.storage.mount(name, from, &digest)? {
            return Ok(blob_created(name, &digest));
        }
    }
    let (id_seed, counter) = &registry.ids;
    let count = counter.fetch_add(1, Ordering::Relaxed);
    let id = format!(
        "{:016x}{:016x}",
        id_seed.hash_one(count),
        id_seed.hash_one(!count)
    );
    registry.put_back(&id, registry.storage.ingest_upload(&id)?);
    if let Some(digest) = params.digest.filter(|_| params.mount.is_none()) {
        let digest = digest_of(&digest)?;
        append(registry, &id, None, body).await?;
        registry
            .storage
            .commit(name, registry.take(&id)?, &digest)?;
        return Ok(blob_created(name, &digest));
    }
    Ok(upload_status(StatusCode::ACCEPTED, name, &id, 0))
}

/// Where a chunk says it starts (`Content-Range: <start>-<end>`), if it says.
fn content_range_start(headers: &HeaderMap) -> Option<u64> {
    let range = headers.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let (start, _) = range.trim_start_matches("bytes ").split_once('-')?;
    start.trim().parse().ok()
}

/// Appends `body` to upload `id` (which must end where the chunk says it starts); the
/// upload's size after it.
async fn append(
    registry: &Registry,
    id: &str,
    start: Option<u64>,
    body: Body,
) -> Result<u64, RegistryError> {
    let mut upload = registry.take(id)?;
    if let Some(start) = start.filter(|start| *start != upload.size()) {
        let size = upload.size();
        registry.put_back(id, upload);
        let detail = format!("the chunk starts at {start}, the upload ends at {size}");
        return Err(RegistryError::new(Code::RangeInvalid, &detail));
    }
    // What arrived before a failure stays: the client asks where the upload ends (GET)
    // and resumes from there.
    let written = write_body(&mut upload, body).await;
    let size = upload.size();
    registry.put_back(id, upload);
    written.map(|()| size)
}

async fn write_body(upload: &mut Ingest, body: Body) -> Result<(), RegistryError> {
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(RegistryError::internal)?;
        std::io::Write::write_all(upload, &chunk).map_err(RegistryError::internal)?;
    }
    Ok(())
}

fn upload_status(status: StatusCode, name: &str, id: &str, size: u64) -> Response {
    let range = format!("0-{}", size.saturating_sub(1));
    let mut response = status.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::LOCATION,
        header_value(&format!("/v2/{name}/blobs/uploads/{id}")),
    );
    headers.insert(header::RANGE, header_value(&range));
    headers.insert("Docker-Upload-UUID", header_value(id));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    response
}

fn blob_created(name: &str, digest: &Digest) -> Response {
    created(&format!("/v2/{name}/blobs/{digest}"), digest)
}

/// 201 for what now lives at `location` under `digest`.
fn created(location: &str, digest: &Digest) -> Response {
    let mut response = StatusCode::CREATED.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, header_value(location));
    headers.insert("Docker-Content-Digest", header_value(digest.as_str()));
    response
}

async fn put_manifest(
    registry: &Registry,
    name: &str,
    reference: &str,
    headers: &HeaderMap,
    body: Body,
) -> Answer {
    let bytes = axum::body::to_bytes(body, MANIFEST_LIMIT)
        .await
        .map_err(|_| RegistryError::new(Code::ManifestInvalid, "manifests are limited to 4 MiB"))?;
    let given = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let media_type = given
        .map(str::to_string)
        .unwrap_or_else(|| media_type_of(&bytes));
    if !MANIFEST_TYPES.contains(&media_type.as_str()) {
        let detail = format!("unknown manifest media type {media_type}");
        return Err(RegistryError::new(Code::ManifestInvalid, &detail));
    }
    let tag = match Digest::parse(reference) {
        Ok(digest) => {
            if digest != Digest::of(&bytes) {
                return Err(RegistryError::new(Code::DigestInvalid, reference));
            }
            None
        }
        Err(_) if valid_tag(reference) => Some(reference),
        Err(_) => return Err(RegistryError::new(Code::TagInvalid, reference)),
    };
    let stored = registry
        .storage
        .put_manifest(name, tag, &media_type, &bytes)?;
    let digest = &stored.digest;
    let mut response = created(&format!("/v2/{name}/manifests/{digest}"), digest);
    if let Some(subject) = &stored.subject {
        response
            .headers_mut()
            .insert("OCI-Subject", header_value(subject.as_str()));
    }
    Ok(response)
}

/// The referrers API: an image index of the repository's manifests whose subject is
/// `digest`, filtered by `artifactType` when asked (and saying so in
/// `OCI-Filters-Applied`).
fn list_referrers(registry: &Registry, name: &str, digest: &Digest, params: Params) -> Answer {
    let artifact_type = params.artifact_type.as_deref();
    let manifests = registry.storage.referrers_of(name, digest, artifact_type);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    let mut response = axum::Json(index).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.oci.image.index.v1+json"),
    );
    if artifact_type.is_some() {
        headers.insert(
            "OCI-Filters-Applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(response)
}

/// The `mediaType` a manifest names itself, or the OCI image manifest's.
fn media_type_of(bytes: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Named {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    serde_json::from_slice::<Named>(bytes)
        .ok()
        .and_then(|n| n.media_type)
        .unwrap_or_else(|| OCI_MANIFEST.to_string())
}

/// A tag as the spec allows: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
fn valid_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag.len() <= 128
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The repository's tags after `last`, `n` of them at most, with a `Link` to the next
/// page when there is one.
fn list_tags(registry: &Registry, name: &str, params: Params) -> Answer {
    let tags = registry
        .storage
        .tags(name)
        .ok_or_else(|| RegistryError::new(Code::NameUnknown, name))?;
    let (page, next) = paged(tags, &params);
    let mut response = axum::Json(serde_json::json!({"name": name, "tags": page})).into_response();
    if let Some(next) = next {
        let link = format!("</v2/{name}/tags/list?{next}>; rel=\"next\"");
        response
            .headers_mut()
            .insert(header::LINK, header_value(&link));
    }
    Ok(response)
}

/// `GET /v2/_catalog`: the repositories, a page at a time as distribution lists them.
fn list_catalog(registry: &Registry, params: Params) -> Response {
    let (page, next) = paged(registry.storage.repository_names(), &params);
    let mut response = axum::Json(serde_json::json!({"repositories": page})).into_response();
    if let Some(next) = next {
        let link = format!("</v2/_catalog?{next}>; rel=\"next\"");
        response
            .headers_mut()
            .insert(header::LINK, header_value(&link));
    }
    response
}

/// The page of sorted `items` that `n` and `last` ask for, and the query of the next
/// page when there is one.
fn paged(items: Vec<String>, params: &Params) -> (Vec<String>, Option<String>) {
    let after: Vec<String> = items
        .into_iter()
        .filter(|item| params.last.as_ref().is_none_or(|last| item > last))
        .collect();
    let limit = params.n.unwrap_or(after.len());
    let more = after.len() > limit;
    let page: Vec<String> = after.into_iter().take(limit).collect();
    let next = page
        .last()
        .filter(|_| more)
        .map(|last| format!("n={limit}&last={last}"));
    (page, next)
}
