//! NetworkPolicies enforced on a real node: a policy that admits one app to another
//! cuts exactly the traffic it names — by pod address and through the Service — an
//! egress policy limits where its pods may connect, and deleting the policies opens
//! everything again.

use std::time::{Duration, Instant};

use crate::pods::AllInOne;
use crate::server::Kubectl;

/// A pod labelled `app: <name>` that serves its name over HTTP on port 8080.
fn serving(name: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: serve
    image: busybox:1
    command: ["sh", "-c", "mkdir /www; hostname > /www/index.html; exec httpd -f -p 8080 -h /www"]
    ports: [{{name: http, containerPort: 8080}}]
---
"#
    )
}

const SERVICE: &str = r#"apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
"#;

const POLICIES: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-allowed}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: allowed}}}]
    ports: [{port: http}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allowed-to-web-only}
spec:
  podSelector: {matchLabels: {app: allowed}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{port: 8080, protocol: TCP}]
"#;

/// What `url` answers pod `from`; None when the connection fails within 3 s.
pub(crate) fn fetch(cluster: &impl Kubectl, from: &str, url: &str) -> Option<String> {
    let args = ["exec", from, "--", "timeout", "3", "wget", "-qO-", url];
    let output = cluster.run_kubectl(&args);
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Waits until `from` reaching `url` is `open` (it answers) or not, for up to 30 s; the
/// last answer.
pub(crate) fn until(
    cluster: &impl Kubectl,
    (from, url): (&str, &str),
    open: bool,
) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = fetch(cluster, from, url);
        if answer.is_some() == open || Instant::now() > deadline {
            return answer;
        }
    }
}

#[test]
fn network_policies_cut_exactly_the_traffic_they_say() {
    let cluster = AllInOne::start("netpol");
    let apps: String = ["web", "allowed", "other"].map(serving).concat();
    cluster.apply("apps.yaml", &(apps + SERVICE));
    cluster.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/web",
        "pod/allowed",
        "pod/other",
        "--timeout=60s",
    ]);
    let ip = |pod: &str| cluster.pod_field(pod, ".status.podIP", |ip| !ip.is_empty());
    let web = format!("http://{}:8080/", ip("web"));
    let other = format!("http://{}:8080/", ip("other"));
    let service = "http://web.default.svc.cluster.local/";
    assert_eq!(
        until(&cluster, ("other", &web), true).as_deref(),
        Some("web\n")
    );

    cluster.apply("policies.yaml", POLICIES);
    // Ingress: only `allowed` reaches web, directly or through its Service.
    assert_eq!(until(&cluster, ("other", &web), false), None);
    assert_eq!(fetch(&cluster, "allowed", &web).as_deref(), Some("web\n"));
    assert_eq!(
        fetch(&cluster, "allowed", service).as_deref(),
        Some("web\n")
    );
    assert_eq!(fetch(&cluster, "other", service), None);
    // Egress: `allowed` reaches web alone; others still reach it.
    assert_eq!(fetch(&cluster, "allowed", &other), None);
    let allowed = format!("http://{}:8080/", ip("allowed"));
    assert_eq!(
        fetch(&cluster, "other", &allowed).as_deref(),
        Some("allowed\n")
    );

    cluster.kubectl_ok(&["delete", "networkpolicies", "--all"]);
    assert_eq!(
        until(&cluster, ("other", &web), true).as_deref(),
        Some("web\n")
    );
    assert_eq!(
        fetch(&cluster, "allowed", &other).as_deref(),
        Some("other\n")
    );
}
