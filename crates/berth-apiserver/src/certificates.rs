//! CertificateSigningRequests (certificates.k8s.io/v1), as kube-apiserver and
//! kube-controller-manager's signers serve them: a request records who made it, is
//! approved or denied through its `/approval` subresource (`kubectl certificate
//! approve`) by someone RBAC lets `approve` its signer, and once approved is signed by
//! the cluster CA when its signer is one of Kubernetes' own —
//! `kubernetes.io/kube-apiserver-client`, `…/kube-apiserver-client-kubelet` and
//! `kubernetes.io/kubelet-serving` — within a second.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use serde_json::{Value, json};

use crate::Shared;
use crate::identity::{Access, Identity};
use crate::kinds::{Hooks, Schema};
use crate::pki::Purpose;
use crate::status::Status;

/// Where the cache keeps the requests.
const DIRECTORY: &str = "/registry/certificatesigningrequests/";

/// How long a signed certificate lives unless the request asks for less (the
/// controller manager's `--cluster-signing-duration`).
const LONGEST: Duration = Duration::from_secs(365 * 24 * 3600);

/// The signers this server signs for, and what their certificates are for.
fn purpose_of(signer: &str) -> Option<Purpose> {
    match signer {
        "kubernetes.io/kube-apiserver-client" | "kubernetes.io/kube-apiserver-client-kubelet" => {
            Some(Purpose::Client)
        }
        "kubernetes.io/kubelet-serving" => Some(Purpose::Serving),
        _ => None,
    }
}

/// Records the requester in a new request, as kube-apiserver does whatever it said.
pub(crate) fn record_requester(identity: &Identity, request: &mut Value) {
    let user = identity.info();
    request["spec"]["username"] = json!(user.name);
    request["spec"]["groups"] = json!(user.groups);
    if let Some(spec) = request["spec"].as_object_mut() {
        spec.remove("uid");
    }
}

/// Refuses an approval or denial by someone RBAC does not let `approve` the request's
/// signer.
pub(crate) fn may_approve(
    shared: &Shared,
    identity: &Identity,
    request: &Value,
) -> Result<(), Status> {
    let signer = request["spec"]["signerName"].as_str().unwrap_or_default();
    let access = Access {
        verb: "approve",
        group: "certificates.k8s.io",
        plural: "signers",
        subresource: None,
        namespace: None,
        name: Some(signer),
    };
    if crate::authorization::authorize(shared, identity, access) {
        return Ok(());
    }
    let name = request["metadata"]["name"].as_str().unwrap_or_default();
    Err(Status::new(
        axum::http::StatusCode::FORBIDDEN,
        "Forbidden",
        format!(
            "certificatesigningrequests.certificates.k8s.io \"{name}\" is forbidden: user not permitted to approve requests with signerName \"{signer}\""
        ),
    ))
}

/// Signs approved requests for the server's signers, once a second.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    loop {
        ticks.tick().await;
        for request in shared
            .cache
            .typed_list::<CertificateSigningRequest>(DIRECTORY)
        {
            if let Some(purpose) = awaiting(&request)
                && let Err(error) = sign(&shared, &request, purpose).await
            {
                tracing::warn!(%error, csr = ?request.metadata.name, "could not sign a certificate request");
            }
        }
    }
}

/// What `request` is to be signed for, if it is approved, not yet signed, not denied
/// or failed, and for one of the server's signers.
fn awaiting(request: &CertificateSigningRequest) -> Option<Purpose> {
    let status = request.status.as_ref()?;
    if status.certificate.as_ref().is_some_and(|c| !c.0.is_empty()) {
        return None;
    }
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let holds = |kind: &str| {
        conditions
            .iter()
            .any(|c| c.type_ == kind && c.status == "True")
    };
    if !holds("Approved") || holds("Denied") || holds("Failed") {
        return None;
    }
    purpose_of(&request.spec.signer_name)
}

/// Signs `request` and stores the certificate in its status.
async fn sign(
    shared: &Shared,
    request: &CertificateSigningRequest,
    purpose: Purpose,
) -> Result<(), String> {
    let name = request.metadata.name.as_deref().unwrap_or_default();
    let pem = String::from_utf8_lossy(&request.spec.request.0).into_owned();
    let lifetime = request
        .spec
        .expiration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(LONGEST, |s| Duration::from_secs(s).min(LONGEST));
    let certificate = crate::pki::sign_request(&shared.tls_dir, &pem, purpose, lifetime)
        .map_err(|e| e.to_string())?;
    let key = format!("{DIRECTORY}{name}");
    let place = ("certificatesigningrequests", key.as_str());
    crate::stored::edit(shared.store.as_ref(), place, |object| {
        object["status"]["certificate"] = json!(base64_of(certificate.as_bytes()));
        Ok(true)
    })
    .await
    .map_err(|status| status.message().to_string())
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl Schema for CertificateSigningRequest {
    const HAS_STATUS: bool = true;
    const HOOKS: Hooks = Hooks::SigningRequests;

    fn default_fields(&mut self) {
        if self.spec.usages.as_ref().is_none_or(Vec::is_empty) {
            self.spec.usages = Some(vec!["digital signature".into(), "key encipherment".into()]);
        }
    }

    fn problems(&self) -> Vec<String> {
        let spec = &self.spec;
        let mut problems = Vec::new();
        let pem = String::from_utf8_lossy(&spec.request.0);
        if rcgen::CertificateSigningRequestParams::from_pem(&pem).is_err() {
            problems.push(
                "spec.request: Invalid value: []byte{...}: PEM block type must be CERTIFICATE REQUEST"
                    .to_string(),
            );
        }
        if spec.signer_name.is_empty() {
            problems.push("spec.signerName: Required value".to_string());
        } else if !spec.signer_name.contains('/') {
            problems.push(format!(
                "spec.signerName: Invalid value: {:?}: must be a fully qualified domain and path of the form 'example.com/signer-name'",
                spec.signer_name
            ));
        }
        if let Some(seconds) = spec.expiration_seconds
            && seconds < 600
        {
            problems.push(format!(
                "spec.expirationSeconds: Invalid value: {seconds}: may not specify a duration less than 600 seconds (10 minutes)"
            ));
        }
        problems
    }
}
