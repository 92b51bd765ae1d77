//! A client of one repository of an OCI distribution registry (distribution-spec 1.1),
//! shared by pulls (`pull.rs`) and pushes (`push.rs`): the connection (plain HTTP only for
//! loopback and for registries named insecure, as Docker does), the credentials, and the
//! answer to a 401 — the bearer-token flow (with basic credentials if given) or plain
//! basic auth —, and registries' refusals in Docker's words.

use std::sync::Mutex;

use base64::Engine as _;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::Value;

use crate::digest::Digest;
use crate::reference::Reference;
use crate::{Error, Result};

/// What a request sends: nothing, bytes, or a file streamed.
pub(crate) type RequestBody = BoxBody<Bytes, std::io::Error>;

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, RequestBody>;

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
pub struct RegistryOptions {
    /// Credentials for the image's registry.
    pub credentials: Option<Credentials>,
    /// Registries (`host[:port]`) spoken to over plain HTTP besides loopback ones.
    pub insecure_registries: Vec<String>,
}

/// One repository of one registry, with the credentials a pull or push earned.
pub struct Registry {
    pub(crate) client: HttpClient,
    pub(crate) base: String,
    pub(crate) repository: String,
    pub(crate) reference: Reference,
    credentials: Option<Credentials>,
    /// `Bearer …` or `Basic …`, once a 401 said which.
    authorization: Mutex<Option<String>>,
}

impl Registry {
    /// The registry and repository `reference` names.
    pub fn new(reference: &Reference, options: &RegistryOptions) -> Result<Self> {
        let (host, repository) = reference.registry_and_path();
        Self::connect(host, repository, reference.clone(), options)
    }

    /// Checks `options`' credentials with the registry at `server` (`host[:port]`, or a
    /// URL as `docker login` sends it), as `docker login` does: its `/v2/` must let them
    /// in.
    pub async fn login(server: &str, options: &RegistryOptions) -> Result<()> {
        let host = registry_host(server).replace("index.docker.io", "docker.io");
        let reference = Reference {
            repository: host.clone(),
            tag: "latest".into(),
        };
        let registry = Self::connect(host, String::new(), reference, options)?;
        let url = format!("{}/v2/", registry.base);
        let response = registry
            .request(Method::GET, &url, &[("Accept", "application/json")], &empty)
            .await?;
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
        options: &RegistryOptions,
    ) -> Result<Self> {
        let scheme = if is_loopback(&host) || options.insecure_registries.contains(&host) {
            "http"
        } else {
            "https"
        };
        let host = if host == "docker.io" {
            "registry-1.docker.io".to_string()
        } else {
            host
        };
        Ok(Self {
            client: http_client()?,
            base: format!("{scheme}://{host}"),
            repository,
            reference,
            credentials: options.credentials.clone(),
            authorization: Mutex::new(None),
        })
    }

    /// Where blob `digest` of this repository is.
    pub(crate) fn blob_url(&self, digest: &Digest) -> String {
        format!("{}/v2/{}/blobs/{digest}", self.base, self.repository)
    }

    /// Sends `method url` with `headers` and the body `body` makes, with the
    /// authorization earned so far; a 401 is answered by authenticating once and sending
    /// again (with the body made anew), and what the registry then says is the caller's.
    pub(crate) async fn request(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: &(dyn Fn() -> Result<RequestBody> + Sync),
    ) -> Result<Response<Incoming>> {
        let authorization = || self.authorization.lock().ok().and_then(|a| a.clone());
        let first = authorization();
        let response = self
            .send(method.clone(), url, headers, first.as_deref(), body()?)
            .await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        self.authenticate(&header(&response, "www-authenticate"))
            .await?;
        let earned = authorization();
        self.send(method, url, headers, earned.as_deref(), body()?)
            .await
    }

    /// Sends one request as it is, without answering a 401.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        authorization: Option<&str>,
        body: RequestBody,
    ) -> Result<Response<Incoming>> {
        let verb = verb(&method);
        let mut request = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(authorization) = authorization {
            request = request.header("Authorization", authorization);
        }
        let request = request
            .body(body)
            .map_err(|e| registry_error(format!("{verb} \"{url}\": {e}")))?;
        self.client
            .request(request)
            .await
            .map_err(|e| registry_error(format!("{verb} \"{url}\": {}", error_chain(&e))))
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

    /// A bearer token from the challenge's realm for the scope it names (pulling this
    /// repository when it names none).
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
        let accept = [("Accept", "application/json")];
        let response = self
            .send(Method::GET, &url, &accept, basic.as_deref(), empty()?)
            .await?;
        if !response.status().is_success() {
            let status = response.status();
            return Err(Error::RegistryDenied(format!(
                "{realm} refused a token for {query}: {status}"
            )));
        }
        let body: Value = serde_json::from_slice(&read_all(response, &url).await?)
            .map_err(|e| registry_error(format!("invalid token from {realm}: {e}")))?;
        body["token"]
            .as_str()
            .or_else(|| body["access_token"].as_str())
            .map(str::to_string)
            .ok_or_else(|| registry_error(format!("no token from {realm}")))
    }
}

/// What a registry's error body says, as Docker words it (`manifest unknown: manifest
/// unknown`: the spec's first error's code, lowercased, and its message), and that code
/// when the body names one.
pub(crate) fn spec_error(body: &[u8]) -> (Option<String>, String) {
    let errors: Value = serde_json::from_slice(body).unwrap_or_default();
    let first = &errors["errors"][0];
    let code = first["code"].as_str();
    let said = format!(
        "{}: {}",
        code.unwrap_or_default()
            .to_ascii_lowercase()
            .replace('_', " "),
        first["message"].as_str().unwrap_or_default()
    );
    (code.map(str::to_string), said)
}

/// A body of nothing.
pub(crate) fn empty() -> Result<RequestBody> {
    Ok(http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed())
}

/// A method as Go's HTTP client names it in errors (`Get`, `Put`…).
fn verb(method: &Method) -> String {
    let name = method.as_str();
    name[..1].to_string() + &name[1..].to_ascii_lowercase()
}

/// The `host[:port]` of a registry named by host or by URL (`https://host/v1/`), as
/// `docker login` and Docker configs name them.
fn registry_host(address: &str) -> &str {
    let rest = address.split_once("://").map_or(address, |(_, rest)| rest);
    rest.split('/').next().unwrap_or_default()
}

pub(crate) fn registry_error(message: impl Into<String>) -> Error {
    Error::Registry(message.into())
}

pub(crate) fn header(response: &Response<Incoming>, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

pub(crate) async fn read_all(response: Response<Incoming>, url: &str) -> Result<Vec<u8>> {
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
/// An HTTP/1.1 client for `http://` and `https://` URLs, trusting the system's roots.
pub(crate) fn http_client() -> Result<HttpClient> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
        .map_err(|e| registry_error(format!("no TLS roots to trust: {e}")))?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(hyper_util::rt::TokioExecutor::new()).build(https))
}

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
