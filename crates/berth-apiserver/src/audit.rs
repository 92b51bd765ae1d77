//! Audit logging, as kube-apiserver's `--audit-policy-file` and `--audit-log-path`: an
//! audit.k8s.io/v1 Policy decides per request — by user, group, verb, resource,
//! namespace or path, first matching rule wins — whether and in how much detail it is
//! recorded (None, Metadata, Request, RequestResponse), and each stage of a recorded
//! request (RequestReceived, ResponseStarted for watches and streams, ResponseComplete)
//! is one audit.k8s.io/v1 Event on a line of JSON in the log. Admission adds its own
//! annotations through [`annotate`] (PodSecurity's audit mode).

use std::cell::RefCell;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Shared;
use crate::identity::Identity;
use crate::identity::UserInfo;
use crate::requests::RequestInfo;
use crate::{Error, Result};

/// Where the policy is read from and the log written to.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// The audit.k8s.io/v1 Policy, YAML or JSON.
    pub policy_file: PathBuf,
    /// The log, appended to; `-` for standard output.
    pub log_path: PathBuf,
}

/// How much of a request is recorded, least first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum Level {
    None,
    Metadata,
    Request,
    RequestResponse,
}

/// The stages of a request an event is written at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Stage {
    RequestReceived,
    ResponseStarted,
    ResponseComplete,
    Panic,
}

/// An audit.k8s.io/v1 Policy. Fields it does not know are refused by name.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Policy {
    api_version: String,
    kind: String,
    #[serde(default, rename = "metadata")]
    _metadata: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    rules: Vec<Rule>,
    #[serde(default)]
    omit_stages: Vec<Stage>,
    #[serde(default)]
    omit_managed_fields: bool,
}

/// One rule of a policy: the requests it matches and how they are recorded.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Rule {
    level: Level,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    user_groups: Vec<String>,
    #[serde(default)]
    verbs: Vec<String>,
    #[serde(default)]
    resources: Vec<GroupResources>,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    non_resource_urls: Vec<String>,
    #[serde(default)]
    omit_stages: Vec<Stage>,
    #[serde(default)]
    omit_managed_fields: Option<bool>,
}

/// Resources of one group a rule names: `pods`, `pods/log`, `*/status`, `pods/*`, `*`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GroupResources {
    #[serde(default)]
    group: String,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    resource_names: Vec<String>,
}

/// How one request is recorded: what the first matching rule says.
struct Decision {
    level: Level,
    omit_stages: Vec<Stage>,
    omit_managed_fields: bool,
}

impl Rule {
    /// Whether the rule covers `request` by `user` to `path`, as kube-apiserver's policy
    /// checker decides.
    fn matches(&self, user: &UserInfo, request: &RequestInfo, path: &str) -> bool {
        let listed = |list: &[String], value: &str| list.iter().any(|v| v == value);
        if !self.users.is_empty() && !listed(&self.users, &user.name) {
            return false;
        }
        if !self.user_groups.is_empty() && !user.groups.iter().any(|g| listed(&self.user_groups, g))
        {
            return false;
        }
        if !self.verbs.is_empty() && !listed(&self.verbs, request.verb) {
            return false;
        }
        if !self.namespaces.is_empty() || !self.resources.is_empty() {
            return self.matches_resource(request);
        }
        if !self.non_resource_urls.is_empty() {
            return !request.is_resource()
                && self.non_resource_urls.iter().any(|spec| {
                    spec == "*"
                        || spec == path
                        || spec
                            .strip_suffix('*')
                            .is_some_and(|prefix| path.starts_with(prefix))
                });
        }
        true
    }

    fn matches_resource(&self, request: &RequestInfo) -> bool {
        if !request.is_resource() {
            return false;
        }
        let namespace = request.namespace.as_deref().unwrap_or_default();
        if !self.namespaces.is_empty() && !self.namespaces.iter().any(|n| n == namespace) {
            return false;
        }
        if self.resources.is_empty() {
            return true;
        }
        let (resource, subresource) = (&request.resource, &request.subresource);
        let combined = if subresource.is_empty() {
            resource.clone()
        } else {
            format!("{resource}/{subresource}")
        };
        let name = request.name.as_deref().unwrap_or_default();
        self.resources
            .iter()
            .filter(|named| named.group == request.group)
            .any(|named| {
                let named_here = named.resource_names.is_empty()
                    || named.resource_names.iter().any(|n| n == name);
                named.resources.is_empty()
                    || named_here
                        && named.resources.iter().any(|spec| {
                            // `*/status` and `pods/*` name subresources alone.
                            let of_subresource = !subresource.is_empty()
                                && (spec.strip_prefix("*/") == Some(subresource.as_str())
                                    || spec.strip_suffix("/*") == Some(resource.as_str()));
                            spec == "*" || *spec == combined || of_subresource
                        })
            })
    }
}

/// The audit log and the policy that decides what goes in it.
pub(crate) struct Auditor {
    policy: Policy,
    log: Mutex<Box<dyn Write + Send>>,
}

impl Auditor {
    /// The policy read and checked, and the log opened for appending.
    pub(crate) fn open(config: &AuditConfig) -> Result<Self> {
        let policy = read_policy(&config.policy_file)?;
        let log: Box<dyn Write + Send> = if config.log_path == Path::new("-") {
            Box::new(std::io::stdout())
        } else {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&config.log_path)
                .map_err(|e| Error::io(&config.log_path, e))?;
            Box::new(file)
        };
        Ok(Self {
            policy,
            log: Mutex::new(log),
        })
    }

    /// What the first rule covering the request says; None when no rule does.
    fn decide(&self, user: &UserInfo, request: &RequestInfo, path: &str) -> Decision {
        let rule = self
            .policy
            .rules
            .iter()
            .find(|r| r.matches(user, request, path));
        let mut omit_stages = self.policy.omit_stages.clone();
        omit_stages.extend(rule.iter().flat_map(|r| r.omit_stages.iter().copied()));
        Decision {
            level: rule.map_or(Level::None, |r| r.level),
            omit_stages,
            omit_managed_fields: rule
                .and_then(|r| r.omit_managed_fields)
                .unwrap_or(self.policy.omit_managed_fields),
        }
    }

    /// Writes `event` at `stage` unless the decision omits the stage.
    fn write(&self, decision: &Decision, event: &mut Event, stage: Stage) {
        if decision.omit_stages.contains(&stage) {
            return;
        }
        event.stage = stage;
        event.stage_timestamp = micro_time(SystemTime::now());
        let Ok(mut line) = serde_json::to_vec(event) else {
            return;
        };
        line.push(b'\n');
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(error) = log.write_all(&line).and_then(|()| log.flush()) {
            tracing::warn!(%error, "could not write the audit log");
        }
    }
}

/// The policy file read as kube-apiserver reads it: YAML or JSON, audit.k8s.io/v1.
fn read_policy(path: &Path) -> Result<Policy> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let policy: Policy = serde_yaml_ng::from_str(&text)
        .map_err(|e| Error::Setup(format!("the audit policy {}: {e}", path.display())))?;
    if policy.api_version != "audit.k8s.io/v1" || policy.kind != "Policy" {
        return Err(Error::Setup(format!(
            "the audit policy {}: expected apiVersion audit.k8s.io/v1 and kind Policy, found {} {}",
            path.display(),
            policy.api_version,
            policy.kind
        )));
    }
    Ok(policy)
}

/// An audit.k8s.io/v1 Event, as kube-apiserver writes it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    kind: &'static str,
    api_version: &'static str,
    level: Level,
    #[serde(rename = "auditID")]
    audit_id: String,
    stage: Stage,
    #[serde(rename = "requestURI")]
    request_uri: String,
    verb: &'static str,
    user: UserInfo,
    #[serde(rename = "sourceIPs", skip_serializing_if = "Vec::is_empty")]
    source_ips: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    object_ref: Option<ObjectRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_status: Option<ResponseStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_object: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_object: Option<Value>,
    request_received_timestamp: String,
    stage_timestamp: String,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct ObjectRef {
    resource: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    api_group: String,
    api_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    subresource: String,
}

#[derive(Debug, Clone, Serialize)]
struct ResponseStatus {
    metadata: Value,
    code: u16,
}

/// RFC 3339 with microseconds, as audit events stamp their stages.
fn micro_time(time: SystemTime) -> String {
    humantime::format_rfc3339_micros(time).to_string()
}

tokio::task_local! {
    /// The annotations admission added to the request being audited.
    static ANNOTATIONS: RefCell<Vec<(String, String)>>;
}

/// Adds an annotation to the audit event of the request being handled; nothing when it
/// is not audited.
pub(crate) fn annotate(key: &str, value: String) {
    let _ = ANNOTATIONS.try_with(|a| a.borrow_mut().push((key.to_string(), value)));
}

/// Whether requests like this stream their response for long: recorded as started when
/// the response begins, complete when it ends.
fn long_running(request: &RequestInfo) -> bool {
    request.verb == "watch"
        || matches!(
            request.subresource.as_str(),
            "exec" | "attach" | "portforward" | "proxy"
        )
}

/// Bodies larger than this are not recorded (kube-apiserver's largest request).
const LARGEST_RECORDED: usize = 3 * 1024 * 1024;

/// Records the request in the audit log as the policy says; passes it on untouched
/// when no policy is set or no rule covers it.
pub(crate) async fn record(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(auditor) = shared.auditor.clone() else {
        return next.run(request).await;
    };
    let received = SystemTime::now();
    let info = RequestInfo::of(request.method(), request.uri());
    let identity = request.extensions().get::<Identity>().cloned();
    let user = identity.map_or_else(
        || UserInfo {
            name: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
        },
        |identity| identity.info(),
    );
    let decision = auditor.decide(&user, &info, request.uri().path());
    if decision.level == Level::None {
        return next.run(request).await;
    }
    let mut event = Event {
        kind: "Event",
        api_version: "audit.k8s.io/v1",
        level: decision.level,
        audit_id: crate::objects::uid().unwrap_or_default(),
        stage: Stage::RequestReceived,
        request_uri: request
            .uri()
            .path_and_query()
            .map_or_else(|| request.uri().path().to_string(), |p| p.to_string()),
        verb: info.verb,
        user,
        source_ips: request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| vec![peer.ip().to_string()])
            .unwrap_or_default(),
        user_agent: request
            .headers()
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        object_ref: info.is_resource().then(|| ObjectRef {
            resource: info.resource.clone(),
            namespace: info.namespace.clone(),
            name: info.name.clone(),
            api_group: info.group.clone(),
            api_version: info.version.clone(),
            subresource: info.subresource.clone(),
        }),
        response_status: None,
        request_object: None,
        response_object: None,
        request_received_timestamp: micro_time(received),
        stage_timestamp: String::new(),
        annotations: Default::default(),
    };
    auditor.write(&decision, &mut event, Stage::RequestReceived);
    let detailed = info.is_resource() && decision.level >= Level::Request;
    let request = if detailed && matches!(info.verb, "create" | "update" | "patch") {
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, LARGEST_RECORDED)
            .await
            .unwrap_or_default();
        event.request_object = recorded(&bytes, &decision);
        Request::from_parts(parts, Body::from(bytes))
    } else {
        request
    };
    let (response, annotations) = ANNOTATIONS
        .scope(RefCell::default(), async {
            let response = next.run(request).await;
            (response, ANNOTATIONS.with(|a| a.take()))
        })
        .await;
    let code = response.status().as_u16();
    event.response_status = Some(ResponseStatus {
        metadata: Value::Object(Default::default()),
        code,
    });
    let decision_annotation = if code == 403 { "forbid" } else { "allow" };
    event.annotations.insert(
        "authorization.k8s.io/decision".into(),
        decision_annotation.into(),
    );
    event.annotations.extend(annotations);
    if long_running(&info) {
        auditor.write(&decision, &mut event, Stage::ResponseStarted);
        return complete_when_done(response, (auditor, decision, event));
    }
    let response = if detailed && decision.level == Level::RequestResponse {
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        event.response_object = recorded(&bytes, &decision);
        Response::from_parts(parts, Body::from(bytes))
    } else {
        response
    };
    auditor.write(&decision, &mut event, Stage::ResponseComplete);
    response
}

/// The object a body holds (JSON, or protobuf as JSON), without managed fields when the
/// decision says so; None for other bodies (patches that are lists, streams).
fn recorded(bytes: &[u8], decision: &Decision) -> Option<Value> {
    let mut object = serde_json::from_slice::<Value>(bytes)
        .ok()
        .or_else(|| crate::protobuf::decode_named(bytes))?;
    if !object.is_object() {
        return None;
    }
    if decision.omit_managed_fields {
        let items = object.get_mut("items").and_then(Value::as_array_mut);
        for item in items.into_iter().flatten() {
            strip_managed_fields(item);
        }
        strip_managed_fields(&mut object);
    }
    Some(object)
}

fn strip_managed_fields(object: &mut Value) {
    if let Some(metadata) = object["metadata"].as_object_mut() {
        metadata.remove("managedFields");
    }
}

/// Writes the ResponseComplete event when the response's body has been sent (or the
/// client has gone): for watches and streams, whose bodies last.
struct CompleteOnDrop {
    auditor: Arc<Auditor>,
    decision: Decision,
    event: Event,
}

impl Drop for CompleteOnDrop {
    fn drop(&mut self) {
        self.auditor
            .write(&self.decision, &mut self.event, Stage::ResponseComplete);
    }
}

fn complete_when_done(
    response: Response,
    (auditor, decision, event): (Arc<Auditor>, Decision, Event),
) -> Response {
    let guard = CompleteOnDrop {
        auditor,
        decision,
        event,
    };
    let (parts, body) = response.into_parts();
    let stream = body.into_data_stream().map(move |chunk| {
        let _ = &guard;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

#[cfg(test)]
mod tests {
    use axum::http::Method;

    use super::*;

    const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  users: ["system:kube-proxy"]
  verbs: ["watch"]
- level: None
  nonResourceURLs: ["/healthz*", "/version"]
- level: Metadata
  resources:
  - group: ""
    resources: ["secrets", "configmaps"]
- level: Request
  resources:
  - group: ""
    resources: ["pods/*"]
- level: RequestResponse
  namespaces: ["production"]
- level: Metadata
"#;

    fn level(user: &str, method: Method, uri: &str) -> Level {
        let policy: Policy = serde_yaml_ng::from_str(POLICY).unwrap();
        let auditor = Auditor {
            policy,
            log: Mutex::new(Box::new(std::io::sink())),
        };
        let uri: axum::http::Uri = uri.parse().unwrap();
        let user = UserInfo {
            name: user.into(),
            groups: vec!["system:authenticated".into()],
        };
        let request = RequestInfo::of(&method, &uri);
        auditor.decide(&user, &request, uri.path()).level
    }

    #[test]
    fn the_first_matching_rule_decides_the_level() {
        let watch = "/api/v1/endpoints?watch=true";
        assert_eq!(level("system:kube-proxy", Method::GET, watch), Level::None);
        assert_eq!(level("alice", Method::GET, watch), Level::Metadata);
        assert_eq!(level("alice", Method::GET, "/healthz/ready"), Level::None);
        let secret = "/api/v1/namespaces/production/secrets/db";
        assert_eq!(level("alice", Method::GET, secret), Level::Metadata);
        let log = "/api/v1/namespaces/a/pods/web/log";
        assert_eq!(level("alice", Method::GET, log), Level::Request);
        let pod = "/api/v1/namespaces/production/pods";
        assert_eq!(level("alice", Method::POST, pod), Level::RequestResponse);
        assert_eq!(level("alice", Method::GET, "/apis"), Level::Metadata);
    }

    #[test]
    fn unknown_policy_fields_are_refused_by_name() {
        let policy = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  resourceGroups: [x]\n";
        let error = serde_yaml_ng::from_str::<Policy>(policy).unwrap_err();
        assert!(error.to_string().contains("resourceGroups"), "{error}");
    }
}
