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
    if let Some(score) = process
        .oom_score_adj()
        .filter(|s| !(-1000..=1000).contains(s))
    {
        return Err(field(
            "process.oomScoreAdj",
            format!("{score} is out of range: valid values are -1000 to 1000"),
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
    let new_user_ns = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|ns| ns.typ() == LinuxNamespaceType::User && ns.path().is_none());
    for (name, maps) in [
        ("linux.uidMappings", linux.uid_mappings()),
        ("linux.gidMappings", linux.gid_mappings()),
    ] {
        if new_user_ns && maps.as_ref().is_none_or(|m| m.is_empty()) {
            return Err(field(
                name,
                "missing: a new user namespace needs its id mappings",
            ));
        }
    }
    for key in linux.sysctl().iter().flat_map(|s| s.keys()) {
        check_sysctl(key, &seen)?;
    }
    check_hooks(spec)?;
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

/// Refuses a sysctl the container's own namespaces do not hold, as runc does: writing it
/// would change the host's kernel.
fn check_sysctl(key: &str, namespaces: &HashSet<LinuxNamespaceType>) -> Result<()> {
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let needs = if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        LinuxNamespaceType::Ipc
    } else if key.starts_with("net.") {
        LinuxNamespaceType::Network
    } else if key == "kernel.domainname" {
        LinuxNamespaceType::Uts
    } else if key == "kernel.hostname" {
        return Err(field(
            &format!("linux.sysctl.{key}"),
            "conflicts with the hostname field: set that instead",
        ));
    } else {
        return Err(field(
            &format!("linux.sysctl.{key}"),
            "is not in a separate kernel namespace: it would change the host",
        ));
    };
    if namespaces.contains(&needs) {
        Ok(())
    } else {
        Err(field(
            &format!("linux.sysctl.{key}"),
            format!("needs a {needs:?} namespace of the container's own"),
        ))
    }
}

/// Refuses a hook whose path is not absolute: the spec requires one, and a relative
/// path would be looked up wherever the runtime runs.
fn check_hooks(spec: &Spec) -> Result<()> {
    let Some(hooks) = spec.hooks() else {
        return Ok(());
    };
    let kinds = [
        ("prestart", hooks.prestart()),
        ("createRuntime", hooks.create_runtime()),
        ("createContainer", hooks.create_container()),
        ("startContainer", hooks.start_container()),
        ("poststart", hooks.poststart()),
        ("poststop", hooks.poststop()),
    ];
    for (kind, list) in kinds {
        for (i, hook) in list.iter().flatten().enumerate() {
            if !hook.path().is_absolute() {
                return Err(field(
                    &format!("hooks.{kind}[{i}].path"),
                    format!("{} is not absolute", hook.path().display()),
                ));
            }
        }
    }
    Ok(())
}
