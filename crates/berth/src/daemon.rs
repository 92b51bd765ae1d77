//! `berth daemon`: opens the engine's state and serves the Docker Engine API on a unix
//! socket until SIGINT or SIGTERM, then removes the socket.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use berth_engine::{DEFAULT_RUN_DIR, Engine, EngineConfig};

use crate::Outcome;
use crate::cli::DaemonArgs;

/// Runs the daemon in the foreground.
pub fn run(args: &DaemonArgs, host: Option<&str>) -> Result<ExitCode, Outcome> {
    let socket = socket_path(host)?;
    let engine = Engine::open(&EngineConfig {
        data_dir: args.data_dir.clone(),
        run_dir: args.exec_root.clone(),
        // The daemon runs from its sealed binary, and so do its helpers.
        berth_binary: "/proc/self/exe".into(),
        cgroup_parent: args.cgroup_parent.clone(),
        bridge: berth_engine::BridgeConfig {
            name: args.bridge.clone(),
            address: args.bip.clone(),
            routed: None,
        },
        init_path: args.init_path.clone(),
        insecure_registries: args.insecure_registry.clone(),
        firewall_table: "berth".into(),
        cni: None,
        event_history: berth_engine::DOCKER_EVENT_HISTORY,
    })
    .with_context(|| format!("open the engine's state in {}", args.data_dir.display()))?;
    let runtime = crate::async_runtime()?;
    let engine = Arc::new(engine);
    engine.restore();
    let served = runtime.block_on(serve(Arc::clone(&engine), socket));
    engine.shutdown_networks();
    // Requests still blocked (a `wait` on a container that runs on) must not hold the
    // exit: the containers and their monitors carry on without us.
    runtime.shutdown_background();
    served?;
    Ok(ExitCode::SUCCESS)
}

/// The socket path of `-H unix:///path` (dockerd's form), or the default one.
fn socket_path(host: Option<&str>) -> anyhow::Result<PathBuf> {
    let Some(host) = host else {
        return Ok(PathBuf::from(DEFAULT_RUN_DIR).join("berth.sock"));
    };
    match host.strip_prefix("unix://") {
        Some(path) if path.starts_with('/') => Ok(PathBuf::from(path)),
        _ => bail!("invalid -H {host:?}: the daemon listens on unix:///absolute/path only"),
    }
}

/// Serves the Docker Engine API of `engine` on the unix socket `socket` until SIGINT or
/// SIGTERM, then removes the socket.
pub(crate) async fn serve(engine: Arc<Engine>, socket: PathBuf) -> anyhow::Result<()> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    // A socket file left by a daemon that died is in the way of bind.
    if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        bail!(
            "another daemon is already listening on {}",
            socket.display()
        );
    }
    let _ = std::fs::remove_file(&socket);
    let listener = tokio::net::UnixListener::bind(&socket)
        .with_context(|| format!("listen on {}", socket.display()))?;
    tracing::info!(socket = %socket.display(), "serving the Docker Engine API");
    let result = tokio::select! {
        served = berth_dockerapi::serve(engine, listener) => served.context("serve the API"),
        () = shutdown_signal() => Ok(()),
    };
    let _ = std::fs::remove_file(&socket);
    result
}

pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}
