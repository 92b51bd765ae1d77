//! The issue's yardstick: a platform's install manifests mixing every kind real projects
//! publish — RBAC with an aggregated ClusterRole, a CRD with printer columns, CEL and a
//! status subresource, webhooks, an APIService, an Ingress with its class,
//! NetworkPolicies, a PDB, quotas, storage, flow control, a CSR, events.k8s.io Events,
//! a ReplicationController, an admission policy, workloads — applied with kubectl's
//! default validation: nothing refused, nothing warned about, every object created, and
//! applied again, nothing changed. Then what they mean is enforced.

use std::process::Output;
use std::time::Duration;

use base64::Engine as _;

use crate::server::Server;

const PLATFORM: &str = include_str!("manifests/platform.yaml");

const CART: &str = r#"apiVersion: shop.example.com/v1
kind: Cart
metadata:
  name: big
  namespace: shop
spec:
  items: 3
  owner: alice
"#;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_string()
}

/// What kubectl reports configured on every apply, against kube-apiserver too: it
/// sends a PodDisruptionBudget's selector (patch strategy `replace`) whole each time,
/// and a list replaced whole whose items the server fills with defaults, as a
/// StatefulSet's claim templates. (Admission rules would be too, were `scope: "*"` not
/// written out, as projects write it for that reason.)
const ALWAYS_CONFIGURED: [&str; 2] = [
    "poddisruptionbudget.policy/checkout configured",
    "statefulset.apps/orders-db configured",
];

/// The lines kubectl printed, each checked to end as `outcome` says (but for
/// [`ALWAYS_CONFIGURED`] when `outcome` is ` unchanged`).
fn all_lines_say(output: &Output, outcome: &str) -> Vec<String> {
    assert!(output.status.success(), "{}", stderr(output));
    // kubectl's discovery complains, as against kube-apiserver, that the APIService's
    // server (which the manifests do not run) is unavailable; nothing else may be said.
    let unavailable = "couldn't get resource list for reports.shop.example.com/v1alpha1: the server is currently unable to handle the request";
    let said = stderr(output);
    let other: Vec<&str> = said
        .lines()
        .filter(|line| !line.contains(unavailable))
        .collect();
    assert!(other.is_empty(), "nothing should be warned about: {said}");
    let lines: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    for line in &lines {
        let resent = outcome == " unchanged" && ALWAYS_CONFIGURED.contains(&line.as_str());
        assert!(line.ends_with(outcome) || resent, "{line}\n{lines:#?}");
    }
    lines
}

fn platform_applies_whole(on_etcd: bool) {
    let server = Server::start(if on_etcd { "platform-etcd" } else { "platform" }, on_etcd);
    let dir = server.scratch.path().to_path_buf();
    let request = crate::callees::signing_request(&dir, "/CN=shop-client/O=shop", "shop");
    let request = base64::engine::general_purpose::STANDARD.encode(request);
    let manifests = server.write("platform.yaml", &PLATFORM.replace("CSR_PEM", &request));
    let objects = PLATFORM.split("\n---\n").count();

    let created = all_lines_say(&server.kubectl(&["apply", "-f", &manifests]), " created");
    assert_eq!(created.len(), objects, "{created:#?}");
    let cart = server.write("cart.yaml", CART);
    let created = all_lines_say(&server.kubectl(&["apply", "-f", &cart]), " created");
    assert_eq!(created, ["cart.shop.example.com/big created"]);
    // Applied again, nothing changes: kubectl's patches merge to what is stored.
    let again = all_lines_say(&server.kubectl(&["apply", "-f", &manifests]), " unchanged");
    assert_eq!(again.len(), objects);

    // What the objects say is enforced and printed.
    let carts = server.kubectl_ok(&["get", "carts", "-n", "shop"]);
    assert!(
        carts
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["big", "3"])),
        "{carts}"
    );
    let negative = server.kubectl(&[
        "patch",
        "cart",
        "big",
        "-n",
        "shop",
        "--type=merge",
        "-p",
        r#"{"spec":{"items":-1}}"#,
    ]);
    assert!(
        stderr(&negative).contains("items cannot be negative"),
        "{}",
        stderr(&negative)
    );
    // (A policy on deployments does not see their /scale subresource, as in Kubernetes.)
    let crowded = server.kubectl(&[
        "patch",
        "deployment",
        "checkout",
        "-n",
        "shop",
        "-p",
        r#"{"spec":{"replicas":30}}"#,
    ]);
    assert!(
        stderr(&crowded).contains("shop deployments stay under twenty replicas"),
        "{}",
        stderr(&crowded)
    );
    let token = server.kubectl_ok(&[
        "get",
        "secret",
        "shop-controller-token",
        "-n",
        "shop",
        "-o",
        "jsonpath={.data.token}",
    ]);
    assert!(!token.is_empty());
    let gathered = [
        "get",
        "clusterrole",
        "shop-aggregate",
        "-o",
        "jsonpath={.rules[0].resources}",
    ];
    server.kubectl_until(&gathered, Duration::from_secs(10), |rules| {
        rules == r#"["carts","carts/status"]"#
    });
    let may = server.kubectl_ok(&[
        "auth",
        "can-i",
        "patch",
        "carts.shop.example.com",
        "-n",
        "shop",
        "--as=system:serviceaccount:shop:shop-controller",
    ]);
    assert_eq!(may.trim(), "yes");
}

#[test]
fn a_platform_s_manifests_apply_whole_on_sqlite() {
    platform_applies_whole(false);
}

#[test]
fn a_platform_s_manifests_apply_whole_on_etcd() {
    platform_applies_whole(true);
}
