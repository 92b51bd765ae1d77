//! `berth server`: the Kubernetes-compatible API server in the foreground until SIGINT or
//! SIGTERM.

use std::process::ExitCode;

use anyhow::Context;

use crate::Outcome;
use crate::cli::ServerArgs;

/// Runs the server.
pub fn run(args: ServerArgs) -> Result<ExitCode, Outcome> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let config = berth_apiserver::ServerConfig {
        data_dir: args.data_dir,
        datastore: args.datastore,
        bind: args.bind,
        write_kubeconfig: args.write_kubeconfig,
        compaction_interval: args.compaction_interval,
    };
    runtime
        .block_on(berth_apiserver::run(
            config,
            crate::daemon::shutdown_signal(),
        ))
        .context("serve the Kubernetes API")?;
    Ok(ExitCode::SUCCESS)
}
