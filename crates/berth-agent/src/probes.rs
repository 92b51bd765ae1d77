//! Container probes, with the kubelet's timing: each probe of a running container
//! (startup, liveness, readiness) runs on its own task every `periodSeconds` after
//! `initialDelaySeconds`, each try bounded by `timeoutSeconds`; `failureThreshold`
//! failures in a row fail it and `successThreshold` successes pass it. Until a startup
//! probe passes, the others wait; a failed startup or liveness probe kills the
//! container (its restart policy then decides); readiness is the container's `ready`.
//! A result that changes wakes the pod's worker, which reports it.
//!
//! Probes reach the pod at its address from the agent (httpGet, tcpSocket) or run in
//! the container (exec, through the engine as `docker exec` does). Lifecycle hooks
//! (postStart, preStop) run the same handlers once ([`handle`]), or sleep.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_engine::Engine;
use http_body_util::Empty;
use hyper::body::Bytes;
use k8s_openapi::api::core::v1::{Container, HTTPGetAction, LifecycleHandler, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::spec::Refusal;

/// What the probes of one run of a container have found so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeState {
    /// Its startup probe passed (or it has none).
    pub started: bool,
    /// Its readiness probe passes (or it has none).
    pub ready: bool,
}

impl ProbeState {
    /// Before any probe ran: started and ready only where no probe has to say so.
    pub fn initial(container: &Container) -> Self {
        Self {
            started: container.startup_probe.is_none(),
            ready: container.readiness_probe.is_none(),
        }
    }
}

/// Probe states by engine container id, shared by a pod's worker and its probers.
pub type ProbeStates = Arc<Mutex<HashMap<String, ProbeState>>>;

/// The kinds of probe, as the kubelet names them in its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Startup,
    Liveness,
    Readiness,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }
}

/// Refuses probes the agent cannot run yet.
pub fn check(container: &Container) -> Result<(), Refusal> {
    let probes = [
        &container.startup_probe,
        &container.liveness_probe,
        &container.readiness_probe,
    ];
    let hooks = container
        .lifecycle
        .iter()
        .flat_map(|l| [&l.post_start, &l.pre_stop]);
    for hook in hooks.flatten() {
        if hook.tcp_socket.is_some() {
            return Err(Refusal::Unsupported(format!(
                "tcpSocket lifecycle hooks, which Kubernetes no longer runs (container {:?})",
                container.name
            )));
        }
        known_scheme(hook.http_get.as_ref(), "hooks", &container.name)?;
    }
    for probe in probes.into_iter().flatten() {
        known_scheme(probe.http_get.as_ref(), "probes", &container.name)?;
    }
    Ok(())
}

/// Refuses an httpGet handler of a scheme other than HTTP and HTTPS.
fn known_scheme(get: Option<&HTTPGetAction>, what: &str, container: &str) -> Result<(), Refusal> {
    match get.and_then(|g| g.scheme.as_deref()) {
        Some(scheme) if scheme != "HTTP" && scheme != "HTTPS" => Err(Refusal::Invalid(format!(
            "httpGet {what} of scheme {scheme:?}: only HTTP and HTTPS are (container {container:?})"
        ))),
        _ => Ok(()),
    }
}

/// Runs a lifecycle hook's handler once, for up to `timeout`: Ok, or why it failed.
pub async fn handle(
    target: &Target,
    hook: &LifecycleHandler,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(sleep) = &hook.sleep {
        let seconds = u64::try_from(sleep.seconds).unwrap_or(0);
        tokio::time::sleep(Duration::from_secs(seconds).min(timeout)).await;
        return Ok(());
    }
    let probe = Probe {
        exec: hook.exec.clone(),
        http_get: hook.http_get.clone(),
        ..Probe::default()
    };
    attempt(target, &probe, "Lifecycle", timeout).await
}

/// What probers call with news: a result changed, with an event to record (type,
/// reason, message) or none.
pub type Notify = Arc<dyn Fn(Option<(&'static str, &'static str, String)>) + Send + Sync>;

/// What a prober needs: where the container is and whom to tell.
#[derive(Clone)]
pub struct Target {
    /// The node's engine.
    pub engine: Arc<Engine>,
    /// The container as the pod declares it.
    pub container: Container,
    /// Its run's engine id.
    pub id: String,
    /// The pod's address.
    pub ip: IpAddr,
    /// The pod's grace period, for a kill after a failed liveness or startup probe.
    pub grace: Duration,
    /// Where results go.
    pub states: ProbeStates,
    /// Called with news.
    pub notify: Notify,
}

/// Starts the container's probers: its startup probe, and once that passed (at once
/// without one) its liveness and readiness probes. Each ends with the container's run.
pub fn start(target: Target) {
    match target.container.startup_probe.clone() {
        Some(probe) => drop(tokio::spawn(run(target, Kind::Startup, probe))),
        None => start_after_startup(&target),
    }
}

fn start_after_startup(target: &Target) {
    let container = &target.container;
    for (kind, probe) in [
        (Kind::Liveness, &container.liveness_probe),
        (Kind::Readiness, &container.readiness_probe),
    ] {
        if let Some(probe) = probe.clone() {
            tokio::spawn(run(target.clone(), kind, probe));
        }
    }
}

/// Whether the run the probes are for still runs.
fn running(target: &Target) -> bool {
    target
        .engine
        .container(&target.id)
        .is_ok_and(|c| c.state.status == berth_engine::Status::Running)
}

fn seconds(value: Option<i32>, default: u64) -> Duration {
    Duration::from_secs(value.and_then(|v| u64::try_from(v).ok()).unwrap_or(default))
}

/// One probe's loop.
async fn run(target: Target, kind: Kind, probe: Probe) {
    let period = seconds(probe.period_seconds, 10).max(Duration::from_secs(1));
    let timeout = seconds(probe.timeout_seconds, 1).max(Duration::from_secs(1));
    let failures_needed = probe.failure_threshold.unwrap_or(3).max(1);
    let successes_needed = probe.success_threshold.unwrap_or(1).max(1);
    tokio::time::sleep(seconds(probe.initial_delay_seconds, 0)).await;
    let (mut failures, mut successes) = (0, 0);
    loop {
        if !running(&target) {
            return;
        }
        let outcome = attempt(&target, &probe, kind.name(), timeout).await;
        match outcome {
            Ok(()) => {
                failures = 0;
                successes += 1;
            }
            Err(message) => {
                successes = 0;
                failures += 1;
                let event = format!("{} probe failed: {message}", kind.name());
                (target.notify)(Some(("Warning", "Unhealthy", event)));
            }
        }
        if successes >= successes_needed {
            match kind {
                Kind::Startup => {
                    set(&target, |s| s.started = true);
                    return start_after_startup(&target);
                }
                Kind::Readiness => set(&target, |s| s.ready = true),
                Kind::Liveness => {}
            }
        }
        if failures >= failures_needed {
            match kind {
                Kind::Readiness => set(&target, |s| s.ready = false),
                Kind::Startup | Kind::Liveness => return kill(&target, kind).await,
            }
        }
        tokio::time::sleep(period).await;
    }
}

/// Changes the run's state and wakes the worker if it changed.
fn set(target: &Target, change: impl FnOnce(&mut ProbeState)) {
    let changed = {
        let Ok(mut states) = target.states.lock() else {
            return;
        };
        let Some(state) = states.get_mut(&target.id) else {
            return;
        };
        let before = *state;
        change(state);
        *state != before
    };
    if changed {
        (target.notify)(None);
    }
}

/// Kills the run after its liveness or startup probe failed.
async fn kill(target: &Target, kind: Kind) {
    let message = format!(
        "Container {} failed {} probe, will be restarted",
        target.container.name,
        kind.name().to_lowercase()
    );
    (target.notify)(Some(("Normal", "Killing", message)));
    let engine = Arc::clone(&target.engine);
    let id = target.id.clone();
    let grace = target.grace;
    let _ =
        tokio::task::spawn_blocking(move || engine.stop_container(&id, Some(grace), None)).await;
}

/// One try of the probe: Ok, or why it failed.
async fn attempt(
    target: &Target,
    probe: &Probe,
    kind: &str,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(exec) = &probe.exec {
        let engine = Arc::clone(&target.engine);
        let id = target.id.clone();
        let command = exec.command.clone().unwrap_or_default();
        let label = kind.to_lowercase();
        let result =
            tokio::task::spawn_blocking(move || engine.probe(&id, command, timeout, &label))
                .await
                .map_err(|e| e.to_string())?;
        return match result.exit_code {
            0 => Ok(()),
            -1 if result.output.contains("timeout") => {
                Err(format!("command timed out after {timeout:?}"))
            }
            code => match result.output.trim() {
                "" => Err(format!("command exited with {code}")),
                output => Err(format!("command exited with {code}: {output}")),
            },
        };
    }
    if let Some(socket) = &probe.tcp_socket {
        let port = port_of(&target.container, &socket.port)?;
        let address = SocketAddr::new(target.ip, port);
        return match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(format!("dial tcp {address}: {error}")),
            Err(_) => Err(format!("dial tcp {address}: i/o timeout")),
        };
    }
    if let Some(get) = &probe.http_get {
        let port = port_of(&target.container, &get.port)?;
        let host = get.host.clone().unwrap_or_else(|| target.ip.to_string());
        let path = get.path.clone().unwrap_or_else(|| "/".into());
        let scheme = get.scheme.as_deref().unwrap_or("HTTP").to_lowercase();
        let url = format!(
            "{scheme}://{}{path}",
            SocketAddr::new(host.parse().unwrap_or(target.ip), port)
        );
        return http_get(&url, get.http_headers.iter().flatten(), timeout).await;
    }
    if let Some(grpc) = &probe.grpc {
        let port =
            u16::try_from(grpc.port).map_err(|_| format!("port {} is out of range", grpc.port))?;
        let address = SocketAddr::new(target.ip, port);
        return grpc_check(address, grpc.service.clone().unwrap_or_default(), timeout).await;
    }
    Err("the handler names no action (exec, httpGet, tcpSocket, grpc or sleep)".into())
}

/// A probe's port: a number, or the name of one of the container's ports.
fn port_of(container: &Container, port: &IntOrString) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(number) => *number,
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port)
            .ok_or_else(|| format!("the container has no port named {name:?}"))?,
    };
    u16::try_from(number).map_err(|_| format!("port {number} is out of range"))
}

/// The kubelet's HTTP probe: a GET that passes with a status from 200 to 399; over
/// HTTPS without verifying the server's certificate, as the kubelet probes.
async fn http_get(
    url: &str,
    headers: impl Iterator<Item = &k8s_openapi::api::core::v1::HTTPHeader>,
    timeout: Duration,
) -> Result<(), String> {
    let mut request = hyper::Request::get(url).header("User-Agent", "kube-probe/1.33");
    for header in headers {
        request = request.header(header.name.as_str(), header.value.as_str());
    }
    let request = request.body(Empty::new()).map_err(|e| e.to_string())?;
    match tokio::time::timeout(timeout, probe_client().request(request)).await {
        Ok(Ok(response)) if (200..400).contains(&response.status().as_u16()) => Ok(()),
        Ok(Ok(response)) => Err(format!(
            "HTTP probe failed with statuscode: {}",
            response.status().as_u16()
        )),
        Ok(Err(error)) => Err(format!("Get {url:?}: {error}")),
        Err(_) => Err(format!(
            "Get {url:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
    }
}

type ProbeClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Empty<Bytes>,
>;

/// The client of every HTTP(S) probe of the agent: no connection kept between tries,
/// as the kubelet's probes do not keep them.
fn probe_client() -> &'static ProbeClient {
    static CLIENT: std::sync::OnceLock<ProbeClient> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map(|config| {
                config
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                    .with_no_client_auth()
            })
            .unwrap_or_else(|_| unreachable!("ring supports the default protocol versions"));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector)
    })
}

/// Accepts any server certificate (still checking the handshake's signatures), as the
/// kubelet's HTTPS probes skip verification: a pod's certificate is rarely one its node
/// could check.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &rustls::pki_types::CertificateDer<'_>,
        signature: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            certificate,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &rustls::pki_types::CertificateDer<'_>,
        signature: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            certificate,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The kubelet's gRPC probe: the standard health check (`grpc.health.v1.Health/Check`)
/// over plain HTTP/2, passing when the service answers SERVING; failures in the
/// kubelet's words.
async fn grpc_check(address: SocketAddr, service: String, timeout: Duration) -> Result<(), String> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let connect_failed = || {
        format!(
            "timeout: failed to connect service {address:?} within {}s",
            timeout.as_secs()
        )
    };
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(timeout);
    let channel = match tokio::time::timeout(timeout, endpoint.connect()).await {
        Ok(Ok(channel)) => channel,
        _ => return Err(connect_failed()),
    };
    let mut client = HealthClient::new(channel);
    let check = client.check(HealthCheckRequest { service });
    match tokio::time::timeout(timeout, check).await {
        Err(_) => Err(format!(
            "timeout: health rpc did not complete within {}s",
            timeout.as_secs()
        )),
        Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => Err(format!(
            "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
            status.message()
        )),
        Ok(Err(status)) => Err(format!(
            "error: health rpc probe failed: {}",
            status.message()
        )),
        Ok(Ok(response)) => match response.into_inner().status() {
            ServingStatus::Serving => Ok(()),
            other => Err(format!(
                "service unhealthy (responded with {:?})",
                other.as_str_name()
            )),
        },
    }
}
