//! A load generator for `berth server`: creates ConfigMaps at a fixed rate over
//! keep-alive HTTPS connections and reports the latency of each create, measured from
//! the moment it was due (so a slow server cannot hide its queue), as p50/p99/max.
//!
//!   load DATA_DIR ADDRESS RATE SECONDS [CONNECTIONS]
//!
//! DATA_DIR is the server's (for its CA and admin token); ADDRESS is host:port.

#![allow(clippy::unwrap_used)] // a benchmark tool: fail loudly

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(address: &str, tls: &tokio_rustls::TlsConnector) -> Sender {
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let stream = tls.connect(name, tcp).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    sender
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, address, rate, seconds, rest @ ..] = args.as_slice() else {
        eprintln!("usage: load DATA_DIR ADDRESS RATE SECONDS [CONNECTIONS]");
        std::process::exit(2);
    };
    let dir = std::path::Path::new(dir);
    let rate: u64 = rate.parse().unwrap();
    let seconds: u64 = seconds.parse().unwrap();
    let connections: usize = rest.first().map_or(16, |c| c.parse().unwrap());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(dir.join("tls/ca.crt")).unwrap();
    for cert in CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config));
    let token = std::fs::read_to_string(dir.join("admin-token"))
        .unwrap()
        .trim()
        .to_string();
    let total = rate * seconds;
    let (jobs, receiver) = tokio::sync::mpsc::channel::<(u64, Instant)>(total.max(1) as usize);
    let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
    // Names of this run's objects, unlike any earlier run's.
    let run = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let mut workers = Vec::new();
    for _ in 0..connections {
        let (receiver, tls, token, address, run) = (
            receiver.clone(),
            tls.clone(),
            token.clone(),
            address.clone(),
            run.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut sender = connect(&address, &tls).await;
            let mut latencies = Vec::new();
            loop {
                let job = receiver.lock().await.recv().await;
                let Some((index, due)) = job else {
                    return latencies;
                };
                let body = format!(
                    r#"{{"metadata":{{"name":"load-{run}-{index}"}},"data":{{"i":"{index}"}}}}"#
                );
                let request = hyper::Request::post("/api/v1/namespaces/default/configmaps")
                    .header("host", "localhost")
                    .header("authorization", format!("Bearer {token}"))
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .unwrap();
                let response = sender.send_request(request).await.unwrap();
                let status = response.status();
                let _ = response.into_body().collect().await;
                assert_eq!(status, 201, "create {index}");
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
    let mut latencies: Vec<Duration> = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.unwrap());
    }
    let elapsed = start.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "creates {} in {:.2} s ({:.0}/s, asked {rate}/s): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3,
    );
}
