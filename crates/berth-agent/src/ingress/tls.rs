//! The certificates of the HTTPS listener. Each served Ingress's `spec.tls` entries name
//! a Secret (type `kubernetes.io/tls`: `tls.crt`, `tls.key`) for some of its hosts; the
//! node watches each named Secret by itself — all the Node authorizer lets a node read,
//! and as the kubelet watches its pods' Secrets — and the handshake picks the
//! certificate by the client's SNI name, as the Ingress's routing ranks hosts: exact,
//! then wildcard, then an entry that names no host. A host whose Secret is missing or
//! unusable gets no certificate, so its handshakes fail; it is still served over plain
//! HTTP, and the controller manager records the missing Secret in an event.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use super::Routes;

/// A Secret by namespace and name.
type SecretKey = (String, String);

/// The Secrets the served Ingresses name, each followed by a watch of its own, and the
/// certificates made of them.
pub(super) struct Certificates {
    client: Client,
    routes: Routes,
    provider: Arc<CryptoProvider>,
    followed: Mutex<HashMap<SecretKey, Followed>>,
}

/// One followed Secret: its watch's store, and its certificate as last parsed (by the
/// Secret's resourceVersion), None when it is unusable.
struct Followed {
    store: Store<Secret>,
    watch: AbortHandle,
    parsed: Option<(String, Option<Arc<CertifiedKey>>)>,
}

impl Certificates {
    pub(super) fn new(client: Client, routes: Routes) -> Arc<Self> {
        Arc::new(Self {
            client,
            routes,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            followed: Mutex::new(HashMap::new()),
        })
    }

    /// The HTTPS listener's TLS: these certificates, chosen per handshake.
    pub(super) fn server_config(
        self: &Arc<Self>,
    ) -> Result<axum_server::tls_rustls::RustlsConfig, rustls::Error> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(axum_server::tls_rustls::RustlsConfig::from_config(
            Arc::new(config),
        ))
    }

    /// Follows the Secrets the served Ingresses name, from now on: a watch starts for a
    /// newly named one and stops for one no longer named, each time `served` wakes.
    pub(super) async fn follow(self: Arc<Self>, served: Arc<Notify>) {
        loop {
            self.sync();
            served.notified().await;
        }
    }

    fn sync(&self) {
        let wanted: BTreeSet<SecretKey> = self
            .routes
            .served()
            .iter()
            .flat_map(|ingress| named_secrets(ingress))
            .collect();
        let mut followed = self.followed.lock().unwrap_or_else(PoisonError::into_inner);
        followed.retain(|key, secret| {
            let keep = wanted.contains(key);
            if !keep {
                secret.watch.abort();
            }
            keep
        });
        for key in wanted {
            followed
                .entry(key)
                .or_insert_with_key(|key| follow_secret(&self.client, key));
        }
    }

    /// The certificate for `host`, if a served Ingress names a usable one.
    fn certificate(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        let key = secret_for(&self.routes.served(), host)?;
        let mut followed = self.followed.lock().unwrap_or_else(PoisonError::into_inner);
        let followed = followed.get_mut(&key)?;
        let secret = followed.store.get(&ObjectRef::new(&key.1).within(&key.0))?;
        let version = secret.resource_version().unwrap_or_default();
        match &followed.parsed {
            Some((parsed, certificate)) if *parsed == version => certificate.clone(),
            _ => {
                let certificate = match certified(&secret, &self.provider) {
                    Ok(certificate) => Some(Arc::new(certificate)),
                    Err(error) => {
                        tracing::warn!(secret = %key.1, namespace = %key.0, %error, "an Ingress's TLS Secret is unusable");
                        None
                    }
                };
                followed.parsed = Some((version, certificate.clone()));
                certificate
            }
        }
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.certificate(&hello.server_name()?.to_ascii_lowercase())
    }
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates").finish_non_exhaustive()
    }
}

/// The Secrets an Ingress's TLS entries name.
fn named_secrets(ingress: &Ingress) -> impl Iterator<Item = SecretKey> + '_ {
    let namespace = ingress.namespace().unwrap_or_default();
    let entries = ingress.spec.iter().flat_map(|s| s.tls.iter().flatten());
    entries
        .filter_map(|entry| entry.secret_name.clone())
        .map(move |name| (namespace.clone(), name))
}

/// The Secret whose certificate `host` is served with: the best-matching host of any
/// TLS entry of `ingresses` (an entry naming no host matches every host, last).
fn secret_for(ingresses: &[Arc<Ingress>], host: &str) -> Option<SecretKey> {
    let mut best: Option<(u8, SecretKey)> = None;
    for ingress in ingresses {
        let namespace = ingress.namespace().unwrap_or_default();
        for entry in ingress.spec.iter().flat_map(|s| s.tls.iter().flatten()) {
            let Some(name) = &entry.secret_name else {
                continue;
            };
            let hosts = entry.hosts.as_deref().unwrap_or_default();
            let rank = if hosts.is_empty() {
                Some(0)
            } else {
                hosts
                    .iter()
                    .filter_map(|h| super::host_match(Some(h), host))
                    .max()
            };
            if let Some(rank) = rank.filter(|r| best.as_ref().is_none_or(|(b, _)| r > b)) {
                best = Some((rank, (namespace.clone(), name.clone())));
            }
        }
    }
    best.map(|(_, key)| key)
}

/// A watch of the one Secret `key`, into a store of its own.
fn follow_secret(client: &Client, (namespace, name): &SecretKey) -> Followed {
    let api = Api::<Secret>::namespaced(client.clone(), namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let (store, watch) = crate::reflect(api, config, None);
    Followed {
        store,
        watch,
        parsed: None,
    }
}

/// The certificate chain and key of a `kubernetes.io/tls` Secret.
fn certified(secret: &Secret, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let data = |key: &str| {
        secret
            .data
            .as_ref()
            .and_then(|data| data.get(key))
            .map(|bytes| bytes.0.as_slice())
            .ok_or_else(|| format!("it has no {key}"))
    };
    let chain = CertificateDer::pem_slice_iter(data("tls.crt")?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls.crt: {e}"))?;
    if chain.is_empty() {
        return Err("tls.crt holds no certificate".into());
    }
    let key =
        PrivateKeyDer::from_pem_slice(data("tls.key")?).map_err(|e| format!("tls.key: {e}"))?;
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("tls.key: {e}"))?;
    Ok(CertifiedKey::new(chain, signer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingress(json: serde_json::Value) -> Arc<Ingress> {
        Arc::new(serde_json::from_value(json).unwrap())
    }

    #[test]
    fn hosts_get_the_secret_of_their_best_matching_tls_entry() {
        let ingresses = [
            ingress(serde_json::json!({
                "metadata": {"name": "shop", "namespace": "web"},
                "spec": {"tls": [
                    {"hosts": ["shop.example.com"], "secretName": "shop-tls"},
                    {"hosts": ["*.example.com"], "secretName": "wild-tls"},
                ]},
            })),
            ingress(serde_json::json!({
                "metadata": {"name": "fallback", "namespace": "other"},
                "spec": {"tls": [{"secretName": "default-tls"}]},
            })),
        ];
        let secret = |host| {
            secret_for(&ingresses, host).map(|(namespace, name)| format!("{namespace}/{name}"))
        };
        assert_eq!(secret("shop.example.com").as_deref(), Some("web/shop-tls"));
        assert_eq!(secret("blog.example.com").as_deref(), Some("web/wild-tls"));
        assert_eq!(secret("other.org").as_deref(), Some("other/default-tls"));
        assert_eq!(
            secret("a.b.example.com").as_deref(),
            Some("other/default-tls")
        );
        assert_eq!(secret_for(&ingresses[..1], "other.org"), None);
    }

    #[test]
    fn a_secret_without_a_key_is_unusable_and_says_which() {
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "half"},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": ""},
        }))
        .unwrap();
        let provider = rustls::crypto::ring::default_provider();
        let error = certified(&secret, &provider).err().unwrap();
        assert!(
            error.contains("tls.crt holds no certificate") || error.contains("tls.key"),
            "{error}"
        );
    }
}
