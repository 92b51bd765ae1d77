//! RBAC as the stock kubectl meets it: the default roles, an operator's published-style
//! manifest of ServiceAccount, ClusterRole, Role and bindings applied with kubectl's
//! default validation and then enforced for the account's token, users and groups by
//! client certificate, `kubectl auth can-i [--list]` and `auth whoami` answered from the
//! roles, aggregated ClusterRoles, and bindings whose removal takes access away.

use std::process::Output;
use std::time::Duration;

use crate::server::{Server, poll_kubectl};

const OPERATOR: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: ops
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: operator
  namespace: ops
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: operator
  labels:
    app.kubernetes.io/name: operator
rules:
- apiGroups: [""]
  resources: ["nodes", "pods", "namespaces"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch"]
- nonResourceURLs: ["/metrics"]
  verbs: ["get"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: operator
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: operator
subjects:
- kind: ServiceAccount
  name: operator
  namespace: ops
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: operator
  namespace: ops
rules:
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  resourceNames: ["operator-leader"]
  verbs: ["get", "update"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: operator
  namespace: ops
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: operator
subjects:
- kind: ServiceAccount
  name: operator
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: operator-view
  labels:
    rbac.authorization.k8s.io/aggregate-to-view: "true"
rules:
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "list", "watch"]
"#;

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_string()
}

/// Asserts that kubectl was refused with exactly `message` from the server.
fn refused(output: Output, message: &str) {
    assert!(!output.status.success(), "{}", stdout(&output));
    assert_eq!(
        stderr(&output),
        format!("Error from server (Forbidden): {message}")
    );
}

#[test]
fn rbac_roles_and_bindings_decide_what_accounts_users_and_groups_may_do_on_sqlite() {
    rbac_roles_and_bindings_decide_what_accounts_users_and_groups_may_do(false);
}

#[test]
fn rbac_roles_and_bindings_decide_what_accounts_users_and_groups_may_do_on_etcd() {
    rbac_roles_and_bindings_decide_what_accounts_users_and_groups_may_do(true);
}

fn rbac_roles_and_bindings_decide_what_accounts_users_and_groups_may_do(on_etcd: bool) {
    let server = Server::start("rbac", on_etcd);

    // The default policy: kube-apiserver's roles, cluster-admin bound to system:masters.
    let roles = server.kubectl_ok(&["get", "clusterroles", "-o", "name"]);
    for role in ["cluster-admin", "admin", "edit", "view", "system:discovery"] {
        assert!(
            roles
                .lines()
                .any(|l| l == format!("clusterrole.rbac.authorization.k8s.io/{role}")),
            "{role} missing from {roles}"
        );
    }
    let binding = server.kubectl_ok(&["get", "clusterrolebinding", "cluster-admin", "-o", "wide"]);
    let row: Vec<&str> = binding.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[0], "cluster-admin");
    assert_eq!(row[1], "ClusterRole/cluster-admin");
    assert_eq!(row.last(), Some(&"system:masters"));

    let manifest = server.write("operator.yaml", OPERATOR);
    let applied = server.kubectl_ok(&["apply", "-f", &manifest]);
    for object in [
        "namespace/ops created",
        "serviceaccount/operator created",
        "clusterrole.rbac.authorization.k8s.io/operator created",
        "clusterrolebinding.rbac.authorization.k8s.io/operator created",
        "role.rbac.authorization.k8s.io/operator created",
        "rolebinding.rbac.authorization.k8s.io/operator created",
    ] {
        assert!(applied.contains(object), "{applied}");
    }
    let bindings = server.kubectl_ok(&["get", "rolebindings", "-n", "ops", "-o", "wide"]);
    let row: Vec<&str> = bindings
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        (row[0], row[1], row[3]),
        ("operator", "Role/operator", "/operator")
    );

    // The account's token: what its ClusterRole grants everywhere, what its Role grants
    // in ops, nothing else.
    let token = server.kubectl_ok(&["create", "token", "operator", "-n", "ops"]);
    let token = token.trim();
    let as_operator = |args: &[&str]| server.kubectl_as(token, args);
    let account = "User \"system:serviceaccount:ops:operator\"";
    assert!(as_operator(&["get", "nodes"]).status.success());
    assert!(as_operator(&["get", "pods", "-A"]).status.success());
    assert!(
        as_operator(&["get", "deployments", "-n", "default"])
            .status
            .success()
    );
    refused(
        as_operator(&["get", "secrets", "-n", "ops"]),
        &format!(
            "secrets is forbidden: {account} cannot list resource \"secrets\" in API group \"\" in the namespace \"ops\""
        ),
    );
    assert!(
        as_operator(&["create", "configmap", "state", "-n", "ops"])
            .status
            .success()
    );
    let outside = as_operator(&["create", "configmap", "state", "-n", "default"]);
    assert!(
        stderr(&outside).contains(&format!("configmaps is forbidden: {account} cannot create resource \"configmaps\" in API group \"\" in the namespace \"default\"")),
        "{}",
        stderr(&outside)
    );
    refused(
        as_operator(&["delete", "node", "nowhere"]),
        &format!(
            "nodes \"nowhere\" is forbidden: {account} cannot delete resource \"nodes\" in API group \"\" at the cluster scope"
        ),
    );
    let can_i = |args: &[&str]| {
        let mut all = vec!["auth", "can-i"];
        all.extend(args);
        stdout(&as_operator(&all))
    };
    assert_eq!(can_i(&["create", "configmaps", "-n", "ops"]), "yes");
    assert_eq!(can_i(&["create", "configmaps", "-n", "default"]), "no");
    // A binding made later counts as soon as the server has it, and stops counting
    // when it is deleted: what the server remembers of the account's rules follows.
    let can_create_in_default = ["auth", "can-i", "create", "configmaps", "-n", "default"];
    let until_answer = |answer: &'static str| {
        poll_kubectl(
            as_operator,
            &can_create_in_default,
            (Duration::from_secs(10), |text: &str| text.trim() == answer),
            String::new,
        )
    };
    server.kubectl_ok(&[
        "create",
        "rolebinding",
        "late",
        "--clusterrole=edit",
        "--serviceaccount=ops:operator",
        "-n",
        "default",
    ]);
    until_answer("yes");
    server.kubectl_ok(&["delete", "rolebinding", "late", "-n", "default"]);
    until_answer("no");
    assert_eq!(
        can_i(&["update", "leases/operator-leader", "-n", "ops"]),
        "yes"
    );
    assert_eq!(can_i(&["update", "leases/someone-else", "-n", "ops"]), "no");
    assert_eq!(can_i(&["get", "/metrics"]), "yes");
    assert_eq!(can_i(&["get", "/logs"]), "no");
    // Its ClusterRole grants the non-resource URL /metrics: kube-apiserver's metrics.
    let metrics = as_operator(&["get", "--raw", "/metrics"]);
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        metrics.contains(r#"apiserver_request_total{verb="LIST",group="",version="v1",resource="pods",subresource="",scope="cluster",component="apiserver",code="200"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"apiserver_storage_objects{resource="clusterroles.rbac.authorization.k8s.io"}"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("apiserver_request_duration_seconds_bucket{"),
        "{metrics}"
    );
    let listed = as_operator(&["auth", "can-i", "--list", "-n", "ops"]);
    let list = stdout(&listed);
    let configmaps = list
        .lines()
        .find(|l| l.starts_with("configmaps "))
        .unwrap_or_else(|| panic!("{list}{}", stderr(&listed)));
    assert!(
        configmaps.ends_with("[get list watch create update patch delete]"),
        "{configmaps}"
    );
    let whoami = stdout(&as_operator(&["auth", "whoami"]));
    assert!(
        whoami.contains("system:serviceaccount:ops:operator")
            && whoami.contains(
                "[system:serviceaccounts system:serviceaccounts:ops system:authenticated]"
            ),
        "{whoami}"
    );

    // view grows by the aggregate-to-view role the manifest added.
    server.kubectl_until(
        &[
            "get",
            "clusterrole",
            "view",
            "-o",
            "jsonpath={.rules[*].resources}",
        ],
        Duration::from_secs(30),
        |rules| rules.contains("leases"),
    );

    // A user by certificate, bound to view in one namespace; a group bound cluster-wide.
    server.kubectl_ok(&[
        "create",
        "rolebinding",
        "carol-views",
        "--clusterrole=view",
        "--user=carol",
        "-n",
        "ops",
    ]);
    let carol = server.certified("carol", None);
    let as_carol = |args: &[&str]| server.kubectl_with(&carol, args);
    assert!(as_carol(&["get", "pods", "-n", "ops"]).status.success());
    assert!(as_carol(&["get", "leases", "-n", "ops"]).status.success());
    refused(
        as_carol(&["get", "pods", "-n", "default"]),
        "pods is forbidden: User \"carol\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"",
    );
    assert!(
        stderr(&as_carol(&["get", "--raw", "/metrics"]))
            .contains("User \"carol\" cannot get path \"/metrics\""),
    );
    refused(
        as_carol(&["get", "secrets", "-n", "ops"]),
        "secrets is forbidden: User \"carol\" cannot list resource \"secrets\" in API group \"\" in the namespace \"ops\"",
    );
    // No granting what one does not hold: erin administers ops, no more.
    server.kubectl_ok(&[
        "create",
        "rolebinding",
        "erin-admin",
        "--clusterrole=admin",
        "--user=erin",
        "-n",
        "ops",
    ]);
    let erin = server.certified("erin", None);
    let as_erin = |args: &[&str]| server.kubectl_with(&erin, args);
    let made = as_erin(&[
        "create",
        "role",
        "secret-reader",
        "--verb=get",
        "--resource=secrets",
        "-n",
        "ops",
    ]);
    assert!(made.status.success(), "{}", stderr(&made));
    let everything = server.write(
        "everything.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: everything\n  namespace: ops\nrules:\n- apiGroups: [\"*\"]\n  resources: [\"*\"]\n  verbs: [\"*\"]\n",
    );
    let escalating = stderr(&as_erin(&["create", "-f", &everything]));
    assert!(
        escalating.contains("roles.rbac.authorization.k8s.io \"everything\" is forbidden: user \"erin\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}"),
        "{escalating}"
    );
    let rooting = stderr(&as_erin(&[
        "create",
        "rolebinding",
        "erin-root",
        "--clusterrole=cluster-admin",
        "--user=erin",
        "-n",
        "ops",
    ]));
    assert!(
        rooting.contains("is attempting to grant RBAC permissions not currently held"),
        "{rooting}"
    );
    let binding = as_erin(&[
        "create",
        "rolebinding",
        "readers",
        "--role=secret-reader",
        "--group=readers",
        "-n",
        "ops",
    ]);
    assert!(binding.status.success(), "{}", stderr(&binding));

    server.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "auditors",
        "--clusterrole=view",
        "--group=auditors",
    ]);
    let dave = server.certified("dave", Some("auditors"));
    assert!(
        server
            .kubectl_with(&dave, &["get", "pods", "-A"])
            .status
            .success()
    );
    assert_eq!(
        stdout(&server.kubectl_with(&dave, &["auth", "can-i", "delete", "pods"])),
        "no"
    );

    // A binding deleted takes its access with it.
    server.kubectl_ok(&["delete", "clusterrolebinding", "operator"]);
    refused(
        as_operator(&["get", "nodes"]),
        &format!(
            "nodes is forbidden: {account} cannot list resource \"nodes\" in API group \"\" at the cluster scope"
        ),
    );

    // Bad input, in kube-apiserver's words.
    let bad = server.write(
        "bad.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: bad\n  namespace: ops\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Foo\n  name: operator\nsubjects:\n- kind: Robot\n  name: r2\n",
    );
    let invalid = stderr(&server.kubectl(&["apply", "-f", &bad]));
    for problem in [
        "The RoleBinding \"bad\" is invalid",
        "roleRef.kind: Unsupported value: \"Foo\": supported values: \"Role\", \"ClusterRole\"",
        "subjects[0].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
    ] {
        assert!(invalid.contains(problem), "{invalid}");
    }
    let namespaced_urls = server.write(
        "urls.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: urls\n  namespace: ops\nrules:\n- nonResourceURLs: [\"/metrics\"]\n  verbs: [\"get\"]\n",
    );
    let invalid = server.kubectl(&["apply", "-f", &namespaced_urls]);
    assert!(
        stderr(&invalid).contains("rules[0].nonResourceURLs: Invalid value: [\"/metrics\"]: namespaced rules cannot apply to non-resource URLs"),
        "{}",
        stderr(&invalid)
    );
}

#[test]
fn kubectl_as_impersonates_only_for_those_allowed_to() {
    let server = Server::start("impersonation", false);
    server.kubectl_ok(&["create", "serviceaccount", "reader"]);
    server.kubectl_ok(&[
        "create",
        "rolebinding",
        "reader",
        "--clusterrole=view",
        "--serviceaccount=default:reader",
    ]);
    // The admin may act as anyone: as the account, only what its role grants.
    let account = "--as=system:serviceaccount:default:reader";
    let can = |verb: &str| server.kubectl(&["auth", "can-i", verb, "configmaps", account]);
    assert_eq!(stdout(&can("list")).trim(), "yes");
    assert_eq!(stdout(&can("delete")).trim(), "no");
    let whoami = server.kubectl_ok(&[
        "auth",
        "whoami",
        "--as=jane",
        "--as-group=devs",
        "-o",
        "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
    ]);
    assert_eq!(whoami, r#"jane ["devs","system:authenticated"]"#);
    refused(
        server.kubectl(&["get", "configmaps", "--as=jane"]),
        r#"configmaps is forbidden: User "jane" cannot list resource "configmaps" in API group "" in the namespace "default""#,
    );
    // Anyone else needs the impersonate verb.
    let viewer = server.token("viewer-token");
    refused(
        server.kubectl_as(&viewer, &["get", "pods", "--as=jane"]),
        r#"users "jane" is forbidden: User "system:viewer" cannot impersonate resource "users" in API group "" at the cluster scope"#,
    );
}
