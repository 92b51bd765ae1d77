//! The image store end to end: archives in both `docker save` and OCI layout form load
//! into verified blobs and shared unpacked layers; tags resolve; removal collects what
//! nothing uses; hostile archives and tampered layers are refused with nothing recorded.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use berth_image::{Digest, Error, ImageStore, Reference, Removed};
use berth_testkit::images::busybox_image;
use berth_testkit::layout::layout_archive;
use serde_json::json;

fn busybox_archive(dir: &std::path::Path) -> Vec<u8> {
    let image = busybox_image(&dir.join("layout")).unwrap();
    layout_archive(&image, "busybox:latest").unwrap()
}

#[test]
fn an_oci_archive_loads_into_shared_layers_and_resolves_by_tag_and_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("store")).unwrap();
    let loaded = store.load(&busybox_archive(dir.path())[..]).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].tags, vec![Reference::parse("busybox").unwrap()]);

    let image = store.resolve("busybox").unwrap();
    assert_eq!(image.id, loaded[0].id);
    assert_eq!(store.resolve(&image.id.hex()[..12]).unwrap().id, image.id);
    assert_eq!(store.resolve(image.id.as_str()).unwrap().id, image.id);
    assert!(matches!(store.resolve("nope"), Err(Error::NotFound(_))));
    let layers = store.layer_dirs(&image);
    assert_eq!(layers.len(), 1);
    assert!(layers[0].join("bin/busybox").is_file());
    assert!(store.config(&image).unwrap()["config"]["Cmd"].is_array());
    assert_eq!(store.list().len(), 1);

    // Loading again is idempotent; a second store over the same directory sees the image.
    store.load(&busybox_archive(dir.path())[..]).unwrap();
    let reopened = ImageStore::open(&dir.path().join("store")).unwrap();
    assert_eq!(reopened.list().len(), 1);
}

#[test]
fn rmi_untags_then_removes_and_collects_unused_layers() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("store")).unwrap();
    store.load(&busybox_archive(dir.path())[..]).unwrap();
    let image = store.resolve("busybox").unwrap();
    store
        .tag("busybox", &Reference::parse("mine:v1").unwrap())
        .unwrap();
    assert_eq!(store.tags(&image), vec!["busybox:latest", "mine:v1"]);

    assert_eq!(
        store.remove("mine:v1", false).unwrap(),
        vec![Removed::Untagged("mine:v1".into())]
    );
    let layer = store.layer_dirs(&image)[0].clone();
    assert!(layer.is_dir());
    let removed = store.remove("busybox", false).unwrap();
    assert_eq!(
        removed,
        vec![
            Removed::Untagged("busybox:latest".into()),
            Removed::Deleted(image.id.clone())
        ]
    );
    assert!(!layer.exists(), "the unused layer was left behind");
    assert!(!store.content().contains(&image.id));
    assert!(store.list().is_empty());
}

/// A `docker save` archive (the legacy layout: `<id>/layer.tar`, config `<id>.json`),
/// built from the busybox image's own config and layer.
fn saved_archive(
    dir: &std::path::Path,
    layer_path: &str,
    config_path: &str,
    tamper: bool,
) -> Vec<u8> {
    let image = busybox_image(&dir.join("layout")).unwrap();
    let layer_blob = std::fs::read(
        image
            .dir
            .join("blobs/sha256")
            .join(image.layer_digests[0].trim_start_matches("sha256:")),
    )
    .unwrap();
    let mut layer = flate2::read::GzDecoder::new(&layer_blob[..]);
    let mut layer_tar = Vec::new();
    std::io::Read::read_to_end(&mut layer, &mut layer_tar).unwrap();
    if tamper {
        let last = layer_tar.len() / 2;
        layer_tar[last] ^= 0xff;
    }
    let manifest = berth_testkit::layout::verify_layout(&image.dir).unwrap();
    let config = serde_json::to_vec(&manifest[0].config).unwrap();
    let saved = json!([{"Config": config_path, "RepoTags": ["saved:1"], "Layers": [layer_path]}]);
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, path, data).unwrap();
    };
    add("manifest.json", &serde_json::to_vec(&saved).unwrap());
    add("abc/layer.tar", &layer_tar);
    add("abc.json", &config);
    builder.into_inner().unwrap()
}

#[test]
fn a_docker_save_archive_loads_with_its_repo_tags() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("store")).unwrap();
    let loaded = store
        .load(&saved_archive(dir.path(), "abc/layer.tar", "abc.json", false)[..])
        .unwrap();
    assert_eq!(loaded[0].tags, vec![Reference::parse("saved:1").unwrap()]);
    let image = store.resolve("saved:1").unwrap();
    assert!(store.layer_dirs(&image)[0].join("bin/sh").exists());
}

#[test]
fn hostile_or_tampered_archives_are_refused_and_record_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("store")).unwrap();
    let tampered = store.load(&saved_archive(dir.path(), "abc/layer.tar", "abc.json", true)[..]);
    assert!(
        matches!(tampered, Err(Error::DigestMismatch { .. })),
        "{tampered:?}"
    );
    // Paths in manifest.json are read with the staging directory as their root: host
    // files are out of reach.
    let escape =
        store.load(&saved_archive(dir.path(), "../../../../etc/passwd", "abc.json", false)[..]);
    assert!(matches!(escape, Err(Error::Invalid { .. })), "{escape:?}");
    let absolute =
        store.load(&saved_archive(dir.path(), "abc/layer.tar", "/etc/passwd", false)[..]);
    assert!(absolute.is_err(), "{absolute:?}");
    let neither = store.load(&tar::Builder::new(Vec::new()).into_inner().unwrap()[..]);
    assert!(
        neither
            .unwrap_err()
            .to_string()
            .contains("neither manifest.json")
    );
    assert!(store.list().is_empty());
    assert!(Digest::parse("sha256:../x").is_err());
    let staging = std::fs::read_dir(dir.path().join("store/staging"))
        .unwrap()
        .count();
    assert_eq!(staging, 0, "staging directories were left behind");
}
