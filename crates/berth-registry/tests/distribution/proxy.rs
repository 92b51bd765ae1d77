//! The pull-through cache (`--proxy`) in front of distribution 2.8: a pull through it
//! brings the image byte for byte and keeps it, so it still pulls when the upstream is
//! gone; pushes to it are refused with the spec's UNSUPPORTED.

use berth_testkit::registry::LocalRegistry;

use super::*;

fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

#[test]
fn a_pull_through_cache_keeps_what_it_served() {
    let scratch = Scratch::new("registry-proxy").unwrap();
    let image = busybox_image(&scratch.path().join("busybox")).unwrap();
    let upstream =
        LocalRegistry::start(&scratch.path().join("upstream"), None, &free_address()).unwrap();
    upstream.push(&image, "library/busybox", "1", None).unwrap();
    let options = berth_registry::ServeOptions {
        proxy: Some(
            berth_registry::Upstream::new(&format!("http://{}", upstream.address), None).unwrap(),
        ),
        ..Default::default()
    };
    let root = scratch.path().join("cache");
    let cache = start_with(&root, options);
    let pull = |into: &str| {
        let target = scratch.path().join(into);
        skopeo(&[
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            &format!("docker://{cache}/library/busybox:1"),
            &format!("oci:{}:pulled", target.display()),
        ]);
        let pulled = verify_layout(&target).unwrap();
        assert_eq!(
            pulled[0].manifest.layers()[0].digest().to_string(),
            image.layer_digests[0]
        );
    };
    pull("first");
    let layer = image.layer_digests[0].trim_start_matches("sha256:");
    assert!(root.join("blobs/sha256").join(layer).is_file());

    // The upstream goes; what the cache served is still there.
    drop(upstream);
    pull("second");
    let (code, _, body) = curl(&[
        "-X",
        "POST",
        &format!("http://{cache}/v2/library/busybox/blobs/uploads/"),
    ]);
    assert_eq!(code, 405, "{body}");
    assert!(body.contains("UNSUPPORTED"), "{body}");
    let (code, _, _) = curl(&[&format!("http://{cache}/v2/library/other/manifests/1")]);
    assert_eq!(code, 404);
}
