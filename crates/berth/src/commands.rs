//! The CLI's request-and-answer commands, clients of the daemon's API as docker's are:
//! start, stop, restart, kill, pause, unpause, wait, rm, logs, port, inspect, load, tag,
//! rmi and version, with docker's output.

use std::process::ExitCode;

use anyhow::{Context, anyhow};
use berth_dockerapi::client::Client;

use crate::Outcome;
use crate::cli::{
    KillArgs, LoadArgs, LogsArgs, NamesArgs, PortArgs, RmArgs, RmiArgs, StopArgs, TagArgs,
};
use crate::containers::{demultiplex, with_daemon};

/// Runs `request` for each container and prints its name as docker does; the failures
/// are reported one by one and make the exit status 1.
fn each_container(
    host: Option<&str>,
    containers: &[String],
    request: impl Fn(&str) -> (&'static str, String),
) -> Result<ExitCode, Outcome> {
    each_name(host, containers, request, |name, _| println!("{name}"))
}

/// Runs `request` for each name and `report`s each answer; the failures are reported
/// one by one and make the exit status 1.
pub(crate) fn each_name(
    host: Option<&str>,
    names: &[String],
    request: impl Fn(&str) -> (&'static str, String),
    report: impl Fn(&str, serde_json::Value),
) -> Result<ExitCode, Outcome> {
    let failed = with_daemon(host, |client| async move {
        let mut failed = false;
        for name in names {
            let (method, path) = request(name);
            match client.call(method, &path, None).await.and_then(|a| a.ok()) {
                Ok(answer) => report(name, answer.json()),
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

/// `berth start`.
pub fn start(args: &NamesArgs, host: Option<&str>) -> Result<ExitCode, Outcome> {
    each_container(host, &args.names, |name| {
        ("POST", format!("/containers/{name}/start"))
    })
}

/// `berth restart`.
pub fn restart(args: &StopArgs, host: Option<&str>) -> Result<ExitCode, Outcome> {
    each_container(host, &args.containers, |name| {
        (
            "POST",
            format!("/containers/{name}/restart?t={}", args.time),
        )
    })
}

/// `berth kill`.
pub fn kill(args: &KillArgs, host: Option<&str>) -> Result<ExitCode, Outcome> {
    each_container(host, &args.containers, |name| {
        (
            "POST",
            format!("/containers/{name}/kill?signal={}", args.signal),
        )
    })
}

/// `berth pause`.
pub fn pause(args: &NamesArgs, host: Option<&str>) -> Result<ExitCode, Outcome> {
    each_container(host, &args.names, |name| {
        ("POST", format!("/containers/{name}/pause"))
    })
}

/// `berth unpause`.
pub fn unpause(args: &NamesArgs, host: Option<&str>) -> Result<ExitCode, Outcome> {
    each_container(host, &args.names, |name| {
        ("POST", format!("/containers/{name}/unpause"))
    })
}

/// `berth wait`: each container's exit status once it stops.
pub fn wait(args: &NamesArgs, host: Option<&str>) -> Result<ExitCode, Outcome> {
    each_name(
        host,
        &args.names,
        |name| ("POST", format!("/containers/{name}/wait")),
        |_, answer| println!("{}", answer["StatusCode"]),
    )
}

/// `berth rmi`: docker's `Untagged:` and `Deleted:` lines.
pub fn rmi(args: &RmiArgs, host: Option<&str>) -> Result<ExitCode, Outcome> {
    each_name(
        host,
        &args.images,
        |name| ("DELETE", format!("/images/{name}?force={}", args.force)),
        |_, answer| {
            for item in answer.as_array().into_iter().flatten() {
                for (key, label) in [("Untagged", "Untagged"), ("Deleted", "Deleted")] {
                    if let Some(value) = item[key].as_str() {
                        println!("{label}: {value}");
                    }
                }
            }
        },
    )
}

/// `berth tag SOURCE REPOSITORY[:TAG]`.
pub fn tag(args: &TagArgs, host: Option<&str>) -> Result<ExitCode, Outcome> {
    let (repo, tag) = match args
        .target
        .rsplit_once(':')
        .filter(|(_, t)| !t.contains('/'))
    {
        Some((repo, tag)) => (repo, tag),
        None => (args.target.as_str(), "latest"),
    };
    with_daemon(host, |client| async move {
        let path = format!("/images/{}/tag?repo={repo}&tag={tag}", args.source);
        client
            .call("POST", &path, None)
            .await
            .and_then(|a| a.ok())
            .map_err(|e| anyhow!(e))
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `berth inspect`: each object as JSON, in an array as docker prints it; a name is
/// looked for among containers, then images, networks and volumes.
pub fn inspect_objects(args: &NamesArgs, host: Option<&str>) -> Result<ExitCode, Outcome> {
    let (found, missing) = with_daemon(host, |client| async move {
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for name in &args.names {
            let mut object = None;
            for path in [
                format!("/containers/{name}/json"),
                format!("/images/{name}/json"),
                format!("/networks/{name}"),
                format!("/volumes/{name}"),
            ] {
                if let Ok(answer) = client.call("GET", &path, None).await.and_then(|a| a.ok()) {
                    object = Some(answer.json());
                    break;
                }
            }
            match object {
                Some(object) => found.push(object),
                None => missing.push(name.clone()),
            }
        }
        Ok((found, missing))
    })?;
    println!(
        "{}",
        serde_json::to_string_pretty(&found).unwrap_or_default()
    );
    for name in &missing {
        eprintln!("Error: No such object: {name}");
    }
    Ok(if missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `berth version`: this client's version and the daemon's.
pub fn version(host: Option<&str>) -> Result<ExitCode, Outcome> {
    println!("Client:\n Version:    {}", env!("CARGO_PKG_VERSION"));
    let server = with_daemon(host, |client| async move {
        client
            .call("GET", "/version", None)
            .await
            .and_then(|a| a.ok())
            .map(|a| a.json())
            .map_err(|e| anyhow!(e))
    })?;
    let field = |key: &str| server[key].as_str().unwrap_or_default().to_string();
    println!(
        "\nServer: {}\n Engine:\n  Version:     {}\n  API version: {} (minimum version {})\n  OS/Arch:     {}/{}\n  Kernel:      {}",
        server["Platform"]["Name"]
            .as_str()
            .unwrap_or("Berth Engine"),
        field("Version"),
        field("ApiVersion"),
        field("MinAPIVersion"),
        field("Os"),
        field("Arch"),
        field("KernelVersion"),
    );
    Ok(ExitCode::SUCCESS)
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

async fn inspect_container(client: &Client, name: &str) -> anyhow::Result<serde_json::Value> {
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
        let tty = inspect_container(&client, &args.container).await?["Config"]["Tty"]
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
        inspect_container(&client, &args.container).await
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
