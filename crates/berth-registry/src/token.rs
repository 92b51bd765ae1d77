//! Token authentication, as distribution's `auth.token`: a client without a token is
//! sent (401, `WWW-Authenticate: Bearer realm=…,service=…,scope=…`) to an authorization
//! server, which hands it a JWT; the registry checks that token's signature against the
//! certificates of its root bundle, its issuer, audience (the service) and times, and that
//! its `access` claim grants what the request needs — `pull` to read a repository, `push`
//! (and pull) to write, `delete` to delete.

use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;

/// What a request needs: of a repository, or of the registry (its catalog).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scope {
    /// `repository` or `registry`.
    pub kind: &'static str,
    /// The repository, or `catalog`.
    pub name: String,
    /// The actions, `pull`, `push`, `delete`.
    pub actions: Vec<&'static str>,
}

impl Scope {
    /// Listing the repositories, as distribution scopes it.
    pub(crate) fn catalog() -> Self {
        Self {
            kind: "registry",
            name: "catalog".into(),
            actions: vec!["*"],
        }
    }
}

/// The registry's token authentication settings and the keys it trusts.
pub(crate) struct TokenAuth {
    realm: String,
    service: String,
    issuer: String,
    keys: Vec<DecodingKey>,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    access: Vec<Access>,
}

#[derive(Deserialize)]
struct Access {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    #[serde(default)]
    actions: Vec<String>,
}

impl TokenAuth {
    /// Token authentication by the server at `realm`, for `service`, trusting tokens
    /// `issuer` signed with a key of a certificate in `bundle` (PEM; RSA or EC).
    pub(crate) fn new(
        realm: &str,
        service: &str,
        issuer: &str,
        bundle: &Path,
    ) -> Result<Self, String> {
        let text = std::fs::read(bundle).map_err(|e| format!("{}: {e}", bundle.display()))?;
        let blocks = pem::parse_many(&text).map_err(|e| format!("{}: {e}", bundle.display()))?;
        let keys: Vec<DecodingKey> = blocks
            .iter()
            .filter(|block| block.tag() == "CERTIFICATE")
            .map(|block| {
                let one = pem::encode(block);
                DecodingKey::from_rsa_pem(one.as_bytes())
                    .or_else(|_| DecodingKey::from_ec_pem(one.as_bytes()))
                    .map_err(|e| format!("{}: a certificate: {e}", bundle.display()))
            })
            .collect::<Result<_, _>>()?;
        if keys.is_empty() {
            return Err(format!("{}: no certificate to trust", bundle.display()));
        }
        Ok(Self {
            realm: realm.into(),
            service: service.into(),
            issuer: issuer.into(),
            keys,
        })
    }

    /// Whether the `Authorization` header carries a token that grants `scope` (any
    /// valid token, for the API's root with no scope).
    pub(crate) fn allows(&self, authorization: Option<&str>, scope: Option<&Scope>) -> bool {
        let Some(token) = authorization.and_then(|a| a.strip_prefix("Bearer ")) else {
            return false;
        };
        let Some(claims) = self.claims(token.trim()) else {
            return false;
        };
        let Some(scope) = scope else {
            return true;
        };
        scope.actions.iter().all(|wanted| {
            claims.access.iter().any(|access| {
                access.kind == scope.kind
                    && access.name == scope.name
                    && access.actions.iter().any(|a| a == wanted || a == "*")
            })
        })
    }

    fn claims(&self, token: &str) -> Option<Claims> {
        let algorithm = decode_header(token).ok()?.alg;
        let supported = [
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::ES256,
            Algorithm::ES384,
        ];
        if !supported.contains(&algorithm) {
            return None;
        }
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.service]);
        self.keys
            .iter()
            .find_map(|key| decode::<Claims>(token, key, &validation).ok())
            .map(|data| data.claims)
    }

    /// The challenge of a 401: where to get a token, for what.
    pub(crate) fn challenge(&self, scope: Option<&Scope>) -> String {
        let mut challenge = format!(
            "Bearer realm=\"{}\",service=\"{}\"",
            self.realm, self.service
        );
        if let Some(scope) = scope {
            challenge.push_str(&format!(
                ",scope=\"{}:{}:{}\"",
                scope.kind,
                scope.name,
                scope.actions.join(",")
            ));
        }
        challenge
    }
}
