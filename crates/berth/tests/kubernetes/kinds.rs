//! The built-in kinds real manifests bring besides workloads — an ingress controller's
//! IngressClass and an Ingress, NetworkPolicies, a RuntimeClass, a CSI driver, a
//! PodTemplate — applied with kubectl's default validation, printed as kubectl prints
//! them, defaulted as kube-apiserver defaults them and refused in its words; `kubectl get
//! all`; and what delegating servers ask: TokenReview, and `/version` without
//! credentials.

use std::process::Output;
use std::time::Duration;

use crate::server::Server;

const MANIFESTS: &str = r#"apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: nginx
  labels:
    app.kubernetes.io/name: ingress-nginx
spec:
  controller: k8s.io/ingress-nginx
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  annotations:
    nginx.ingress.kubernetes.io/rewrite-target: /
spec:
  ingressClassName: nginx
  tls:
  - hosts: [shop.example.com]
    secretName: shop-tls
  rules:
  - host: shop.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: web
            port:
              number: 80
  - host: api.example.com
    http:
      paths:
      - path: /v1
        pathType: Exact
        backend:
          service:
            name: api
            port:
              name: http
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny
spec:
  podSelector: {}
  policyTypes: [Ingress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-web
spec:
  podSelector:
    matchLabels:
      app: web
  ingress:
  - from:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: ingress
    ports:
    - port: 8080
  egress:
  - to:
    - ipBlock:
        cidr: 10.0.0.0/8
        except: [10.1.0.0/16]
---
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: sandboxed
handler: runsc
---
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata:
  name: hostpath.csi.k8s.io
spec:
  podInfoOnMount: true
  volumeLifecycleModes: [Persistent, Ephemeral]
---
apiVersion: v1
kind: PodTemplate
metadata:
  name: worker
template:
  metadata:
    labels:
      app: worker
  spec:
    containers:
    - name: worker
      image: busybox
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: PriorityLevelConfiguration
metadata:
  name: operator-level
spec:
  type: Limited
  limited:
    nominalConcurrencyShares: 10
    limitResponse:
      type: Queue
      queuing:
        queues: 16
        handSize: 4
        queueLengthLimit: 50
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata:
  name: operator
spec:
  priorityLevelConfiguration:
    name: operator-level
  matchingPrecedence: 1000
  distinguisherMethod:
    type: ByUser
  rules:
  - subjects:
    - kind: ServiceAccount
      serviceAccount:
        name: operator
        namespace: default
    resourceRules:
    - verbs: ["*"]
      apiGroups: ["*"]
      resources: ["*"]
      namespaces: ["*"]
"#;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_string()
}

/// The first row of `kubectl get` output, split at whitespace.
fn first_row(table: &str) -> Vec<String> {
    let row = table.lines().nth(1).unwrap_or_default();
    row.split_whitespace().map(str::to_string).collect()
}

#[test]
fn networking_storage_and_node_kinds_apply_print_and_default_as_kubernetes_does() {
    let server = Server::start("kinds", false);
    let manifests = server.write("kinds.yaml", MANIFESTS);
    let applied = server.kubectl_ok(&["apply", "-f", &manifests]);
    for object in [
        "ingressclass.networking.k8s.io/nginx created",
        "ingress.networking.k8s.io/web created",
        "networkpolicy.networking.k8s.io/default-deny created",
        "networkpolicy.networking.k8s.io/allow-web created",
        "runtimeclass.node.k8s.io/sandboxed created",
        "csidriver.storage.k8s.io/hostpath.csi.k8s.io created",
        "podtemplate/worker created",
        "prioritylevelconfiguration.flowcontrol.apiserver.k8s.io/operator-level created",
        "flowschema.flowcontrol.apiserver.k8s.io/operator created",
    ] {
        assert!(applied.contains(object), "{applied}");
    }

    let ingress = first_row(&server.kubectl_ok(&["get", "ing", "web"]));
    assert_eq!(
        ingress[..5],
        [
            "web",
            "nginx",
            "shop.example.com,api.example.com",
            "80,",
            "443"
        ]
    );
    let class = first_row(&server.kubectl_ok(&["get", "ingressclass", "nginx"]));
    assert_eq!(class[..3], ["nginx", "k8s.io/ingress-nginx", "<none>"]);
    let policies = server.kubectl_ok(&["get", "netpol"]);
    let rows: Vec<Vec<&str>> = policies
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0][..2], ["allow-web", "app=web"]);
    assert_eq!(rows[1][..2], ["default-deny", "<none>"]);
    let field = |kind: &str, name: &str, path: &str| {
        server.kubectl_ok(&["get", kind, name, "-o", &format!("jsonpath={path}")])
    };
    // kube-apiserver's defaults: an Egress policy too when it has egress rules, TCP.
    assert_eq!(
        field("netpol", "allow-web", "{.spec.policyTypes}"),
        r#"["Ingress","Egress"]"#
    );
    assert_eq!(
        field(
            "netpol",
            "allow-web",
            "{.spec.ingress[0].ports[0].protocol}"
        ),
        "TCP"
    );
    assert_eq!(
        field("csidriver", "hostpath.csi.k8s.io", "{.spec.attachRequired}"),
        "true"
    );
    let runtime = first_row(&server.kubectl_ok(&["get", "runtimeclass"]));
    assert_eq!(runtime[..2], ["sandboxed", "runsc"]);
    let template = first_row(&server.kubectl_ok(&["get", "podtemplate", "worker"]));
    assert_eq!(template, ["worker", "worker", "busybox", "app=worker"]);
    assert_eq!(
        field(
            "podtemplate",
            "worker",
            "{.template.spec.containers[0].imagePullPolicy}"
        ),
        "Always"
    );

    // Discovery as kubectl reads it: short names, and the workloads of `get all`.
    let resources = server.kubectl_ok(&["api-resources"]);
    assert!(
        resources.lines().any(|l| {
            l.split_whitespace().collect::<Vec<_>>()
                == [
                    "ingresses",
                    "ing",
                    "networking.k8s.io/v1",
                    "true",
                    "Ingress",
                ]
        }),
        "{resources}"
    );
    server.kubectl_ok(&["create", "deployment", "web", "--image=busybox"]);
    let all = server.kubectl_ok(&["get", "all"]);
    assert!(all.contains("deployment.apps/web"), "{all}");

    // Refused in kube-apiserver's words.
    let bad = server.write(
        "bad.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: bad\nspec:\n  rules:\n  - http:\n      paths:\n      - path: relative\n        pathType: Prefix\n        backend:\n          service: {name: web, port: {number: 80}}\n",
    );
    let refused = stderr(&server.kubectl(&["apply", "-f", &bad]));
    assert!(
        refused.contains(
            "spec.rules[0].http.paths[0].path: Invalid value: \"relative\": must be an absolute path"
        ),
        "{refused}"
    );
    let bad_block = server.write(
        "bad-block.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: bad-block\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - ipBlock: {cidr: 10.0.0.0/33}\n    - ipBlock: {cidr: 10.0.0.0/8, except: [192.168.0.0/16]}\n",
    );
    let refused = stderr(&server.kubectl(&["apply", "-f", &bad_block]));
    assert!(
        refused.contains(
            "spec.ingress[0].from[0].ipBlock.cidr: Invalid value: \"10.0.0.0/33\": must be a valid CIDR value"
        ) && refused.contains(
            "spec.ingress[0].from[1].ipBlock.except[0]: Invalid value: \"192.168.0.0/16\": must be a strict subset of `cidr`"
        ),
        "{refused}"
    );
    let classless = server.write(
        "classless.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: classless\nspec: {}\n",
    );
    let refused = stderr(&server.kubectl(&["apply", "-f", &classless]));
    assert!(
        refused.contains("spec.controller: Required value"),
        "{refused}"
    );
}

#[test]
fn token_reviews_answer_delegating_servers_and_version_needs_no_credentials() {
    let server = Server::start("reviews", false);
    let version = server.curl(&["/version"]);
    let version: serde_json::Value = serde_json::from_slice(&version.stdout).unwrap();
    assert_eq!(version["major"], "1");
    // So is the issuer's discovery, for verifiers outside the cluster; nothing else.
    let discovery = server.curl(&["/.well-known/openid-configuration"]);
    let discovery: serde_json::Value = serde_json::from_slice(&discovery.stdout).unwrap();
    assert_eq!(
        discovery["issuer"],
        "https://kubernetes.default.svc.cluster.local"
    );
    let keys = server.curl(&["/openid/v1/jwks"]);
    let keys: serde_json::Value = serde_json::from_slice(&keys.stdout).unwrap();
    assert_eq!(keys["keys"][0]["alg"], "ES256");
    let pods = server.curl(&["/api/v1/pods"]);
    let pods: serde_json::Value = serde_json::from_slice(&pods.stdout).unwrap();
    assert_eq!(pods["code"], 401);

    for account in ["delegator", "robot"] {
        server.kubectl_ok(&["create", "serviceaccount", account]);
    }
    server.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "delegator",
        "--clusterrole=system:auth-delegator",
        "--serviceaccount=default:delegator",
    ]);
    let token = |account: &str| {
        server
            .kubectl_ok(&["create", "token", account])
            .trim()
            .to_string()
    };
    let (delegator, robot) = (token("delegator"), token("robot"));
    let review = |as_token: &str, token: &str, audiences: &[&str]| {
        let body = serde_json::json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": audiences},
        });
        let file = server.write("review.json", &body.to_string());
        let path = "/apis/authentication.k8s.io/v1/tokenreviews";
        server.kubectl_as(as_token, &["create", "--raw", path, "-f", &file])
    };
    let answer = review(&delegator, &robot, &[]);
    assert!(answer.status.success(), "{}", stderr(&answer));
    let answer: serde_json::Value = serde_json::from_slice(&answer.stdout).unwrap();
    assert_eq!(answer["status"]["authenticated"], true);
    assert_eq!(
        answer["status"]["user"]["username"],
        "system:serviceaccount:default:robot"
    );
    assert_eq!(
        answer["status"]["audiences"][0],
        "https://kubernetes.default.svc.cluster.local"
    );
    // A token for another audience is not good for the API's, nor a forged one.
    let vault = server.kubectl_ok(&["create", "token", "robot", "--audience=vault"]);
    for (token, audiences) in [(vault.trim(), vec![]), (&format!("{robot}x"), vec![])] {
        let answer = review(&delegator, token, &audiences);
        let answer: serde_json::Value = serde_json::from_slice(&answer.stdout).unwrap();
        assert_eq!(answer["status"]["authenticated"], false, "{answer}");
    }
    let answer = review(&delegator, vault.trim(), &["vault"]);
    let answer: serde_json::Value = serde_json::from_slice(&answer.stdout).unwrap();
    assert_eq!(answer["status"]["authenticated"], true, "{answer}");
    assert_eq!(answer["status"]["audiences"][0], "vault");
    // Only those allowed to create tokenreviews may ask.
    let refused = review(&robot, &delegator, &[]);
    assert!(
        stderr(&refused).contains("cannot create resource \"tokenreviews\" in API group \"authentication.k8s.io\" at the cluster scope"),
        "{}",
        stderr(&refused)
    );
    // A legacy token, asked for with a Secret, is the account's until the Secret goes.
    let secret = server.write(
        "legacy.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: robot-token\n  annotations:\n    kubernetes.io/service-account.name: robot\ntype: kubernetes.io/service-account-token\n",
    );
    server.kubectl_ok(&["apply", "-f", &secret]);
    let field = |key: &str| {
        let encoded = server.kubectl_ok(&[
            "get",
            "secret",
            "robot-token",
            "-o",
            &format!("jsonpath={{.data.{key}}}"),
        ]);
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim());
        String::from_utf8(decoded.unwrap()).unwrap()
    };
    assert_eq!(field("namespace"), "default");
    assert!(field("ca\\.crt").starts_with("-----BEGIN CERTIFICATE-----"));
    let legacy = field("token");
    let whoami = server.kubectl_as(
        &legacy,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&whoami.stdout),
        "system:serviceaccount:default:robot",
        "{}",
        stderr(&whoami)
    );
    server.kubectl_ok(&["delete", "secret", "robot-token"]);
    // The server's cache sees the delete a moment after it answered it.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let revoked = stderr(&server.kubectl_as(&legacy, &["auth", "whoami"]));
        if revoked.contains("Unauthorized") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{revoked}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let unnamed = server.write(
        "unnamed.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: unnamed\ntype: kubernetes.io/service-account-token\n",
    );
    let refused = stderr(&server.kubectl(&["apply", "-f", &unnamed]));
    assert!(
        refused
            .contains("metadata.annotations[kubernetes.io/service-account.name]: Required value"),
        "{refused}"
    );
}

const EVENTS: &str = r#"apiVersion: events.k8s.io/v1
kind: Event
metadata:
  name: web.scaled
eventTime: "2026-12-04T04:00:00.000000Z"
reportingController: example.com/operator
reportingInstance: operator-0
action: Scale
reason: Scaled
regarding:
  apiVersion: apps/v1
  kind: Deployment
  name: web
  namespace: default
note: scaled up to 3
type: Normal
---
apiVersion: v1
kind: Event
metadata:
  name: db.pulled
involvedObject:
  kind: Pod
  name: db
  namespace: default
reason: Pulled
message: image pulled
source:
  component: kubelet
type: Normal
"#;

#[test]
fn events_of_both_api_groups_are_one_list() {
    let server = Server::start("events", false);
    let manifests = server.write("events.yaml", EVENTS);
    let created = server.kubectl_ok(&["create", "-f", &manifests]);
    assert!(
        created.contains("event.events.k8s.io/web.scaled created"),
        "{created}"
    );
    // What a kube-rs Recorder writes is what `kubectl get events` shows ...
    let core = server.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=web",
        "-o",
        "jsonpath={.items[0].message}/{.items[0].reportingComponent}",
    ]);
    assert_eq!(core, "scaled up to 3/example.com/operator");
    let listed = server.kubectl_ok(&["get", "events"]);
    assert!(listed.contains("deployment/web"), "{listed}");
    // ... and the other way round.
    let newer = server.kubectl_ok(&[
        "get",
        "events.v1.events.k8s.io",
        "db.pulled",
        "-o",
        "jsonpath={.regarding.name}/{.note}/{.deprecatedSource.component}",
    ]);
    assert_eq!(newer, "db/image pulled/kubelet");
    let patched = server.kubectl_ok(&[
        "patch",
        "events.v1.events.k8s.io",
        "web.scaled",
        "--type=merge",
        "-p",
        r#"{"note":"scaled up to 4"}"#,
        "-o",
        "jsonpath={.note}",
    ]);
    assert_eq!(patched, "scaled up to 4");
    let message = server.kubectl_ok(&["get", "event", "web.scaled", "-o", "jsonpath={.message}"]);
    assert_eq!(message, "scaled up to 4");

    let anonymous = server.write(
        "anonymous.yaml",
        "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata:\n  name: who\neventTime: \"2026-12-04T04:00:00.000000Z\"\nreason: Guess\ntype: Normal\n",
    );
    let refused = stderr(&server.kubectl(&["create", "-f", &anonymous]));
    assert!(
        refused.contains("reportingController: Required value"),
        "{refused}"
    );
}

const REPLICATION_CONTROLLER: &str = r#"apiVersion: v1
kind: ReplicationController
metadata:
  name: legacy
spec:
  replicas: 2
  template:
    metadata:
      labels:
        app: legacy
    spec:
      containers:
      - name: web
        image: busybox
"#;

#[test]
fn a_replication_controller_keeps_its_pods_and_scales() {
    let server = Server::start("replication", false);
    let _nodes = server.simulated_nodes(1);
    let manifest = server.write("rc.yaml", REPLICATION_CONTROLLER);
    server.kubectl_ok(&["apply", "-f", &manifest]);
    // The selector and the labels come from the template, as kube-apiserver defaults.
    let selector = server.kubectl_ok(&[
        "get",
        "rc",
        "legacy",
        "-o",
        "jsonpath={.spec.selector.app}/{.metadata.labels.app}",
    ]);
    assert_eq!(selector, "legacy/legacy");
    let pods = |count: usize| move |text: &str| text.split_whitespace().count() == count;
    let names = ["get", "pods", "-l", "app=legacy", "-o", "name"];
    server.kubectl_until(&names, Duration::from_secs(30), pods(2));
    let row = server.kubectl_until(&["get", "rc", "legacy"], Duration::from_secs(30), |t| {
        first_row(t).get(2).is_some_and(|current| current == "2")
    });
    assert_eq!(first_row(&row)[..3], ["legacy", "2", "2"]);
    server.kubectl_ok(&["scale", "rc", "legacy", "--replicas=3"]);
    server.kubectl_until(&names, Duration::from_secs(30), pods(3));
    let wide = first_row(&server.kubectl_ok(&["get", "rc", "legacy", "-o", "wide"]));
    assert_eq!(wide[5..], ["web", "busybox", "app=legacy"]);
    server.kubectl_ok(&["delete", "rc", "legacy"]);
    server.kubectl_until(&names, Duration::from_secs(30), pods(0));
}

const TWO_CONTAINERS: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: busybox
        ports:
        - containerPort: 80
        env:
        - name: MODE
          value: fast
      - name: old
        image: busybox
"#;

#[test]
fn apply_and_set_image_merge_lists_by_their_keys() {
    let server = Server::start("strategic", false);
    let manifest = server.write("web.yaml", TWO_CONTAINERS);
    server.kubectl_ok(&["apply", "-f", &manifest]);
    // A container renamed in the manifest: kubectl's patch deletes the old one by name
    // and orders the list; the other keeps its ports and env.
    let renamed = server.write(
        "web.yaml",
        &TWO_CONTAINERS.replace("name: old", "name: new"),
    );
    server.kubectl_ok(&["apply", "-f", &renamed]);
    server.kubectl_ok(&["set", "image", "deployment/web", "web=busybox:2"]);
    let containers = server.kubectl_ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={range .spec.template.spec.containers[*]}{.name}/{.image}/{.ports[0].containerPort}/{.env[0].value};{end}",
    ]);
    assert_eq!(containers, "web/busybox:2/80/fast;new/busybox//;");
    // A strategic patch merges the env list by name.
    server.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","env":[{"name":"LEVEL","value":"3"}]}]}}}}"#,
    ]);
    let env = server.kubectl_ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].env[*].name}",
    ]);
    assert_eq!(env, "MODE LEVEL");
}

#[test]
fn the_openapi_v2_document_in_protobuf_serves_kubectl_explain() {
    let server = Server::start("swagger", false);
    // kubectl reads /openapi/v2 through client-go's discovery, which asks for protobuf.
    let explained = server.kubectl_ok(&[
        "explain",
        "deployment.spec.strategy",
        "--output=plaintext-openapiv2",
    ]);
    for expected in [
        "RESOURCE: strategy <Object>",
        "rollingUpdate\t<Object>",
        "Type of deployment.",
    ] {
        assert!(explained.contains(expected), "{explained}");
    }
}
