//! A container's network end to end on a test host (a network namespace of its own):
//! bridge, veth into a container namespace (and a second one, on a second bridge, without
//! a default route), a port published through nftables and reached
//! on the host's 127.0.0.1, and the network's DNS server answering a container's name.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_net::{
    DnsServer, Firewall, Interface, Names, NetworkRules, PortMapping, Protocol, netns,
};
use berth_testkit::guard::{NetnsGuard, Scratch};

const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const CONTAINER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

/// The container namespace, released on drop.
struct ContainerNetns(PathBuf);

impl Drop for ContainerNetns {
    fn drop(&mut self) {
        let _ = netns::remove(&self.0);
    }
}

fn in_ns<T: Send + 'static>(path: &Path, work: impl FnOnce() -> T + Send + 'static) -> T {
    netns::run_in(path, move || Ok(work())).expect("enter the namespace")
}

#[test]
fn a_published_port_answers_on_the_host_s_loopback_and_names_resolve() {
    let host = NetnsGuard::create(&format!("berth-net-{}", std::process::id())).expect("netns");
    let host_ns = host.path();
    let scratch = Scratch::new("berth-net").expect("scratch");
    let container = ContainerNetns(scratch.path().join("netns"));
    netns::create(&container.0).expect("create the container namespace");
    let container_ns = container.0.clone();
    netns::run_in(&host_ns, move || {
        berth_net::ensure_bridge("bt0", GATEWAY, 24)?;
        let interface = Interface {
            host_name: "vethtest0".into(),
            name: "eth0".into(),
            address: CONTAINER,
            prefix: 24,
            gateway: Some(GATEWAY),
            mac: [0x02, 0x42, 10, 77, 0, 2],
        };
        berth_net::attach(&container_ns, "bt0", &interface)?;
        // A second network: eth1, its own subnet only, no second default route.
        berth_net::ensure_bridge("bt1", Ipv4Addr::new(10, 78, 0, 1), 24)?;
        let second = Interface {
            host_name: "vethtest1".into(),
            name: "eth1".into(),
            address: Ipv4Addr::new(10, 78, 0, 2),
            prefix: 24,
            gateway: None,
            mac: [0x02, 0x42, 10, 78, 0, 2],
        };
        berth_net::attach(&container_ns, "bt1", &second)?;
        let firewall = Firewall::install("berth_test", &[])?;
        firewall.set_networks(&[NetworkRules {
            bridge: "bt0".into(),
            subnet: "10.77.0.0/24".parse().expect("subnet"),
            internal: false,
            routed: None,
        }])?;
        firewall.publish(&[PortMapping {
            host_ip: None,
            host_port: 18080,
            protocol: Protocol::Tcp,
            container_ip: CONTAINER,
            container_port: 80,
        }])
    })
    .expect("wire the container");

    // The bridge keeps the MAC made from its gateway's address whatever ports join it,
    // so containers' ARP caches stay true.
    let link = std::process::Command::new("ip")
        .args(["-n", host.name(), "-o", "link", "show", "bt0"])
        .output()
        .expect("ip link");
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(link.contains("link/ether 02:42:0a:4d:00:01 "), "{link}");

    // The kernel's routes in the container: (interface, destination), hex little-endian.
    let routes = in_ns(&container.0, || {
        std::fs::read_to_string("/proc/thread-self/net/route").expect("routes")
    });
    let mut routes: Vec<(&str, &str)> = routes
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            Some((fields.next()?, fields.next()?))
        })
        .collect();
    routes.sort();
    assert_eq!(
        routes,
        [
            ("eth0", "00000000"),
            ("eth0", "00004D0A"),
            ("eth1", "00004E0A")
        ]
    );

    let server = in_ns(&container.0, || TcpListener::bind("0.0.0.0:80")).expect("listen");
    let serving = std::thread::spawn(move || {
        let (mut stream, peer) = server.accept().expect("accept");
        stream.write_all(b"hello").expect("write");
        peer
    });
    let reply = in_ns(&host_ns, || {
        let mut stream = TcpStream::connect_timeout(
            &"127.0.0.1:18080".parse().expect("addr"),
            Duration::from_secs(5),
        )?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        std::io::Result::Ok(text)
    })
    .expect("connect to the published port");
    assert_eq!(reply, "hello");
    // Loopback traffic arrives masqueraded as the gateway's.
    assert_eq!(serving.join().expect("server").ip(), GATEWAY);

    let names = Names::default();
    names.set(HashMap::from([("web".to_string(), vec![CONTAINER])]));
    let _dns = in_ns(&host_ns, move || {
        DnsServer::start(GATEWAY, std::sync::Arc::new(names), Vec::new())
    })
    .expect("dns");
    let answers = in_ns(&container.0, || {
        let socket = UdpSocket::bind("0.0.0.0:0")?;
        socket.set_read_timeout(Some(Duration::from_secs(5)))?;
        // A query for web./A, id 0x1234, recursion desired.
        let query = [
            0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'w', b'e', b'b', 0, 0, 1, 0, 1,
        ];
        socket.send_to(&query, (GATEWAY, 53))?;
        let mut buffer = [0u8; 512];
        let length = socket.recv(&mut buffer)?;
        std::io::Result::Ok(buffer[..length].to_vec())
    })
    .expect("ask the DNS server");
    assert_eq!(&answers[..2], &[0x12, 0x34], "the reply answers our id");
    assert_eq!(
        u16::from_be_bytes([answers[6], answers[7]]),
        1,
        "one answer"
    );
    assert_eq!(&answers[answers.len() - 4..], &CONTAINER.octets());

    // The same question over TCP, each message after its two-byte length.
    let over_tcp = in_ns(&container.0, || {
        let mut stream = TcpStream::connect_timeout(
            &std::net::SocketAddr::from((GATEWAY, 53)),
            Duration::from_secs(5),
        )?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let query = [
            0x56, 0x78, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'w', b'e', b'b', 0, 0, 1, 0, 1,
        ];
        stream.write_all(&[0, 21])?;
        stream.write_all(&query)?;
        let mut length = [0u8; 2];
        stream.read_exact(&mut length)?;
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(length))];
        stream.read_exact(&mut reply)?;
        std::io::Result::Ok(reply)
    })
    .expect("ask the DNS server over TCP");
    assert_eq!(&over_tcp[..2], &[0x56, 0x78]);
    assert_eq!(&over_tcp[over_tcp.len() - 4..], &CONTAINER.octets());
}
