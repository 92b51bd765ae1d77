//! `berth server`: the Kubernetes-compatible API server in the foreground until SIGINT or
//! SIGTERM.

use std::process::ExitCode;

use anyhow::Context;

use crate::Outcome;
use crate::cli::{AgentArgs, KubeconfigArgs, NodeArgs, ServerArgs};

/// Runs the server, and the agent of its machine unless `--disable-agent`.
pub fn run(args: ServerArgs) -> Result<ExitCode, Outcome> {
    return_memory_promptly();
    let runtime = crate::async_runtime()?;
    let kubeconfig = args.data_dir.join("admin.kubeconfig");
    let config = berth_apiserver::ServerConfig {
        data_dir: args.data_dir.clone(),
        datastore: args.datastore,
        bind: args.bind,
        write_kubeconfig: args.write_kubeconfig,
        compaction_interval: args.compaction_interval,
        audit: args
            .audit_policy_file
            .map(|policy_file| berth_apiserver::AuditConfig {
                policy_file,
                log_path: args.audit_log_path.unwrap_or_default(),
            }),
        service_ranges: berth_apiserver::ServiceRanges {
            cluster_ips: args.node.service_cidr,
            node_ports: args.service_node_port_range,
        },
        cluster_dns: args.node.cluster_dns,
    };
    let agent = (!args.disable_agent).then(|| {
        let server = format!("https://{}", loopback_if_any(args.bind));
        let token_file = args.data_dir.join("token");
        (
            server,
            token_file,
            agent_config(&args.data_dir, &args.node, None),
        )
    });
    if args.leader_elect {
        let lifecycle = lifecycle(&args.lifecycle);
        run_apart(
            "controllers",
            controller_manager(kubeconfig, lifecycle, args.node.cluster_cidr),
        )?;
    }
    runtime.block_on(async {
        if !args.disable_registry {
            crate::registry::cluster_registry(args.registry_addr, &args.data_dir).await?;
        }
        if let Some((server, token_file, config)) = agent {
            tokio::spawn(own_agent(server, token_file, config?));
        }
        berth_apiserver::run(config, crate::daemon::shutdown_signal())
            .await
            .context("serve the Kubernetes API")
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `work` on a runtime of its own threads, named `name`, for as long as the process
/// lives. The controller manager runs so: on the API's runtime its tasks waited behind
/// every request ready before them (tokio schedules cooperatively), and under a flood
/// of creates the scheduler fell up to a second behind; on threads of their own the
/// kernel shares the cores between the two, as between kube-apiserver and
/// kube-controller-manager.
fn run_apart(
    name: &str,
    work: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let runtime = crate::async_runtime_named(name)?;
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || runtime.block_on(work))
        .with_context(|| format!("start the {name} thread"))?;
    Ok(())
}

/// The address this server's own agent reaches it at: loopback when it listens on all.
fn loopback_if_any(bind: std::net::SocketAddr) -> std::net::SocketAddr {
    if bind.ip().is_unspecified() {
        std::net::SocketAddr::from(([127, 0, 0, 1], bind.port()))
    } else {
        bind
    }
}

/// The agent of the server's own machine: it joins with the token the server wrote,
/// as any other agent would. An agent that fails is logged; the server serves on.
async fn own_agent(
    server: String,
    token_file: std::path::PathBuf,
    config: berth_agent::AgentConfig,
) {
    let token = loop {
        match std::fs::read_to_string(&token_file) {
            Ok(token) if !token.trim().is_empty() => break token,
            _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    };
    let token = match berth_agent::join::JoinToken::parse(&token) {
        Ok(token) => token,
        Err(error) => {
            return tracing::error!(%error, "the machine's agent cannot read the join token");
        }
    };
    // The API may not answer for a moment after the token is written.
    let client = loop {
        match berth_agent::join::join_as_node(&server, (&token, None), &config.node_name).await {
            Ok(client) => break client,
            Err(error) => {
                tracing::debug!(%error, "the machine's agent waits for the API");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    };
    if let Err(error) = run_agent(client, config).await {
        tracing::error!(%error, "the machine's agent stopped");
    }
}

/// Starts the node's agent and runs its pods, serving the Docker API of its engine at
/// `<exec-root>/agent/berth.sock` for the operator (`berth ps --pods`, or `docker` with
/// that socket), as `ctr -n k8s.io` or `crictl` show a kubelet's containers.
async fn run_agent(client: kube::Client, config: berth_agent::AgentConfig) -> anyhow::Result<()> {
    let socket = config.run_dir.join("berth.sock");
    let agent = berth_agent::Agent::start(client, config).await?;
    let engine = agent.engine();
    tokio::spawn(async move {
        if let Err(error) = crate::daemon::serve(engine, socket).await {
            tracing::warn!(%error, "could not serve the agent's engine to the operator");
        }
    });
    agent.run().await;
    Ok(())
}

/// An agent's settings from its flags: state under `<data_dir>/agent`, runtime state
/// under `<exec-root>/agent`.
fn agent_config(
    data_dir: &std::path::Path,
    node: &NodeArgs,
    heartbeat: Option<std::time::Duration>,
) -> anyhow::Result<berth_agent::AgentConfig> {
    let node_name = match &node.node_name {
        Some(name) => name.clone(),
        None => nix::unistd::gethostname()
            .context("read the host name for the node's name")?
            .to_string_lossy()
            .into_owned(),
    };
    Ok(berth_agent::AgentConfig {
        node_name,
        node_ip: node.node_ip,
        data_dir: data_dir.join("agent"),
        run_dir: node.exec_root.join("agent"),
        berth_binary: "/proc/self/exe".into(),
        heartbeat: heartbeat.unwrap_or(berth_agent::LEASE_RENEW_INTERVAL),
        insecure_registries: node.insecure_registry.clone(),
        cgroup_parent: node.cgroup_parent.clone(),
        port: node.kubelet_port,
        cni_conf_dir: node.cni_conf_dir.clone(),
        cni_bin_dirs: node.cni_bin_dir.clone(),
        service_cidr: node.service_cidr,
        cluster_cidr: node
            .cluster_cidr
            .to_string()
            .parse()
            .context("read the cluster CIDR")?,
        dns: berth_agent::ClusterDns {
            address: node.cluster_dns,
            domain: node.cluster_domain.clone(),
        },
        ingress: (!node.disable_ingress).then_some(berth_agent::IngressPorts {
            http: 80,
            https: 443,
        }),
    })
}

/// `berth agent`: the node agent, or simulated nodes, until SIGINT or SIGTERM.
pub fn agent(args: AgentArgs) -> Result<ExitCode, Outcome> {
    return_memory_promptly();
    let runtime = crate::async_runtime()?;
    runtime.block_on(async {
        let token = berth_agent::join::JoinToken::parse(&args.token)?;
        let ca_file = args.certificate_authority.as_deref();
        let work = async {
            match args.simulate {
                Some(count) => {
                    // Simulated nodes share one process: they keep the join token's rights.
                    let client = berth_agent::join::join(&args.server, &token, ca_file).await?;
                    let simulation = berth_agent::simulate::Simulation {
                        prefix: args
                            .node
                            .node_name
                            .clone()
                            .unwrap_or_else(|| "berth-sim".into()),
                        count,
                        capacity: (args.cpu.clone(), args.memory.clone(), args.max_pods.clone()),
                        heartbeat: args.heartbeat_interval,
                    };
                    berth_agent::simulate::run(client, simulation)
                        .await
                        .context("run the simulated nodes")
                }
                None => {
                    let config =
                        agent_config(&args.data_dir, &args.node, Some(args.heartbeat_interval))?;
                    let name = &config.node_name;
                    let joined =
                        berth_agent::join::join_as_node(&args.server, (&token, ca_file), name);
                    run_agent(joined.await?, config)
                        .await
                        .context("run the node")
                }
            }
        };
        tokio::select! {
            result = work => result,
            () = crate::daemon::shutdown_signal() => Ok(()),
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `berth kubeconfig`: prints a kubeconfig with a client certificate for the user.
pub fn kubeconfig(args: &KubeconfigArgs) -> Result<ExitCode, Outcome> {
    let config =
        berth_apiserver::client_kubeconfig(&args.data_dir, &args.user, args.group.as_deref())
            .with_context(|| format!("make a kubeconfig for {}", args.user))?;
    print!("{config}");
    Ok(ExitCode::SUCCESS)
}

/// Keeps the server's resident memory close to what it holds. Lists and watches make
/// large short-lived buffers; glibc would otherwise raise its mmap threshold after
/// the first is freed and serve the next from per-thread heaps it rarely gives back.
fn return_memory_promptly() {
    // SAFETY: mallopt only tunes the allocator; called before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// The controller manager, a client of this server's API through the admin
/// kubeconfig the server writes as it starts.
/// `berth controller-manager`: the controller manager of the kubeconfig's cluster, run
/// until interrupted.
pub fn controller_manager_alone(
    args: crate::cli::ControllerManagerArgs,
) -> Result<ExitCode, Outcome> {
    return_memory_promptly();
    let runtime = crate::async_runtime()?;
    runtime.block_on(async {
        let lifecycle = lifecycle(&args.lifecycle);
        tokio::select! {
            () = controller_manager(args.kubeconfig, lifecycle, args.cluster_cidr) => {}
            () = crate::daemon::shutdown_signal() => {}
        }
    });
    Ok(ExitCode::SUCCESS)
}

/// The node lifecycle controller's settings from its flags.
fn lifecycle(args: &crate::cli::LifecycleArgs) -> berth_controllers::nodes::Lifecycle {
    berth_controllers::nodes::Lifecycle {
        grace_period: args.node_monitor_grace_period,
        default_toleration: std::time::Duration::from_secs(
            args.default_unreachable_toleration_seconds,
        ),
    }
}

async fn controller_manager(
    kubeconfig: std::path::PathBuf,
    lifecycle: berth_controllers::nodes::Lifecycle,
    cluster_cidr: berth_controllers::node_ipam::ClusterCidr,
) {
    let (client, root_ca) = loop {
        match client_of(&kubeconfig).await {
            Ok(client) => break client,
            Err(error) => tracing::debug!(%error, "waiting for the admin kubeconfig"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let election = berth_controllers::Election::controller_manager(identity());
    berth_controllers::run_controller_manager(client, election, lifecycle, cluster_cidr, root_ca)
        .await;
}

/// A client of the kubeconfig's cluster, and the cluster's CA (PEM) it trusts.
async fn client_of(kubeconfig: &std::path::Path) -> anyhow::Result<(kube::Client, String)> {
    use base64::Engine as _;
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let authority = kubeconfig
        .clusters
        .iter()
        .find_map(|c| c.cluster.as_ref()?.certificate_authority_data.clone())
        .context("the admin kubeconfig names no certificate authority")?;
    let root_ca = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(authority)?)?;
    let options = kube::config::KubeConfigOptions::default();
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options).await?;
    // The name the server records the controllers' writes under in managedFields, as
    // kube-controller-manager's (without one they were "unknown").
    let agent = concat!("kube-controller-manager/", env!("CARGO_PKG_VERSION"));
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(agent),
    ));
    Ok((kube::Client::try_from(config)?, root_ca))
}

/// This server's name in leader election: its hostname and what tells its process
/// apart from others there, as kube-controller-manager's `hostname_uuid`.
fn identity() -> String {
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "berth".into());
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{host}_{}_{started:08x}", std::process::id())
}
