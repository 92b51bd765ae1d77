//! Containers as the Docker API describes them: what `create` asks for (Config and
//! HostConfig, the parts the engine honours) and the record the engine keeps.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The body of `POST /containers/create`: the container's Config with its HostConfig.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateRequest {
    /// The image, by name or id.
    pub image: String,
    /// Command, replacing the image's Cmd.
    pub cmd: Option<Vec<String>>,
    /// Entrypoint, replacing the image's (and then the image's Cmd is not used).
    pub entrypoint: Option<Vec<String>>,
    /// `KEY=value` pairs, over the image's.
    pub env: Option<Vec<String>>,
    /// Working directory, over the image's.
    pub working_dir: String,
    /// `uid[:gid]`, over the image's.
    pub user: String,
    /// Hostname; the short id when empty.
    pub hostname: String,
    /// NIS domain name (`--domainname`).
    pub domainname: String,
    /// The signal `stop` sends first (`--stop-signal`); SIGTERM when empty.
    pub stop_signal: String,
    /// Seconds `stop` waits before SIGKILL when the client names none (`--stop-timeout`).
    pub stop_timeout: Option<u64>,
    /// Allocate a terminal.
    pub tty: bool,
    /// Keep stdin open.
    pub open_stdin: bool,
    /// Close the container's stdin when the first attached client's input ends.
    pub stdin_once: bool,
    /// Labels.
    pub labels: Option<BTreeMap<String, String>>,
    /// The health check, over the image's.
    pub healthcheck: Option<crate::health::HealthConfig>,
    /// Paths that get an anonymous volume of their own (`-v /path`), path to `{}`; the
    /// image's VOLUMEs are added to them.
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    /// Ports the container listens on (`--expose`), `PORT/PROTO` to `{}`; with the image's,
    /// what `-P` publishes.
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    /// Host-side settings.
    pub host_config: HostConfig,
    /// Settings per network: aliases and a fixed address (`--network-alias`, `--ip`).
    pub networking_config: Option<NetworkingConfig>,
}

/// `NetworkingConfig` of create: the endpoint settings per network name.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkingConfig {
    /// Network name to its endpoint's settings.
    pub endpoints_config: Option<BTreeMap<String, EndpointConfig>>,
}

/// What a container asks of its endpoint on one network.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointConfig {
    /// More names the container answers to on the network.
    pub aliases: Option<Vec<String>>,
    /// A fixed address.
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<EndpointIpam>,
    /// A fixed MAC address (`--mac-address`); one made from the IP address when empty.
    pub mac_address: String,
}

impl EndpointConfig {
    /// The MAC address asked for, if any, as bytes.
    pub fn mac(&self) -> crate::Result<Option<[u8; 6]>> {
        if self.mac_address.is_empty() {
            return Ok(None);
        }
        let bad = || {
            crate::Error::Invalid(format!(
                "invalid MAC address: {:?} (--mac-address)",
                self.mac_address
            ))
        };
        let bytes: Vec<u8> = self
            .mac_address
            .split(':')
            .map(|b| u8::from_str_radix(b, 16).map_err(|_| bad()))
            .collect::<crate::Result<_>>()?;
        let mac: [u8; 6] = bytes.try_into().map_err(|_| bad())?;
        // A group address cannot be an interface's.
        if mac[0] & 1 == 1 {
            return Err(bad());
        }
        Ok(Some(mac))
    }
}

/// A fixed address asked for (`--ip`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointIpam {
    /// The IPv4 address.
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
}

/// One host binding of a container port (`-p [HOST_IP:]HOST_PORT:PORT`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortBinding {
    /// The host address; empty for all.
    pub host_ip: String,
    /// The host port; empty or `0` for one the kernel picks.
    pub host_port: String,
}

/// A container's place on a network while it runs: what the engine set up, so that it
/// can answer inspect and undo it all when the container stops.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    /// The network's id.
    pub network_id: String,
    /// The network's name.
    pub network_name: String,
    /// A random id, as Docker's endpoint ids.
    pub endpoint_id: String,
    /// The container's address.
    pub ip: std::net::Ipv4Addr,
    /// The network's prefix length.
    pub prefix: u8,
    /// The network's gateway.
    pub gateway: std::net::Ipv4Addr,
    /// The container's MAC address, `02:42:…`.
    pub mac: String,
    /// The host end of its veth pair.
    pub host_veth: String,
    /// Its interface in the container, `eth0`, `eth1`…; empty in records older than
    /// `docker network connect`, whose only interface was `eth0`.
    #[serde(default)]
    pub interface: String,
    /// The names it answers to on the network (user-defined networks only).
    pub dns_names: Vec<String>,
    /// Its published ports.
    pub ports: Vec<PublishedPort>,
}

/// A port published on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedPort {
    /// The host address; `0.0.0.0` for all.
    pub host_ip: std::net::Ipv4Addr,
    /// The host port.
    pub host_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The container's port.
    pub container_port: u16,
}

/// The host-side settings of `create` the engine honours.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    /// Remove the container once it exits (`--rm`).
    pub auto_remove: bool,
    /// Memory limit in bytes (`--memory`); 0 for none.
    pub memory: i64,
    /// CPU limit in billionths of a CPU (`--cpus`); 0 for none.
    pub nano_cpus: i64,
    /// Relative CPU weight (`--cpu-shares`); 0 for the default.
    pub cpu_shares: i64,
    /// Process limit (`--pids-limit`); none or <= 0 for none.
    pub pids_limit: Option<i64>,
    /// Mount the root filesystem read-only (`--read-only`).
    pub readonly_rootfs: bool,
    /// Capabilities added to Docker's default set.
    pub cap_add: Option<Vec<String>>,
    /// Capabilities removed from it (`ALL` for every one).
    pub cap_drop: Option<Vec<String>>,
    /// Every capability, every device, no seccomp, no masked paths (`--privileged`).
    pub privileged: bool,
    /// `none`, `host`, `bridge` (the default)…
    pub network_mode: String,
    /// `-v` mounts: `SOURCE:TARGET[:ro]`, SOURCE a host path or a volume name.
    pub binds: Option<Vec<String>>,
    /// `--mount` mounts.
    pub mounts: Option<Vec<crate::volumes::MountRequest>>,
    /// `--tmpfs` mounts: target to options.
    pub tmpfs: Option<BTreeMap<String, String>>,
    /// `--restart`.
    pub restart_policy: RestartPolicy,
    /// `--log-driver` and `--log-opt`.
    pub log_config: LogConfig,
    /// `--security-opt`: `seccomp=unconfined`, `seccomp=<profile JSON>` (the CLI sends
    /// the file's content), `no-new-privileges[:true]`.
    pub security_opt: Option<Vec<String>>,
    /// `--init`: an init process as PID 1 that reaps zombies and forwards signals.
    pub init: Option<bool>,
    /// `-p`: `PORT/PROTO` to its host bindings.
    pub port_bindings: Option<BTreeMap<String, Option<Vec<PortBinding>>>>,
    /// `-P`: publish every exposed port on a port the kernel picks.
    pub publish_all_ports: bool,
    /// `--dns`: nameservers for /etc/resolv.conf.
    pub dns: Option<Vec<String>>,
    /// `--dns-option`: `options` of /etc/resolv.conf.
    pub dns_options: Option<Vec<String>>,
    /// `--dns-search`: search domains of /etc/resolv.conf.
    pub dns_search: Option<Vec<String>>,
    /// `--add-host NAME:IP`: more lines of /etc/hosts.
    pub extra_hosts: Option<Vec<String>>,
    /// `--group-add`: supplementary group ids.
    pub group_add: Option<Vec<String>>,
    /// `--ipc`: empty, `private` or `shareable` for its own namespace, `host` for the host's.
    pub ipc_mode: String,
    /// `--pid`: empty for its own namespace, `host` for the host's.
    pub pid_mode: String,
    /// `--uts`: empty for its own namespace, `host` for the host's.
    #[serde(rename = "UTSMode")]
    pub uts_mode: String,
    /// `--cgroupns`: empty or `private` for its own cgroup namespace, `host` for the host's.
    pub cgroupns_mode: String,
    /// `--oom-score-adj`.
    pub oom_score_adj: i64,
    /// `--shm-size` in bytes; 64 MiB when 0.
    pub shm_size: i64,
    /// `--sysctl`: namespaced kernel parameters.
    pub sysctls: Option<BTreeMap<String, String>>,
    /// `--cpu-period` in microseconds; 0 for the default.
    pub cpu_period: i64,
    /// `--cpu-quota` in microseconds per period; 0 for none.
    pub cpu_quota: i64,
    /// `--cpuset-cpus`: the CPUs it may run on.
    pub cpuset_cpus: String,
    /// `--cpuset-mems`: the memory nodes it may use.
    pub cpuset_mems: String,
    /// `--memory-reservation` (soft limit) in bytes; 0 for none.
    pub memory_reservation: i64,
    /// `--memory-swap`: memory plus swap in bytes; 0 for the default, -1 for unlimited.
    pub memory_swap: i64,
    /// `--memory-swappiness` 0 to 100; None or -1 for the host's.
    pub memory_swappiness: Option<i64>,
    /// `--oom-kill-disable`: the OOM killer leaves its processes alone.
    pub oom_kill_disable: bool,
    /// `--device`: host devices made in the container.
    pub devices: Option<Vec<DeviceMapping>>,
    /// `--device-cgroup-rule`: `TYPE MAJOR:MINOR ACCESS` rules of the device cgroup.
    pub device_cgroup_rules: Option<Vec<String>>,
    /// `--ulimit`: resource limits of its processes.
    pub ulimits: Option<Vec<Ulimit>>,
    /// Paths hidden from it; Docker's list when None (`--security-opt systempaths=unconfined`
    /// sends an empty one).
    pub masked_paths: Option<Vec<String>>,
    /// Paths it sees read-only; Docker's list when None.
    pub readonly_paths: Option<Vec<String>>,
    /// `--annotation`: OCI annotations of its spec.
    pub annotations: Option<BTreeMap<String, String>>,
    /// The client's terminal as `[rows, columns]`, the terminal's size at start.
    pub console_size: Option<Vec<u16>>,
}

/// `--device PATH_ON_HOST[:PATH_IN_CONTAINER[:PERMISSIONS]]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeviceMapping {
    /// The host's device node.
    pub path_on_host: String,
    /// Where it appears in the container; the host's path when empty.
    pub path_in_container: String,
    /// What the device cgroup allows of it: some of `r`, `w`, `m`.
    pub cgroup_permissions: String,
}

/// `--ulimit NAME=SOFT[:HARD]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ulimit {
    /// `nofile`, `nproc`, … (RLIMIT_ without its prefix, lower case).
    pub name: String,
    /// The soft limit.
    pub soft: i64,
    /// The hard limit.
    pub hard: i64,
}

/// `--log-driver json-file --log-opt max-size=10m --log-opt max-file=3`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// The driver: `json-file` (or empty for it).
    #[serde(rename = "Type")]
    pub kind: String,
    /// The driver's options.
    #[serde(rename = "Config")]
    pub config: BTreeMap<String, String>,
}

/// `--restart no|always|unless-stopped|on-failure[:N]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    /// `no` (or empty), `always`, `unless-stopped`, `on-failure`.
    pub name: String,
    /// For `on-failure`: the most restarts, 0 for no limit.
    pub maximum_retry_count: u64,
}

impl RestartPolicy {
    /// Whether a run that ended with `exit_code` is restarted, given the restarts so far
    /// and whether the user stopped it.
    pub fn restarts(&self, exit_code: i32, restarts: u64, stopped_by_user: bool) -> bool {
        match self.name.as_str() {
            "always" | "unless-stopped" => !stopped_by_user,
            "on-failure" => {
                exit_code != 0
                    && !stopped_by_user
                    && (self.maximum_retry_count == 0 || restarts < self.maximum_retry_count)
            }
            _ => false,
        }
    }
}

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Made, never started.
    #[default]
    Created,
    /// Its process runs.
    Running,
    /// Its process ended.
    Exited,
    /// Being removed.
    Removing,
}

impl Status {
    /// Docker's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
            Status::Removing => "removing",
        }
    }
}

/// The state part of a container's record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// Where it is in its life.
    pub status: Status,
    /// Host pid of its process while it runs.
    pub pid: i32,
    /// Exit status of its last run.
    pub exit_code: i32,
    /// When it last started, RFC 3339.
    pub started_at: String,
    /// When it last ended, RFC 3339.
    pub finished_at: String,
    /// Whether the OOM killer struck in its last run.
    pub oom_killed: bool,
    /// Why its last start failed, if it did.
    pub error: String,
    /// How many runs have ended: lets `wait` tell the next exit from an earlier one.
    pub exits: u64,
    /// Restarts by the restart policy since the last start asked for.
    #[serde(default)]
    pub restart_count: u64,
    /// Stopped or killed through the API: `always` and `unless-stopped` leave it so.
    #[serde(default)]
    pub stopped_by_user: bool,
    /// A restart by the policy is under way: a stop waits for it to settle.
    #[serde(default)]
    pub restarting: bool,
    /// Frozen by `pause`.
    #[serde(default)]
    pub paused: bool,
    /// The health check's verdicts, when the container has one.
    #[serde(default)]
    pub health: Option<crate::health::Health>,
    /// Its network namespace while it runs (none with `--network host`).
    #[serde(default)]
    pub sandbox: Option<std::path::PathBuf>,
    /// Its place on a bridge network while it runs.
    #[serde(default)]
    pub endpoint: Option<Endpoint>,
    /// Its places on the other networks it is connected to while it runs (a second
    /// `--network`, `docker network connect`), on `eth1` onwards.
    #[serde(default)]
    pub extra_endpoints: Vec<Endpoint>,
    /// Disconnected from the network `--network` named (`docker network disconnect`): it
    /// joins only the others at its starts, until connected to it again.
    #[serde(default)]
    pub left_first_network: bool,
}

impl State {
    /// Its endpoints while it runs, its first network's first.
    pub fn endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        self.endpoint.iter().chain(&self.extra_endpoints)
    }

    /// Takes its endpoints away as it stops, its first network's first.
    pub fn take_endpoints(&mut self) -> Vec<Endpoint> {
        let extra = std::mem::take(&mut self.extra_endpoints);
        self.endpoint.take().into_iter().chain(extra).collect()
    }
}

/// A container as the engine keeps it (`container.json` in its directory).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Container {
    /// 64 hex digits.
    pub id: String,
    /// Its name, without Docker's leading `/`.
    pub name: String,
    /// The image id it was made from.
    pub image_id: String,
    /// The image as the user named it.
    pub image: String,
    /// The process it runs: entrypoint and command resolved against the image.
    pub path: String,
    /// The process's arguments after `path`.
    pub args: Vec<String>,
    /// The process's environment, the image's with the request's over it.
    pub env: Vec<String>,
    /// Working directory.
    pub working_dir: String,
    /// User.
    pub user: String,
    /// What create asked for.
    pub request: CreateRequest,
    /// Its anonymous volumes: volume name to the path it is mounted at. They go with the
    /// container when `--rm` or `docker rm -v` removes it.
    #[serde(default)]
    pub anonymous_volumes: BTreeMap<String, String>,
    /// When it was created, RFC 3339.
    pub created: String,
    /// The pod sandbox whose namespaces it joins, for a container of a Kubernetes pod.
    #[serde(default)]
    pub pod_sandbox: Option<String>,
    /// Its state.
    pub state: State,
}
