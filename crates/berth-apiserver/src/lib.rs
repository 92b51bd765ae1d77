//! The Kubernetes-compatible API server: TLS with certificates of its own, bearer-token
//! authentication, discovery, and the resources' REST verbs (get, list, create, update,
//! delete, watch) over berth-store, in the shapes kubectl and client libraries expect.
//!
//! Depends on berth-store.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod accounts;
mod admission;
mod aggregation;
mod api_endpoints;
mod audit;
mod authentication;
mod authorization;
mod binding;
mod cache;
mod certificates;
mod custom;
mod dial;
mod discovery;
mod disruption;
mod escalation;
mod events;
mod forms;
mod handlers;
mod identity;
mod impersonation;
mod kinds;
mod kubelets;
mod managed;
mod metrics;
mod networking;
mod objects;
mod openapi;
mod pki;
mod podsecurity;
mod policies;
mod prepare;
mod priorities;
mod protobuf;
mod quota;
mod rbac;
mod registry;
mod requests;
mod resources;
mod reviews;
mod scrapes;
mod selectors;
mod services;
mod status;
mod storage;
mod stored;
mod strategic;
mod swagger;
mod system_objects;
mod tables;
mod telemetry;
mod tokens;
mod watch;
mod webhooks;
mod writes;

pub use audit::AuditConfig;
pub use authentication::client_kubeconfig;
pub use metrics::{CPU_USAGE, MEMORY_USAGE};
pub use pki::{Pki, issue_client_certificate};
pub use services::{DEFAULT_NODE_PORT_RANGE, DEFAULT_SERVICE_CIDR, NodePortRange, ServiceRanges};

/// The address `berth server` listens on when none is given (kube-apiserver's secure port).
pub const DEFAULT_BIND: &str = "127.0.0.1:6443";

/// The Kubernetes version the server reports, which kubectl's dispatcher picks its
/// client by.
pub const KUBERNETES_VERSION: (u32, u32) = (1, 32);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file of its state could not be read or written.
    #[error("{path}: {source}", path = .0.display(), source = .1)]
    Io(PathBuf, std::io::Error),
    /// The datastore refused.
    #[error(transparent)]
    Store(#[from] berth_store::Error),
    /// Certificates, TLS or the listener could not be set up.
    #[error("{0}")]
    Setup(String),
    /// The OS gave no random bytes, so no uid or token could be made.
    #[error("the OS's random source: {0}")]
    Random(String),
}

impl Error {
    pub(crate) fn io(path: &Path, error: std::io::Error) -> Self {
        Error::Io(path.to_path_buf(), error)
    }
}

/// The server's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How `berth server` runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Its state: certificates, tokens, the SQLite database.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `etcd://HOST:PORT,…`; the SQLite database in the data
    /// directory when None.
    pub datastore: Option<String>,
    /// Where it listens.
    pub bind: SocketAddr,
    /// Also write the admin kubeconfig here (k3s's `--write-kubeconfig`).
    pub write_kubeconfig: Option<PathBuf>,
    /// How often the datastore's history is compacted to where it was one interval ago
    /// (kube-apiserver's `--etcd-compaction-interval`); never when zero.
    pub compaction_interval: std::time::Duration,
    /// The audit policy and log (kube-apiserver's `--audit-policy-file` and
    /// `--audit-log-path`); nothing is audited when None.
    pub audit: Option<AuditConfig>,
    /// The cluster IPs and node ports Services are given.
    pub service_ranges: ServiceRanges,
    /// The cluster DNS's address: the `kube-dns` Service's cluster IP.
    pub cluster_dns: std::net::Ipv4Addr,
}

/// What the request handlers share.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn berth_store::Store>,
    pub(crate) cache: Arc<cache::Cache>,
    pub(crate) tokens: authentication::Tokens,
    /// The cluster CA certificate (PEM), which joining agents fetch from `/cacerts`.
    pub(crate) ca: String,
    /// Where the CA's key is, for the certificates it issues agents.
    pub(crate) tls_dir: std::path::PathBuf,
    /// The client the server dials agents with.
    pub(crate) kubelets: kubelets::Kubelets,
    /// The last resource metrics of each real node's agent.
    pub(crate) scrapes: scrapes::Scrapes,
    /// The key ServiceAccount tokens are signed with.
    pub(crate) signer: tokens::Signer,
    /// The server's own metrics, served at `/metrics`.
    pub(crate) telemetry: telemetry::Telemetry,
    /// RBAC's rules per user and namespace, kept while no role or binding changes.
    pub(crate) rules: rbac::Rules,
    /// The resources served: Kubernetes' own and those of CustomResourceDefinitions.
    pub(crate) registry: registry::Registry,
    /// The group versions APIServices hand to other servers.
    pub(crate) aggregated: aggregation::Aggregated,
    /// The PriorityClass new pods get when they name none, kept while none changes.
    pub(crate) default_priority: priorities::DefaultClass,
    /// The audit log and its policy, when the server keeps one.
    pub(crate) auditor: Option<Arc<audit::Auditor>>,
    /// The cluster IPs and node ports Services are given.
    pub(crate) service_ranges: ServiceRanges,
    /// Where the server listens: the `kubernetes` Service's target port.
    pub(crate) bind: SocketAddr,
}

/// Runs the server until `shutdown` completes.
pub async fn run(
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let datastore = config.datastore.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}",
            config.data_dir.join("db").join("state.db").display()
        )
    });
    let store = open_store(&datastore).await?;
    system_objects::ensure(store.as_ref()).await?;
    let pki = Pki::ensure(&config.data_dir.join("tls"), config.bind.ip())?;
    let tokens = authentication::Tokens::ensure(&config.data_dir)?;
    write_private(
        &config.data_dir.join("token"),
        format!("{}\n", authentication::join_token(&pki.ca, &tokens.node)).as_bytes(),
    )?;
    let kubeconfig = authentication::kubeconfig(&pki, ("admin", &tokens.admin), config.bind);
    write_private(
        &config.data_dir.join("admin.kubeconfig"),
        kubeconfig.as_bytes(),
    )?;
    let viewer = authentication::kubeconfig(&pki, ("viewer", &tokens.viewer), config.bind);
    write_private(
        &config.data_dir.join("viewer.kubeconfig"),
        viewer.as_bytes(),
    )?;
    if let Some(path) = &config.write_kubeconfig {
        write_private(path, kubeconfig.as_bytes())?;
    }
    let cache = cache::Cache::start(Arc::clone(&store));
    if !config.compaction_interval.is_zero() {
        tokio::spawn(compact_periodically(
            Arc::clone(&store),
            Arc::clone(&cache),
            config.compaction_interval,
        ));
    }
    let tls_dir = config.data_dir.join("tls");
    let auditor = match &config.audit {
        Some(audit) => Some(Arc::new(audit::Auditor::open(audit)?)),
        None => None,
    };
    let shared = Arc::new(Shared {
        store,
        cache,
        tokens,
        ca: pki.ca.clone(),
        kubelets: kubelets::Kubelets::new(&pki.ca, &tls_dir)?,
        scrapes: scrapes::Scrapes::default(),
        signer: tokens::Signer::ensure(&tls_dir)?,
        tls_dir,
        telemetry: telemetry::Telemetry::default(),
        rules: rbac::Rules::new(rbac::POLICY_DIRECTORIES),
        registry: registry::Registry::default(),
        aggregated: aggregation::aggregated(),
        default_priority: priorities::default_class(),
        auditor,
        service_ranges: config.service_ranges,
        bind: config.bind,
    });
    tokio::spawn(scrapes::run(Arc::clone(&shared)));
    tokio::spawn(aggregation::run(Arc::clone(&shared)));
    tokio::spawn(certificates::run(Arc::clone(&shared)));
    let own = Arc::clone(&shared);
    tokio::spawn(async move {
        services::make_own(&own, config.cluster_dns).await;
        tokio::spawn(api_endpoints::keep(Arc::clone(&own)));
        services::repair_periodically(own).await;
    });
    let router = discovery::routes()
        .merge(handlers::routes())
        .merge(openapi::routes())
        .merge(metrics::routes())
        .merge(kubelets::routes())
        .merge(tokens::routes())
        .merge(reviews::routes())
        .merge(telemetry::routes())
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shared),
            telemetry::record,
        ))
        .layer(axum::middleware::map_response(too_large_as_status))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shared),
            aggregation::route,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shared),
            audit::record,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shared),
            authentication::authenticate,
        ))
        .with_state(shared);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = tls_config(&pki)?;
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(std::time::Duration::from_secs(5)));
    });
    tracing::info!(address = %config.bind, datastore, "serving the Kubernetes API");
    let data = config.data_dir.display();
    tracing::info!(
        "use the cluster: export KUBECONFIG={data}/admin.kubeconfig; join nodes: berth agent --server https://{} --token \"$(cat {data}/token)\"",
        reachable(config.bind)
    );
    axum_server::bind_rustls(config.bind, tls)
        .handle(handle)
        .serve(router.into_make_service_with_connect_info::<SocketAddr>())
        .await
        .map_err(|e| Error::Setup(format!("serve on {}: {e}", config.bind)))
}

/// The server's TLS: its certificate, and client certificates the cluster CA signed
/// accepted (not required: most clients bring bearer tokens).
fn tls_config(pki: &Pki) -> Result<axum_server::tls_rustls::RustlsConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let setup = |what: &str, e: &dyn std::fmt::Display| Error::Setup(format!("{what}: {e}"));
    let certs = CertificateDer::pem_slice_iter(pki.cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| setup("read the serving certificate", &e))?;
    let key = PrivateKeyDer::from_pem_slice(pki.key.as_bytes())
        .map_err(|e| setup("read the serving key", &e))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(pki.ca.as_bytes()) {
        let ca = ca.map_err(|e| setup("read the CA certificate", &e))?;
        roots
            .add(ca)
            .map_err(|e| setup("trust the CA certificate", &e))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .allow_unauthenticated()
        .build()
        .map_err(|e| setup("verify client certificates", &e))?;
    let mut config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| setup("load the serving certificate", &e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(axum_server::tls_rustls::RustlsConfig::from_config(
        Arc::new(config),
    ))
}

/// Opens the datastore, waiting up to half a minute for it to answer: a server and its
/// etcd often start together.
async fn open_store(datastore: &str) -> Result<Arc<dyn berth_store::Store>> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let opened = match berth_store::open(datastore).await {
            Ok(store) => store.revision().await.map(|_| store),
            Err(error) => Err(error),
        };
        match opened {
            Ok(store) => return Ok(store),
            Err(error) if std::time::Instant::now() < deadline => {
                tracing::info!(%error, "waiting for the datastore");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// The largest request body accepted: kube-apiserver's 3 MiB.
const MAX_BODY: usize = 3 * 1024 * 1024;

/// A body over [`MAX_BODY`] is refused as kube-apiserver refuses it, in a Status.
async fn too_large_as_status(response: axum::response::Response) -> axum::response::Response {
    use axum::response::IntoResponse;
    if response.status() != axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        return response;
    }
    status::Status::new(
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        "RequestEntityTooLarge",
        format!("Request entity too large: limit is {MAX_BODY}"),
    )
    .into_response()
}

/// Compacts the store's history as kube-apiserver does — every `interval`, to the
/// revision it had reached one interval before, so watchers get that long to catch up —
/// and sooner when churn outgrows the data (`berth_store::compaction_for_size`).
/// Another server on the same etcd may have compacted further already, which is fine.
async fn compact_periodically(
    store: Arc<dyn berth_store::Store>,
    cache: Arc<cache::Cache>,
    interval: std::time::Duration,
) {
    let mut ticks = tokio::time::interval(interval.min(COMPACTION_CHECK));
    // The revisions seen at each check within the last interval, oldest first.
    let mut seen: std::collections::VecDeque<(tokio::time::Instant, i64)> = Default::default();
    let mut compacted = 0;
    loop {
        let now = ticks.tick().await;
        let (revision, keys) = match (store.revision().await, store.keys().await) {
            (Ok(revision), Ok(keys)) => (revision, keys),
            (Err(error), _) | (_, Err(error)) => {
                tracing::warn!(%error, "could not read the datastore's revision and size");
                continue;
            }
        };
        seen.push_back((now, revision));
        while seen.len() > 1 && seen[1].0 + interval <= now {
            seen.pop_front();
        }
        let by_time = seen
            .front()
            .filter(|(at, _)| *at + interval <= now)
            .map_or(0, |(_, revision)| *revision);
        let by_size = berth_store::compaction_for_size(revision, keys, compacted);
        let target = by_time.max(by_size.unwrap_or(0));
        if target <= compacted {
            continue;
        }
        match store.compact(target).await {
            Ok(()) => {
                cache.forget_through(target);
                compacted = target;
            }
            Err(error) => tracing::debug!(%error, revision = target, "compaction skipped"),
        }
    }
}

/// How often compaction looks at how much history the store keeps.
const COMPACTION_CHECK: std::time::Duration = std::time::Duration::from_secs(10);

/// The address clients on this machine reach a server bound to `bind` at: loopback for
/// a wildcard bind.
pub(crate) fn reachable(bind: SocketAddr) -> String {
    if bind.ip().is_unspecified() {
        format!("127.0.0.1:{}", bind.port())
    } else {
        bind.to_string()
    }
}

/// Writes a file only its owner may read (keys, tokens, kubeconfigs).
pub(crate) fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(data))
        .map_err(|e| Error::io(path, e))
}

/// Random bytes as hex, for tokens and uids, from the OS's random source (the getrandom
/// system call: opening /dev/urandom for every uid was 2% of the server under pod
/// creates). A token that cannot be made from it is an error: a predictable one would
/// let anyone in.
pub(crate) fn random_hex(bytes: usize) -> Result<String> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(|e| Error::Random(e.to_string()))?;
    Ok(hex::encode(buffer))
}

#[cfg(test)]
mod tests {
    #[test]
    fn random_values_are_fresh_hex() {
        let token = super::random_hex(24).expect("the OS's random source");
        assert_eq!(token.len(), 48);
        assert_ne!(token, "0".repeat(48));
        assert_ne!(token, super::random_hex(24).expect("another"));
    }

    #[test]
    fn default_bind_is_a_socket_address() {
        let addr: std::net::SocketAddr = super::DEFAULT_BIND.parse().expect("valid address");
        assert_eq!(addr.port(), 6443);
    }
}
