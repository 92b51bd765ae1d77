//! `berth registry serve`: an OCI distribution registry on its own (berth-registry); and
//! the same registry as every `berth server` runs it for its cluster.

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
        let proxy = match &serve.proxy {
            Some(url) => {
                let host = url.split_once("://").map_or(url.as_str(), |(_, h)| h);
                let credentials = crate::credentials::kept_credentials(host.trim_end_matches('/'));
                Some(berth_registry::Upstream::new(url, credentials).map_err(anyhow::Error::msg)?)
            }
            None => None,
        };
        let (htpasswd, token) = authentication(&serve)?;
        let options = berth_registry::ServeOptions {
            proxy,
            htpasswd,
            token,
            tls: serve.tls_cert.clone().zip(serve.tls_key.clone()),
            gc_every: Some(serve.gc_interval).filter(|every| !every.is_zero()),
            gc_policy: berth_registry::GcPolicy {
                grace: serve.gc_grace,
                keep_tags: serve.keep_tags,
            },
        };
        berth_registry::serve(listener, &serve.root, &options)
            .await
            .with_context(|| format!("serve the registry in {}", serve.root.display()))
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The htpasswd file or the token settings `--auth` asks for, each with its flags.
fn authentication(
    serve: &crate::cli::RegistryServeArgs,
) -> anyhow::Result<(
    Option<std::path::PathBuf>,
    Option<berth_registry::TokenSettings>,
)> {
    match serve.auth.as_deref() {
        None => Ok((None, None)),
        Some("htpasswd") => {
            if serve.token_realm.is_some() || serve.token_rootcertbundle.is_some() {
                anyhow::bail!("the --token-* flags are for --auth token");
            }
            let file = serve
                .htpasswd
                .clone()
                .context("--auth htpasswd needs --htpasswd FILE")?;
            Ok((Some(file), None))
        }
        Some(_) => {
            if serve.htpasswd.is_some() {
                anyhow::bail!("--htpasswd is for --auth htpasswd");
            }
            let needed = |value: &Option<String>, flag: &str| {
                value
                    .clone()
                    .with_context(|| format!("--auth token needs {flag}"))
            };
            let settings = berth_registry::TokenSettings {
                realm: needed(&serve.token_realm, "--token-realm URL")?,
                service: needed(&serve.token_service, "--token-service NAME")?,
                issuer: needed(&serve.token_issuer, "--token-issuer NAME")?,
                root_cert_bundle: serve
                    .token_rootcertbundle
                    .clone()
                    .context("--auth token needs --token-rootcertbundle FILE")?,
            };
            Ok((None, Some(settings)))
        }
    }
}

/// The port the cluster's registry takes when no address is given, distribution's.
const CLUSTER_REGISTRY_PORT: u16 = 5000;

/// Starts the cluster's registry of `berth server`, stored under `<data_dir>/registry`:
/// at `addr` when given (a failure to listen is then the server's), else on loopback's
/// port 5000 when it is free (when not, the server runs without one and says so).
pub(crate) async fn cluster_registry(
    addr: Option<std::net::SocketAddr>,
    data_dir: &std::path::Path,
) -> anyhow::Result<()> {
    let chosen = addr.unwrap_or_else(|| ([127, 0, 0, 1], CLUSTER_REGISTRY_PORT).into());
    let listener = match tokio::net::TcpListener::bind(chosen).await {
        Ok(listener) => listener,
        Err(error) if addr.is_none() => {
            tracing::warn!(%error, address = %chosen, "the cluster's registry is not running: give --registry-addr another address");
            return Ok(());
        }
        Err(error) => return Err(error).with_context(|| format!("--registry-addr {chosen}")),
    };
    let root = data_dir.join("registry");
    tracing::info!(address = %chosen, root = %root.display(), "serving the cluster's registry");
    let options = berth_registry::ServeOptions {
        gc_every: Some(std::time::Duration::from_secs(3600)),
        ..Default::default()
    };
    tokio::spawn(async move {
        if let Err(error) = berth_registry::serve(listener, &root, &options).await {
            tracing::error!(%error, "the cluster's registry stopped");
        }
    });
    Ok(())
}
