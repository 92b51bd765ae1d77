//! The `berth` command tree: every command of the product, laid out now so that `--help`
//! shows the whole of it. Commands whose work has not landed yet accept any arguments and
//! exit 2 with `not implemented yet: <command>`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Containers and clusters in one binary: the Docker part and the Kubernetes part.
#[derive(Debug, Parser)]
#[command(name = "berth", version = crate::VERSION, propagate_version = true)]
pub struct Cli {
    /// Log level: error, warn, info, debug or trace (RUST_LOG, when set, takes precedence).
    #[arg(long, global = true, env = "BERTH_LOG_LEVEL", default_value = "warn")]
    pub log_level: String,

    /// The daemon socket to talk to (then BERTH_HOST, then DOCKER_HOST).
    #[arg(short = 'H', long, global = true, env = "BERTH_HOST")]
    pub host: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Arguments of a command whose work has not landed yet: taken as they come, so that the
/// answer is always `not implemented yet`, never a usage error.
#[derive(Debug, Args)]
pub struct Pending {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    args: Vec<String>,
}

/// `berth registry`'s subcommands.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    #[command(subcommand)]
    pub command: RegistryCommand,
}

/// What `berth registry` does.
#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Serve an OCI distribution registry (garbage collection and token authentication
    /// are still to come)
    Serve(RegistryServeArgs),
}

/// `berth registry serve`'s flags.
#[derive(Debug, Args)]
pub struct RegistryServeArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:5000")]
    pub addr: std::net::SocketAddr,
    /// Directory the registry stores its blobs and repositories in
    #[arg(long, default_value = "/var/lib/berth/registry")]
    pub root: PathBuf,
    /// Who may come in: `htpasswd` (basic auth from --htpasswd's file) or `token`
    /// (JWTs of the --token-* authorization server); anyone when not given
    #[arg(long, value_parser = ["htpasswd", "token"])]
    pub auth: Option<String>,
    /// The htpasswd file (bcrypt hashes, `htpasswd -B`) of --auth htpasswd
    #[arg(long, requires = "auth")]
    pub htpasswd: Option<PathBuf>,
    /// --auth token: where clients get tokens (the authorization server's URL)
    #[arg(long, requires = "auth")]
    pub token_realm: Option<String>,
    /// --auth token: this registry's service name, the tokens' audience
    #[arg(long, requires = "auth")]
    pub token_service: Option<String>,
    /// --auth token: who signs the tokens, their issuer
    #[arg(long, requires = "auth")]
    pub token_issuer: Option<String>,
    /// --auth token: the certificates (PEM) whose keys sign the tokens
    #[arg(long, requires = "auth")]
    pub token_rootcertbundle: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM)
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Collect garbage this often while serving (`0s` never): untagged manifests, blobs
    /// no manifest names, abandoned uploads
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub gc_interval: std::time::Duration,
    /// How long garbage collection leaves what a push may still reference: new
    /// untagged manifests, new or just-asked-about blobs, uploads in progress
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub gc_grace: std::time::Duration,
    /// Keep only the N most recently pushed tags of each repository
    #[arg(long, value_name = "N")]
    pub keep_tags: Option<usize>,
    /// Be a pull-through cache of the registry at this URL (credentials for it from
    /// `berth login`); pushes are refused
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
}

/// `berth run`'s flags, as docker names them.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Run in the background and print the container id
    #[arg(short, long)]
    pub detach: bool,
    /// Name the container
    #[arg(long)]
    pub name: Option<String>,
    /// Set an environment variable (repeatable)
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// uid[:gid] to run as
    #[arg(short, long)]
    pub user: Option<String>,
    /// Replace the image's entrypoint
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Bind mount or volume: SOURCE:TARGET[:ro] (repeatable)
    #[arg(short, long = "volume")]
    pub volume: Vec<String>,
    /// Memory limit, e.g. 64m or 1g
    #[arg(short, long)]
    pub memory: Option<String>,
    /// Restart policy: no, always, unless-stopped, on-failure[:N]
    #[arg(long)]
    pub restart: Option<String>,
    /// Mount the root filesystem read-only
    #[arg(long)]
    pub read_only: bool,
    /// Give every capability and device
    #[arg(long)]
    pub privileged: bool,
    /// Publish a port on the host: [IP:][HOST_PORT:]PORT[/udp] (repeatable)
    #[arg(short, long = "publish")]
    pub publish: Vec<String>,
    /// Publish every exposed port on a port the kernel picks
    #[arg(short = 'P', long)]
    pub publish_all: bool,
    /// Connect to a network: bridge, host, none, container:NAME or a user network
    #[arg(long)]
    pub network: Option<String>,
    /// Another name for the container on its user network (repeatable)
    #[arg(long)]
    pub network_alias: Vec<String>,
    /// Add a capability (repeatable)
    #[arg(long)]
    pub cap_add: Vec<String>,
    /// Drop a capability (repeatable; ALL for every one)
    #[arg(long)]
    pub cap_drop: Vec<String>,
    /// The image
    pub image: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Commands that take only the names of what they act on.
#[derive(Debug, Args)]
pub struct NamesArgs {
    /// Names or ids
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// Commands that take nothing.
#[derive(Debug, Args)]
pub struct NoArgs {}

/// `berth server`'s flags, as k3s names them.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Directory of the server's state: certificates, tokens, the SQLite database
    #[arg(
        long,
        default_value = "/var/lib/berth/server",
        env = "BERTH_SERVER_DATA_DIR"
    )]
    pub data_dir: PathBuf,
    /// sqlite://PATH or etcd://HOST:PORT[,HOST:PORT…] [default: SQLite in the data dir]
    #[arg(long, env = "BERTH_DATASTORE")]
    pub datastore: Option<String>,
    /// Address to serve the Kubernetes API on (HTTPS)
    #[arg(long, default_value = berth_apiserver::DEFAULT_BIND)]
    pub bind: std::net::SocketAddr,
    /// Also write the admin kubeconfig to this path
    #[arg(long)]
    pub write_kubeconfig: Option<PathBuf>,
    /// Run the controller manager on whichever server holds its Lease
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// The node lifecycle controller's settings
    #[command(flatten)]
    pub lifecycle: LifecycleArgs,
    /// How often to compact the datastore's history (0s: never)
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub compaction_interval: std::time::Duration,
    /// Audit requests as this audit.k8s.io/v1 Policy says (kube-apiserver's flag)
    #[arg(long, requires = "audit_log_path")]
    pub audit_policy_file: Option<PathBuf>,
    /// Where audit events go, one JSON line each; `-` for standard output
    #[arg(long, requires = "audit_policy_file")]
    pub audit_log_path: Option<PathBuf>,
    /// The node ports NodePort and LoadBalancer Services are given
    #[arg(long, default_value = berth_apiserver::DEFAULT_NODE_PORT_RANGE)]
    pub service_node_port_range: berth_apiserver::NodePortRange,
    /// Do not run an agent for this machine: the server only serves the API and runs
    /// the controllers
    #[arg(long)]
    pub disable_agent: bool,
    /// Where the cluster's registry listens (its storage is <data-dir>/registry); without
    /// it, 127.0.0.1:5000 when that port is free. Nothing authenticates there yet: give
    /// an address beyond loopback only on a trusted network
    #[arg(long, conflicts_with = "disable_registry")]
    pub registry_addr: Option<std::net::SocketAddr>,
    /// Do not run the cluster's registry
    #[arg(long)]
    pub disable_registry: bool,
    /// The machine's agent (unless --disable-agent); its state is <data-dir>/agent
    #[command(flatten)]
    pub node: NodeArgs,
}

/// The flags of a node agent, `berth agent`'s and the one `berth server` runs.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The pod addresses of the cluster; each node gets a /24 of it, and pods reach the
    /// other nodes' without NAT
    #[arg(long, default_value = "10.42.0.0/16")]
    pub cluster_cidr: berth_controllers::node_ipam::ClusterCidr,
    /// The Services' cluster IPs; the first is the `kubernetes` Service's. The node
    /// routes the range to its Service rules
    #[arg(long, default_value = berth_apiserver::DEFAULT_SERVICE_CIDR)]
    pub service_cidr: ipnet::Ipv4Net,
    /// The cluster DNS's address (kube-dns's cluster IP), which every node serves and
    /// pods ask
    #[arg(long, default_value = "10.43.0.10")]
    pub cluster_dns: std::net::Ipv4Addr,
    /// The cluster's DNS domain
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Do not answer HTTP on port 80 for the cluster's Ingresses (the built-in Ingress
    /// controller, as k3s's `--disable traefik`)
    #[arg(long)]
    pub disable_ingress: bool,
    /// The node's name [default: the host name]
    #[arg(long)]
    pub node_name: Option<String>,
    /// The node's address [default: the host's first non-loopback IPv4 address]
    #[arg(long)]
    pub node_ip: Option<std::net::Ipv4Addr>,
    /// Root directory of state that lives as long as the boot; the agent's is
    /// <exec-root>/agent
    #[arg(long, env = "BERTH_EXEC_ROOT", default_value = berth_engine::DEFAULT_RUN_DIR)]
    pub exec_root: PathBuf,
    /// A registry (HOST[:PORT]) to pull from over plain HTTP; loopback ones always are
    #[arg(long)]
    pub insecure_registry: Vec<String>,
    /// The cgroup under which pods' containers go
    #[arg(long, default_value = "kubepods")]
    pub cgroup_parent: String,
    /// The port of the agent's HTTPS API (logs for kubectl) on the node's address
    #[arg(long, default_value_t = 10250)]
    pub kubelet_port: u16,
    /// Directory of the CNI network configuration pods are set up with (its first
    /// .conf, .conflist or .json); Berth's built-in bridge when it holds none
    #[arg(long, default_value = "/etc/cni/net.d")]
    pub cni_conf_dir: PathBuf,
    /// Directories of the CNI plugins, searched in order (colon-separated)
    #[arg(
        long,
        default_value = "/opt/cni/bin:/usr/lib/cni",
        value_delimiter = ':'
    )]
    pub cni_bin_dir: Vec<PathBuf>,
}

/// `berth agent`'s flags.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The API server's URL
    #[arg(long, env = "BERTH_SERVER", default_value = "https://127.0.0.1:6443")]
    pub server: String,
    /// The cluster's join token: the server's <data-dir>/token (K10…, which pins the
    /// cluster CA), or its bare node-token with --certificate-authority
    #[arg(long, env = "BERTH_TOKEN")]
    pub token: String,
    /// The cluster CA's certificate (the server's tls/ca.crt); not needed with a K10 token
    #[arg(long)]
    pub certificate_authority: Option<PathBuf>,
    /// Directory of the agent's state, <data-dir>/agent: its engine, pods' volumes and
    /// the air-gap images folder <data-dir>/agent/images (*.tar, imported at start)
    #[arg(long, env = "BERTH_DATA_DIR", default_value = berth_engine::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// The node; with --simulate, --node-name is the prefix of the nodes' names
    /// [default there: berth-sim]
    #[command(flatten)]
    pub node: NodeArgs,
    /// Register this many simulated nodes, which run their pods without containers.
    /// A pod annotated `simulate.berth.dev/exit-code: "N"` exits with N after
    /// `simulate.berth.dev/run-seconds` (default 0): Succeeded or Failed under
    /// restartPolicy Never, restarted otherwise, as a kubelet would
    #[arg(long)]
    pub simulate: Option<usize>,
    /// Each simulated node's allocatable CPU
    #[arg(long, default_value = "4")]
    pub cpu: String,
    /// Each simulated node's allocatable memory
    #[arg(long, default_value = "16Gi")]
    pub memory: String,
    /// Each simulated node's pod capacity
    #[arg(long, default_value = "110")]
    pub max_pods: String,
    /// How often the nodes renew their Leases
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub heartbeat_interval: std::time::Duration,
}

/// `berth kubeconfig`'s flags, as `kubeadm kubeconfig user`'s.
#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    /// The server's data directory (its CA signs the certificate)
    #[arg(
        long,
        default_value = "/var/lib/berth/server",
        env = "BERTH_SERVER_DATA_DIR"
    )]
    pub data_dir: PathBuf,
    /// The user's name: the certificate's common name
    #[arg(long)]
    pub user: String,
    /// The user's group: the certificate's organization (system:masters for
    /// administrators, berth:viewers for read-only users, system:nodes for nodes)
    #[arg(long)]
    pub group: Option<String>,
}

/// `berth kill`'s flags.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal to send, by name or number
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
    /// The containers
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `berth rmi`'s flags.
#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Remove the image even when several tags or a stopped container refer to it
    #[arg(short, long)]
    pub force: bool,
    /// The images
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// `berth pull NAME[:TAG]`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// The image: [REGISTRY/]REPOSITORY[:TAG]
    pub name: String,
    /// Suppress the progress output
    #[arg(short, long)]
    pub quiet: bool,
}

/// `berth build [OPTIONS] CONTEXT`, as `docker build` names its flags.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The build context: a directory
    pub context: PathBuf,
    /// Name and optionally a tag (NAME[:TAG]); may be given more than once
    #[arg(short, long = "tag")]
    pub tags: Vec<String>,
    /// The Dockerfile (default: CONTEXT/Dockerfile)
    #[arg(short, long)]
    pub file: Option<PathBuf>,
    /// A build-time variable (KEY=VALUE)
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// The stage to build
    #[arg(long)]
    pub target: Option<String>,
    /// Do not use the cache
    #[arg(long)]
    pub no_cache: bool,
    /// Print only the image id
    #[arg(short, long)]
    pub quiet: bool,
    /// Always pull the base images, even when they are here
    #[arg(long)]
    pub pull: bool,
    /// The network of RUN steps: none (the default), host or bridge
    #[arg(long)]
    pub network: Option<String>,
    /// How to show the build: auto (tty on a terminal, else plain), plain or tty
    #[arg(long, default_value = "auto")]
    pub progress: String,
}

/// `berth push NAME[:TAG]`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The image: [REGISTRY/]REPOSITORY[:TAG]
    pub name: String,
    /// Suppress the progress output
    #[arg(short, long)]
    pub quiet: bool,
    /// Push every tag of the repository (refused: not supported yet)
    #[arg(short, long)]
    pub all_tags: bool,
}

/// `berth login [SERVER]`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry (host[:port]); Docker Hub when none is given
    pub server: Option<String>,
    /// User name
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password
    #[arg(short, long)]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long)]
    pub password_stdin: bool,
}

/// `berth logout [SERVER]`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry (host[:port]); Docker Hub when none is given
    pub server: Option<String>,
}

/// `berth tag SOURCE TARGET`.
#[derive(Debug, Args)]
pub struct TagArgs {
    /// The image
    pub source: String,
    /// The new name: REPOSITORY[:TAG]
    pub target: String,
}

/// `berth network create`'s flags.
#[derive(Debug, Args)]
pub struct NetworkCreateArgs {
    /// Subnet in CIDR form [default: the next free of Docker's pools]
    #[arg(long)]
    pub subnet: Option<String>,
    /// The subnet's gateway [default: its first address]
    #[arg(long)]
    pub gateway: Option<String>,
    /// No way out of the host
    #[arg(long)]
    pub internal: bool,
    /// The network's name
    pub name: String,
}

/// `berth volume create [NAME]`.
#[derive(Debug, Args)]
pub struct VolumeCreateArgs {
    /// The volume's name [default: a random one]
    pub name: Option<String>,
}

/// `berth stop`'s flags.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait for the container to end before killing it
    #[arg(short = 't', long = "time", default_value_t = 10)]
    pub time: u64,
    /// The containers
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `berth rm`'s flags.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Kill and remove a running container
    #[arg(short, long)]
    pub force: bool,
    /// Remove the anonymous volumes of the container too
    #[arg(short, long)]
    pub volumes: bool,
    /// The containers
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `berth logs`'s flags.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Number of lines from the end ("all" for every one)
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// The container
    pub container: String,
}

/// How a command runs in a running container: `berth exec`'s and `berth compose
/// exec`'s flags, as docker's.
#[derive(Debug, Args, Clone)]
pub struct ExecFlags {
    /// Run in the background
    #[arg(short, long)]
    pub detach: bool,
    /// Set an environment variable (KEY=VALUE; repeatable)
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// User to run as (name or UID[:GID])
    #[arg(short, long)]
    pub user: Option<String>,
    /// Give the process extended privileges
    #[arg(long)]
    pub privileged: bool,
}

/// `berth exec [OPTIONS] CONTAINER COMMAND [ARG...]`.
#[derive(Debug, Args)]
pub struct ContainerExecArgs {
    /// How it runs
    #[command(flatten)]
    pub flags: ExecFlags,
    /// Keep STDIN open and send ours to it
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// The container
    pub container: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

/// `berth port`'s arguments.
#[derive(Debug, Args)]
pub struct PortArgs {
    /// The container
    pub container: String,
    /// Only this port: PORT[/PROTO]
    pub port: Option<String>,
}

/// `berth load`'s flags.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The archive to read (docker save or OCI layout form)
    #[arg(short, long)]
    pub input: std::path::PathBuf,
    /// Print only the loaded images' names
    #[arg(short, long)]
    pub quiet: bool,
}

/// `berth ps`'s flags.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show every container (running ones only without it)
    #[arg(short, long)]
    pub all: bool,
    /// The containers of this machine's pods: those of the node agent's engine (its
    /// socket, /run/berth/agent/berth.sock; -H names another)
    #[arg(long)]
    pub pods: bool,
    /// Only the ids
    #[arg(short, long)]
    pub quiet: bool,
}

/// `berth images`'s flags.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only the ids
    #[arg(short, long)]
    pub quiet: bool,
}

/// `berth daemon`'s flags, as dockerd names them.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Root directory of persistent state: images, containers, volumes
    #[arg(long, env = "BERTH_DATA_DIR", default_value = berth_engine::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Root directory of state that lives as long as the boot (runtime state)
    #[arg(long, env = "BERTH_EXEC_ROOT", default_value = berth_engine::DEFAULT_RUN_DIR)]
    pub exec_root: PathBuf,
    /// Parent cgroup of every container's cgroup
    #[arg(long, default_value = "berth")]
    pub cgroup_parent: String,
    /// Interface name of the default bridge network
    #[arg(short = 'b', long, default_value = berth_engine::DEFAULT_BRIDGE)]
    pub bridge: String,
    /// Address and prefix of the default bridge [default: 172.17.0.1/16]
    #[arg(long)]
    pub bip: Option<String>,
    /// The static init binary `run --init` uses [default: docker-init on the PATH, then
    /// /usr/bin/tini-static]
    #[arg(long)]
    pub init_path: Option<std::path::PathBuf>,
    /// A registry (HOST[:PORT]) to pull from over plain HTTP; loopback ones always are
    #[arg(long)]
    pub insecure_registry: Vec<String>,
}

/// `berth monitor`'s arguments, as the engine passes them.
/// The node lifecycle controller's flags, kube-controller-manager's names.
#[derive(Debug, Args)]
pub struct LifecycleArgs {
    /// How long a node may be silent before it is marked NotReady and tainted
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub node_monitor_grace_period: std::time::Duration,
    /// How long pods stay on an unreachable node unless they tolerate it otherwise
    #[arg(long, default_value_t = 30)]
    pub default_unreachable_toleration_seconds: u64,
}

/// `berth controller-manager`: the scheduler and controllers apart from the API server.
#[derive(Debug, Args)]
pub struct ControllerManagerArgs {
    /// The kubeconfig of the cluster to run them for (a `berth server`'s
    /// admin.kubeconfig)
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// The pod addresses of the cluster, handed out to nodes a /24 each
    #[arg(long, default_value = "10.42.0.0/16")]
    pub cluster_cidr: berth_controllers::node_ipam::ClusterCidr,
    /// The node lifecycle controller's settings
    #[command(flatten)]
    pub lifecycle: LifecycleArgs,
}

#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// The runtime's state root
    pub runtime_root: PathBuf,
    /// The container's directory (its bundle)
    pub dir: PathBuf,
    /// The container id
    pub id: String,
}

/// Every top-level command.
#[derive(Debug, Subcommand)]
pub enum Command {
    // --- Daemons -------------------------------------------------------------------
    /// Run the container engine daemon serving the Docker Engine API (on -H, default
    /// unix:///run/berth/berth.sock)
    Daemon(DaemonArgs),
    /// A container's monitor, started by the daemon (not for people)
    #[command(hide = true)]
    Monitor(MonitorArgs),
    /// Run the Kubernetes-compatible API server, scheduler and controllers
    Server(ServerArgs),
    /// Run the scheduler and controllers against a cluster's API server, as
    /// kube-controller-manager and kube-scheduler run apart from kube-apiserver (a
    /// `berth server --leader-elect=false` serves the API alone); they compete for the
    /// same Lease as the servers'
    ControllerManager(ControllerManagerArgs),
    /// Print a kubeconfig for a user authenticating with a client certificate
    Kubeconfig(KubeconfigArgs),
    /// Run the node agent that runs this machine's pods (today: simulated nodes)
    Agent(AgentArgs),
    /// Run an OCI distribution registry
    Registry(RegistryArgs),

    // --- Containers ----------------------------------------------------------------
    /// Create and run a new container from an image
    Run(Box<RunArgs>),
    /// Create a new container without starting it
    Create(Pending),
    /// Start one or more stopped containers
    Start(NamesArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Remove one or more containers
    Rm(RmArgs),
    /// List containers
    Ps(PsArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Execute a command in a running container
    Exec(ContainerExecArgs),
    /// Attach to a running container's input and output
    Attach(Pending),
    /// Block until containers stop, then print their exit codes
    Wait(NamesArgs),
    /// Show low-level information on objects
    Inspect(NamesArgs),
    /// Show the running processes of a container
    Top(Pending),
    /// Show a live stream of container resource usage
    Stats(Pending),
    /// Copy files between a container and the local filesystem
    Cp(Pending),
    /// Rename a container
    Rename(Pending),
    /// Pause all processes within containers
    Pause(NamesArgs),
    /// Unpause all processes within containers
    Unpause(NamesArgs),
    /// List port mappings of a container
    Port(PortArgs),

    // --- Images ----------------------------------------------------------------------
    /// List images
    Images(ImagesArgs),
    /// Build an image from a Dockerfile
    Build(BuildArgs),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
    /// Log in to a registry
    Login(LoginArgs),
    /// Log out from a registry
    Logout(LogoutArgs),
    /// Create a tag that refers to an image
    Tag(TagArgs),
    /// Remove one or more images
    Rmi(RmiArgs),
    /// Load images from a tar archive
    Load(LoadArgs),
    /// Save images to a tar archive
    Save(Pending),
    /// Create an image from a root filesystem tarball
    Import(Pending),
    /// Show the history of an image
    History(Pending),

    // --- Networks, volumes, applications, system ---------------------------------------
    /// Manage networks
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Manage volumes
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Run multi-container applications from a Compose file
    Compose(ComposeArgs),
    /// Manage the engine: disk usage, pruning, events
    #[command(subcommand)]
    System(SystemCommand),
    /// Show system-wide information
    Info(Pending),
    /// Show version information of the client and the daemon
    Version(NoArgs),
    /// Get real-time events from the engine
    Events(Pending),

    // --- Cluster (kubectl's verbs) -------------------------------------------------------
    /// Apply a configuration to a resource by file name or stdin
    Apply(Pending),
    /// Display one or many cluster resources
    Get(Pending),
    /// Show details of a cluster resource
    Describe(Pending),
    /// Delete cluster resources by file names, stdin, resources and names, or selectors
    Delete(Pending),
    /// Manage the rollout of a Deployment, DaemonSet or StatefulSet
    Rollout(Pending),
    /// Set a new size for a Deployment, ReplicaSet or StatefulSet
    Scale(Pending),

    // --- Runtime ---------------------------------------------------------------------------
    /// The low-level OCI runtime, command-line compatible with runc
    Oci(Box<Oci>),
}

/// `berth network …`
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network
    Create(NetworkCreateArgs),
    /// List networks
    Ls(NoArgs),
    /// Show details of networks
    Inspect(NamesArgs),
    /// Remove networks
    Rm(NamesArgs),
    /// Connect a container to a network
    Connect(Pending),
    /// Disconnect a container from a network
    Disconnect(Pending),
    /// Remove all unused networks
    Prune(Pending),
}

/// `berth volume …`
#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume
    Create(VolumeCreateArgs),
    /// List volumes
    Ls(NoArgs),
    /// Show details of volumes
    Inspect(NamesArgs),
    /// Remove volumes
    Rm(NamesArgs),
    /// Remove all unused volumes
    Prune(Pending),
}

/// `berth compose [-f FILE] [-p NAME] [--profile P] …`, as `docker compose` takes them.
#[derive(Debug, Args)]
pub struct ComposeArgs {
    /// The Compose file (default: compose.yaml, compose.yml, docker-compose.yml or
    /// docker-compose.yaml in the current directory)
    #[arg(short, long)]
    pub file: Option<PathBuf>,
    /// The project's name (default: the file's `name`, else its directory's)
    #[arg(short, long)]
    pub project_name: Option<String>,
    /// Enable the services of a profile (repeatable; `*` for all; also COMPOSE_PROFILES,
    /// comma-separated)
    #[arg(long = "profile", value_name = "PROFILE")]
    pub profiles: Vec<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: ComposeCommand,
}

/// `berth compose up`'s flags.
#[derive(Debug, Args)]
pub struct ComposeUpArgs {
    /// Run in the background; without it, up follows the services' output and stops them
    /// on Ctrl+C
    #[arg(short, long)]
    pub detach: bool,
    /// Wait until the services are running or healthy
    #[arg(long)]
    pub wait: bool,
    /// Build images before starting, even when they exist
    #[arg(long, conflicts_with = "no_build")]
    pub build: bool,
    /// Do not build images, even when they are missing
    #[arg(long)]
    pub no_build: bool,
    /// Recreate containers even when their configuration is unchanged
    #[arg(long, conflicts_with = "no_recreate")]
    pub force_recreate: bool,
    /// Keep existing containers even when their configuration changed
    #[arg(long)]
    pub no_recreate: bool,
    /// Also carry out the services' develop.watch rules as files change
    #[arg(short, long)]
    pub watch: bool,
    /// Only these services (and what they depend on)
    pub services: Vec<String>,
}

/// `berth compose down`'s flags.
#[derive(Debug, Args)]
pub struct ComposeDownArgs {
    /// Also remove the named volumes the file declares and anonymous ones
    #[arg(short, long)]
    pub volumes: bool,
    /// Seconds to wait for each container to stop before killing it
    #[arg(short, long, default_value_t = 10)]
    pub timeout: u32,
}

/// Commands that take a list of services (all when none is named).
#[derive(Debug, Args)]
pub struct ComposeServicesArgs {
    /// The services (default: all)
    pub services: Vec<String>,
}

/// `berth compose stop` and `restart`.
#[derive(Debug, Args)]
pub struct ComposeStopArgs {
    /// Seconds to wait for each container to stop before killing it
    #[arg(short, long, default_value_t = 10)]
    pub timeout: u32,
    /// The services (default: all)
    pub services: Vec<String>,
}

/// `berth compose logs`.
#[derive(Debug, Args)]
pub struct ComposeLogsArgs {
    /// Follow the output as it comes
    #[arg(short, long)]
    pub follow: bool,
    /// Lines from the end of each container's log (`all` for every line)
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Do not prefix lines with the container's name
    #[arg(long)]
    pub no_log_prefix: bool,
    /// The services (default: all)
    pub services: Vec<String>,
}

/// `berth compose …`
#[derive(Debug, Subcommand)]
pub enum ComposeCommand {
    /// Print the project's model, resolved (interpolated, normalised, checked)
    Config(NoArgs),
    /// Create and start the application's containers
    Up(ComposeUpArgs),
    /// Stop and remove the application's containers and networks
    Down(ComposeDownArgs),
    /// List the application's containers
    Ps(NoArgs),
    /// Show the application's logs
    Logs(ComposeLogsArgs),
    /// Build the services' images
    Build(ComposeServicesArgs),
    /// Pull the services' images
    Pull(ComposeServicesArgs),
    /// Push the services' images
    Push(ComposeServicesArgs),
    /// Start the services' existing containers
    Start(ComposeServicesArgs),
    /// Stop the services' containers
    Stop(ComposeStopArgs),
    /// Restart the services' containers
    Restart(ComposeStopArgs),
    /// Bring the services up and carry out their develop.watch rules as files change
    Watch(ComposeServicesArgs),
    /// Run a command in a running service container
    Exec(ComposeExecArgs),
    /// Run a one-off command on a service
    Run(ComposeRunArgs),
}

/// `berth compose exec [OPTIONS] SERVICE COMMAND [ARG...]`.
#[derive(Debug, Args)]
pub struct ComposeExecArgs {
    /// How it runs
    #[command(flatten)]
    pub flags: ExecFlags,
    /// Do not allocate a TTY (compose allocates one when stdin is a terminal)
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Which of the service's containers, from 1
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// The service
    pub service: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

/// `berth compose run [OPTIONS] SERVICE [COMMAND [ARG...]]`.
#[derive(Debug, Args)]
pub struct ComposeRunArgs {
    /// Run in the background and print the container's id
    #[arg(short, long)]
    pub detach: bool,
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Its name (default: <project>-<service>-run-<id>)
    #[arg(long)]
    pub name: Option<String>,
    /// Set an environment variable (KEY=VALUE; repeatable)
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Do not start the services it depends on
    #[arg(long)]
    pub no_deps: bool,
    /// Its entrypoint, over the service's and the image's
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Do not allocate a TTY (none is allocated yet: accepted for compose's scripts)
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// The service
    pub service: String,
    /// The command and its arguments, over the service's
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `berth system …`
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show disk usage
    Df(Pending),
    /// Remove unused data
    Prune(Pending),
    /// Show system-wide information
    Info(Pending),
    /// Get real-time events from the engine
    Events(Pending),
}

/// `berth oci …`: runc's command line, flags included.
#[derive(Debug, Args)]
pub struct Oci {
    /// Directory for the runtime's container state
    #[arg(long, default_value = "/run/berth/oci", env = "BERTH_OCI_ROOT")]
    pub root: PathBuf,
    /// Also write errors to this file (containerd reads them from here)
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Format of the --log file: text or json
    #[arg(long, default_value = "text")]
    pub log_format: String,
    /// Accepted for runc compatibility; cgroups are managed through the cgroup filesystem
    #[arg(long, hide = true)]
    pub systemd_cgroup: bool,
    /// Accepted for runc compatibility; use --log-level debug
    #[arg(long, hide = true)]
    pub debug: bool,
    /// The runtime command.
    #[command(subcommand)]
    pub command: OciCommand,
}

/// Flags shared by `create` and `run`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Path to the bundle directory (holding config.json)
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the container's init pid to this file
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pseudo-terminal's master (process.terminal)
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Move the root filesystem into place instead of pivot_root (for an initramfs host)
    #[arg(long)]
    pub no_pivot: bool,
    /// Accepted for runc compatibility
    #[arg(long, hide = true)]
    pub no_new_keyring: bool,
    /// The container id
    pub id: String,
}

/// `berth oci exec`'s flags, as runc's.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// A process.json (runtime-spec `process`) describing what to run
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Set an environment variable (repeatable)
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Working directory inside the container
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// UID[:GID] to run as
    #[arg(short, long)]
    pub user: Option<String>,
    /// Return once the process has started
    #[arg(short, long)]
    pub detach: bool,
    /// Write the process's host pid to this file
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Allocate a pseudo-terminal
    #[arg(short, long)]
    pub tty: bool,
    /// Unix socket to send the terminal's master to (with --tty)
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Read the terminal's sizes (`ROWS COLUMNS` lines) from this inherited descriptor
    /// while relaying it (with --tty and no --console-socket; a Berth extension)
    #[arg(long, value_name = "FD")]
    pub resize_fd: Option<i32>,
    /// The container id
    pub id: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `berth oci` subcommands.
#[derive(Debug, Subcommand)]
pub enum OciCommand {
    /// Create a container from a bundle (start runs its process)
    Create(CreateArgs),
    /// Run the process of a created container
    Start {
        /// The container id
        id: String,
    },
    /// Print the state of a container as runtime-spec JSON
    State {
        /// The container id
        id: String,
    },
    /// Send a signal (default SIGTERM) to a container's init process
    Kill {
        /// Send the signal to every process of the container
        #[arg(short, long)]
        all: bool,
        /// The container id
        id: String,
        /// Signal name or number
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container and everything the runtime made for it
    Delete {
        /// Kill the container first if it is still running
        #[arg(short, long)]
        force: bool,
        /// The container id
        id: String,
    },
    /// Create and start a container, and wait for it unless --detach
    Run {
        /// Return once the container has started
        #[arg(short, long)]
        detach: bool,
        /// Keep the container's state after it exits
        #[arg(long)]
        keep: bool,
        /// Flags shared with create
        #[command(flatten)]
        create: CreateArgs,
    },
    /// Run a new process inside a container
    Exec(ExecArgs),
    /// List containers
    List {
        /// Output format: table or json
        #[arg(short, long, default_value = "table")]
        format: String,
        /// Print only the ids
        #[arg(short, long)]
        quiet: bool,
    },
    /// List the processes of a container
    Ps {
        /// Output format: table or json
        #[arg(short, long, default_value = "table")]
        format: String,
        /// The container id
        id: String,
    },
    /// Print a container's usage as JSON: once with --stats, else every --interval
    Events {
        /// Print one stats reading and exit
        #[arg(long)]
        stats: bool,
        /// Seconds between readings when streaming
        #[arg(long, default_value = "5s", value_parser = parse_seconds)]
        interval: std::time::Duration,
        /// The container id
        id: String,
    },
    /// Freeze every process of a container
    Pause {
        /// The container id
        id: String,
    },
    /// Thaw a paused container
    Resume {
        /// The container id
        id: String,
    },
    /// Write a default config.json into a bundle
    Spec {
        /// The bundle directory to write config.json into
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// Add this Docker-format seccomp profile (e.g. Docker's default,
        /// /usr/share/containers/seccomp.json) for the config's capabilities
        #[arg(long, value_name = "FILE")]
        seccomp_profile: Option<PathBuf>,
    },
}

/// `5s`, `500ms` or a plain number of seconds, as runc's `--interval` takes them.
fn parse_seconds(text: &str) -> Result<std::time::Duration, String> {
    let invalid = || format!("invalid duration {text:?}: use e.g. 5s or 500ms");
    if let Some(ms) = text.strip_suffix("ms") {
        return ms
            .parse()
            .map(std::time::Duration::from_millis)
            .map_err(|_| invalid());
    }
    text.trim_end_matches('s')
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(std::time::Duration::from_secs_f64)
        .ok_or_else(invalid)
}
