//! `berth registry serve`: an OCI distribution registry on its own (berth-registry).

use std::process::ExitCode;

use anyhow::Context as _;

use crate::Outcome;
use crate::cli::{RegistryArgs, RegistryCommand};

/// Runs the registry until the process is stopped.
pub fn run(args: RegistryArgs) -> Result<ExitCode, Outcome> {
    let RegistryCommand::Serve(serve) = args.command;
    let runtime = crate::async_runtime()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(serve.addr)
            .await
            .with_context(|| format!("listen on {}", serve.addr))?;
        tracing::info!(address = %serve.addr, root = %serve.root.display(), "serving the registry");
        let options = berth_registry::ServeOptions {
            htpasswd: serve.htpasswd.clone(),
            tls: serve.tls_cert.clone().zip(serve.tls_key.clone()),
        };
        berth_registry::serve(listener, &serve.root, &options)
            .await
            .with_context(|| format!("serve the registry in {}", serve.root.display()))
    })?;
    Ok(ExitCode::SUCCESS)
}
