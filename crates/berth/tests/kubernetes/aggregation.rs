//! API aggregation as metrics-server installs itself: an APIService for
//! `v1beta1.metrics.k8s.io` backed by a Service (with `insecureSkipTLSVerify`, as its
//! published manifest has it) takes over from the built-in metrics group; requests are
//! authorized by the API server and reach the aggregated server (a Python HTTPS server
//! here, reached through a Service whose EndpointSlice points at it) as the user they
//! come from; an APIService whose Service has no endpoints is unavailable, and so are
//! its paths.

use std::time::Duration;

use crate::callees::{certificates, python_https};
use crate::server::Server;

/// A metrics server of one node, which reports whom the API server said it asks for.
const METRICS_SERVER: &str = r#"
import http.server, json, ssl, sys

class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split('?')[0]
        if path == '/apis/metrics.k8s.io/v1beta1':
            self.reply(200, {'kind': 'APIResourceList', 'apiVersion': 'v1',
                             'groupVersion': 'metrics.k8s.io/v1beta1',
                             'resources': [{'name': 'nodes', 'singularName': '', 'namespaced': False,
                                            'kind': 'NodeMetrics', 'verbs': ['get', 'list']}]})
        elif path == '/apis/metrics.k8s.io/v1beta1/nodes':
            asker = {'user': self.headers.get('X-Remote-User', ''),
                     'groups': ','.join(self.headers.get_all('X-Remote-Group') or [])}
            self.reply(200, {'kind': 'NodeMetricsList', 'apiVersion': 'metrics.k8s.io/v1beta1',
                             'metadata': {},
                             'items': [{'metadata': {'name': 'aggregated', 'annotations': asker},
                                        'timestamp': '2026-01-01T00:00:00Z', 'window': '10s',
                                        'usage': {'cpu': '123m', 'memory': '45Mi'}}]})
        else:
            self.reply(404, {'kind': 'Status', 'apiVersion': 'v1', 'status': 'Failure',
                             'reason': 'NotFound', 'code': 404, 'message': 'not found'})
"#;

/// metrics-server's Service and APIService as its manifest has them, with an
/// EndpointSlice for the server on this host's loopback; and an APIService whose
/// Service has no endpoints.
const MANIFESTS: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: metrics-server
  namespace: kube-system
spec:
  ports:
  - name: https
    port: 443
    protocol: TCP
    targetPort: PORT
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: metrics-server-local
  namespace: kube-system
  labels:
    kubernetes.io/service-name: metrics-server
addressType: IPv4
endpoints:
- addresses: ["127.0.0.1"]
  conditions:
    ready: true
ports:
- name: https
  port: PORT
  protocol: TCP
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: v1beta1.metrics.k8s.io
  labels:
    k8s-app: metrics-server
spec:
  group: metrics.k8s.io
  groupPriorityMinimum: 100
  insecureSkipTLSVerify: true
  service:
    name: metrics-server
    namespace: kube-system
  version: v1beta1
  versionPriority: 100
---
apiVersion: v1
kind: Service
metadata:
  name: nowhere
  namespace: default
spec:
  ports:
  - port: 443
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: v1alpha1.widgets.example.com
spec:
  group: widgets.example.com
  groupPriorityMinimum: 1000
  insecureSkipTLSVerify: true
  service:
    name: nowhere
    namespace: default
  version: v1alpha1
  versionPriority: 15
"#;

#[test]
fn an_apiservice_hands_its_group_version_to_its_service_on_sqlite() {
    an_apiservice_hands_its_group_version_to_its_service(false);
}

#[test]
fn an_apiservice_hands_its_group_version_to_its_service_on_etcd() {
    an_apiservice_hands_its_group_version_to_its_service(true);
}

fn an_apiservice_hands_its_group_version_to_its_service(on_etcd: bool) {
    let server = Server::start("aggregation", on_etcd);
    let dir = server.scratch.path().to_path_buf();
    certificates(&dir);
    let (_metrics_server, port) = python_https(METRICS_SERVER, &dir, &[]);
    let manifests = server.write(
        "metrics.yaml",
        &MANIFESTS.replace("PORT", &port.to_string()),
    );
    server.kubectl_ok(&["apply", "-f", &manifests]);
    server.kubectl_ok(&[
        "wait",
        "--for=condition=Available",
        "apiservice/v1beta1.metrics.k8s.io",
        "--timeout=30s",
    ]);
    let services = server.kubectl_until(&["get", "apiservices"], Duration::from_secs(30), |t| {
        t.contains("False (MissingEndpoints)")
    });
    let rows: Vec<Vec<&str>> = services
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["NAME", "SERVICE", "AVAILABLE", "AGE"]);
    assert!(
        rows.iter().any(|r| r[..3]
            == [
                "v1beta1.metrics.k8s.io",
                "kube-system/metrics-server",
                "True"
            ]),
        "{services}"
    );
    assert!(
        rows.iter().any(|r| r[..4]
            == [
                "v1alpha1.widgets.example.com",
                "default/nowhere",
                "False",
                "(MissingEndpoints)"
            ]),
        "{services}"
    );

    // The aggregated server answers, not the built-in metrics, and learns who asks.
    let nodes = server.kubectl_ok(&["get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes"]);
    let nodes: serde_json::Value = serde_json::from_str(&nodes).unwrap();
    let item = &nodes["items"][0];
    assert_eq!(item["metadata"]["name"], "aggregated");
    assert_eq!(item["usage"]["cpu"], "123m");
    assert_eq!(item["metadata"]["annotations"]["user"], "system:admin");
    assert_eq!(
        item["metadata"]["annotations"]["groups"],
        "system:masters,system:authenticated"
    );
    // Discovery is the aggregated server's too; kubectl lists what it can and, as with
    // kube-apiserver, names the group version it could not reach.
    let listed = server.kubectl(&["api-resources", "--api-group=metrics.k8s.io"]);
    let resources = String::from_utf8_lossy(&listed.stdout);
    assert!(resources.contains("NodeMetrics"), "{resources}");
    assert!(!resources.contains("PodMetrics"), "{resources}");
    let errors = String::from_utf8_lossy(&listed.stderr);
    assert!(
        errors.contains(
            "widgets.example.com/v1alpha1: the server is currently unable to handle the request"
        ),
        "{errors}"
    );

    // The API server decides who may ask, in its own words.
    server.kubectl_ok(&["create", "serviceaccount", "nobody"]);
    let token = server.kubectl_ok(&["create", "token", "nobody"]);
    let refused = server.kubectl_as(
        token.trim(),
        &["get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes"],
    );
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains(r#"nodes.metrics.k8s.io is forbidden: User "system:serviceaccount:default:nobody" cannot list resource "nodes" in API group "metrics.k8s.io" at the cluster scope"#),
        "{message}"
    );

    // A group version whose Service cannot be reached is unavailable, as kube-apiserver
    // says it.
    let missing = server.kubectl(&["get", "--raw", "/apis/widgets.example.com/v1alpha1/widgets"]);
    assert!(!missing.status.success());
    let message = String::from_utf8_lossy(&missing.stderr);
    assert!(
        message.contains("the server is currently unable to handle the request"),
        "{message}"
    );
}
