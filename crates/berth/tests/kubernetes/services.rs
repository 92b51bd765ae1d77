//! Services' addresses as kube-apiserver hands them out: cluster IPs from the service
//! CIDR (the `kubernetes` Service on its first), node ports from 30000–32767, each asked
//! for honoured when free and in range and refused in kube-apiserver's words otherwise,
//! kept across updates and given back when the Service, its type or its namespace goes.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::pods::AllInOne;
use crate::server::Server;

const SERVICES: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
---
apiVersion: v1
kind: Service
metadata:
  name: pinned
spec:
  clusterIP: 10.43.0.12
  selector: {app: dns}
  ports:
  - {name: dns, port: 53, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata:
  name: exposed
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080, nodePort: 30080}
  - {name: https, port: 443, targetPort: 8443}
---
apiVersion: v1
kind: Service
metadata:
  name: headless
spec:
  clusterIP: None
  selector: {app: web}
  ports:
  - {port: 80}
---
apiVersion: v1
kind: Service
metadata:
  name: elsewhere
spec:
  type: ExternalName
  externalName: db.example.com
---
apiVersion: v1
kind: Service
metadata:
  name: balanced
spec:
  type: LoadBalancer
  selector: {app: web}
  ports:
  - {port: 8080}
"#;

#[test]
fn services_get_cluster_ips_and_node_ports_on_sqlite() {
    services_get_cluster_ips_and_node_ports(false);
}

#[test]
fn services_get_cluster_ips_and_node_ports_on_etcd() {
    services_get_cluster_ips_and_node_ports(true);
}

fn services_get_cluster_ips_and_node_ports(on_etcd: bool) {
    let server = Server::start("services", on_etcd);
    let get = |name: &str, path: &str| {
        server.kubectl_ok(&["get", "svc", name, "-o", &format!("jsonpath={path}")])
    };
    // The cluster's own Service, which the server makes as it starts.
    let own = server.kubectl_until(
        &["get", "svc", "kubernetes", "--no-headers"],
        Duration::from_secs(10),
        |out| out.contains("10.43.0.1 "),
    );
    assert!(own.contains("443/TCP"), "{own}");
    let dns = server.kubectl_until(
        &[
            "-n",
            "kube-system",
            "get",
            "svc",
            "kube-dns",
            "--no-headers",
        ],
        Duration::from_secs(10),
        |out| out.contains("10.43.0.10 "),
    );
    assert!(dns.contains("53/UDP,53/TCP"), "{dns}");

    let manifest = server.write("services.yaml", SERVICES);
    server.kubectl_ok(&["apply", "-f", &manifest]);
    let ip = get("web", "{.spec.clusterIP}");
    let address: std::net::Ipv4Addr = ip.parse().expect("an IPv4 cluster IP");
    assert_eq!(address.octets()[..2], [10, 43], "{ip}");
    assert_eq!(get("web", "{.spec.clusterIPs[0]}"), ip);
    assert_eq!(
        get("web", "{.spec.ipFamilies[0]} {.spec.internalTrafficPolicy}"),
        "IPv4 Cluster"
    );
    assert_eq!(get("pinned", "{.spec.clusterIP}"), "10.43.0.12");
    let ports = get("exposed", "{.spec.ports[*].nodePort}");
    let ports: Vec<i32> = ports.split(' ').map(|p| p.parse().unwrap()).collect();
    assert_eq!(ports[0], 30080);
    assert!((30000..=32767).contains(&ports[1]) && ports[1] != 30080);
    assert_eq!(
        get("balanced", "{.spec.allocateLoadBalancerNodePorts}"),
        "true"
    );
    let table = server.kubectl_ok(&["get", "svc", "--no-headers"]);
    let row = |name: &str| -> Vec<String> {
        let line = table.lines().find(|l| l.starts_with(&format!("{name} ")));
        let line = line.unwrap_or_else(|| panic!("no {name} in {table}"));
        line.split_whitespace().map(str::to_string).collect()
    };
    assert_eq!(
        row("headless")[..4],
        ["headless", "ClusterIP", "None", "<none>"]
    );
    assert_eq!(
        row("elsewhere")[..4],
        ["elsewhere", "ExternalName", "<none>", "db.example.com"]
    );
    assert_eq!(row("balanced")[3], "<pending>");
    assert_eq!(
        row("exposed")[4],
        format!("80:30080/TCP,443:{}/TCP", ports[1])
    );
    // Applied again, the Services keep what they were given.
    let again = server.kubectl_ok(&["apply", "-f", &manifest]);
    assert!(again.contains("service/web unchanged"), "{again}");
    assert_eq!(get("web", "{.spec.clusterIP}"), ip);

    // What is taken, out of range or fixed is refused, naming the field.
    let refused = |yaml: &str, wanted: &str| {
        let file = server.write("refused.yaml", yaml);
        let out = server.kubectl(&["apply", "-f", &file]);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success() && stderr.contains(wanted), "{stderr}");
    };
    let service = |name: &str, spec: &str| {
        format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n{spec}")
    };
    let asking = |ip: &str| format!("  clusterIP: {ip}\n  ports:\n  - port: 80\n");
    refused(
        &service("twin", &asking("10.43.0.12")),
        r#"The Service "twin" is invalid: spec.clusterIPs: Invalid value: []string{"10.43.0.12"}: failed to allocate IP 10.43.0.12: provided IP is already allocated"#,
    );
    refused(
        &service("far", &asking("10.99.0.5")),
        r#"spec.clusterIPs: Invalid value: []string{"10.99.0.5"}: failed to allocate IP 10.99.0.5: the provided IP (10.99.0.5) is not in the valid range. The range of valid IPs is 10.43.0.0/16"#,
    );
    let node_port =
        |port: u32| format!("  type: NodePort\n  ports:\n  - port: 80\n    nodePort: {port}\n");
    refused(
        &service("clash", &node_port(30080)),
        "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated",
    );
    refused(
        &service("low", &node_port(80)),
        "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767",
    );
    refused(
        &service(
            "typed",
            "  type: ClusterIP\n  ports:\n  - port: 80\n    nodePort: 30090\n",
        ),
        "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
    );
    let moved = server.kubectl(&[
        "patch",
        "svc",
        "pinned",
        "--type=merge",
        "-p",
        r#"{"spec":{"clusterIP":"10.43.0.11","clusterIPs":["10.43.0.11"]}}"#,
    ]);
    let stderr = String::from_utf8_lossy(&moved.stderr);
    assert!(
        stderr.contains(
            r#"spec.clusterIPs[0]: Invalid value: []string{"10.43.0.11"}: may not change once set"#
        ),
        "{stderr}"
    );
    // Nothing a refused write claimed stays claimed.
    server.kubectl_ok(&[
        "apply",
        "-f",
        &server.write("ok.yaml", &service("ok", &asking("10.43.0.11"))),
    ]);

    // Given back at once: a deleted Service's address, the node ports of a Service
    // that stops being a NodePort, everything in a deleted namespace.
    server.kubectl_ok(&["delete", "svc", "pinned"]);
    let reuse = service("reuse", &asking("10.43.0.12"));
    server.kubectl_ok(&["apply", "-f", &server.write("reuse.yaml", &reuse)]);
    server.kubectl_ok(&[
        "patch",
        "svc",
        "exposed",
        "--type=merge",
        "-p",
        r#"{"spec":{"type":"ClusterIP"}}"#,
    ]);
    assert_eq!(get("exposed", "{.spec.ports[*].nodePort}"), "");
    let taker = service("taker", &node_port(30080));
    server.kubectl_ok(&["apply", "-f", &server.write("taker.yaml", &taker)]);
    server.kubectl_ok(&["create", "namespace", "gone"]);
    let inside = format!(
        "{}\n  namespace: gone\nspec:\n{}",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: inside",
        asking("10.43.0.20")
    );
    server.kubectl_ok(&["apply", "-f", &server.write("inside.yaml", &inside)]);
    server.kubectl_ok(&["delete", "namespace", "gone"]);
    let after = service("after", &asking("10.43.0.20"));
    server.kubectl_ok(&["apply", "-f", &server.write("after.yaml", &after)]);
}

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: web
        image: webapp:1
        imagePullPolicy: IfNotPresent
        ports:
        - {name: http, containerPort: 8080}
        readinessProbe:
          httpGet: {path: /healthz, port: http}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {port: 80, targetPort: http, nodePort: 30080}
---
apiVersion: v1
kind: Service
metadata:
  name: balanced
spec:
  type: LoadBalancer
  selector: {app: web}
  ports:
  - {port: 8081, targetPort: http}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: sites
spec:
  rules:
  - host: web.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
  - host: lb.example
    http:
      paths:
      - {path: /only, pathType: Exact, backend: {service: {name: balanced, port: {number: 8081}}}}
"#;

#[test]
fn services_reach_their_ready_pods_from_the_node_and_from_pods() {
    let cluster = AllInOne::start_with("proxy", |dir| {
        let images = dir.join("data/agent/images");
        std::fs::create_dir_all(&images).unwrap();
        let layout = berth_testkit::images::webapp_image(&dir.join("webapp")).unwrap();
        let archive = berth_testkit::layout::layout_archive(&layout, "webapp:1").unwrap();
        std::fs::write(images.join("webapp.tar"), archive).unwrap();
    });
    cluster.apply("web.yaml", WEB);
    cluster.kubectl_ok(&[
        "wait",
        "--for=condition=Available",
        "deployment/web",
        "--timeout=60s",
    ]);
    let pods = cluster.kubectl_ok(&["get", "pods", "-l", "app=web", "-o", "name"]);
    let pods: BTreeSet<String> = pods
        .lines()
        .map(|p| p.trim_start_matches("pod/").to_string())
        .collect();
    let ip = cluster.kubectl_ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    let range = cluster.kubectl_ok(&["get", "node", "test-node", "-o", "jsonpath={.spec.podCIDR}"]);
    let gateway = range.replace(".0/24", ".1");
    // Who answers `url` from the node, once all of `wanted` have (the endpoints follow
    // the pods' readiness within a second or so).
    let answering = |url: &str, wanted: &BTreeSet<String>| {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = BTreeSet::new();
        while Instant::now() < deadline && !wanted.is_subset(&seen) {
            let reply = cluster.curl(url);
            if let Some(host) = reply
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("hostname: "))
            {
                seen.insert(host.to_string());
            }
        }
        seen
    };
    assert_eq!(answering(&format!("http://{ip}/"), &pods), pods);
    assert_eq!(answering(&format!("http://{gateway}:30080/"), &pods), pods);
    assert_eq!(answering("http://127.0.0.1:30080/", &pods), pods);
    // A LoadBalancer: ServiceLB's ports on the node's addresses, the node's address as
    // its external IP.
    let external = cluster.kubectl_until(
        &[
            "get",
            "svc",
            "balanced",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[*].ip}",
        ],
        Duration::from_secs(30),
        |text| !text.is_empty(),
    );
    assert_eq!(external, "127.0.0.1");
    assert_eq!(answering("http://127.0.0.1:8081/", &pods), pods);
    // The built-in Ingress controller on the node's port 80, by host and path.
    let through_ingress = |host: &str, path: &str| {
        let url = format!("http://127.0.0.1{path}");
        let header = format!("Host: {host}");
        let output = cluster.on_host(&[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            &header,
            &url,
        ]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert_eq!(through_ingress("web.example", "/any/path"), "200");
    assert_eq!(through_ingress("lb.example", "/only"), "200");
    assert_eq!(through_ingress("lb.example", "/only/not"), "404");
    assert_eq!(through_ingress("elsewhere.example", "/"), "404");
    let address = cluster.kubectl_until(
        &[
            "get",
            "ingress",
            "sites",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[*].ip}",
        ],
        Duration::from_secs(30),
        |text| !text.is_empty(),
    );
    assert_eq!(address, "127.0.0.1");
    // From inside a pod, through its gateway.
    let first = pods.iter().next().unwrap();
    let url = format!("http://{ip}/");
    let inside = cluster.kubectl_ok(&["exec", first, "--", "wget", "-qO-", &url]);
    assert!(inside.starts_with("hostname: web-"), "{inside}");
    // Hairpin: a pod reaches itself through its own Service.
    let itself = format!("hostname: {first}\n");
    cluster.kubectl_until(
        &["exec", first, "--", "wget", "-qO-", &url],
        Duration::from_secs(30),
        |text| text.starts_with(&itself),
    );

    // Names: the pod asks the cluster DNS, which every node serves on its address.
    let resolv = cluster.kubectl_ok(&["exec", first, "--", "cat", "/etc/resolv.conf"]);
    assert!(
        resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local")
            && resolv.contains("nameserver 10.43.0.10\n")
            && resolv.contains("options ndots:5"),
        "{resolv}"
    );
    let lookup = |name: &str| {
        let out = cluster.kubectl(&["exec", first, "--", "nslookup", name]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let found = lookup("web.default.svc.cluster.local");
    assert!(found.contains(&format!("Address: {ip}")), "{found}");
    let api = lookup("kubernetes.default.svc.cluster.local");
    assert!(api.contains("Address: 10.43.0.1\n"), "{api}");
    let missing = lookup("nothing.default.svc.cluster.local");
    assert!(missing.contains("NXDOMAIN"), "{missing}");
    // In-cluster clients find the API in their environment and reach it through the
    // kubernetes Service (busybox's TLS and the server's have no cipher in common, so
    // a connection is what is checked).
    let api = cluster.kubectl_ok(&[
        "exec",
        first,
        "--",
        "sh",
        "-c",
        "echo $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT; nc -w 3 $KUBERNETES_SERVICE_HOST $KUBERNETES_SERVICE_PORT </dev/null && echo connected",
    ]);
    assert_eq!(api, "10.43.0.1:443\nconnected\n");
    let endpoints = cluster.kubectl_ok(&[
        "get",
        "endpointslice",
        "kubernetes",
        "-o",
        "jsonpath={.endpoints[*].addresses[0]} {.ports[0].port}",
    ]);
    assert!(endpoints.starts_with("127.0.0.1 "), "{endpoints}");
    let by_name = cluster.kubectl_ok(&[
        "exec",
        first,
        "--",
        "wget",
        "-qO-",
        "http://web.default.svc.cluster.local/",
    ]);
    assert!(by_name.starts_with("hostname: web-"), "{by_name}");

    // No endpoints: refused at once (curl's exit 7), not left to time out.
    cluster.kubectl_ok(&["scale", "deployment/web", "--replicas=0"]);
    cluster.kubectl_until(
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "jsonpath={.items[*].endpoints}",
        ],
        Duration::from_secs(30),
        |text| text.trim_matches(['[', ']', ' ']).is_empty(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let output = cluster.on_host(&["curl", "-s", "--max-time", "5", &url]);
        if output.status.code() == Some(7) || Instant::now() > deadline {
            break output;
        }
    };
    assert_eq!(refused.status.code(), Some(7), "{refused:?}");
}
