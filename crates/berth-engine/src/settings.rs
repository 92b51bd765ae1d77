//! The create request's host settings turned into the runtime spec's parts, each checked
//! the way Docker checks it: devices, device cgroup rules, ulimits, sysctls, groups,
//! namespaces shared with the host and the CPU and memory limits. Every function here
//! runs at create, so that a request the engine cannot honour makes no container, and
//! again when the spec is written.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use serde_json::{Value, json};

use crate::model::{CreateRequest, DeviceMapping, HostConfig};
use crate::{Error, Result};

/// Checks every setting of `request` that the spec is made from.
pub(crate) fn check(request: &CreateRequest) -> Result<()> {
    let host = &request.host_config;
    devices(host)?;
    rlimits(host)?;
    sysctls(host)?;
    namespaces(host, None)?;
    cpu(host)?;
    memory(host)?;
    oom_score_adj(host)?;
    stop_signal(request)?;
    restart_policy(host)?;
    for endpoint in request
        .networking_config
        .iter()
        .filter_map(|n| n.endpoints_config.as_ref())
        .flat_map(|e| e.values())
    {
        endpoint.mac()?;
    }
    crate::spec::check_security_options(host)
}

/// `--restart`: one of Docker's policies, a retry count only with `on-failure`.
fn restart_policy(host: &HostConfig) -> Result<()> {
    let policy = &host.restart_policy;
    match policy.name.as_str() {
        "" | "no" | "always" | "unless-stopped" if policy.maximum_retry_count > 0 => {
            Err(invalid(format!(
                "invalid restart policy: maximum retry count can only be used with 'on-failure' (--restart {})",
                policy.name
            )))
        }
        "" | "no" | "always" | "unless-stopped" | "on-failure" => Ok(()),
        other => Err(invalid(format!(
            "invalid restart policy: unknown policy '{other}'"
        ))),
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::Invalid(message.into())
}

/// The device nodes to make (`linux.devices`) and the cgroup rules that let the container
/// use them: every host device for `--privileged`, then `--device`, then
/// `--device-cgroup-rule`.
pub(crate) fn devices(host: &HostConfig) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut nodes = Vec::new();
    let mut rules = Vec::new();
    if host.privileged {
        for path in host_devices(std::path::Path::new("/dev")) {
            let mapping = DeviceMapping {
                path_on_host: path.display().to_string(),
                ..Default::default()
            };
            // A node gone since the walk is skipped, as Docker skips it.
            if let Ok((node, _)) = device(&mapping) {
                nodes.push(node);
            }
        }
    }
    for mapping in host.devices.iter().flatten() {
        let (node, rule) = device(mapping)?;
        nodes.push(node);
        rules.push(rule);
    }
    for rule in host.device_cgroup_rules.iter().flatten() {
        rules.push(cgroup_rule(rule)?);
    }
    Ok((nodes, rules))
}

/// One `--device`: the host node's type, numbers, mode and owner, made at the path asked.
fn device(mapping: &DeviceMapping) -> Result<(Value, Value)> {
    let host_path = mapping.path_on_host.as_str();
    let metadata = std::fs::metadata(host_path).map_err(|e| {
        invalid(format!(
            "error gathering device information while adding custom device {host_path:?}: {e}"
        ))
    })?;
    let file_type = metadata.file_type();
    let kind = if std::os::unix::fs::FileTypeExt::is_char_device(&file_type) {
        "c"
    } else if std::os::unix::fs::FileTypeExt::is_block_device(&file_type) {
        "b"
    } else {
        return Err(invalid(format!(
            "--device {host_path}: not a device node (berth does not support directories of devices)"
        )));
    };
    let access = match mapping.cgroup_permissions.as_str() {
        "" => "rwm",
        given if given.chars().all(|c| "rwm".contains(c)) => given,
        given => {
            return Err(invalid(format!(
                "invalid device mode {given:?} for --device {host_path}: only r, w and m"
            )));
        }
    };
    let target = match mapping.path_in_container.as_str() {
        "" => host_path,
        path if path.starts_with('/') => path,
        path => {
            return Err(invalid(format!(
                "--device {host_path}:{path}: the path in the container must be absolute"
            )));
        }
    };
    let (major, minor) = (
        nix::sys::stat::major(metadata.rdev()),
        nix::sys::stat::minor(metadata.rdev()),
    );
    let node = json!({
        "path": target, "type": kind, "major": major, "minor": minor,
        "fileMode": metadata.permissions().mode() & 0o7777,
        "uid": metadata.uid(), "gid": metadata.gid(),
    });
    let rule =
        json!({"allow": true, "type": kind, "major": major, "minor": minor, "access": access});
    Ok((node, rule))
}

/// The host's device nodes under `dir`, as a privileged container gets them: not those
/// of the directories the container has its own of, nor the console and ptmx, which the
/// runtime makes the container's own.
fn host_devices(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    const OWN: [&str; 9] = [
        "pts",
        "shm",
        "fd",
        "mqueue",
        ".lxc",
        ".lxd-mounts",
        ".udev",
        "console",
        "ptmx",
    ];
    let entries = std::fs::read_dir(dir).into_iter().flatten().flatten();
    let mut found = Vec::new();
    for entry in entries {
        if OWN.contains(&entry.file_name().to_string_lossy().as_ref()) {
            continue;
        }
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => found.extend(host_devices(&entry.path())),
            Ok(kind)
                if std::os::unix::fs::FileTypeExt::is_char_device(&kind)
                    || std::os::unix::fs::FileTypeExt::is_block_device(&kind) =>
            {
                found.push(entry.path());
            }
            _ => {}
        }
    }
    found
}

/// `TYPE MAJOR:MINOR ACCESS` (`c 1:3 rwm`, `b 8:* r`, `a *:* rwm`) as a cgroup rule.
fn cgroup_rule(text: &str) -> Result<Value> {
    let bad = || {
        invalid(format!(
            "invalid --device-cgroup-rule {text:?}: want TYPE MAJOR:MINOR ACCESS"
        ))
    };
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [kind, numbers, access] = parts[..] else {
        return Err(bad());
    };
    let (major, minor) = numbers.split_once(':').ok_or_else(bad)?;
    let number = |n: &str| -> Result<Value> {
        match n {
            "*" => Ok(Value::Null),
            digits => digits.parse::<i64>().map(Value::from).map_err(|_| bad()),
        }
    };
    if !matches!(kind, "a" | "b" | "c")
        || access.is_empty()
        || !access.chars().all(|c| "rwm".contains(c))
    {
        return Err(bad());
    }
    let mut rule = json!({"allow": true, "type": kind, "access": access});
    for (key, value) in [("major", number(major)?), ("minor", number(minor)?)] {
        if !value.is_null() {
            rule[key] = value;
        }
    }
    Ok(rule)
}

/// The resources `--ulimit` knows, by Docker's names.
const ULIMITS: [&str; 16] = [
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// `process.rlimits` from `--ulimit`; a negative limit is unlimited.
pub(crate) fn rlimits(host: &HostConfig) -> Result<Vec<Value>> {
    let unlimited = |n: i64| u64::try_from(n).unwrap_or(u64::MAX);
    host.ulimits
        .iter()
        .flatten()
        .map(|limit| {
            if !ULIMITS.contains(&limit.name.as_str()) {
                return Err(invalid(format!("invalid ulimit type: {}", limit.name)));
            }
            let (soft, hard) = (unlimited(limit.soft), unlimited(limit.hard));
            if soft > hard {
                return Err(invalid(format!(
                    "ulimit soft limit must be less than or equal to hard limit: {} > {}",
                    limit.soft, limit.hard
                )));
            }
            Ok(json!({"type": format!("RLIMIT_{}", limit.name.to_ascii_uppercase()), "soft": soft, "hard": hard}))
        })
        .collect()
}

/// The System V IPC sysctls, which the container's IPC namespace holds.
const IPC_SYSCTLS: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// `linux.sysctl` from `--sysctl`: only those of a namespace the container has its own
/// of, as Docker allows; others would change the host.
pub(crate) fn sysctls(host: &HostConfig) -> Result<Option<Value>> {
    let Some(sysctls) = host.sysctls.as_ref().filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    for key in sysctls.keys() {
        let ipc = IPC_SYSCTLS.contains(&key.as_str()) || key.starts_with("fs.mqueue.");
        let allowed = if ipc {
            host.ipc_mode != "host"
        } else if key.starts_with("net.") {
            host.network_mode != "host" && !host.network_mode.starts_with("container:")
        } else {
            false
        };
        if !allowed {
            return Err(invalid(format!(
                "sysctl {key:?} is not allowed: it is not namespaced or the container shares that namespace with the host"
            )));
        }
    }
    Ok(Some(json!(sysctls)))
}

/// `process.user.additionalGids` from `--group-add`, by number or by name in the
/// container's /etc/group (its root at `rootfs`).
pub(crate) fn additional_gids(host: &HostConfig, rootfs: &std::path::Path) -> Result<Vec<u32>> {
    host.group_add
        .iter()
        .flatten()
        .map(|group| crate::accounts::group(group, rootfs))
        .collect()
}

/// The namespaces the container gets of its own, joining `netns` for its network (the
/// host's when None). `--ipc`, `--pid`, `--uts` and `--cgroupns` `host` leave theirs out.
pub(crate) fn namespaces(host: &HostConfig, netns: Option<&std::path::Path>) -> Result<Vec<Value>> {
    let shared = |flag: &str, mode: &str, private: &[&str]| -> Result<bool> {
        match mode {
            "host" => Ok(true),
            m if m.is_empty() || private.contains(&m) => Ok(false),
            other => Err(invalid(format!("berth does not support {flag} {other}"))),
        }
    };
    let mut namespaces = vec![json!({"type": "mount"})];
    for (kind, flag, mode, private) in [
        ("pid", "--pid", host.pid_mode.as_str(), &[][..]),
        (
            "ipc",
            "--ipc",
            host.ipc_mode.as_str(),
            &["private", "shareable"][..],
        ),
        ("uts", "--uts", host.uts_mode.as_str(), &[][..]),
        (
            "cgroup",
            "--cgroupns",
            host.cgroupns_mode.as_str(),
            &["private"][..],
        ),
    ] {
        if !shared(flag, mode, private)? {
            namespaces.push(json!({"type": kind}));
        }
    }
    if let Some(path) = netns {
        namespaces.push(json!({"type": "network", "path": path}));
    }
    Ok(namespaces)
}

/// The limits of `linux.resources` (memory, cpu, pids) as `host` sets them; an empty
/// object when it sets none.
pub(crate) fn limits(host: &HostConfig) -> Result<Value> {
    let mut resources = json!({});
    if let Some(memory) = memory(host)? {
        resources["memory"] = memory;
    }
    if let Some(cpu) = cpu(host)? {
        resources["cpu"] = cpu;
    }
    if let Some(limit) = host.pids_limit.filter(|l| *l > 0) {
        resources["pids"] = json!({"limit": limit});
    }
    Ok(resources)
}

/// `linux.resources.cpu` from `--cpus`, `--cpu-shares`, `--cpu-period`, `--cpu-quota` and
/// `--cpuset-*`; None when none is set.
pub(crate) fn cpu(host: &HostConfig) -> Result<Option<Value>> {
    if host.nano_cpus > 0 && host.cpu_period > 0 {
        return Err(invalid(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        ));
    }
    if host.nano_cpus > 0 && host.cpu_quota > 0 {
        return Err(invalid(
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
        ));
    }
    if host.cpu_period != 0 && !(1000..=1_000_000).contains(&host.cpu_period) {
        return Err(invalid(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ));
    }
    if host.cpu_quota != 0 && host.cpu_quota < 1000 {
        return Err(invalid(
            "CPU cfs quota can not be less than 1ms (i.e. 1000)",
        ));
    }
    let mut cpu = serde_json::Map::new();
    if host.nano_cpus > 0 {
        cpu.insert("period".into(), json!(100_000));
        cpu.insert("quota".into(), json!(host.nano_cpus / 10_000));
    }
    for (key, value) in [
        ("shares", host.cpu_shares),
        ("period", host.cpu_period),
        ("quota", host.cpu_quota),
    ] {
        if value > 0 {
            cpu.insert(key.into(), json!(value));
        }
    }
    for (key, value) in [("cpus", &host.cpuset_cpus), ("mems", &host.cpuset_mems)] {
        if !value.is_empty() {
            cpu.insert(key.into(), json!(value));
        }
    }
    Ok((!cpu.is_empty()).then_some(Value::Object(cpu)))
}

/// `linux.resources.memory` from `--memory`, `--memory-reservation`, `--memory-swap`,
/// `--memory-swappiness` and `--oom-kill-disable`; None when none is set.
pub(crate) fn memory(host: &HostConfig) -> Result<Option<Value>> {
    if host.memory_swap != 0 && host.memory <= 0 {
        return Err(invalid(
            "You should always set the Memory limit when using Memoryswap limit",
        ));
    }
    if host.memory_swap > 0 && host.memory_swap < host.memory {
        return Err(invalid(
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ));
    }
    if host.memory > 0 && host.memory_reservation > host.memory {
        return Err(invalid(
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        ));
    }
    let mut memory = serde_json::Map::new();
    for (key, value) in [
        ("limit", host.memory),
        ("reservation", host.memory_reservation),
    ] {
        if value > 0 {
            memory.insert(key.into(), json!(value));
        }
    }
    if host.memory_swap != 0 {
        memory.insert("swap".into(), json!(host.memory_swap));
    }
    match host.memory_swappiness {
        None | Some(-1) => {}
        Some(value @ 0..=100) => {
            memory.insert("swappiness".into(), json!(value));
        }
        Some(value) => {
            return Err(invalid(format!(
                "Invalid value: {value}, valid memory swappiness range is 0-100"
            )));
        }
    }
    if host.oom_kill_disable {
        memory.insert("disableOOMKiller".into(), json!(true));
    }
    Ok((!memory.is_empty()).then_some(Value::Object(memory)))
}

/// `process.oomScoreAdj` from `--oom-score-adj`, in the kernel's range.
pub(crate) fn oom_score_adj(host: &HostConfig) -> Result<i64> {
    if !(-1000..=1000).contains(&host.oom_score_adj) {
        return Err(invalid(format!(
            "Invalid value {}, range for oom score adj is [-1000, 1000]",
            host.oom_score_adj
        )));
    }
    Ok(host.oom_score_adj)
}

/// The signal `stop` sends first: `--stop-signal` by name (with or without `SIG`) or
/// number, SIGTERM when none is set.
pub(crate) fn stop_signal(request: &CreateRequest) -> Result<nix::sys::signal::Signal> {
    match request.stop_signal.as_str() {
        "" => Ok(nix::sys::signal::Signal::SIGTERM),
        name => parse_signal(name).ok_or_else(|| invalid(format!("Invalid signal: {name}"))),
    }
}

/// A signal by name (`TERM`, `SIGTERM`, any case) or number.
pub fn parse_signal(name: &str) -> Option<nix::sys::signal::Signal> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse().ok().or_else(|| {
        name.parse::<i32>()
            .ok()
            .and_then(|n| nix::sys::signal::Signal::try_from(n).ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Ulimit;

    #[test]
    fn cgroup_rules_parse_as_docker_writes_them() {
        assert_eq!(
            cgroup_rule("c 1:3 rwm").unwrap(),
            json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"})
        );
        assert_eq!(
            cgroup_rule("b 8:* r").unwrap(),
            json!({"allow": true, "type": "b", "major": 8, "access": "r"})
        );
        for bad in ["c 1:3", "x 1:3 rwm", "c 1-3 rwm", "c 1:3 rwx"] {
            assert!(cgroup_rule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ulimits_become_rlimits_and_bad_ones_are_refused() {
        let host = |name: &str, soft, hard| HostConfig {
            ulimits: Some(vec![Ulimit {
                name: name.into(),
                soft,
                hard,
            }]),
            ..Default::default()
        };
        assert_eq!(
            rlimits(&host("nofile", 100, 200)).unwrap(),
            [json!({"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200})]
        );
        assert!(rlimits(&host("nofiles", 1, 1)).is_err());
        assert!(rlimits(&host("nofile", 2, 1)).is_err());
    }

    #[test]
    fn only_namespaced_sysctls_are_allowed() {
        let host = |key: &str, network: &str| HostConfig {
            sysctls: Some([(key.to_string(), "1".to_string())].into()),
            network_mode: network.into(),
            ..Default::default()
        };
        assert!(sysctls(&host("net.ipv4.ip_forward", "")).is_ok());
        assert!(sysctls(&host("kernel.shmmax", "")).is_ok());
        assert!(sysctls(&host("net.ipv4.ip_forward", "host")).is_err());
        assert!(sysctls(&host("vm.swappiness", "")).is_err());
    }

    #[test]
    fn signals_parse_by_name_or_number() {
        use nix::sys::signal::Signal;
        assert_eq!(parse_signal("usr1"), Some(Signal::SIGUSR1));
        assert_eq!(parse_signal("SIGINT"), Some(Signal::SIGINT));
        assert_eq!(parse_signal("9"), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("NOPE"), None);
    }
}
