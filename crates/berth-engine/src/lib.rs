//! The single-host container engine: containers, images, networks and volumes, the
//! container monitor, restart policies, health checks, logs, stats and events. A library
//! with no HTTP in it; the Docker API crate serves it.
//!
//! Depends on berth-runtime, berth-image and berth-net.

use std::path::{Path, PathBuf};

use berth_image::ImageStore;

mod accounts;
mod changes;
mod containers;
mod copy;
mod etc;
mod events;
mod exec;
mod health;
pub mod logs;
mod model;
mod monitor;
mod networks;
mod pods;
mod registries;
mod rootfs;
mod settings;
mod spec;
mod stdio;
mod update;
mod usage;
mod volumes;

/// A container's usage, as its cgroup reports it.
pub use berth_runtime::cgroups::Stats;
/// The clock the engine stamps states and logs with (RFC 3339, nanoseconds).
pub use berth_runtime::state::now_rfc3339;
pub use changes::{CommitRequest, apply_changes};
pub use containers::WaitCondition;
pub use copy::PathStat;
pub use events::{Actor, DOCKER_EVENT_HISTORY, Event};
pub use exec::{ExecPipes, ExecRecord, ExecRequest, exec_pipes};
pub use health::{Health, HealthConfig, ProbeResult};
pub use model::{
    Container, CreateRequest, DeviceMapping, Endpoint, EndpointConfig, EndpointIpam, HostConfig,
    NetworkingConfig, PortBinding, PublishedPort, RestartPolicy, State, Status, Ulimit,
};
pub use monitor::{ExitRecord, run_monitor};
pub use networks::{BridgeConfig, Network, NetworkRequest};
pub use pods::{
    CniAttached, CniNetwork, ContainerSecurity, HostPort, PodContainerRequest, PodLimits,
    PodSandbox, SandboxRequest, Seccomp,
};
pub use registries::Pulled;
pub use rootfs::ImageRoot;
pub use settings::parse_signal;
pub use update::UpdateRequest;
pub use usage::InterfaceUsage;
pub use volumes::{MountPoint, MountRequest, TmpfsOptions, Volume, VolumeOptions};

/// The default bridge's interface name, like Docker's `docker0`.
pub use berth_net::DEFAULT_BRIDGE;

/// Default directory for state that must survive a reboot.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/berth";
/// Default directory for state that lives only as long as the boot (sockets, pid files).
pub const DEFAULT_RUN_DIR: &str = "/run/berth";

/// Why the engine refused or failed; each variant maps onto one Docker API status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From the image store.
    #[error(transparent)]
    Image(#[from] berth_image::Error),
    /// From the runtime.
    #[error(transparent)]
    Runtime(#[from] berth_runtime::Error),
    /// No container of that name or id.
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    /// No such path in the container.
    #[error("Could not find the file {0} in container")]
    NoSuchPath(String),
    /// No exec instance of that id.
    #[error("No such exec instance: {0}")]
    NoSuchExec(String),
    /// No pod sandbox of that name or id.
    #[error("No such pod sandbox: {0}")]
    NoSuchSandbox(String),
    /// No volume of that name.
    #[error("get {0}: no such volume")]
    NoSuchVolume(String),
    /// No network of that name or id.
    #[error("network {0} not found")]
    NoSuchNetwork(String),
    /// The kernel refused part of a container's network.
    #[error("network: {0}")]
    Network(String),
    /// The request is understood and refused (a predefined network, one in use).
    #[error("{0}")]
    Forbidden(String),
    /// The request conflicts with the container's state or another container.
    #[error("{0}")]
    Conflict(String),
    /// The request itself is wrong.
    #[error("{0}")]
    Invalid(String),
    /// The container could not be started.
    #[error("failed to start the container: {0}")]
    Start(String),
    /// A file of the engine's state could not be read or written.
    #[error("{path}: {source}", path = .0.display(), source = .1)]
    Io(PathBuf, std::io::Error),
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where the engine keeps its state, and how it starts container monitors.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// State that survives a reboot: images, containers' records, volumes.
    pub data_dir: PathBuf,
    /// State that lives as long as the boot: the runtime's container state.
    pub run_dir: PathBuf,
    /// The `berth` binary, whose `monitor` and `oci exec` subcommands the engine runs as
    /// helper processes (a multi-threaded daemon must not fork container processes
    /// itself): `/proc/self/exe` in the daemon.
    pub berth_binary: PathBuf,
    /// The cgroup under which containers' cgroups go (`--cgroup-parent`).
    pub cgroup_parent: String,
    /// The default bridge (`--bridge`, `--bip`).
    pub bridge: BridgeConfig,
    /// The static init binary `--init` runs as PID 1 (dockerd's `--init-path`); None to
    /// look for `docker-init` on the PATH, then Debian's `tini-static`.
    pub init_path: Option<PathBuf>,
    /// Registries (`host[:port]`) pulled from over plain HTTP besides loopback ones
    /// (dockerd's `--insecure-registry`; CIDRs are not supported).
    pub insecure_registries: Vec<String>,
    /// The engine's nftables table: `berth` for the daemon's, another for an agent's
    /// engine on the same host.
    pub firewall_table: String,
    /// The network pod sandboxes are set up with through CNI plugins; None for the
    /// default bridge.
    pub cni: Option<CniNetwork>,
    /// How many past events are kept (what `docker events --since` reaches, and how far
    /// a subscriber may lag): [`DOCKER_EVENT_HISTORY`] for a daemon, few for an agent,
    /// whose only subscriber keeps up.
    pub event_history: usize,
}

/// The engine of one host.
#[derive(Debug)]
pub struct Engine {
    data_dir: PathBuf,
    runtime_root: PathBuf,
    berth_binary: PathBuf,
    cgroup_parent: String,
    init_path: Option<PathBuf>,
    insecure_registries: Vec<String>,
    execs: exec::Execs,
    images: ImageStore,
    containers: containers::Containers,
    networks: networks::Networks,
    sandboxes: pods::Sandboxes,
    cni: Option<CniNetwork>,
    events: events::Events,
}

impl Engine {
    /// Opens (or starts) the engine's state.
    pub fn open(config: &EngineConfig) -> Result<Self> {
        if let Some(other) = config
            .insecure_registries
            .iter()
            .find(|r| r.is_empty() || r.contains('/') || r.contains("://"))
        {
            return Err(Error::Invalid(format!(
                "berth supports --insecure-registry HOST[:PORT] only, not {other:?}"
            )));
        }
        Ok(Self {
            data_dir: config.data_dir.clone(),
            runtime_root: config.run_dir.join("runtime"),
            berth_binary: config.berth_binary.clone(),
            execs: exec::Execs::default(),
            cgroup_parent: config.cgroup_parent.trim_matches('/').to_string(),
            init_path: config.init_path.clone(),
            insecure_registries: config.insecure_registries.clone(),
            images: ImageStore::open(&config.data_dir.join("image"))?,
            containers: containers::Containers::load(&config.data_dir.join("containers"))?,
            networks: networks::Networks::open(
                &config.data_dir.join("networks"),
                &config.run_dir.join("netns"),
                &config.bridge,
                &config.firewall_table,
            )?,
            sandboxes: pods::Sandboxes::load(
                &config.data_dir.join("sandboxes"),
                &config.run_dir.join("pods"),
            )?,
            cni: config.cni.clone(),
            events: events::Events::new(config.event_history),
        })
    }

    /// Registries pulls may reach over plain HTTP besides loopback ones.
    pub fn insecure_registries(&self) -> &[String] {
        &self.insecure_registries
    }

    /// The image store.
    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    /// `docker rmi`: refused while a container uses the image (its layers are that
    /// container's root), unless by tag: then only the tag goes, as with Docker.
    pub fn remove_image(&self, name: &str, force: bool) -> Result<Vec<berth_image::Removed>> {
        let image = self.images.resolve(name)?;
        let user = self
            .containers(true)
            .into_iter()
            .find(|c| c.image_id == image.id.as_str());
        let Some(user) = user else {
            let removed = self.images.remove(name, force)?;
            for item in &removed {
                match item {
                    berth_image::Removed::Untagged(tag) => {
                        self.emit_image(image.id.as_str(), "untag", tag)
                    }
                    berth_image::Removed::Deleted(id) => {
                        self.emit_image(id.as_str(), "delete", name)
                    }
                }
            }
            return Ok(removed);
        };
        let tag = berth_image::Reference::parse(name)
            .ok()
            .map(|r| r.to_string());
        let tags = self.images.tags(&image);
        if let Some(tag) = tag.filter(|t| tags.contains(t) && (tags.len() > 1 || force)) {
            self.images.untag(&tag)?;
            self.emit_image(image.id.as_str(), "untag", &tag);
            return Ok(vec![berth_image::Removed::Untagged(tag)]);
        }
        Err(Error::Conflict(format!(
            "conflict: unable to delete {} (must be forced) - image is being used by container {}",
            &image.id.hex()[..12],
            &user.id[..12]
        )))
    }

    /// Publishes an image event (`load`, `tag`, `untag`, `delete`…) about image `id`,
    /// under the name the user gave.
    pub fn emit_image(&self, id: &str, action: &str, name: &str) {
        let attributes = [("name".to_string(), name.to_string())].into();
        self.emit("image", action, id, attributes);
    }

    /// The data directory (`docker info`'s DockerRootDir).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn state_dirs_are_absolute_and_distinct() {
        use std::path::Path;
        assert!(Path::new(super::DEFAULT_DATA_DIR).is_absolute());
        assert!(Path::new(super::DEFAULT_RUN_DIR).is_absolute());
        assert_ne!(super::DEFAULT_DATA_DIR, super::DEFAULT_RUN_DIR);
    }
}
