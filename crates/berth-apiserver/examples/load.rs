//! A load generator for `berth server` over keep-alive HTTPS connections:
//!
//!   load DATA_DIR ADDRESS create|patch|get|pod-create RATE SECONDS [CONNECTIONS]
//!       ConfigMap creates, merge patches or gets, or pod creates in namespace `bench`,
//!       at a fixed rate; each latency is measured from the moment the request was due,
//!       so a slow server cannot hide its queue; p50/p99/max.
//!   load DATA_DIR ADDRESS pods COUNT
//!       COUNT pods created in namespace `bench` as fast as 32 connections go.
//!   load DATA_DIR ADDRESS list REPEAT
//!       all pods listed REPEAT times, whole and in kubectl's 500-item pages.
//!   load DATA_DIR ADDRESS schedule COUNT
//!       COUNT pods created as fast as they go; the time until the scheduler has bound
//!       them all (pods/s) and each pod's delay from created to bound.
//!   load DATA_DIR ADDRESS backlog COUNT COMMAND…
//!       COUNT pods created while no scheduler runs, then COMMAND started (a
//!       `berth controller-manager`) and killed once all are bound: pods/s from its
//!       first binding to its last — the scheduler alone, not the create rate — and how
//!       long its start took.
//!   load DATA_DIR ADDRESS deletion COUNT
//!       deletes as fast as creates? A Deployment of COUNT (pending) pods made, scaled
//!       to 0 by its ReplicaSet, scaled up again and deleted, its pods then going by
//!       the garbage collector; then COUNT pods created in a namespace that is deleted.
//!       Each as the time from the request until the last pod has gone (or appeared).
//!   load DATA_DIR ADDRESS watchers WATCHERS EVENTS
//!       WATCHERS watches of ConfigMaps in namespace `watched`, then EVENTS creates at
//!       100/s: every watcher must see every event; the delay from each create's answer
//!       to each watcher's receipt, p50/p99/max.
//!
//! DATA_DIR is the server's (for its CA and admin token); ADDRESS is host:port. With
//! LOAD_TOKEN set, requests carry that bearer token instead of the admin's (a
//! ServiceAccount's, to measure what RBAC's decisions cost).

#![allow(clippy::unwrap_used)] // a benchmark tool: fail loudly

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Where the server is and how to get in.
#[derive(Clone)]
struct Target {
    address: String,
    tls: tokio_rustls::TlsConnector,
    token: String,
}

impl Target {
    fn of(dir: &std::path::Path, address: &str) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = rustls::RootCertStore::empty();
        let ca = std::fs::read(dir.join("tls/ca.crt")).unwrap();
        for cert in CertificateDer::pem_slice_iter(&ca) {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self {
            address: address.to_string(),
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            token: std::env::var("LOAD_TOKEN").unwrap_or_else(|_| {
                std::fs::read_to_string(dir.join("admin-token"))
                    .unwrap()
                    .trim()
                    .to_string()
            }),
        }
    }

    async fn connect(&self) -> Sender {
        let tcp = tokio::net::TcpStream::connect(&self.address).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let stream = self.tls.connect(name, tcp).await.unwrap();
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        sender
    }

    fn request(&self, method: &str, path: &str, body: String) -> hyper::Request<Full<Bytes>> {
        let content_type = if method == "PATCH" {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    }

    /// Sends one request, checking its status; the body's length.
    async fn send(
        &self,
        sender: &mut Sender,
        (method, path, body): (&str, &str, String),
        expected: u16,
    ) -> usize {
        sender.ready().await.unwrap();
        let response = sender
            .send_request(self.request(method, path, body))
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            status,
            expected,
            "{method} {path}: {}",
            String::from_utf8_lossy(&bytes)
        );
        bytes.len()
    }
}

/// p50, p99 and max of some latencies, in milliseconds.
fn summary(latencies: &mut [Duration]) -> String {
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(at(0.50)),
        ms(at(0.99)),
        ms(*latencies.last().unwrap())
    )
}

/// Names unlike any earlier run's.
fn run_id() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    )
}

/// Requests made by `make` at `rate` for `seconds` over `connections`; each latency
/// from when its request was due.
async fn fixed_rate(
    target: &Target,
    (rate, seconds, connections): (u64, u64, usize),
    expected: u16,
    make: impl Fn(u64) -> (&'static str, String, String) + Send + Sync + 'static,
) -> (Vec<Duration>, Duration) {
    let total = rate * seconds;
    let (jobs, receiver) = tokio::sync::mpsc::channel::<(u64, Instant)>(total.max(1) as usize);
    let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
    let make = Arc::new(make);
    let mut workers = Vec::new();
    for _ in 0..connections {
        let (receiver, target, make) = (receiver.clone(), target.clone(), make.clone());
        workers.push(tokio::spawn(async move {
            let mut sender = target.connect().await;
            let mut latencies = Vec::new();
            loop {
                let job = receiver.lock().await.recv().await;
                let Some((index, due)) = job else {
                    return latencies;
                };
                let (method, path, body) = make(index);
                target
                    .send(&mut sender, (method, &path, body), expected)
                    .await;
                latencies.push(due.elapsed());
            }
        }));
    }
    let start = Instant::now();
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    for index in 0..total {
        let due = start + interval * index as u32;
        tokio::time::sleep_until(due.into()).await;
        jobs.send((index, due)).await.unwrap();
    }
    drop(jobs);
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.unwrap());
    }
    (latencies, start.elapsed())
}

const CONFIG_MAPS: &str = "/api/v1/namespaces/default/configmaps";

/// ConfigMap creates, patches or gets, or pod creates (`pod-create`), at a fixed rate.
async fn verbs(target: &Target, verb: &str, rate: u64, seconds: u64, connections: usize) {
    let run = run_id();
    if verb == "pod-create" {
        namespace(target, "bench").await;
    }
    // Patches and gets go round 100 objects made first.
    if verb == "patch" || verb == "get" {
        let mut sender = target.connect().await;
        for i in 0..100 {
            let body = format!(r#"{{"metadata":{{"name":"rw-{run}-{i}"}},"data":{{"v":"0"}}}}"#);
            target
                .send(&mut sender, ("POST", CONFIG_MAPS, body), 201)
                .await;
        }
    }
    let make: Box<dyn Fn(u64) -> (&'static str, String, String) + Send + Sync> = match verb {
        "create" => Box::new(move |i| {
            let body =
                format!(r#"{{"metadata":{{"name":"load-{run}-{i}"}},"data":{{"i":"{i}"}}}}"#);
            ("POST", CONFIG_MAPS.to_string(), body)
        }),
        "pod-create" => Box::new(move |i| {
            let body = pod_body(&format!("rate-{run}-{i}"), i);
            ("POST", PODS.to_string(), body)
        }),
        "patch" => Box::new(move |i| {
            let path = format!("{CONFIG_MAPS}/rw-{run}-{}", i % 100);
            ("PATCH", path, format!(r#"{{"data":{{"v":"{i}"}}}}"#))
        }),
        _ => Box::new(move |i| {
            let path = format!("{CONFIG_MAPS}/rw-{run}-{}", i % 100);
            ("GET", path, String::new())
        }),
    };
    let expected = if verb.ends_with("create") { 201 } else { 200 };
    let (mut latencies, elapsed) =
        fixed_rate(target, (rate, seconds, connections), expected, make).await;
    println!(
        "{verb} {} in {:.2} s ({:.0}/s, asked {rate}/s): {}",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        summary(&mut latencies)
    );
}

/// Creates namespace `name`, if it is not there yet.
async fn namespace(target: &Target, name: &str) {
    let mut sender = target.connect().await;
    let body = format!(r#"{{"metadata":{{"name":"{name}"}}}}"#);
    let response = sender
        .send_request(target.request("POST", "/api/v1/namespaces", body))
        .await
        .unwrap();
    let _ = response.into_body().collect().await;
}

/// When each pod was created, by name.
type Created = Arc<Mutex<HashMap<String, Instant>>>;

/// Where the pods of the load are made.
const PODS: &str = "/api/v1/namespaces/bench/pods";

/// The load's pod `name`, the `i`th made: one container with requests, in one of ten
/// shards.
fn pod_body(name: &str, i: u64) -> String {
    format!(
        r#"{{"metadata":{{"name":"{name}","labels":{{"app":"bench","shard":"{}"}}}},"spec":{{"containers":[{{"name":"app","image":"webapp:1","resources":{{"requests":{{"cpu":"100m","memory":"64Mi"}}}}}}]}}}}"#,
        i % 10
    )
}

/// Creates `count` pods in namespace `bench` over 32 connections, as fast as they go,
/// noting when each was answered; how long it took.
async fn create_pods(target: &Target, count: u64, created: &Created) -> Duration {
    namespace(target, "bench").await;
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let run = run_id();
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..32 {
        let (target, next, run, created) =
            (target.clone(), next.clone(), run.clone(), created.clone());
        workers.push(tokio::spawn(async move {
            let mut sender = target.connect().await;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    return;
                }
                let name = format!("pod-{run}-{i}");
                let body = pod_body(&name, i);
                target.send(&mut sender, ("POST", PODS, body), 201).await;
                created.lock().unwrap().insert(name, Instant::now());
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    start.elapsed()
}

/// Creates `count` pods in namespace `bench`, as fast as they go.
async fn pods(target: &Target, count: u64) {
    let elapsed = create_pods(target, count, &Created::default()).await;
    println!(
        "pods {count} created in {:.2} s ({:.0}/s)",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64()
    );
}

/// Follows the watch at `path` — once it is open, meeting the others at `ready` — and
/// gives `each` every event with when it arrived, until `each` says it has seen enough
/// or the stream ends.
async fn follow(
    target: &Target,
    path: &str,
    ready: Option<&tokio::sync::Barrier>,
    mut each: impl FnMut(Seen, Instant) -> bool,
) {
    let mut sender = target.connect().await;
    let response = sender
        .send_request(target.request("GET", path, String::new()))
        .await
        .unwrap();
    if let Some(ready) = ready {
        ready.wait().await;
    }
    let mut body = response.into_body();
    let mut buffer = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.unwrap().into_data() else {
            continue;
        };
        let received = Instant::now();
        buffer.extend_from_slice(&data);
        let mut start = 0;
        while let Some(end) = buffer[start..].iter().position(|b| *b == b'\n') {
            let line = &buffer[start..start + end];
            start += end + 1;
            if each(serde_json::from_slice(line).unwrap(), received) {
                return;
            }
        }
        buffer.drain(..start);
    }
}

/// What the load generator reads of a watch event. The rest is skipped, not built: the
/// measuring shares the two cores with what it measures.
#[derive(serde::Deserialize)]
struct Seen {
    #[serde(rename = "type")]
    kind: String,
    object: SeenObject,
}

#[derive(serde::Deserialize)]
struct SeenObject {
    #[serde(default)]
    metadata: SeenMetadata,
    #[serde(default)]
    spec: SeenSpec,
}

#[derive(serde::Deserialize, Default)]
struct SeenMetadata {
    #[serde(default)]
    name: String,
}

#[derive(serde::Deserialize, Default)]
struct SeenSpec {
    #[serde(rename = "nodeName")]
    node_name: Option<String>,
}

/// Creates `count` pods as fast as they go and waits until the scheduler has bound
/// them all: pods/s from the first create to the last binding, and each pod's delay
/// from its create's answer to its binding.
async fn schedule(target: &Target, count: u64) {
    namespace(target, "bench").await;
    let created = Created::default();
    let start = Instant::now();
    let watching = {
        let (target, created) = (target.clone(), created.clone());
        tokio::spawn(async move {
            let mut delays = Vec::new();
            let mut bound = std::collections::HashSet::new();
            let path = "/api/v1/namespaces/bench/pods?watch=true&resourceVersion=0";
            follow(&target, path, None, |event, received| {
                let SeenObject { metadata, spec } = event.object;
                let name = metadata.name;
                if spec.node_name.is_some() && bound.insert(name.clone()) {
                    let sent = created.lock().unwrap().get(&name).copied();
                    delays.push(
                        sent.map_or(Duration::ZERO, |s| received.saturating_duration_since(s)),
                    );
                }
                bound.len() as u64 >= count
            })
            .await;
            delays
        })
    };
    let creating = create_pods(target, count, &created).await;
    let mut delays = watching.await.unwrap();
    let elapsed = start.elapsed();
    println!(
        "scheduled {} pods in {:.2} s ({:.0} pods/s; created in {:.2} s); create to bound {}",
        delays.len(),
        elapsed.as_secs_f64(),
        delays.len() as f64 / elapsed.as_secs_f64(),
        creating.as_secs_f64(),
        summary(&mut delays)
    );
}

/// How many pods namespace `namespace` has, kept up to date from a watch.
fn count_pods(target: &Target, namespace: &str) -> tokio::sync::watch::Receiver<u64> {
    let (count, counted) = tokio::sync::watch::channel(0);
    let (target, path) = (
        target.clone(),
        format!("/api/v1/namespaces/{namespace}/pods?watch=true&resourceVersion=0"),
    );
    tokio::spawn(async move {
        let mut live = std::collections::HashSet::new();
        follow(&target, &path, None, |event, _| {
            let name = event.object.metadata.name;
            match event.kind.as_str() {
                "ADDED" => live.insert(name),
                "DELETED" => live.remove(&name),
                _ => false,
            };
            count.send_replace(live.len() as u64);
            false
        })
        .await;
    });
    counted
}

/// Runs `request`, then waits until the pod count is `wanted`; prints how long that
/// took and the rate of the `moved` pods that came or went.
async fn timed(
    what: &str,
    counted: &mut tokio::sync::watch::Receiver<u64>,
    (wanted, moved): (u64, u64),
    request: impl std::future::Future<Output = usize>,
) {
    let start = Instant::now();
    request.await;
    counted.wait_for(|n| *n == wanted).await.unwrap();
    let elapsed = start.elapsed();
    println!(
        "{what} in {:.2} s ({:.0} pods/s)",
        elapsed.as_secs_f64(),
        moved as f64 / elapsed.as_secs_f64()
    );
}

/// Deletion beside creation: see the module's words on `deletion`.
async fn deletion(target: &Target, count: u64) {
    let mut sender = target.connect().await;
    namespace(target, "deletion").await;
    let mut counted = count_pods(target, "deletion");
    let deployments = "/apis/apps/v1/namespaces/deletion/deployments";
    let deployment = format!(
        r#"{{"metadata":{{"name":"wide"}},"spec":{{"replicas":{count},"selector":{{"matchLabels":{{"app":"wide"}}}},"template":{{"metadata":{{"labels":{{"app":"wide"}}}},"spec":{{"containers":[{{"name":"app","image":"webapp:1"}}]}}}}}}}}"#
    );
    let scale = |replicas: u64| format!(r#"{{"spec":{{"replicas":{replicas}}}}}"#);
    let wide = format!("{deployments}/wide");
    let create = ("POST", deployments, deployment);
    let made = format!("deployment of {count} pods made");
    timed(
        &made,
        &mut counted,
        (count, count),
        target.send(&mut sender, create, 201),
    )
    .await;
    let down = ("PATCH", wide.as_str(), scale(0));
    let scaled = format!("deployment scaled {count} -> 0");
    timed(
        &scaled,
        &mut counted,
        (0, count),
        target.send(&mut sender, down, 200),
    )
    .await;
    let up = ("PATCH", wide.as_str(), scale(count));
    let again = format!("deployment scaled 0 -> {count}");
    timed(
        &again,
        &mut counted,
        (count, count),
        target.send(&mut sender, up, 200),
    )
    .await;
    let delete = ("DELETE", wide.as_str(), String::new());
    let collected = format!("deployment deleted, its {count} pods collected");
    timed(
        &collected,
        &mut counted,
        (0, count),
        target.send(&mut sender, delete, 200),
    )
    .await;

    let created = create_pods(target, count, &Created::default()).await;
    println!(
        "{count} pods created in {:.2} s ({:.0} pods/s)",
        created.as_secs_f64(),
        count as f64 / created.as_secs_f64()
    );
    let start = Instant::now();
    target
        .send(
            &mut sender,
            ("DELETE", "/api/v1/namespaces/bench", String::new()),
            200,
        )
        .await;
    loop {
        sender.ready().await.unwrap();
        let request = target.request("GET", "/api/v1/namespaces/bench", String::new());
        let response = sender.send_request(request).await.unwrap();
        let status = response.status();
        let _ = response.into_body().collect().await;
        if status == 404 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = start.elapsed();
    println!(
        "namespace of {count} pods deleted in {:.2} s ({:.0} pods/s)",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64()
    );
}

/// A backlog of `count` pending pods, then the scheduler `command` starts: see the
/// module's words on `backlog`.
async fn backlog(target: &Target, count: u64, command: &[String]) {
    let created = create_pods(target, count, &Created::default()).await;
    println!(
        "backlog of {count} pods created in {:.2} s ({:.0}/s)",
        created.as_secs_f64(),
        count as f64 / created.as_secs_f64()
    );
    let (program, args) = command.split_first().expect("a scheduler to start");
    let started = Instant::now();
    let mut scheduler = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut bindings = Vec::new();
    let mut bound = std::collections::HashSet::new();
    let path = "/api/v1/namespaces/bench/pods?watch=true&resourceVersion=0";
    follow(target, path, None, |event, received| {
        let SeenObject { metadata, spec } = event.object;
        if spec.node_name.is_some() && bound.insert(metadata.name) {
            bindings.push(received);
        }
        bound.len() as u64 >= count
    })
    .await;
    let memory = scheduler.id().map(memory_of).unwrap_or_default();
    let _ = scheduler.kill().await;
    let (first, last) = (bindings[0], bindings[bindings.len() - 1]);
    let window = last.saturating_duration_since(first);
    println!(
        "scheduled {} pods in {:.2} s ({:.0} pods/s; first binding {:.2} s after the scheduler's start)",
        bindings.len(),
        window.as_secs_f64(),
        bindings.len() as f64 / window.as_secs_f64(),
        first.saturating_duration_since(started).as_secs_f64()
    );
    println!("controller manager {memory}");
}

/// A process's resident memory now and at its peak, as /proc says (`VmRSS`, `VmHWM`).
fn memory_of(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map_or("?", str::trim)
            .to_string()
    };
    format!("RSS {} (peak {})", field("VmRSS:"), field("VmHWM:"))
}

/// Lists every pod `repeat` times, whole and in kubectl's pages of 500.
async fn list(target: &Target, repeat: usize) {
    let mut sender = target.connect().await;
    for (label, limit) in [("whole", 0), ("pages of 500", 500)] {
        let mut latencies = Vec::new();
        let mut size = 0;
        for _ in 0..repeat {
            let start = Instant::now();
            let mut token = String::new();
            size = 0;
            loop {
                let mut path = "/api/v1/pods".to_string();
                if limit > 0 {
                    path = format!("{path}?limit={limit}&continue={token}");
                }
                sender.ready().await.unwrap();
                let response = sender
                    .send_request(target.request("GET", &path, String::new()))
                    .await
                    .unwrap();
                let bytes = response.into_body().collect().await.unwrap().to_bytes();
                size += bytes.len();
                assert!(bytes.ends_with(b"}"), "a whole JSON answer");
                if limit == 0 {
                    break;
                }
                let page: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                match page["metadata"]["continue"].as_str() {
                    Some(next) if !next.is_empty() => token = next.to_string(),
                    _ => break,
                }
            }
            latencies.push(start.elapsed());
        }
        println!(
            "list of all pods, {label} ({:.1} MB) x{repeat}: {}",
            size as f64 / 1e6,
            summary(&mut latencies)
        );
    }
}

/// `watchers` watches of one namespace's ConfigMaps, then `events` creates at 100/s:
/// every watcher must see every create; the delay from each create's answer to each
/// watcher's receipt.
async fn watchers(target: &Target, watchers: usize, events: u64) {
    let mut sender = target.connect().await;
    let namespace = r#"{"metadata":{"name":"watched"}}"#.to_string();
    let response = sender
        .send_request(target.request("POST", "/api/v1/namespaces", namespace))
        .await
        .unwrap();
    let _ = response.into_body().collect().await;
    let path = "/api/v1/namespaces/watched/configmaps";
    let listed = target
        .send(&mut sender, ("GET", path, String::new()), 200)
        .await;
    assert!(listed > 0);
    let answered: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut handles = Vec::new();
    let ready = Arc::new(tokio::sync::Barrier::new(watchers + 1));
    for _ in 0..watchers {
        let (target, answered, ready) = (target.clone(), answered.clone(), ready.clone());
        handles.push(tokio::spawn(async move {
            let (mut seen, mut delays) = (0, Vec::new());
            let watch = format!("{path}?watch=true");
            follow(&target, &watch, Some(&ready), |event, received| {
                let name = event.object.metadata.name.as_str();
                if event.kind == "ADDED" && name.starts_with("event-") {
                    seen += 1;
                    let sent = answered.lock().unwrap().get(name).copied();
                    delays.push(
                        sent.map_or(Duration::ZERO, |s| received.saturating_duration_since(s)),
                    );
                }
                seen >= events
            })
            .await;
            (seen, delays)
        }));
    }
    ready.wait().await;
    let start = Instant::now();
    for i in 0..events {
        tokio::time::sleep_until((start + Duration::from_millis(10 * i)).into()).await;
        let body = format!(r#"{{"metadata":{{"name":"event-{i}"}}}}"#);
        target.send(&mut sender, ("POST", path, body), 201).await;
        answered
            .lock()
            .unwrap()
            .insert(format!("event-{i}"), Instant::now());
    }
    let mut delays = Vec::new();
    let mut missed = 0;
    for handle in handles {
        let (seen, got) = handle.await.unwrap();
        missed += events - seen;
        delays.extend(got);
    }
    println!(
        "{watchers} watchers x {events} events: {} deliveries, {missed} missed, in {:.2} s; delay {}",
        delays.len(),
        start.elapsed().as_secs_f64(),
        summary(&mut delays)
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, address, mode, rest @ ..] = args.as_slice() else {
        eprintln!(
            "usage: load DATA_DIR ADDRESS create|patch|get|pod-create|pods|list|watchers ARGS…"
        );
        std::process::exit(2);
    };
    let target = Target::of(std::path::Path::new(dir), address);
    let number = |i: usize| -> u64 { rest.get(i).map_or(0, |n| n.parse().unwrap()) };
    match mode.as_str() {
        "create" | "pod-create" | "patch" | "get" => {
            let connections = rest.get(2).map_or(16, |c| c.parse().unwrap());
            verbs(&target, mode, number(0), number(1), connections).await
        }
        "pods" => pods(&target, number(0)).await,
        "list" => list(&target, number(0) as usize).await,
        "watchers" => watchers(&target, number(0) as usize, number(1)).await,
        "schedule" => schedule(&target, number(0)).await,
        "deletion" => deletion(&target, number(0)).await,
        "backlog" => backlog(&target, number(0), &rest[1..]).await,
        other => {
            eprintln!("unknown mode {other}");
            std::process::exit(2);
        }
    }
}
