//! Volumes and the mounts of `-v`, `--mount` and `--tmpfs`: named volumes of the local
//! driver live in `<data>/volumes/<name>/_data` and outlive their containers; binds
//! name host paths; tmpfs mounts are the container's own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::model::Container;
use crate::{Engine, Error, Result};

/// One entry of HostConfig.Mounts (`--mount`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountRequest {
    /// `bind`, `volume` or `tmpfs`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// Host path (bind) or volume name (volume).
    pub source: String,
    /// Path in the container.
    pub target: String,
    /// Mount read-only.
    pub read_only: bool,
    /// A tmpfs mount's size and mode.
    pub tmpfs_options: Option<TmpfsOptions>,
    /// A volume mount's options.
    pub volume_options: Option<VolumeOptions>,
}

/// `--mount type=volume,volume-nocopy`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeOptions {
    /// Leave a new volume empty instead of filling it from the image.
    pub no_copy: bool,
}

/// `--mount type=tmpfs,tmpfs-size=…,tmpfs-mode=…`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TmpfsOptions {
    /// Its size in bytes; the kernel's default (half the memory) when 0.
    pub size_bytes: i64,
    /// Its permission bits; 1777 when 0.
    pub mode: u32,
}

impl MountRequest {
    /// A tmpfs `--mount` as `--tmpfs` gives one: its target and mount options.
    fn as_tmpfs(&self) -> (String, String) {
        let mut options = Vec::new();
        if let Some(tmpfs) = &self.tmpfs_options {
            if tmpfs.size_bytes > 0 {
                options.push(format!("size={}", tmpfs.size_bytes));
            }
            if tmpfs.mode != 0 {
                options.push(format!("mode={:o}", tmpfs.mode & 0o7777));
            }
        }
        if self.read_only {
            options.push("ro".to_string());
        }
        (self.target.clone(), options.join(","))
    }
}

/// A named volume.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    /// Its name.
    pub name: String,
    /// Where its data lives on the host.
    pub mountpoint: PathBuf,
    /// Its labels: Compose tools find a project's volumes by them.
    pub labels: BTreeMap<String, String>,
    /// When it was made, RFC 3339; empty for volumes older than the record of it.
    pub created: String,
}

/// What is kept of a volume beside its data, in `<name>/volume.json`.
#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
struct VolumeRecord {
    labels: BTreeMap<String, String>,
    created: String,
}

impl Volume {
    /// Docker's JSON for it.
    pub fn to_json(&self) -> Value {
        json!({
            "Name": self.name, "Driver": "local", "Mountpoint": self.mountpoint,
            "CreatedAt": self.created, "Scope": "local", "Labels": self.labels, "Options": {},
        })
    }
}

/// One of a container's mounts as `docker inspect` lists them (`Mounts`).
#[derive(Debug, Clone, PartialEq)]
pub struct MountPoint {
    /// `bind`, `volume` or `tmpfs`.
    pub kind: &'static str,
    /// The volume's name; empty for binds and tmpfs.
    pub name: String,
    /// Where it comes from on the host; empty for tmpfs.
    pub source: PathBuf,
    /// Where it is in the container.
    pub destination: String,
    /// The `-v` mode as given (`ro`, `z`…).
    pub mode: String,
    /// Writable.
    pub read_write: bool,
}

/// A mount in the runtime spec's words.
struct SpecMount {
    destination: String,
    source: PathBuf,
    kind: &'static str,
    read_only: bool,
}

impl Engine {
    fn volumes_dir(&self) -> PathBuf {
        self.data_dir.join("volumes")
    }

    /// Creates volume `name` (a random one when empty) with `labels`; an existing one is
    /// returned as is.
    pub fn create_volume(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<Volume> {
        let name = if name.is_empty() {
            crate::containers::random_hex(32)?
        } else {
            valid_volume_name(name)?
        };
        let dir = self.volumes_dir().join(&name);
        let mountpoint = dir.join("_data");
        if !mountpoint.is_dir() {
            std::fs::create_dir_all(&mountpoint).map_err(|e| Error::Io(mountpoint.clone(), e))?;
            let record = VolumeRecord {
                labels: labels.clone(),
                created: berth_runtime::state::now_rfc3339(),
            };
            let path = dir.join("volume.json");
            let text = serde_json::to_vec(&record).unwrap_or_default();
            std::fs::write(&path, text).map_err(|e| Error::Io(path, e))?;
            self.emit_volume(&name, "create");
        }
        self.volume(&name)
    }

    /// Volume `name`.
    pub fn volume(&self, name: &str) -> Result<Volume> {
        let dir = self.volumes_dir().join(valid_volume_name(name)?);
        let mountpoint = dir.join("_data");
        if !mountpoint.is_dir() {
            return Err(Error::NoSuchVolume(name.to_string()));
        }
        let record: VolumeRecord = std::fs::read(dir.join("volume.json"))
            .ok()
            .and_then(|text| serde_json::from_slice(&text).ok())
            .unwrap_or_default();
        Ok(Volume {
            name: name.to_string(),
            mountpoint,
            labels: record.labels,
            created: record.created,
        })
    }

    /// Every volume, by name.
    pub fn volumes(&self) -> Vec<Volume> {
        let mut names: Vec<String> = std::fs::read_dir(self.volumes_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        names.iter().filter_map(|n| self.volume(n).ok()).collect()
    }

    /// Removes volume `name`, unless a container uses it.
    pub fn remove_volume(&self, name: &str) -> Result<()> {
        let volume = self.volume(name)?;
        if let Some(user) = self.containers(true).iter().find(|c| uses_volume(c, name)) {
            return Err(Error::Conflict(format!(
                "remove {name}: volume is in use - [{}]",
                user.id
            )));
        }
        let dir = self.volumes_dir().join(&volume.name);
        std::fs::remove_dir_all(&dir).map_err(|e| Error::Io(dir, e))?;
        self.emit_volume(&volume.name, "destroy");
        Ok(())
    }

    fn emit_volume(&self, name: &str, action: &str) {
        let attributes = [("driver".to_string(), "local".to_string())].into();
        self.emit("volume", action, name, attributes);
    }

    /// A container's binds, volumes and `--mount` tmpfs mounts, as inspect lists them,
    /// sorted by destination: the docker CLI sends `-v` binds in a Go map's random
    /// order, and inspect's output should not change from one run to the next.
    /// Nothing is made: a volume not made yet has the path it will have.
    pub fn mount_points(&self, container: &Container) -> Vec<MountPoint> {
        let host = &container.request.host_config;
        let volume = |name: &str| self.volumes_dir().join(name).join("_data");
        let mut points = Vec::new();
        for (source, target, mode) in host
            .binds
            .iter()
            .flatten()
            .filter_map(|b| bind_parts(b).ok())
        {
            let named = !source.starts_with('/');
            points.push(MountPoint {
                kind: if named { "volume" } else { "bind" },
                name: if named {
                    source.to_string()
                } else {
                    String::new()
                },
                source: if named {
                    volume(source)
                } else {
                    PathBuf::from(source)
                },
                destination: target.to_string(),
                mode: mode.to_string(),
                read_write: !mode.split(',').any(|m| m == "ro"),
            });
        }
        for mount in host.mounts.iter().flatten().filter(|m| !is_anonymous(m)) {
            let (kind, name, source) = match mount.kind.as_str() {
                "volume" => ("volume", mount.source.clone(), volume(&mount.source)),
                "tmpfs" => ("tmpfs", String::new(), PathBuf::new()),
                _ => ("bind", String::new(), PathBuf::from(&mount.source)),
            };
            points.push(MountPoint {
                kind,
                name,
                source,
                destination: mount.target.clone(),
                mode: String::new(),
                read_write: !mount.read_only,
            });
        }
        for (name, target) in &container.anonymous_volumes {
            points.push(MountPoint {
                kind: "volume",
                name: name.clone(),
                source: volume(name),
                destination: target.clone(),
                mode: String::new(),
                read_write: true,
            });
        }
        points.sort_by(|a, b| a.destination.cmp(&b.destination));
        points
    }

    /// The spec mounts of a container's binds, volumes and tmpfs mounts; named volumes
    /// are created when missing, as `docker run -v` does.
    pub(crate) fn container_mounts(&self, container: &Container) -> Result<Vec<Value>> {
        let rootfs = crate::rootfs::Overlay::of(&self.container_dir(&container.id)).target;
        let mut mounts = Vec::new();
        for bind in container.request.host_config.binds.iter().flatten() {
            mounts.push(self.parse_bind(bind, &rootfs)?);
        }
        // Anonymous `--mount`s are among the container's anonymous volumes.
        for mount in container.request.host_config.mounts.iter().flatten() {
            if !is_anonymous(mount) && mount.kind != "tmpfs" {
                mounts.push(self.resolve_mount(mount, Some(&rootfs))?);
            }
        }
        for (name, target) in &container.anonymous_volumes {
            mounts.push(self.anonymous_mount(&rootfs, name, target)?);
        }
        let mut spec: Vec<Value> = mounts
            .into_iter()
            .map(|m| {
                let mut options = vec![if m.kind == "bind" { "rbind" } else { "nosuid" }, "rprivate"];
                options.push(if m.read_only { "ro" } else { "rw" });
                json!({"destination": m.destination, "type": m.kind, "source": m.source, "options": options})
            })
            .collect();
        let host = &container.request.host_config;
        let tmpfs_mounts = host.mounts.iter().flatten().filter(|m| m.kind == "tmpfs");
        let tmpfs = host
            .tmpfs
            .iter()
            .flatten()
            .map(|(target, options)| (target.clone(), options.clone()))
            .chain(tmpfs_mounts.map(MountRequest::as_tmpfs));
        for (target, options) in tmpfs {
            let mut all = vec!["nosuid".to_string(), "nodev".to_string()];
            all.extend(
                options
                    .split(',')
                    .filter(|o| !o.is_empty())
                    .map(str::to_string),
            );
            spec.push(
                json!({"destination": target, "type": "tmpfs", "source": "tmpfs", "options": all}),
            );
        }
        Ok(spec)
    }

    /// An anonymous volume's mount; a new volume is first filled with what the image has
    /// at its path, as Docker fills it.
    fn anonymous_mount(&self, rootfs: &Path, name: &str, target: &str) -> Result<SpecMount> {
        Ok(SpecMount {
            destination: target.to_string(),
            source: self.volume_source(Some(rootfs), name, target, true)?,
            kind: "bind",
            read_only: false,
        })
    }

    /// Volume `name`'s data directory, the volume made if missing; a new one is filled
    /// (`fill`) with what the root at `rootfs` has at `target`, as Docker fills it.
    fn volume_source(
        &self,
        rootfs: Option<&Path>,
        name: &str,
        target: &str,
        fill: bool,
    ) -> Result<PathBuf> {
        let fresh = self.volume(name).is_err();
        let volume = self.create_volume(name, &BTreeMap::new())?;
        if let (true, true, Some(rootfs)) = (fresh, fill, rootfs) {
            copy_up(rootfs, target, &volume.mountpoint)?;
        }
        Ok(volume.mountpoint)
    }

    /// Removes a removed container's anonymous volumes; one still in use (`--volumes-from`
    /// is not honoured, so none should be) stays.
    pub(crate) fn remove_anonymous_volumes(&self, container: &Container) {
        for name in container.anonymous_volumes.keys() {
            if let Err(error) = self.remove_volume(name) {
                tracing::warn!(volume = %name, %error, "an anonymous volume stays");
            }
        }
    }

    /// Refuses at create what start would refuse: a malformed `-v`, a `--mount` bind of a
    /// missing path, an unknown mount type.
    pub(crate) fn check_mounts(&self, request: &crate::model::CreateRequest) -> Result<()> {
        for bind in request.host_config.binds.iter().flatten() {
            bind_parts(bind)?;
        }
        for mount in request.host_config.mounts.iter().flatten() {
            if mount.kind == "bind" {
                self.resolve_mount(mount, None)?;
            } else if !matches!(mount.kind.as_str(), "volume" | "tmpfs") {
                return Err(Error::Invalid(format!(
                    "mount type {:?} is not supported",
                    mount.kind
                )));
            }
        }
        Ok(())
    }

    /// `-v SOURCE:TARGET[:ro|rw]`: an absolute SOURCE is a host path (made if missing,
    /// as Docker does), any other a volume name.
    fn parse_bind(&self, bind: &str, rootfs: &Path) -> Result<SpecMount> {
        let (source, target, mode) = bind_parts(bind)?;
        let read_only = mode.split(',').any(|m| m == "ro");
        let source = if source.starts_with('/') {
            std::fs::create_dir_all(source).map_err(|e| Error::Io(source.into(), e))?;
            PathBuf::from(source)
        } else {
            let fill = !mode.split(',').any(|m| m == "nocopy");
            self.volume_source(Some(rootfs), source, target, fill)?
        };
        Ok(SpecMount {
            destination: target.to_string(),
            source,
            kind: "bind",
            read_only,
        })
    }

    /// A `--mount`'s spec mount; a new volume is filled from the root at `rootfs` (none
    /// when only checking).
    fn resolve_mount(&self, mount: &MountRequest, rootfs: Option<&Path>) -> Result<SpecMount> {
        let source = match mount.kind.as_str() {
            "bind" => {
                let path = Path::new(&mount.source);
                if !path.is_absolute() || !path.exists() {
                    return Err(Error::Invalid(format!(
                        "invalid mount config for type \"bind\": bind source path does not exist: {}",
                        mount.source
                    )));
                }
                path.to_path_buf()
            }
            "volume" => {
                let fill = !mount.volume_options.as_ref().is_some_and(|o| o.no_copy);
                self.volume_source(rootfs, &mount.source, &mount.target, fill)?
            }
            other => {
                return Err(Error::Invalid(format!(
                    "mount type {other:?} is not supported"
                )));
            }
        };
        Ok(SpecMount {
            destination: mount.target.clone(),
            source,
            kind: "bind",
            read_only: mount.read_only,
        })
    }
}

/// SOURCE, TARGET and mode of a `-v` spec.
fn bind_parts(bind: &str) -> Result<(&str, &str, &str)> {
    let parts: Vec<&str> = bind.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [source, target] => (*source, *target, ""),
        [source, target, mode] => (*source, *target, *mode),
        _ => {
            return Err(Error::Invalid(format!(
                "invalid volume specification: '{bind}'"
            )));
        }
    };
    if !target.starts_with('/') {
        return Err(Error::Invalid(format!(
            "invalid volume specification: '{bind}': the destination must be an absolute path"
        )));
    }
    // `z` and `Z` relabel for SELinux, which this host does not enforce; binds are
    // `rprivate` always. Other propagation modes are not honoured.
    if let Some(other) = mode.split(',').find(|m| {
        !matches!(
            *m,
            "" | "ro" | "rw" | "z" | "Z" | "private" | "rprivate" | "nocopy"
        )
    }) {
        return Err(Error::Invalid(format!(
            "berth does not support the volume mode {other:?} (-v {bind})"
        )));
    }
    Ok((source, target, mode))
}

/// Copies what the root at `rootfs` has at `target` (a directory) into `volume`, keeping
/// owners, modes and links; the path is resolved inside the root, so no link in it leads
/// out. Nothing there, nothing copied.
fn copy_up(rootfs: &Path, target: &str, volume: &Path) -> Result<()> {
    let root = std::fs::File::open(rootfs).map_err(|e| Error::Io(rootfs.to_path_buf(), e))?;
    let Ok(dir) = berth_image::open_in_root(&root, target, libc::O_PATH | libc::O_DIRECTORY) else {
        return Ok(());
    };
    let source = format!(
        "/proc/{}/fd/{}/.",
        std::process::id(),
        std::os::fd::AsRawFd::as_raw_fd(&dir)
    );
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(&source)
        .arg(volume)
        .status()
        .map_err(|e| Error::Io("cp".into(), e))?;
    if !status.success() {
        return Err(Error::Invalid(format!(
            "could not fill the volume at {target} from the image: cp {status}"
        )));
    }
    Ok(())
}

/// `--mount type=volume` without a source: an anonymous volume.
fn is_anonymous(mount: &MountRequest) -> bool {
    mount.kind == "volume" && mount.source.is_empty()
}

/// The anonymous volumes a new container gets: `-v /path` and the image's VOLUMEs, each
/// a new volume of a random name, but for paths a bind, mount or tmpfs already takes.
pub(crate) fn anonymous_volumes(
    request: &crate::model::CreateRequest,
    image: &Value,
) -> Result<std::collections::BTreeMap<String, String>> {
    let host = &request.host_config;
    let taken: Vec<String> = host
        .binds
        .iter()
        .flatten()
        .filter_map(|b| bind_parts(b).ok().map(|(_, target, _)| target.to_string()))
        .chain(
            host.mounts
                .iter()
                .flatten()
                .filter(|m| !is_anonymous(m))
                .map(|m| m.target.clone()),
        )
        .chain(host.tmpfs.iter().flatten().map(|(t, _)| t.clone()))
        .map(|t| t.trim_end_matches('/').to_string())
        .collect();
    let asked = request
        .volumes
        .iter()
        .flatten()
        .map(|(path, _)| path.clone())
        .chain(
            host.mounts
                .iter()
                .flatten()
                .filter(|m| is_anonymous(m))
                .map(|m| m.target.clone()),
        );
    let from_image = image["Volumes"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(path, _)| path.clone());
    let mut volumes = std::collections::BTreeMap::new();
    let mut targets: Vec<String> = asked.chain(from_image).collect();
    targets.sort();
    targets.dedup();
    for target in targets {
        if !target.starts_with('/') {
            return Err(Error::Invalid(format!(
                "invalid volume specification: '{target}': the path must be absolute"
            )));
        }
        if !taken.contains(&target.trim_end_matches('/').to_string()) {
            volumes.insert(crate::containers::random_hex(32)?, target);
        }
    }
    Ok(volumes)
}

pub(crate) fn uses_volume(container: &Container, name: &str) -> bool {
    if container.anonymous_volumes.contains_key(name) {
        return true;
    }
    let host = &container.request.host_config;
    host.binds
        .iter()
        .flatten()
        .any(|b| b.split(':').next() == Some(name))
        || host
            .mounts
            .iter()
            .flatten()
            .any(|m| m.kind == "volume" && m.source == name)
}

fn valid_volume_name(name: &str) -> Result<String> {
    if crate::containers::is_docker_name(name) {
        Ok(name.to_string())
    } else {
        Err(Error::Invalid(format!(
            "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_s_volumes_and_the_request_s_get_anonymous_ones_unless_mounted() {
        let mut request = crate::model::CreateRequest {
            volumes: Some([("/data".to_string(), json!({}))].into()),
            ..Default::default()
        };
        request.host_config.binds = Some(vec!["/host:/taken/".into()]);
        request.host_config.mounts = Some(vec![MountRequest {
            kind: "volume".into(),
            target: "/scratch".into(),
            ..Default::default()
        }]);
        let image = json!({"Volumes": {"/var/lib/db": {}, "/taken": {}, "/data": {}}});
        let volumes = anonymous_volumes(&request, &image).unwrap();
        let mut targets: Vec<&str> = volumes.values().map(String::as_str).collect();
        targets.sort();
        assert_eq!(targets, ["/data", "/scratch", "/var/lib/db"]);
        assert!(volumes.keys().all(|name| name.len() == 64));
        request.volumes = Some([("relative".to_string(), json!({}))].into());
        assert!(anonymous_volumes(&request, &json!({})).is_err());
    }
}
