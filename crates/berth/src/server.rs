//! `berth server`: the Kubernetes-compatible API server in the foreground until SIGINT or
//! SIGTERM.

use std::process::ExitCode;

use anyhow::Context;

use crate::Outcome;
use crate::cli::{AgentArgs, KubeconfigArgs, ServerArgs};

/// Runs the server.
pub fn run(args: ServerArgs) -> Result<ExitCode, Outcome> {
    return_memory_promptly();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let kubeconfig = args.data_dir.join("admin.kubeconfig");
    let config = berth_apiserver::ServerConfig {
        data_dir: args.data_dir,
        datastore: args.datastore,
        bind: args.bind,
        write_kubeconfig: args.write_kubeconfig,
        compaction_interval: args.compaction_interval,
    };
    runtime.block_on(async {
        if args.leader_elect {
            let lifecycle = berth_controllers::nodes::Lifecycle {
                grace_period: args.node_monitor_grace_period,
                default_toleration: std::time::Duration::from_secs(
                    args.default_unreachable_toleration_seconds,
                ),
            };
            tokio::spawn(controller_manager(kubeconfig, lifecycle));
        }
        berth_apiserver::run(config, crate::daemon::shutdown_signal())
            .await
            .context("serve the Kubernetes API")
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `berth agent`: simulated nodes until SIGINT or SIGTERM (running real pods comes with
/// the cluster issue).
pub fn agent(args: AgentArgs) -> Result<ExitCode, Outcome> {
    let Some(count) = args.simulate else {
        return Err(
            anyhow::anyhow!("only simulated nodes are implemented yet: pass --simulate N").into(),
        );
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let simulation = berth_agent::simulate::Simulation {
        prefix: args.node_name.clone(),
        count,
        capacity: (args.cpu.clone(), args.memory.clone(), args.max_pods.clone()),
        heartbeat: args.heartbeat_interval,
    };
    runtime.block_on(async {
        let token = berth_agent::join::JoinToken::parse(&args.token)?;
        let client =
            berth_agent::join::join(&args.server, &token, args.certificate_authority.as_deref())
                .await?;
        tokio::select! {
            result = berth_agent::simulate::run(client, simulation) => result.context("run the simulated nodes"),
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
async fn controller_manager(
    kubeconfig: std::path::PathBuf,
    lifecycle: berth_controllers::nodes::Lifecycle,
) {
    let client = loop {
        match client_of(&kubeconfig).await {
            Ok(client) => break client,
            Err(error) => tracing::debug!(%error, "waiting for the admin kubeconfig"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let election = berth_controllers::Election::controller_manager(identity());
    berth_controllers::run_controller_manager(client, election, lifecycle).await;
}

async fn client_of(kubeconfig: &std::path::Path) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let options = kube::config::KubeConfigOptions::default();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options).await?;
    Ok(kube::Client::try_from(config)?)
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
