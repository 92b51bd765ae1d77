//! `compose exec` (a command in a service's running container) and `compose run` (a
//! one-off container of a service: its configuration with another command, no published
//! ports, labelled `oneoff`, what it depends on started first unless `--no-deps`).

use std::io::IsTerminal;

use anyhow::bail;
use berth_compose::Loaded;
use berth_dockerapi::client::Client;
use serde_json::{Value, json};

use super::create::create_body;
use super::{call, container_name, project_containers, selected, start_order};
use crate::cli::{ComposeExecArgs, ComposeRunArgs};
use crate::exec::{Exec, exec_in};

/// `berth compose exec`: the command's exit status.
pub(super) async fn exec(
    client: &Client,
    loaded: &Loaded,
    args: &ComposeExecArgs,
) -> anyhow::Result<i64> {
    selected(loaded, std::slice::from_ref(&args.service))?;
    let containers =
        project_containers(client, loaded, std::slice::from_ref(&args.service)).await?;
    let index = args.index.to_string();
    let Some(container) = containers.iter().find(|c| {
        c["Config"]["Labels"]["com.docker.compose.container-number"] == index.as_str()
            && c["State"]["Running"] == true
    }) else {
        bail!(
            "service {:?} is not running container #{}",
            args.service,
            args.index
        );
    };
    let tty = !args.no_tty && std::io::stdin().is_terminal();
    let exec = Exec {
        flags: &args.flags,
        command: &args.command,
        interactive: !args.flags.detach,
        tty,
    };
    exec_in(client, container_name(container), &exec).await
}

/// `berth compose run`: the one-off container's exit status (0 when detached).
pub(super) async fn run(
    client: &Client,
    loaded: &Loaded,
    args: &ComposeRunArgs,
) -> anyhow::Result<i64> {
    let (name, service) = selected(loaded, std::slice::from_ref(&args.service))?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no such service: {}", args.service))?;
    if !args.no_deps {
        let dependencies: Vec<String> = start_order(loaded, std::slice::from_ref(name))?
            .into_iter()
            .map(|(dependency, _)| dependency.clone())
            .filter(|dependency| dependency != name)
            .collect();
        if !dependencies.is_empty() {
            let up = super::up::detached(dependencies, false);
            super::up::up(client, loaded, &up).await?;
        }
    }
    let (image, _) =
        super::up::service_image(client, loaded, (name, service), (false, false)).await?;
    let mut body = create_body(loaded, (name, service), &image, 1)?;
    one_off(&mut body, args);
    let container = args.name.clone().unwrap_or_else(|| {
        let suffix: String = format!("{:x}", rand_suffix()).chars().take(12).collect();
        format!("{}-{name}-run-{suffix}", loaded.name)
    });
    let created = call(
        client,
        "POST",
        &format!("/containers/create?name={container}"),
        Some(&body),
    )
    .await?;
    let id = created["Id"].as_str().unwrap_or_default().to_string();
    if args.detach {
        crate::containers::start(client, &id).await?;
        println!("{container}");
        return Ok(0);
    }
    crate::containers::run_attached(client, &id, args.rm).await
}

/// A service's create request made a one-off's: the command and entrypoint given, extra
/// environment,
/// no published ports, the `oneoff` label, removed at its end with `--rm`.
fn one_off(body: &mut Value, args: &ComposeRunArgs) {
    if !args.command.is_empty() {
        body["Cmd"] = json!(args.command);
    }
    if let Some(entrypoint) = &args.entrypoint {
        body["Entrypoint"] = json!([entrypoint]);
    }
    if let Some(env) = body["Env"].as_array_mut() {
        env.extend(args.env.iter().map(|e| json!(e)));
    }
    body["Labels"]["com.docker.compose.oneoff"] = json!("True");
    body["HostConfig"]["PortBindings"] = json!({});
    body["HostConfig"]["AutoRemove"] = json!(args.rm);
    body["Tty"] = json!(false);
    body["OpenStdin"] = json!(false);
}

/// A suffix for a one-off container's name, unique enough among a project's.
fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    hasher.finish()
}
