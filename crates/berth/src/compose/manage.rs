//! The compose commands besides `up` and `config`: `down`, `ps`, `logs`, `build`, `pull`,
//! `push`, `start`, `stop` and `restart`, each on the project's containers as its labels
//! find them, or on the services named.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{anyhow, bail};
use berth_compose::{Loaded, Service};
use berth_dockerapi::client::Client;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{
    call, container_name, image_name, own_networks, project_containers, scoped, selected,
    start_order,
};
use crate::cli::{ComposeDownArgs, ComposeLogsArgs};
use crate::containers::read_frame;

/// Stops and removes the project's containers, its networks and, with `-v`, its volumes.
pub(super) async fn down(
    client: &Client,
    loaded: &Loaded,
    args: &ComposeDownArgs,
) -> anyhow::Result<()> {
    for container in project_containers(client, loaded, &[]).await? {
        let name = container_name(&container);
        stop_container(client, name, args.timeout).await?;
        let volumes = if args.volumes { "1" } else { "0" };
        let path = format!("/containers/{name}?force=1&v={volumes}");
        call(client, "DELETE", &path, None).await?;
        println!(" Container {name}  Removed");
    }
    for network in own_networks(loaded) {
        let name = scoped(loaded, &network);
        if call(client, "DELETE", &format!("/networks/{name}"), None)
            .await
            .is_ok()
        {
            println!(" Network {name}  Removed");
        }
    }
    if args.volumes {
        for (volume, declared) in &loaded.project.volumes {
            let name = scoped(loaded, volume);
            if !declared.external
                && call(client, "DELETE", &format!("/volumes/{name}"), None)
                    .await
                    .is_ok()
            {
                println!(" Volume {name}  Removed");
            }
        }
    }
    Ok(())
}

/// Stops a container, giving it `timeout` seconds before the kill.
pub(super) async fn stop_container(
    client: &Client,
    name: &str,
    timeout: u32,
) -> anyhow::Result<()> {
    let path = format!("/containers/{name}/stop?t={timeout}");
    call(client, "POST", &path, None).await.map(|_| ())
}

/// Lists the project's containers.
pub(super) async fn ps(client: &Client, loaded: &Loaded) -> anyhow::Result<()> {
    println!("{:<24} {:<24} {:<12} STATUS", "NAME", "IMAGE", "SERVICE");
    for container in project_containers(client, loaded, &[]).await? {
        println!(
            "{:<24} {:<24} {:<12} {}",
            container_name(&container),
            container["Config"]["Image"].as_str().unwrap_or_default(),
            container["Config"]["Labels"]["com.docker.compose.service"]
                .as_str()
                .unwrap_or_default(),
            container["State"]["Status"].as_str().unwrap_or_default(),
        );
    }
    Ok(())
}

/// What `start`, `stop` and `restart` do to each container.
#[derive(Debug, Clone, Copy)]
pub(super) enum Action {
    /// Start it.
    Start,
    /// Stop it, with this many seconds' grace.
    Stop(u32),
    /// Restart it, with this many seconds' grace.
    Restart(u32),
}

/// Starts (dependencies first), stops (dependents first) or restarts the containers of
/// the services named, all when none is.
pub(super) async fn lifecycle(
    client: &Client,
    loaded: &Loaded,
    services: &[String],
    action: Action,
) -> anyhow::Result<()> {
    let mut order: Vec<String> = start_order(loaded, services)?
        .into_iter()
        .map(|(name, _)| name.clone())
        .filter(|name| services.is_empty() || services.contains(name))
        .collect();
    if matches!(action, Action::Stop(_)) {
        order.reverse();
    }
    for service in order {
        for container in project_containers(client, loaded, &[service]).await? {
            let name = container_name(&container);
            let (path, done) = match action {
                Action::Start => (format!("/containers/{name}/start"), "Started"),
                Action::Stop(t) => (format!("/containers/{name}/stop?t={t}"), "Stopped"),
                Action::Restart(t) => (format!("/containers/{name}/restart?t={t}"), "Restarted"),
            };
            call(client, "POST", &path, None).await?;
            println!(" Container {name}  {done}");
        }
    }
    Ok(())
}

/// Prints the output of the containers of the services named (all when none is), each
/// line after its container's name unless `--no-log-prefix`.
pub(super) async fn logs(
    client: &Client,
    loaded: &Loaded,
    args: &ComposeLogsArgs,
) -> anyhow::Result<()> {
    selected(loaded, &args.services)?;
    if args.tail != "all" && args.tail.parse::<u64>().is_err() {
        bail!("invalid --tail {:?}: a number of lines or all", args.tail);
    }
    let containers: Vec<String> = project_containers(client, loaded, &args.services)
        .await?
        .iter()
        .map(|c| container_name(c).to_string())
        .collect();
    let query = format!(
        "stdout=1&stderr=1&follow={}&timestamps={}&tail={}",
        args.follow, args.timestamps, args.tail
    );
    print_logs(client, &containers, &query, !args.no_log_prefix).await
}

/// Follows the whole output of `containers`, each line after the container's name,
/// until every one has ended.
pub(super) async fn follow(client: &Client, containers: &[String]) -> anyhow::Result<()> {
    let query = "stdout=1&stderr=1&follow=1&tail=all";
    print_logs(client, containers, query, true).await
}

/// Prints the logs `query` asks of each of `containers` at once, line by line, after
/// the container's name when `prefixed`.
async fn print_logs(
    client: &Client,
    containers: &[String],
    query: &str,
    prefixed: bool,
) -> anyhow::Result<()> {
    let width = containers.iter().map(String::len).max().unwrap_or(0);
    let streams = containers.iter().map(|name| {
        let prefix = if prefixed {
            format!("{name:<width$} | ")
        } else {
            String::new()
        };
        stream_log(client, name, query, prefix)
    });
    for outcome in futures_util::future::join_all(streams).await {
        outcome?;
    }
    Ok(())
}

/// Prints one container's log stream, line by line after `prefix`.
async fn stream_log(
    client: &Client,
    name: &str,
    query: &str,
    prefix: String,
) -> anyhow::Result<()> {
    let tty = call(client, "GET", &format!("/containers/{name}/json"), None).await?["Config"]["Tty"]
        == true;
    let mut stream = client
        .stream(&format!("/containers/{name}/logs?{query}"))
        .await
        .map_err(|e| anyhow!(e))?;
    let mut lines = Lines {
        prefix,
        pending: BTreeMap::new(),
    };
    while let Some((kind, chunk)) = next_chunk(&mut stream, tty).await {
        lines.add(kind, &chunk);
    }
    lines.finish();
    Ok(())
}

/// The next piece of a log: a frame of the multiplexed stream, or raw bytes with a TTY.
async fn next_chunk(stream: &mut (impl AsyncRead + Unpin), tty: bool) -> Option<(u8, Vec<u8>)> {
    if !tty {
        return read_frame(stream).await;
    }
    let mut buffer = vec![0; 8192];
    let read = stream.read(&mut buffer).await.ok().filter(|n| *n > 0)?;
    buffer.truncate(read);
    Some((1, buffer))
}

/// Whole lines of each output stream, printed after a prefix as they complete.
struct Lines {
    prefix: String,
    pending: BTreeMap<u8, Vec<u8>>,
}

impl Lines {
    fn add(&mut self, kind: u8, chunk: &[u8]) {
        let pending = self.pending.entry(kind).or_default();
        pending.extend_from_slice(chunk);
        let Some(end) = pending.iter().rposition(|b| *b == b'\n') else {
            return;
        };
        let complete: Vec<u8> = pending.drain(..=end).collect();
        let mut out = std::io::stdout().lock();
        for line in complete.split_inclusive(|b| *b == b'\n') {
            let _ = out
                .write_all(self.prefix.as_bytes())
                .and_then(|()| out.write_all(line));
        }
        let _ = out.flush();
    }

    /// Prints what is left of unfinished lines.
    fn finish(mut self) {
        let kinds: Vec<u8> = self.pending.keys().copied().collect();
        for kind in kinds {
            if self.pending[&kind].is_empty() {
                continue;
            }
            self.add(kind, b"\n");
        }
    }
}

/// Builds the images of the services named (all with `build` when none is).
pub(super) async fn build(
    client: &Client,
    loaded: &Loaded,
    services: &[String],
) -> anyhow::Result<()> {
    for (name, service) in selected(loaded, services)? {
        if service.build.is_some() {
            build_image(client, loaded, (name, service)).await?;
        }
    }
    Ok(())
}

/// Builds a service's image from its `build` section and tags it with its image name.
pub(super) async fn build_image(
    client: &Client,
    loaded: &Loaded,
    (name, service): (&str, &Service),
) -> anyhow::Result<()> {
    let Some(build) = &service.build else {
        bail!("service {name:?} has no build section");
    };
    let image = image_name(loaded, name, service);
    let context = loaded.dir.join(&build.context);
    let dockerfile = build
        .dockerfile
        .clone()
        .unwrap_or_else(|| berth_build::DEFAULT_DOCKERFILE.into());
    let archive =
        berth_build::context_archive(&context, &dockerfile, None).map_err(|e| anyhow!(e))?;
    let args: BTreeMap<&String, &Option<String>> = build.args.iter().collect();
    let mut query = vec![
        ("t", image.clone()),
        ("dockerfile", dockerfile),
        ("buildargs", serde_json::to_string(&args)?),
    ];
    if let Some(target) = &build.target {
        query.push(("target", target.clone()));
    }
    let path = format!("/build?{}", serde_urlencoded::to_string(&query)?);
    let answer = client
        .upload(&path, archive.into(), "application/x-tar")
        .await
        .and_then(|a| a.ok())
        .map_err(|e| anyhow!(e))?;
    for line in String::from_utf8_lossy(&answer.body).lines() {
        let message: Value = serde_json::from_str(line).unwrap_or_default();
        if let Some(error) = message["error"].as_str() {
            bail!("failed to build service {name}: {error}");
        }
    }
    println!(" Image {image}  Built");
    Ok(())
}

/// Pulls the images of the services named (all when none is) that are not built here.
pub(super) async fn pull(
    client: &Client,
    loaded: &Loaded,
    services: &[String],
) -> anyhow::Result<()> {
    for (name, service) in selected(loaded, services)? {
        if service.build.is_none() {
            let image = image_name(loaded, name, service);
            crate::pull::pull_image(client, &image, true).await?;
            println!(" {name} Pulled");
        }
    }
    Ok(())
}

/// Pushes the images of the services named (all when none is) that name their image.
pub(super) async fn push(
    client: &Client,
    loaded: &Loaded,
    services: &[String],
) -> anyhow::Result<()> {
    for (name, service) in selected(loaded, services)? {
        if let Some(image) = &service.image {
            crate::push::push_image(client, image, true).await?;
            println!(" {name} Pushed");
        }
    }
    Ok(())
}
