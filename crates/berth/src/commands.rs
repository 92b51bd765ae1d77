//! The CLI's request-and-answer commands, clients of the daemon's API as docker's are:
//! stop, rm, logs, port and load, with docker's output.

use std::process::ExitCode;

use anyhow::{Context, anyhow};
use berth_dockerapi::client::Client;

use crate::Outcome;
use crate::cli::{LoadArgs, LogsArgs, PortArgs, RmArgs, StopArgs};
use crate::containers::{demultiplex, with_daemon};

/// Runs `request` for each container and prints its name as docker does; the failures
/// are reported one by one and make the exit status 1.
fn each_container(
    host: Option<&str>,
    containers: &[String],
    request: impl Fn(&str) -> (&'static str, String),
) -> Result<ExitCode, Outcome> {
    let failed = with_daemon(host, |client| async move {
        let mut failed = false;
        for name in containers {
            let (method, path) = request(name);
            match client.call(method, &path, None).await.and_then(|a| a.ok()) {
                Ok(_) => println!("{name}"),
                Err(error) => {
                    eprintln!("Error response from daemon: {error}");
                    failed = true;
                }
            }
        }
        Ok(failed)
    })?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `berth stop`.
pub fn stop(args: &StopArgs, host: Option<&str>) -> Result<ExitCode, Outcome> {
    each_container(host, &args.containers, |name| {
        ("POST", format!("/containers/{name}/stop?t={}", args.time))
    })
}

/// `berth rm`.
pub fn rm(args: &RmArgs, host: Option<&str>) -> Result<ExitCode, Outcome> {
    each_container(host, &args.containers, |name| {
        (
            "DELETE",
            format!("/containers/{name}?force={}&v={}", args.force, args.volumes),
        )
    })
}

async fn inspect(client: &Client, name: &str) -> anyhow::Result<serde_json::Value> {
    let answer = client
        .call("GET", &format!("/containers/{name}/json"), None)
        .await
        .and_then(|a| a.ok())
        .map_err(|e| anyhow!(e))?;
    Ok(answer.json())
}

/// `berth logs` (without follow): the container's output so far, stdout and stderr apart.
pub fn logs(args: &LogsArgs, host: Option<&str>) -> Result<ExitCode, Outcome> {
    with_daemon(host, |client| async move {
        let tty = inspect(&client, &args.container).await?["Config"]["Tty"]
            .as_bool()
            .unwrap_or(false);
        let path = format!(
            "/containers/{}/logs?stdout=1&stderr=1&timestamps={}&tail={}",
            args.container, args.timestamps, args.tail
        );
        let answer = client
            .call("GET", &path, None)
            .await
            .and_then(|a| a.ok())
            .map_err(|e| anyhow!(e))?;
        if tty {
            use std::io::Write;
            std::io::stdout().write_all(&answer.body)?;
        } else {
            demultiplex(&answer.body[..]).await;
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `berth port`: `PORT/PROTO -> HOST_IP:HOST_PORT`, or only the host side for one port.
pub fn port(args: &PortArgs, host: Option<&str>) -> Result<ExitCode, Outcome> {
    let container = with_daemon(host, |client| async move {
        inspect(&client, &args.container).await
    })?;
    let wanted = args.port.as_ref().map(|p| {
        if p.contains('/') {
            p.clone()
        } else {
            format!("{p}/tcp")
        }
    });
    let ports = container["NetworkSettings"]["Ports"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut found = false;
    for (port, bindings) in &ports {
        if wanted.as_ref().is_some_and(|w| w != port) {
            continue;
        }
        for binding in bindings.as_array().into_iter().flatten() {
            let address = format!(
                "{}:{}",
                binding["HostIp"].as_str().unwrap_or_default(),
                binding["HostPort"].as_str().unwrap_or_default()
            );
            found = true;
            match &wanted {
                Some(_) => println!("{address}"),
                None => println!("{port} -> {address}"),
            }
        }
    }
    match (wanted, found) {
        (Some(port), false) => Err(Outcome::Failed(anyhow!(
            "No public port '{port}' published for {}",
            args.container
        ))),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// `berth load -i FILE`.
pub fn load(args: &LoadArgs, host: Option<&str>) -> Result<ExitCode, Outcome> {
    let archive =
        std::fs::read(&args.input).with_context(|| format!("open {}", args.input.display()))?;
    let answer = with_daemon(host, |client| async move {
        client
            .upload(
                &format!("/images/load?quiet={}", args.quiet),
                archive.into(),
                "application/x-tar",
            )
            .await
            .and_then(|a| a.ok())
            .map_err(|e| anyhow!(e))
    })?;
    for line in String::from_utf8_lossy(&answer.body).lines() {
        let message: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        if let Some(error) = message["error"].as_str() {
            return Err(Outcome::Failed(anyhow!("{error}")));
        }
        print!("{}", message["stream"].as_str().unwrap_or_default());
    }
    Ok(ExitCode::SUCCESS)
}
