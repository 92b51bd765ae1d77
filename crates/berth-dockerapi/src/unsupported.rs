//! What `POST /containers/create` may ask for: every field of Docker's create body
//! (Config, HostConfig, NetworkingConfig) is either honoured by the engine or refused
//! here, by the name the user knows it by, when it is set. The docker CLI sends most
//! fields on every `run` with zero values, so a zero, empty or default value is unset and
//! accepted. A field missing from these tables is refused when set too: a setting the
//! engine does not know is never dropped quietly.

use serde_json::Value;

/// How the engine treats one field.
enum Rule {
    /// Honoured, whatever the value (the engine checks the value itself).
    Honoured,
    /// Not honoured: refused unless unset.
    Refused,
    /// Honoured for the values the function accepts; other set values are refused.
    Only(fn(&Value) -> bool),
    /// An object whose fields follow their own table.
    Object(&'static [Field]),
    /// An array of objects (or a map to objects), each following the table.
    Each(&'static [Field]),
}

/// One field of the create body: its JSON name, the `docker run` flag that sets it (empty
/// when none does), and its rule.
struct Field {
    name: &'static str,
    flag: &'static str,
    rule: Rule,
}

const fn field(name: &'static str, flag: &'static str, rule: Rule) -> Field {
    Field { name, flag, rule }
}

use Rule::{Each, Honoured, Object, Only, Refused};

/// The top level of the body: the container's Config with HostConfig and
/// NetworkingConfig beside it.
const CONFIG: &[Field] = &[
    field("Hostname", "--hostname", Honoured),
    field("Domainname", "--domainname", Honoured),
    field("User", "--user", Honoured),
    // Which streams the client attaches to: its attach request decides.
    field("AttachStdin", "--attach", Honoured),
    field("AttachStdout", "--attach", Honoured),
    field("AttachStderr", "--attach", Honoured),
    field("ExposedPorts", "--expose", Honoured),
    field("Tty", "--tty", Honoured),
    field("OpenStdin", "--interactive", Honoured),
    field("StdinOnce", "--interactive", Honoured),
    field("Env", "--env", Honoured),
    field("Cmd", "COMMAND", Honoured),
    field("Healthcheck", "--health-*", Object(HEALTHCHECK)),
    field("ArgsEscaped", "", Refused),
    field("Image", "IMAGE", Honoured),
    field("Volumes", "--volume", Honoured),
    field("WorkingDir", "--workdir", Honoured),
    field("Entrypoint", "--entrypoint", Honoured),
    field("NetworkDisabled", "", Refused),
    field("MacAddress", "--mac-address", Refused),
    field("OnBuild", "", Refused),
    field("Labels", "--label", Honoured),
    field("StopSignal", "--stop-signal", Honoured),
    field("StopTimeout", "--stop-timeout", Honoured),
    field("Shell", "", Refused),
    field("HostConfig", "", Object(HOST_CONFIG)),
    field("NetworkingConfig", "", Object(NETWORKING_CONFIG)),
];

const HEALTHCHECK: &[Field] = &[
    field("Test", "--health-cmd", Honoured),
    field("Interval", "--health-interval", Honoured),
    field("Timeout", "--health-timeout", Honoured),
    field("Retries", "--health-retries", Honoured),
    field("StartPeriod", "--health-start-period", Honoured),
    field("StartInterval", "--health-start-interval", Refused),
];

const HOST_CONFIG: &[Field] = &[
    field("Binds", "--volume", Honoured),
    // The CLI writes the file itself.
    field("ContainerIDFile", "--cidfile", Honoured),
    field("LogConfig", "--log-driver", Honoured),
    field("NetworkMode", "--network", Honoured),
    field("PortBindings", "--publish", Honoured),
    field("RestartPolicy", "--restart", Honoured),
    field("AutoRemove", "--rm", Honoured),
    field("VolumeDriver", "--volume-driver", Only(|v| v == "local")),
    field("VolumesFrom", "--volumes-from", Refused),
    field("ConsoleSize", "", Honoured),
    field("Annotations", "--annotation", Honoured),
    field("CapAdd", "--cap-add", Honoured),
    field("CapDrop", "--cap-drop", Honoured),
    field("CgroupnsMode", "--cgroupns", Honoured),
    field("Dns", "--dns", Honoured),
    field("DnsOptions", "--dns-option", Honoured),
    field("DnsSearch", "--dns-search", Honoured),
    field("ExtraHosts", "--add-host", Honoured),
    field("GroupAdd", "--group-add", Honoured),
    field(
        "IpcMode",
        "--ipc",
        Only(|v| matches!(v.as_str(), Some("private" | "shareable" | "host"))),
    ),
    field("Cgroup", "--cgroup", Refused),
    field("Links", "--link", Refused),
    field("OomScoreAdj", "--oom-score-adj", Honoured),
    field("PidMode", "--pid", Only(|v| v == "host")),
    field("Privileged", "--privileged", Honoured),
    field("PublishAllPorts", "--publish-all", Honoured),
    field("ReadonlyRootfs", "--read-only", Honoured),
    field("SecurityOpt", "--security-opt", Honoured),
    field("StorageOpt", "--storage-opt", Refused),
    field("Tmpfs", "--tmpfs", Honoured),
    field("UTSMode", "--uts", Only(|v| v == "host")),
    // Without user-namespace remapping every container is in the host's.
    field("UsernsMode", "--userns", Only(|v| v == "host")),
    field("ShmSize", "--shm-size", Honoured),
    field("Sysctls", "--sysctl", Honoured),
    field("Runtime", "--runtime", Refused),
    field("Isolation", "--isolation", Only(|v| v == "default")),
    field("CpuShares", "--cpu-shares", Honoured),
    field("Memory", "--memory", Honoured),
    field("NanoCpus", "--cpus", Honoured),
    field("CgroupParent", "--cgroup-parent", Refused),
    field("BlkioWeight", "--blkio-weight", Refused),
    field("BlkioWeightDevice", "--blkio-weight-device", Refused),
    field("BlkioDeviceReadBps", "--device-read-bps", Refused),
    field("BlkioDeviceWriteBps", "--device-write-bps", Refused),
    field("BlkioDeviceReadIOps", "--device-read-iops", Refused),
    field("BlkioDeviceWriteIOps", "--device-write-iops", Refused),
    field("CpuPeriod", "--cpu-period", Honoured),
    field("CpuQuota", "--cpu-quota", Honoured),
    field("CpuRealtimePeriod", "--cpu-rt-period", Refused),
    field("CpuRealtimeRuntime", "--cpu-rt-runtime", Refused),
    field("CpusetCpus", "--cpuset-cpus", Honoured),
    field("CpusetMems", "--cpuset-mems", Honoured),
    field("Devices", "--device", Honoured),
    field("DeviceCgroupRules", "--device-cgroup-rule", Honoured),
    field("DeviceRequests", "--gpus", Refused),
    field("KernelMemory", "--kernel-memory", Refused),
    field("KernelMemoryTCP", "", Refused),
    field("MemoryReservation", "--memory-reservation", Honoured),
    field("MemorySwap", "--memory-swap", Honoured),
    field("MemorySwappiness", "--memory-swappiness", Honoured),
    field("OomKillDisable", "--oom-kill-disable", Honoured),
    field("Init", "--init", Honoured),
    field("PidsLimit", "--pids-limit", Honoured),
    field("Ulimits", "--ulimit", Honoured),
    field("CpuCount", "--cpu-count", Refused),
    field("CpuPercent", "--cpu-percent", Refused),
    field("IOMaximumIOps", "--io-maxiops", Refused),
    field("IOMaximumBandwidth", "--io-maxbandwidth", Refused),
    field("Mounts", "--mount", Each(MOUNT)),
    field(
        "MaskedPaths",
        "--security-opt systempaths=unconfined",
        Honoured,
    ),
    field(
        "ReadonlyPaths",
        "--security-opt systempaths=unconfined",
        Honoured,
    ),
];

const MOUNT: &[Field] = &[
    field("Type", "--mount type", Honoured),
    field("Source", "--mount source", Honoured),
    field("Target", "--mount target", Honoured),
    field("ReadOnly", "--mount readonly", Honoured),
    field(
        "Consistency",
        "--mount consistency",
        Only(|v| v == "default"),
    ),
    field("BindOptions", "--mount bind-*", Object(BIND_OPTIONS)),
    field("VolumeOptions", "--mount volume-*", Object(VOLUME_OPTIONS)),
    field("ImageOptions", "--mount image-*", Refused),
    field("TmpfsOptions", "--mount tmpfs-*", Object(TMPFS)),
    field("ClusterOptions", "", Refused),
];

/// Binds are `rprivate` and recursive always.
const BIND_OPTIONS: &[Field] = &[
    field(
        "Propagation",
        "--mount bind-propagation",
        Only(|v| matches!(v.as_str(), Some("private" | "rprivate"))),
    ),
    field("NonRecursive", "--mount bind-recursive=disabled", Refused),
    field("CreateMountpoint", "--mount bind-create-src", Refused),
    field(
        "ReadOnlyNonRecursive",
        "--mount bind-recursive=writable",
        Refused,
    ),
    field(
        "ReadOnlyForceRecursive",
        "--mount bind-recursive=readonly",
        Refused,
    ),
];

const VOLUME_OPTIONS: &[Field] = &[
    field("NoCopy", "--mount volume-nocopy", Honoured),
    field("Labels", "--mount volume-label", Refused),
    field("DriverConfig", "--mount volume-driver", Refused),
    field("Subpath", "--mount volume-subpath", Refused),
];

const TMPFS: &[Field] = &[
    field("SizeBytes", "--mount tmpfs-size", Honoured),
    field("Mode", "--mount tmpfs-mode", Honoured),
    field("Options", "--mount tmpfs-option", Refused),
];

const NETWORKING_CONFIG: &[Field] = &[field("EndpointsConfig", "--network", Each(ENDPOINT))];

/// One network's endpoint settings. The addresses and ids beside the settings are
/// inspect's output, which a client may send back empty.
const ENDPOINT: &[Field] = &[
    field("IPAMConfig", "--ip", Object(IPAM)),
    field("Links", "--link", Refused),
    field("Aliases", "--network-alias", Honoured),
    field("MacAddress", "--mac-address", Honoured),
    field("DriverOpts", "--network driver-opt", Refused),
    field("GwPriority", "--network gw-priority", Refused),
    field("NetworkID", "", Refused),
    field("EndpointID", "", Refused),
    field("Gateway", "", Refused),
    field("IPAddress", "", Refused),
    field("IPPrefixLen", "", Refused),
    field("IPv6Gateway", "", Refused),
    field("GlobalIPv6Address", "", Refused),
    field("GlobalIPv6PrefixLen", "", Refused),
    field("DNSNames", "", Refused),
];

const IPAM: &[Field] = &[
    field("IPv4Address", "--ip", Honoured),
    field("IPv6Address", "--ip6", Refused),
    field("LinkLocalIPs", "--link-local-ip", Refused),
];

/// The body of `POST /containers/{id}/update` (`docker update`): the resources part of
/// HostConfig and the restart policy.
const UPDATE: &[Field] = &[
    field("Memory", "--memory", Honoured),
    field("MemorySwap", "--memory-swap", Honoured),
    field("MemoryReservation", "--memory-reservation", Honoured),
    field("NanoCpus", "--cpus", Honoured),
    field("CpuShares", "--cpu-shares", Honoured),
    field("CpuPeriod", "--cpu-period", Honoured),
    field("CpuQuota", "--cpu-quota", Honoured),
    field("CpusetCpus", "--cpuset-cpus", Honoured),
    field("CpusetMems", "--cpuset-mems", Honoured),
    field("PidsLimit", "--pids-limit", Honoured),
    field("RestartPolicy", "--restart", Honoured),
    field("BlkioWeight", "--blkio-weight", Refused),
    field("CpuRealtimePeriod", "--cpu-rt-period", Refused),
    field("CpuRealtimeRuntime", "--cpu-rt-runtime", Refused),
    field("KernelMemory", "--kernel-memory", Refused),
];

/// Whether `value` is what the CLI sends for a setting left alone: null, false, zero,
/// empty, or a list or object of such (`ConsoleSize: [0, 0]`). An object holding an
/// object is a map with keys that say something (`Volumes: {"/data": {}}`): set.
pub(crate) fn unset(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.iter().all(unset),
        Value::Object(fields) => fields.values().all(|v| !v.is_object() && unset(v)),
    }
}

/// The message for a refused field at `path`.
fn refusal(path: &str, field: Option<&Field>, value: &Value) -> String {
    match field.map(|f| f.flag).filter(|f| !f.is_empty()) {
        Some(flag) => match (value.as_str(), field.map(|f| &f.rule)) {
            (Some(text), Some(Only(_))) => {
                format!("berth does not support {flag} {text} ({path})")
            }
            _ => format!("berth does not support {flag} ({path})"),
        },
        None => format!("berth does not support {path}"),
    }
}

/// Checks the object `body` at `path` against `table`: the first set field that is not
/// honoured, as the message to refuse the request with.
fn check_object(body: &Value, table: &[Field], path: &str) -> Result<(), String> {
    let Some(fields) = body.as_object() else {
        return Ok(());
    };
    for (name, value) in fields {
        let at = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        let field = table.iter().find(|f| f.name == name);
        let honoured = match field.map(|f| &f.rule) {
            Some(Honoured) => true,
            Some(Object(inner)) => {
                check_object(value, inner, &at)?;
                true
            }
            Some(Each(inner)) => {
                check_each(value, inner, &at)?;
                true
            }
            Some(Only(accepts)) => unset(value) || accepts(value),
            Some(Refused) | None => unset(value),
        };
        if !honoured {
            return Err(refusal(&at, field, value));
        }
    }
    Ok(())
}

/// Checks each element of an array, or each value of a map, against `table`.
fn check_each(value: &Value, table: &[Field], path: &str) -> Result<(), String> {
    match value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| check_object(item, table, &format!("{path}[{i}]"))),
        Value::Object(map) => map
            .iter()
            .try_for_each(|(key, item)| check_object(item, table, &format!("{path}[{key}]"))),
        _ => Ok(()),
    }
}

/// Refuses a create body that sets anything the engine does not honour; the message
/// names the setting as `docker run` knows it and where it sits in the body.
pub(crate) fn check_create(body: &Value) -> Result<(), String> {
    check_object(body, CONFIG, "")
}

/// Refuses the EndpointConfig of `docker network connect` when it sets anything the
/// engine does not honour, as create's endpoint settings are.
pub(crate) fn check_endpoint(body: &Value) -> Result<(), String> {
    check_object(body, ENDPOINT, "EndpointConfig")
}

/// Refuses a `docker update` body that sets anything the engine cannot change in place.
pub(crate) fn check_update(body: &Value) -> Result<(), String> {
    check_object(body, UPDATE, "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What docker 28.2's CLI sends for `docker run --rm busybox true`, as captured.
    fn plain_run() -> Value {
        serde_json::from_str(include_str!("plain-run.json")).unwrap()
    }

    #[test]
    fn a_plain_run_sets_nothing_refused() {
        assert_eq!(check_create(&plain_run()), Ok(()));
    }

    #[test]
    fn set_fields_that_are_not_honoured_are_refused_by_flag_and_path() {
        let refused = |pointer: &str, value: Value| {
            let mut body = plain_run();
            let (parent, name) = pointer.rsplit_once('/').unwrap();
            body.pointer_mut(parent).unwrap()[name] = value;
            check_create(&body).unwrap_err()
        };
        assert_eq!(
            refused("/HostConfig/CpuRealtimePeriod", json!(100)),
            "berth does not support --cpu-rt-period (HostConfig.CpuRealtimePeriod)"
        );
        assert_eq!(
            refused("/HostConfig/IpcMode", json!("container:x")),
            "berth does not support --ipc container:x (HostConfig.IpcMode)"
        );
        assert_eq!(
            refused(
                "/NetworkingConfig/EndpointsConfig/default/DriverOpts",
                json!({"com.example": "x"})
            ),
            "berth does not support --network driver-opt (NetworkingConfig.EndpointsConfig[default].DriverOpts)"
        );
        assert_eq!(
            refused("/HostConfig/NoSuchField", json!(true)),
            "berth does not support HostConfig.NoSuchField"
        );
    }

    /// Every field a table refuses, or accepts only some values of: where it sits in a
    /// body (a JSON pointer), where the message says it sits, and its flag.
    fn refusable(
        table: &[Field],
        pointer: &str,
        path: &str,
        out: &mut Vec<(String, String, &'static str)>,
    ) {
        for field in table {
            let (pointer, path) = (
                format!("{pointer}/{}", field.name),
                format!("{path}{}", field.name),
            );
            match &field.rule {
                Honoured => {}
                Refused | Only(_) => out.push((pointer, path, field.flag)),
                Object(inner) => refusable(inner, &pointer, &format!("{path}."), out),
                // Mounts are a list; endpoints a map by network name.
                Each(inner) if field.name == "Mounts" => {
                    refusable(inner, &format!("{pointer}/0"), &format!("{path}[0]."), out)
                }
                Each(inner) => refusable(
                    inner,
                    &format!("{pointer}/default"),
                    &format!("{path}[default]."),
                    out,
                ),
            }
        }
    }

    #[test]
    fn every_field_not_honoured_is_refused_by_its_flag_and_path() {
        let mut fields = Vec::new();
        refusable(CONFIG, "", "", &mut fields);
        assert!(fields.len() > 50, "{}", fields.len());
        for (pointer, path, flag) in fields {
            let mut body = plain_run();
            body["HostConfig"]["Mounts"] = json!([{"Type": "tmpfs", "Target": "/x", "TmpfsOptions": {}, "BindOptions": {}, "VolumeOptions": {}}]);
            body["Healthcheck"] = json!({"Test": ["CMD", "true"]});
            body["NetworkingConfig"]["EndpointsConfig"]["default"]["IPAMConfig"] = json!({});
            let (parent, name) = pointer.rsplit_once('/').unwrap();
            body.pointer_mut(parent).unwrap()[name] = json!("set");
            let message = check_create(&body).unwrap_err();
            assert!(
                message.contains(&format!("({path})")) || message.ends_with(&path),
                "{message}"
            );
            assert!(message.contains(flag), "{message}");
        }
    }

    #[test]
    fn honoured_and_default_values_pass() {
        let mut body = plain_run();
        body["HostConfig"]["IpcMode"] = json!("host");
        body["HostConfig"]["Dns"] = json!(["9.9.9.9"]);
        body["HostConfig"]["UsernsMode"] = json!("host");
        body["HostConfig"]["Mounts"] =
            json!([{"Type": "bind", "Source": "/tmp", "Target": "/x", "ReadOnly": true}]);
        assert_eq!(check_create(&body), Ok(()));
        body["HostConfig"]["Mounts"][0]["BindOptions"] = json!({"Propagation": "shared"});
        assert!(
            check_create(&body)
                .unwrap_err()
                .contains("HostConfig.Mounts[0].BindOptions")
        );
    }

    #[test]
    fn a_second_network_is_accepted_with_its_endpoint_settings_checked() {
        let mut body = plain_run();
        body["HostConfig"]["NetworkMode"] = json!("a");
        body["NetworkingConfig"]["EndpointsConfig"] = json!({"a": {}, "b": {"Aliases": ["x"]}});
        assert_eq!(check_create(&body), Ok(()));
        body["NetworkingConfig"]["EndpointsConfig"]["b"]["Links"] = json!(["c:d"]);
        assert!(
            check_create(&body)
                .unwrap_err()
                .contains("EndpointsConfig[b].Links")
        );
    }

    #[test]
    fn connect_s_endpoint_settings_are_refused_by_name_when_not_honoured() {
        let sent = json!({"IPAMConfig": {"IPv4Address": "10.1.0.9", "IPv6Address": ""}, "Links": null, "Aliases": ["x"], "DriverOpts": null, "GwPriority": 0, "MacAddress": "", "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": null});
        assert_eq!(check_endpoint(&sent), Ok(()));
        assert_eq!(
            check_endpoint(&json!({"IPAMConfig": {"IPv6Address": "fd00::9"}})),
            Err("berth does not support --ip6 (EndpointConfig.IPAMConfig.IPv6Address)".into())
        );
    }
}
