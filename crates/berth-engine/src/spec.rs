//! The OCI runtime spec of a container, made the way Docker makes it: Docker's default
//! capabilities, mounts, masked and read-only paths, device rules and seccomp profile,
//! with the create request's limits and settings applied.

use std::path::Path;

use serde_json::{Value, json};

use crate::model::Container;
use crate::{Error, Result, settings};

/// The size of /dev/shm when `--shm-size` sets none: Docker's 64 MiB.
const DEFAULT_SHM_SIZE: i64 = 64 << 20;

/// Docker's default capability set.
const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

const MASKED_PATHS: [&str; 12] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Docker's default seccomp profile, built into the binary so that every container is
/// confined whatever the host has installed: the profile as Debian's
/// golang-github-containers-common 0.50 ships it (/usr/share/containers/seccomp.json,
/// Apache-2.0, the same rules as moby's profiles/seccomp/default.json).
const SECCOMP_PROFILE: &str = include_str!("default-seccomp.json");

/// The capability set after `--cap-add` / `--cap-drop` (names with or without `CAP_`).
fn capabilities(container: &Container) -> Vec<String> {
    let host = &container.request.host_config;
    if host.privileged {
        return berth_runtime::capability_names()
            .iter()
            .map(|c| c.to_string())
            .collect();
    }
    let normal = |c: &String| {
        let upper = c.to_ascii_uppercase();
        if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        }
    };
    let added: Vec<String> = host.cap_add.iter().flatten().map(normal).collect();
    let dropped: Vec<String> = host.cap_drop.iter().flatten().map(normal).collect();
    // Docker's order: `ALL` in either list first, then single drops, then single adds.
    let mut caps: Vec<String> = if added.iter().any(|c| c == "CAP_ALL") {
        berth_runtime::capability_names()
            .iter()
            .map(|c| c.to_string())
            .collect()
    } else if dropped.iter().any(|c| c == "CAP_ALL") {
        Vec::new()
    } else {
        DEFAULT_CAPS.iter().map(|c| c.to_string()).collect()
    };
    caps.retain(|c| !dropped.contains(c));
    caps.extend(added.into_iter().filter(|c| c != "CAP_ALL"));
    caps.sort();
    caps.dedup();
    caps
}

/// What `--security-opt` asked for.
#[derive(Default)]
struct SecurityOptions<'a> {
    /// None: Docker's default profile; Some(None): unconfined; Some(Some(json)): that one.
    seccomp: Option<Option<&'a str>>,
    no_new_privileges: bool,
}

impl<'a> SecurityOptions<'a> {
    fn parse(options: impl Iterator<Item = &'a String>) -> Result<Self> {
        let mut parsed = Self::default();
        for option in options {
            let (key, value) = option
                .split_once(['=', ':'])
                .unwrap_or((option.as_str(), ""));
            match (key, value) {
                ("seccomp", "unconfined") => parsed.seccomp = Some(None),
                ("seccomp", profile) if !profile.is_empty() => parsed.seccomp = Some(Some(profile)),
                ("no-new-privileges", "" | "true") => parsed.no_new_privileges = true,
                ("no-new-privileges", "false") => parsed.no_new_privileges = false,
                // AppArmor and SELinux are not this host's: accepted as Docker accepts them
                // where they are disabled.
                ("apparmor" | "label", _) => {}
                _ => {
                    return Err(Error::Invalid(format!(
                        "Invalid --security-opt: {option:?}"
                    )));
                }
            }
        }
        Ok(parsed)
    }

    /// The profile to load: none for privileged or unconfined containers.
    fn seccomp_profile(&self, privileged: bool) -> Option<&'a str> {
        match self.seccomp {
            // Privileged containers run unconfined whatever was asked, as with Docker.
            _ if privileged => None,
            Some(choice) => choice,
            None => Some(SECCOMP_PROFILE),
        }
    }
}

/// Checks `--security-opt` at create, so that an option start would refuse makes no
/// container.
pub(crate) fn check_security_options(host: &crate::model::HostConfig) -> Result<()> {
    SecurityOptions::parse(host.security_opt.iter().flatten()).map(drop)
}

/// The spec for `container`, whose root filesystem is mounted at `rootfs`, whose
/// /etc/hosts, /etc/hostname and /etc/resolv.conf are the files in `etc_dir`, and which
/// joins the network namespace at `netns` (the host's when None).
pub(crate) fn runtime_spec(
    container: &Container,
    rootfs: &Path,
    etc_dir: &Path,
    cgroup_parent: &str,
    netns: Option<&Path>,
) -> Result<Value> {
    let host = &container.request.host_config;
    let caps = capabilities(container);
    let (uid, gid) = crate::accounts::user(&container.user, rootfs)?;
    let hostname = if container.request.hostname.is_empty() {
        container.id[..12].to_string()
    } else {
        container.request.hostname.clone()
    };
    let mut args = vec![container.path.clone()];
    args.extend(container.args.iter().cloned());
    let shm_size = if host.shm_size > 0 {
        host.shm_size
    } else {
        DEFAULT_SHM_SIZE
    };
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", if host.privileged { "rw" } else { "ro" }]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        if host.ipc_mode == "host" {
            json!({"destination": "/dev/shm", "type": "bind", "source": "/dev/shm", "options": ["rbind", "rprivate"]})
        } else {
            json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={shm_size}")]})
        },
    ];
    for file in ["hosts", "hostname", "resolv.conf"] {
        mounts.push(json!({
            "destination": format!("/etc/{file}"), "type": "bind",
            "source": etc_dir.join(file), "options": ["rbind", "rprivate"],
        }));
    }
    let (devices, device_rules) = settings::devices(host)?;
    let mut device_cgroup = vec![json!({"allow": host.privileged, "access": "rwm"})];
    device_cgroup.extend(device_rules);
    let mut resources = settings::limits(host)?;
    resources["devices"] = json!(device_cgroup);
    let mut linux = json!({
        "namespaces": settings::namespaces(host, netns)?,
        "resources": resources,
        "cgroupsPath": format!("/{cgroup_parent}/{}", container.id),
        "devices": devices,
    });
    if let Some(sysctls) = settings::sysctls(host)? {
        linux["sysctl"] = sysctls;
    }
    let security = SecurityOptions::parse(host.security_opt.iter().flatten())?;
    if !host.privileged {
        linux["maskedPaths"] = host
            .masked_paths
            .as_ref()
            .map_or(json!(MASKED_PATHS), |p| json!(p));
        linux["readonlyPaths"] = host
            .readonly_paths
            .as_ref()
            .map_or(json!(READONLY_PATHS), |p| json!(p));
    }
    if let Some(profile) = security.seccomp_profile(host.privileged) {
        let seccomp = berth_runtime::from_docker_profile(profile, &caps)?;
        linux["seccomp"] = serde_json::to_value(seccomp).unwrap_or_default();
    }
    let mut spec = json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": container.request.tty,
            "user": {"uid": uid, "gid": gid, "additionalGids": settings::additional_gids(host, rootfs)?},
            "args": args,
            "env": container.env,
            "cwd": if container.working_dir.is_empty() { "/" } else { container.working_dir.as_str() },
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": security.no_new_privileges,
            "oomScoreAdj": settings::oom_score_adj(host)?,
            "rlimits": settings::rlimits(host)?,
        },
        "root": {"path": rootfs, "readonly": host.readonly_rootfs},
        "mounts": mounts,
        "linux": linux,
        "annotations": host.annotations.clone().unwrap_or_default(),
    });
    // With the host's UTS namespace the host's names stay, as with Docker.
    if host.uts_mode != "host" {
        spec["hostname"] = json!(hostname);
        if !container.request.domainname.is_empty() {
            spec["domainname"] = json!(container.request.domainname);
        }
    }
    Ok(spec)
}

/// Where `--init` looks for its init when the daemon names none: Docker's name for it on
/// the PATH, then Debian's static tini (package `tini`).
const INIT_CANDIDATES: [&str; 2] = ["docker-init", "/usr/bin/tini-static"];

/// Makes the spec's process run under an init, as `docker run --init` does: the static
/// init binary bound read-only at /sbin/docker-init runs the command as its child.
pub(crate) fn add_init(spec: &mut Value, init_path: Option<&Path>) -> Result<()> {
    let found = match init_path {
        Some(path) => Some(path.to_path_buf()),
        None => INIT_CANDIDATES
            .iter()
            .find_map(|name| find_executable(name)),
    };
    let Some(init) = found.filter(|p| p.is_file()) else {
        return Err(Error::Invalid(
            "--init: no init binary found (docker-init on the PATH or /usr/bin/tini-static from Debian's tini package; or start the daemon with --init-path)".into(),
        ));
    };
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        mounts.push(json!({
            "destination": "/sbin/docker-init", "type": "bind",
            "source": init, "options": ["bind", "ro"],
        }));
    }
    if let Some(args) = spec["process"]["args"].as_array_mut() {
        args.splice(0..0, [json!("/sbin/docker-init"), json!("--")]);
    }
    Ok(())
}

/// `name` itself when it is a path, else the first match on the PATH.
fn find_executable(name: &str) -> Option<std::path::PathBuf> {
    if name.contains('/') {
        return Some(std::path::PathBuf::from(name));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
