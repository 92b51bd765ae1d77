//! The reviews clients ask instead of trying: SelfSubjectAccessReview (`kubectl auth
//! can-i`), SubjectAccessReview (whether someone else may, for webhooks and proxies),
//! SelfSubjectRulesReview (`kubectl auth can-i --list`) and SelfSubjectReview (`kubectl
//! auth whoami`). None is stored: each is answered and returned with its status, as
//! kube-apiserver does.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReviewStatus,
};
use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::{Value, json};

use crate::Shared;
use crate::identity::{Access, Identity};
use crate::protobuf::Kind;
use crate::rbac;
use crate::status::Status;

/// The access reviews' group version.
pub(crate) const AUTHORIZATION: (&str, &str) = ("authorization.k8s.io", "v1");

/// The versions of `authentication.k8s.io` SelfSubjectReview is served in: kubectl 1.27
/// asks v1alpha1 or v1beta1, later ones v1.
pub(crate) const AUTHENTICATION_VERSIONS: [&str; 3] = ["v1", "v1beta1", "v1alpha1"];

pub(crate) fn routes() -> Router<Arc<Shared>> {
    let authorization = "/apis/authorization.k8s.io/v1";
    Router::new()
        .route(
            &format!("{authorization}/selfsubjectaccessreviews"),
            post(self_subject_access_review),
        )
        .route(
            &format!("{authorization}/subjectaccessreviews"),
            post(subject_access_review),
        )
        .route(
            &format!("{authorization}/selfsubjectrulesreviews"),
            post(self_subject_rules_review),
        )
        .route(
            "/apis/authentication.k8s.io/{version}/selfsubjectreviews",
            post(self_subject_review),
        )
        .route(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            post(token_review),
        )
}

/// The resources of `authorization.k8s.io/v1`, for discovery: `(plural, kind)`.
pub(crate) const AUTHORIZATION_RESOURCES: [(&str, &str); 3] = [
    ("selfsubjectaccessreviews", "SelfSubjectAccessReview"),
    ("selfsubjectrulesreviews", "SelfSubjectRulesReview"),
    ("subjectaccessreviews", "SubjectAccessReview"),
];

/// The review a request carries, read from JSON or (for the kinds with descriptors)
/// protobuf.
fn review_of(body: &Bytes, headers: &HeaderMap, kind: Kind) -> Result<Value, Status> {
    crate::objects::parse(body, crate::writes::content_type(headers), kind)
}

/// The review answered: `status` set, returned as created.
fn answered(mut review: Value, kind: Kind, status: Value) -> Response {
    review["apiVersion"] = json!(kind.api_version());
    review["kind"] = json!(kind.name());
    review["status"] = status;
    (StatusCode::CREATED, axum::Json(review)).into_response()
}

/// `kubectl auth can-i VERB RESOURCE`: whether the caller may.
async fn self_subject_access_review(
    State(shared): State<Arc<Shared>>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let kind = crate::protobuf::SELF_SUBJECT_ACCESS_REVIEW;
    match review_of(&body, &headers, kind) {
        Ok(review) => {
            let status = decide(&shared, &identity, &review["spec"]);
            answered(review, kind, status)
        }
        Err(status) => status.into_response(),
    }
}

/// Whether the review's user and groups may, for callers allowed to create
/// subjectaccessreviews (webhooks, authorizing proxies).
async fn subject_access_review(
    State(shared): State<Arc<Shared>>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let kind = crate::protobuf::SUBJECT_ACCESS_REVIEW;
    if let Err(status) = may_review(
        &shared,
        &identity,
        (AUTHORIZATION.0, "subjectaccessreviews"),
    ) {
        return status.into_response();
    }
    let review = match review_of(&body, &headers, kind) {
        Ok(review) => review,
        Err(status) => return status.into_response(),
    };
    let spec = &review["spec"];
    let user = spec["user"].as_str().unwrap_or_default().to_string();
    if user.is_empty() && spec["groups"].as_array().is_none_or(Vec::is_empty) {
        return Status::bad_request("at least one of user or group must be specified")
            .into_response();
    }
    let groups = spec["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g.as_str().map(str::to_string))
        .collect();
    let subject = Identity::of_user(user, groups);
    let status = decide(&shared, &subject, spec);
    answered(review, kind, status)
}

/// A 403 unless `identity` may create the reviews of `group`'s `plural`: reviews about
/// others are for delegating servers (system:auth-delegator), not for everyone.
fn may_review(
    shared: &Shared,
    identity: &Identity,
    (group, plural): (&str, &str),
) -> Result<(), Status> {
    let access = Access {
        verb: "create",
        group,
        plural,
        subresource: None,
        namespace: None,
        name: None,
    };
    crate::authorization::require(shared, identity, access)
}

/// Whether a token is live and for whom, as servers that delegate authentication ask
/// (webhook token authenticators, kube-rbac-proxy): the server's own tokens for the API,
/// ServiceAccount tokens for the audiences asked (the API's by default).
async fn token_review(
    State(shared): State<Arc<Shared>>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let kind = crate::protobuf::TOKEN_REVIEW;
    if let Err(status) = may_review(
        &shared,
        &identity,
        ("authentication.k8s.io", "tokenreviews"),
    ) {
        return status.into_response();
    }
    let review = match review_of(&body, &headers, kind) {
        Ok(review) => review,
        Err(status) => return status.into_response(),
    };
    let token = review["spec"]["token"].as_str().unwrap_or_default();
    let asked: Vec<&str> = review["spec"]["audiences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let api = [crate::tokens::ISSUER];
    let reviewed = if asked.is_empty() || asked == api {
        crate::authentication::of_token(&shared, token)
            .map(|identity| (identity, vec![api[0].to_string()]))
    } else {
        shared.signer.review(token, &shared.cache, &asked)
    };
    let status = match reviewed {
        Some((identity, audiences)) => json!({
            "authenticated": true,
            "user": identity.info(),
            "audiences": audiences,
        }),
        None => json!({"authenticated": false, "error": "invalid bearer token"}),
    };
    answered(review, kind, status)
}

/// An access review's decision for `identity`: `spec` holds resource or non-resource
/// attributes.
fn decide(shared: &Shared, identity: &Identity, spec: &Value) -> Value {
    let decision = if let Ok(attributes) =
        serde_json::from_value::<ResourceAttributes>(spec["resourceAttributes"].clone())
        && !spec["resourceAttributes"].is_null()
    {
        let access = Access {
            verb: attributes.verb.as_deref().unwrap_or_default(),
            group: attributes.group.as_deref().unwrap_or_default(),
            plural: attributes.resource.as_deref().unwrap_or_default(),
            subresource: attributes.subresource.as_deref().filter(|s| !s.is_empty()),
            namespace: attributes.namespace.as_deref().filter(|n| !n.is_empty()),
            name: attributes.name.as_deref().filter(|n| !n.is_empty()),
        };
        crate::authorization::authorize(shared, identity, access)
    } else if let Ok(attributes) =
        serde_json::from_value::<NonResourceAttributes>(spec["nonResourceAttributes"].clone())
    {
        let path = attributes.path.unwrap_or_default();
        let verb = attributes.verb.unwrap_or_default();
        crate::authorization::authorize_path(shared, identity, &verb, &path)
    } else {
        false
    };
    let status = SubjectAccessReviewStatus {
        allowed: decision,
        reason: decision.then(|| "RBAC: allowed".to_string()),
        ..SubjectAccessReviewStatus::default()
    };
    serde_json::to_value(status).unwrap_or_default()
}

/// `kubectl auth can-i --list`: every rule that applies to the caller in the review's
/// namespace.
async fn self_subject_rules_review(
    State(shared): State<Arc<Shared>>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let kind = crate::protobuf::SELF_SUBJECT_RULES_REVIEW;
    let review = match review_of(&body, &headers, kind) {
        Ok(review) => review,
        Err(status) => return status.into_response(),
    };
    let namespace = review["spec"]["namespace"]
        .as_str()
        .filter(|n| !n.is_empty());
    let rules = rbac::rules_for(&shared, &identity.info(), namespace);
    let (resource, non_resource): (Vec<&PolicyRule>, Vec<&PolicyRule>) = rules
        .iter()
        .partition(|rule| rule.non_resource_urls.as_ref().is_none_or(Vec::is_empty));
    let resource_rules: Vec<Value> = resource
        .iter()
        .map(|rule| {
            json!({
                "verbs": rule.verbs,
                "apiGroups": rule.api_groups,
                "resources": rule.resources,
                "resourceNames": rule.resource_names,
            })
        })
        .collect();
    let non_resource_rules: Vec<Value> = non_resource
        .iter()
        .map(|rule| json!({"verbs": rule.verbs, "nonResourceURLs": rule.non_resource_urls}))
        .collect();
    // Rules of the built-in authorizers (the admin, nodes) are not RBAC's to list.
    let incomplete = !identity.decided_by_roles_alone();
    let status = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": incomplete,
    });
    answered(review, kind, status)
}

/// `kubectl auth whoami`: the caller's user name and groups.
async fn self_subject_review(
    axum::extract::Path(version): axum::extract::Path<String>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !AUTHENTICATION_VERSIONS.contains(&version.as_str()) {
        return crate::resources::not_served().into_response();
    }
    let kind = match version.as_str() {
        "v1" => crate::protobuf::SELF_SUBJECT_REVIEW,
        older => Kind::new("authentication.k8s.io", older, "SelfSubjectReview"),
    };
    let review = match review_of(&body, &headers, kind) {
        Ok(review) => review,
        Err(status) => return status.into_response(),
    };
    let status = json!({"userInfo": identity.info()});
    answered(review, kind, status)
}
