//! Dynamic admission, as kube-apiserver's webhook admission plugins: the
//! MutatingWebhookConfigurations and ValidatingWebhookConfigurations of the watch cache
//! name HTTPS endpoints that are sent an `admission.k8s.io/v1` AdmissionReview for each
//! write their rules, namespace selector and object selector match. Mutating webhooks
//! run first, one after another, each answer's JSONPatch applied (and, with
//! `reinvocationPolicy: IfNeeded`, run once more when a later one changed the object);
//! the object is then checked again by its schema, and the validating webhooks are
//! asked in turn. A webhook that cannot be reached fails the write unless its
//! `failurePolicy` is `Ignore`.
//!
//! A webhook is dialled at its `url`, or through its Service at the first ready
//! endpoint address (as kube-apiserver's `--enable-aggregator-routing` does), verified
//! against its `caBundle` (the host's roots when it has none) under the Service's DNS
//! name `<service>.<namespace>.svc`.

use std::time::Duration;

use axum::http::StatusCode;
use base64::Engine as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations,
    ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Shared;
use crate::admission::{
    Bindings, Scope, Write, condition_problems, conditions_met, in_scope, request_of,
};
use crate::dial::Trust;
use crate::kinds::Schema;
use crate::status::Status;

/// How long a webhook may take when its configuration does not say (Kubernetes'
/// default), and the longest it may ask for.
const DEFAULT_TIMEOUT: i32 = 10;
const LONGEST_TIMEOUT: i32 = 30;

/// A webhook of either kind of configuration, as far as calling it goes.
struct Hook<'a> {
    name: &'a str,
    client: &'a WebhookClientConfig,
    rules: &'a [RuleWithOperations],
    failure_policy: Option<&'a str>,
    namespace_selector: Option<&'a LabelSelector>,
    object_selector: Option<&'a LabelSelector>,
    side_effects: &'a str,
    timeout: Option<i32>,
    versions: &'a [String],
    /// A mutating webhook's `reinvocationPolicy`: `IfNeeded` to be called again.
    reinvocation: Option<&'a str>,
    /// Its CEL `matchConditions`: all must hold for it to be called.
    match_conditions: &'a [MatchCondition],
}

macro_rules! hook_of {
    ($webhook:expr, $reinvocation:expr) => {
        Hook {
            name: &$webhook.name,
            client: &$webhook.client_config,
            rules: $webhook.rules.as_deref().unwrap_or_default(),
            failure_policy: $webhook.failure_policy.as_deref(),
            namespace_selector: $webhook.namespace_selector.as_ref(),
            object_selector: $webhook.object_selector.as_ref(),
            side_effects: &$webhook.side_effects,
            timeout: $webhook.timeout_seconds,
            versions: &$webhook.admission_review_versions,
            reinvocation: $reinvocation,
            match_conditions: $webhook.match_conditions.as_deref().unwrap_or_default(),
        }
    };
}

/// Runs the mutating webhooks that match `write` over `object`: true when any changed
/// it. Their warnings are added to `warnings`.
pub(crate) async fn mutate(
    shared: &Shared,
    write: &Write<'_>,
    (object, old): (&mut Value, Option<&Value>),
    warnings: &mut Vec<String>,
) -> Result<bool, Status> {
    let mut configurations = shared
        .cache
        .typed_list::<MutatingWebhookConfiguration>("/registry/mutatingwebhookconfigurations/");
    configurations.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let hooks: Vec<Hook<'_>> = configurations
        .iter()
        .flat_map(|c| c.webhooks.iter().flatten())
        .map(|w: &MutatingWebhook| hook_of!(w, w.reinvocation_policy.as_deref()))
        .collect();
    let mut last_change = None;
    for (index, hook) in hooks.iter().enumerate() {
        if patched(shared, hook, write, (object, old), warnings).await? {
            last_change = Some(index);
        }
    }
    // Once more for those that asked to be, when a webhook after them changed the
    // object.
    if let Some(last) = last_change {
        for hook in hooks
            .iter()
            .take(last)
            .filter(|h| h.reinvocation == Some("IfNeeded"))
        {
            patched(shared, hook, write, (object, old), warnings).await?;
        }
    }
    Ok(last_change.is_some())
}

/// Calls a mutating webhook and applies its patch: true when that changed `object`.
async fn patched(
    shared: &Shared,
    hook: &Hook<'_>,
    write: &Write<'_>,
    (object, old): (&mut Value, Option<&Value>),
    warnings: &mut Vec<String>,
) -> Result<bool, Status> {
    match call(shared, hook, write, (object, old), warnings).await? {
        Some(Reply {
            patch: Some(patch), ..
        }) => apply_patch(hook.name, object, &patch),
        _ => Ok(false),
    }
}

/// Asks the validating webhooks that match `write`; the first refusal refuses it.
pub(crate) async fn validate(
    shared: &Shared,
    write: &Write<'_>,
    (object, old): (Option<&Value>, Option<&Value>),
    warnings: &mut Vec<String>,
) -> Result<(), Status> {
    let mut configurations = shared
        .cache
        .typed_list::<ValidatingWebhookConfiguration>("/registry/validatingwebhookconfigurations/");
    configurations.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let object = object.unwrap_or(&Value::Null);
    for webhook in configurations
        .iter()
        .flat_map(|c| c.webhooks.iter().flatten())
    {
        let hook: Hook<'_> = hook_of!(webhook as &ValidatingWebhook, None);
        call(shared, &hook, write, (object, old), warnings).await?;
    }
    Ok(())
}

/// Calls `hook` about `write` if it matches; its reply if it allowed the write, None
/// when it was not called (or failed, and may be ignored).
async fn call(
    shared: &Shared,
    hook: &Hook<'_>,
    write: &Write<'_>,
    (object, old): (&Value, Option<&Value>),
    warnings: &mut Vec<String>,
) -> Result<Option<Reply>, Status> {
    let scope = Scope {
        rules: hook.rules,
        namespace_selector: hook.namespace_selector,
        object_selector: hook.object_selector,
    };
    if !in_scope(shared, &scope, write, (object, old)) {
        return Ok(None);
    }
    if !hook.match_conditions.is_empty() {
        let bindings = Bindings::new(shared, write, (object, old));
        match conditions_met(hook.match_conditions, &bindings) {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(_) if hook.failure_policy == Some("Ignore") => return Ok(None),
            Err(error) => return Err(call_failed(hook.name, &error)),
        }
    }
    if write.dry_run && !matches!(hook.side_effects, "None" | "NoneOnDryRun") {
        return Err(Status::bad_request(format!(
            "admission webhook {:?} does not support dry run",
            hook.name
        )));
    }
    let uid = crate::objects::uid()?;
    let review = review(write, &uid, (object, old), hook.versions);
    let timeout = hook
        .timeout
        .unwrap_or(DEFAULT_TIMEOUT)
        .clamp(1, LONGEST_TIMEOUT);
    let mut reply = match ask(shared, hook, &review, timeout).await {
        Ok(reply) => reply,
        Err(_) if hook.failure_policy == Some("Ignore") => return Ok(None),
        Err(error) => {
            return Err(call_failed(
                hook.name,
                &format!("failed to call webhook: {error}"),
            ));
        }
    };
    warnings.extend(reply.warnings.take().unwrap_or_default());
    if !reply.allowed {
        return Err(denied(hook.name, reply.status.unwrap_or_default()));
    }
    Ok(Some(reply))
}

/// What kube-apiserver says when a webhook could not be called (or its match
/// conditions not run) and its failure policy is Fail.
fn call_failed(name: &str, why: &str) -> Status {
    Status::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        format!("Internal error occurred: failed calling webhook {name:?}: {why}"),
    )
}

/// What kube-apiserver says when a webhook refuses: its message, its code if 400 or
/// more (400 otherwise).
fn denied(name: &str, status: ReplyStatus) -> Status {
    let denied_by = format!("admission webhook {name:?} denied the request");
    let message = match (status.message, status.reason) {
        (Some(message), _) if !message.is_empty() => format!("{denied_by}: {message}"),
        (_, Some(reason)) if !reason.is_empty() => format!("{denied_by}: {reason}"),
        _ => format!("{denied_by} without explanation"),
    };
    let code = status
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .filter(|c| c.as_u16() >= 400)
        .unwrap_or(StatusCode::BAD_REQUEST);
    let reason = match code {
        StatusCode::FORBIDDEN => "Forbidden",
        StatusCode::UNPROCESSABLE_ENTITY => "Invalid",
        StatusCode::CONFLICT => "Conflict",
        StatusCode::NOT_FOUND => "NotFound",
        _ => "BadRequest",
    };
    Status::new(code, reason, message)
}

/// Applies a reply's JSONPatch (base64) to `object`: true when it changed it.
fn apply_patch(name: &str, object: &mut Value, patch: &str) -> Result<bool, Status> {
    let failed = |e: &dyn std::fmt::Display| {
        Status::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!(
                "Internal error occurred: admission webhook {name:?} returned a bad patch: {e}"
            ),
        )
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(patch)
        .map_err(|e| failed(&e))?;
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).map_err(|e| failed(&e))?;
    let before = object.clone();
    json_patch::patch(object, &patch).map_err(|e| failed(&e))?;
    Ok(*object != before)
}

/// The AdmissionReview a webhook is sent, in the newest version it accepts.
fn review(
    write: &Write<'_>,
    uid: &str,
    (object, old): (&Value, Option<&Value>),
    versions: &[String],
) -> Value {
    let version = if versions.iter().any(|v| v == "v1") {
        "v1"
    } else {
        "v1beta1"
    };
    let mut request = request_of(write, uid);
    request["object"] = object.clone();
    request["oldObject"] = json!(old);
    json!({
        "apiVersion": format!("admission.k8s.io/{version}"),
        "kind": "AdmissionReview",
        "request": request,
    })
}

/// A webhook's answer, as much of it as the server reads.
#[derive(Deserialize)]
struct ReviewReply {
    response: Option<Reply>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Reply {
    uid: String,
    allowed: bool,
    status: Option<ReplyStatus>,
    patch: Option<String>,
    patch_type: Option<String>,
    warnings: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
struct ReplyStatus {
    code: Option<u16>,
    message: Option<String>,
    reason: Option<String>,
}

/// Sends `review` to the webhook and reads its reply; the error as kube-apiserver words
/// it after `failed to call webhook: `.
async fn ask(
    shared: &Shared,
    hook: &Hook<'_>,
    review: &Value,
    timeout: i32,
) -> Result<Reply, String> {
    let (url, server_name) = endpoint(shared, hook.client)?;
    let url = format!(
        "{url}{}timeout={timeout}s",
        if url.contains('?') { '&' } else { '?' }
    );
    let trust = match &hook.client.ca_bundle {
        Some(bundle) if !bundle.0.is_empty() => Trust::Bundle(&bundle.0),
        _ => Trust::HostRoots,
    };
    let client = crate::dial::https_client(trust, server_name)?;
    let request = hyper::Request::post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(Full::new(Bytes::from(review.to_string())))
        .map_err(|e| e.to_string())?;
    let limit = Duration::from_secs(u64::try_from(timeout).unwrap_or(10));
    let exchange = async {
        let response = client.request(request).await.map_err(|e| {
            let cause =
                std::error::Error::source(&e).map_or_else(|| e.to_string(), ToString::to_string);
            format!("Post {url:?}: {cause}")
        })?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if !status.is_success() {
            return Err(format!(
                "the server responded with the status code {}",
                status.as_u16()
            ));
        }
        Ok(body)
    };
    let body = tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| format!("Post {url:?}: context deadline exceeded"))??;
    let reply: ReviewReply = serde_json::from_slice(&body)
        .map_err(|e| format!("the response is not an AdmissionReview: {e}"))?;
    let reply = reply.response.ok_or("the response has no response field")?;
    let sent = review["request"]["uid"].as_str().unwrap_or_default();
    if reply.uid != sent {
        return Err(format!(
            "expected response.uid={sent:?}, got {:?}",
            reply.uid
        ));
    }
    if reply.patch.is_some() && reply.patch_type.as_deref() != Some("JSONPatch") {
        return Err("a patch must come with patchType JSONPatch".into());
    }
    Ok(reply)
}

/// Where to dial a webhook, and the name its certificate must carry when that is not
/// the URL's host (a Service's DNS name).
fn endpoint(
    shared: &Shared,
    config: &WebhookClientConfig,
) -> Result<(String, Option<String>), String> {
    if let Some(url) = &config.url {
        return Ok((url.clone(), None));
    }
    let Some(service) = &config.service else {
        return Err("neither url nor service is set".into());
    };
    let place = (service.namespace.as_str(), service.name.as_str());
    let (base, name) = crate::dial::service_url(shared, place, service.port.unwrap_or(443))?;
    let path = service.path.as_deref().unwrap_or("");
    Ok((format!("{base}{path}"), Some(name)))
}

/// What is wrong with the webhooks of a configuration.
fn problems_of<'a>(hooks: impl Iterator<Item = Hook<'a>>) -> Vec<String> {
    hooks
        .enumerate()
        .flat_map(|(index, hook)| hook_problems(&hook, &format!("webhooks[{index}]")))
        .collect()
}

/// What is wrong with one webhook of a configuration, `at` its path.
fn hook_problems(hook: &Hook<'_>, at: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if hook.name.split('.').count() < 3 {
        problems.push(format!(
            "{at}.name: Invalid value: {:?}: should be a domain with at least three segments separated by dots",
            hook.name
        ));
    }
    match (&hook.client.url, &hook.client.service) {
        (Some(_), Some(_)) | (None, None) => problems.push(format!(
            "{at}.clientConfig: Required value: exactly one of url or service is required"
        )),
        (Some(url), None) if !url.starts_with("https://") => problems.push(format!(
            "{at}.clientConfig.url: Invalid value: {url:?}: 'https' is the only allowed URL scheme"
        )),
        _ => {}
    }
    if !matches!(hook.side_effects, "None" | "NoneOnDryRun") {
        problems.push(format!(
            "{at}.sideEffects: Unsupported value: {:?}: supported values: \"None\", \"NoneOnDryRun\"",
            hook.side_effects
        ));
    }
    if !hook.versions.iter().any(|v| v == "v1" || v == "v1beta1") {
        problems.push(format!(
            "{at}.admissionReviewVersions: Invalid value: {:?}: must include at least one of v1, v1beta1",
            hook.versions
        ));
    }
    if let Some(policy) = hook.failure_policy
        && !matches!(policy, "Fail" | "Ignore")
    {
        problems.push(format!(
            "{at}.failurePolicy: Unsupported value: {policy:?}: supported values: \"Fail\", \"Ignore\""
        ));
    }
    if let Some(timeout) = hook.timeout
        && !(1..=LONGEST_TIMEOUT).contains(&timeout)
    {
        problems.push(format!(
            "{at}.timeoutSeconds: Invalid value: {timeout}: the timeout value must be between 1 and 30 seconds"
        ));
    }
    if let Some(policy) = hook.reinvocation
        && !matches!(policy, "Never" | "IfNeeded")
    {
        problems.push(format!(
            "{at}.reinvocationPolicy: Unsupported value: {policy:?}: supported values: \"IfNeeded\", \"Never\""
        ));
    }
    problems.extend(condition_problems(
        hook.match_conditions,
        &format!("{at}.matchConditions"),
    ));
    problems
}

/// Kubernetes' defaults for what a webhook leaves out.
macro_rules! default_hook {
    ($webhook:expr) => {{
        let webhook = $webhook;
        webhook.failure_policy.get_or_insert_with(|| "Fail".into());
        webhook
            .match_policy
            .get_or_insert_with(|| "Equivalent".into());
        webhook
            .namespace_selector
            .get_or_insert_with(Default::default);
        webhook.object_selector.get_or_insert_with(Default::default);
        webhook.timeout_seconds.get_or_insert(DEFAULT_TIMEOUT);
        for rule in webhook.rules.iter_mut().flatten() {
            rule.scope.get_or_insert_with(|| "*".into());
        }
    }};
}

impl Schema for MutatingWebhookConfiguration {
    fn default_fields(&mut self) {
        for webhook in self.webhooks.iter_mut().flatten() {
            default_hook!(&mut *webhook);
            webhook
                .reinvocation_policy
                .get_or_insert_with(|| "Never".into());
        }
    }

    fn problems(&self) -> Vec<String> {
        let hooks = self.webhooks.iter().flatten();
        problems_of(hooks.map(|w| hook_of!(w, w.reinvocation_policy.as_deref())))
    }
}

impl Schema for ValidatingWebhookConfiguration {
    fn default_fields(&mut self) {
        for webhook in self.webhooks.iter_mut().flatten() {
            default_hook!(&mut *webhook);
        }
    }

    fn problems(&self) -> Vec<String> {
        problems_of(self.webhooks.iter().flatten().map(|w| hook_of!(w, None)))
    }
}
