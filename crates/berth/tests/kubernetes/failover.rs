//! High availability: two servers on one etcd both serve the API, one of them holds the
//! controller manager's Lease, and when it dies the other takes the Lease over within
//! 15 s.

use std::time::{Duration, Instant};

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
