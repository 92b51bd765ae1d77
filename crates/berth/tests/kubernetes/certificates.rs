//! CertificateSigningRequests as a cluster admin hands out a user's credentials: a
//! request made with openssl, approved with `kubectl certificate approve` (and not by
//! someone who may not approve for its signer), signed by the cluster CA, and the
//! certificate then signing the user in.

use std::process::Output;
use std::time::Duration;

use base64::Engine as _;

use crate::server::Server;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn an_approved_request_is_signed_and_its_certificate_signs_the_user_in_on_sqlite() {
    an_approved_request_is_signed_and_its_certificate_signs_the_user_in(false);
}

#[test]
fn an_approved_request_is_signed_and_its_certificate_signs_the_user_in_on_etcd() {
    an_approved_request_is_signed_and_its_certificate_signs_the_user_in(true);
}

fn an_approved_request_is_signed_and_its_certificate_signs_the_user_in(on_etcd: bool) {
    let server = Server::start("certificates", on_etcd);
    let dir = server.scratch.path().to_path_buf();
    let request = crate::callees::signing_request(&dir, "/CN=jane/O=devs", "jane");
    let manifest = format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: jane\nspec:\n  request: {}\n  signerName: kubernetes.io/kube-apiserver-client\n  expirationSeconds: 86400\n  usages: [\"client auth\"]\n",
        base64(&request)
    );
    let manifest = server.write("jane.yaml", &manifest);
    server.kubectl_ok(&["apply", "-f", &manifest]);
    let row = server.kubectl_ok(&["get", "csr", "jane", "--no-headers"]);
    let row: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(row[0], "jane");
    assert_eq!(
        row[2..],
        [
            "kubernetes.io/kube-apiserver-client",
            "system:admin",
            "24h",
            "Pending"
        ]
    );

    // Approving takes the approval subresource and the signer's `approve` verb.
    server.kubectl_ok(&["create", "serviceaccount", "clerk"]);
    server.kubectl_ok(&[
        "create",
        "clusterrole",
        "csr-approver",
        "--verb=get,list,update",
        "--resource=certificatesigningrequests,certificatesigningrequests/approval",
    ]);
    server.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "clerk",
        "--clusterrole=csr-approver",
        "--serviceaccount=default:clerk",
    ]);
    let token = server.kubectl_ok(&["create", "token", "clerk"]);
    let refused = server.kubectl_as(token.trim(), &["certificate", "approve", "jane"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains(r#"certificatesigningrequests.certificates.k8s.io "jane" is forbidden: user not permitted to approve requests with signerName "kubernetes.io/kube-apiserver-client""#),
        "{}",
        stderr(&refused)
    );
    let approved = server.kubectl_ok(&["certificate", "approve", "jane"]);
    assert_eq!(
        approved,
        "certificatesigningrequest.certificates.k8s.io/jane approved\n"
    );
    server.kubectl_until(
        &["get", "csr", "jane", "--no-headers"],
        Duration::from_secs(10),
        |row| row.trim_end().ends_with("Approved,Issued"),
    );

    // The certificate is jane's, in group devs.
    let certificate =
        server.kubectl_ok(&["get", "csr", "jane", "-o", "jsonpath={.status.certificate}"]);
    let key = std::fs::read(dir.join("jane.key")).unwrap();
    let template = std::fs::read_to_string(server.certified("template", None)).unwrap();
    let config: String = template
        .lines()
        .map(|line| match line.split_once(": ") {
            Some((field, _)) if field.trim() == "client-certificate-data" => {
                format!("{field}: {certificate}")
            }
            Some((field, _)) if field.trim() == "client-key-data" => {
                format!("{field}: {}", base64(&key))
            }
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let config = server.write("jane.kubeconfig", &config);
    let whoami = server.kubectl_with(&config, &["auth", "whoami"]);
    let whoami = String::from_utf8_lossy(&whoami.stdout);
    assert!(
        whoami.contains("jane") && whoami.contains("[devs system:authenticated]"),
        "{whoami}"
    );
}
