//! The registry against skopeo and podman, stock clients: an image pushed to it (chunked uploads,
//! a cross-repository mount, a multi-platform index) comes back byte for byte; and the
//! spec's answers to what clients get wrong, read with curl: a chunk that leaves a gap,
//! content that does not match its digest, a manifest naming a blob the repository does
//! not hold, of an unknown media type or over 4 MiB, an unknown tag, tags listed a page
//! at a time. The spec's own conformance workflows are in `conformance.rs`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use berth_testkit::guard::Scratch;
use berth_testkit::images::{busybox_image, busybox_multi_platform_image};
use berth_testkit::layout::verify_layout;

mod conformance;
mod gc;
mod proxy;
mod token;

/// Serves a registry stored under `root` on a loopback port, on a thread of its own
/// that ends with the test process.
fn start(root: &Path) -> SocketAddr {
    start_with(root, berth_registry::ServeOptions::default())
}

/// [`start`] with `options` (users, TLS).
fn start_with(root: &Path, options: berth_registry::ServeOptions) -> SocketAddr {
    let root = root.to_path_buf();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            sender.send(listener.local_addr().unwrap()).unwrap();
            berth_registry::serve(listener, &root, &options)
                .await
                .unwrap();
        });
    });
    receiver.recv().unwrap()
}

fn skopeo(args: &[&str]) {
    let output = Command::new("skopeo").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A self-signed certificate for `name` and its key, made by openssl in `dir`
/// (`<name>.key`, `<name>.crt`): `key` chooses the key, `extra` adds extensions.
fn self_signed(dir: &Path, name: &str, key: &[&str], extra: &[&str]) -> (PathBuf, PathBuf) {
    let (key_file, cert) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.crt")),
    );
    let made = Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-days", "1"])
        .args(key)
        .arg("-subj")
        .arg(format!("/CN={name}"))
        .args(extra)
        .arg("-keyout")
        .arg(&key_file)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    (key_file, cert)
}

/// curl with `args`, its status code appended to the output after a newline.
fn curl(args: &[&str]) -> (u16, String, String) {
    let output: Output = Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/stdout", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let (rest, code) = text.rsplit_once('\n').unwrap();
    let (headers, body) = rest.split_once("\r\n\r\n").unwrap_or((rest, ""));
    (code.parse().unwrap(), headers.to_string(), body.to_string())
}

#[test]
fn skopeo_pushes_and_pulls_images_byte_for_byte() {
    let scratch = Scratch::new("registry-skopeo").unwrap();
    let registry = start(&scratch.path().join("registry"));
    let image = busybox_image(&scratch.path().join("busybox")).unwrap();
    let multi = busybox_multi_platform_image(&scratch.path().join("multi")).unwrap();
    let source = |layout: &Path| format!("oci:{}:latest", layout.display());
    let at = |repository: &str| format!("docker://{registry}/{repository}");
    let push = ["copy", "--all", "--quiet", "--dest-tls-verify=false"];
    let pull = ["copy", "--all", "--quiet", "--src-tls-verify=false"];

    skopeo(&[&push[..], &[&source(&image.dir), &at("library/busybox:1")]].concat());
    // The same layers into another repository: skopeo mounts them from the first.
    skopeo(&[&push[..], &[&source(&image.dir), &at("other/busybox:1")]].concat());
    skopeo(
        &[
            &push[..],
            &[&source(&multi.dir), &at("library/busybox:multi")],
        ]
        .concat(),
    );

    for (tag, original) in [("1", &image), ("multi", &multi)] {
        let copy = scratch.path().join(format!("copy-{tag}"));
        let target = format!("oci:{}:latest", copy.display());
        skopeo(
            &[
                &pull[..],
                &[&at(&format!("library/busybox:{tag}")), &target],
            ]
            .concat(),
        );
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(copy.join("index.json")).unwrap()).unwrap();
        assert_eq!(
            index["manifests"][0]["digest"], original.manifest_digest,
            "the manifest comes back as pushed"
        );
        if tag == "1" {
            // Every blob of the copy checks out against its digest.
            assert_eq!(verify_layout(&copy).unwrap().len(), 1);
        }
    }
    let other = format!("http://{registry}/v2/other/busybox/manifests/1");
    let (code, headers, _) = curl(&["-I", &other]);
    assert_eq!(code, 200);
    assert!(
        headers.contains(&image.manifest_digest),
        "Docker-Content-Digest names the manifest: {headers}"
    );
    // The catalog lists both repositories, a page at a time when asked.
    let (code, _, body) = curl(&[&format!("http://{registry}/v2/_catalog")]);
    assert_eq!(code, 200);
    assert_eq!(
        body,
        r#"{"repositories":["library/busybox","other/busybox"]}"#
    );
    let (_, headers, body) = curl(&[&format!("http://{registry}/v2/_catalog?n=1")]);
    assert_eq!(body, r#"{"repositories":["library/busybox"]}"#);
    assert!(
        headers.contains("</v2/_catalog?n=1&last=library/busybox>; rel=\"next\""),
        "{headers}"
    );
}

/// podman with a store of its own under `scratch` (vfs: no mounts to undo).
fn podman(scratch: &Path, args: &[&str]) -> String {
    let output = Command::new("podman")
        .arg("--root")
        .arg(scratch.join("podman-root"))
        .arg("--runroot")
        .arg(scratch.join("podman-run"))
        .args(["--storage-driver", "vfs", "--events-backend", "none"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn podman_pushes_and_pulls_images_back() {
    let scratch = Scratch::new("registry-podman").unwrap();
    let registry = start(&scratch.path().join("registry"));
    let image = busybox_image(&scratch.path().join("busybox")).unwrap();
    let seeded = format!("{registry}/seed/busybox:1");
    skopeo(&[
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        &format!("oci:{}:latest", image.dir.display()),
        &format!("docker://{seeded}"),
    ]);
    podman(
        scratch.path(),
        &["pull", "-q", "--tls-verify=false", &seeded],
    );
    let name = format!("{registry}/pod/busybox:1");
    podman(scratch.path(), &["tag", &seeded, &name]);
    podman(scratch.path(), &["push", "-q", "--tls-verify=false", &name]);
    podman(scratch.path(), &["rmi", "-a", "-f"]);
    podman(scratch.path(), &["pull", "-q", "--tls-verify=false", &name]);
    let listed = podman(
        scratch.path(),
        &["images", "--format", "{{.Repository}}:{{.Tag}}"],
    );
    assert_eq!(listed.trim(), name);
    let tags = curl(&[&format!("http://{registry}/v2/pod/busybox/tags/list")]);
    assert!(tags.2.contains("\"1\""), "{tags:?}");
}

#[test]
fn users_of_an_htpasswd_file_come_in_over_https() {
    let scratch = Scratch::new("registry-auth").unwrap();
    let dir = scratch.path();
    let hashed = Command::new("htpasswd")
        .args(["-Bbn", "ada", "s3cret"])
        .output()
        .unwrap();
    assert!(hashed.status.success());
    std::fs::write(dir.join("htpasswd"), &hashed.stdout).unwrap();
    let (key, cert) = self_signed(
        dir,
        "127.0.0.1",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
        &["-addext", "subjectAltName=IP:127.0.0.1"],
    );
    let registry = start_with(
        &dir.join("registry"),
        berth_registry::ServeOptions {
            htpasswd: Some(dir.join("htpasswd")),
            tls: Some((cert.clone(), key)),
            ..Default::default()
        },
    );
    let base = format!("https://{registry}/v2/");
    let ca = cert.display().to_string();
    let ca = ["--cacert", ca.as_str()];
    let (code, headers, body) = curl(&[&ca[..], &[base.as_str()]].concat());
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("UNAUTHORIZED"), "{body}");
    assert!(
        headers
            .to_lowercase()
            .contains("www-authenticate: basic realm="),
        "{headers}"
    );
    let as_user = |user: &str, url: &str| curl(&[&ca[..], &["-u", user, url]].concat());
    assert_eq!(as_user("ada:wrong", &base).0, 401);
    assert_eq!(as_user("ada:s3cret", &base).0, 200);
    // Again: the remembered credentials.
    assert_eq!(as_user("ada:s3cret", &base).0, 200);
    assert_ne!(
        curl(&[&format!("http://{registry}/v2/")]).0,
        200,
        "no plain HTTP"
    );

    let image = busybox_image(&dir.join("busybox")).unwrap();
    let source = format!("oci:{}:latest", image.dir.display());
    let target = format!("docker://{registry}/private/busybox:1");
    let denied = Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            &source,
            &target,
        ])
        .output()
        .unwrap();
    assert!(!denied.status.success(), "{denied:?}");
    skopeo(&[
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        "--dest-creds=ada:s3cret",
        &source,
        &target,
    ]);
    let tags = as_user("ada:s3cret", &format!("{base}private/busybox/tags/list"));
    assert!(tags.2.contains("\"1\""), "{tags:?}");
}

#[test]
fn clients_mistakes_get_the_spec_s_errors() {
    let scratch = Scratch::new("registry-errors").unwrap();
    let registry = start(&scratch.path().join("registry"));
    let url = |path: &str| format!("http://{registry}{path}");

    let (code, headers, _) = curl(&[&url("/v2/")]);
    assert_eq!(code, 200);
    assert!(
        headers
            .to_lowercase()
            .contains("docker-distribution-api-version: registry/2.0")
    );

    // An upload: one chunk, then a chunk that leaves a gap (416), then the rest.
    let (code, headers, _) = curl(&["-X", "POST", &url("/v2/test/blobs/uploads/")]);
    assert_eq!(code, 202);
    let location = headers
        .lines()
        .find_map(|l| {
            l.strip_prefix("location: ")
                .or_else(|| l.strip_prefix("Location: "))
        })
        .unwrap()
        .trim()
        .to_string();
    let chunk = |range: &str, data: &str| {
        curl(&[
            "-X",
            "PATCH",
            "-H",
            &format!("Content-Range: {range}"),
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            data,
            &url(&location),
        ])
    };
    assert_eq!(chunk("0-4", "hello").0, 202);
    let (code, _, body) = chunk("9-13", "world");
    assert_eq!(code, 416, "{body}");
    let (code, headers, _) = curl(&[&url(&location)]);
    assert_eq!(code, 204);
    assert!(headers.to_lowercase().contains("range: 0-4"), "{headers}");
    assert_eq!(chunk("5-10", " world").0, 202);
    let wrong = format!("{}?digest=sha256:{}", url(&location), "0".repeat(64));
    let (code, _, body) = curl(&["-X", "PUT", &wrong]);
    assert_eq!(code, 400);
    assert!(body.contains("DIGEST_INVALID"), "{body}");

    // Monolithic, with the right digest; then a manifest naming a blob it lacks.
    let digest = "sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";
    let monolithic = format!("/v2/test/blobs/uploads/?digest={digest}");
    let (code, _, _) = curl(&[
        "-X",
        "POST",
        "--data-binary",
        "hello world",
        &url(&monolithic),
    ]);
    assert_eq!(code, 201);
    let (code, _, body) = curl(&[&url(&format!("/v2/test/blobs/{digest}"))]);
    assert_eq!((code, body.as_str()), (200, "hello world"));
    let (code, _, _) = curl(&["-I", &url(&format!("/v2/elsewhere/blobs/{digest}"))]);
    assert_eq!(code, 404, "a blob belongs to the repositories that hold it");
    let missing = format!("sha256:{}", "1".repeat(64));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest, "size": 11},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": missing, "size": 1}],
    });
    let put = |tag: &str, body: &serde_json::Value| {
        curl(&[
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/vnd.oci.image.manifest.v1+json",
            "--data-binary",
            &body.to_string(),
            &url(&format!("/v2/test/manifests/{tag}")),
        ])
    };
    let (code, _, body) = put("v1", &manifest);
    assert_eq!(code, 400);
    assert!(body.contains("MANIFEST_BLOB_UNKNOWN"), "{body}");
    let (code, _, body) = curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: text/plain",
        "--data-binary",
        "{}",
        &url("/v2/test/manifests/v1"),
    ]);
    assert_eq!(code, 400);
    assert!(
        body.contains("unknown manifest media type text/plain"),
        "{body}"
    );
    let huge = scratch.path().join("huge.json");
    std::fs::write(&huge, format!("{{\"pad\": \"{}\"}}", "x".repeat(5 << 20))).unwrap();
    let (code, _, body) = curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/vnd.oci.image.manifest.v1+json",
        "--data-binary",
        &format!("@{}", huge.display()),
        &url("/v2/test/manifests/v1"),
    ]);
    assert_eq!(code, 400);
    assert!(body.contains("limited to 4 MiB"), "{body}");
    let (code, _, body) = curl(&[&url("/v2/test/manifests/v1")]);
    assert_eq!(code, 404);
    assert!(body.contains("MANIFEST_UNKNOWN"), "{body}");
    let (code, _, body) = curl(&[&url("/v2/Not_Valid/tags/list")]);
    assert_eq!(code, 400);
    assert!(body.contains("NAME_INVALID"), "{body}");

    // Three tags, listed two at a time.
    let config_only = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest, "size": 11},
        "layers": [],
    });
    for tag in ["c", "a", "b"] {
        assert_eq!(put(tag, &config_only).0, 201);
    }
    let (code, headers, body) = curl(&[&url("/v2/test/tags/list?n=2")]);
    assert_eq!(code, 200);
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["tags"], serde_json::json!(["a", "b"]));
    assert!(
        headers.contains("/v2/test/tags/list?n=2&last=b"),
        "{headers}"
    );
    let (_, _, body) = curl(&[&url("/v2/test/tags/list?n=2&last=b")]);
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["tags"], serde_json::json!(["c"]));
}

#[test]
fn an_upload_outlives_a_restart_of_the_registry() {
    let scratch = Scratch::new("registry-resume").unwrap();
    let root = scratch.path().join("registry");
    let before = start(&root);
    let (code, headers, _) = curl(&[
        "-X",
        "POST",
        &format!("http://{before}/v2/test/blobs/uploads/"),
    ]);
    assert_eq!(code, 202);
    let location = headers
        .lines()
        .find_map(|l| {
            l.to_lowercase()
                .strip_prefix("location: ")
                .map(|_| l[10..].trim().to_string())
        })
        .unwrap();
    let patch = |registry: SocketAddr, range: &str, data: &str| {
        curl(&[
            "-X",
            "PATCH",
            "-H",
            &format!("Content-Range: {range}"),
            "--data-binary",
            data,
            &format!("http://{registry}{location}"),
        ])
        .0
    };
    assert_eq!(patch(before, "0-4", "hello"), 202);
    // Another process of the registry on the same storage: it knows nothing of the
    // upload but its file, and takes it up where it ended.
    let after = start(&root);
    let (code, headers, _) = curl(&[&format!("http://{after}{location}")]);
    assert_eq!(code, 204);
    assert!(headers.to_lowercase().contains("range: 0-4"), "{headers}");
    assert_eq!(patch(after, "5-10", " world"), 202);
    let digest = "sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";
    let (code, _, body) = curl(&[
        "-X",
        "PUT",
        &format!("http://{after}{location}?digest={digest}"),
    ]);
    assert_eq!(code, 201, "{body}");
    let (code, _, body) = curl(&[&format!("http://{after}/v2/test/blobs/{digest}")]);
    assert_eq!((code, body.as_str()), (200, "hello world"));
    let (code, _, _) = curl(&[&format!("http://{after}/v2/test/blobs/uploads/not..an-id")]);
    assert_eq!(code, 404);
}
