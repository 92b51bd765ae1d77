//! `berth compose`: Compose projects (berth-compose reads them) run through the daemon's
//! Docker API, as `docker compose` runs them — a `<project>_default` network where each
//! service's containers answer to the service's name, named volumes `<project>_<name>`,
//! containers `<project>-<service>-<n>` labelled `com.docker.compose.*`, started in
//! dependency order with each dependency's condition awaited.
//!
//! `create.rs` makes a service's create request, `up.rs` brings services up (building or
//! pulling images, recreating containers whose configuration changed, following their
//! output when attached), `oneoff.rs` runs commands (`exec`, `run`), `watch.rs` carries out
//! `develop.watch`, `manage.rs` has the other commands.

mod create;
mod manage;
mod oneoff;
mod up;
mod watch;

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use berth_compose::{Loaded, Service};
use berth_dockerapi::client::Client;
use serde_json::{Value, json};

use crate::Outcome;
use crate::cli::{ComposeArgs, ComposeCommand};
use crate::containers::with_daemon;

/// `berth compose [-f FILE] [-p NAME] [--profile P] COMMAND`.
pub fn run(args: &ComposeArgs, host: Option<&str>) -> Result<ExitCode, Outcome> {
    let dir = std::env::current_dir()?;
    let file = berth_compose::find(args.file.as_deref(), &dir)?;
    let mut loaded = berth_compose::load(&file, &|name| std::env::var(name).ok())?;
    for warning in &loaded.warnings {
        eprintln!("WARN[0000] {}: {warning}", file.display());
    }
    if let Some(name) = &args.project_name {
        loaded.name = name.clone();
    }
    let mut profiles = args.profiles.clone();
    if let Ok(listed) = std::env::var("COMPOSE_PROFILES") {
        profiles.extend(
            listed
                .split(',')
                .filter(|p| !p.is_empty())
                .map(str::to_string),
        );
    }
    loaded.activate(&profiles)?;
    let loaded = &loaded;
    let code = match &args.command {
        ComposeCommand::Config(_) => {
            print!("{}", berth_compose::config_yaml(loaded)?);
            0
        }
        ComposeCommand::Up(up) => {
            with_daemon(
                host,
                |client| async move { up::up(&client, loaded, up).await },
            )?
        }
        ComposeCommand::Down(down) => with_daemon(host, |client| async move {
            manage::down(&client, loaded, down).await.map(|()| 0)
        })?,
        ComposeCommand::Ps(_) => with_daemon(host, |client| async move {
            manage::ps(&client, loaded).await.map(|()| 0)
        })?,
        ComposeCommand::Logs(logs) => with_daemon(host, |client| async move {
            manage::logs(&client, loaded, logs).await.map(|()| 0)
        })?,
        ComposeCommand::Build(which) => with_daemon(host, |client| async move {
            manage::build(&client, loaded, &which.services)
                .await
                .map(|()| 0)
        })?,
        ComposeCommand::Pull(which) => with_daemon(host, |client| async move {
            manage::pull(&client, loaded, &which.services)
                .await
                .map(|()| 0)
        })?,
        ComposeCommand::Push(which) => with_daemon(host, |client| async move {
            manage::push(&client, loaded, &which.services)
                .await
                .map(|()| 0)
        })?,
        ComposeCommand::Start(which) => with_daemon(host, |client| async move {
            manage::lifecycle(&client, loaded, &which.services, manage::Action::Start)
                .await
                .map(|()| 0)
        })?,
        ComposeCommand::Stop(stop) => with_daemon(host, |client| async move {
            let action = manage::Action::Stop(stop.timeout);
            manage::lifecycle(&client, loaded, &stop.services, action)
                .await
                .map(|()| 0)
        })?,
        ComposeCommand::Restart(stop) => with_daemon(host, |client| async move {
            let action = manage::Action::Restart(stop.timeout);
            manage::lifecycle(&client, loaded, &stop.services, action)
                .await
                .map(|()| 0)
        })?,
        ComposeCommand::Watch(which) => with_daemon(host, |client| async move {
            watch::watch(&client, loaded, &which.services)
                .await
                .map(|()| 0)
        })?,
        ComposeCommand::Exec(exec) => with_daemon(host, |client| async move {
            oneoff::exec(&client, loaded, exec).await.map(exit_status)
        })?,
        ComposeCommand::Run(run) => with_daemon(host, |client| async move {
            oneoff::run(&client, loaded, run).await.map(exit_status)
        })?,
    };
    Ok(ExitCode::from(code))
}

/// A process's exit status as ours.
fn exit_status(code: i64) -> u8 {
    code.clamp(0, 255) as u8
}

/// Calls the daemon; Docker's error message when it refuses.
async fn call(
    client: &Client,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<Value> {
    let answer = client
        .call(method, path, body)
        .await
        .and_then(|a| a.ok())
        .map_err(|e| anyhow!(e))?;
    Ok(answer.json())
}

/// The engine's name of a network or volume the project declares: `<project>_<name>`.
fn scoped(loaded: &Loaded, name: &str) -> String {
    format!("{}_{name}", loaded.name)
}

/// The networks the project makes and removes: `default` and those it declares that are
/// not external.
fn own_networks(loaded: &Loaded) -> Vec<String> {
    let declared = loaded.project.networks.iter();
    std::iter::once("default".to_string())
        .chain(
            declared
                .filter(|(_, n)| !n.external)
                .map(|(k, _)| k.clone()),
        )
        .collect()
}

/// The services `named` (all when none is), checked to exist.
fn selected<'a>(
    loaded: &'a Loaded,
    named: &[String],
) -> anyhow::Result<Vec<(&'a String, &'a Service)>> {
    let services = &loaded.project.services;
    if let Some(unknown) = named.iter().find(|n| !services.contains_key(*n)) {
        bail!("no such service: {unknown}");
    }
    Ok(services
        .iter()
        .filter(|(name, _)| named.is_empty() || named.contains(name))
        .collect())
}

/// The services `named` (all when none is) with what they depend on, dependencies first.
fn start_order<'a>(
    loaded: &'a Loaded,
    named: &[String],
) -> anyhow::Result<Vec<(&'a String, &'a Service)>> {
    let services = &loaded.project.services;
    let mut order: Vec<&String> = Vec::new();
    fn visit<'a>(
        name: &'a String,
        services: &'a BTreeMap<String, Service>,
        order: &mut Vec<&'a String>,
    ) {
        if order.contains(&name) {
            return;
        }
        for dependency in services[name].depends_on.keys() {
            visit(dependency, services, order);
        }
        order.push(name);
    }
    for (name, _) in selected(loaded, named)? {
        visit(name, services, &mut order);
    }
    Ok(order
        .into_iter()
        .map(|name| (name, &services[name]))
        .collect())
}

/// The image name a service runs: its `image`, else `<project>-<service>` (what `build`
/// tags).
fn image_name(loaded: &Loaded, name: &str, service: &Service) -> String {
    service
        .image
        .clone()
        .unwrap_or_else(|| format!("{}-{name}", loaded.name))
}

/// The project's containers (of `services` when some are named), inspected.
async fn project_containers(
    client: &Client,
    loaded: &Loaded,
    services: &[String],
) -> anyhow::Result<Vec<Value>> {
    let filters = json!({"label": [format!("com.docker.compose.project={}", loaded.name)]});
    let query = serde_urlencoded::to_string([("all", "1"), ("filters", &filters.to_string())])?;
    let listed = call(client, "GET", &format!("/containers/json?{query}"), None).await?;
    let mut out = Vec::new();
    for container in listed.as_array().into_iter().flatten() {
        let service = container["Labels"]["com.docker.compose.service"]
            .as_str()
            .unwrap_or_default();
        if !services.is_empty() && !services.iter().any(|s| s == service) {
            continue;
        }
        let id = container["Id"].as_str().unwrap_or_default();
        out.push(call(client, "GET", &format!("/containers/{id}/json"), None).await?);
    }
    Ok(out)
}

/// A container's name as inspect gives it, without the leading slash.
fn container_name(container: &Value) -> &str {
    container["Name"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches('/')
}
