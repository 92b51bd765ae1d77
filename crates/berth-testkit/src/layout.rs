//! OCI image layouts on disk (`oci-layout`, `index.json`, `blobs/sha256/…`): written from
//! layers and a config, and verified end to end, so tests start from images that `skopeo`
//! and any OCI tool accept.

use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::IoContext;
use crate::layer::{Layer, sha256_digest};
use crate::{Error, Result};

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// The annotation that names a manifest's tag in `index.json`.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An image written into an OCI layout directory.
#[derive(Debug, Clone)]
pub struct LayoutImage {
    /// The layout directory.
    pub dir: PathBuf,
    /// The tag under which `index.json` lists the image (`skopeo`'s `oci:DIR:TAG`).
    pub tag: String,
    /// Digest of the image manifest.
    pub manifest_digest: String,
    /// The image's config document (`config` holds Env, Cmd, Entrypoint, …).
    pub config: Value,
    /// Digests of the compressed layers, bottom first.
    pub layer_digests: Vec<String>,
}

/// Writes an image made of `layers` and the runtime `config` (the `config` object of an
/// OCI image config: Env, Cmd, Entrypoint, WorkingDir, …) into the layout at `dir` as `tag`.
pub fn write_layout(dir: &Path, tag: &str, config: Value, layers: &[Layer]) -> Result<LayoutImage> {
    let (manifest_digest, size) = write_manifest(dir, "amd64", &config, layers)?;
    write_index(
        dir,
        tag,
        json!({"mediaType": MANIFEST_TYPE, "digest": manifest_digest, "size": size}),
    )?;
    Ok(LayoutImage {
        dir: dir.to_path_buf(),
        tag: tag.to_string(),
        manifest_digest,
        config,
        layer_digests: layers.iter().map(|l| l.digest.clone()).collect(),
    })
}

/// Writes an image for several platforms into the layout at `dir` as `tag`: an image
/// index listing one manifest per `(architecture, config)`, all of them linux and made
/// of `layers`. [`LayoutImage::manifest_digest`] is the index's, its config the first's.
pub fn write_multi_platform_layout(
    dir: &Path,
    tag: &str,
    platforms: &[(&str, Value)],
    layers: &[Layer],
) -> Result<LayoutImage> {
    let mut manifests = Vec::new();
    for (architecture, config) in platforms {
        let (digest, size) = write_manifest(dir, architecture, config, layers)?;
        manifests.push(json!({
            "mediaType": MANIFEST_TYPE, "digest": digest, "size": size,
            "platform": {"os": "linux", "architecture": architecture},
        }));
    }
    let index =
        to_bytes(&json!({"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": manifests}));
    let index_digest = write_blob(dir, &index)?;
    write_index(
        dir,
        tag,
        json!({"mediaType": INDEX_TYPE, "digest": index_digest, "size": index.len()}),
    )?;
    Ok(LayoutImage {
        dir: dir.to_path_buf(),
        tag: tag.to_string(),
        manifest_digest: index_digest,
        config: platforms
            .first()
            .map(|(_, c)| c.clone())
            .unwrap_or_default(),
        layer_digests: layers.iter().map(|l| l.digest.clone()).collect(),
    })
}

/// Writes the layers, a config for `architecture` and the manifest joining them; the
/// manifest's digest and size.
fn write_manifest(
    dir: &Path,
    architecture: &str,
    config: &Value,
    layers: &[Layer],
) -> Result<(String, usize)> {
    std::fs::create_dir_all(dir.join("blobs/sha256")).at(dir)?;
    write_file(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    for layer in layers {
        write_blob(dir, &layer.compressed)?;
    }
    let image_config = json!({
        "architecture": architecture,
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| &l.diff_id).collect::<Vec<_>>()},
        "history": layers.iter().map(|_| json!({"created_by": "berth-testkit"})).collect::<Vec<_>>(),
    });
    let config_bytes = to_bytes(&image_config);
    let config_digest = write_blob(dir, &config_bytes)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": config_bytes.len()},
        "layers": layers.iter().map(|l| json!({
            "mediaType": LAYER_TYPE, "digest": l.digest, "size": l.compressed.len(),
        })).collect::<Vec<_>>(),
    });
    let manifest_bytes = to_bytes(&manifest);
    Ok((write_blob(dir, &manifest_bytes)?, manifest_bytes.len()))
}

/// Writes `index.json` naming `descriptor` (a manifest's or an index's) as `tag`.
fn write_index(dir: &Path, tag: &str, mut descriptor: Value) -> Result<()> {
    descriptor["annotations"] = json!({REF_NAME: tag});
    let index = json!({
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": [descriptor],
    });
    write_file(&dir.join("index.json"), &to_bytes(&index))
}

fn to_bytes(value: &Value) -> Vec<u8> {
    // Serialising a `Value` cannot fail: its keys are strings.
    serde_json::to_vec(value).unwrap_or_default()
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).at(path)
}

fn write_blob(dir: &Path, bytes: &[u8]) -> Result<String> {
    let digest = sha256_digest(bytes);
    write_file(&blob_path(dir, &digest)?, bytes)?;
    Ok(digest)
}

/// Where a blob lives in the layout; refuses digests that are not `sha256:` and 64 hex
/// digits, so a hostile index cannot name a path outside `blobs/`.
pub fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| {
            h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
        .ok_or_else(|| Error::Invalid(format!("unsupported digest {digest:?}")))?;
    Ok(dir.join("blobs/sha256").join(hex))
}

/// One image of a layout whose every digest and size checked out.
#[derive(Debug)]
pub struct VerifiedImage {
    /// The tag from the index's `org.opencontainers.image.ref.name` annotation, if any.
    pub tag: Option<String>,
    /// The parsed manifest.
    pub manifest: ImageManifest,
    /// The parsed image config.
    pub config: ImageConfiguration,
}

/// Checks a whole layout: `oci-layout`, the index, and for each manifest its bytes, its
/// config and every layer, compressed (descriptor digest and size) and uncompressed
/// (the config's diff_ids).
pub fn verify_layout(dir: &Path) -> Result<Vec<VerifiedImage>> {
    let marker = read_json(&dir.join("oci-layout"))?;
    if marker["imageLayoutVersion"] != "1.0.0" {
        return Err(Error::Invalid(format!(
            "oci-layout says {marker}, expected version 1.0.0"
        )));
    }
    let index_path = dir.join("index.json");
    let index: ImageIndex = parse(&index_path.display().to_string(), &read(&index_path)?)?;
    index
        .manifests()
        .iter()
        .map(|descriptor| {
            let bytes = read_blob(dir, descriptor.digest().as_ref(), descriptor.size())?;
            let manifest: ImageManifest = parse(descriptor.digest().as_ref(), &bytes)?;
            let config_descriptor = manifest.config();
            let config_bytes = read_blob(
                dir,
                config_descriptor.digest().as_ref(),
                config_descriptor.size(),
            )?;
            let config: ImageConfiguration =
                parse(config_descriptor.digest().as_ref(), &config_bytes)?;
            verify_layers(dir, &manifest, &config)?;
            let tag = descriptor
                .annotations()
                .as_ref()
                .and_then(|a| a.get(REF_NAME))
                .cloned();
            Ok(VerifiedImage {
                tag,
                manifest,
                config,
            })
        })
        .collect()
}

fn verify_layers(dir: &Path, manifest: &ImageManifest, config: &ImageConfiguration) -> Result<()> {
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        return Err(Error::Invalid(format!(
            "manifest has {} layers but the config lists {} diff_ids",
            manifest.layers().len(),
            diff_ids.len()
        )));
    }
    for (layer, diff_id) in manifest.layers().iter().zip(diff_ids) {
        let compressed = read_blob(dir, layer.digest().as_ref(), layer.size())?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut GzDecoder::new(compressed.as_slice()), &mut hasher)
            .map_err(|e| Error::Invalid(format!("layer {}: {e}", layer.digest())))?;
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if &actual != diff_id {
            return Err(Error::Invalid(format!(
                "layer {} unpacks to {actual}, config says {diff_id}",
                layer.digest()
            )));
        }
    }
    Ok(())
}

/// Reads a blob and checks that its bytes hash to `digest` and number `size`.
pub fn read_blob(dir: &Path, digest: &str, size: u64) -> Result<Vec<u8>> {
    let bytes = read(&blob_path(dir, digest)?)?;
    if bytes.len() as u64 != size {
        return Err(Error::Invalid(format!(
            "blob {digest} is {} bytes, descriptor says {size}",
            bytes.len()
        )));
    }
    let actual = sha256_digest(&bytes);
    if actual != digest {
        return Err(Error::Invalid(format!("blob {digest} hashes to {actual}")));
    }
    Ok(bytes)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).at(path)
}

fn read_json(path: &Path) -> Result<Value> {
    parse(&path.display().to_string(), &read(path)?)
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| Error::Json {
        what: what.to_string(),
        source,
    })
}

/// The layout of `image` as one tar archive, the way `docker save` (Docker 25 and later)
/// and `skopeo copy … oci-archive:` write it, with the image named `name` (e.g.
/// `busybox:latest`) by the `io.containerd.image.name` annotation, as `docker load`
/// reads it.
pub fn layout_archive(image: &LayoutImage, name: &str) -> Result<Vec<u8>> {
    let index_path = image.dir.join("index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path).at(&index_path)?)
        .map_err(|e| Error::Invalid(format!("{}: {e}", index_path.display())))?;
    for manifest in index["manifests"].as_array_mut().into_iter().flatten() {
        manifest["annotations"]["io.containerd.image.name"] = json!(name);
    }
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    for entry in ["oci-layout", "blobs"] {
        let path = image.dir.join(entry);
        let appended = if path.is_dir() {
            builder.append_dir_all(entry, &path)
        } else {
            builder.append_path_with_name(&path, entry)
        };
        appended.at(&path)?;
    }
    let index = to_bytes(&index);
    let mut header = tar::Header::new_gnu();
    header.set_size(index.len() as u64);
    header.set_mode(0o644);
    builder
        .append_data(&mut header, "index.json", &index[..])
        .at(&index_path)?;
    builder.into_inner().at(&image.dir)
}
