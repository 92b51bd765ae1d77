//! Garbage collection while serving: what a collection takes (untagged manifests past the
//! grace period, blobs only they named, abandoned uploads, tags beyond the retention) and
//! what it must leave (anything tagged, blobs another repository still holds, and a blob
//! an in-flight push has uploaded or asked about but not yet referenced). Time is moved
//! by collecting "as of" a later instant rather than by waiting.

use std::time::{Duration, SystemTime};

use berth_image::Digest;
use berth_registry::{GcPolicy, GcReport, Storage};
use serde_json::json;

use super::conformance::{MANIFEST, image_manifest};
use super::*;

const HOUR: Duration = Duration::from_secs(3600);

fn policy(keep_tags: Option<usize>) -> GcPolicy {
    GcPolicy {
        grace: HOUR,
        keep_tags,
    }
}

/// Uploads `bytes` into `repository`; the digest.
fn upload(storage: &Storage, repository: &str, bytes: &[u8]) -> Digest {
    let mut ingest = storage.ingest().unwrap();
    std::io::Write::write_all(&mut ingest, bytes).unwrap();
    let digest = Digest::of(bytes);
    storage.commit(repository, ingest, &digest).unwrap();
    digest
}

/// Pushes an image of a config and one layer holding `content`, tagged `tag`; the
/// manifest's and the layer's digests.
fn push(storage: &Storage, repository: &str, tag: &str, content: &str) -> (Digest, Digest) {
    let config = upload(storage, repository, b"{}");
    let layer = upload(storage, repository, content.as_bytes());
    let manifest = image_manifest((&config, 2), &[(&layer, content.len())], json!({}));
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let stored = storage
        .put_manifest(repository, Some(tag), MANIFEST, &bytes)
        .unwrap();
    (stored.digest, layer)
}

fn later(by: Duration) -> SystemTime {
    SystemTime::now() + by
}

#[test]
fn collection_takes_untagged_images_after_the_grace_period_and_keeps_what_is_tagged() {
    let scratch = Scratch::new("registry-gc").unwrap();
    let root = scratch.path().join("registry");
    let storage = Storage::open(&root).unwrap();
    let (kept, kept_layer) = push(&storage, "app", "v1", "layer one");
    let (untagged, lone_layer) = push(&storage, "app", "v2", "layer two");
    // Retagging v2 leaves its first image untagged.
    let manifest = storage.manifest("app", "v1").unwrap();
    storage
        .put_manifest("app", Some("v2"), MANIFEST, &manifest.bytes)
        .unwrap();
    // Another repository holds the first layer by a mount, with no manifest of its own.
    assert!(storage.mount("mirror/app", "app", &kept_layer).unwrap());

    assert_eq!(
        storage.collect(&policy(None), SystemTime::now()).unwrap(),
        GcReport::default(),
        "nothing is past its grace period yet"
    );
    let report = storage.collect(&policy(None), later(2 * HOUR)).unwrap();
    assert_eq!(report.manifests, 1, "{report:?}");
    // app's unreferenced layer link and the mirror's link went; the config is shared.
    assert_eq!(report.links, 2, "{report:?}");
    // The lone layer and the untagged manifest's bytes.
    assert_eq!(report.blobs, 2, "{report:?}");
    assert!(storage.manifest("app", untagged.as_str()).is_err());
    assert!(storage.blob("app", &lone_layer).is_err());
    assert!(!root.join("blobs/sha256").join(lone_layer.hex()).exists());
    assert_eq!(storage.manifest("app", "v2").unwrap().digest, kept);
    assert!(storage.blob("app", &kept_layer).is_ok());
    // A second pass finds nothing more.
    let again = storage.collect(&policy(None), later(2 * HOUR)).unwrap();
    assert_eq!(again, GcReport::default());
}

#[test]
fn an_in_flight_push_keeps_its_blobs_until_its_manifest_lands() {
    let scratch = Scratch::new("registry-gc-push").unwrap();
    let root = scratch.path().join("registry");
    let storage = Storage::open(&root).unwrap();
    let (old, old_layer) = push(&storage, "app", "v1", "old layer");
    storage.delete_manifest("app", &old).unwrap();
    // The old layer was pushed long ago: past its grace period, named by no manifest.
    let link = root.join("repositories/app/_layers").join(old_layer.hex());
    let long_ago = SystemTime::now() - 2 * HOUR;
    let file = std::fs::File::options().write(true).open(&link).unwrap();
    file.set_modified(long_ago).unwrap();
    // A new push uploads a config and a layer, and asks (HEAD) about the old layer,
    // which it will reference without uploading again.
    let config = upload(&storage, "app", b"{\"new\":1}");
    let layer = upload(&storage, "app", b"new layer");
    assert!(storage.has_blob_for_push("app", &old_layer));
    // Collections run while the push is under way.
    let report = storage.collect(&policy(None), SystemTime::now()).unwrap();
    assert_eq!(report, GcReport::default());
    let manifest = image_manifest((&config, 9), &[(&layer, 9), (&old_layer, 9)], json!({}));
    let stored = storage
        .put_manifest(
            "app",
            Some("v2"),
            MANIFEST,
            &serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();
    // What goes is only the deleted image's: its manifest's bytes and its config.
    let report = storage.collect(&policy(None), later(2 * HOUR)).unwrap();
    assert_eq!(
        (report.blobs, report.links, report.manifests),
        (2, 1, 0),
        "{report:?}"
    );
    assert_eq!(storage.manifest("app", "v2").unwrap().digest, stored.digest);
    assert!(storage.blob("app", &old_layer).is_ok());
}

#[test]
fn retention_keeps_the_newest_tags_and_abandoned_uploads_go() {
    let scratch = Scratch::new("registry-gc-retention").unwrap();
    let root = scratch.path().join("registry");
    let storage = Storage::open(&root).unwrap();
    let tags = root.join("repositories/team/app/_manifests/tags");
    for (age, tag) in [(4, "v1"), (3, "v2"), (2, "v3"), (1, "v4")] {
        push(&storage, "team/app", tag, tag);
        let pushed = SystemTime::now() - age * Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(tags.join(tag))
            .unwrap()
            .set_modified(pushed)
            .unwrap();
    }
    // An upload a crashed client left behind.
    std::fs::write(root.join("ingest/abandoned"), b"half a layer").unwrap();

    let report = storage
        .collect(&policy(Some(2)), SystemTime::now())
        .unwrap();
    assert_eq!(report.tags, 2, "{report:?}");
    assert_eq!(storage.tags("team/app").unwrap(), ["v3", "v4"]);
    assert!(
        root.join("ingest/abandoned").exists(),
        "within its grace period"
    );
    let report = storage.collect(&policy(Some(2)), later(2 * HOUR)).unwrap();
    assert_eq!((report.manifests, report.uploads), (2, 1), "{report:?}");
    assert!(storage.manifest("team/app", "v3").is_ok());
    assert!(!root.join("ingest/abandoned").exists());
}

#[test]
fn the_server_collects_while_it_serves() {
    let scratch = Scratch::new("registry-gc-serve").unwrap();
    let root = scratch.path().join("registry");
    let options = berth_registry::ServeOptions {
        gc_every: Some(Duration::from_millis(50)),
        gc_policy: GcPolicy {
            // Long enough for the pushes below: a collection takes abandoned uploads.
            grace: Duration::from_secs(30),
            keep_tags: Some(1),
        },
        ..Default::default()
    };
    let registry = start_with(&root, options);
    let image = busybox_image(&scratch.path().join("busybox")).unwrap();
    let source = format!("oci:{}:latest", image.dir.display());
    for tag in ["1", "2"] {
        let target = format!("docker://{registry}/busybox:{tag}");
        skopeo(&[
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            &source,
            &target,
        ]);
    }
    // Both tags name one manifest: retention keeps one tag, and with it every blob.
    let url = format!("http://{registry}/v2/busybox/tags/list");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, body) = curl(&[&url]);
        assert_eq!(status, 200, "{body}");
        let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
        if listed["tags"].as_array().map(Vec::len) == Some(1) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "tags never pruned: {body}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let layer = &image.layer_digests[0];
    let (status, _, _) = curl(&["-I", &format!("http://{registry}/v2/busybox/blobs/{layer}")]);
    assert_eq!(status, 200);
}
