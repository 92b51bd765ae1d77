//! Service rules in a test host's kernel: a cluster IP and a node port reach every
//! endpoint (two pods' namespaces on a bridge), an endpoint's change is in force after
//! one sync, a Service without endpoints refuses connections at once, and removing the
//! table leaves nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_net::{Endpoint, Interface, Protocol, ServiceProxy, ServiceRoute, netns};
use berth_testkit::guard::{NetnsGuard, Scratch};

const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 1);
const CLUSTER_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

/// A pod's namespace, released on drop.
struct PodNetns(PathBuf);

impl Drop for PodNetns {
    fn drop(&mut self) {
        let _ = netns::remove(&self.0);
    }
}

fn in_ns<T: Send + 'static>(path: &Path, work: impl FnOnce() -> T + Send + 'static) -> T {
    netns::run_in(path, move || Ok(work())).expect("enter the namespace")
}

/// A pod at 10.79.0.`last` on the bridge that answers every connection to port 8080
/// with its name.
fn pod(scratch: &Scratch, host: &Path, last: u8) -> PodNetns {
    let pod = PodNetns(scratch.path().join(format!("pod{last}")));
    netns::create(&pod.0).expect("create the pod's namespace");
    let path = pod.0.clone();
    netns::run_in(host, move || {
        let interface = Interface {
            host_name: format!("vethsvc{last}"),
            name: "eth0".into(),
            address: Ipv4Addr::new(10, 79, 0, last),
            prefix: 24,
            gateway: Some(GATEWAY),
            mac: [0x02, 0x42, 10, 79, 0, last],
        };
        berth_net::attach(&path, "bsvc0", &interface)
    })
    .expect("wire the pod");
    let listener = in_ns(&pod.0, || TcpListener::bind("0.0.0.0:8080")).expect("listen");
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(format!("pod{last}").as_bytes());
        }
    });
    pod
}

/// What answers a connection to `address` from the host; the error when none does.
fn ask(host: &Path, address: SocketAddr) -> std::io::Result<String> {
    in_ns(host, move || {
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply)?;
        Ok(reply)
    })
}

fn web(endpoints: &[u8]) -> BTreeMap<String, ServiceRoute> {
    let route = ServiceRoute {
        cluster_ip: CLUSTER_IP,
        port: 80,
        protocol: Protocol::Tcp,
        node_ports: vec![30080],
        endpoints: endpoints
            .iter()
            .map(|last| Endpoint {
                ip: Ipv4Addr::new(10, 79, 0, *last),
                port: 8080,
                local: true,
            })
            .collect(),
        affinity: None,
        internal_local: false,
        external_local: false,
    };
    BTreeMap::from([("default/web/tcp/80".to_string(), route)])
}

#[test]
fn cluster_ips_and_node_ports_reach_every_endpoint_and_follow_changes() {
    let host = NetnsGuard::create(&format!("berth-svc-{}", std::process::id())).expect("netns");
    let host_ns = host.path();
    let scratch = Scratch::new("berth-svc").expect("scratch");
    netns::run_in(&host_ns, || {
        berth_net::ensure_bridge("bsvc0", GATEWAY, 24)?;
        berth_net::route_through("10.96.0.0/16".parse().expect("a CIDR"), "bsvc0")
    })
    .expect("make the bridge");
    let pods = [pod(&scratch, &host_ns, 2), pod(&scratch, &host_ns, 3)];
    let range = "10.79.0.0/24".parse().expect("a CIDR");
    let mut proxy = in_ns(&host_ns, move || {
        ServiceProxy::install("berth_svc_test", range)
    })
    .expect("install the table");
    let sync = |proxy: ServiceProxy, wanted| {
        in_ns(&host_ns, move || {
            let mut proxy = proxy;
            proxy.sync(wanted).map(|changed| (proxy, changed))
        })
        .expect("sync")
    };
    let (synced, changed) = sync(proxy, web(&[2, 3]));
    proxy = synced;
    assert_eq!(changed, 1);

    let cluster = SocketAddr::from((CLUSTER_IP, 80));
    let node_port = SocketAddr::from((GATEWAY, 30080));
    let answers = |address| -> BTreeSet<String> {
        (0..40)
            .map(|_| ask(&host_ns, address).expect("an answer"))
            .collect()
    };
    assert_eq!(
        answers(cluster),
        BTreeSet::from(["pod2".into(), "pod3".into()])
    );
    let on_loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 30080));
    assert_eq!(
        answers(on_loopback),
        BTreeSet::from(["pod2".into(), "pod3".into()])
    );
    assert_eq!(
        answers(node_port),
        BTreeSet::from(["pod2".into(), "pod3".into()])
    );

    // Hairpin: a pod reaches itself through its Service.
    let pod2 = pods[0].0.clone();
    let from_pod2: BTreeSet<String> = (0..40)
        .map(|_| ask(&pod2, cluster).expect("an answer from inside"))
        .collect();
    assert_eq!(from_pod2, BTreeSet::from(["pod2".into(), "pod3".into()]));

    // Under ClientIP affinity, one client keeps one endpoint.
    let mut sticky = web(&[2, 3]);
    for route in sticky.values_mut() {
        route.affinity = Some(60);
    }
    let (synced, _) = sync(proxy, sticky);
    proxy = synced;
    assert_eq!(answers(cluster).len(), 1);

    // One endpoint gone: the next connection already avoids it.
    let (synced, changed) = sync(proxy, web(&[3]));
    proxy = synced;
    assert_eq!(changed, 1);
    assert_eq!(answers(cluster), BTreeSet::from(["pod3".into()]));

    // None left: refused at once, not left to time out.
    let (synced, _) = sync(proxy, web(&[]));
    proxy = synced;
    let refused = ask(&host_ns, cluster).expect_err("no endpoint answers");
    assert_eq!(
        refused.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "{refused}"
    );

    in_ns(&host_ns, move || proxy.remove()).expect("remove the table");
    let tables = std::process::Command::new("ip")
        .args(["netns", "exec", host.name(), "nft", "list", "tables"])
        .output()
        .expect("nft");
    let tables = String::from_utf8_lossy(&tables.stdout);
    assert!(!tables.contains("berth_svc_test"), "{tables}");
}
