//! Networks through the docker CLI, each daemon on a test host of its own: ports published
//! with `-p` answer curl on the host's 127.0.0.1, containers on a user network find each
//! other by name and alias, outbound traffic leaves masqueraded, and `--network
//! none|host|container:` give the namespaces Docker gives.

use super::*;

/// A daemon with the busybox and webapp images loaded.
fn daemon_with_webapp(name: &str) -> Daemon {
    let daemon = containers::daemon_with_busybox(name);
    let archive = daemon.archive("webapp");
    daemon.docker_ok(&["load", "-i", archive.to_str().unwrap()]);
    daemon
}

/// Waits until `url` answers on the daemon's host; its body.
fn wait_for_http(daemon: &Daemon, url: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(body) = daemon.curl(url) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{url} did not answer within 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn published_ports_answer_curl_on_the_host_s_loopback_until_the_container_stops() {
    let daemon = daemon_with_webapp("publish");
    daemon.docker_ok(&["run", "-d", "--name", "web", "-p", "18080:8080", "webapp"]);
    assert_eq!(
        wait_for_http(&daemon, "http://127.0.0.1:18080/healthz").trim(),
        "ok"
    );
    assert_eq!(
        daemon.docker_ok(&["port", "web"]).trim(),
        "8080/tcp -> 0.0.0.0:18080"
    );
    let ps = daemon.docker_ok(&["ps", "--format", "{{.Ports}}"]);
    assert_eq!(ps.trim(), "0.0.0.0:18080->8080/tcp");

    // The same port again is refused by name; a port the kernel picks, on 127.0.0.1 only.
    let taken = daemon.docker(&["run", "-d", "--name", "again", "-p", "18080:8080", "webapp"]);
    assert!(!taken.status.success());
    assert!(
        String::from_utf8_lossy(&taken.stderr).contains("port is already allocated"),
        "{}",
        String::from_utf8_lossy(&taken.stderr)
    );
    daemon.docker_ok(&["rm", "-f", "again"]);
    daemon.docker_ok(&[
        "run",
        "-d",
        "--name",
        "picked",
        "-p",
        "127.0.0.1::8080",
        "webapp",
    ]);
    let port = daemon.docker_ok(&["port", "picked", "8080"]);
    let address = port.trim().to_string();
    assert!(address.starts_with("127.0.0.1:"), "{address}");
    assert_eq!(
        wait_for_http(&daemon, &format!("http://{address}/healthz")).trim(),
        "ok"
    );

    // UDP: a datagram to the published port reaches the container and its answer returns.
    daemon.docker_ok(&[
        "run",
        "-d",
        "--name",
        "udp",
        "-p",
        "19000:9000/udp",
        "--entrypoint",
        "/bin/testapp",
        "webapp",
        "udp-echo",
        "9000",
    ]);
    let echo = "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.settimeout(0.2)\n\
        for i in range(100):\n  s.sendto(b'over-udp',('127.0.0.1',19000))\n  try:\n    print(s.recv(100).decode()); break\n  except OSError: pass";
    let output = daemon.on_host(&["python3", "-c", echo]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "over-udp");

    // Stopped, the port answers no more and is free for another container.
    daemon.docker_ok(&["stop", "-t", "1", "web"]);
    assert_eq!(daemon.curl("http://127.0.0.1:18080/healthz"), None);
    daemon.docker_ok(&["run", "-d", "--name", "web2", "-p", "18080:8080", "webapp"]);
    assert_eq!(
        wait_for_http(&daemon, "http://127.0.0.1:18080/healthz").trim(),
        "ok"
    );
}

#[test]
fn containers_on_a_user_network_find_each_other_by_name_and_alias() {
    let daemon = daemon_with_webapp("names");
    daemon.docker_ok(&["network", "create", "--subnet", "10.91.0.0/24", "app"]);
    let listed = daemon.docker_ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    assert_eq!(
        listed.lines().collect::<Vec<_>>(),
        ["app bridge", "bridge bridge", "host host", "none null"]
    );
    daemon.docker_ok(&[
        "run",
        "-d",
        "--name",
        "api",
        "--network",
        "app",
        "--network-alias",
        "backend",
        "webapp",
    ]);
    let ip = daemon.docker_ok(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        "api",
    ]);
    assert_eq!(ip.trim(), "10.91.0.2");
    for name in ["api", "backend"] {
        let url = format!("http://{name}:8080/healthz");
        let script =
            format!("for i in $(seq 100); do wget -qO- {url} && exit 0; sleep 0.1; done; exit 1");
        let body = daemon.docker_ok(&[
            "run",
            "--rm",
            "--network",
            "app",
            "busybox",
            "sh",
            "-c",
            &script,
        ]);
        assert_eq!(body.trim(), "ok", "{name}");
    }
    // Names are the network's own: the default bridge does not know them.
    let outside = daemon.docker(&["run", "--rm", "busybox", "nslookup", "api"]);
    assert!(!outside.status.success());

    let inspect = daemon.docker_ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}",
        "app",
    ]);
    assert_eq!(inspect.trim(), "api 10.91.0.2/24");
    let busy = daemon.docker(&["network", "rm", "app"]);
    assert!(String::from_utf8_lossy(&busy.stderr).contains("has active endpoints"));
    let predefined = daemon.docker(&["network", "rm", "bridge"]);
    assert!(String::from_utf8_lossy(&predefined.stderr).contains("pre-defined network"));
    let missing = daemon.docker(&["run", "--rm", "--network", "nowhere", "busybox", "true"]);
    let missing = String::from_utf8_lossy(&missing.stderr);
    assert!(missing.contains("network nowhere not found"), "{missing}");
    daemon.docker_ok(&["rm", "-f", "api"]);
    daemon.docker_ok(&["network", "rm", "app"]);
    let bridges = daemon.on_host(&["ip", "-br", "link"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&bridges.stdout).contains("br-"));
}

#[test]
fn outbound_traffic_leaves_masqueraded_as_the_host() {
    let daemon = containers::daemon_with_busybox("outbound");
    // A second machine beyond the daemon's host, 10.200.0.2, behind a veth pair.
    let outside = NetnsGuard::create(&format!("berth-outside-{}", std::process::id())).unwrap();
    let run = |command: &mut Command| assert!(command.status().unwrap().success());
    run(Command::new("ip").args([
        "link",
        "add",
        "up0",
        "netns",
        daemon.host.name(),
        "type",
        "veth",
        "peer",
        "name",
        "up1",
        "netns",
        outside.name(),
    ]));
    run(&mut daemon.on_host(&["ip", "addr", "add", "10.200.0.1/24", "dev", "up0"]));
    run(&mut daemon.on_host(&["ip", "link", "set", "up0", "up"]));
    run(Command::new("ip").args([
        "-n",
        outside.name(),
        "addr",
        "add",
        "10.200.0.2/24",
        "dev",
        "up1",
    ]));
    run(Command::new("ip").args(["-n", outside.name(), "link", "set", "up1", "up"]));
    // It answers each connection with the address it came from.
    let server = Command::new("nsenter")
        .arg(format!("--net={}", outside.path().display()))
        .args(["python3", "-c", "import socket\ns=socket.socket()\ns.bind(('10.200.0.2',7000))\ns.listen()\nc,a=s.accept()\nc.sendall(a[0].encode())\nc.close()"])
        .spawn()
        .unwrap();
    let _server = ChildGuard(server);
    let seen = daemon.docker_ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "for i in $(seq 100); do nc 10.200.0.2 7000 && exit 0; sleep 0.1; done; exit 1",
    ]);
    assert_eq!(seen.trim(), "10.200.0.1");
}

#[test]
fn network_none_host_and_container_modes_share_the_namespaces_docker_s_do() {
    let daemon = containers::daemon_with_busybox("modes");
    let links = daemon.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "ip",
        "-o",
        "link",
    ]);
    let names: Vec<&str> = links.lines().filter_map(|l| l.split(": ").nth(1)).collect();
    assert_eq!(names, ["lo"]);
    assert!(links.contains("UP"), "lo is up: {links}");

    let host_ns = std::fs::metadata(daemon.host.path()).unwrap();
    let in_host = daemon.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "readlink",
        "/proc/self/ns/net",
    ]);
    assert_eq!(
        in_host.trim(),
        format!("net:[{}]", std::os::unix::fs::MetadataExt::ino(&host_ns))
    );

    daemon.docker_ok(&["run", "-d", "--name", "first", "busybox", "sleep", "300"]);
    let first = daemon.docker_ok(&["exec", "first", "readlink", "/proc/self/ns/net"]);
    let joined = daemon.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "container:first",
        "busybox",
        "readlink",
        "/proc/self/ns/net",
    ]);
    assert_eq!(joined, first);
    assert_ne!(first.trim(), in_host.trim());
}

#[test]
fn berth_s_own_cli_loads_publishes_and_manages_the_container() {
    let daemon = Daemon::start("berth-cli");
    let archive = daemon.archive("webapp");
    let loaded = daemon.berth_ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(loaded.trim(), "Loaded image: webapp:latest");
    daemon.berth_ok(&["run", "-d", "--name", "web", "-p", "18081:8080", "webapp"]);
    assert!(wait_for_http(&daemon, "http://127.0.0.1:18081/").contains("GET / HTTP/1.1"));
    assert_eq!(
        daemon.berth_ok(&["port", "web"]),
        daemon.docker_ok(&["port", "web"])
    );
    assert_eq!(
        daemon.berth_ok(&["port", "web", "8080"]).trim(),
        "0.0.0.0:18081"
    );
    let ps = daemon.berth_ok(&["ps"]);
    assert!(ps.contains("0.0.0.0:18081->8080/tcp"), "{ps}");
    assert_eq!(
        daemon.berth_ok(&["logs", "web"]),
        daemon.docker_ok(&["logs", "web"])
    );
    assert_eq!(daemon.berth_ok(&["stop", "-t", "1", "web"]).trim(), "web");
    assert_eq!(daemon.curl("http://127.0.0.1:18081/"), None);
    assert_eq!(daemon.berth_ok(&["rm", "web"]).trim(), "web");
    let gone = daemon.berth(&["rm", "web"]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("No such container: web"));
}

#[test]
fn the_python_sdk_creates_networks_and_publishes_ports() {
    let daemon = daemon_with_webapp("python-net");
    let script = r#"
import sys, docker
client = docker.DockerClient(base_url=sys.argv[1])
net = client.networks.create("pynet", driver="bridge", ipam=docker.types.IPAMConfig(
    pool_configs=[docker.types.IPAMPool(subnet="10.92.0.0/24")]))
c = client.containers.run("webapp", detach=True, name="pyweb", ports={"8080/tcp": 18082}, network="pynet")
c.reload()
assert c.ports == {"8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18082"}]}, c.ports
net.reload()
assert [x.name for x in net.containers] == ["pyweb"], net.containers
assert sorted(n.name for n in client.networks.list()) == ["bridge", "host", "none", "pynet"]
print(c.attrs["NetworkSettings"]["Networks"]["pynet"]["IPAddress"])
back = client.networks.create("pyback", ipam=docker.types.IPAMConfig(
    pool_configs=[docker.types.IPAMPool(subnet="10.96.0.0/24")]))
back.connect(c, aliases=["pyalias"])
c.reload()
print(c.attrs["NetworkSettings"]["Networks"]["pyback"]["IPAddress"], c.attrs["NetworkSettings"]["Networks"]["pyback"]["Aliases"])
back.disconnect(c)
c.reload()
print(sorted(c.attrs["NetworkSettings"]["Networks"]))
back.remove()
"#;
    daemon.python_sdk(script, "10.92.0.2\n10.96.0.2 ['pyalias']\n['pynet']");
    assert_eq!(
        wait_for_http(&daemon, "http://127.0.0.1:18082/healthz").trim(),
        "ok"
    );
    daemon.docker_ok(&["rm", "-f", "pyweb"]);
    daemon.docker_ok(&["network", "rm", "pynet"]);
}

#[test]
fn berth_s_own_cli_mirrors_docker_s_object_commands() {
    let daemon = containers::daemon_with_busybox("berth-objects");
    daemon.berth_ok(&["network", "create", "--subnet", "10.93.0.0/24", "net1"]);
    assert_eq!(
        daemon.berth_ok(&["network", "ls"]),
        daemon.docker_ok(&["network", "ls"])
    );
    assert_eq!(
        daemon.berth_ok(&["volume", "create", "vol1"]).trim(),
        "vol1"
    );
    assert_eq!(
        daemon.berth_ok(&["volume", "ls"]),
        daemon.docker_ok(&["volume", "ls"])
    );
    let inspected: serde_json::Value =
        serde_json::from_str(&daemon.berth_ok(&["network", "inspect", "net1"])).unwrap();
    assert_eq!(inspected[0]["IPAM"]["Config"][0]["Subnet"], "10.93.0.0/24");

    daemon.berth_ok(&[
        "run",
        "-d",
        "--name",
        "life",
        "--network",
        "net1",
        "busybox",
        "sleep",
        "300",
    ]);
    assert_eq!(daemon.berth_ok(&["pause", "life"]).trim(), "life");
    assert_eq!(
        daemon
            .docker_ok(&["inspect", "-f", "{{.State.Status}}", "life"])
            .trim(),
        "paused"
    );
    daemon.berth_ok(&["unpause", "life"]);
    assert_eq!(
        daemon.berth_ok(&["kill", "-s", "TERM", "life"]).trim(),
        "life"
    );
    // PID 1 ignores SIGTERM: it needs SIGKILL, after which wait reports 137.
    daemon.berth_ok(&["kill", "life"]);
    assert_eq!(daemon.berth_ok(&["wait", "life"]).trim(), "137");
    daemon.berth_ok(&["start", "life"]);
    daemon.berth_ok(&["restart", "-t", "0", "life"]);
    let objects: serde_json::Value =
        serde_json::from_str(&daemon.berth_ok(&["inspect", "life", "busybox"])).unwrap();
    assert_eq!(objects[0]["Name"], "/life");
    assert_eq!(objects[0]["State"]["Running"], true);
    assert!(objects[1]["RepoTags"][0] == "busybox:latest", "{objects}");
    let missing = daemon.berth(&["inspect", "nothing"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("No such object: nothing"));

    daemon.berth_ok(&["tag", "busybox", "mine:1"]);
    assert_eq!(
        daemon.berth_ok(&["rmi", "mine:1"]).trim(),
        "Untagged: mine:1"
    );
    assert!(
        daemon
            .berth_ok(&["version"])
            .contains("Server: Berth Engine")
    );
    daemon.berth_ok(&["rm", "-f", "life"]);
    assert_eq!(daemon.berth_ok(&["network", "rm", "net1"]).trim(), "net1");
    assert_eq!(daemon.berth_ok(&["volume", "rm", "vol1"]).trim(), "vol1");
}

/// Several starts of one container at once launch it once: each loser used to set up a
/// network of its own and tear it down again, freeing the winner's published port.
#[test]
fn concurrent_starts_launch_a_container_once_and_keep_its_port() {
    use std::io::{Read, Write};

    const STARTS: usize = 8;
    let daemon = daemon_with_webapp("starts");
    let created = daemon.docker_ok(&["create", "--name", "web", "-p", "18081:8080", "webapp"]);
    let id = created.trim();
    let ready = std::sync::Barrier::new(STARTS);
    let answers: Vec<String> = std::thread::scope(|scope| {
        let starts: Vec<_> = (0..STARTS)
            .map(|_| {
                scope.spawn(|| {
                    let mut stream =
                        std::os::unix::net::UnixStream::connect(&daemon.socket).unwrap();
                    ready.wait();
                    write!(
                        stream,
                        "POST /containers/{id}/start HTTP/1.1\r\nHost: berth\r\n\
                         Content-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                    .unwrap();
                    let mut response = String::new();
                    stream.read_to_string(&mut response).unwrap();
                    response.lines().next().unwrap_or_default().to_string()
                })
            })
            .collect();
        starts.into_iter().map(|s| s.join().unwrap()).collect()
    });
    let launched = answers.iter().filter(|a| a.contains(" 204 ")).count();
    let already = answers.iter().filter(|a| a.contains(" 304 ")).count();
    assert_eq!((launched, already), (1, STARTS - 1), "answers: {answers:?}");
    assert_eq!(
        wait_for_http(&daemon, "http://127.0.0.1:18081/healthz").trim(),
        "ok"
    );
    let state = daemon.docker_ok(&["inspect", "-f", "{{.State.Status}}|{{.State.Error}}", "web"]);
    assert_eq!(state.trim(), "running|");
}

/// The names `docker inspect` lists under NetworkSettings.Networks, with the address
/// on each: `name=address`, in name order.
fn inspected_networks(daemon: &Daemon, container: &str) -> String {
    daemon
        .docker_ok(&[
            "inspect",
            "-f",
            "{{range $name, $n := .NetworkSettings.Networks}}{{$name}}={{$n.IPAddress}} {{end}}",
            container,
        ])
        .trim()
        .to_string()
}

/// `nslookup NAME` run in `container`, retried while the network's DNS is being told:
/// its output once NAME resolves, None when it never does (slowly: a name the network
/// does not know goes to the host's resolvers).
fn lookup(daemon: &Daemon, container: &str, name: &str) -> Option<String> {
    let script =
        format!("for i in $(seq 50); do nslookup {name} && exit 0; sleep 0.1; done; exit 1");
    let output = daemon.docker(&["exec", container, "sh", "-c", &script]);
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs busybox `sleep 300` as `name` on `network`; its id.
fn sleeper(daemon: &Daemon, name: &str, network: &str) -> String {
    daemon.docker_ok(&[
        "run",
        "-d",
        "--name",
        name,
        "--network",
        network,
        "busybox",
        "sleep",
        "300",
    ])
}

/// The stderr of a docker command that must fail.
fn refusal(daemon: &Daemon, args: &[&str]) -> String {
    let output = daemon.docker(args);
    assert!(!output.status.success(), "docker {args:?} succeeded");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn network_connect_adds_a_second_network_and_disconnect_takes_it_away() {
    let mut daemon = containers::daemon_with_busybox("connect");
    let since = unix_now().to_string();
    daemon.docker_ok(&["network", "create", "--subnet", "10.94.0.0/24", "front"]);
    daemon.docker_ok(&["network", "create", "--subnet", "10.95.0.0/24", "back"]);
    let app = sleeper(&daemon, "app", "front");
    let app = app.trim();
    sleeper(&daemon, "peer", "back");
    let unknown = daemon.docker(&["exec", "peer", "nslookup", "app"]);
    assert!(!unknown.status.success(), "{unknown:?}");

    // Running, it gets eth1 with the next address of back's subnet, and its name and
    // alias there; the default route stays on front.
    daemon.docker_ok(&["network", "connect", "--alias", "api", "back", "app"]);
    let eth1 = daemon.docker_ok(&["exec", "app", "ip", "-o", "-4", "addr", "show", "eth1"]);
    assert!(eth1.contains("inet 10.95.0.3/24"), "{eth1}");
    let route = daemon.docker_ok(&["exec", "app", "ip", "route", "show", "default"]);
    assert!(route.contains("via 10.94.0.1 dev eth0"), "{route}");
    assert_eq!(
        inspected_networks(&daemon, "app"),
        "back=10.95.0.3 front=10.94.0.2"
    );
    // Its /etc/hosts names it at both addresses, as Docker's does.
    let hosts = daemon.docker_ok(&["exec", "app", "cat", "/etc/hosts"]);
    let own = format!("\t{}\n", &app[..12]);
    for address in ["10.94.0.2", "10.95.0.3"] {
        assert!(hosts.contains(&format!("{address}{own}")), "{hosts}");
    }
    let members = daemon.docker_ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.Name}}={{.IPv4Address}} {{end}}",
        "back",
    ]);
    let mut members: Vec<&str> = members.split_whitespace().collect();
    members.sort();
    assert_eq!(members, ["app=10.95.0.3/24", "peer=10.95.0.2/24"]);
    for name in ["app", "api"] {
        let found = lookup(&daemon, "peer", name).unwrap_or_default();
        assert!(found.contains("10.95.0.3"), "{name}: {found}");
    }
    daemon.docker_ok(&["exec", "peer", "ping", "-c", "1", "-W", "5", "app"]);
    // And it finds back's containers by name, through front's DNS server.
    let found = lookup(&daemon, "app", "peer").unwrap_or_default();
    assert!(found.contains("10.95.0.2"), "{found}");
    daemon.docker_ok(&["exec", "app", "ping", "-c", "1", "-W", "5", "peer"]);

    // A daemon restarted under its running containers knows both networks of app again.
    daemon.kill_and_restart();
    let found = lookup(&daemon, "peer", "api").unwrap_or_default();
    assert!(found.contains("10.95.0.3"), "{found}");
    assert_eq!(
        inspected_networks(&daemon, "app"),
        "back=10.95.0.3 front=10.94.0.2"
    );

    // Docker's refusals, in Docker's words.
    let twice = refusal(&daemon, &["network", "connect", "back", "app"]);
    assert!(
        twice.contains("endpoint with name app already exists in network back"),
        "{twice}"
    );
    let stranger = refusal(&daemon, &["network", "disconnect", "bridge", "app"]);
    assert!(
        stranger.contains(&format!(
            "container {app} is not connected to network bridge"
        )),
        "{stranger}"
    );
    let host = refusal(&daemon, &["network", "connect", "host", "app"]);
    assert!(
        host.contains("cannot be disconnected from host network or connected to host network"),
        "{host}"
    );
    let nowhere = refusal(&daemon, &["network", "connect", "nowhere", "app"]);
    assert!(nowhere.contains("network nowhere not found"), "{nowhere}");
    let nobody = refusal(&daemon, &["network", "connect", "back", "nobody"]);
    assert!(nobody.contains("No such container: nobody"), "{nobody}");
    let ip6 = refusal(
        &daemon,
        &[
            "network",
            "connect",
            "--link-local-ip",
            "169.254.0.9",
            "front",
            "peer",
        ],
    );
    assert!(
        ip6.contains("berth does not support --link-local-ip"),
        "{ip6}"
    );
    daemon.docker_ok(&[
        "run",
        "-d",
        "--name",
        "alone",
        "--network",
        "none",
        "busybox",
        "sleep",
        "300",
    ]);
    let alone = refusal(&daemon, &["network", "connect", "back", "alone"]);
    assert!(alone.contains("in private (none) mode"), "{alone}");

    // Disconnected, the interface, the address and the names are gone.
    daemon.docker_ok(&["network", "disconnect", "back", "app"]);
    let links = daemon.docker_ok(&["exec", "app", "ip", "-o", "link"]);
    assert!(!links.contains("eth1"), "{links}");
    let hosts = daemon.docker_ok(&["exec", "app", "cat", "/etc/hosts"]);
    assert!(!hosts.contains("10.95.0.3"), "{hosts}");
    assert_eq!(inspected_networks(&daemon, "app"), "front=10.94.0.2");
    let gone = daemon.docker(&["exec", "peer", "nslookup", "app"]);
    assert!(!gone.status.success(), "{gone:?}");
    let gone = daemon.docker(&["exec", "app", "nslookup", "peer"]);
    assert!(!gone.status.success(), "{gone:?}");

    // A stopped container keeps the connection for its next start.
    daemon.docker_ok(&[
        "create",
        "--name",
        "later",
        "--network",
        "front",
        "busybox",
        "sleep",
        "300",
    ]);
    daemon.docker_ok(&["network", "connect", "--ip", "10.95.0.50", "back", "later"]);
    assert_eq!(inspected_networks(&daemon, "later"), "back= front=");
    let ipam = daemon.docker_ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.back.IPAMConfig.IPv4Address}}",
        "later",
    ]);
    assert_eq!(ipam.trim(), "10.95.0.50");
    daemon.docker_ok(&["start", "later"]);
    let eth1 = daemon.docker_ok(&["exec", "later", "ip", "-o", "-4", "addr", "show", "eth1"]);
    assert!(eth1.contains("inet 10.95.0.50/24"), "{eth1}");
    let found = lookup(&daemon, "peer", "later").unwrap_or_default();
    assert!(found.contains("10.95.0.50"), "{found}");
    daemon.docker_ok(&["stop", "-t", "0", "later"]);
    daemon.docker_ok(&["network", "disconnect", "back", "later"]);
    assert_eq!(inspected_networks(&daemon, "later"), "front=");
    daemon.docker_ok(&["network", "disconnect", "front", "later"]);
    assert_eq!(inspected_networks(&daemon, "later"), "");
    daemon.docker_ok(&["network", "connect", "front", "later"]);
    assert_eq!(inspected_networks(&daemon, "later"), "front=");

    // On the default bridge and connected to back, it asks back's DNS server from then
    // on, and the host's servers again once disconnected.
    sleeper(&daemon, "plain", "bridge");
    daemon.docker_ok(&["network", "connect", "back", "plain"]);
    let found = lookup(&daemon, "plain", "peer").unwrap_or_default();
    assert!(found.contains("10.95.0.2"), "{found}");
    daemon.docker_ok(&["network", "disconnect", "back", "plain"]);
    let resolv = daemon.docker_ok(&["exec", "plain", "cat", "/etc/resolv.conf"]);
    assert!(!resolv.contains("10.95.0.1"), "{resolv}");

    // Two networks at create, as Docker 28 takes them.
    daemon.docker_ok(&[
        "run",
        "-d",
        "--name",
        "both",
        "--network",
        "front",
        "--network",
        "back",
        "busybox",
        "sleep",
        "300",
    ]);
    let links = daemon.docker_ok(&["exec", "both", "ip", "-o", "link"]);
    assert!(links.contains("eth0") && links.contains("eth1"), "{links}");
    assert!(lookup(&daemon, "peer", "both").is_some());

    // Off the network it was created on, the next one takes the default route; back on
    // it, it is on both again, and at its next start as at its first.
    daemon.docker_ok(&["network", "disconnect", "front", "both"]);
    assert_eq!(inspected_networks(&daemon, "both"), "back=10.95.0.3");
    let route = daemon.docker_ok(&["exec", "both", "ip", "route", "show", "default"]);
    assert!(route.contains("via 10.95.0.1 dev eth1"), "{route}");
    let links = daemon.docker_ok(&["exec", "both", "ip", "-o", "link"]);
    assert!(!links.contains("eth0"), "{links}");
    daemon.docker_ok(&["network", "connect", "front", "both"]);
    let eth0 = daemon.docker_ok(&["exec", "both", "ip", "-o", "-4", "addr", "show", "eth0"]);
    assert!(eth0.contains("inet 10.94.0."), "{eth0}");
    daemon.docker_ok(&["restart", "-t", "0", "both"]);
    let route = daemon.docker_ok(&["exec", "both", "ip", "route", "show", "default"]);
    assert!(route.contains("via 10.94.0.1 dev eth0"), "{route}");

    // Off its only network it has loopback alone, and stays so across a restart, until
    // connected again.
    daemon.docker_ok(&["network", "disconnect", "bridge", "plain"]);
    assert_eq!(inspected_networks(&daemon, "plain"), "");
    daemon.docker_ok(&["restart", "-t", "0", "plain"]);
    let links = daemon.docker_ok(&["exec", "plain", "ip", "-o", "link"]);
    let names: Vec<&str> = links.lines().filter_map(|l| l.split(": ").nth(1)).collect();
    assert_eq!(names, ["lo"]);
    daemon.docker_ok(&["network", "connect", "bridge", "plain"]);
    let route = daemon.docker_ok(&["exec", "plain", "ip", "route", "show", "default"]);
    assert!(route.contains("dev eth0"), "{route}");
    assert!(
        inspected_networks(&daemon, "plain").starts_with("bridge=172.17.0."),
        "{}",
        inspected_networks(&daemon, "plain")
    );

    let until = (unix_now() + 1).to_string();
    let events = daemon.docker_ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "type=network",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.container}}",
    ]);
    assert!(
        events.contains(&format!("connect back {app}\n")),
        "{events}"
    );
    assert!(
        events.contains(&format!("disconnect back {app}\n")),
        "{events}"
    );
}
