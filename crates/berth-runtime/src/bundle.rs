//! Loading an OCI bundle: `config.json` parsed with `oci-spec` and checked for what this
//! runtime needs, with errors that name the offending field.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::{Error, Result};

/// A bundle whose config passed validation.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The bundle directory, absolute.
    pub dir: PathBuf,
    /// The parsed config.json.
    pub spec: Spec,
    /// The root filesystem, absolute and existing.
    pub rootfs: PathBuf,
}

impl Bundle {
    /// Reads and validates `dir/config.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let dir = std::fs::canonicalize(dir).map_err(|e| Error::Config {
            path: dir.join("config.json"),
            reason: format!("bundle directory: {e}"),
        })?;
        let path = dir.join("config.json");
        let text = std::fs::read(&path).map_err(|e| Error::Config {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let spec = parse_spec(&text).map_err(|reason| Error::Config {
            path: path.clone(),
            reason,
        })?;
        let rootfs = validate(&dir, &spec)?;
        Ok(Bundle { dir, spec, rootfs })
    }
}

/// Writes the default config.json into `dir`, as `runc spec` does: busybox-style `sh` on a
/// terminal in a read-only `rootfs`, the usual namespaces, mounts, masks and capabilities.
/// With `seccomp_profile` (Docker's profile format, as JSON text), the profile converted
/// for the config's bounding set goes in too. Refuses to overwrite an existing config.
pub fn write_default_spec(dir: &Path, seccomp_profile: Option<&str>) -> Result<PathBuf> {
    let path = dir.join("config.json");
    if path.exists() {
        return Err(Error::Config {
            path,
            reason: "already exists: remove it first".into(),
        });
    }
    let mut spec = Spec::default();
    spec.set_hostname(Some("berth".to_string()));
    if let Some(process) = spec.process_mut() {
        process.set_terminal(Some(true));
    }
    if let Some(profile) = seccomp_profile {
        add_seccomp(&mut spec, profile)?;
    }
    spec.save(&path).map_err(|e| Error::Config {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    Ok(path)
}

fn add_seccomp(spec: &mut Spec, profile: &str) -> Result<()> {
    let bounding: Vec<String> = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().as_ref())
        .into_iter()
        .flatten()
        .map(|cap| format!("CAP_{cap}"))
        .collect();
    let seccomp = crate::seccomp::from_docker_profile(profile, &bounding)?;
    if let Some(linux) = spec.linux_mut() {
        linux.set_seccomp(Some(seccomp));
    }
    Ok(())
}

/// Parses config.json, naming the field when a value has the wrong shape.
pub fn parse_spec(text: &[u8]) -> std::result::Result<Spec, String> {
    let deserializer = &mut serde_json::Deserializer::from_slice(text);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        if field == "." {
            inner.to_string()
        } else {
            format!("field {field}: {inner}")
        }
    })
}

fn field(field: &str, reason: impl Into<String>) -> Error {
    Error::Field {
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// Checks what the parser cannot: presence, absolute paths, unique namespaces, mappings.
fn validate(dir: &Path, spec: &Spec) -> Result<PathBuf> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| field("root", "missing"))?;
    let rootfs = dir.join(root.path());
    if !rootfs.is_dir() {
        return Err(field(
            "root.path",
            format!(
                "rootfs {} does not exist or is not a directory",
                rootfs.display()
            ),
        ));
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| field("process", "missing"))?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(field("process.args", "must name the program to run"));
    }
    if !process.cwd().is_absolute() {
        return Err(field(
            "process.cwd",
            format!("{} is not an absolute path", process.cwd().display()),
        ));
    }
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| field("linux", "missing: this runtime runs Linux containers"))?;
    let mut seen = HashSet::new();
    for (i, namespace) in linux.namespaces().iter().flatten().enumerate() {
        if !seen.insert(namespace.typ()) {
            return Err(field(
                &format!("linux.namespaces[{i}].type"),
                format!("{:?} namespace listed twice", namespace.typ()),
            ));
        }
        if let Some(path) = namespace.path().as_ref().filter(|p| !p.exists()) {
            return Err(field(
                &format!("linux.namespaces[{i}].path"),
                format!("{} does not exist", path.display()),
            ));
        }
    }
    let user_ns = seen.contains(&LinuxNamespaceType::User);
    let has_mappings = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if has_mappings && !user_ns {
        return Err(field("linux.uidMappings", "given without a user namespace"));
    }
    crate::mounts::root_propagation(spec)?;
    for (i, mount) in spec.mounts().iter().flatten().enumerate() {
        if !mount.destination().is_absolute() {
            return Err(field(
                &format!("mounts[{i}].destination"),
                format!("{} is not absolute", mount.destination().display()),
            ));
        }
    }
    Ok(rootfs)
}
