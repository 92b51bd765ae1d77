//! The workload controllers through stock kubectl, on simulated nodes whose pods finish
//! when annotated to (`simulate.berth.dev/exit-code`): Jobs run to completion or fail
//! at their back-off limit, CronJobs start Jobs on schedule, DaemonSets keep a pod on
//! every node, StatefulSets keep named, ordered pods with their own claims.

use std::time::{Duration, Instant};

use crate::server::Server;

const LIMIT: Duration = Duration::from_secs(30);

/// `kubectl get KIND NAME -o jsonpath=PATH`.
fn field(server: &Server, object: &str, path: &str) -> String {
    let (kind, name) = object.split_once('/').unwrap();
    server.kubectl_ok(&["get", kind, name, "-o", &format!("jsonpath={path}")])
}

/// A Job manifest whose pods exit with `code` after `seconds`.
fn job(name: &str, spec: &str, code: i32, seconds: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n{spec}  template:\n    metadata:\n      annotations: {{simulate.berth.dev/exit-code: \"{code}\", simulate.berth.dev/run-seconds: \"{seconds}\"}}\n    spec:\n      restartPolicy: Never\n      containers: [{{name: c, image: busybox}}]\n"
    )
}

/// The READY and STATUS columns of `kubectl get pods` for the pods `selector` selects.
fn statuses(server: &Server, selector: &str) -> Vec<String> {
    let rows = server.kubectl_ok(&["get", "pods", "-l", selector, "--no-headers"]);
    rows.lines()
        .map(|row| {
            let cells: Vec<&str> = row.split_whitespace().collect();
            cells[1..3].join(" ")
        })
        .collect()
}

fn jobs_run_to_completion(server: &Server) {
    let manifest = server.write(
        "batch.yaml",
        &job("batch", "  completions: 3\n  parallelism: 2\n", 0, "0.5"),
    );
    server.kubectl_ok(&["apply", "-f", &manifest]);
    // Never more than two at once, while it runs.
    let deadline = Instant::now() + LIMIT;
    loop {
        let active = field(server, "job/batch", "{.status.active}");
        assert!(
            active.parse::<i32>().unwrap_or(0) <= 2,
            "parallelism 2, but {active} active"
        );
        let done = server.kubectl(&[
            "wait",
            "--for=condition=complete",
            "job/batch",
            "--timeout=1s",
        ]);
        if done.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "the Job did not complete");
    }
    assert_eq!(
        field(
            server,
            "job/batch",
            "{.status.succeeded}/{.status.failed}/{.status.active}"
        ),
        "3/0/0"
    );
    assert!(!field(server, "job/batch", "{.status.completionTime}").is_empty());
    let pods = server.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "batch.kubernetes.io/job-name=batch",
        "-o",
        "jsonpath={range .items[*]}{.status.phase} {.metadata.labels.job-name}{\"\\n\"}{end}",
    ]);
    assert_eq!(
        pods.lines().collect::<Vec<_>>(),
        ["Succeeded batch"; 3],
        "{pods}"
    );
    assert_eq!(
        statuses(server, "batch.kubernetes.io/job-name=batch"),
        ["0/1 Completed"; 3]
    );
    let row = server.kubectl_ok(&["get", "job", "batch", "--no-headers"]);
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(columns[..3], ["batch", "Complete", "3/3"], "{row}");
    let conditions = field(server, "job/batch", "{.status.conditions[*].type}");
    assert_eq!(conditions, "SuccessCriteriaMet Complete");
}

fn failing_jobs_stop_at_their_backoff_limit(server: &Server) {
    let manifest = server.write(
        "doomed.yaml",
        &job(
            "doomed",
            "  backoffLimit: 1\n  parallelism: 2\n  completions: 4\n",
            3,
            "0",
        ),
    );
    server.kubectl_ok(&["apply", "-f", &manifest]);
    server.kubectl_ok(&[
        "wait",
        "--for=condition=failed",
        "job/doomed",
        "--timeout=30s",
    ]);
    let failed = field(
        server,
        "job/doomed",
        "{.status.conditions[?(@.type==\"Failed\")].reason} {.status.failed} {.status.succeeded}",
    );
    assert_eq!(failed, "BackoffLimitExceeded 2 0");
    let phases = server.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "job-name=doomed",
        "-o",
        "jsonpath={.items[*].status.phase}",
    ]);
    assert_eq!(phases, "Failed Failed");
    assert_eq!(statuses(server, "job-name=doomed"), ["0/1 Error"; 2]);
    let reasons = server.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=doomed,reason=BackoffLimitExceeded",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert_eq!(reasons, "Job has reached the specified backoff limit");
    server.kubectl_ok(&["delete", "job", "doomed"]);
    server.kubectl_until(
        &["get", "pods", "-l", "job-name=doomed", "-o", "name"],
        LIMIT,
        str::is_empty,
    );
}

/// Creates the `tick` CronJob: every minute, pods that succeed at once.
fn create_cronjob(server: &Server) {
    let manifest = server.write(
        "tick.yaml",
        "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: tick\nspec:\n  schedule: \"* * * * *\"\n  concurrencyPolicy: Forbid\n  jobTemplate:\n    spec:\n      template:\n        metadata:\n          annotations: {simulate.berth.dev/exit-code: \"0\"}\n        spec:\n          restartPolicy: Never\n          containers: [{name: c, image: busybox}]\n",
    );
    server.kubectl_ok(&["apply", "-f", &manifest]);
    // By hand, at once: the CronJob's template, owned by it. kubectl's typed create
    // would send protobuf, which the server reads for a few core kinds only; the same
    // Job goes as JSON.
    let by_hand = server.kubectl_ok(&[
        "create",
        "job",
        "tick-now",
        "--from=cronjob/tick",
        "--dry-run=client",
        "-o",
        "json",
    ]);
    server.kubectl_ok(&["create", "-f", &server.write("tick-now.json", &by_hand)]);
    server.kubectl_ok(&[
        "wait",
        "--for=condition=complete",
        "job/tick-now",
        "--timeout=30s",
    ]);
    assert_eq!(
        field(
            server,
            "job/tick-now",
            "{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}"
        ),
        "CronJob/tick"
    );
}

/// Waits for the `tick` CronJob's first scheduled Job (at most a minute after its
/// creation) and checks it completed and is reported.
fn cronjob_ran_on_schedule(server: &Server) {
    let scheduled = server.kubectl_until(
        &[
            "get",
            "jobs",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.metadata.annotations.batch\\.kubernetes\\.io/cronjob-scheduled-timestamp}{\"\\n\"}{end}",
        ],
        Duration::from_secs(90),
        |text| text.lines().any(|l| l.starts_with("tick-") && !l.starts_with("tick-now")),
    );
    let line = scheduled
        .lines()
        .find(|l| l.starts_with("tick-") && !l.starts_with("tick-now"))
        .unwrap();
    let (name, stamp) = line.split_once(' ').unwrap();
    // The name is the scheduled minute since the epoch, as the annotation says.
    let minutes: i64 = name.trim_start_matches("tick-").parse().unwrap();
    let said = std::process::Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("@{}", minutes * 60),
            "+%Y-%m-%dT%H:%M:%SZ",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&said.stdout).trim(),
        stamp,
        "{line}"
    );
    server.kubectl_ok(&[
        "wait",
        "--for=condition=complete",
        &format!("job/{name}"),
        "--timeout=30s",
    ]);
    let status = server.kubectl_until(
        &[
            "get",
            "cronjob",
            "tick",
            "-o",
            "jsonpath={.status.lastScheduleTime} {.status.lastSuccessfulTime}",
        ],
        LIMIT,
        |text| text.split(' ').all(|t| !t.is_empty()),
    );
    assert!(status.starts_with(stamp), "{status} vs {stamp}");
    let row = server.kubectl_ok(&["get", "cronjob", "tick", "--no-headers"]);
    assert!(row.starts_with("tick   * * * * *"), "{row}");
    server.kubectl_ok(&["delete", "cronjob", "tick"]);
    server.kubectl_until(&["get", "jobs", "-o", "name"], LIMIT, |t| {
        !t.contains("tick")
    });
}

/// Each `agent` pod's node and image, one line each, sorted.
fn daemon_pods(server: &Server) -> Vec<String> {
    let listed = server.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "app=agent",
        "-o",
        "jsonpath={range .items[*]}{.metadata.deletionTimestamp}|{.status.phase}|{.spec.nodeName} {.spec.containers[0].image}{\"\\n\"}{end}",
    ]);
    let mut pods: Vec<String> = listed
        .lines()
        .filter_map(|l| l.strip_prefix("|Running|"))
        .map(str::to_string)
        .collect();
    pods.sort();
    pods
}

fn daemonsets_run_on_every_node(server: &Server) {
    let manifest = server.write(
        "agent.yaml",
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: agent\nspec:\n  selector:\n    matchLabels: {app: agent}\n  template:\n    metadata:\n      labels: {app: agent}\n    spec:\n      containers: [{name: c, image: \"agent:1\"}]\n",
    );
    server.kubectl_ok(&["apply", "-f", &manifest]);
    let status = server.kubectl_ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    assert!(
        status.contains("daemon set \"agent\" successfully rolled out"),
        "{status}"
    );
    let placed = |image: &str, nodes: &[&str]| -> Vec<String> {
        nodes.iter().map(|n| format!("{n} {image}")).collect()
    };
    assert_eq!(
        daemon_pods(server),
        placed("agent:1", &["sim-0", "sim-1", "sim-2"])
    );
    let row = server.kubectl_ok(&["get", "ds", "agent", "--no-headers"]);
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(columns[..6], ["agent", "3", "3", "3", "3", "3"], "{row}");

    // A new image rolls out node by node.
    server.kubectl_ok(&["set", "image", "ds/agent", "c=agent:2"]);
    let status = server.kubectl_ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    assert!(status.contains("successfully rolled out"), "{status}");
    server.kubectl_until(
        &["get", "pods", "-l", "app=agent", "-o", "name"],
        LIMIT,
        |text| text.lines().count() == 3,
    );
    assert_eq!(
        daemon_pods(server),
        placed("agent:2", &["sim-0", "sim-1", "sim-2"])
    );
    let history = server.kubectl_ok(&["rollout", "history", "ds/agent"]);
    let revisions: Vec<&str> = history
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");

    // A node that joins gets a pod; one that leaves loses it.
    let _extra = server.simulated_nodes_named("extra", 1);
    let four = placed("agent:2", &["extra-0", "sim-0", "sim-1", "sim-2"]);
    let deadline = Instant::now() + LIMIT;
    while daemon_pods(server) != four {
        assert!(
            Instant::now() < deadline,
            "no pod on the new node: {:?}",
            daemon_pods(server)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server.kubectl_ok(&["delete", "node", "extra-0"]);
    server.kubectl_until(
        &["get", "pods", "-l", "app=agent", "-o", "name"],
        LIMIT,
        |text| text.lines().count() == 3,
    );
    assert_eq!(
        daemon_pods(server),
        placed("agent:2", &["sim-0", "sim-1", "sim-2"])
    );
    server.kubectl_ok(&["delete", "ds", "agent"]);
    server.kubectl_until(
        &["get", "pods", "-l", "app=agent", "-o", "name"],
        LIMIT,
        str::is_empty,
    );
}

/// The `web` pods: name, readiness and uid, one line each, in name order.
fn web_pods(server: &Server) -> Vec<(String, bool, String)> {
    let listed = server.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.status.conditions[?(@.type==\"Ready\")].status}- {.metadata.uid}{\"\\n\"}{end}",
    ]);
    let mut pods: Vec<(String, bool, String)> = listed
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let name = parts.next()?.to_string();
            let ready = parts.next()? == "True-";
            Some((name, ready, parts.next().unwrap_or_default().to_string()))
        })
        .collect();
    pods.sort();
    pods
}

/// Watches the `web` pods until `done`; when `in_order`, asserting on every look that
/// each pod's predecessor is there and ready (the order OrderedReady keeps).
fn web_until(server: &Server, in_order: bool, done: impl Fn(&[(String, bool, String)]) -> bool) {
    let deadline = Instant::now() + LIMIT;
    loop {
        let pods = web_pods(server);
        for (index, (name, _, _)) in pods.iter().enumerate().filter(|_| in_order) {
            assert_eq!(name, &format!("web-{index}"), "out of order: {pods:?}");
            if index > 0 {
                assert!(
                    pods[index - 1].1,
                    "{name} before its predecessor was ready: {pods:?}"
                );
            }
        }
        if done(&pods) {
            return;
        }
        assert!(Instant::now() < deadline, "web did not settle: {pods:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn statefulsets_keep_their_names_and_order(server: &Server) {
    let manifest = server.write(
        "web.yaml",
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: web\nspec:\n  replicas: 3\n  serviceName: web\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers: [{name: c, image: \"web:1\"}]\n  volumeClaimTemplates:\n  - metadata: {name: www}\n    spec:\n      accessModes: [ReadWriteOnce]\n      resources: {requests: {storage: 1Gi}}\n",
    );
    server.kubectl_ok(&["apply", "-f", &manifest]);
    web_until(server, true, |pods| {
        pods.len() == 3 && pods.iter().all(|p| p.1)
    });
    let claims = server.kubectl_ok(&["get", "pvc", "-o", "jsonpath={.items[*].metadata.name}"]);
    assert_eq!(claims, "www-web-0 www-web-1 www-web-2");
    assert_eq!(
        field(
            server,
            "pod/web-1",
            "{.spec.volumes[0].persistentVolumeClaim.claimName} {.metadata.labels.apps\\.kubernetes\\.io/pod-index} {.spec.hostname}"
        ),
        "www-web-1 1 web-1"
    );
    assert_eq!(field(server, "sts/web", "{.status.readyReplicas}"), "3");

    // A deleted pod comes back under its name.
    let before = web_pods(server)[1].2.clone();
    server.kubectl_ok(&["delete", "pod", "web-1", "--wait=false"]);
    web_until(server, false, |pods| {
        pods.len() == 3 && pods.iter().all(|p| p.1) && pods[1].2 != before
    });

    // A new image rolls out, from the top.
    server.kubectl_ok(&["set", "image", "sts/web", "c=web:2"]);
    let status = server.kubectl_ok(&["rollout", "status", "sts/web", "--timeout=60s"]);
    assert!(status.contains("roll out complete: 3 new pods"), "{status}");
    let images = server.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].spec.containers[0].image}",
    ]);
    assert_eq!(images, "web:2 web:2 web:2");
    let revisions = field(
        server,
        "sts/web",
        "{.status.currentRevision} {.status.updateRevision}",
    );
    let (current, update) = revisions.split_once(' ').unwrap();
    assert_eq!(current, update);

    // Scaling down goes from the top, one at a time; the claims stay.
    server.kubectl_ok(&["scale", "sts/web", "--replicas=1"]);
    web_until(server, true, |pods| pods.len() == 1);
    let claims = server.kubectl_ok(&["get", "pvc", "-o", "jsonpath={.items[*].metadata.name}"]);
    assert_eq!(claims, "www-web-0 www-web-1 www-web-2");
    server.kubectl_ok(&["delete", "sts", "web"]);
    server.kubectl_until(
        &["get", "pods", "-l", "app=web", "-o", "name"],
        LIMIT,
        str::is_empty,
    );
    server.kubectl_ok(&["delete", "pvc", "--all"]);
}

fn workloads(server: &Server) {
    let _agent = server.simulated_nodes(3);
    server.kubectl_until(&["get", "nodes", "--no-headers"], LIMIT, |text| {
        text.lines().filter(|l| l.contains(" Ready ")).count() == 3
    });
    // The CronJob first: its schedule runs while the others are tested.
    create_cronjob(server);
    jobs_run_to_completion(server);
    failing_jobs_stop_at_their_backoff_limit(server);
    daemonsets_run_on_every_node(server);
    statefulsets_keep_their_names_and_order(server);
    cronjob_ran_on_schedule(server);
}

#[test]
fn workloads_on_sqlite() {
    workloads(&Server::start("workloads-sqlite", false));
}

#[test]
fn workloads_on_etcd() {
    workloads(&Server::start("workloads-etcd", true));
}
