//! Pod sandboxes: what the containers of one Kubernetes pod share — a network namespace
//! with the pod's address and host ports, an IPC namespace and a UTS namespace with the
//! pod's host name. No process holds them: each namespace is pinned by a bind mount of
//! its nsfs file under `<run>/pods/<id>/` (as CRI-O's pinns does), so a sandbox costs no
//! memory, and the pod's containers join the namespaces by path. Records live in
//! `<data>/sandboxes/<id>.json`; the pinned namespaces live as long as the boot, so an
//! agent that restarts finds its sandboxes and their containers as they were.
//!
//! A pod's containers are the engine's own containers, created through
//! [`Engine::create_pod_container`] from a typed request: start, stop, logs, exec and
//! events work on them as on any other, and `docker ps` against the agent's engine lists
//! them.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use berth_net::Ipv4Net;
use berth_net::cni::{Attachment, IpRange, NetworkConfig, Outcome, Plugins, RuntimeConfig};
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::model::{Container, CreateRequest, Endpoint, HostConfig, PortBinding};
use crate::{Engine, Error, Result};

/// What a pod's sandbox is made with.
#[derive(Debug, Clone, Default)]
pub struct SandboxRequest {
    /// A unique name: the agent's is `k8s_POD_<pod>_<namespace>_<uid>_<attempt>`, as the
    /// dockershim named its sandboxes.
    pub name: String,
    /// The pod's host name.
    pub hostname: String,
    /// Share the host's network and UTS namespaces (`hostNetwork`).
    pub host_network: bool,
    /// Share the host's IPC namespace (`hostIPC`).
    pub host_ipc: bool,
    /// Ports of the pod published on the host (its containers' `hostPort`s).
    pub host_ports: Vec<HostPort>,
    /// Labels, for the agent to find its pod's sandbox again.
    pub labels: BTreeMap<String, String>,
    /// The pod's cgroup under the engine's cgroup parent, which its containers' go in
    /// (the kubelet's `burstable/pod<uid>`); empty for none of its own.
    pub cgroup: String,
    /// `CNI_ARGS` for a CNI network's plugins (the kubelet's `K8S_POD_NAME`…).
    pub network_args: Vec<(String, String)>,
    /// What the pod's cgroup bounds its containers to together.
    pub limits: PodLimits,
    /// The /etc/resolv.conf its containers get (the agent's, per the pod's dnsPolicy);
    /// None for the one its network gives.
    pub resolv_conf: Option<String>,
}

/// The limits of a pod's cgroup (the kubelet's pod-level resources): what its containers
/// may use together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodLimits {
    /// Memory limit in bytes; 0 for none.
    pub memory: i64,
    /// CPU limit in billionths of a CPU; 0 for none.
    pub nano_cpus: i64,
    /// Relative CPU weight (1024 for one CPU requested); 0 for the default.
    pub cpu_shares: i64,
}

/// A pod network set up by CNI plugins (a configuration of the node's `/etc/cni/net.d`)
/// instead of the engine's own bridge.
#[derive(Debug, Clone)]
pub struct CniNetwork {
    /// The network's configuration list.
    pub config: NetworkConfig,
    /// Where its plugins are.
    pub plugins: Plugins,
    /// The node's pod range, given to plugins that take `ipRanges` (host-local).
    pub pod_range: Option<Ipv4Net>,
}

/// How a sandbox was attached to a CNI network: what its CHECK and DEL need again — the
/// configuration and arguments its ADD was given, and ADD's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CniAttached {
    /// The network's configuration at ADD.
    pub network: NetworkConfig,
    /// The attachment's arguments.
    pub attachment: Attachment,
    /// ADD's result; None when ADD failed.
    pub outcome: Option<Outcome>,
}

/// A pod port published on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// The host address; all when None.
    pub host_ip: Option<Ipv4Addr>,
    /// The host port.
    pub host_port: u16,
    /// The pod's port.
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
}

/// A pod's sandbox as the engine keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PodSandbox {
    /// 64 hex digits.
    pub id: String,
    /// Its unique name.
    pub name: String,
    /// The pod's host name.
    pub hostname: String,
    /// Labels it was made with.
    pub labels: BTreeMap<String, String>,
    /// When it was made, RFC 3339.
    pub created: String,
    /// The pinned network namespace; None with the host's network.
    pub netns: Option<PathBuf>,
    /// The pinned IPC namespace; None with the host's.
    pub ipc: Option<PathBuf>,
    /// The pinned UTS namespace; None with the host's network.
    pub uts: Option<PathBuf>,
    /// Its address on the pod network; None with the host's network.
    pub endpoint: Option<Endpoint>,
    /// The /etc/resolv.conf its containers get.
    pub resolv_conf: String,
    /// Its cgroup under the engine's cgroup parent ([`SandboxRequest::cgroup`]).
    #[serde(default)]
    pub cgroup: String,
    /// Its attachment to a CNI network, when the engine has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni: Option<CniAttached>,
}

impl PodSandbox {
    /// The pod's address: its endpoint's or its CNI result's first IPv4 one, or None on
    /// the host's network.
    pub fn ip(&self) -> Option<Ipv4Addr> {
        self.endpoint.as_ref().map(|e| e.ip).or_else(|| {
            self.cni
                .as_ref()
                .and_then(|c| c.outcome.as_ref())
                .and_then(Outcome::ipv4)
        })
    }
}

/// What a container of a pod runs: the parts of a Kubernetes container the engine sees,
/// the agent having resolved everything else (environment sources, volumes' host
/// directories) into these.
#[derive(Debug, Clone, Default)]
pub struct PodContainerRequest {
    /// A unique name: the agent's is `k8s_<container>_<pod>_<namespace>_<uid>_<attempt>`.
    pub name: String,
    /// The image, by name or id, present in the engine's store.
    pub image: String,
    /// `command`: replaces the image's entrypoint (and then its Cmd is not used).
    pub command: Option<Vec<String>>,
    /// `args`: replaces the image's Cmd.
    pub args: Option<Vec<String>>,
    /// `KEY=value` pairs, over the image's.
    pub env: Vec<String>,
    /// `workingDir`, over the image's.
    pub working_dir: String,
    /// The pod's domain, naming it in /etc/hosts (`<subdomain>.<namespace>.svc.<zone>`);
    /// empty without a subdomain.
    pub domain: String,
    /// Keep stdin open (`stdin`).
    pub stdin: bool,
    /// Allocate a terminal (`tty`).
    pub tty: bool,
    /// Host directories bound into the container: source, target, read-only.
    pub binds: Vec<(PathBuf, String, bool)>,
    /// Extra /etc/hosts entries, `name:address` (a pod's hostAliases).
    pub extra_hosts: Vec<String>,
    /// Memory limit in bytes; 0 for none.
    pub memory_limit: i64,
    /// CPU limit in billionths of a CPU; 0 for none.
    pub nano_cpus: i64,
    /// Relative CPU weight (1024 for one CPU requested); 0 for the default.
    pub cpu_shares: i64,
    /// Who it runs as and what it may do.
    pub security: ContainerSecurity,
    /// Labels, for the agent to find the container's pod and name again.
    pub labels: BTreeMap<String, String>,
}

/// A pod container's identity and confinement, from its `securityContext`.
#[derive(Debug, Clone, Default)]
pub struct ContainerSecurity {
    /// `uid[:gid]` (or a name), over the image's user; the image's when empty.
    pub user: String,
    /// Supplementary groups (`supplementalGroups`, `fsGroup`).
    pub supplementary_groups: Vec<u32>,
    /// Every capability and device, no seccomp.
    pub privileged: bool,
    /// A read-only root filesystem.
    pub read_only_root: bool,
    /// Capabilities added to the default set.
    pub cap_add: Vec<String>,
    /// Capabilities taken from it (`ALL` for every one).
    pub cap_drop: Vec<String>,
    /// No privilege escalation (`allowPrivilegeEscalation: false`).
    pub no_new_privileges: bool,
    /// The seccomp filter.
    pub seccomp: Seccomp,
}

/// A pod container's seccomp filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Seccomp {
    /// None (Kubernetes' default, `Unconfined`).
    #[default]
    Unconfined,
    /// The runtime's default profile (`RuntimeDefault`).
    RuntimeDefault,
    /// A profile of the node's (`Localhost`), as its JSON.
    Profile(String),
}

impl ContainerSecurity {
    /// The `--security-opt` values that say the same.
    fn security_options(&self) -> Vec<String> {
        let mut options = Vec::new();
        match &self.seccomp {
            Seccomp::Unconfined => options.push("seccomp=unconfined".to_string()),
            Seccomp::RuntimeDefault => {}
            Seccomp::Profile(json) => options.push(format!("seccomp={json}")),
        }
        if self.no_new_privileges {
            options.push("no-new-privileges".to_string());
        }
        options
    }
}

/// The sandboxes of an engine.
#[derive(Debug)]
pub(crate) struct Sandboxes {
    dir: PathBuf,
    pins: PathBuf,
    records: Mutex<BTreeMap<String, PodSandbox>>,
}

impl Sandboxes {
    /// Loads the records under `dir`; namespaces are pinned under `pins`.
    pub(crate) fn load(dir: &Path, pins: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io(dir.to_path_buf(), e))?;
        let mut records = BTreeMap::new();
        for entry in std::fs::read_dir(dir)
            .map_err(|e| Error::Io(dir.to_path_buf(), e))?
            .flatten()
        {
            if let Ok(data) = std::fs::read(entry.path())
                && let Ok(sandbox) = serde_json::from_slice::<PodSandbox>(&data)
            {
                records.insert(sandbox.id.clone(), sandbox);
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            pins: pins.to_path_buf(),
            records: Mutex::new(records),
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, PodSandbox>> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn save(&self, sandbox: &PodSandbox) -> Result<()> {
        let path = self.record_path(&sandbox.id);
        let data = serde_json::to_vec(sandbox).unwrap_or_default();
        let temporary = path.with_extension("json.new");
        std::fs::write(&temporary, data).map_err(|e| Error::Io(temporary.clone(), e))?;
        std::fs::rename(&temporary, &path).map_err(|e| Error::Io(path, e))
    }

    /// The sandbox `name` stands for, by id or name.
    pub(crate) fn find(&self, name: &str) -> Result<PodSandbox> {
        self.lock()
            .values()
            .find(|s| s.id == name || s.name == name)
            .cloned()
            .ok_or_else(|| Error::NoSuchSandbox(name.to_string()))
    }
}

impl Engine {
    /// Makes a pod's sandbox: pins its namespaces, gives it an address on the pod
    /// network (the engine's default bridge) and publishes its host ports. Undone
    /// entirely when a part fails.
    pub fn run_sandbox(&self, request: SandboxRequest) -> Result<PodSandbox> {
        if self
            .sandboxes
            .lock()
            .values()
            .any(|s| s.name == request.name)
        {
            return Err(Error::Conflict(format!(
                "the sandbox name {:?} is already in use",
                request.name
            )));
        }
        let id = crate::containers::random_hex(32)?;
        let pins = self.sandboxes.pins.join(&id);
        std::fs::create_dir_all(&pins).map_err(|e| Error::Io(pins.clone(), e))?;
        let mut sandbox = PodSandbox {
            id: id.clone(),
            name: request.name.clone(),
            hostname: request.hostname.clone(),
            labels: request.labels.clone(),
            created: berth_runtime::state::now_rfc3339(),
            netns: None,
            ipc: (!request.host_ipc).then(|| pins.join("ipc")),
            uts: (!request.host_network).then(|| pins.join("uts")),
            endpoint: None,
            resolv_conf: String::new(),
            cgroup: request.cgroup.trim_matches('/').to_string(),
            cni: None,
        };
        if sandbox.cgroup.split('/').any(|part| part == "..") {
            return Err(Error::Invalid(format!(
                "the sandbox cgroup {:?} must stay under the engine's",
                request.cgroup
            )));
        }
        let made = self.make_sandbox(&mut sandbox, &request);
        if let Err(error) = made {
            self.release_sandbox(&sandbox);
            self.remove_pod_cgroup(&sandbox);
            return Err(error);
        }
        self.sandboxes.save(&sandbox)?;
        self.sandboxes.lock().insert(id, sandbox.clone());
        Ok(sandbox)
    }

    fn make_sandbox(&self, sandbox: &mut PodSandbox, request: &SandboxRequest) -> Result<()> {
        self.make_pod_cgroup(sandbox, request.limits)?;
        pin_namespaces(
            sandbox.ipc.as_deref(),
            sandbox.uts.as_deref(),
            &sandbox.hostname,
        )?;
        if let Some(cni) = self.cni.as_ref().filter(|_| !request.host_network) {
            self.attach_cni(sandbox, request, cni)?;
        } else {
            let network = self.connect(&stand_in(sandbox, request))?;
            sandbox.netns = network.netns;
            sandbox.endpoint = network.endpoint;
            sandbox.resolv_conf = network.resolv_conf;
        }
        if let Some(resolv_conf) = &request.resolv_conf {
            sandbox.resolv_conf = resolv_conf.clone();
        }
        Ok(())
    }

    /// Gives a sandbox its network through the CNI plugins: a new network namespace,
    /// its loopback (the `loopback` plugin, as containerd runs it) and the network's
    /// ADD, its host ports passed as `portMappings` and the node's pod range as
    /// `ipRanges` to the plugins that take them.
    fn attach_cni(
        &self,
        sandbox: &mut PodSandbox,
        request: &SandboxRequest,
        cni: &CniNetwork,
    ) -> Result<()> {
        if let Some(port) = request.host_ports.first()
            && !cni.config.supports("portMappings")
        {
            return Err(Error::Invalid(format!(
                "hostPort {} needs a plugin with the portMappings capability, and the CNI network {:?} has none",
                port.host_port, cni.config.name
            )));
        }
        let netns = self.sandboxes.pins.join(&sandbox.id).join("net");
        berth_net::netns::create(&netns).map_err(crate::networks::net_error)?;
        sandbox.netns = Some(netns.clone());
        let attachment = Attachment {
            container_id: sandbox.id.clone(),
            netns,
            ifname: "eth0".into(),
            args: request.network_args.clone(),
            runtime_config: RuntimeConfig {
                port_mappings: request.host_ports.iter().map(port_mapping).collect(),
                ip_ranges: cni
                    .pod_range
                    .map(|range| {
                        vec![vec![IpRange {
                            subnet: range.trunc().into(),
                        }]]
                    })
                    .unwrap_or_default(),
            },
        };
        let attached = sandbox.cni.insert(CniAttached {
            network: cni.config.clone(),
            attachment,
            outcome: None,
        });
        let run = || -> berth_net::Result<Outcome> {
            cni.plugins
                .add(&NetworkConfig::loopback(), &loopback(&attached.attachment))?;
            cni.plugins.add(&attached.network, &attached.attachment)
        };
        let outcome = run().map_err(crate::networks::net_error)?;
        let servers = outcome.nameservers();
        sandbox.resolv_conf = if servers.is_empty() {
            crate::networks::host_resolv_conf()
        } else {
            servers
                .iter()
                .map(|s| format!("nameserver {s}\n"))
                .collect()
        };
        attached.outcome = Some(outcome);
        Ok(())
    }

    /// Checks that a sandbox's network is as it was made: CNI's CHECK for a sandbox on
    /// a CNI network (run when an agent adopts pods it did not start); the engine's own
    /// bridge has nothing to check.
    pub fn check_sandbox(&self, name: &str) -> Result<()> {
        let sandbox = self.sandboxes.find(name)?;
        let Some(CniAttached {
            network,
            attachment,
            outcome: Some(outcome),
        }) = &sandbox.cni
        else {
            return Ok(());
        };
        self.cni_plugins()
            .check(network, attachment, outcome)
            .map_err(crate::networks::net_error)
    }

    /// The CNI plugins of the engine's network, or those of the default directories.
    fn cni_plugins(&self) -> Plugins {
        self.cni
            .as_ref()
            .map(|cni| cni.plugins.clone())
            .unwrap_or_default()
    }

    /// Detaches a sandbox from its CNI network (DEL, then its loopback's); a plugin's
    /// failure is logged, as what it holds cannot be taken back any other way.
    fn detach_cni(&self, attached: &CniAttached) {
        let plugins = self.cni_plugins();
        let deleted = plugins
            .del(
                &attached.network,
                &attached.attachment,
                attached.outcome.as_ref(),
            )
            .and_then(|()| {
                plugins.del(
                    &NetworkConfig::loopback(),
                    &loopback(&attached.attachment),
                    None,
                )
            });
        if let Err(error) = deleted {
            tracing::warn!(sandbox = %attached.attachment.container_id, %error, "could not detach a pod sandbox from its CNI network");
        }
    }

    /// Takes a sandbox's network, ports and namespaces away; what is not there is
    /// skipped.
    fn release_sandbox(&self, sandbox: &PodSandbox) {
        if let Some(attached) = &sandbox.cni {
            self.detach_cni(attached);
        }
        self.disconnect(&sandbox.id, &sandbox.netns, sandbox.endpoint.iter());
        for pin in [&sandbox.ipc, &sandbox.uts].into_iter().flatten() {
            let _ = nix::mount::umount2(pin, MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir_all(self.sandboxes.pins.join(&sandbox.id));
    }

    /// The cgroup parent of a container: its pod's cgroup for a pod container, else the
    /// engine's.
    pub(crate) fn cgroup_parent_of(&self, container: &Container) -> String {
        let pod = container
            .pod_sandbox
            .as_deref()
            .and_then(|id| self.sandboxes.find(id).ok())
            .map(|s| s.cgroup)
            .filter(|c| !c.is_empty());
        match pod {
            Some(pod) => format!("{}/{pod}", self.cgroup_parent),
            None => self.cgroup_parent.clone(),
        }
    }

    /// The pod's own cgroup, if it has one.
    fn pod_cgroup(&self, sandbox: &PodSandbox) -> Option<berth_runtime::cgroups::Cgroup> {
        (!sandbox.cgroup.is_empty()).then(|| {
            berth_runtime::cgroups::Cgroup::new(&format!(
                "{}/{}",
                self.cgroup_parent, sandbox.cgroup
            ))
        })
    }

    /// Makes the pod's cgroup with its limits, before any of its containers' go in it.
    fn make_pod_cgroup(&self, sandbox: &PodSandbox, limits: PodLimits) -> Result<()> {
        let Some(cgroup) = self.pod_cgroup(sandbox) else {
            return Ok(());
        };
        let host = HostConfig {
            memory: limits.memory,
            nano_cpus: limits.nano_cpus,
            cpu_shares: limits.cpu_shares,
            ..HostConfig::default()
        };
        let resources: berth_runtime::LinuxResources =
            serde_json::from_value(crate::settings::limits(&host)?)
                .map_err(|e| Error::Invalid(format!("the pod's limits: {e}")))?;
        cgroup
            .create_empty(Some(&resources))
            .map_err(|e| Error::Start(format!("make the pod's cgroup {}: {e}", cgroup.path())))
    }

    /// Removes the pod's (now empty) cgroup from every mounted hierarchy.
    fn remove_pod_cgroup(&self, sandbox: &PodSandbox) {
        if let Some(cgroup) = self.pod_cgroup(sandbox) {
            let _ = cgroup.remove();
        }
    }

    /// The pod sandboxes of this engine.
    pub fn sandboxes(&self) -> Vec<PodSandbox> {
        self.sandboxes.lock().values().cloned().collect()
    }

    /// Removes a sandbox and, forcibly, the containers in it; its network namespace,
    /// veth, address, host ports and pinned namespaces go with it.
    pub fn remove_sandbox(&self, name: &str) -> Result<()> {
        let sandbox = self.sandboxes.find(name)?;
        let members: Vec<Container> = self
            .containers(true)
            .into_iter()
            .filter(|c| c.pod_sandbox.as_deref() == Some(sandbox.id.as_str()))
            .collect();
        for container in members {
            self.remove_container(&container.id, true)?;
        }
        self.release_sandbox(&sandbox);
        self.remove_pod_cgroup(&sandbox);
        let path = self.sandboxes.record_path(&sandbox.id);
        std::fs::remove_file(&path).map_err(|e| Error::Io(path, e))?;
        self.sandboxes.lock().remove(&sandbox.id);
        Ok(())
    }

    /// Records a container of the pod whose sandbox `sandbox` names; nothing runs yet.
    /// It joins the sandbox's namespaces at each start.
    pub fn create_pod_container(
        &self,
        sandbox: &str,
        request: PodContainerRequest,
    ) -> Result<Container> {
        let sandbox = self.sandboxes.find(sandbox)?;
        let binds = request
            .binds
            .iter()
            .map(|(source, target, read_only)| {
                let mode = if *read_only { ":ro" } else { "" };
                format!("{}:{target}{mode}", source.display())
            })
            .collect();
        let create = CreateRequest {
            image: request.image,
            entrypoint: request.command,
            cmd: request.args,
            env: Some(request.env),
            working_dir: request.working_dir,
            user: request.security.user.clone(),
            hostname: sandbox.hostname.clone(),
            domainname: request.domain,
            tty: request.tty,
            open_stdin: request.stdin,
            labels: Some(request.labels),
            host_config: HostConfig {
                network_mode: "none".into(),
                binds: Some(binds),
                extra_hosts: Some(request.extra_hosts),
                memory: request.memory_limit,
                nano_cpus: request.nano_cpus,
                cpu_shares: request.cpu_shares,
                security_opt: Some(request.security.security_options()),
                privileged: request.security.privileged,
                readonly_rootfs: request.security.read_only_root,
                cap_add: Some(request.security.cap_add.clone()),
                cap_drop: Some(request.security.cap_drop.clone()),
                group_add: Some(
                    request
                        .security
                        .supplementary_groups
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                ),
                ..HostConfig::default()
            },
            ..CreateRequest::default()
        };
        self.create_record(Some(&request.name), create, Some(sandbox.id))
    }

    /// The network a container of a pod joins at its start: its sandbox's.
    pub(crate) fn sandbox_network(&self, id: &str) -> Result<crate::networks::Sandbox> {
        let sandbox = self.sandboxes.find(id)?;
        Ok(crate::networks::Sandbox {
            netns: sandbox.netns,
            owned: false,
            endpoint: None,
            extra_endpoints: Vec::new(),
            resolv_conf: sandbox.resolv_conf,
        })
    }

    /// The addresses a pod's container lists for its host name in /etc/hosts.
    pub(crate) fn sandbox_addresses(&self, id: &str) -> Vec<String> {
        self.sandboxes
            .find(id)
            .ok()
            .and_then(|s| s.ip())
            .map(|ip| vec![ip.to_string()])
            .unwrap_or_default()
    }

    /// Makes a pod container's spec join its sandbox's IPC and UTS namespaces (and take
    /// the host's where the sandbox has none).
    pub(crate) fn join_sandbox(&self, spec: &mut Value, id: &str) -> Result<()> {
        let sandbox = self.sandboxes.find(id)?;
        let Some(namespaces) = spec["linux"]["namespaces"].as_array_mut() else {
            return Ok(());
        };
        namespaces.retain(|n| !matches!(n["type"].as_str(), Some("ipc" | "uts")));
        for (kind, pin) in [("ipc", &sandbox.ipc), ("uts", &sandbox.uts)] {
            if let Some(path) = pin {
                namespaces.push(json!({"type": kind, "path": path}));
            }
        }
        if let Some(spec) = spec.as_object_mut() {
            // A pod's domain names it in /etc/hosts only, as the kubelet does.
            spec.remove("domainname");
            if sandbox.uts.is_none() {
                spec.remove("hostname");
            }
        }
        Ok(())
    }
}

/// A container record standing for the sandbox in the network code, which wires
/// containers: the sandbox's id and name, its network mode and host ports.
fn stand_in(sandbox: &PodSandbox, request: &SandboxRequest) -> Container {
    let mut port_bindings: BTreeMap<String, Option<Vec<PortBinding>>> = BTreeMap::new();
    for port in &request.host_ports {
        port_bindings
            .entry(format!("{}/{}", port.container_port, port.protocol))
            .or_default()
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: port.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                host_port: port.host_port.to_string(),
            });
    }
    let network_mode = if request.host_network {
        "host"
    } else {
        "bridge"
    };
    Container {
        id: sandbox.id.clone(),
        name: sandbox.name.clone(),
        image_id: String::new(),
        image: String::new(),
        path: String::new(),
        args: Vec::new(),
        env: Vec::new(),
        working_dir: String::new(),
        user: String::new(),
        request: CreateRequest {
            host_config: HostConfig {
                network_mode: network_mode.into(),
                port_bindings: Some(port_bindings),
                ..HostConfig::default()
            },
            ..CreateRequest::default()
        },
        anonymous_volumes: BTreeMap::new(),
        created: sandbox.created.clone(),
        pod_sandbox: None,
        state: crate::model::State::default(),
    }
}

/// A host port as CNI's `portMappings` capability gives it.
fn port_mapping(port: &HostPort) -> berth_net::cni::PortMapping {
    berth_net::cni::PortMapping {
        host_port: port.host_port,
        container_port: port.container_port,
        protocol: port.protocol.clone(),
        host_ip: port.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
    }
}

/// The attachment of the sandbox's loopback, beside its network's.
fn loopback(attachment: &Attachment) -> Attachment {
    Attachment {
        ifname: "lo".into(),
        runtime_config: RuntimeConfig::default(),
        ..attachment.clone()
    }
}

/// Makes new IPC and UTS namespaces (each when its path is given) and pins them at
/// their paths, the UTS one named `hostname`. The work is done on a thread of its own,
/// which unshares and ends: no other thread of the engine changes its namespaces.
fn pin_namespaces(ipc: Option<&Path>, uts: Option<&Path>, hostname: &str) -> Result<()> {
    let pins: Vec<(CloneFlags, &str, PathBuf)> = [
        (CloneFlags::CLONE_NEWIPC, "ipc", ipc),
        (CloneFlags::CLONE_NEWUTS, "uts", uts),
    ]
    .into_iter()
    .filter_map(|(flag, kind, path)| Some((flag, kind, path?.to_path_buf())))
    .collect();
    if pins.is_empty() {
        return Ok(());
    }
    for (_, _, path) in &pins {
        std::fs::File::create(path).map_err(|e| Error::Io(path.clone(), e))?;
    }
    let hostname = hostname.to_string();
    let pinned = std::thread::spawn(move || -> Result<()> {
        let flags = pins
            .iter()
            .fold(CloneFlags::empty(), |all, (f, _, _)| all | *f);
        nix::sched::unshare(flags).map_err(|e| os_error("unshare the pod's namespaces", e))?;
        if flags.contains(CloneFlags::CLONE_NEWUTS) {
            nix::unistd::sethostname(&hostname)
                .map_err(|e| os_error("set the pod's host name", e))?;
        }
        for (_, kind, path) in &pins {
            let source = format!("/proc/thread-self/ns/{kind}");
            nix::mount::mount(
                Some(source.as_str()),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| os_error(&format!("pin the {kind} namespace"), e))?;
        }
        Ok(())
    })
    .join();
    pinned.unwrap_or_else(|_| Err(Error::Start("the namespace thread panicked".into())))
}

fn os_error(what: &str, errno: nix::errno::Errno) -> Error {
    Error::Start(format!("{what}: {errno}"))
}
