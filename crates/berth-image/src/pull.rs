//! Pulls from OCI distribution registries (distribution-spec 1.1): the manifest by tag,
//! an image index resolved to this host's platform, then the config and the layers,
//! fetched a few at a time into the content store and verified by digest. Registries ask
//! for credentials with a 401: the bearer-token flow (with basic credentials if given)
//! and plain basic auth are both followed. Plain HTTP is used only for loopback and for
//! registries named insecure, as Docker does.
//!
//! Fetching is async and touches only the content store; making the image of what was
//! fetched ([`crate::ImageStore::import`], which unpacks layers) is the caller's, on a
//! thread that may block.

use std::sync::Mutex;

use base64::Engine as _;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde::Deserialize;
use serde_json::Value;

use crate::digest::Digest;
use crate::reference::Reference;
use crate::store::{ImageStore, LayerBlob};
use crate::{Error, Result};

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Layers fetched at once, as Docker's default `max-concurrent-downloads`.
const CONCURRENT_LAYERS: usize = 3;

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// A user name and password (or token) for a registry, as `docker login` keeps them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or identity token.
    pub password: String,
}

impl Credentials {
    /// The credentials a Docker `config.json` (what `docker login` writes, and what an
    /// `imagePullSecret` of type `kubernetes.io/dockerconfigjson` holds) keeps for
    /// `registry` (`host[:port]`; `docker.io` for Docker Hub). Entries are keyed by host
    /// or by URL; each holds `auth` (base64 of `user:password`) or the two fields.
    pub fn from_docker_config(config: &[u8], registry: &str) -> Option<Self> {
        let config: Value = serde_json::from_slice(config).ok()?;
        let wanted = |key: &str| {
            let host = registry_host(key);
            host == registry
                || (registry == "docker.io"
                    && matches!(
                        host,
                        "index.docker.io" | "registry-1.docker.io" | "docker.io"
                    ))
        };
        let (_, entry) = config["auths"]
            .as_object()?
            .iter()
            .find(|(key, _)| wanted(key))?;
        if let Some(auth) = entry["auth"].as_str().filter(|a| !a.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth)
                .ok()?;
            let decoded = String::from_utf8(decoded).ok()?;
            let (username, password) = decoded.split_once(':')?;
            return Some(Self {
                username: username.to_string(),
                password: password.to_string(),
            });
        }
        Some(Self {
            username: entry["username"].as_str()?.to_string(),
            password: entry["password"].as_str()?.to_string(),
        })
    }
}

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Credentials for the image's registry.
    pub credentials: Option<Credentials>,
    /// Registries (`host[:port]`) spoken to over plain HTTP besides loopback ones.
    pub insecure_registries: Vec<String>,
}

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

/// One repository of one registry, with the credentials a pull earned.
pub struct Registry {
    client: HttpClient,
    base: String,
    repository: String,
    reference: Reference,
    credentials: Option<Credentials>,
    /// `Bearer …` or `Basic …`, once a 401 said which.
    authorization: Mutex<Option<String>>,
}

impl Registry {
    /// The registry and repository `reference` names.
    pub fn new(reference: &Reference, options: &PullOptions) -> Result<Self> {
        let (host, repository) = reference.registry_and_path();
        Self::connect(host, repository, reference.clone(), options)
    }

    /// Checks `options`' credentials with the registry at `server` (`host[:port]`, or a
    /// URL as `docker login` sends it), as `docker login` does: its `/v2/` must let them
    /// in.
    pub async fn login(server: &str, options: &PullOptions) -> Result<()> {
        let host = registry_host(server).replace("index.docker.io", "docker.io");
        let reference = Reference {
            repository: host.clone(),
            tag: "latest".into(),
        };
        let registry = Self::connect(host, String::new(), reference, options)?;
        let url = format!("{}/v2/", registry.base);
        let mut response = registry.send(&url, "application/json", None).await?;
        if response.status() == StatusCode::UNAUTHORIZED && registry.credentials.is_some() {
            registry
                .authenticate(&header(&response, "www-authenticate"))
                .await?;
            let authorization = registry.authorization.lock().ok().and_then(|a| a.clone());
            response = registry
                .send(&url, "application/json", authorization.as_deref())
                .await?;
        }
        match response.status() {
            status if status.is_success() => Ok(()),
            status => Err(Error::RegistryDenied(format!(
                "login attempt to {url} failed with status: {status}"
            ))),
        }
    }

    fn connect(
        host: String,
        repository: String,
        reference: Reference,
        options: &PullOptions,
    ) -> Result<Self> {
        let scheme = if is_loopback(&host) || options.insecure_registries.contains(&host) {
            "http"
        } else {
            "https"
        };
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| registry_error(format!("no TLS roots to trust: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        let host = if host == "docker.io" {
            "registry-1.docker.io".to_string()
        } else {
            host
        };
        Ok(Self {
            client: Client::builder(hyper_util::rt::TokioExecutor::new()).build(https),
            base: format!("{scheme}://{host}"),
            repository,
            reference,
            credentials: options.credentials.clone(),
            authorization: Mutex::new(None),
        })
    }

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
        let url = format!(
            "{}/v2/{}/manifests/{tag_or_digest}",
            self.base, self.repository
        );
        let accept = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST].join(", ");
        let response = self.get(&url, &accept).await?;
        let body = read_all(response, &url).await?;
        let digest = Digest::of(&body);
        if tag_or_digest.starts_with("sha256:") {
            Digest::parse(tag_or_digest)?.verify(&digest, format!("manifest {tag_or_digest}"))?;
        }
        Ok((digest, body))
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
        if store.content().contains(digest) {
            progress(PullProgress::LayerExists(digest.clone()));
            return Ok(());
        }
        let url = self.blob_url(digest);
        let mut body = self.get(&url, "*/*").await?.into_body();
        let mut ingest = store.content().ingest()?;
        let (mut current, mut reported) = (0, 0);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| registry_error(format!("Get \"{url}\": {e}")))?;
            if let Some(data) = frame.data_ref() {
                std::io::Write::write_all(&mut ingest, data).map_err(|e| Error::Io {
                    path: store.content().path(digest),
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

    fn blob_url(&self, digest: &Digest) -> String {
        format!("{}/v2/{}/blobs/{digest}", self.base, self.repository)
    }

    /// GETs `url`: answers a 401 by authenticating once, follows redirects, and turns
    /// what is not a success into an error in Docker's words.
    async fn get(&self, url: &str, accept: &str) -> Result<Response<Incoming>> {
        let mut url = url.to_string();
        let mut authenticated = false;
        for _ in 0..8 {
            let same_registry = url.starts_with(&self.base);
            let authorization = same_registry
                .then(|| self.authorization.lock().ok().and_then(|a| a.clone()))
                .flatten();
            let response = self.send(&url, accept, authorization.as_deref()).await?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && same_registry && !authenticated {
                let challenge = header(&response, "www-authenticate");
                self.authenticate(&challenge).await?;
                authenticated = true;
                continue;
            }
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

    async fn send(
        &self,
        url: &str,
        accept: &str,
        authorization: Option<&str>,
    ) -> Result<Response<Incoming>> {
        let mut request = Request::get(url).header("Accept", accept);
        if let Some(authorization) = authorization {
            request = request.header("Authorization", authorization);
        }
        let request = request
            .body(Empty::new())
            .map_err(|e| registry_error(format!("Get \"{url}\": {e}")))?;
        self.client
            .request(request)
            .await
            .map_err(|e| registry_error(format!("Get \"{url}\": {}", error_chain(&e))))
    }

    /// Earns the authorization a 401's challenge asks for.
    async fn authenticate(&self, challenge: &str) -> Result<()> {
        let basic = self.credentials.as_ref().map(|c| {
            let pair = format!("{}:{}", c.username, c.password);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        });
        let (scheme, parameters) = challenge.split_once(' ').unwrap_or((challenge, ""));
        let authorization = if scheme.eq_ignore_ascii_case("bearer") {
            Some(format!("Bearer {}", self.token(parameters, basic).await?))
        } else {
            basic
        };
        if let Ok(mut slot) = self.authorization.lock() {
            *slot = authorization;
        }
        Ok(())
    }

    /// A bearer token from the challenge's realm, for pulling this repository.
    async fn token(&self, parameters: &str, basic: Option<String>) -> Result<String> {
        let parameter = |name: &str| challenge_parameter(parameters, name);
        let realm = parameter("realm")
            .ok_or_else(|| registry_error("the registry's bearer challenge names no realm"))?;
        let scope =
            parameter("scope").unwrap_or_else(|| format!("repository:{}:pull", self.repository));
        let mut query = vec![("scope", scope)];
        if let Some(service) = parameter("service") {
            query.push(("service", service));
        }
        let query = serde_urlencoded::to_string(&query).unwrap_or_default();
        let url = format!("{realm}?{query}");
        let response = self
            .send(&url, "application/json", basic.as_deref())
            .await?;
        if !response.status().is_success() {
            return Err(self.denied());
        }
        let body: Value = serde_json::from_slice(&read_all(response, &url).await?)
            .map_err(|e| registry_error(format!("invalid token from {realm}: {e}")))?;
        body["token"]
            .as_str()
            .or_else(|| body["access_token"].as_str())
            .map(str::to_string)
            .ok_or_else(|| registry_error(format!("no token from {realm}")))
    }

    /// A registry's refusal, as Docker words it.
    fn refusal(&self, status: StatusCode, body: &[u8]) -> Error {
        let errors: Value = serde_json::from_slice(body).unwrap_or_default();
        let first = &errors["errors"][0];
        let code = first["code"].as_str().unwrap_or_default();
        let said = format!(
            "{}: {}",
            code.to_ascii_lowercase().replace('_', " "),
            first["message"].as_str().unwrap_or_default()
        );
        match (status, code) {
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

/// The `host[:port]` of a registry named by host or by URL (`https://host/v1/`), as
/// `docker login` and Docker configs name them.
fn registry_host(address: &str) -> &str {
    let rest = address.split_once("://").map_or(address, |(_, rest)| rest);
    rest.split('/').next().unwrap_or_default()
}

fn registry_error(message: impl Into<String>) -> Error {
    Error::Registry(message.into())
}

fn header(response: &Response<Incoming>, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn read_all(response: Response<Incoming>, url: &str) -> Result<Vec<u8>> {
    response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .map_err(|e| registry_error(format!("Get \"{url}\": {e}")))
}

/// `name="value"` out of a challenge's parameters.
fn challenge_parameter(parameters: &str, name: &str) -> Option<String> {
    parameters.split(',').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key.trim() == name).then(|| value.trim().trim_matches('"').to_string())
    })
}

/// An error with its causes, as Go prints a wrapped one.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

/// `localhost` and addresses in 127.0.0.0/8 or ::1, with or without a port.
fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// This host's architecture in OCI's words (`amd64`, `arm64`): the platform pulls pick.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_registries_are_plain_http() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("127.8.9.10"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.example.com:5000"));
        assert!(!is_loopback("10.0.0.1:5000"));
    }

    #[test]
    fn docker_configs_give_the_registry_s_credentials() {
        let config = br#"{"auths": {
            "127.0.0.1:5000": {"auth": "YWRhOnMzY3JldA=="},
            "https://index.docker.io/v1/": {"username": "hub", "password": "pw"}
        }}"#;
        let ada = Credentials::from_docker_config(config, "127.0.0.1:5000").unwrap();
        assert_eq!(
            (ada.username.as_str(), ada.password.as_str()),
            ("ada", "s3cret")
        );
        let hub = Credentials::from_docker_config(config, "docker.io").unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("hub", "pw")
        );
        assert_eq!(Credentials::from_docker_config(config, "other:5000"), None);
        assert_eq!(
            Credentials::from_docker_config(b"not json", "docker.io"),
            None
        );
    }

    #[test]
    fn challenges_are_read_as_registries_write_them() {
        let parameters = r#"realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#;
        assert_eq!(
            challenge_parameter(parameters, "realm").as_deref(),
            Some("https://auth.docker.io/token")
        );
        assert_eq!(
            challenge_parameter(parameters, "scope").as_deref(),
            Some("repository:library/busybox:pull")
        );
        assert_eq!(challenge_parameter(parameters, "nothing"), None);
    }
}
