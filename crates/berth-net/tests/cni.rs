//! CNI plugins driven for real: Debian's containernetworking-plugins (bridge with
//! host-local, portmap, loopback) attach a namespace on a test host, CHECK finds it as
//! ADD left it and then finds a deleted interface, DEL takes everything back, and a
//! failing plugin's own words reach the caller.

use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_net::cni::{
    Attachment, IpRange, NetworkConfig, Outcome, Plugins, PortMapping, RuntimeConfig,
};
use berth_net::netns;
use berth_testkit::guard::{NetnsGuard, Scratch};

/// The namespace the plugins attach, released on drop.
struct ContainerNetns(PathBuf);

impl Drop for ContainerNetns {
    fn drop(&mut self) {
        let _ = netns::remove(&self.0);
    }
}

fn network(ipam_dir: &Path) -> NetworkConfig {
    NetworkConfig::parse(&format!(
        r#"{{"cniVersion": "1.0.0", "name": "testnet", "plugins": [
            {{"type": "bridge", "bridge": "cnitest0", "isGateway": true, "ipMasq": true,
              "capabilities": {{"ipRanges": true}},
              "ipam": {{"type": "host-local", "dataDir": "{}",
                        "routes": [{{"dst": "0.0.0.0/0"}}]}}}},
            {{"type": "portmap", "capabilities": {{"portMappings": true}}}}]}}"#,
        ipam_dir.display()
    ))
    .expect("the test network parses")
}

fn attachment(netns: &Path, ifname: &str) -> Attachment {
    Attachment {
        container_id: "cnitest".into(),
        netns: netns.to_path_buf(),
        ifname: ifname.into(),
        args: vec![("K8S_POD_NAME".into(), "web".into())],
        runtime_config: RuntimeConfig {
            port_mappings: vec![PortMapping {
                host_port: 18080,
                container_port: 8080,
                protocol: "tcp".into(),
                host_ip: String::new(),
            }],
            ip_ranges: vec![vec![IpRange {
                subnet: "10.79.0.0/24".parse().expect("test input"),
            }]],
        },
    }
}

/// Runs `work` with the test host as the current network namespace, so the plugins it
/// starts make their bridge and rules there.
fn on_host<T: Send + 'static>(
    host: &Path,
    work: impl FnOnce() -> berth_net::Result<T> + Send + 'static,
) -> berth_net::Result<T> {
    netns::run_in(host, work)
}

fn reserved(ipam_dir: &Path) -> Vec<String> {
    std::fs::read_dir(ipam_dir.join("testnet"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.parse::<IpAddr>().is_ok())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn debian_plugins_attach_check_and_detach_a_namespace() {
    let host = NetnsGuard::create(&format!("berth-cni-{}", std::process::id())).expect("netns");
    let scratch = Scratch::new("berth-cni").expect("scratch");
    let ipam_dir = scratch.path().join("ipam");
    let container = ContainerNetns(scratch.path().join("netns"));
    netns::create(&container.0).expect("create the namespace");
    let network = network(&ipam_dir);
    let attachment = attachment(&container.0, "eth0");
    let plugins = Plugins::default();

    let (net, plugs, att) = (network.clone(), plugins.clone(), attachment.clone());
    let outcome: Outcome = on_host(&host.path(), move || {
        plugs.add(
            &NetworkConfig::loopback(),
            &Attachment {
                ifname: "lo".into(),
                ..att.clone()
            },
        )?;
        plugs.add(&net, &att)
    })
    .expect("ADD");
    let address = outcome.ipv4().expect("an IPv4 address");
    assert!(
        "10.79.0.0/24"
            .parse::<berth_net::Ipv4Net>()
            .expect("test input")
            .contains(&address),
        "{address} is from the ipRanges the runtime gave"
    );
    assert_eq!(reserved(&ipam_dir), vec![address.to_string()]);

    // The namespace answers on its address and, through portmap, on the host port.
    let listener_ns = container.0.clone();
    let listener = netns::run_in(&listener_ns, || {
        std::net::TcpListener::bind("0.0.0.0:8080").map_err(|e| berth_net::Error::Os {
            what: "listen".into(),
            source: e,
        })
    })
    .expect("listen in the namespace");
    let host_ns = host.path();
    let reach = move |target: (Ipv4Addr, u16)| {
        on_host(&host_ns, move || {
            Ok(TcpStream::connect_timeout(&target.into(), Duration::from_secs(5)).is_ok())
        })
        .expect("test input")
    };
    assert!(reach((address, 8080)), "the address answers from the host");
    let Some(IpAddr::V4(gateway)) = outcome.ips[0].gateway else {
        panic!("the bridge is the gateway: {outcome:?}");
    };
    assert!(
        reach((gateway, 18080)),
        "the host port answers through portmap"
    );
    drop(listener);

    // CHECK through the bridge alone: Debian's portmap (1.1.1) fails CHECK on a namespace
    // without IPv6 (containernetworking/plugins#819).
    let bridge_only = NetworkConfig {
        plugins: network.plugins[..1].to_vec(),
        ..network.clone()
    };
    let (net, plugs, att, out) = (
        bridge_only.clone(),
        plugins.clone(),
        attachment.clone(),
        outcome.clone(),
    );
    on_host(&host.path(), move || plugs.check(&net, &att, &out))
        .expect("CHECK passes as ADD left it");

    // An interface deleted behind the runtime's back fails CHECK, naming the plugin.
    netns::run_in(&container.0, || {
        let status = std::process::Command::new("ip")
            .args(["link", "del", "eth0"])
            .status()
            .map_err(|e| berth_net::Error::Os {
                what: "ip link del".into(),
                source: e,
            })?;
        assert!(status.success());
        Ok(())
    })
    .expect("test input");
    let (net, plugs, att, out) = (
        bridge_only,
        plugins.clone(),
        attachment.clone(),
        outcome.clone(),
    );
    let checked = on_host(&host.path(), move || plugs.check(&net, &att, &out));
    let error = checked
        .expect_err("CHECK fails without the interface")
        .to_string();
    assert!(
        error.contains("plugin type=\"bridge\" failed (CHECK)"),
        "{error}"
    );

    let (net, plugs, att) = (network.clone(), plugins.clone(), attachment.clone());
    on_host(&host.path(), move || plugs.del(&net, &att, Some(&outcome))).expect("DEL");
    assert!(reserved(&ipam_dir).is_empty(), "DEL released the address");
}

#[test]
fn a_failing_plugin_and_a_missing_one_say_why() {
    let host = NetnsGuard::create(&format!("berth-cni-bad-{}", std::process::id())).expect("netns");
    let scratch = Scratch::new("berth-cni-bad").expect("scratch");
    let container = ContainerNetns(scratch.path().join("netns"));
    netns::create(&container.0).expect("create the namespace");
    let bad = NetworkConfig::parse(
        r#"{"cniVersion": "1.0.0", "name": "bad", "type": "bridge", "bridge": "cnibad0",
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "not-a-subnet"}]]}}"#,
    )
    .expect("test input");
    let att = attachment(&container.0, "eth0");
    let error = on_host(&host.path(), move || Plugins::default().add(&bad, &att))
        .expect_err("a bad subnet fails")
        .to_string();
    assert!(
        error.contains("plugin type=\"bridge\" failed (ADD)"),
        "{error}"
    );
    assert!(error.contains("not-a-subnet"), "{error}");

    let missing =
        NetworkConfig::parse(r#"{"cniVersion": "1.0.0", "name": "m", "type": "no-such-plugin"}"#)
            .expect("test input");
    let att = attachment(&container.0, "eth0");
    let plugins = Plugins::new(vec![scratch.path().to_path_buf()]);
    let error = plugins
        .add(&missing, &att)
        .expect_err("no plugin")
        .to_string();
    assert!(error.contains("\"no-such-plugin\""), "{error}");
    assert!(
        error.contains(&scratch.path().display().to_string()),
        "{error}"
    );
}
