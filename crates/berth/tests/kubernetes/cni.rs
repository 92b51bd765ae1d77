//! Pods on a CNI network instead of the built-in bridge: the node's configuration
//! directory holds a conflist of Debian's containernetworking-plugins (bridge with
//! host-local on the node's pod range through `ipRanges`, portmap for hostPorts, and
//! the loopback plugin the runtime adds). Pods get their addresses from host-local,
//! answer on them and on their host port, reach each other, are re-made when their
//! network is found broken after an agent restart (CHECK), and give everything back
//! when deleted (DEL).

use std::path::Path;
use std::time::Duration;

use crate::pods::AllInOne;

const BRIDGE: &str = "cni-test0";

fn conflist(scratch: &Path) -> String {
    format!(
        r#"{{
  "cniVersion": "1.0.0",
  "name": "berth-test",
  "plugins": [
    {{
      "type": "bridge",
      "bridge": "{BRIDGE}",
      "isGateway": true,
      "ipMasq": true,
      "capabilities": {{"ipRanges": true}},
      "ipam": {{
        "type": "host-local",
        "dataDir": "{}",
        "routes": [{{"dst": "0.0.0.0/0"}}]
      }}
    }},
    {{"type": "portmap", "capabilities": {{"portMappings": true}}}}
  ]
}}
"#,
        scratch.join("cni/ipam").display()
    )
}

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: busybox:1
    command: ["sh", "-c", "mkdir /www && echo hello-cni > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports:
    - {containerPort: 8080, hostPort: 18080}
---
apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: shell
    image: busybox:1
    command: ["sleep", "3600"]
"#;

/// The addresses host-local holds for the network.
fn reserved(cluster: &AllInOne) -> Vec<String> {
    std::fs::read_dir(cluster.scratch_path().join("cni/ipam/berth-test"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.parse::<std::net::Ipv4Addr>().is_ok())
                .collect()
        })
        .unwrap_or_default()
}

fn host_links(cluster: &AllInOne) -> String {
    let output = cluster.on_host(&["ip", "-o", "link", "show"]);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The pinned network namespace of the sandbox whose address is `ip`.
fn netns_of(cluster: &AllInOne, ip: &str) -> std::path::PathBuf {
    let pods = cluster.scratch_path().join("run/agent/pods");
    std::fs::read_dir(&pods)
        .unwrap()
        .flatten()
        .map(|sandbox| sandbox.path().join("net"))
        .find(|netns| {
            let output = cluster.on_host(&[
                "nsenter",
                &format!("--net={}", netns.display()),
                "ip",
                "-4",
                "-o",
                "addr",
            ]);
            String::from_utf8_lossy(&output.stdout).contains(&format!(" {ip}/"))
        })
        .unwrap_or_else(|| panic!("no sandbox under {} has {ip}", pods.display()))
}

#[test]
fn pods_run_on_a_cni_network_of_debian_s_plugins() {
    let mut cluster = AllInOne::start_with("cni", |scratch| {
        let dir = scratch.join("cni/net.d");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("10-berth-test.conflist"), conflist(scratch)).unwrap();
    });
    cluster.apply("pods.yaml", PODS);
    let ready = |pod: &str| {
        cluster.pod_field(pod, ".status.podIP", |ip| !ip.is_empty());
        cluster.pod_field(pod, ".status.phase", |phase| phase == "Running")
    };
    ready("web");
    ready("client");
    let web_ip = cluster.pod_field("web", ".status.podIP", |ip| !ip.is_empty());
    let client_ip = cluster.pod_field("client", ".status.podIP", |ip| !ip.is_empty());

    // The addresses are host-local's, from the node's pod range; the bridge is the
    // network's, not Berth's.
    let pod_cidr =
        cluster.kubectl_ok(&["get", "node", "test-node", "-o", "jsonpath={.spec.podCIDR}"]);
    let range: berth_net::Ipv4Net = pod_cidr.parse().unwrap();
    for ip in [&web_ip, &client_ip] {
        assert!(
            range.contains(&ip.parse::<std::net::Ipv4Addr>().unwrap()),
            "{ip} in {pod_cidr}"
        );
    }
    let mut held = reserved(&cluster);
    held.sort();
    let mut expected = vec![web_ip.clone(), client_ip.clone()];
    expected.sort();
    assert_eq!(
        held, expected,
        "host-local holds exactly the pods' addresses"
    );
    let links = host_links(&cluster);
    assert!(links.contains(BRIDGE), "{links}");
    assert!(!links.contains("berth-pods"), "{links}");

    // The pod answers on its address, on its host port (portmap) and to another pod.
    let page = format!("http://{web_ip}:8080/");
    assert_eq!(cluster.curl(&page).trim(), "hello-cni");
    assert_eq!(cluster.curl("http://127.0.0.1:18080/").trim(), "hello-cni");
    let fetched = cluster.kubectl_ok(&["exec", "client", "--", "wget", "-qO-", &page]);
    assert_eq!(fetched.trim(), "hello-cni");

    // DEL gives the deleted pod's address and host port back.
    cluster.kubectl_ok(&["delete", "pod", "web", "--wait=true"]);
    assert_eq!(reserved(&cluster), vec![client_ip.clone()]);
    let output = cluster.on_host(&["curl", "-s", "--max-time", "2", "http://127.0.0.1:18080/"]);
    assert!(
        !output.status.success(),
        "the host port is gone with its pod"
    );

    // A pod whose network broke while no agent ran fails CHECK when the agent comes
    // back, and gets a new sandbox that works.
    let netns = netns_of(&cluster, &client_ip);
    let output = cluster.on_host(&[
        "nsenter",
        &format!("--net={}", netns.display()),
        "ip",
        "link",
        "del",
        "eth0",
    ]);
    assert!(output.status.success(), "{output:?}");
    cluster.kill_and_restart();
    let changed = cluster.events("client", "SandboxChanged");
    assert!(
        changed.contains("will be killed and re-created"),
        "{changed}"
    );
    cluster.kubectl_until(
        &[
            "exec", "client", "--", "ip", "-4", "-o", "addr", "show", "eth0",
        ],
        Duration::from_secs(60),
        |text| text.contains("inet "),
    );
    let new_ip = cluster.pod_field("client", ".status.podIP", |ip| {
        !ip.is_empty() && ip != client_ip
    });
    assert_eq!(
        reserved(&cluster),
        vec![new_ip.clone()],
        "the old address was released"
    );

    cluster.kubectl_ok(&["delete", "pod", "client", "--wait=true"]);
    assert!(reserved(&cluster).is_empty(), "every address is back");
    let links = host_links(&cluster);
    assert!(!links.contains("veth"), "no pod's veth is left: {links}");
}
