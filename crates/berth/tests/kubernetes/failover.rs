//! High availability: two servers on one etcd both serve the API, one of them holds the
//! controller manager's Lease, and when it dies the other takes the Lease over within
//! 15 s; the `kubernetes` Service lists the servers whose leases are alive.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use berth_testkit::etcd::Etcd;
use berth_testkit::guard::Scratch;

use crate::server::Server;

/// The controller manager's Lease holder as `server` reports it, once there is one.
fn holder(server: &Server) -> Option<String> {
    let lease = server
        .api("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/berth-controller-manager");
    lease["spec"]["holderIdentity"].as_str().map(str::to_string)
}

/// Waits up to `limit` for `server` to report a holder other than `not`.
fn wait_for_holder(server: &Server, not: Option<&str>, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = holder(server).filter(|h| Some(h.as_str()) != not) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no new leader within {limit:?} (the old one was {not:?})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_other_server_takes_over_within_15_s_when_the_leader_dies() {
    let scratch = Scratch::new("failover-etcd").unwrap();
    let etcd = Etcd::start(&scratch.path().join("etcd")).unwrap();
    let mut first = Server::start_on("failover-a", &etcd);
    let leader = wait_for_holder(&first, None, Duration::from_secs(30));
    let second = Server::start_on("failover-b", &etcd);
    // Both serve the same cluster: what one writes the other reads.
    first.kubectl_ok(&["create", "configmap", "shared", "--from-literal=k=v"]);
    assert_eq!(
        second.kubectl_ok(&["get", "configmap", "shared", "-o", "jsonpath={.data.k}"]),
        "v"
    );
    assert_eq!(
        holder(&second).as_deref(),
        Some(leader.as_str()),
        "one leader at a time"
    );

    first.kill();
    let killed = Instant::now();
    let successor = wait_for_holder(&second, Some(&leader), Duration::from_secs(15));
    assert_ne!(successor, leader);
    eprintln!(
        "the second server led {:?} after the first died",
        killed.elapsed()
    );
}

/// The addresses the `kubernetes` Service's Endpoints and its EndpointSlice list.
fn api_server_addresses(server: &Server) -> [Vec<String>; 2] {
    let endpoints = server.api("/api/v1/namespaces/default/endpoints/kubernetes");
    let slice =
        server.api("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes");
    let listed = |list: &serde_json::Value, field: &str| -> Vec<String> {
        (list.as_array().into_iter().flatten())
            .filter_map(|entry| entry.pointer(field)?.as_str().map(str::to_string))
            .collect()
    };
    [
        listed(&endpoints["subsets"][0]["addresses"], "/ip"),
        listed(&slice["endpoints"], "/addresses/0"),
    ]
}

/// Waits up to `limit` for both to list exactly `wanted`.
fn wait_for_addresses(server: &Server, wanted: &[&str], limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let found = api_server_addresses(server);
        if found.iter().all(|list| list == wanted) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{found:?} after {limit:?}, not {wanted:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// POSTs `body` to etcd's JSON gateway at `path`; its answer.
fn etcd_call(etcd: &Etcd, path: &str, body: &serde_json::Value) -> serde_json::Value {
    let output = Command::new("curl")
        .args([
            "-sf",
            "-X",
            "POST",
            &format!("http://{}{path}", etcd.endpoint),
            "-d",
        ])
        .arg(body.to_string())
        .output()
        .unwrap();
    assert!(output.status.success(), "etcd's gateway refused {path}");
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn the_kubernetes_service_lists_the_servers_whose_leases_are_alive() {
    let scratch = Scratch::new("apiserver-leases").unwrap();
    let etcd = Etcd::start(&scratch.path().join("etcd")).unwrap();
    let server = Server::start_on("apiserver-leases", &etcd);
    wait_for_addresses(&server, &["127.0.0.1"], Duration::from_secs(15));

    // Another server at 10.99.99.9 renews its lease once, as a server does every 5 s,
    // and then dies.
    let key = STANDARD.encode("/registry/masterleases/10.99.99.9");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let lease = STANDARD.encode(format!("{{\"renewed\":{now}}}"));
    etcd_call(
        &etcd,
        "/v3/kv/put",
        &serde_json::json!({"key": key, "value": lease}),
    );
    wait_for_addresses(
        &server,
        &["10.99.99.9", "127.0.0.1"],
        Duration::from_secs(15),
    );
    let listed = Instant::now();

    // Its lease expires 15 s after the renewal: it leaves the Service, its lease goes.
    wait_for_addresses(&server, &["127.0.0.1"], Duration::from_secs(30));
    eprintln!(
        "the dead server left the Service {:?} after it was listed",
        listed.elapsed()
    );
    let range = etcd_call(&etcd, "/v3/kv/range", &serde_json::json!({"key": key}));
    assert!(
        range.get("kvs").is_none(),
        "the expired lease is deleted: {range}"
    );
}
