//! Admission webhooks as operators install them: a MutatingWebhookConfiguration and a
//! ValidatingWebhookConfiguration naming a real HTTPS webhook (Python's http.server
//! with a certificate of a test CA, given as the caBundle), matched by rules, a
//! namespace selector and an object selector; patches applied and warnings passed on,
//! refusals in kube-apiserver's words, unreachable webhooks failing the write or
//! ignored by their failurePolicy, dry runs marked as such.

use std::process::Output;

use base64::Engine as _;

use crate::callees::{certificates, python_https};
use crate::server::Server;

/// The webhook: `/mutate` labels what it is sent `mutated: "yes"` and warns so;
/// `/validate` refuses objects labelled `deny: "true"`. Each review is logged, one JSON
/// line each, to the file its third argument names.
const WEBHOOK: &str = r#"
import base64, http.server, json, ssl, sys
log = sys.argv[3]

class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        review = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
        request = review['request']
        with open(log, 'a') as f:
            f.write(json.dumps({'path': self.path, 'operation': request['operation'],
                                'name': request.get('name'), 'dryRun': request['dryRun'],
                                'version': review['apiVersion']}) + '\n')
        labels = ((request.get('object') or {}).get('metadata') or {}).get('labels') or {}
        response = {'uid': request['uid'], 'allowed': True}
        if self.path.startswith('/validate') and labels.get('deny') == 'true':
            response = {'uid': request['uid'], 'allowed': False,
                        'status': {'code': 403, 'message': 'objects labelled deny=true are refused'}}
        elif self.path.startswith('/mutate'):
            patch = [{'op': 'add', 'path': '/metadata/labels', 'value': dict(labels, mutated='yes')}]
            response.update(patchType='JSONPatch', warnings=['labelled by the test webhook'],
                            patch=base64.b64encode(json.dumps(patch).encode()).decode())
        body = json.dumps({'apiVersion': review['apiVersion'], 'kind': 'AdmissionReview',
                           'response': response}).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
"#;

const CONFIGURATIONS: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: guarded
  labels:
    webhooks: enabled
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: labeller
webhooks:
- name: labeller.berth.example.com
  clientConfig:
    url: https://127.0.0.1:PORT/mutate
    caBundle: CA_BUNDLE
  rules:
  - operations: ["CREATE"]
    apiGroups: [""]
    apiVersions: ["v1"]
    resources: ["configmaps"]
  objectSelector:
    matchLabels:
      label-me: "yes"
  sideEffects: None
  admissionReviewVersions: ["v1"]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: guard
webhooks:
- name: guard.berth.example.com
  clientConfig:
    url: https://127.0.0.1:PORT/validate
    caBundle: CA_BUNDLE
  rules:
  - operations: ["CREATE", "UPDATE"]
    apiGroups: [""]
    apiVersions: ["v1"]
    resources: ["configmaps"]
  namespaceSelector:
    matchLabels:
      webhooks: enabled
  sideEffects: None
  admissionReviewVersions: ["v1", "v1beta1"]
- name: down.berth.example.com
  clientConfig:
    url: https://127.0.0.1:1/validate
    caBundle: CA_BUNDLE
  rules:
  - operations: ["CREATE"]
    apiGroups: [""]
    apiVersions: ["v1"]
    resources: ["secrets"]
  namespaceSelector:
    matchLabels:
      webhooks: enabled
  matchConditions:
  - name: not-exempt
    expression: "object.metadata.name != 'exempt'"
  sideEffects: None
  timeoutSeconds: 2
  admissionReviewVersions: ["v1"]
- name: optional.berth.example.com
  clientConfig:
    url: https://127.0.0.1:1/validate
    caBundle: CA_BUNDLE
  rules:
  - operations: ["CREATE"]
    apiGroups: [""]
    apiVersions: ["v1"]
    resources: ["serviceaccounts"]
  failurePolicy: Ignore
  sideEffects: None
  admissionReviewVersions: ["v1"]
"#;

fn configmap(name: &str, namespace: &str, labels: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  labels: {{{labels}}}\ndata:\n  a: b\n"
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

fn refused(output: &Output, expected: &str) {
    assert!(!output.status.success(), "{output:?}");
    assert!(
        text(&output.stderr).contains(expected),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn admission_webhooks_mutate_and_refuse_writes_as_their_configurations_say_on_sqlite() {
    admission_webhooks_mutate_and_refuse_writes_as_their_configurations_say(false);
}

#[test]
fn admission_webhooks_mutate_and_refuse_writes_as_their_configurations_say_on_etcd() {
    admission_webhooks_mutate_and_refuse_writes_as_their_configurations_say(true);
}

fn admission_webhooks_mutate_and_refuse_writes_as_their_configurations_say(on_etcd: bool) {
    let server = Server::start("webhooks", on_etcd);
    let dir = server.scratch.path().to_path_buf();
    certificates(&dir);
    let (_webhook, port) = python_https(WEBHOOK, &dir, &[&dir.join("reviews.log")]);
    let bundle = base64::engine::general_purpose::STANDARD
        .encode(std::fs::read(dir.join("ca.crt")).unwrap());
    let configurations = CONFIGURATIONS
        .replace("PORT", &port.to_string())
        .replace("CA_BUNDLE", &bundle);
    let configurations = server.write("webhooks.yaml", &configurations);
    server.kubectl_ok(&["apply", "-f", &configurations]);

    // The mutating webhook labels what its object selector picks, and warns.
    let labelled = server.write(
        "labelled.yaml",
        &configmap("labelled", "default", "label-me: 'yes'"),
    );
    let output = server.kubectl(&["apply", "-f", &labelled]);
    assert!(output.status.success(), "{output:?}");
    assert!(
        text(&output.stderr).contains("Warning: labelled by the test webhook"),
        "{output:?}"
    );
    let labels = server.kubectl_ok(&["get", "cm", "labelled", "-o", "jsonpath={.metadata.labels}"]);
    assert_eq!(labels, r#"{"label-me":"yes","mutated":"yes"}"#);
    let plain = server.write("plain.yaml", &configmap("plain", "default", ""));
    server.kubectl_ok(&["apply", "-f", &plain]);
    let labels = server.kubectl_ok(&["get", "cm", "plain", "-o", "jsonpath={.metadata.labels}"]);
    assert!(!labels.contains("mutated"), "{labels}");

    // The validating webhook refuses in the namespaces it selects, on create and update.
    let denied = r#"admission webhook "guard.berth.example.com" denied the request: objects labelled deny=true are refused"#;
    let guarded = server.write(
        "guarded.yaml",
        &configmap("refused", "guarded", "deny: 'true'"),
    );
    refused(&server.kubectl(&["apply", "-f", &guarded]), denied);
    let elsewhere = server.write(
        "elsewhere.yaml",
        &configmap("refused", "default", "deny: 'true'"),
    );
    server.kubectl_ok(&["apply", "-f", &elsewhere]);
    server.kubectl_ok(&["create", "configmap", "fine", "-n", "guarded"]);
    refused(
        &server.kubectl(&["label", "cm", "fine", "-n", "guarded", "deny=true"]),
        denied,
    );

    // An unreachable webhook fails the write unless its failure policy ignores it.
    refused(
        &server.kubectl(&[
            "create",
            "secret",
            "generic",
            "s",
            "-n",
            "guarded",
            "--from-literal=a=b",
        ]),
        r#"Internal error occurred: failed calling webhook "down.berth.example.com": failed to call webhook: Post "https://127.0.0.1:1/validate?timeout=2s""#,
    );
    server.kubectl_ok(&["create", "serviceaccount", "robot"]);
    // A webhook whose match conditions do not hold is not called at all.
    server.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "exempt",
        "-n",
        "guarded",
        "--from-literal=a=b",
    ]);

    // A dry run reaches the webhooks marked as one, and stores nothing.
    server.kubectl_ok(&[
        "create",
        "configmap",
        "dry",
        "-n",
        "guarded",
        "--dry-run=server",
    ]);
    let missing = server.kubectl(&["get", "cm", "dry", "-n", "guarded"]);
    assert!(!missing.status.success());
    let reviews = std::fs::read_to_string(dir.join("reviews.log")).unwrap();
    let dry: Vec<&str> = reviews
        .lines()
        .filter(|l| l.contains(r#""name": "dry""#))
        .collect();
    assert_eq!(dry.len(), 1, "{reviews}");
    assert!(dry[0].contains(r#""dryRun": true"#), "{reviews}");
    assert!(
        dry[0].contains(r#""version": "admission.k8s.io/v1""#),
        "{reviews}"
    );
    assert!(
        reviews.contains(r#""operation": "UPDATE", "name": "fine""#),
        "{reviews}"
    );

    // Configurations are checked in kube-apiserver's words.
    let plain_http = server.write(
        "http.yaml",
        &CONFIGURATIONS
            .replace("https://127.0.0.1:PORT", "http://127.0.0.1:9")
            .replace("CA_BUNDLE", &bundle)
            .replace("name: guard\n", "name: careless\n"),
    );
    refused(
        &server.kubectl(&["apply", "-f", &plain_http]),
        r#"webhooks[0].clientConfig.url: Invalid value: "http://127.0.0.1:9/validate": 'https' is the only allowed URL scheme"#,
    );
}
