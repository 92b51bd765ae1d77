//! Connect-time balancing in a test host's kernel: a TCP connect to a balanced cluster IP
//! (which no route leads to) reaches every endpoint, from the node's namespace and from
//! a process in the pods' cgroup; it does not touch another namespace's connects, a
//! Service with affinity, or anything after the balancer is dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use berth_net::{ConnectBalancer, Endpoint, Protocol, ServiceRoute, netns};
use berth_testkit::guard::{CgroupGuard, NetnsGuard};

const BALANCED: Ipv4Addr = Ipv4Addr::new(10, 43, 250, 1);
const WITH_AFFINITY: Ipv4Addr = Ipv4Addr::new(10, 43, 250, 2);
/// The endpoints' address, on each namespace's loopback device (an endpoint on
/// 127.0.0.0/8 itself is left to the nftables rules).
const POD: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);

fn in_ns<T: Send + 'static>(path: &Path, work: impl FnOnce() -> T + Send + 'static) -> T {
    netns::run_in(path, move || Ok(work())).expect("enter the namespace")
}

/// A listener at the endpoints' address in the namespace at `port` (a new one for 0) that answers
/// every connection with `name`; its port.
fn listen(host: &Path, name: &'static str, port: u16) -> u16 {
    let listener = in_ns(host, move || TcpListener::bind((POD, port))).expect("listen");
    let port = listener.local_addr().expect("an address").port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(name.as_bytes());
        }
    });
    port
}

/// Who answers a connect to `address` from the namespace; the error when none does.
fn ask(host: &Path, address: SocketAddr) -> std::io::Result<String> {
    in_ns(host, move || {
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply)?;
        Ok(reply)
    })
}

fn answers(host: &Path, address: SocketAddr) -> BTreeSet<String> {
    (0..40).filter_map(|_| ask(host, address).ok()).collect()
}

fn routes(ports: &[u16]) -> BTreeMap<String, ServiceRoute> {
    let route = |cluster_ip, affinity| ServiceRoute {
        cluster_ip,
        port: 80,
        protocol: Protocol::Tcp,
        node_ports: vec![],
        endpoints: ports
            .iter()
            .map(|&port| Endpoint {
                ip: POD,
                port,
                local: true,
            })
            .collect(),
        affinity,
        internal_local: false,
        external_local: false,
    };
    BTreeMap::from([
        ("default/web/tcp/80".to_string(), route(BALANCED, None)),
        (
            "default/sticky/tcp/80".to_string(),
            route(WITH_AFFINITY, Some(10800)),
        ),
    ])
}

#[test]
fn connects_to_a_cluster_ip_go_straight_to_its_endpoints_in_the_node_and_its_pods() {
    let id = std::process::id();
    let node = NetnsGuard::create(&format!("berth-lb-node-{id}")).expect("netns");
    let other = NetnsGuard::create(&format!("berth-lb-other-{id}")).expect("netns");
    let pods_cgroup = format!("berth-test-lb-{id}");
    let _cgroup = CgroupGuard::new(&pods_cgroup);
    let (node_ns, other_ns) = (node.path(), other.path());
    for namespace in [&node_ns, &other_ns] {
        in_ns(namespace, || berth_net::add_local_address(POD, "lo")).expect("an address");
    }
    let ports = [listen(&node_ns, "first", 0), listen(&node_ns, "second", 0)];
    // The same ports answer in the other namespace, under other names: a connect there
    // that were wrongly rewritten would reach them.
    listen(&other_ns, "other-first", ports[0]);
    listen(&other_ns, "other-second", ports[1]);
    let balanced = SocketAddr::from((BALANCED, 80));
    assert!(
        ask(&node_ns, balanced).is_err(),
        "no route leads to the cluster IP"
    );

    let pods = pods_cgroup.clone();
    let mut balancer = in_ns(&node_ns, move || ConnectBalancer::attach(&pods)).expect("attach");
    assert_eq!(balancer.sync(&routes(&ports)).expect("sync"), 1);
    assert_eq!(
        answers(&node_ns, balanced),
        BTreeSet::from(["first".into(), "second".into()])
    );
    assert!(
        ask(&other_ns, balanced).is_err(),
        "another namespace is not balanced"
    );
    assert!(ask(&node_ns, SocketAddr::from((WITH_AFFINITY, 80))).is_err());
    // A pod of the node: a process in the pods' cgroup, in a namespace of its own.
    let from_pod: BTreeSet<String> = (0..20)
        .map(|_| ask_from_cgroup(&pods_cgroup, other.name()))
        .collect();
    assert_eq!(
        from_pod,
        BTreeSet::from(["other-first".into(), "other-second".into()])
    );

    // One endpoint left: every connect goes to it.
    let one = routes(&ports[1..]);
    assert_eq!(balancer.sync(&one).expect("sync"), 1);
    assert_eq!(
        answers(&node_ns, balanced),
        BTreeSet::from(["second".into()])
    );
    assert_eq!(balancer.sync(&one).expect("sync"), 0, "nothing changed");

    assert_eq!(balancer.sync(&BTreeMap::new()).expect("sync"), 1);
    assert!(ask(&node_ns, balanced).is_err(), "withdrawn");
    balancer.sync(&routes(&ports)).expect("sync");
    drop(balancer);
    assert!(
        ask(&node_ns, balanced).is_err(),
        "the program goes with its links"
    );
}

/// What a connect to the balanced address from a process in the cgroup `cgroup` and the
/// named namespace reads.
fn ask_from_cgroup(cgroup: &str, namespace: &str) -> String {
    let script = format!(
        "echo $$ > {}/{cgroup}/cgroup.procs && exec ip netns exec {namespace} busybox nc {BALANCED} 80 </dev/null",
        berth_net::cgroup2_root()
            .expect("a cgroup v2 tree")
            .display()
    );
    let output = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("run sh");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("text")
}
