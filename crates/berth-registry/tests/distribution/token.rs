//! Token authentication against an authorization server of the test's own (a thread
//! answering `/token` with JWTs signed by a key openssl made): skopeo pushes and pulls
//! through the bearer flow; a token granting only pull cannot push; a token the registry
//! does not trust, or none, gets the 401 that names the realm.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;

use super::*;

/// A self-signed RSA certificate and its key, as PEM files in `dir`.
fn certificate(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    self_signed(dir, name, &["-newkey", "rsa:2048"], &[])
}

/// A JWT from `issuer` for the service `berth`, granting `actions` on repository
/// `name`, signed with the key at `key`.
fn token(key: &Path, issuer: &str, name: &str, actions: &[&str]) -> String {
    signed(key, issuer, "repository", name, actions)
}

fn signed(key: &Path, issuer: &str, kind: &str, name: &str, actions: &[&str]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": issuer, "aud": "berth", "sub": "tester", "iat": now, "nbf": now - 5, "exp": now + 300,
        "access": [{"type": kind, "name": name, "actions": actions}],
    });
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(key).unwrap()).unwrap();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .unwrap()
}

/// An authorization server on a loopback port: a token for the scope asked, with every
/// action asked except on `readonly/…` repositories, which get pull only.
fn authorization_server(key: std::path::PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            let _ = reader.read_line(&mut request);
            let mut header = String::new();
            while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                header.clear();
            }
            let query = request
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .split_once('?')
                .map_or("", |(_, q)| q);
            let scope = query
                .split('&')
                .find_map(|pair| pair.strip_prefix("scope="))
                .map(|s| {
                    s.replace("%3A", ":")
                        .replace("%2F", "/")
                        .replace("%2C", ",")
                })
                .unwrap_or_default();
            let mut parts = scope.splitn(3, ':').skip(1);
            let name = parts.next().unwrap_or_default().to_string();
            let asked: Vec<&str> = parts.next().unwrap_or_default().split(',').collect();
            let granted: Vec<&str> = if name.starts_with("readonly/") {
                vec!["pull"]
            } else {
                asked
            };
            let body = serde_json::json!({"token": token(&key, "test-issuer", &name, &granted)})
                .to_string();
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{address}/token")
}

#[test]
fn tokens_of_the_authorization_server_let_clients_in_as_far_as_they_grant() {
    let scratch = Scratch::new("registry-token").unwrap();
    let (key, cert) = certificate(scratch.path(), "issuer");
    let realm = authorization_server(key.clone());
    let options = berth_registry::ServeOptions {
        token: Some(berth_registry::TokenSettings {
            realm: realm.clone(),
            service: "berth".into(),
            issuer: "test-issuer".into(),
            root_cert_bundle: cert,
        }),
        ..Default::default()
    };
    let registry = start_with(&scratch.path().join("registry"), options);

    let (code, headers, _) = curl(&[&format!("http://{registry}/v2/")]);
    assert_eq!(code, 401);
    assert!(
        headers.contains(&format!("Bearer realm=\"{realm}\",service=\"berth\"")),
        "{headers}"
    );

    let image = busybox_image(&scratch.path().join("busybox")).unwrap();
    let source = format!("oci:{}:latest", image.dir.display());
    skopeo(&[
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        &source,
        &format!("docker://{registry}/apps/busybox:1"),
    ]);
    let back = scratch.path().join("back");
    skopeo(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{registry}/apps/busybox:1"),
        &format!("oci:{}:back", back.display()),
    ]);
    assert_eq!(verify_layout(&back).unwrap().len(), 1);

    // Pull only: the push is refused.
    let refused = Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            &source,
            &format!("docker://{registry}/readonly/busybox:1"),
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success(), "{refused:?}");

    // A token of a key the registry does not trust, and one for the wrong repository.
    let (stranger, _) = certificate(scratch.path(), "stranger");
    let forged = token(&stranger, "test-issuer", "apps/busybox", &["pull"]);
    let tags = format!("http://{registry}/v2/apps/busybox/tags/list");
    let (code, _, _) = curl(&["-H", &format!("Authorization: Bearer {forged}"), &tags]);
    assert_eq!(code, 401);
    let elsewhere = token(&key, "test-issuer", "apps/other", &["pull"]);
    let (code, headers, _) = curl(&["-H", &format!("Authorization: Bearer {elsewhere}"), &tags]);
    assert_eq!(code, 401);
    assert!(
        headers.contains("scope=\"repository:apps/busybox:pull\""),
        "{headers}"
    );
    let granted = token(&key, "test-issuer", "apps/busybox", &["pull"]);
    let (code, _, body) = curl(&["-H", &format!("Authorization: Bearer {granted}"), &tags]);
    assert_eq!(
        (code, body.as_str()),
        (200, r#"{"name":"apps/busybox","tags":["1"]}"#)
    );

    // The catalog wants the registry's catalog scope.
    let catalog = format!("http://{registry}/v2/_catalog");
    let (code, headers, _) = curl(&["-H", &format!("Authorization: Bearer {granted}"), &catalog]);
    assert_eq!(code, 401);
    assert!(
        headers.contains("scope=\"registry:catalog:*\""),
        "{headers}"
    );
    let lister = signed(&key, "test-issuer", "registry", "catalog", &["*"]);
    let (code, _, body) = curl(&["-H", &format!("Authorization: Bearer {lister}"), &catalog]);
    assert_eq!(
        (code, body.as_str()),
        (200, r#"{"repositories":["apps/busybox"]}"#)
    );
}
