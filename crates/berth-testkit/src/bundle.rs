//! OCI runtime bundles (a `rootfs/` and a `config.json`) made from test images, the input
//! of `berth oci`, runc and crun alike.

use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use oci_spec::runtime::Spec;

use crate::error::IoContext;
use crate::layout::{LayoutImage, blob_path};
use crate::{Error, Result};

/// Unpacks `image` into `dir/rootfs` and writes `dir/config.json`: the runtime's default
/// spec (as `runc spec` gives) running `args`, or the image's entrypoint and command when
/// `args` is empty, with the image's environment. Returns the bundle directory.
pub fn bundle_from_image(image: &LayoutImage, dir: &Path, args: &[&str]) -> Result<PathBuf> {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&rootfs).at(&rootfs)?;
    for digest in &image.layer_digests {
        let blob = blob_path(&image.dir, digest)?;
        let file = std::fs::File::open(&blob).at(&blob)?;
        tar::Archive::new(GzDecoder::new(file))
            .unpack(&rootfs)
            .at(&rootfs)?;
    }
    let mut spec = Spec::default();
    spec.set_hostname(Some("berth".to_string()));
    let process = spec
        .process_mut()
        .as_mut()
        .ok_or_else(|| Error::Invalid("default spec has no process".into()))?;
    process.set_args(Some(command(image, args)));
    process.set_env(Some(strings(&image.config["Env"])));
    let config = dir.join("config.json");
    spec.save(&config)
        .map_err(|e| Error::Invalid(format!("{}: {e}", config.display())))?;
    Ok(dir.to_path_buf())
}

fn command(image: &LayoutImage, args: &[&str]) -> Vec<String> {
    if args.is_empty() {
        let mut command = strings(&image.config["Entrypoint"]);
        command.extend(strings(&image.config["Cmd"]));
        command
    } else {
        args.iter().map(|a| a.to_string()).collect()
    }
}

fn strings(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}
