//! `berth compose up`: networks and volumes made, each service's image built or pulled,
//! its containers created — or recreated when the file or the image changed since, as
//! the config-hash label tells — and started once what they depend on is ready; without
//! `-d`, the services' output followed until they end or Ctrl+C stops them.

use std::time::{Duration, Instant};

use anyhow::bail;
use berth_compose::{Loaded, Service};
use berth_dockerapi::client::Client;
use serde_json::json;

use super::create::{CONFIG_HASH, config_hash, create_body};
use super::manage::{build_image, follow, stop_container};
use super::{
    call, container_name, image_name, own_networks, project_containers, scoped, start_order,
};
use crate::cli::ComposeUpArgs;

/// How long `up` waits for a dependency's condition.
const CONDITION_TIMEOUT: Duration = Duration::from_secs(120);

/// `berth compose up`: the exit status (0 unless attached output ended in an error).
pub(super) async fn up(
    client: &Client,
    loaded: &Loaded,
    args: &ComposeUpArgs,
) -> anyhow::Result<u8> {
    if args.watch && args.detach {
        bail!("--watch cannot be combined with --detach: run compose watch instead");
    }
    let rules = if args.watch {
        super::watch::rules(loaded, &args.services)?
    } else {
        Vec::new()
    };
    let services = start_order(loaded, &args.services)?;
    for network in own_networks(loaded) {
        let name = scoped(loaded, &network);
        if call(client, "GET", &format!("/networks/{name}"), None)
            .await
            .is_ok()
        {
            continue;
        }
        let body = json!({"Name": name, "Labels": {
            "com.docker.compose.project": loaded.name, "com.docker.compose.network": network,
        }});
        call(client, "POST", "/networks/create", Some(&body)).await?;
        println!(" Network {name}  Created");
    }
    for (volume, declared) in &loaded.project.volumes {
        if declared.external {
            continue;
        }
        let name = scoped(loaded, volume);
        let body = json!({"Name": name, "Labels": {
            "com.docker.compose.project": loaded.name, "com.docker.compose.volume": volume,
        }});
        call(client, "POST", "/volumes/create", Some(&body)).await?;
    }
    let mut started = Vec::new();
    for &(name, service) in &services {
        for (dependency, condition) in &service.depends_on {
            await_condition(client, loaded, dependency, &condition.condition).await?;
        }
        let policy = (args.build, args.no_build);
        let (image, image_id) = service_image(client, loaded, (name, service), policy).await?;
        let replicas = service
            .deploy
            .as_ref()
            .and_then(|d| d.replicas)
            .unwrap_or(1);
        for number in 1..=replicas {
            let container = service
                .container_name
                .clone()
                .unwrap_or_else(|| format!("{}-{name}-{number}", loaded.name));
            let mut body = create_body(loaded, (name, service), &image, number)?;
            let hash = config_hash(&body, &image_id);
            body["Labels"][CONFIG_HASH] = json!(hash);
            ensure_running(client, &container, &body, args).await?;
            started.push(container);
        }
    }
    if args.wait {
        for (name, _) in &services {
            await_condition(client, loaded, name, "service_healthy_or_running").await?;
        }
    }
    if args.detach {
        return Ok(0);
    }
    if rules.is_empty() {
        return attached(client, &started).await;
    }
    tokio::select! {
        code = attached(client, &started) => code,
        watched = super::watch::carry_out(client, loaded, &rules, false) => watched.map(|()| 0),
    }
}

/// `up -d` of `services` (all when none is named), building first when `rebuild`: what
/// `run` does for dependencies and `watch` before and on a rebuild.
pub(super) fn detached(services: Vec<String>, rebuild: bool) -> ComposeUpArgs {
    ComposeUpArgs {
        detach: true,
        wait: false,
        build: rebuild,
        no_build: false,
        force_recreate: false,
        no_recreate: false,
        watch: false,
        services,
    }
}

/// The image a service runs, and its id: built when it has `build` and `always` asks or
/// the image is missing (unless `never`), otherwise pulled when missing.
pub(super) async fn service_image(
    client: &Client,
    loaded: &Loaded,
    (name, service): (&str, &Service),
    (always, never): (bool, bool),
) -> anyhow::Result<(String, String)> {
    let image = image_name(loaded, name, service);
    let inspect = |image: String| async move {
        call(client, "GET", &format!("/images/{image}/json"), None).await
    };
    let present = inspect(image.clone()).await.ok();
    match (&service.build, present) {
        (Some(_), Some(_)) if always => build_image(client, loaded, (name, service)).await?,
        (Some(_), None) if !never => build_image(client, loaded, (name, service)).await?,
        (_, Some(found)) => return Ok((image, found["Id"].as_str().unwrap_or_default().into())),
        (Some(_), None) => {
            bail!("service {name:?} has no image {image} and --no-build forbids building it")
        }
        (None, None) => crate::pull::pull_image(client, &image, true).await?,
    }
    let found = inspect(image.clone()).await?;
    Ok((image, found["Id"].as_str().unwrap_or_default().into()))
}

/// Makes `container` run what `body` asks: left alone when it already does, recreated
/// when its config hash differs (or `--force-recreate`, never with `--no-recreate`),
/// created when missing, then started.
async fn ensure_running(
    client: &Client,
    container: &str,
    body: &serde_json::Value,
    args: &ComposeUpArgs,
) -> anyhow::Result<()> {
    let existing = call(
        client,
        "GET",
        &format!("/containers/{container}/json"),
        None,
    )
    .await
    .ok();
    let create = |verb: &'static str| async move {
        let path = format!("/containers/create?name={container}");
        call(client, "POST", &path, Some(body)).await?;
        println!(" Container {container}  {verb}");
        anyhow::Ok(())
    };
    match existing {
        None => create("Created").await?,
        Some(found) => {
            let current = found["Config"]["Labels"][CONFIG_HASH].as_str();
            let changed = current != body["Labels"][CONFIG_HASH].as_str();
            if args.force_recreate || (changed && !args.no_recreate) {
                println!(" Container {container}  Recreate");
                stop_container(client, container_name(&found), 10).await?;
                call(
                    client,
                    "DELETE",
                    &format!("/containers/{container}?force=1"),
                    None,
                )
                .await?;
                create("Recreated").await?;
            } else if found["State"]["Running"] == true {
                println!(" Container {container}  Running");
                return Ok(());
            }
        }
    }
    call(
        client,
        "POST",
        &format!("/containers/{container}/start"),
        None,
    )
    .await?;
    println!(" Container {container}  Started");
    Ok(())
}

/// Follows the output of `containers` until each has ended (then says how) or Ctrl+C
/// stops them all, as an attached `docker compose up` does.
async fn attached(client: &Client, containers: &[String]) -> anyhow::Result<u8> {
    println!("Attaching to {}", containers.join(", "));
    tokio::select! {
        outcome = follow(client, containers) => {
            outcome?;
            for container in containers {
                let found = call(client, "GET", &format!("/containers/{container}/json"), None).await?;
                println!("{container} exited with code {}", found["State"]["ExitCode"]);
            }
        }
        _ = tokio::signal::ctrl_c() => {
            eprintln!("Gracefully stopping... (press Ctrl+C again to force)");
            for container in containers.iter().rev() {
                stop_container(client, container, 10).await?;
            }
        }
    }
    Ok(0)
}

/// Waits until `service`'s containers meet `condition`.
async fn await_condition(
    client: &Client,
    loaded: &Loaded,
    service: &str,
    condition: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + CONDITION_TIMEOUT;
    loop {
        let containers = project_containers(client, loaded, &[service.to_string()]).await?;
        let met = !containers.is_empty()
            && containers.iter().all(|c| {
                let state = &c["State"];
                let health = state["Health"]["Status"].as_str();
                match condition {
                    "service_healthy" => health == Some("healthy"),
                    "service_completed_successfully" => {
                        state["Status"] == "exited" && state["ExitCode"] == 0
                    }
                    "service_healthy_or_running" => {
                        health.map_or(state["Running"] == true, |h| h == "healthy")
                    }
                    _ => state["Running"] == true || state["Status"] == "exited",
                }
            });
        if met {
            return Ok(());
        }
        if condition == "service_completed_successfully"
            && containers
                .iter()
                .any(|c| c["State"]["Status"] == "exited" && c["State"]["ExitCode"] != 0)
        {
            bail!("service {service:?} didn't complete successfully");
        }
        if Instant::now() > deadline {
            bail!(
                "service {service:?} did not become {condition} within {} s",
                CONDITION_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
