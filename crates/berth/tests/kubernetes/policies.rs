//! ValidatingAdmissionPolicies as Kubernetes' documentation writes them: a CEL rule on
//! Deployments bound to the namespaces labelled for it, refusing in kube-apiserver's
//! words; match conditions that exempt some objects; parameters from a ConfigMap; and a
//! binding that only warns.

use std::process::Output;

use crate::server::Server;

const POLICY: &str = r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: demo-policy.example.com
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: ["apps"]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["deployments"]
  matchConditions:
  - name: not-canary
    expression: "!has(object.metadata.labels) || !('canary' in object.metadata.labels)"
  validations:
  - expression: "object.spec.replicas <= 5"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: demo-binding-test.example.com
spec:
  policyName: demo-policy.example.com
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels:
        environment: test
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: replica-limit.example.com
spec:
  paramKind:
    apiVersion: v1
    kind: ConfigMap
  matchConstraints:
    resourceRules:
    - apiGroups: ["apps"]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["deployments"]
  variables:
  - name: limit
    expression: "int(params.data.maxReplicas)"
  validations:
  - expression: "object.spec.replicas <= variables.limit"
    messageExpression: "'replicas must be at most ' + string(variables.limit)"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: replica-limit-binding.example.com
spec:
  policyName: replica-limit.example.com
  validationActions: [Warn]
  paramRef:
    name: replica-limit
    namespace: default
    parameterNotFoundAction: Deny
"#;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_string()
}

#[test]
fn admission_policies_refuse_warn_and_read_their_parameters_on_sqlite() {
    admission_policies_refuse_warn_and_read_their_parameters(false);
}

#[test]
fn admission_policies_refuse_warn_and_read_their_parameters_on_etcd() {
    admission_policies_refuse_warn_and_read_their_parameters(true);
}

fn admission_policies_refuse_warn_and_read_their_parameters(on_etcd: bool) {
    let server = Server::start("policies", on_etcd);
    server.kubectl_ok(&["create", "namespace", "test"]);
    server.kubectl_ok(&["label", "namespace", "test", "environment=test"]);
    server.kubectl_ok(&[
        "create",
        "configmap",
        "replica-limit",
        "--from-literal=maxReplicas=3",
    ]);
    let policy = server.write("policy.yaml", POLICY);
    server.kubectl_ok(&["apply", "-f", &policy]);
    let policies = server.kubectl_ok(&["get", "validatingadmissionpolicies"]);
    let row: Vec<&str> = policies
        .lines()
        .nth(2)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(row[..3], ["replica-limit.example.com", "1", "v1/ConfigMap"]);
    let bindings = server.kubectl_ok(&["get", "validatingadmissionpolicybindings"]);
    let row: Vec<&str> = bindings
        .lines()
        .nth(2)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        row[..3],
        [
            "replica-limit-binding.example.com",
            "replica-limit.example.com",
            "default/replica-limit"
        ]
    );

    // Bound to namespace test: six replicas are refused there, in kube-apiserver's words.
    let six = [
        "create",
        "deployment",
        "nginx",
        "--image=nginx",
        "--replicas=6",
    ];
    let refused = server.kubectl(&[&six[..], &["-n", "test"]].concat());
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains(
            "ValidatingAdmissionPolicy 'demo-policy.example.com' with binding 'demo-binding-test.example.com' denied request: failed expression: object.spec.replicas <= 5"
        ),
        "{}",
        stderr(&refused)
    );
    // Elsewhere the parameters' limit only warns, with the message its expression made.
    let warned = server.kubectl(&six);
    assert!(warned.status.success(), "{}", stderr(&warned));
    assert!(
        stderr(&warned).contains(
            "Warning: Validation failed for ValidatingAdmissionPolicy 'replica-limit.example.com' with binding 'replica-limit-binding.example.com': replicas must be at most 3"
        ),
        "{}",
        stderr(&warned)
    );
    // A match condition exempts canaries; within the limits nothing is said.
    let canary = server.kubectl(&[
        "create",
        "deployment",
        "canary",
        "--image=nginx",
        "--replicas=2",
        "-n",
        "test",
    ]);
    assert!(canary.status.success(), "{}", stderr(&canary));
    assert!(!stderr(&canary).contains("Warning"), "{}", stderr(&canary));
    server.kubectl_ok(&["label", "deployment", "canary", "-n", "test", "canary=true"]);
    server.kubectl_ok(&[
        "scale",
        "deployment",
        "canary",
        "-n",
        "test",
        "--replicas=7",
    ]);

    // Without its parameters, a binding that says Deny denies.
    server.kubectl_ok(&["delete", "configmap", "replica-limit"]);
    let orphaned = server.kubectl(&["create", "deployment", "lonely", "--image=nginx"]);
    assert!(
        stderr(&orphaned)
            .contains("no params found for policy binding with `Deny` parameterNotFoundAction"),
        "{}",
        stderr(&orphaned)
    );

    // A policy whose expression does not parse is refused when written.
    let broken = server.write(
        "broken.yaml",
        &POLICY
            .split("---")
            .next()
            .unwrap()
            .replace("object.spec.replicas <= 5", "object.spec.replicas <="),
    );
    let refused = server.kubectl(&["apply", "-f", &broken]);
    assert!(
        stderr(&refused).contains("spec.validations[0].expression: Invalid value"),
        "{}",
        stderr(&refused)
    );
}
