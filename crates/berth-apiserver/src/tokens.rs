//! ServiceAccount tokens, as kube-apiserver issues them: bound, expiring JWTs (ES256)
//! signed by the server's service-account key (`<data-dir>/tls/service-account.key`),
//! issued through the TokenRequest API (`serviceaccounts/NAME/token`), accepted as
//! bearer tokens while they have not expired and the pod they are bound to still
//! exists, and verifiable by anyone through OIDC discovery
//! (`/.well-known/openid-configuration`, `/openid/v1/jwks`). Legacy tokens — the
//! non-expiring ones kept in Secrets of type `kubernetes.io/service-account-token` —
//! are issued only when such a Secret is created, and accepted while it and its account
//! exist.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestStatus};
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::cache::Cache;
use crate::identity::Identity;
use crate::status::Status;
use crate::stored::Place;
use crate::{Error, Result, Shared};

/// The issuer of the cluster's tokens, which is also the audience the API server
/// accepts when a token names none, as kube-apiserver's `--service-account-issuer` and
/// `--api-audiences` default to.
pub(crate) const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// How long a token lives when its request does not say (kube-apiserver's default).
const DEFAULT_EXPIRATION: i64 = 3600;

/// The shortest life a request may ask for.
const SHORTEST_EXPIRATION: i64 = 600;

/// How many verified tokens the server remembers before it starts afresh.
const VERIFIED_CAPACITY: usize = 1_024;

/// The server's signing key and what verifiers need of it.
pub(crate) struct Signer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    key_id: String,
    /// The public point's coordinates, base64url, for the JWKS.
    x: String,
    y: String,
    /// Tokens whose signature and issuer were checked, with their claims: verifying
    /// an ES256 signature costs more than the rest of a request.
    verified: Mutex<HashMap<String, Arc<Claims>>>,
}

/// A token's claims, kube-apiserver's names.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Claims {
    aud: Vec<String>,
    exp: i64,
    iat: i64,
    iss: String,
    jti: String,
    nbf: i64,
    sub: String,
    #[serde(rename = "kubernetes.io")]
    kubernetes: KubernetesClaims,
}

/// The private claims: whose token it is and what it is bound to.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KubernetesClaims {
    namespace: String,
    serviceaccount: Reference,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pod: Option<Reference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    node: Option<Reference>,
}

/// The issuer of legacy tokens, as kube-apiserver names it.
const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";

/// A legacy token's claims, kube-apiserver's names: no audience, no expiry; it is good
/// while its Secret is.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LegacyClaims {
    iss: String,
    sub: String,
    #[serde(rename = "kubernetes.io/serviceaccount/namespace")]
    namespace: String,
    #[serde(rename = "kubernetes.io/serviceaccount/secret.name")]
    secret: String,
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.name")]
    account: String,
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.uid")]
    account_uid: String,
}

/// An object by name and uid.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Reference {
    name: String,
    uid: String,
}

/// Seconds since the Unix epoch, as JWT claims count time.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn base64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn key_error(error: impl std::fmt::Display) -> Error {
    Error::Setup(format!("the service-account key: {error}"))
}

impl Signer {
    /// The key under `dir`, made (ECDSA P-256) when missing.
    pub(crate) fn ensure(dir: &Path) -> Result<Self> {
        let path = dir.join("service-account.key");
        let pem = match std::fs::read_to_string(&path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let pem = rcgen::KeyPair::generate()
                    .map_err(key_error)?
                    .serialize_pem();
                crate::write_private(&path, pem.as_bytes())?;
                pem
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        let key = rcgen::KeyPair::from_pem(&pem).map_err(key_error)?;
        let point = key.public_key_raw();
        let [0x04, coordinates @ ..] = point else {
            return Err(key_error("not an uncompressed P-256 point"));
        };
        if coordinates.len() != 64 {
            return Err(key_error("not a P-256 key"));
        }
        let (x, y) = coordinates.split_at(32);
        let (x, y) = (base64url(x), base64url(y));
        let key_id = {
            use sha2::Digest as _;
            base64url(&sha2::Sha256::digest(
                rcgen::PublicKeyData::subject_public_key_info(&key),
            ))
        };
        Ok(Self {
            encoding: EncodingKey::from_ec_pem(pem.as_bytes()).map_err(key_error)?,
            decoding: DecodingKey::from_ec_components(&x, &y).map_err(key_error)?,
            key_id,
            x,
            y,
            verified: Mutex::default(),
        })
    }

    fn sign(&self, claims: &impl Serialize) -> std::result::Result<String, Status> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|e| {
            Status::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                format!("sign the token: {e}"),
            )
        })
    }

    /// The claims of a token this server signed for one of `audiences`, if it has not
    /// expired.
    fn verify(&self, token: &str, audiences: &[&str]) -> Option<Arc<Claims>> {
        let claims = self.signed(token)?;
        let now = unix_now();
        let current = claims.nbf <= now && now <= claims.exp;
        let meant = claims.aud.iter().any(|a| audiences.contains(&a.as_str()));
        (current && meant).then_some(claims)
    }

    /// The claims of a token this server signed, its signature checked once.
    fn signed(&self, token: &str) -> Option<Arc<Claims>> {
        let verified = || {
            self.verified
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(claims) = verified().get(token) {
            return Some(Arc::clone(claims));
        }
        let mut validation = Validation::new(Algorithm::ES256);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_issuer(&[ISSUER]);
        let claims = Arc::new(
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
                .ok()?
                .claims,
        );
        let mut verified = verified();
        if verified.len() >= VERIFIED_CAPACITY {
            verified.clear();
        }
        verified.insert(token.to_string(), Arc::clone(&claims));
        Some(claims)
    }

    /// Who a bearer token stands for, if it is a live ServiceAccount token of this
    /// cluster for the API: a token bound to a pod lives only as long as that pod.
    pub(crate) fn identity_of(&self, token: &str, cache: &Cache) -> Option<Identity> {
        self.review(token, cache, &[ISSUER])
            .map(|(identity, _)| identity)
    }

    /// A legacy token for `account` (namespace, name, uid), to be kept in the Secret
    /// `secret`.
    pub(crate) fn legacy_token(
        &self,
        (namespace, account, account_uid): (&str, &str, &str),
        secret: &str,
    ) -> std::result::Result<String, Status> {
        self.sign(&LegacyClaims {
            iss: LEGACY_ISSUER.into(),
            sub: format!("system:serviceaccount:{namespace}:{account}"),
            namespace: namespace.into(),
            secret: secret.into(),
            account: account.into(),
            account_uid: account_uid.into(),
        })
    }

    /// Who a legacy token stands for, if it is this server's and its Secret (still
    /// holding it) and its account (the same uid) exist: deleting either revokes it.
    fn legacy_identity(&self, token: &str, cache: &Cache) -> Option<Identity> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        validation.set_issuer(&[LEGACY_ISSUER]);
        let claims = jsonwebtoken::decode::<LegacyClaims>(token, &self.decoding, &validation)
            .ok()?
            .claims;
        let secret: Secret = cache.typed(&format!(
            "/registry/secrets/{}/{}",
            claims.namespace, claims.secret
        ))?;
        let kept = secret.data.as_ref()?.get("token")?;
        let account: Named = cache.typed(&format!(
            "/registry/serviceaccounts/{}/{}",
            claims.namespace, claims.account
        ))?;
        let same_account = account.metadata.uid.as_deref() == Some(claims.account_uid.as_str());
        (kept.0 == token.as_bytes() && same_account).then_some(Identity::ServiceAccount {
            namespace: claims.namespace,
            name: claims.account,
        })
    }

    /// Who a token stands for if it is live and meant for one of `audiences`, and which
    /// of them it names: a TokenReview's answer.
    pub(crate) fn review(
        &self,
        token: &str,
        cache: &Cache,
        audiences: &[&str],
    ) -> Option<(Identity, Vec<String>)> {
        let Some(claims) = self.verify(token, audiences) else {
            // A legacy token is meant for the API alone.
            let identity = audiences
                .contains(&ISSUER)
                .then(|| self.legacy_identity(token, cache))??;
            return Some((identity, vec![ISSUER.to_string()]));
        };
        let scope = &claims.kubernetes;
        if let Some(pod) = &scope.pod {
            let key = format!("/registry/pods/{}/{}", scope.namespace, pod.name);
            // The metadata alone: this runs at every request such a token makes.
            let named: Named = cache.typed(&key)?;
            let alive = named.metadata.uid.as_deref() == Some(pod.uid.as_str());
            if !alive {
                return None;
            }
        }
        let identity = Identity::ServiceAccount {
            namespace: scope.namespace.clone(),
            name: scope.serviceaccount.name.clone(),
        };
        let named = claims
            .aud
            .iter()
            .filter(|a| audiences.contains(&a.as_str()))
            .cloned()
            .collect();
        Some((identity, named))
    }
}

/// An object's metadata, the rest of it skipped.
#[derive(Deserialize)]
struct Named {
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
}

/// `POST .../serviceaccounts/NAME/token`: a token of the account, for the audiences
/// asked (the API's by default), bound to a pod when asked. A node may ask only for the
/// account of a pod bound to it, bound to that pod.
pub(crate) async fn request(
    shared: &Shared,
    place: &Place,
    name: &str,
    identity: &Identity,
    mut body: serde_json::Value,
) -> std::result::Result<Response, Status> {
    let namespace = place.namespace.clone().unwrap_or_default();
    if let Some(fields) = body.as_object_mut() {
        // What a client sends as status (an empty one, from protobuf) is the server's to
        // fill.
        fields.remove("status");
    }
    let mut request: TokenRequest = serde_json::from_value(body)
        .map_err(|e| Status::bad_request(format!("the TokenRequest: {e}")))?;
    let (_, _, account) = crate::stored::current(shared, place, name).await?;
    let account: ServiceAccount = serde_json::from_value(account)
        .map_err(|e| Status::bad_request(format!("the ServiceAccount: {e}")))?;
    let spec = &request.spec;
    let lifetime = spec.expiration_seconds.unwrap_or(DEFAULT_EXPIRATION);
    if lifetime < SHORTEST_EXPIRATION || lifetime > i64::from(u32::MAX) {
        return Err(Status::invalid(
            "TokenRequest",
            name,
            format!(
                "spec.expirationSeconds: Invalid value: {lifetime}: may not specify a duration less than 10 minutes"
            ),
        ));
    }
    let pod = bound_pod(shared, &namespace, name, spec).await?;
    if let Identity::Node(node) = identity {
        let bound_here = pod
            .as_ref()
            .is_some_and(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node));
        if !bound_here {
            return Err(Status::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!(
                    "serviceaccounts \"{name}\" is forbidden: User \"{}\" may only request tokens bound to pods on node {node}",
                    identity.user()
                ),
            ));
        }
    }
    let issued = unix_now();
    let at = |second: i64| {
        k8s_openapi::jiff::Timestamp::from_second(second)
            .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time)
            .map_err(|e| Status::bad_request(e.to_string()))
    };
    let audiences = match &spec.audiences {
        audiences if audiences.is_empty() => vec![ISSUER.to_string()],
        audiences => audiences.clone(),
    };
    let reference = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| Reference {
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
    };
    let claims = Claims {
        aud: audiences.clone(),
        exp: issued + lifetime,
        iat: issued,
        iss: ISSUER.into(),
        jti: crate::objects::uid()?,
        nbf: issued,
        sub: format!("system:serviceaccount:{namespace}:{name}"),
        kubernetes: KubernetesClaims {
            namespace: namespace.clone(),
            serviceaccount: reference(&account.metadata),
            node: pod
                .as_ref()
                .and_then(|p| p.spec.as_ref()?.node_name.clone())
                .map(|node| Reference {
                    name: node,
                    uid: String::new(),
                }),
            pod: pod.as_ref().map(|p| reference(&p.metadata)),
        },
    };
    let token = shared.signer.sign(&claims)?;
    request.metadata.name = Some(name.to_string());
    request.metadata.namespace = Some(namespace);
    request.metadata.creation_timestamp = Some(at(issued)?);
    request.spec.audiences = audiences;
    request.spec.expiration_seconds = Some(lifetime);
    request.status = Some(TokenRequestStatus {
        token,
        expiration_timestamp: at(issued + lifetime)?,
    });
    let mut body = serde_json::to_value(&request).unwrap_or_default();
    body["apiVersion"] = json!("authentication.k8s.io/v1");
    body["kind"] = json!("TokenRequest");
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

/// The pod a request binds its token to, checked as kube-apiserver checks it: it
/// exists, its uid is the one named, and it runs as the account.
async fn bound_pod(
    shared: &Shared,
    namespace: &str,
    account: &str,
    spec: &k8s_openapi::api::authentication::v1::TokenRequestSpec,
) -> std::result::Result<Option<Pod>, Status> {
    let Some(bound) = &spec.bound_object_ref else {
        return Ok(None);
    };
    if bound.kind.as_deref() != Some("Pod") {
        return Err(Status::bad_request(format!(
            "cannot bind a token to a {:?}: berth binds tokens to pods only",
            bound.kind.as_deref().unwrap_or_default()
        )));
    }
    let name = bound.name.clone().unwrap_or_default();
    let place = Place {
        resource: crate::resources::resource("pods")?,
        namespace: Some(namespace.to_string()),
    };
    let (_, _, pod) = crate::stored::current(shared, &place, &name).await?;
    let pod: Pod = serde_json::from_value(pod)
        .map_err(|e| Status::bad_request(format!("the bound pod: {e}")))?;
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    if bound
        .uid
        .as_deref()
        .is_some_and(|wanted| !wanted.is_empty() && wanted != uid)
    {
        return Err(Status::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "the UID in the bound object reference ({}) does not match the UID in record. The object might have been deleted and then recreated",
                bound.uid.as_deref().unwrap_or_default()
            ),
        ));
    }
    let runs_as = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.as_deref())
        .unwrap_or("default");
    if runs_as != account {
        return Err(Status::bad_request(format!(
            "pod {name} runs as service account {runs_as:?}, not {account:?}"
        )));
    }
    Ok(Some(pod))
}

/// OIDC discovery of the issuer, so others can verify the cluster's tokens.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .route("/openid/v1/jwks", get(jwks))
}

async fn openid_configuration() -> Response {
    axum::Json(json!({
        "issuer": ISSUER,
        "jwks_uri": format!("{ISSUER}/openid/v1/jwks"),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    }))
    .into_response()
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    let signer = &shared.signer;
    (
        [(axum::http::header::CONTENT_TYPE, "application/jwk-set+json")],
        axum::Json(json!({"keys": [{
            "use": "sig",
            "kty": "EC",
            "kid": signer.key_id,
            "crv": "P-256",
            "alg": "ES256",
            "x": signer.x,
            "y": signer.y,
        }]})),
    )
        .into_response()
}
