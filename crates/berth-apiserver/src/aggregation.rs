//! API aggregation, as kube-apiserver's aggregator: an APIService naming a Service
//! (metrics-server's `v1beta1.metrics.k8s.io`) makes the server proxy its group
//! version's paths — discovery included — to that Service, after authenticating and
//! authorizing the request itself and passing the user on in `X-Remote-User` and
//! `X-Remote-Group`. A group version an APIService claims takes over from a built-in
//! one (metrics.k8s.io). APIServices without a Service are local, and always
//! available; the others' `Available` condition follows a discovery check of the
//! Service made every few seconds.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::{
    APIService, APIServiceCondition, APIServiceStatus,
};

use crate::Shared;
use crate::cache::Memo;
use crate::dial::Trust;
use crate::identity::{Access, Identity};
use crate::kinds::Schema;
use crate::status::Status;

/// Where the cache keeps APIServices.
const DIRECTORY: &str = "/registry/apiservices/";

/// How often the Services behind APIServices are checked.
const CHECK_EVERY: Duration = Duration::from_secs(3);

/// The group versions served by other servers, kept until an APIService changes.
pub(crate) type Aggregated = Memo<(), Arc<[Remote]>>;

/// Makes the memo of aggregated group versions.
pub(crate) fn aggregated() -> Aggregated {
    Memo::new(&[DIRECTORY])
}

/// A group version another server serves, and how to reach it.
#[derive(Debug, Clone)]
pub(crate) struct Remote {
    /// The APIService's name: `v1beta1.metrics.k8s.io`.
    name: String,
    pub(crate) group: String,
    pub(crate) version: String,
    namespace: String,
    service: String,
    port: i32,
    ca_bundle: Option<Vec<u8>>,
    insecure: bool,
}

/// The group versions APIServices give to Services now.
pub(crate) fn remotes(shared: &Shared) -> Arc<[Remote]> {
    shared.aggregated.get_or(&shared.cache, (), || {
        shared
            .cache
            .typed_list::<APIService>(DIRECTORY)
            .into_iter()
            .filter_map(|api| {
                let spec = api.spec?;
                let service = spec.service?;
                Some(Remote {
                    name: api.metadata.name.unwrap_or_default(),
                    group: spec.group.unwrap_or_default(),
                    version: spec.version.unwrap_or_default(),
                    namespace: service.namespace.unwrap_or_default(),
                    service: service.name.unwrap_or_default(),
                    port: service.port.unwrap_or(443),
                    ca_bundle: spec.ca_bundle.map(|b| b.0),
                    insecure: spec.insecure_skip_tls_verify == Some(true),
                })
            })
            .collect()
    })
}

/// The middleware that sends requests for an aggregated group version to its Service;
/// the rest go on to the server's own handlers.
pub(crate) async fn route(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let Some(rest) = path.strip_prefix("/apis/") else {
        return next.run(request).await;
    };
    let mut segments = rest.splitn(3, '/');
    let (group, version) = (
        segments.next().unwrap_or_default(),
        segments.next().unwrap_or_default(),
    );
    let remotes = remotes(&shared);
    let Some(remote) = remotes
        .iter()
        .find(|r| r.group == group && r.version == version)
    else {
        return next.run(request).await;
    };
    let Some(identity) = request.extensions().get::<Identity>().cloned() else {
        return next.run(request).await;
    };
    let resource_path = segments.next().unwrap_or_default();
    if let Err(status) = authorize(
        &shared,
        &identity,
        request.method(),
        (remote, resource_path),
    ) {
        return status.into_response();
    }
    proxy(&shared, remote, &identity, request)
        .await
        .unwrap_or_else(|status| status.into_response())
}

/// Authorizes a request to an aggregated group version as kube-apiserver's request
/// info reads it: the group version's discovery is open to anyone signed in, the rest
/// a verb on `[namespaces/NS/]PLURAL[/NAME[/SUBRESOURCE]]`.
fn authorize(
    shared: &Shared,
    identity: &Identity,
    method: &axum::http::Method,
    (remote, path): (&Remote, &str),
) -> Result<(), Status> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (namespace, rest) = match segments.as_slice() {
        [] => return Ok(()),
        ["namespaces", namespace, rest @ ..] if !rest.is_empty() => (Some(*namespace), rest),
        rest => (None, rest),
    };
    let (plural, name, subresource) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(*name), None),
        [plural, name, sub, ..] => (*plural, Some(*name), Some(*sub)),
        [] => return Ok(()),
    };
    let verb = match (method.as_str(), name) {
        ("GET" | "HEAD", Some(_)) => "get",
        ("GET" | "HEAD", None) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", Some(_)) => "delete",
        _ => "deletecollection",
    };
    let access = Access {
        verb,
        group: &remote.group,
        plural,
        subresource,
        namespace,
        name,
    };
    crate::authorization::require(shared, identity, access)
}

/// The 503 kube-apiserver answers when an aggregated server cannot be reached.
fn unavailable(error: &str) -> Status {
    tracing::warn!(%error, "an aggregated API server could not be reached");
    Status::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailable",
        "the server is currently unable to handle the request",
    )
}

/// A client of the Service behind `remote`, and its base URL.
fn client_of(shared: &Shared, remote: &Remote) -> Result<(crate::dial::Client, String), String> {
    let place = (remote.namespace.as_str(), remote.service.as_str());
    let (base, name) = crate::dial::service_url(shared, place, remote.port)?;
    let trust = match (&remote.ca_bundle, remote.insecure) {
        (_, true) => Trust::Anyone,
        (Some(bundle), false) if !bundle.is_empty() => Trust::Bundle(bundle),
        _ => Trust::HostRoots,
    };
    Ok((crate::dial::https_client(trust, Some(name))?, base))
}

/// Sends the request on to the Service, as the user it comes from, and streams the
/// answer back.
async fn proxy(
    shared: &Shared,
    remote: &Remote,
    identity: &Identity,
    request: Request,
) -> Result<Response, Status> {
    let (client, base) = client_of(shared, remote).map_err(|e| unavailable(&e))?;
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let body = body
        .collect()
        .await
        .map_err(|e| Status::bad_request(e.to_string()))?
        .to_bytes();
    let mut forwarded = hyper::Request::builder()
        .method(parts.method.clone())
        .uri(format!("{base}{path}"));
    for name in ["accept", "content-type", "user-agent"] {
        if let Some(value) = parts.headers.get(name) {
            forwarded = forwarded.header(name, value);
        }
    }
    let user = identity.info();
    forwarded = forwarded.header("x-remote-user", &user.name);
    for group in &user.groups {
        forwarded = forwarded.header("x-remote-group", group);
    }
    let forwarded = forwarded
        .body(Full::new(body))
        .map_err(|e| Status::bad_request(e.to_string()))?;
    let answer = client
        .request(forwarded)
        .await
        .map_err(|e| unavailable(&e.to_string()))?;
    let (parts, body) = answer.into_parts();
    let mut response = Response::new(Body::new(body));
    *response.status_mut() = parts.status;
    for name in ["content-type", "content-encoding", "warning"] {
        for value in parts.headers.get_all(name) {
            response.headers_mut().append(name, value.clone());
        }
    }
    Ok(response)
}

/// Keeps the `Available` condition of Service-backed APIServices current: each is
/// asked for its group version's discovery every few seconds, as kube-apiserver's
/// availability controller asks.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut ticks = tokio::time::interval(CHECK_EVERY);
    loop {
        ticks.tick().await;
        for remote in remotes(&shared).iter() {
            let condition = check(&shared, remote).await;
            if let Err(error) = record(&shared, &remote.name, condition).await {
                tracing::debug!(%error, apiservice = %remote.name, "could not record availability");
            }
        }
    }
}

/// Whether the Service answers its group version's discovery: the condition to record.
async fn check(shared: &Shared, remote: &Remote) -> (bool, &'static str, String) {
    let (client, base) = match client_of(shared, remote) {
        Ok(found) => found,
        Err(error) => return (false, "MissingEndpoints", error),
    };
    let url = format!("{base}/apis/{}/{}", remote.group, remote.version);
    let asked = hyper::Request::get(&url)
        .header("accept", "application/json")
        .body(Full::new(Bytes::new()));
    let Ok(asked) = asked else {
        return (false, "FailedDiscoveryCheck", format!("a bad URL: {url}"));
    };
    match tokio::time::timeout(Duration::from_secs(5), client.request(asked)).await {
        Ok(Ok(answer)) if answer.status().is_success() => {
            (true, "Passed", "all checks passed".to_string())
        }
        Ok(Ok(answer)) => (
            false,
            "FailedDiscoveryCheck",
            format!(
                "failing or missing response from {url}: bad status from {url}: {}",
                answer.status().as_u16()
            ),
        ),
        Ok(Err(error)) => (
            false,
            "FailedDiscoveryCheck",
            format!("failing or missing response from {url}: {error}"),
        ),
        Err(_) => (
            false,
            "FailedDiscoveryCheck",
            format!("failing or missing response from {url}: timed out"),
        ),
    }
}

/// Writes the `Available` condition of APIService `name` when it changed.
async fn record(
    shared: &Shared,
    name: &str,
    (available, reason, message): (bool, &'static str, String),
) -> Result<(), String> {
    let wanted = if available { "True" } else { "False" };
    let key = format!("{DIRECTORY}{name}");
    crate::stored::edit(shared.store.as_ref(), ("apiservices", &key), |object| {
        let current = object["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Available");
        if current.is_some_and(|c| c["status"] == wanted && c["reason"] == reason) {
            return Ok(false);
        }
        let status = available_status(wanted, reason, message.clone());
        object["status"] = serde_json::to_value(status).unwrap_or_default();
        Ok(true)
    })
    .await
    .map_err(|status| status.message().to_string())
}

fn available_status(status: &str, reason: &str, message: String) -> APIServiceStatus {
    APIServiceStatus {
        conditions: Some(vec![APIServiceCondition {
            type_: "Available".into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message),
            last_transition_time: crate::objects::rfc3339(std::time::SystemTime::now())
                .parse()
                .ok()
                .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time),
        }]),
    }
}

impl Schema for APIService {
    const HAS_STATUS: bool = true;

    fn default_fields(&mut self) {
        let local = self.spec.as_ref().is_none_or(|s| s.service.is_none());
        let unset = self
            .status
            .as_ref()
            .is_none_or(|s| s.conditions.as_ref().is_none_or(Vec::is_empty));
        if local && unset {
            self.status = Some(available_status(
                "True",
                "Local",
                "Local APIServices are always available".into(),
            ));
        }
    }

    fn problems(&self) -> Vec<String> {
        let Some(spec) = &self.spec else {
            return vec!["spec: Required value".to_string()];
        };
        let mut problems = Vec::new();
        let (group, version) = (
            spec.group.as_deref().unwrap_or_default(),
            spec.version.as_deref().unwrap_or_default(),
        );
        let expected = if group.is_empty() {
            version.to_string()
        } else {
            format!("{version}.{group}")
        };
        let name = self.metadata.name.as_deref().unwrap_or_default();
        if name != expected {
            problems.push(format!(
                "metadata.name: Invalid value: {name:?}: must be {expected}"
            ));
        }
        if version.is_empty() {
            problems.push("spec.version: Required value".to_string());
        }
        if !(1..=20_000).contains(&spec.group_priority_minimum) {
            problems.push(format!(
                "spec.groupPriorityMinimum: Invalid value: {}: must be positive and less than 20000",
                spec.group_priority_minimum
            ));
        }
        if !(1..=1_000).contains(&spec.version_priority) {
            problems.push(format!(
                "spec.versionPriority: Invalid value: {}: must be positive and less than 1000",
                spec.version_priority
            ));
        }
        if spec.insecure_skip_tls_verify == Some(true)
            && spec.ca_bundle.as_ref().is_some_and(|b| !b.0.is_empty())
        {
            problems.push(
                "spec.insecureSkipTLSVerify: Invalid value: true: may not be true if caBundle is present"
                    .to_string(),
            );
        }
        if let Some(service) = &spec.service
            && service.name.as_deref().is_none_or(str::is_empty)
        {
            problems.push("spec.service.name: Required value".to_string());
        }
        problems
    }
}
