//! The OCI distribution-spec conformance workflows (its `conformance/` suite: pull, push,
//! content discovery, content management), ported to requests made with curl against
//! `berth_registry::serve`, each workflow on a registry of its own.

use super::*;

use berth_image::Digest;
use serde_json::{Value, json};

pub(crate) const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// A registry of its own for one workflow, with the scratch that holds it.
struct Api {
    base: String,
    _scratch: Scratch,
}

impl Api {
    fn new(name: &str) -> Self {
        let scratch = Scratch::new(name).unwrap();
        let address = start(&scratch.path().join("registry"));
        Self {
            base: format!("http://{address}"),
            _scratch: scratch,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `method path` with `headers` and, when given, `body`.
    fn call(&self, method: &str, path: &str, headers: &[&str], body: Option<&str>) -> Reply {
        let mut args = vec![];
        if method == "HEAD" {
            args.push("-I".to_string());
        } else {
            args.extend(["-X".to_string(), method.to_string()]);
        }
        for header in headers {
            args.extend(["-H".to_string(), header.to_string()]);
        }
        if let Some(body) = body {
            args.extend(["--data-binary".to_string(), body.to_string()]);
        }
        args.push(self.url(path));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (status, headers, body) = curl(&args);
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Pushes `data` as a blob of `name` in one request; its digest.
    fn blob(&self, name: &str, data: &str) -> Digest {
        let digest = Digest::of(data.as_bytes());
        let path = format!("/v2/{name}/blobs/uploads/?digest={digest}");
        let reply = self.call("POST", &path, &[OCTETS], Some(data));
        assert_eq!(reply.status, 201, "{reply:?}");
        digest
    }

    /// PUTs `manifest` as `name:reference`.
    fn manifest(&self, name: &str, reference: &str, manifest: &Value) -> Reply {
        let path = format!("/v2/{name}/manifests/{reference}");
        let content_type = format!("Content-Type: {MANIFEST}");
        self.call("PUT", &path, &[&content_type], Some(&manifest.to_string()))
    }
}

const OCTETS: &str = "Content-Type: application/octet-stream";

/// One answer of the registry.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }

    /// The spec's error code of the first error.
    fn code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// An image manifest of `config` and `layers` (digest, size), with `extra` fields.
pub(crate) fn image_manifest(
    config: (&Digest, usize),
    layers: &[(&Digest, usize)],
    extra: Value,
) -> Value {
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": config.0.as_str(), "size": config.1},
        "layers": layers.iter().map(|(digest, size)| json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": digest.as_str(),
            "size": size,
        })).collect::<Vec<_>>(),
    });
    if let (Some(manifest), Some(extra)) = (manifest.as_object_mut(), extra.as_object()) {
        manifest.extend(extra.clone());
    }
    manifest
}

#[test]
fn pull_workflow() {
    let api = Api::new("conformance-pull");
    let config = api.blob("pull", "{}");
    let layer_data = "0123456789abcdef";
    let layer = api.blob("pull", layer_data);
    let manifest = image_manifest((&config, 2), &[(&layer, layer_data.len())], json!({}));
    let pushed = api.manifest("pull", "tagged", &manifest);
    assert_eq!(pushed.status, 201, "{pushed:?}");
    let digest = Digest::of(manifest.to_string().as_bytes());

    for reference in ["tagged", digest.as_str()] {
        let got = api.call("GET", &format!("/v2/pull/manifests/{reference}"), &[], None);
        assert_eq!(got.status, 200, "{got:?}");
        assert_eq!(got.body, manifest.to_string());
        assert_eq!(got.header("Content-Type").as_deref(), Some(MANIFEST));
        assert_eq!(
            got.header("Docker-Content-Digest").as_deref(),
            Some(digest.as_str())
        );
        let head = api.call(
            "HEAD",
            &format!("/v2/pull/manifests/{reference}"),
            &[],
            None,
        );
        assert_eq!(head.status, 200, "{head:?}");
        assert_eq!(
            head.header("Content-Length"),
            Some(manifest.to_string().len().to_string())
        );
    }
    let missing = api.call("GET", "/v2/pull/manifests/nope", &[], None);
    assert_eq!(
        (missing.status, missing.code().as_str()),
        (404, "MANIFEST_UNKNOWN")
    );

    let blob = format!("/v2/pull/blobs/{layer}");
    let head = api.call("HEAD", &blob, &[], None);
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.header("Content-Length"), Some("16".into()));
    let got = api.call("GET", &blob, &[], None);
    assert_eq!((got.status, got.body.as_str()), (200, layer_data));
    let absent = format!("/v2/pull/blobs/{}", Digest::of(b"absent"));
    let missing = api.call("GET", &absent, &[], None);
    assert_eq!(
        (missing.status, missing.code().as_str()),
        (404, "BLOB_UNKNOWN")
    );

    // Ranges: a middle, a suffix, an open end, and one past the end.
    for (range, part, content_range) in [
        ("bytes=2-5", "2345", "bytes 2-5/16"),
        ("bytes=-3", "def", "bytes 13-15/16"),
        ("bytes=14-", "ef", "bytes 14-15/16"),
    ] {
        let got = api.call("GET", &blob, &[&format!("Range: {range}")], None);
        assert_eq!((got.status, got.body.as_str()), (206, part), "{range}");
        assert_eq!(got.header("Content-Range").as_deref(), Some(content_range));
    }
    let beyond = api.call("GET", &blob, &["Range: bytes=100-200"], None);
    assert_eq!(beyond.status, 416, "{beyond:?}");
}

#[test]
fn push_workflow() {
    let api = Api::new("conformance-push");
    // POST, then PUT with the whole blob.
    let started = api.call("POST", "/v2/push/blobs/uploads/", &[], None);
    assert_eq!(started.status, 202, "{started:?}");
    let location = started.header("Location").unwrap();
    assert!(started.header("Docker-Upload-UUID").is_some());
    let data = "pushed in a PUT";
    let digest = Digest::of(data.as_bytes());
    let put = api.call(
        "PUT",
        &format!("{location}?digest={digest}"),
        &[OCTETS],
        Some(data),
    );
    assert_eq!(put.status, 201, "{put:?}");
    assert_eq!(
        put.header("Location"),
        Some(format!("/v2/push/blobs/{digest}"))
    );

    // Chunks: in order, out of order (416), the status, the end.
    let started = api.call("POST", "/v2/push/blobs/uploads/", &[], None);
    let location = started.header("Location").unwrap();
    let chunk = |range: &str, data: &str| {
        let range = format!("Content-Range: {range}");
        api.call("PATCH", &location, &[OCTETS, &range], Some(data))
    };
    let first = chunk("0-5", "chunky");
    assert_eq!(first.status, 202, "{first:?}");
    assert_eq!(first.header("Range").as_deref(), Some("0-5"));
    assert_eq!(chunk("3-8", "overlap").status, 416);
    let status = api.call("GET", &location, &[], None);
    assert_eq!(status.status, 204);
    assert_eq!(status.header("Range").as_deref(), Some("0-5"));
    assert_eq!(chunk("6-11", " bytes").status, 202);
    let whole = Digest::of(b"chunky bytes");
    let done = api.call("PUT", &format!("{location}?digest={whole}"), &[], None);
    assert_eq!(done.status, 201, "{done:?}");
    let got = api.call("GET", &format!("/v2/push/blobs/{whole}"), &[], None);
    assert_eq!(got.body, "chunky bytes");

    // Mounts: from a repository that has the blob (201), from one that does not (an
    // upload begins instead, 202).
    let mount = format!("/v2/other/blobs/uploads/?mount={whole}&from=push");
    let mounted = api.call("POST", &mount, &[], None);
    assert_eq!(mounted.status, 201, "{mounted:?}");
    assert_eq!(
        mounted.header("Location"),
        Some(format!("/v2/other/blobs/{whole}"))
    );
    let nowhere = format!("/v2/third/blobs/uploads/?mount={whole}&from=empty");
    assert_eq!(api.call("POST", &nowhere, &[], None).status, 202);

    // Manifests: with no layers, by digest, and refused when the digest lies.
    let config = api.blob("push", "{}");
    let manifest = image_manifest((&config, 2), &[], json!({}));
    let by_tag = api.manifest("push", "empty", &manifest);
    assert_eq!(by_tag.status, 201, "{by_tag:?}");
    let digest = Digest::of(manifest.to_string().as_bytes());
    assert_eq!(
        by_tag.header("Location"),
        Some(format!("/v2/push/manifests/{digest}"))
    );
    let by_digest = api.manifest("push", digest.as_str(), &manifest);
    assert_eq!(by_digest.status, 201, "{by_digest:?}");
    let lying = api.manifest("push", Digest::of(b"other").as_str(), &manifest);
    assert_eq!(
        (lying.status, lying.code().as_str()),
        (400, "DIGEST_INVALID")
    );
    let wrong = format!("/v2/push/blobs/uploads/?digest={}", Digest::of(b"x"));
    let refused = api.call("POST", &wrong, &[OCTETS], Some("not x"));
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (400, "DIGEST_INVALID")
    );
}

#[test]
fn content_discovery_workflow() {
    let api = Api::new("conformance-discovery");
    let config = api.blob("found", "{}");
    let empty = api.blob("found", "{}");
    let subject = image_manifest((&config, 2), &[], json!({}));
    assert_eq!(api.manifest("found", "subject", &subject).status, 201);
    let subject_digest = Digest::of(subject.to_string().as_bytes());
    let about = json!({"mediaType": MANIFEST, "digest": subject_digest.as_str(), "size": subject.to_string().len()});

    // Two artifacts about it: one names its type, the other's is its config's.
    let signature = {
        let mut signature = image_manifest(
            (&empty, 2),
            &[],
            json!({"artifactType": "application/vnd.example.signature", "subject": about,
                   "annotations": {"org.example.signer": "ada"}}),
        );
        signature["config"]["mediaType"] = json!(EMPTY);
        signature
    };
    let sbom = {
        let mut sbom = image_manifest((&empty, 2), &[], json!({"subject": about}));
        sbom["config"]["mediaType"] = json!("application/vnd.example.sbom");
        sbom
    };
    for artifact in [&signature, &sbom] {
        let digest = Digest::of(artifact.to_string().as_bytes());
        let put = api.manifest("found", digest.as_str(), artifact);
        assert_eq!(put.status, 201, "{put:?}");
        assert_eq!(
            put.header("OCI-Subject").as_deref(),
            Some(subject_digest.as_str())
        );
    }
    let path = format!("/v2/found/referrers/{subject_digest}");
    let all = api.call("GET", &path, &[], None);
    assert_eq!(all.status, 200, "{all:?}");
    assert_eq!(
        all.header("Content-Type").as_deref(),
        Some("application/vnd.oci.image.index.v1+json")
    );
    let listed = all.json()["manifests"].as_array().unwrap().clone();
    let types: Vec<&str> = listed
        .iter()
        .map(|d| d["artifactType"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(types.contains(&"application/vnd.example.signature"));
    assert!(types.contains(&"application/vnd.example.sbom"));
    let signed = listed
        .iter()
        .find(|d| d["artifactType"] == "application/vnd.example.signature")
        .unwrap();
    assert_eq!(signed["annotations"]["org.example.signer"], "ada");
    assert_eq!(
        signed["digest"],
        Digest::of(signature.to_string().as_bytes()).as_str()
    );

    let filtered = api.call(
        "GET",
        &format!("{path}?artifactType=application/vnd.example.sbom"),
        &[],
        None,
    );
    assert_eq!(
        filtered.header("OCI-Filters-Applied").as_deref(),
        Some("artifactType")
    );
    assert_eq!(filtered.json()["manifests"].as_array().unwrap().len(), 1);
    let nothing = api.call(
        "GET",
        &format!("/v2/found/referrers/{}", Digest::of(b"no one")),
        &[],
        None,
    );
    assert_eq!(nothing.status, 200);
    assert_eq!(nothing.json()["manifests"], json!([]));
    let invalid = api.call("GET", "/v2/found/referrers/sha256:nothex", &[], None);
    assert_eq!(invalid.status, 400);

    let unknown = api.call("GET", "/v2/never/tags/list", &[], None);
    assert_eq!(
        (unknown.status, unknown.code().as_str()),
        (404, "NAME_UNKNOWN")
    );
    let tags = api.call("GET", "/v2/found/tags/list", &[], None);
    assert_eq!(tags.json()["tags"], json!(["subject"]));
}

#[test]
fn content_management_workflow() {
    let api = Api::new("conformance-management");
    let config = api.blob("kept", "{}");
    let manifest = image_manifest((&config, 2), &[], json!({}));
    assert_eq!(api.manifest("kept", "doomed", &manifest).status, 201);
    let digest = Digest::of(manifest.to_string().as_bytes());
    let about = json!({"mediaType": MANIFEST, "digest": digest.as_str(), "size": 1});
    let referrer = image_manifest((&config, 2), &[], json!({"subject": about}));
    let referrer_digest = Digest::of(referrer.to_string().as_bytes());
    assert_eq!(
        api.manifest("kept", referrer_digest.as_str(), &referrer)
            .status,
        201
    );

    // A referrer deleted leaves the referrers list; a manifest deleted takes its tag.
    let deleted = api.call(
        "DELETE",
        &format!("/v2/kept/manifests/{referrer_digest}"),
        &[],
        None,
    );
    assert_eq!(deleted.status, 202, "{deleted:?}");
    let referrers = api.call("GET", &format!("/v2/kept/referrers/{digest}"), &[], None);
    assert_eq!(referrers.json()["manifests"], json!([]));
    let deleted = api.call("DELETE", &format!("/v2/kept/manifests/{digest}"), &[], None);
    assert_eq!(deleted.status, 202, "{deleted:?}");
    let gone = api.call("GET", "/v2/kept/manifests/doomed", &[], None);
    assert_eq!(
        (gone.status, gone.code().as_str()),
        (404, "MANIFEST_UNKNOWN")
    );
    let tags = api.call("GET", "/v2/kept/tags/list", &[], None);
    assert_eq!(tags.json()["tags"], json!([]));
    let again = api.call("DELETE", &format!("/v2/kept/manifests/{digest}"), &[], None);
    assert_eq!(again.status, 404);

    // Blobs and uploads.
    let blob = format!("/v2/kept/blobs/{config}");
    assert_eq!(api.call("DELETE", &blob, &[], None).status, 202);
    let gone = api.call("GET", &blob, &[], None);
    assert_eq!((gone.status, gone.code().as_str()), (404, "BLOB_UNKNOWN"));
    assert_eq!(api.call("DELETE", &blob, &[], None).status, 404);
    let started = api.call("POST", "/v2/kept/blobs/uploads/", &[], None);
    let location = started.header("Location").unwrap();
    assert_eq!(api.call("DELETE", &location, &[], None).status, 204);
    let unknown = api.call("GET", &location, &[], None);
    assert_eq!(
        (unknown.status, unknown.code().as_str()),
        (404, "BLOB_UPLOAD_UNKNOWN")
    );
}
