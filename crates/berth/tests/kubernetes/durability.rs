//! Durability and first start: what the server acknowledged or made survives.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::server::Server;

/// What the server made on first start is there for a new user.
#[test]
fn first_start_writes_the_kubeconfig_the_node_token_and_certificates() {
    let server = Server::start("files", false);
    let data = server.scratch.path().join("data");
    for file in [
        "admin.kubeconfig",
        "node-token",
        "token",
        "viewer.kubeconfig",
        "tls/ca.crt",
        "tls/ca.key",
        "tls/server.crt",
        "tls/server.key",
    ] {
        let meta = std::fs::metadata(data.join(file)).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o077,
            0,
            "{file} is readable by others"
        );
    }
    let kubeconfig = std::fs::read_to_string(server.kubeconfig()).unwrap();
    assert!(kubeconfig.contains(&format!("server: https://127.0.0.1:{}", server.port)));
}

/// An agent joins with the server's URL and token alone; a token with a wrong secret or
/// naming another CA is refused with the reason, and no Node appears.
#[test]
fn agents_join_with_the_token_alone_and_wrong_tokens_are_refused() {
    let server = Server::start("join", false);
    let token = server.token("token");
    let secret = server.token("node-token");
    assert!(
        token.starts_with("K10") && token.ends_with(&format!("::server:{secret}")),
        "{token}"
    );
    let _joined = server.simulated_nodes_named("joined", 1);
    server.kubectl_until(
        &["get", "nodes", "--no-headers"],
        Duration::from_secs(30),
        |text| text.contains("joined-0") && text.contains(" Ready "),
    );
    let (pinned, _) = token.split_once("::").unwrap();
    let other_ca = format!("K10{}::server:{secret}", "0".repeat(64));
    let cases = [
        (
            format!("{pinned}::server:wrong"),
            "the server refused the join token",
        ),
        (other_ca, "is not the one the join token names"),
        (secret.clone(), "the token does not pin the cluster CA"),
    ];
    for (bad, reason) in cases {
        let output = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["agent", "--simulate", "1", "--node-name", "intruder"])
            .args(["--server", &format!("https://127.0.0.1:{}", server.port)])
            .args(["--token", &bad])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{bad}: {stderr}");
        assert!(stderr.contains(reason), "{bad}: {stderr}");
    }
    let nodes = server.kubectl_ok(&["get", "nodes", "-o", "name"]);
    assert_eq!(nodes.trim(), "node/joined-0");
}

/// kill -9 of the server in the middle of a stream of creates: every create that was
/// answered 201 is there after the restart.
fn creates_survive_a_killed_server(mut server: Server) {
    let header = format!("Authorization: Bearer {}", server.admin_token());
    let ca = server.scratch.path().join("data/tls/ca.crt");
    let url = format!(
        "https://127.0.0.1:{}/api/v1/namespaces/default/configmaps",
        server.port
    );
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
        std::thread::spawn(move || {
            for i in 0.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                let body = format!(r#"{{"metadata":{{"name":"c{i}"}},"data":{{"n":"{i}"}}}}"#);
                let code = Command::new("curl")
                    .args([
                        "-s",
                        "-o",
                        "/dev/null",
                        "-w",
                        "%{http_code}",
                        "--max-time",
                        "5",
                        "--cacert",
                    ])
                    .arg(&ca)
                    .args([
                        "-H",
                        &header,
                        "-H",
                        "Content-Type: application/json",
                        "-X",
                        "POST",
                        "-d",
                        &body,
                        &url,
                    ])
                    .output()
                    .unwrap();
                if code.stdout == b"201" {
                    acknowledged.lock().unwrap().push(format!("c{i}"));
                }
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().unwrap().len() < 30 {
        assert!(Instant::now() < deadline, "creates did not get through");
        std::thread::sleep(Duration::from_millis(10));
    }
    server.kill_and_restart();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let listed = server.api("/api/v1/namespaces/default/configmaps");
    let names: std::collections::HashSet<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["metadata"]["name"].as_str())
        .collect();
    let acknowledged = acknowledged.lock().unwrap();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|n| !names.contains(n.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged creates lost: {lost:?} of {}",
        acknowledged.len()
    );
}

#[test]
fn acknowledged_creates_survive_kill_9_on_sqlite() {
    creates_survive_a_killed_server(Server::start("durable-sqlite", false));
}

#[test]
fn acknowledged_creates_survive_kill_9_on_etcd() {
    creates_survive_a_killed_server(Server::start("durable-etcd", true));
}
