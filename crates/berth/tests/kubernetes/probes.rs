//! gRPC and HTTPS probes against real servers: two etcds on the test host (etcd serves
//! the standard gRPC health service, and `/health` over HTTPS with a self-signed
//! certificate), probed by the readiness probes of a host-network pod — ready while
//! they answer, not ready with the kubelet's words once one stops.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use berth_testkit::guard::ChildGuard;

use crate::pods::AllInOne;

const GRPC_PORT: u16 = 23790;
const HTTPS_PORT: u16 = 24790;

const PROBED: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: probed
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: grpc
    image: busybox:1
    command: ["sleep", "3600"]
    readinessProbe:
      grpc: {port: 23790}
      periodSeconds: 1
      failureThreshold: 1
  - name: https
    image: busybox:1
    command: ["sleep", "3600"]
    readinessProbe:
      httpGet: {scheme: HTTPS, port: 24790, path: /health}
      periodSeconds: 1
      failureThreshold: 1
"#;

/// An etcd on the test host, its client URL on `port` (TLS with `tls`'s certificate
/// and key).
fn etcd(cluster: &AllInOne, dir: &Path, port: u16, tls: Option<(&Path, &Path)>) -> ChildGuard {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let client = format!("{scheme}://127.0.0.1:{port}");
    let peer = format!("http://127.0.0.1:{}", port + 10);
    let mut command = cluster.host_command(&["etcd", "--name", "probed", "--data-dir"]);
    command
        .arg(dir)
        .args([
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .args(["--initial-cluster", &format!("probed={peer}")]);
    if let Some((cert, key)) = tls {
        command
            .arg("--cert-file")
            .arg(cert)
            .arg("--key-file")
            .arg(key);
    }
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    ChildGuard(child)
}

fn readiness(cluster: &AllInOne) -> String {
    cluster.kubectl_ok(&[
        "get",
        "pod",
        "probed",
        "-o",
        "jsonpath={range .status.containerStatuses[*]}{.name}={.ready} {end}",
    ])
}

#[test]
fn grpc_and_https_probes_follow_real_servers() {
    let cluster = AllInOne::start("probes");
    let scratch = cluster.scratch_path();
    let (cert, key) = (scratch.join("cert.pem"), scratch.join("key.pem"));
    crate::server::self_signed(&cert, &key, "probed");
    let mut grpc = etcd(&cluster, &scratch.join("etcd-grpc"), GRPC_PORT, None);
    let _https = etcd(
        &cluster,
        &scratch.join("etcd-https"),
        HTTPS_PORT,
        Some((&cert, &key)),
    );

    cluster.apply("probed.yaml", PROBED);
    cluster.kubectl_until(
        &[
            "get",
            "pod",
            "probed",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ],
        Duration::from_secs(60),
        |ready| ready == "True",
    );
    assert_eq!(readiness(&cluster).trim(), "grpc=true https=true");

    // The gRPC server goes: its container is no longer ready, in the kubelet's words.
    let _ = grpc.0.kill();
    let _ = grpc.0.wait();
    cluster.kubectl_until(
        &[
            "get",
            "pod",
            "probed",
            "-o",
            "jsonpath={range .status.containerStatuses[*]}{.name}={.ready} {end}",
        ],
        Duration::from_secs(30),
        |text| text.trim() == "grpc=false https=true",
    );
    let unhealthy = cluster.events("probed", "Unhealthy");
    assert!(
        unhealthy.contains("Readiness probe failed: timeout: failed to connect service"),
        "{unhealthy}"
    );
    cluster.kubectl_ok(&["delete", "pod", "probed", "--wait=true"]);
}
