//! The cluster keeping its declarations true, on simulated nodes (`berth agent
//! --simulate`): nodes register and heartbeat, pods bound to them run and are deleted
//! gracefully; the scheduler places pods where they fit and says why when none does.

use std::time::Duration;

use crate::server::Server;

const LIMIT: Duration = Duration::from_secs(30);

fn simulated_nodes_run_their_pods(server: &Server) {
    server.kubectl_until(&["get", "nodes", "--no-headers"], LIMIT, |text| {
        text.lines().filter(|l| l.contains(" Ready ")).count() == 3
    });
    server.kubectl_until(
        &["-n", "kube-node-lease", "get", "leases", "-o", "name"],
        LIMIT,
        |text| text.lines().count() == 3,
    );
    let pod = server.write(
        "bound.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bound\nspec:\n  nodeName: sim-1\n  containers: [{name: c, image: busybox}]\n",
    );
    server.kubectl_ok(&["apply", "-f", &pod]);
    let running = server.kubectl_until(
        &[
            "get",
            "pod",
            "bound",
            "-o",
            "jsonpath={.status.phase} {.status.podIP}",
        ],
        LIMIT,
        |text| text.starts_with("Running "),
    );
    assert!(running.contains(" 10."), "{running}");
    // The pod's node finishes its graceful deletion.
    server.kubectl_ok(&["delete", "pod", "bound", "--timeout=30s"]);
    assert!(!server.kubectl(&["get", "pod", "bound"]).status.success());

    // Containers that keep exiting are restarted; RESTARTS says how often and when last.
    let restarting = server.write(
        "restarting.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: restarting\n  annotations: {simulate.berth.dev/exit-code: \"1\"}\nspec:\n  nodeName: sim-1\n  containers: [{name: c, image: busybox}]\n",
    );
    server.kubectl_ok(&["apply", "-f", &restarting]);
    let row = server.kubectl_until(
        &["get", "pod", "restarting", "--no-headers"],
        LIMIT,
        |row| row.split_whitespace().nth(3).is_some_and(|n| n != "0"),
    );
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[1..3], ["1/1", "Running"], "{row}");
    assert!(
        cells[4].starts_with('(') && cells[4].ends_with('s') && cells[5] == "ago)",
        "{row}"
    );
    server.kubectl_ok(&["delete", "pod", "restarting", "--timeout=30s"]);
}

fn pod(server: &Server, name: &str, cpu: &str, extra: &str) -> String {
    server.write(
        &format!("{name}.yaml"),
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{extra}  containers: [{{name: c, image: busybox, resources: {{requests: {{cpu: \"{cpu}\"}}}}}}]\n"
        ),
    )
}

fn the_scheduler_places_pods_where_they_fit(server: &Server) {
    // Pods that request nothing still spread: scoring counts them at the defaults.
    for name in ["even-0", "even-1", "even-2"] {
        let manifest = server.write(
            &format!("{name}.yaml"),
            &format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{even: \"yes\"}}\nspec:\n  containers: [{{name: c, image: busybox}}]\n"),
        );
        server.kubectl_ok(&["apply", "-f", &manifest]);
    }
    let nodes = server.kubectl_until(
        &[
            "get",
            "pods",
            "-l",
            "even=yes",
            "-o",
            "jsonpath={.items[*].spec.nodeName}",
        ],
        LIMIT,
        |text| text.split_whitespace().count() == 3,
    );
    let distinct: std::collections::HashSet<&str> = nodes.split_whitespace().collect();
    assert_eq!(distinct.len(), 3, "not spread: {nodes}");
    server.kubectl_ok(&["delete", "pods", "-l", "even=yes", "--wait=false"]);

    server.kubectl_ok(&["apply", "-f", &pod(server, "small", "100m", "")]);
    let placed = server.kubectl_until(
        &[
            "get",
            "pod",
            "small",
            "-o",
            "jsonpath={.status.phase} {.spec.nodeName}",
        ],
        LIMIT,
        |text| text.starts_with("Running sim-"),
    );
    assert!(placed.starts_with("Running sim-"), "{placed}");

    // Too big for any node, one of them tainted: Pending, with kube-scheduler's reasons.
    server.kubectl_ok(&["taint", "nodes", "sim-0", "dedicated=gpu:NoSchedule"]);
    server.kubectl_ok(&["apply", "-f", &pod(server, "huge", "64", "")]);
    assert_eq!(
        server.event_message("huge", "FailedScheduling"),
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
    );
    assert_eq!(
        server.kubectl_ok(&[
            "get",
            "pod",
            "huge",
            "-o",
            "jsonpath={.status.phase} {.status.conditions[0].reason}"
        ]),
        "Pending Unschedulable"
    );

    // A pod no node's labels match is placed once a node gets them.
    let zoned = pod(server, "zoned", "1", "  nodeSelector: {zone: b}\n");
    server.kubectl_ok(&["apply", "-f", &zoned]);
    assert_eq!(
        server.event_message("zoned", "FailedScheduling"),
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    );
    server.kubectl_ok(&["label", "node", "sim-2", "zone=b"]);
    server.kubectl_until(
        &[
            "get",
            "pod",
            "zoned",
            "-o",
            "jsonpath={.status.phase} {.spec.nodeName}",
        ],
        LIMIT,
        |text| text == "Running sim-2",
    );
}

/// Running pods of ReplicaSet `set`, by name.
fn running_pods(server: &Server, set: &str) -> Vec<String> {
    let listed = server.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        &format!("set={set}"),
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.status.phase}{\"\\n\"}{end}",
    ]);
    listed
        .lines()
        .filter(|l| l.ends_with(" Running"))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect()
}

fn replica_sets_keep_their_pods(server: &Server) {
    let set = server.write(
        "keeper.yaml",
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: keeper\nspec:\n  replicas: 3\n  selector:\n    matchLabels: {set: keeper}\n  template:\n    metadata:\n      labels: {set: keeper}\n    spec:\n      containers: [{name: c, image: busybox, resources: {requests: {cpu: 100m}}}]\n",
    );
    server.kubectl_ok(&["apply", "-f", &set]);
    let deadline = std::time::Instant::now() + LIMIT;
    let wait_for = |count: usize| loop {
        let running = running_pods(server, "keeper");
        let ready = server.kubectl_ok(&[
            "get",
            "rs",
            "keeper",
            "-o",
            "jsonpath={.status.readyReplicas}",
        ]);
        if running.len() == count && ready == count.to_string() {
            return running;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{running:?} running, {ready:?} ready, wanted {count}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let first = wait_for(3);
    // A pod that dies is replaced.
    server.kubectl_ok(&["delete", "pod", &first[0], "--wait=false"]);
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let running = running_pods(server, "keeper");
        if running.len() == 3 && !running.contains(&first[0]) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not replaced: {running:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server.kubectl_ok(&["scale", "rs", "keeper", "--replicas=1"]);
    let deadline = std::time::Instant::now() + LIMIT;
    while running_pods(server, "keeper").len() != 1 {
        assert!(std::time::Instant::now() < deadline, "not scaled down");
        std::thread::sleep(Duration::from_millis(100));
    }
    server.kubectl_ok(&["delete", "rs", "keeper"]);
    server.kubectl_until(
        &["get", "pods", "-l", "set=keeper", "-o", "name"],
        LIMIT,
        str::is_empty,
    );
}

/// The addresses `kubectl get endpoints NAME` shows, once `wanted` says they are right.
fn endpoints_until(server: &Server, name: &str, wanted: impl Fn(&str) -> bool) -> String {
    server.kubectl_until(&["get", "endpoints", name, "--no-headers"], LIMIT, |row| {
        row.split_whitespace().nth(1).is_some_and(&wanted)
    })
}

fn services_follow_their_pods(server: &Server) {
    let manifest = server.write(
        "backend.yaml",
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: backend\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: backend}\n  template:\n    metadata:\n      labels: {app: backend}\n    spec:\n      containers: [{name: c, image: busybox, ports: [{name: http, containerPort: 8080}]}]\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: backend\nspec:\n  selector: {app: backend}\n  ports: [{name: web, port: 80, targetPort: http}]\n",
    );
    server.kubectl_ok(&["apply", "-f", &manifest]);
    let two = |text: &str| text.split(',').filter(|a| a.ends_with(":8080")).count() == 2;
    let row = endpoints_until(server, "backend", two);
    let ips: Vec<&str> = row.split_whitespace().nth(1).unwrap().split(',').collect();
    assert!(ips.iter().all(|a| a.starts_with("10.")), "{row}");
    let slice = server.kubectl_until(
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=backend",
            "-o",
            "jsonpath={.items[*].endpoints[*].conditions.ready} {.items[*].ports[*].port}",
        ],
        LIMIT,
        |text| text == "true true 8080",
    );
    assert_eq!(slice, "true true 8080");

    // Three pods, then none: the addresses follow.
    server.kubectl_ok(&["scale", "rs", "backend", "--replicas=3"]);
    endpoints_until(server, "backend", |text| text.split(',').count() == 3);
    server.kubectl_ok(&["scale", "rs", "backend", "--replicas=0"]);
    endpoints_until(server, "backend", |text| text == "<none>");

    // The Service gone, its Endpoints and slice go too.
    server.kubectl_ok(&["delete", "service", "backend"]);
    server.kubectl_until(&["get", "endpoints", "-o", "name"], LIMIT, |text| {
        !text.contains("backend")
    });
    server.kubectl_until(&["get", "endpointslices", "-o", "name"], LIMIT, |text| {
        !text.contains("backend")
    });
    server.kubectl_ok(&["delete", "rs", "backend"]);
}

/// Ready pods of the `web` Deployment that are not being deleted, and their images.
fn ready_web_pods(server: &Server) -> Vec<String> {
    let listed = server.kubectl_ok(&[
        "get", "pods", "-l", "app=web", "-o",
        "jsonpath={range .items[*]}{.metadata.deletionTimestamp}|{.status.conditions[?(@.type==\"Ready\")].status}|{.spec.containers[0].image}{\"\\n\"}{end}",
    ]);
    listed
        .lines()
        .filter_map(|l| l.strip_prefix("|True|"))
        .map(str::to_string)
        .collect()
}

/// Waits for `kubectl rollout status` to report success, checking on every look that
/// the ready pods never fell below `floor`.
fn roll_out_keeping(server: &Server, floor: usize) {
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let ready = ready_web_pods(server);
        assert!(
            ready.len() >= floor,
            "only {} ready during the rollout: {ready:?}",
            ready.len()
        );
        let status = server.kubectl(&["rollout", "status", "deployment/web", "--watch=false"]);
        if String::from_utf8_lossy(&status.stdout).contains("successfully rolled out") {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no rollout: {}",
            String::from_utf8_lossy(&status.stdout)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn deployments_roll_out_and_back(server: &Server) {
    let web = server.write(
        "web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n  strategy:\n    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers: [{name: web, image: \"webapp:1\", resources: {requests: {cpu: 100m}}}]\n",
    );
    server.kubectl_ok(&["apply", "-f", &web]);
    let status = server.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(
        status.contains("deployment \"web\" successfully rolled out"),
        "{status}"
    );
    assert_eq!(ready_web_pods(server).len(), 3);

    // v1 to v2 with maxUnavailable=0: never fewer than 3 ready.
    server.kubectl_ok(&["set", "image", "deployment/web", "web=webapp:2"]);
    roll_out_keeping(server, 3);
    let images = ready_web_pods(server);
    assert_eq!(images, ["webapp:2"; 3], "{images:?}");
    let history = server.kubectl_ok(&["rollout", "history", "deployment/web"]);
    let revisions: Vec<&str> = history
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");

    // Undo brings v1 back, as revision 3.
    server.kubectl_ok(&["rollout", "undo", "deployment/web"]);
    roll_out_keeping(server, 3);
    assert_eq!(ready_web_pods(server), ["webapp:1"; 3]);
    assert_eq!(
        server.kubectl_ok(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}"
        ]),
        "3"
    );

    // Paused, a new template waits; resumed, it rolls out; a restart is one more revision.
    server.kubectl_ok(&["rollout", "pause", "deployment/web"]);
    server.kubectl_ok(&["set", "image", "deployment/web", "web=webapp:3"]);
    server.kubectl_until(
        &[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.metadata.generation}/{.status.observedGeneration}",
        ],
        LIMIT,
        |text| text.split('/').next() == text.split('/').nth(1),
    );
    assert_eq!(
        ready_web_pods(server),
        ["webapp:1"; 3],
        "a paused Deployment rolled out"
    );
    server.kubectl_ok(&["rollout", "resume", "deployment/web"]);
    roll_out_keeping(server, 3);
    assert_eq!(ready_web_pods(server), ["webapp:3"; 3]);
    server.kubectl_ok(&["rollout", "restart", "deployment/web"]);
    roll_out_keeping(server, 3);
    assert_eq!(
        server.kubectl_ok(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}"
        ]),
        "5"
    );

    // Deleting the Deployment removes its ReplicaSets and their pods.
    server.kubectl_ok(&["delete", "deployment", "web"]);
    server.kubectl_until(
        &["get", "rs,pods", "-l", "app=web", "-o", "name"],
        LIMIT,
        str::is_empty,
    );
}

/// A node that stops heartbeating loses its pods to the others.
/// A Deployment of `replicas` pods requesting `cpu`, with `extra` spec lines.
fn deployment(server: &Server, name: &str, cpu: &str, extra: &str) -> String {
    server.write(
        &format!("{name}.yaml"),
        &format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 1\n{extra}  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers: [{{name: c, image: busybox, resources: {{requests: {{cpu: \"{cpu}\"}}}}}}]\n"),
    )
}

fn rollouts_wait_and_give_up(server: &Server) {
    // Ready is not yet available: minReadySeconds must pass first.
    server.kubectl_ok(&[
        "apply",
        "-f",
        &deployment(server, "patient", "10m", "  minReadySeconds: 4\n"),
    ]);
    let counts = server.kubectl_until(
        &[
            "get",
            "deploy",
            "patient",
            "-o",
            "jsonpath={.status.readyReplicas} {.status.availableReplicas}",
        ],
        LIMIT,
        |text| text.starts_with("1 "),
    );
    assert_eq!(counts, "1 0");
    server.kubectl_ok(&["rollout", "status", "deploy/patient", "--timeout=30s"]);

    // A rollout that cannot progress says so once its deadline passes.
    server.kubectl_ok(&[
        "apply",
        "-f",
        &deployment(server, "stuck", "64", "  progressDeadlineSeconds: 2\n"),
    ]);
    let status = server.kubectl(&["rollout", "status", "deploy/stuck", "--timeout=30s"]);
    let said = String::from_utf8_lossy(&status.stderr);
    assert!(!status.status.success());
    assert!(
        said.contains(r#"deployment "stuck" exceeded its progress deadline"#),
        "{said}"
    );
    let reason = server.kubectl_ok(&[
        "get",
        "deploy",
        "stuck",
        "-o",
        r#"jsonpath={.status.conditions[?(@.type=="Progressing")].reason}"#,
    ]);
    assert_eq!(reason, "ProgressDeadlineExceeded");
    server.kubectl_ok(&["delete", "deploy", "patient", "stuck"]);
}

fn pods_leave_a_silent_node(server: &Server) {
    // The pods start on the only node there is, then others join and it falls silent.
    let mut doomed = server.simulated_nodes_named("doomed", 1);
    let spread = server.write(
        "spread.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: spread\nspec:\n  replicas: 3\n  selector:\n    matchLabels: {app: spread}\n  template:\n    metadata:\n      labels: {app: spread}\n    spec:\n      containers: [{name: c, image: busybox, resources: {requests: {cpu: \"1\"}}}]\n",
    );
    server.kubectl_ok(&["apply", "-f", &spread]);
    let placement = [
        "get",
        "pods",
        "-l",
        "app=spread",
        "-o",
        "jsonpath={range .items[*]}{.metadata.deletionTimestamp}|{.status.phase}|{.spec.nodeName}{\"\\n\"}{end}",
    ];
    let running_on = |text: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix("|Running|"))
            .map(str::to_string)
            .collect()
    };
    server.kubectl_until(&placement, LIMIT, |text| {
        running_on(text) == ["doomed-0"; 3]
    });
    let _steady = server.simulated_nodes_named("steady", 2);
    server.kubectl_until(&["get", "nodes", "--no-headers"], LIMIT, |text| {
        text.lines().filter(|l| l.contains(" Ready ")).count() == 3
    });

    let _ = doomed.0.kill();
    let _ = doomed.0.wait();
    server.kubectl_until(
        &["get", "node", "doomed-0", "--no-headers"],
        LIMIT,
        |text| text.contains("NotReady"),
    );
    server.kubectl_until(&placement, LIMIT, |text| {
        let nodes = running_on(text);
        nodes.len() == 3 && nodes.iter().all(|n| n.starts_with("steady-"))
    });
    // Its pods are marked not ready, as kube's MarkPodsNotReady does, and being evicted
    // where no agent finishes them, they read Terminating.
    let stranded = server.kubectl_until(
        &[
            "get",
            "pods",
            "-l",
            "app=spread",
            "--field-selector",
            "spec.nodeName=doomed-0",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#,
        ],
        LIMIT,
        |text| text.lines().count() == 3 && text.lines().all(|l| l.ends_with(" False")),
    );
    assert_eq!(
        server.event_message("doomed-0", "NodeNotReady"),
        "Node doomed-0 status is now: NodeNotReady"
    );
    let first = stranded.split(' ').next().unwrap();
    assert_eq!(
        server.event_message(first, "NodeNotReady"),
        "Node is not ready"
    );
    let rows = server.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "app=spread",
        "--field-selector",
        "spec.nodeName=doomed-0",
        "--no-headers",
    ]);
    assert!(
        rows.lines()
            .all(|l| l.split_whitespace().nth(2) == Some("Terminating")),
        "{rows}"
    );
    let taints = server.kubectl_ok(&[
        "get",
        "node",
        "doomed-0",
        "-o",
        "jsonpath={.spec.taints[*].key}",
    ]);
    assert_eq!(taints, "node.kubernetes.io/unreachable");

    // A node whose own status says it is not ready has its pods marked not ready too.
    let moved = running_on(&server.kubectl_ok(&placement));
    let node = &moved[0];
    server.kubectl_ok(&[
        "patch",
        "node",
        node,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"False","reason":"KubeletNotReady"}]}}"#,
    ]);
    let on_node = format!("spec.nodeName={node}");
    server.kubectl_until(
        &[
            "get",
            "pods",
            "-l",
            "app=spread",
            "--field-selector",
            &on_node,
            "-o",
            r#"jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#,
        ],
        LIMIT,
        |text| !text.is_empty() && text.lines().all(|l| l == "False"),
    );
    server.kubectl_ok(&["delete", "deployment", "spread", "--wait=false"]);
}

/// Annotates every pod of `busy` with `usage` CPU until its Deployment declares
/// `replicas` and has them ready.
fn load_until(server: &Server, usage: &str, replicas: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let annotation = format!("metrics.berth.dev/cpu={usage}");
    loop {
        server.kubectl(&[
            "annotate",
            "pods",
            "-l",
            "app=busy",
            "--overwrite",
            &annotation,
        ]);
        let state = server.kubectl_ok(&[
            "get",
            "deployment",
            "busy",
            "-o",
            "jsonpath={.spec.replicas}/{.status.readyReplicas}",
        ]);
        if state == format!("{replicas}/{replicas}") {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "at {usage} the autoscaler did not reach {replicas}: {state}; {}",
            server.kubectl_ok(&["get", "hpa", "busy", "-o", "jsonpath={.status}"])
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// An autoscaler scales 2 → 5 as CPU rises, and back to 2 when it falls.
fn autoscalers_follow_the_load(server: &Server) {
    let busy = server.write(
        "busy.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: busy\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: busy}\n  template:\n    metadata:\n      labels: {app: busy}\n    spec:\n      containers: [{name: c, image: busybox, resources: {requests: {cpu: 100m}}}]\n---\napiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: busy\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: busy}\n  minReplicas: 2\n  maxReplicas: 5\n  metrics:\n  - type: Resource\n    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}\n  behavior:\n    scaleDown: {stabilizationWindowSeconds: 2}\n",
    );
    server.kubectl_ok(&["apply", "-f", &busy]);
    load_until(server, "50m", 2);
    load_until(server, "200m", 5);
    load_until(server, "10m", 2);
    let utilization = server.kubectl_ok(&[
        "get",
        "hpa",
        "busy",
        "-o",
        "jsonpath={.status.currentMetrics[0].resource.current.averageUtilization}",
    ]);
    assert_eq!(utilization, "10");
    let top = server.kubectl_ok(&["top", "pod", "-l", "app=busy", "--no-headers"]);
    assert_eq!(top.lines().count(), 2, "{top}");
    assert!(
        top.lines()
            .all(|l| l.split_whitespace().nth(1) == Some("10m")),
        "{top}"
    );
    // Nodes add up their pods' usage: the two busy pods are the only ones using CPU.
    let nodes = server.kubectl_ok(&["top", "node", "--no-headers"]);
    assert_eq!(nodes.lines().count(), 3, "{nodes}");
    let millicores: u32 = nodes
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .nth(1)?
                .strip_suffix('m')?
                .parse::<u32>()
                .ok()
        })
        .sum();
    assert_eq!(millicores, 20, "{nodes}");
}

fn scenarios(server: &Server) {
    let _agent = server.simulated_nodes(3);
    simulated_nodes_run_their_pods(server);
    the_scheduler_places_pods_where_they_fit(server);
    replica_sets_keep_their_pods(server);
    services_follow_their_pods(server);
    deployments_roll_out_and_back(server);
    rollouts_wait_and_give_up(server);
    autoscalers_follow_the_load(server);
}

/// Short grace periods, so a silent node is noticed in seconds.
const LIFECYCLE: [&str; 4] = [
    "--node-monitor-grace-period",
    "3s",
    "--default-unreachable-toleration-seconds",
    "2",
];

#[test]
fn scenarios_on_sqlite() {
    scenarios(&Server::start("sim-sqlite", false));
}

#[test]
fn scenarios_on_etcd() {
    scenarios(&Server::start("sim-etcd", true));
}

#[test]
fn silent_nodes_on_sqlite() {
    pods_leave_a_silent_node(&Server::start_with("silent-sqlite", false, &LIFECYCLE));
}

#[test]
fn silent_nodes_on_etcd() {
    pods_leave_a_silent_node(&Server::start_with("silent-etcd", true, &LIFECYCLE));
}

/// A server that serves the API alone (`--leader-elect=false`) runs no controller: a
/// Deployment stays without a ReplicaSet until `berth controller-manager` runs them
/// against it, as kube-controller-manager runs apart from kube-apiserver.
#[test]
fn the_controller_manager_runs_apart_from_the_api_server() {
    let server = Server::start_with("apart", false, &["--leader-elect=false"]);
    server.kubectl_ok(&["create", "deployment", "apart", "--image=webapp:1"]);
    assert_eq!(server.kubectl_ok(&["get", "replicasets", "-o", "name"]), "");
    let log = std::fs::File::create(server.scratch.path().join("controllers.log")).unwrap();
    let _controllers = berth_testkit::guard::ChildGuard(
        std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("controller-manager")
            .arg("--kubeconfig")
            .arg(server.kubeconfig())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let made = server.kubectl_until(&["get", "replicasets", "-o", "name"], LIMIT, |out| {
        out.starts_with("replicaset.apps/apart-")
    });
    assert!(made.starts_with("replicaset.apps/apart-"), "{made}");
}
