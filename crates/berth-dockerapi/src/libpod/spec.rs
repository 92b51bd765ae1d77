//! Podman's container spec (libpod's `SpecGenerator`, the body of
//! `POST /libpod/containers/create` that `podman --remote create|run` sends) turned into
//! the engine's create request. The podman CLI sends many of its fields on every create
//! with its defaults; a field set to anything the engine does not carry out is refused
//! with its name, never dropped.

use std::collections::BTreeMap;

use berth_engine::{
    CreateRequest, EndpointConfig, HealthConfig, HostConfig, NetworkingConfig, PortBinding,
    RestartPolicy,
};
use serde::Deserialize;
use serde_json::Value;

/// The fields of a SpecGenerator the engine carries out.
#[derive(Deserialize, Default)]
#[serde(default)]
struct SpecGenerator {
    name: String,
    image: String,
    command: Vec<String>,
    entrypoint: Option<Vec<String>>,
    env: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    stop_signal: Option<i32>,
    stop_timeout: Option<u64>,
    terminal: bool,
    stdin: bool,
    work_dir: String,
    user: String,
    hostname: String,
    restart_policy: String,
    restart_tries: u64,
    remove: bool,
    init: bool,
    privileged: bool,
    read_only_filesystem: bool,
    cap_add: Vec<String>,
    cap_drop: Vec<String>,
    mounts: Vec<OciMount>,
    volumes: Vec<NamedVolume>,
    portmappings: Vec<PortMapping>,
    expose: BTreeMap<String, String>,
    publish_image_ports: bool,
    #[serde(rename = "Networks")]
    networks: BTreeMap<String, PerNetwork>,
    netns: Namespace,
    healthconfig: Option<HealthConfig>,
    dns_server: Vec<String>,
    dns_search: Vec<String>,
    dns_option: Vec<String>,
    hostadd: Vec<String>,
    sysctl: BTreeMap<String, String>,
    resource_limits: Option<ResourceLimits>,
    /// Everything else the client sent, checked against what the engine does anyway.
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

/// A mount in the runtime spec's shape: binds and tmpfs mounts.
#[derive(Deserialize, Default)]
#[serde(default)]
struct OciMount {
    destination: String,
    #[serde(rename = "type")]
    kind: String,
    source: String,
    options: Vec<String>,
}

/// A named volume (`-v NAME:/path`), or an anonymous one.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct NamedVolume {
    name: String,
    dest: String,
    options: Vec<String>,
    is_anonymous: bool,
}

/// `-p [HOST_IP:]HOST_PORT:PORT[/PROTO]`, a range when `range` > 1.
#[derive(Deserialize, Default)]
#[serde(default)]
struct PortMapping {
    host_ip: String,
    container_port: u16,
    host_port: u16,
    range: u16,
    protocol: String,
}

/// What a container asks of one network.
#[derive(Deserialize, Default)]
#[serde(default)]
struct PerNetwork {
    aliases: Vec<String>,
    static_ips: Vec<String>,
    static_mac: String,
    interface_name: String,
}

/// A namespace setting (`--network`, `--pid`…): its mode and, for some, a value.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Namespace {
    nsmode: String,
    value: String,
}

/// `--memory`, `--cpus`, `--cpu-shares`, `--pids-limit`, in the runtime spec's shape.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ResourceLimits {
    memory: Option<MemoryLimits>,
    cpu: Option<CpuLimits>,
    pids: Option<PidsLimits>,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MemoryLimits {
    limit: i64,
    reservation: i64,
    swap: i64,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CpuLimits {
    shares: i64,
    quota: i64,
    period: i64,
    cpus: String,
    mems: String,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PidsLimits {
    limit: i64,
}

/// The fields podman sends with its own defaults on every create, and the values that
/// mean what the engine does anyway.
fn is_default(key: &str, value: &Value) -> bool {
    match key {
        // What the CLI was given and the name it resolved: informative only.
        "raw_image_name" | "containerCreateCommand" => true,
        // The server's proxy variables go into the container: the daemon runs without.
        "httpproxy" => true,
        // systemd mode only for an init command; the engine runs commands as they are.
        "systemd" => value == "true" || value == "false",
        "sdnotifyMode" => value == "container",
        "manage_password" => value == true,
        "image_volume_mode" => value == "anonymous",
        "seccomp_policy" => value == "default",
        "umask" => value == "0022",
        "cgroups_mode" => value == "enabled",
        "idmappings" => {
            value["HostUIDMapping"] == true
                && value["HostGIDMapping"] == true
                && is_empty(&value["UIDMap"])
                && is_empty(&value["GIDMap"])
                && value["AutoUserNs"] != true
        }
        "pidns" | "utsns" | "ipcns" | "userns" | "cgroupns" => {
            matches!(value["nsmode"].as_str(), None | Some("" | "private"))
        }
        "log_configuration" => {
            matches!(
                value["driver"].as_str(),
                None | Some("" | "k8s-file" | "json-file")
            ) && is_empty(&value["options"])
        }
        _ => false,
    }
}

/// Null, false, zero, or an empty string, list or map: the field left unset.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// Removes every null member of every object: podman sends `null` for what it leaves
/// unset, and the spec's fields default when absent.
fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(list) => list.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// An error naming a setting the engine does not carry out.
fn unsupported(what: &str) -> String {
    format!("berth does not support {what} in a podman container spec")
}

/// The container name and the engine's request for a SpecGenerator body.
pub(crate) fn create_request(mut body: Value) -> Result<(String, CreateRequest), String> {
    strip_nulls(&mut body);
    let spec: SpecGenerator =
        serde_json::from_value(body).map_err(|e| format!("invalid container spec: {e}"))?;
    if let Some((key, _)) = spec
        .rest
        .iter()
        .find(|(key, value)| !is_empty(value) && !is_default(key, value))
    {
        return Err(unsupported(key));
    }
    if spec.image.is_empty() {
        return Err("a container spec needs an image".into());
    }
    let (network_mode, networking_config) = networks(&spec)?;
    let mut host_config = HostConfig {
        auto_remove: spec.remove,
        privileged: spec.privileged,
        readonly_rootfs: spec.read_only_filesystem,
        cap_add: non_empty(spec.cap_add.clone()),
        cap_drop: non_empty(spec.cap_drop.clone()),
        network_mode,
        restart_policy: RestartPolicy {
            name: spec.restart_policy.clone(),
            maximum_retry_count: spec.restart_tries,
        },
        init: spec.init.then_some(true),
        port_bindings: port_bindings(&spec.portmappings)?,
        publish_all_ports: spec.publish_image_ports,
        dns: non_empty(spec.dns_server.clone()),
        dns_search: non_empty(spec.dns_search.clone()),
        dns_options: non_empty(spec.dns_option.clone()),
        extra_hosts: non_empty(spec.hostadd.clone()),
        sysctls: (!spec.sysctl.is_empty()).then(|| spec.sysctl.clone()),
        annotations: (!spec.annotations.is_empty()).then(|| spec.annotations.clone()),
        ..HostConfig::default()
    };
    let anonymous = mounts(&spec, &mut host_config)?;
    if let Some(limits) = &spec.resource_limits {
        resources(limits, &mut host_config)?;
    }
    let request = CreateRequest {
        image: spec.image,
        cmd: non_empty(spec.command),
        entrypoint: spec.entrypoint,
        env: non_empty(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        working_dir: spec.work_dir,
        user: spec.user,
        hostname: spec.hostname,
        stop_signal: spec.stop_signal.map(|s| s.to_string()).unwrap_or_default(),
        stop_timeout: spec.stop_timeout,
        tty: spec.terminal,
        open_stdin: spec.stdin,
        labels: (!spec.labels.is_empty()).then_some(spec.labels),
        healthcheck: spec.healthconfig,
        volumes: (!anonymous.is_empty()).then_some(anonymous),
        exposed_ports: (!spec.expose.is_empty()).then(|| {
            spec.expose
                .iter()
                .map(|(port, proto)| {
                    (
                        format!("{port}/{}", protocol(proto)),
                        Value::Object(Default::default()),
                    )
                })
                .collect()
        }),
        host_config,
        networking_config,
        ..CreateRequest::default()
    };
    Ok((spec.name, request))
}

fn non_empty<T>(list: Vec<T>) -> Option<Vec<T>> {
    (!list.is_empty()).then_some(list)
}

/// A port mapping's protocol: tcp when unset.
fn protocol(name: &str) -> &str {
    if name.is_empty() { "tcp" } else { name }
}

/// The network mode and the endpoints: `--network NAME[,NAME…]` with its aliases, or a
/// mode (`bridge`, `host`, `none`).
fn networks(spec: &SpecGenerator) -> Result<(String, Option<NetworkingConfig>), String> {
    let mode = match spec.netns.nsmode.as_str() {
        "" | "bridge" | "private" => "bridge",
        "host" => "host",
        "none" => "none",
        other => return Err(unsupported(&format!("network mode {other:?}"))),
    };
    if !spec.netns.value.is_empty() {
        return Err(unsupported("a network namespace path"));
    }
    if spec.networks.is_empty() {
        return Ok((mode.to_string(), None));
    }
    let mut endpoints = BTreeMap::new();
    for (name, settings) in &spec.networks {
        if !settings.static_mac.is_empty() || !settings.interface_name.is_empty() {
            return Err(unsupported("a network's MAC address or interface name"));
        }
        let ipam_config = match settings.static_ips.as_slice() {
            [] => None,
            [ip] => Some(berth_engine::EndpointIpam {
                ipv4_address: ip.clone(),
            }),
            _ => return Err(unsupported("more than one static address on a network")),
        };
        let endpoint = EndpointConfig {
            aliases: non_empty(settings.aliases.clone()),
            ipam_config,
            ..EndpointConfig::default()
        };
        endpoints.insert(name.clone(), endpoint);
    }
    let first = endpoints.keys().next().cloned().unwrap_or_default();
    Ok((
        first,
        Some(NetworkingConfig {
            endpoints_config: Some(endpoints),
        }),
    ))
}

/// HostConfig.PortBindings: `PORT/PROTO` to its host bindings.
type PortBindings = BTreeMap<String, Option<Vec<PortBinding>>>;

/// `-p` mappings as Docker's port bindings, a range port by port.
fn port_bindings(mappings: &[PortMapping]) -> Result<Option<PortBindings>, String> {
    let mut bindings = PortBindings::new();
    for mapping in mappings {
        for offset in 0..mapping.range.max(1) {
            for proto in protocol(&mapping.protocol).split(',') {
                let port = mapping.container_port.checked_add(offset);
                let host = if mapping.host_port == 0 {
                    Some(0)
                } else {
                    mapping.host_port.checked_add(offset)
                };
                let (Some(port), Some(host)) = (port, host) else {
                    return Err(format!(
                        "port range of {} overflows",
                        mapping.container_port
                    ));
                };
                let binding = PortBinding {
                    host_ip: mapping.host_ip.clone(),
                    host_port: if host == 0 {
                        String::new()
                    } else {
                        host.to_string()
                    },
                };
                bindings
                    .entry(format!("{port}/{proto}"))
                    .or_insert_with(|| Some(Vec::new()))
                    .get_or_insert_with(Vec::new)
                    .push(binding);
            }
        }
    }
    Ok((!bindings.is_empty()).then_some(bindings))
}

/// Binds, tmpfs mounts and named volumes into `host`; the anonymous volumes' paths.
fn mounts(spec: &SpecGenerator, host: &mut HostConfig) -> Result<BTreeMap<String, Value>, String> {
    let mut binds = Vec::new();
    let mut tmpfs = BTreeMap::new();
    let mut anonymous = BTreeMap::new();
    for mount in &spec.mounts {
        let options: Vec<&str> = mount
            .options
            .iter()
            .map(String::as_str)
            .filter(|o| !matches!(*o, "rw" | "rbind" | "bind"))
            .collect();
        match mount.kind.as_str() {
            "bind" => {
                let mode = options.join(",");
                binds.push(if mode.is_empty() {
                    format!("{}:{}", mount.source, mount.destination)
                } else {
                    format!("{}:{}:{mode}", mount.source, mount.destination)
                });
            }
            "tmpfs" => {
                tmpfs.insert(mount.destination.clone(), options.join(","));
            }
            other => return Err(unsupported(&format!("a {other:?} mount"))),
        }
    }
    for volume in &spec.volumes {
        if volume.is_anonymous || volume.name.is_empty() {
            anonymous.insert(volume.dest.clone(), Value::Object(Default::default()));
            continue;
        }
        let mode = volume
            .options
            .iter()
            .filter(|o| *o != "rw")
            .cloned()
            .collect::<Vec<_>>()
            .join(",");
        binds.push(if mode.is_empty() {
            format!("{}:{}", volume.name, volume.dest)
        } else {
            format!("{}:{}:{mode}", volume.name, volume.dest)
        });
    }
    host.binds = non_empty(binds);
    host.tmpfs = (!tmpfs.is_empty()).then_some(tmpfs);
    Ok(anonymous)
}

/// `--memory`, `--cpus`, `--cpu-shares`, `--cpuset-*` and `--pids-limit`.
fn resources(limits: &ResourceLimits, host: &mut HostConfig) -> Result<(), String> {
    let leftover = |rest: &BTreeMap<String, Value>, what: &str| match rest
        .iter()
        .find(|(_, v)| !is_empty(v))
    {
        Some((key, _)) => Err(unsupported(&format!("the {what} limit {key:?}"))),
        None => Ok(()),
    };
    leftover(&limits.rest, "resource")?;
    if let Some(memory) = &limits.memory {
        leftover(&memory.rest, "memory")?;
        host.memory = memory.limit;
        host.memory_reservation = memory.reservation;
        host.memory_swap = memory.swap;
    }
    if let Some(cpu) = &limits.cpu {
        leftover(&cpu.rest, "cpu")?;
        host.cpu_shares = cpu.shares;
        host.cpu_quota = cpu.quota;
        host.cpu_period = cpu.period;
        host.cpuset_cpus = cpu.cpus.clone();
        host.cpuset_mems = cpu.mems.clone();
    }
    if let Some(pids) = &limits.pids {
        host.pids_limit = (pids.limit > 0).then_some(pids.limit);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn podman_compose_spec_becomes_a_create_request() {
        let body = json!({
            "name": "app_web_1", "image": "localhost/bb:1", "raw_image_name": "localhost/bb:1",
            "command": ["sleep", "1000"], "env": {"KV": "kv"}, "labels": {"a": "b"},
            "httpproxy": true, "systemd": "true", "sdnotifyMode": "container",
            "pidns": {}, "utsns": {}, "ipcns": {}, "userns": {}, "cgroupns": {},
            "idmappings": {"HostUIDMapping": true, "HostGIDMapping": true, "UIDMap": null, "GIDMap": null, "AutoUserNs": false},
            "umask": "0022", "cgroups_mode": "enabled", "netns": {"nsmode": "bridge"},
            "manage_password": true, "image_volume_mode": "anonymous", "seccomp_policy": "default",
            "log_configuration": {}, "use_image_hosts": false, "stop_timeout": 10,
            "portmappings": [{"host_ip": "", "container_port": 80, "host_port": 18080, "range": 1, "protocol": ""}],
            "Networks": {"app_default": {"aliases": ["web"], "interface_name": ""}},
            "mounts": [{"destination": "/run", "type": "tmpfs", "source": "tmpfs"}],
            "volumes": [{"Name": "app_data", "Dest": "/data", "Options": null, "IsAnonymous": false}],
            "restart_policy": "always",
            "healthconfig": {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000_u64, "Retries": 3},
        });
        let (name, request) = create_request(body).unwrap();
        assert_eq!(name, "app_web_1");
        assert_eq!(request.cmd.unwrap(), ["sleep", "1000"]);
        assert_eq!(request.env.unwrap(), ["KV=kv"]);
        let host = &request.host_config;
        assert_eq!(host.network_mode, "app_default");
        assert_eq!(host.binds.as_deref().unwrap(), ["app_data:/data"]);
        assert_eq!(host.tmpfs.as_ref().unwrap()["/run"], "");
        assert_eq!(host.restart_policy.name, "always");
        let ports = host.port_bindings.as_ref().unwrap();
        assert_eq!(ports["80/tcp"].as_ref().unwrap()[0].host_port, "18080");
        let endpoints = request.networking_config.unwrap().endpoints_config.unwrap();
        assert_eq!(
            endpoints["app_default"].aliases.as_deref().unwrap(),
            ["web"]
        );
        assert_eq!(request.healthcheck.unwrap().interval, 5_000_000_000);
    }

    #[test]
    fn settings_the_engine_does_not_carry_out_are_named() {
        let refused = |extra: Value| {
            let mut body = json!({"image": "bb"});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            create_request(body).unwrap_err()
        };
        assert!(refused(json!({"oci_runtime": "runc"})).contains("oci_runtime"));
        assert!(refused(json!({"umask": "0077"})).contains("umask"));
        assert!(refused(json!({"netns": {"nsmode": "slirp4netns"}})).contains("slirp4netns"));
        assert!(
            refused(json!({"resource_limits": {"blockIO": {"weight": 10}}})).contains("blockIO")
        );
        assert!(create_request(json!({"image": "bb", "umask": "0022"})).is_ok());
    }
}
