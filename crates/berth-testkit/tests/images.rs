//! The test kit's own tests: the images it builds are valid OCI layouts that a reference
//! tool (skopeo) accepts, builds are reproducible, tampering is caught, and the static
//! testapp serves what the docs promise.

#![allow(clippy::unwrap_used)] // tests fail loudly by design
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use berth_testkit::guard::{ChildGuard, Scratch};
use berth_testkit::images::{busybox_image, webapp_image};
use berth_testkit::layout::{blob_path, verify_layout};

#[test]
fn busybox_image_is_a_valid_oci_layout() {
    let scratch = Scratch::new("busybox-layout").unwrap();
    let image = busybox_image(scratch.path()).unwrap();
    let verified = verify_layout(scratch.path()).unwrap();
    assert_eq!(verified.len(), 1);
    assert_eq!(verified[0].tag.as_deref(), Some("latest"));
    assert_eq!(verified[0].manifest.layers().len(), 1);
    assert_eq!(
        verified[0].manifest.layers()[0].digest().to_string(),
        image.layer_digests[0]
    );
    let cmd = verified[0]
        .config
        .config()
        .as_ref()
        .and_then(|c| c.cmd().clone());
    assert_eq!(cmd, Some(vec!["sh".to_string()]));
}

#[test]
fn busybox_layer_holds_the_binary_applets_and_accounts() {
    let scratch = Scratch::new("busybox-layer").unwrap();
    let image = busybox_image(scratch.path()).unwrap();
    let blob =
        std::fs::File::open(blob_path(scratch.path(), &image.layer_digests[0]).unwrap()).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(blob));
    let mut paths = Vec::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        if path == "bin/sh" {
            assert_eq!(
                entry.link_name().unwrap().unwrap().to_str(),
                Some("/bin/busybox")
            );
        }
        paths.push(path);
    }
    for expected in [
        "bin/busybox",
        "bin/sh",
        "bin/ls",
        "etc/passwd",
        "etc/group",
        "tmp/",
    ] {
        assert!(
            paths.iter().any(|p| p == expected),
            "{expected} missing from the layer: {paths:?}"
        );
    }
}

#[test]
fn builds_are_reproducible() {
    let (a, b) = (
        Scratch::new("repro-a").unwrap(),
        Scratch::new("repro-b").unwrap(),
    );
    let first = busybox_image(a.path()).unwrap();
    let second = busybox_image(b.path()).unwrap();
    assert_eq!(first.manifest_digest, second.manifest_digest);
}

#[test]
fn a_tampered_layer_is_caught() {
    let scratch = Scratch::new("tamper").unwrap();
    let image = busybox_image(scratch.path()).unwrap();
    let blob = blob_path(scratch.path(), &image.layer_digests[0]).unwrap();
    let mut bytes = std::fs::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    let error = verify_layout(scratch.path()).unwrap_err().to_string();
    assert!(
        error.contains(&image.layer_digests[0]),
        "error does not name the blob: {error}"
    );
}

#[test]
fn webapp_image_stacks_testapp_on_busybox() {
    let scratch = Scratch::new("webapp-layout").unwrap();
    let image = webapp_image(scratch.path()).unwrap();
    let verified = verify_layout(scratch.path()).unwrap();
    assert_eq!(verified[0].manifest.layers().len(), 2);
    assert_eq!(image.config["Entrypoint"][0], "/bin/testapp");
}

#[test]
fn skopeo_accepts_the_layout_when_installed() {
    if Command::new("skopeo").arg("--version").output().is_err() {
        eprintln!("skopeo not installed; reference check skipped");
        return;
    }
    let scratch = Scratch::new("skopeo").unwrap();
    let image = webapp_image(scratch.path()).unwrap();
    let output = Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:latest", scratch.path().display()))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let digest = berth_testkit::layer::sha256_digest(&output.stdout);
    assert_eq!(digest, image.manifest_digest);
}

fn get(port: u16, path: &str) -> String {
    request(port, "GET", path, "")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn request(port: u16, method: &str, path: &str, body: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn wait_for_port(port: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "testapp never listened on {port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn testapp_reports_hostname_and_fails_health_on_request() {
    let port = free_port();
    let child = Command::new(berth_testkit::testapp_path())
        .args(["serve", &port.to_string()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = ChildGuard(child);
    wait_for_port(port);
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert!(get(port, "/").contains(&format!("hostname: {}", hostname.trim())));
    assert!(get(port, "/healthz").starts_with("HTTP/1.1 200"));
    get(port, "/fail");
    assert!(get(port, "/healthz").starts_with("HTTP/1.1 500"));
    get(port, "/recover");
    assert!(get(port, "/healthz").starts_with("HTTP/1.1 200"));
}

#[test]
fn testapp_is_static() {
    let output = Command::new("file")
        .arg(berth_testkit::testapp_path())
        .output();
    let Ok(output) = output else {
        return eprintln!("file(1) not installed; check skipped");
    };
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("static"), "testapp is not static: {text}");
}

#[test]
fn bundle_holds_rootfs_and_config() {
    let scratch = Scratch::new("bundle").unwrap();
    let image = busybox_image(&scratch.path().join("image")).unwrap();
    let bundle = berth_testkit::bundle::bundle_from_image(
        &image,
        &scratch.path().join("bundle"),
        &["echo", "hi"],
    )
    .unwrap();
    assert!(bundle.join("rootfs/bin/busybox").is_file());
    let spec = oci_spec::runtime::Spec::load(bundle.join("config.json")).unwrap();
    let args = spec.process().as_ref().unwrap().args().clone().unwrap();
    assert_eq!(args, ["echo", "hi"]);
}

#[test]
fn testapp_web_counts_visits_in_the_kv_store_which_keeps_them_in_files() {
    let scratch = Scratch::new("testapp-kv").unwrap();
    let (kv_port, web_port) = (free_port(), free_port());
    let kv = Command::new(berth_testkit::testapp_path())
        .args(["kv", &kv_port.to_string()])
        .arg(scratch.path())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _kv = ChildGuard(kv);
    let web = Command::new(berth_testkit::testapp_path())
        .args(["web", &web_port.to_string()])
        .env("STORE_URL", format!("http://localhost:{kv_port}"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _web = ChildGuard(web);
    wait_for_port(kv_port);
    wait_for_port(web_port);
    assert!(get(web_port, "/").ends_with("\r\n\r\nseen 1 times\n"));
    assert!(get(web_port, "/").ends_with("\r\n\r\nseen 2 times\n"));
    assert_eq!(
        std::fs::read_to_string(scratch.path().join("hits")).unwrap(),
        "2\n"
    );
    assert!(request(kv_port, "PUT", "/greeting", "hello").starts_with("HTTP/1.1 200"));
    assert!(request(kv_port, "GET", "/greeting", "").ends_with("\r\n\r\nhello"));
    assert!(request(kv_port, "GET", "/missing", "").starts_with("HTTP/1.1 404"));
    assert!(request(kv_port, "GET", "/../etc", "").starts_with("HTTP/1.1 400"));
}
