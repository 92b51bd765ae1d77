//! PodSecurity admission as clusters use it: namespaces labelled to enforce or warn
//! about a Pod Security Standard, pods refused or warned about in kube-apiserver's
//! words, workloads whose templates would be, and labels that name no level refused.

use std::process::Output;

use crate::server::Server;

const NAMESPACES: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: secure
  labels:
    pod-security.kubernetes.io/enforce: restricted
    pod-security.kubernetes.io/enforce-version: latest
---
apiVersion: v1
kind: Namespace
metadata:
  name: watched
  labels:
    pod-security.kubernetes.io/warn: baseline
"#;

fn pod(name: &str, namespace: &str, security: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n{security}  containers:\n  - name: app\n    image: busybox\n"
    )
}

const HARDENED: &str = "  securityContext:\n    runAsNonRoot: true\n    runAsUser: 1000\n    seccompProfile:\n      type: RuntimeDefault\n";

/// What a pod without a security context breaks of the restricted level.
const RESTRICTED_VIOLATIONS: &str = r#"PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "app" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "app" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "app" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "app" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

#[test]
fn namespaces_enforce_and_warn_about_the_pod_security_standards_on_sqlite() {
    namespaces_enforce_and_warn_about_the_pod_security_standards(false);
}

#[test]
fn namespaces_enforce_and_warn_about_the_pod_security_standards_on_etcd() {
    namespaces_enforce_and_warn_about_the_pod_security_standards(true);
}

fn namespaces_enforce_and_warn_about_the_pod_security_standards(on_etcd: bool) {
    let server = Server::start("podsecurity", on_etcd);
    let namespaces = server.write("namespaces.yaml", NAMESPACES);
    server.kubectl_ok(&["apply", "-f", &namespaces]);

    // Enforced: a pod as most manifests write one is refused, naming every check.
    let plain = server.write("plain.yaml", &pod("plain", "secure", ""));
    let refused = server.kubectl(&["apply", "-f", &plain]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains(&format!(
            "Error from server (Forbidden): error when creating \"{plain}\": pods \"plain\" is forbidden: violates {RESTRICTED_VIOLATIONS}"
        )),
        "{}",
        stderr(&refused)
    );
    let hardened = pod("hardened", "secure", HARDENED).replace(
        "    image: busybox\n",
        "    image: busybox\n    securityContext:\n      allowPrivilegeEscalation: false\n      capabilities:\n        drop: [\"ALL\"]\n",
    );
    let hardened = server.write("hardened.yaml", &hardened);
    server.kubectl_ok(&["apply", "-f", &hardened]);

    // A workload whose pods would be refused is stored, with a warning (kubectl names
    // its container after the image).
    let created = server.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "-n",
        "secure",
    ]);
    assert!(created.status.success(), "{created:?}");
    assert!(
        stderr(&created).contains(&format!(
            "Warning: would violate {}",
            RESTRICTED_VIOLATIONS.replace(r#""app""#, r#""busybox""#)
        )),
        "{}",
        stderr(&created)
    );

    // Warned: the pod is made, and the warning names the broken check.
    let privileged = pod("privileged", "watched", "").replace(
        "    image: busybox\n",
        "    image: busybox\n    securityContext:\n      privileged: true\n",
    );
    let privileged = server.write("privileged.yaml", &privileged);
    let warned = server.kubectl(&["apply", "-f", &privileged]);
    assert!(warned.status.success(), "{warned:?}");
    assert!(
        stderr(&warned).contains(r#"Warning: would violate PodSecurity "baseline:latest": privileged (container "app" must not set securityContext.privileged=true)"#),
        "{}",
        stderr(&warned)
    );

    // A label that names no level is refused.
    let bad = server.kubectl(&[
        "label",
        "namespace",
        "secure",
        "pod-security.kubernetes.io/enforce=strict",
        "--overwrite",
    ]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains(r#"metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict": must be one of privileged, baseline, restricted"#),
        "{}",
        stderr(&bad)
    );
}
