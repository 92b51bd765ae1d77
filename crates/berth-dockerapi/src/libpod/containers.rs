//! libpod's container endpoints: create from a podman spec, list, inspect, exists,
//! start, stop, kill, wait, restart and remove, in libpod's shapes. Logs are Docker's
//! stream, served by the Docker handler.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, RawQuery, State as Extract};
use axum::http::StatusCode;
use berth_engine::{Container, Engine, Status, WaitCondition};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{PodmanError, flag, unix_seconds};
use crate::State;
use crate::containers::blocking;

/// `POST /libpod/containers/create`.
pub(crate) async fn create(
    Extract(engine): Extract<State>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), PodmanError> {
    let body: Value = super::json_body(&body)?;
    let (name, request) = super::spec::create_request(body).map_err(PodmanError::bad_request)?;
    let name = (!name.is_empty()).then_some(name);
    let container = blocking(move || engine.create_container(name.as_deref(), request)).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": container.id, "Warnings": []})),
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct ListQuery {
    all: Option<String>,
    filters: Option<String>,
    last: Option<i64>,
}

/// `GET /libpod/containers/json`: `podman ps`, with Docker's filters; `last=N` keeps the
/// N newest.
pub(crate) async fn list(
    Extract(engine): Extract<State>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, PodmanError> {
    let all = flag(query.all.as_deref());
    let mut containers = crate::containers::matching(&engine, all, query.filters.as_deref())?;
    if let Some(last) = query.last.filter(|n| *n >= 0) {
        containers.sort_by(|a, b| b.created.cmp(&a.created));
        containers.truncate(usize::try_from(last).unwrap_or(usize::MAX));
    }
    Ok(Json(
        containers.iter().map(|c| summary(&engine, c)).collect(),
    ))
}

/// The container's state in libpod's words (`created`, `running`, `exited`, `paused`).
fn state_name(container: &Container) -> &'static str {
    if container.state.paused {
        "paused"
    } else {
        match container.state.status {
            Status::Removing => "removing",
            status => status.as_str(),
        }
    }
}

/// The names of the networks it is on, or asked for.
fn network_names(container: &Container) -> Vec<String> {
    match &container.request.networking_config {
        Some(config) => config
            .endpoints_config
            .iter()
            .flat_map(|e| e.keys().cloned())
            .collect(),
        None => match container.request.host_config.network_mode.as_str() {
            "" | "default" => vec!["bridge".into()],
            "host" | "none" => Vec::new(),
            mode => vec![mode.to_string()],
        },
    }
}

/// Its published ports as libpod lists them.
fn ports(container: &Container) -> Vec<Value> {
    container
        .state
        .endpoint
        .iter()
        .flat_map(|e| &e.ports)
        .map(|p| {
            json!({
                "host_ip": p.host_ip.to_string(), "container_port": p.container_port,
                "host_port": p.host_port, "range": 1, "protocol": p.protocol,
            })
        })
        .collect()
}

/// A container as `podman ps` lists it (libpod's ListContainer).
fn summary(engine: &Engine, container: &Container) -> Value {
    let state = &container.state;
    let command: Vec<&str> = std::iter::once(container.path.as_str())
        .chain(container.args.iter().map(String::as_str))
        .collect();
    let mounts: Vec<String> = engine
        .mount_points(container)
        .into_iter()
        .map(|m| m.destination)
        .collect();
    json!({
        "AutoRemove": container.request.host_config.auto_remove,
        "Command": command,
        "Created": container.created,
        "CreatedAt": "",
        "Exited": state.status == Status::Exited,
        "ExitedAt": unix_seconds(&state.finished_at),
        "ExitCode": state.exit_code,
        "Id": container.id,
        "Image": container.image,
        "ImageID": container.image_id.trim_start_matches("sha256:"),
        "IsInfra": false,
        "Labels": container.request.labels.clone().unwrap_or_default(),
        "Mounts": mounts,
        "Names": [container.name],
        "Namespaces": {},
        "Networks": network_names(container),
        "Pid": state.pid,
        "Pod": "",
        "PodName": "",
        "Ports": ports(container),
        "Size": null,
        "StartedAt": unix_seconds(&state.started_at),
        "State": state_name(container),
        "Status": "",
    })
}

/// An RFC 3339 time, or Go's zero time when there is none.
fn time_or_zero(time: &str) -> &str {
    if time.is_empty() {
        "0001-01-01T00:00:00Z"
    } else {
        time
    }
}

/// `GET /libpod/containers/{name}/json`: libpod's InspectContainerData, the fields
/// podman reads.
pub(crate) async fn inspect(
    Extract(engine): Extract<State>,
    Path(name): Path<String>,
) -> Result<Json<Value>, PodmanError> {
    let c = engine.container(&name)?;
    let state = &c.state;
    let stop_signal =
        berth_engine::parse_signal(&c.request.stop_signal).map_or(15, |signal| signal as i32);
    Ok(Json(json!({
        "Id": c.id,
        "Created": c.created,
        "Path": c.path,
        "Args": c.args,
        "State": {
            "Status": state_name(&c),
            "Running": state.status == Status::Running,
            "Paused": state.paused,
            "Restarting": state.restarting,
            "OOMKilled": state.oom_killed,
            "Dead": false,
            "Pid": state.pid,
            "ExitCode": state.exit_code,
            "Error": state.error,
            "StartedAt": time_or_zero(&state.started_at),
            "FinishedAt": time_or_zero(&state.finished_at),
            "Health": state.health,
        },
        "Image": c.image_id.trim_start_matches("sha256:"),
        "ImageName": c.image,
        "Name": c.name,
        "RestartCount": state.restart_count,
        "Driver": "overlay",
        "OCIRuntime": "berth",
        "Mounts": engine.mount_points(&c).into_iter().map(|m| json!({
            "Type": m.kind, "Name": m.name, "Source": m.source, "Destination": m.destination,
            "Driver": if m.kind == "volume" { "local" } else { "" },
            "Mode": m.mode, "RW": m.read_write, "Propagation": "",
        })).collect::<Vec<_>>(),
        "Config": {
            "Hostname": if c.request.hostname.is_empty() { &c.id[..12] } else { c.request.hostname.as_str() },
            "User": c.user,
            "Env": c.env,
            "Cmd": c.request.cmd,
            "Entrypoint": c.request.entrypoint,
            "Image": c.image,
            "WorkingDir": c.working_dir,
            "Labels": c.request.labels.clone().unwrap_or_default(),
            "Tty": c.request.tty,
            "OpenStdin": c.request.open_stdin,
            "StopSignal": stop_signal,
            "StopTimeout": c.request.stop_timeout.unwrap_or(10),
        },
        "HostConfig": {
            "NetworkMode": c.request.host_config.network_mode,
            "RestartPolicy": {
                "Name": c.request.host_config.restart_policy.name,
                "MaximumRetryCount": c.request.host_config.restart_policy.maximum_retry_count,
            },
            "AutoRemove": c.request.host_config.auto_remove,
        },
        "NetworkSettings": {
            "Networks": crate::networks::container_networks(&c),
        },
    })))
}

/// `GET /libpod/containers/{name}/exists`: 204, or 404.
pub(crate) async fn exists(
    Extract(engine): Extract<State>,
    Path(name): Path<String>,
) -> Result<StatusCode, PodmanError> {
    engine.container(&name)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /libpod/containers/{name}/start`: 204, or 304 when it already runs.
pub(crate) async fn start(
    engine: Extract<State>,
    name: Path<String>,
) -> Result<StatusCode, PodmanError> {
    Ok(crate::containers::start(engine, name).await?)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct StopQuery {
    timeout: Option<u64>,
    ignore: Option<String>,
}

/// `POST /libpod/containers/{name}/stop?timeout=`: 204, or 304 when it was not running.
pub(crate) async fn stop(
    Extract(engine): Extract<State>,
    Path(name): Path<String>,
    Query(query): Query<StopQuery>,
) -> Result<StatusCode, PodmanError> {
    match crate::containers::stop_container(engine, name, query.timeout, None).await {
        Err(error) if error.status == StatusCode::NOT_FOUND && flag(query.ignore.as_deref()) => {
            Ok(StatusCode::NO_CONTENT)
        }
        stopped => Ok(stopped?),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct KillQuery {
    signal: Option<String>,
}

/// `POST /libpod/containers/{name}/kill?signal=`.
pub(crate) async fn kill(
    Extract(engine): Extract<State>,
    Path(name): Path<String>,
    Query(query): Query<KillQuery>,
) -> Result<StatusCode, PodmanError> {
    let wanted = query.signal.as_deref().unwrap_or("KILL");
    let signal = berth_engine::parse_signal(wanted)
        .ok_or_else(|| PodmanError::bad_request(format!("invalid signal: {wanted}")))?;
    blocking(move || engine.kill_container(&name, signal)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct RestartQuery {
    t: Option<u64>,
}

/// `POST /libpod/containers/{name}/restart?t=`.
pub(crate) async fn restart(
    Extract(engine): Extract<State>,
    Path(name): Path<String>,
    Query(query): Query<RestartQuery>,
) -> Result<StatusCode, PodmanError> {
    let timeout = query.t.map(Duration::from_secs);
    blocking(move || engine.restart_container(&name, timeout)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /libpod/containers/{name}/wait`: the exit code, once it has stopped.
pub(crate) async fn wait(
    Extract(engine): Extract<State>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<i32>, PodmanError> {
    let query = crate::query::QueryPairs::parse(query.as_deref());
    if let Some(other) = query
        .all("condition")
        .iter()
        .find(|c| !matches!(c.as_str(), "" | "stopped" | "exited"))
    {
        return Err(PodmanError::bad_request(format!(
            "berth waits for stopped or exited containers only, not {other:?}"
        )));
    }
    let code = blocking(move || engine.wait_container(&name, WaitCondition::NotRunning)).await?;
    Ok(Json(code))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct RemoveQuery {
    force: Option<String>,
    volumes: Option<String>,
    ignore: Option<String>,
}

/// `DELETE /libpod/containers/{name}`: a report per container removed.
pub(crate) async fn remove(
    Extract(engine): Extract<State>,
    Path(name): Path<String>,
    Query(query): Query<RemoveQuery>,
) -> Result<Json<Value>, PodmanError> {
    let container = match engine.container(&name) {
        Err(berth_engine::Error::NoSuchContainer(_)) if flag(query.ignore.as_deref()) => {
            return Ok(Json(json!([])));
        }
        found => found?,
    };
    let force = flag(query.force.as_deref());
    let id = container.id.clone();
    if flag(query.volumes.as_deref()) {
        blocking(move || engine.remove_container_and_volumes(&id, force)).await?;
    } else {
        blocking(move || engine.remove_container(&id, force)).await?;
    }
    Ok(Json(json!([{"Id": container.id, "RawInput": name}])))
}
