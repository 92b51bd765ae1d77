//! Joining a cluster with nothing but the server's URL and its join token.
//!
//! The token is k3s's: `K10<sha256 of the cluster CA certificate, hex>::server:<secret>`.
//! The agent fetches the CA from the server's unauthenticated `/cacerts` without trusting
//! the connection, keeps it only if its hash is the one the token names, and from then on
//! trusts that CA alone: no CA file copied by hand, and no server that is not the
//! cluster's. A bare secret (the server's `node-token`) still works with a CA file.

use std::path::Path;

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Why an agent could not join.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The token is not a join token.
    #[error("invalid join token: {0}")]
    Token(String),
    /// The server could not be reached, or its CA could not be read.
    #[error("fetch the cluster CA from {server}: {reason}")]
    Fetch {
        /// The server's URL.
        server: String,
        /// What went wrong.
        reason: String,
    },
    /// The server's CA is not the one the token pins: a wrong server or a wrong token.
    #[error(
        "the server's CA (sha256 {actual}) is not the one the join token names ({expected}): wrong server or wrong token"
    )]
    CaMismatch {
        /// The hash the token names.
        expected: String,
        /// The hash of what the server sent.
        actual: String,
    },
    /// The server refused the token's secret.
    #[error("the server refused the join token: {0}")]
    Refused(String),
    /// The CA file named on the command line could not be read.
    #[error("read the CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// What the OS said.
        reason: String,
    },
    /// Neither the token nor a file says which CA to trust.
    #[error(
        "the token does not pin the cluster CA: pass the full token (K10…, the server's <data-dir>/token) or --certificate-authority"
    )]
    NoCa,
    /// The client could not be configured.
    #[error("configure the API client: {0}")]
    Client(String),
}

/// A join token: the secret, and the CA's hash when the token pins it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// sha256 of the cluster CA certificate (PEM), hex.
    pub ca_sha256: Option<String>,
    /// The secret the server knows the agent by.
    pub secret: String,
}

impl JoinToken {
    /// Reads a token in k3s's full form or a bare secret.
    pub fn parse(text: &str) -> Result<Self, JoinError> {
        let text = text.trim();
        let Some(rest) = text.strip_prefix("K10") else {
            return if text.is_empty() || text.contains(char::is_whitespace) {
                Err(JoinError::Token("empty or with spaces".into()))
            } else {
                Ok(Self {
                    ca_sha256: None,
                    secret: text.to_string(),
                })
            };
        };
        let (hash, credentials) = rest.split_once("::").ok_or_else(|| {
            JoinError::Token("K10 tokens read K10<ca hash>::server:<secret>".into())
        })?;
        let secret = credentials
            .strip_prefix("server:")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| JoinError::Token("the part after :: must be server:<secret>".into()))?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(JoinError::Token("the CA hash must be 64 hex digits".into()));
        }
        Ok(Self {
            ca_sha256: Some(hash.to_ascii_lowercase()),
            secret: secret.to_string(),
        })
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A client of the cluster at `server` as node `node`: joined with `token` (see
/// [`join`]), which is then traded for the node's own credentials (a client certificate
/// of `system:node:NAME`), so that the agent reaches only its own Node, Lease and pods.
pub async fn join_as_node(
    server: &str,
    (token, ca_file): (&JoinToken, Option<&Path>),
    node: &str,
) -> Result<kube::Client, JoinError> {
    let (joined, ca) = join_with_ca(server, token, ca_file).await?;
    let body = serde_json::json!({ "node": node });
    let request = http::Request::post("/berth/v1/node-credentials")
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(&body).unwrap_or_default())
        .map_err(|e| JoinError::Client(e.to_string()))?;
    let issued: NodeCredentials = joined
        .request(request)
        .await
        .map_err(|e| JoinError::Refused(format!("node credentials: {e}")))?;
    let encode = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
    let user = format!(
        "client-certificate-data: {}\n    client-key-data: {}",
        encode(&issued.cert),
        encode(&issued.key)
    );
    client(server, &ca, &user).await
}

/// What the server issues a node.
#[derive(serde::Deserialize)]
struct NodeCredentials {
    cert: String,
    key: String,
}

/// A client of the cluster at `server` authenticated by `token`, trusting the CA the
/// token pins or the one in `ca_file`; it has been checked to be accepted.
pub async fn join(
    server: &str,
    token: &JoinToken,
    ca_file: Option<&Path>,
) -> Result<kube::Client, JoinError> {
    Ok(join_with_ca(server, token, ca_file).await?.0)
}

/// [`join`]'s client, and the CA it trusts (PEM).
async fn join_with_ca(
    server: &str,
    token: &JoinToken,
    ca_file: Option<&Path>,
) -> Result<(kube::Client, String), JoinError> {
    let ca = match (&token.ca_sha256, ca_file) {
        (Some(expected), _) => pinned_ca(server, expected).await?,
        (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| JoinError::CaFile {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?,
        (None, None) => return Err(JoinError::NoCa),
    };
    let client = client(server, &ca, &format!("token: {}", token.secret)).await?;
    client
        .apiserver_version()
        .await
        .map_err(|e| JoinError::Refused(e.to_string()))?;
    // /version needs no rights beyond a valid token; a node list needs the join token's.
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    nodes
        .list_metadata(&kube::api::ListParams::default().limit(1))
        .await
        .map_err(|e| JoinError::Refused(e.to_string()))?;
    Ok((client, ca))
}

/// The server's CA, fetched without trusting the connection and kept only if its hash
/// is `expected`.
async fn pinned_ca(server: &str, expected: &str) -> Result<String, JoinError> {
    let fetch_error = |reason: String| JoinError::Fetch {
        server: server.to_string(),
        reason,
    };
    let url: http::Uri = server
        .parse()
        .map_err(|e: http::uri::InvalidUri| fetch_error(e.to_string()))?;
    let mut config = kube::Config::new(url);
    config.accept_invalid_certs = true;
    let untrusted = kube::Client::try_from(config).map_err(|e| fetch_error(e.to_string()))?;
    let request = http::Request::get("/cacerts")
        .body(Vec::new())
        .map_err(|e| fetch_error(e.to_string()))?;
    let ca = untrusted
        .request_text(request)
        .await
        .map_err(|e| fetch_error(e.to_string()))?;
    let actual = sha256_hex(ca.as_bytes());
    if actual != expected {
        return Err(JoinError::CaMismatch {
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(ca)
}

/// A client of `server` that trusts `ca_pem` alone and presents `user` (a kubeconfig
/// user's fields: a token, or a client certificate and key).
async fn client(server: &str, ca_pem: &str, user: &str) -> Result<kube::Client, JoinError> {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: berth\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: agent\n  user:\n    {user}\ncontexts:\n- name: berth\n  context: {{cluster: berth, user: agent}}\ncurrent-context: berth\n"
    );
    let client_error = |e: &dyn std::fmt::Display| JoinError::Client(e.to_string());
    let kubeconfig =
        kube::config::Kubeconfig::from_yaml(&kubeconfig).map_err(|e| client_error(&e))?;
    let options = kube::config::KubeConfigOptions::default();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| client_error(&e))?;
    kube::Client::try_from(config).map_err(|e| client_error(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_tokens_pin_the_ca_and_bare_ones_do_not() {
        // As the server writes it (berth-apiserver's join_token).
        let full = format!(
            "K10{}::server:s3cret",
            sha256_hex(b"-----BEGIN CERTIFICATE-----\n")
        );
        let parsed = JoinToken::parse(&full).unwrap();
        assert_eq!(parsed.secret, "s3cret");
        assert_eq!(
            parsed.ca_sha256.as_deref(),
            Some(sha256_hex(b"-----BEGIN CERTIFICATE-----\n").as_str())
        );
        assert_eq!(
            JoinToken::parse("abc123\n").unwrap(),
            JoinToken {
                ca_sha256: None,
                secret: "abc123".into()
            }
        );
        for bad in [
            "",
            "K10abc::server:x",
            "K10",
            &format!("K10{}::node:x", "a".repeat(64)),
        ] {
            assert!(JoinToken::parse(bad).is_err(), "{bad:?}");
        }
    }
}
