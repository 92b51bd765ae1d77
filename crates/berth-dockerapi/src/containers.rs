//! Container endpoints: create, start, wait, attach, logs, list, inspect, stop, kill and
//! remove, in Docker's shapes. Output reaches clients as Docker's multiplexed stream:
//! 8-byte frame headers (stream, 0, 0, 0, big-endian length) before each chunk.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State as Extract};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_engine::{Container, CreateRequest, Engine, Status, WaitCondition};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWriteExt};

use crate::{ApiError, State};

/// Runs blocking engine work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, berth_engine::Error> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(ApiError::from)
}

/// Query parameters that are flags: `1`, `true`.
fn flag(value: Option<&str>) -> bool {
    matches!(value, Some("1" | "true" | "True"))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct CreateQuery {
    name: Option<String>,
}

/// `POST /containers/create`: a body that sets anything the engine does not honour is
/// refused with a 400 naming it, before anything is made.
pub(crate) async fn create(
    Extract(engine): Extract<State>,
    Query(query): Query<CreateQuery>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    crate::unsupported::check_create(&body)
        .map_err(|message| ApiError::new(StatusCode::BAD_REQUEST, message))?;
    let request: CreateRequest = serde_json::from_value(body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid create body: {e}")))?;
    let container =
        blocking(move || engine.create_container(query.name.as_deref(), request)).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": container.id, "Warnings": []})),
    ))
}

/// `POST /containers/{id}/start`: 204, or 304 when it already runs. A terminal starts at
/// the size the client gave at create (`ConsoleSize`).
pub(crate) async fn start(
    Extract(engine): Extract<State>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let started = blocking(move || {
        let started = engine.start_container(&id)?;
        let container = engine.container(&id)?;
        if let (true, Some(&[rows, columns])) = (
            started && container.request.tty,
            container.request.host_config.console_size.as_deref(),
        ) && rows > 0
            && columns > 0
        {
            engine.resize_container(&id, rows, columns)?;
        }
        Ok(started)
    })
    .await?;
    Ok(if started {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct WaitQuery {
    condition: Option<String>,
}

/// `POST /containers/{id}/wait`. The headers go out at once and the body when the
/// condition holds: the docker CLI starts the container only once its wait is answered.
pub(crate) async fn wait(
    Extract(engine): Extract<State>,
    Path(id): Path<String>,
    Query(query): Query<WaitQuery>,
) -> Result<Response, ApiError> {
    let condition = match query.condition.as_deref() {
        None | Some("" | "not-running") => WaitCondition::NotRunning,
        Some("next-exit") => WaitCondition::NextExit,
        Some("removed") => WaitCondition::Removed,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("invalid condition: {other:?}"),
            ));
        }
    };
    // Fail fast on a missing container, before the headers.
    engine.container(&id)?;
    let body = futures_util::stream::once(async move {
        let result = blocking(move || engine.wait_container(&id, condition)).await;
        let answer = match result {
            Ok(code) => json!({"StatusCode": code, "Error": null}),
            Err(error) => json!({"StatusCode": -1, "Error": {"Message": error.message}}),
        };
        Ok::<_, std::io::Error>(answer.to_string())
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct StopQuery {
    t: Option<u64>,
    signal: Option<String>,
}

/// `POST /containers/{id}/stop`.
pub(crate) async fn stop(
    Extract(engine): Extract<State>,
    Path(id): Path<String>,
    Query(query): Query<StopQuery>,
) -> Result<StatusCode, ApiError> {
    let signal = query.signal.as_deref().map(signal).transpose()?;
    stop_container(engine, id, query.t, signal).await
}

/// Stops container `id`, waiting `timeout` seconds (its own when None) after `signal`
/// (its stop signal when None): 204, or 304 when it was not running.
pub(crate) async fn stop_container(
    engine: State,
    id: String,
    timeout: Option<u64>,
    signal: Option<nix::sys::signal::Signal>,
) -> Result<StatusCode, ApiError> {
    let was_running = engine.container(&id)?.state.status == Status::Running;
    // Stopped even when down between restarts: the engine then cancels the restart.
    let timeout = timeout.map(Duration::from_secs);
    blocking(move || engine.stop_container(&id, timeout, signal)).await?;
    Ok(if was_running {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    })
}

/// A signal by name or number, or a 400.
fn signal(name: &str) -> Result<nix::sys::signal::Signal, ApiError> {
    berth_engine::parse_signal(name)
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, format!("Invalid signal: {name}")))
}

/// `POST /containers/{id}/kill`.
pub(crate) async fn kill(
    Extract(engine): Extract<State>,
    Path(id): Path<String>,
    Query(query): Query<StopQuery>,
) -> Result<StatusCode, ApiError> {
    let signal = signal(query.signal.as_deref().unwrap_or("KILL"))?;
    blocking(move || engine.kill_container(&id, signal)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct RemoveQuery {
    force: Option<String>,
    /// `docker rm -v`: its anonymous volumes too.
    v: Option<String>,
}

/// `DELETE /containers/{id}`.
pub(crate) async fn remove(
    Extract(engine): Extract<State>,
    Path(id): Path<String>,
    Query(query): Query<RemoveQuery>,
) -> Result<StatusCode, ApiError> {
    let force = flag(query.force.as_deref());
    if flag(query.v.as_deref()) {
        blocking(move || engine.remove_container_and_volumes(&id, force)).await?;
    } else {
        blocking(move || engine.remove_container(&id, force)).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct ListQuery {
    all: Option<String>,
    filters: Option<String>,
}

/// `GET /containers/json`.
pub(crate) async fn list(
    Extract(engine): Extract<State>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let containers = matching(
        &engine,
        flag(query.all.as_deref()),
        query.filters.as_deref(),
    )?;
    Ok(Json(Value::Array(
        containers.iter().map(|c| summary(&engine, c)).collect(),
    )))
}

/// The containers (running ones unless `all`) that pass `docker ps`'s and `podman ps`'s
/// filters: `label` (every one must match), `name`, `id` and `status` (any of a key's
/// values); others are refused by name.
pub(crate) fn matching(
    engine: &Engine,
    all: bool,
    filters: Option<&str>,
) -> Result<Vec<Container>, ApiError> {
    let filters = crate::query::filters(filters)?;
    if let Some(key) = filters
        .keys()
        .find(|k| !matches!(k.as_str(), "label" | "name" | "id" | "status"))
    {
        return Err(ApiError::bad_request(format!(
            "berth does not support the container filter {key:?} yet"
        )));
    }
    let all = all || filters.contains_key("status");
    Ok(engine
        .containers(all)
        .into_iter()
        .filter(|c| {
            filters
                .iter()
                .all(|(key, values)| filter_matches(c, key, values))
        })
        .collect())
}

/// Whether `container` passes one key of `docker ps --filter`.
fn filter_matches(container: &Container, key: &str, values: &[String]) -> bool {
    let labels = container.request.labels.as_ref();
    match key {
        "label" => crate::query::labels_match(values, |key| {
            labels.and_then(|l| l.get(key)).map(String::as_str)
        }),
        // A regular expression on the name with its leading slash, as Docker matches it
        // (`^/web$` for exactly `web`); one that does not compile matches nothing.
        "name" => values.iter().any(|wanted| {
            regex::Regex::new(wanted).is_ok_and(|re| re.is_match(&format!("/{}", container.name)))
        }),
        "id" => values
            .iter()
            .any(|wanted| container.id.starts_with(wanted.as_str())),
        _ => values.iter().any(|wanted| {
            let status = if container.state.paused {
                "paused"
            } else {
                container.state.status.as_str()
            };
            status == wanted
        }),
    }
}

fn command_line(container: &Container) -> String {
    std::iter::once(container.path.as_str())
        .chain(container.args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Docker's human status: `Up …`, `Exited (N) …`, `Created`.
fn human_status(container: &Container) -> String {
    match container.state.status {
        Status::Running if container.state.paused => {
            format!("Up {} (Paused)", ago(&container.state.started_at))
        }
        Status::Running => match container.state.health.as_ref().map(|h| h.status.as_str()) {
            Some("starting") => {
                format!("Up {} (health: starting)", ago(&container.state.started_at))
            }
            Some(health) => format!("Up {} ({health})", ago(&container.state.started_at)),
            None => format!("Up {}", ago(&container.state.started_at)),
        },
        Status::Exited => format!(
            "Exited ({}) {} ago",
            container.state.exit_code,
            ago(&container.state.finished_at)
        ),
        Status::Created => "Created".into(),
        Status::Removing => "Removal In Progress".into(),
    }
}

fn ago(time: &str) -> String {
    let then = crate::time::unix_seconds(time);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    match (now - then).max(0) {
        s if s < 2 => "Less than a second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 3600 => format!("{} minutes", s / 60),
        s => format!("{} hours", s / 3600),
    }
}

/// A container as `docker ps` lists it.
pub(crate) fn summary(engine: &Engine, container: &Container) -> Value {
    json!({
        "Id": container.id,
        "Names": [format!("/{}", container.name)],
        "Image": container.image,
        "ImageID": container.image_id,
        "Command": command_line(container),
        "Created": crate::time::unix_seconds(&container.created),
        "State": if container.state.paused { "paused" } else { container.state.status.as_str() },
        "Status": human_status(container),
        "Ports": port_list(container),
        "Labels": container.request.labels.clone().unwrap_or_default(),
        "HostConfig": {"NetworkMode": network_mode(container)},
        "NetworkSettings": {"Networks": crate::networks::container_networks(container)},
        "Mounts": mounts(engine, container),
    })
}

/// Its binds, volumes and `--mount` tmpfs mounts, in Docker's words.
fn mounts(engine: &Engine, container: &Container) -> Value {
    let points: Vec<Value> = engine
        .mount_points(container)
        .into_iter()
        .map(|m| {
            let mut point = json!({
                "Type": m.kind, "Source": m.source, "Destination": m.destination,
                "Mode": m.mode, "RW": m.read_write,
                "Propagation": if m.kind == "bind" { "rprivate" } else { "" },
            });
            if m.kind == "volume" {
                point["Name"] = json!(m.name);
                point["Driver"] = json!("local");
            }
            point
        })
        .collect();
    json!(points)
}

/// `GET /containers/{id}/json`.
pub(crate) async fn inspect(
    Extract(engine): Extract<State>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let c = engine.container(&id)?;
    let state = &c.state;
    let mut host_config = serde_json::to_value(&c.request.host_config).unwrap_or_default();
    if host_config["LogConfig"]["Type"] == "" {
        host_config["LogConfig"]["Type"] = json!("json-file");
    }
    Ok(Json(json!({
        "Id": c.id,
        "Created": c.created,
        "Path": c.path,
        "Args": c.args,
        "State": {
            "Status": if state.paused { "paused" } else { state.status.as_str() },
            "Running": state.status == Status::Running,
            "Paused": state.paused, "Restarting": state.restarting,
            "Health": state.health,
            "OOMKilled": state.oom_killed,
            "Dead": false,
            "Pid": state.pid,
            "ExitCode": state.exit_code,
            "Error": state.error,
            "StartedAt": if state.started_at.is_empty() { "0001-01-01T00:00:00Z" } else { state.started_at.as_str() },
            "FinishedAt": if state.finished_at.is_empty() { "0001-01-01T00:00:00Z" } else { state.finished_at.as_str() },
        },
        "Image": c.image_id,
        "Name": format!("/{}", c.name),
        "RestartCount": state.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "LogPath": engine.log_path(&c),
        "HostConfig": host_config,
        "Config": {
            "Hostname": if c.request.hostname.is_empty() { &c.id[..12] } else { c.request.hostname.as_str() },
            "User": c.user,
            "Tty": c.request.tty,
            "OpenStdin": c.request.open_stdin,
            "Env": c.env,
            "Cmd": c.request.cmd,
            "Entrypoint": c.request.entrypoint,
            "Image": c.image,
            "WorkingDir": c.working_dir,
            "Labels": c.request.labels.clone().unwrap_or_default(),
            "Domainname": c.request.domainname,
            "StopSignal": c.request.stop_signal,
            "StopTimeout": c.request.stop_timeout,
        },
        "Mounts": mounts(&engine, &c),
        "NetworkSettings": network_settings(&c),
    })))
}

/// `default` when the request named no network, as Docker reports it.
fn network_mode(container: &Container) -> &str {
    match container.request.host_config.network_mode.as_str() {
        "" => "default",
        mode => mode,
    }
}

/// The published ports as `docker ps` lists them.
fn port_list(container: &Container) -> Value {
    let ports: Vec<Value> = container
        .state
        .endpoint
        .iter()
        .flat_map(|e| &e.ports)
        .map(|p| json!({"IP": p.host_ip.to_string(), "PrivatePort": p.container_port, "PublicPort": p.host_port, "Type": p.protocol}))
        .collect();
    Value::Array(ports)
}

/// NetworkSettings of inspect: the network, the published ports and, on the default
/// bridge, the address at the top level too (where old clients look).
fn network_settings(container: &Container) -> Value {
    let endpoint = container.state.endpoint.as_ref();
    let mut ports = serde_json::Map::new();
    for port in endpoint.iter().flat_map(|e| &e.ports) {
        let key = format!("{}/{}", port.container_port, port.protocol);
        let binding =
            json!({"HostIp": port.host_ip.to_string(), "HostPort": port.host_port.to_string()});
        match ports.entry(key).or_insert_with(|| json!([])) {
            Value::Array(list) => list.push(binding),
            other => *other = json!([binding]),
        }
    }
    let default_bridge = endpoint.filter(|e| e.network_name == "bridge");
    json!({
        "SandboxKey": container.state.sandbox.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        "Ports": ports,
        "IPAddress": default_bridge.map(|e| e.ip.to_string()).unwrap_or_default(),
        "IPPrefixLen": default_bridge.map_or(0, |e| e.prefix),
        "Gateway": default_bridge.map(|e| e.gateway.to_string()).unwrap_or_default(),
        "MacAddress": default_bridge.map(|e| e.mac.as_str()).unwrap_or_default(),
        "Networks": crate::networks::container_networks(container),
    })
}

/// One frame of the multiplexed stream.
fn frame(stream: &str, text: &[u8]) -> Vec<u8> {
    let kind = if stream == "stderr" { 2 } else { 1 };
    let mut out = Vec::with_capacity(text.len() + 8);
    out.extend_from_slice(&[kind, 0, 0, 0]);
    out.extend_from_slice(&(text.len() as u32).to_be_bytes());
    out.extend_from_slice(text);
    out
}

/// Which streams a client asked for, and how it wants them.
#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub(crate) struct StreamQuery {
    stdin: Option<String>,
    stdout: Option<String>,
    stderr: Option<String>,
    follow: Option<String>,
    timestamps: Option<String>,
    tail: Option<String>,
}

impl StreamQuery {
    fn wants(&self, stream: &str) -> bool {
        match stream {
            "stderr" => flag(self.stderr.as_deref()),
            _ => flag(self.stdout.as_deref()),
        }
    }
}

/// Encodes log entries for a client: framed unless the container has a terminal.
fn encode(entries: &[berth_engine::logs::LogEntry], query: &StreamQuery, tty: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries.iter().filter(|e| query.wants(&e.stream)) {
        let text = if flag(query.timestamps.as_deref()) {
            format!("{} {}", entry.time, entry.log)
        } else {
            entry.log.clone()
        };
        if tty {
            out.extend_from_slice(text.as_bytes());
        } else {
            out.extend(frame(&entry.stream, text.as_bytes()));
        }
    }
    out
}

type Batch = Vec<berth_engine::logs::LogEntry>;

/// `POST /containers/{id}/attach`: upgrades the connection and streams the container's
/// output to it until the run ends.
pub(crate) async fn attach(
    Extract(engine): Extract<State>,
    Path(id): Path<String>,
    Query(query): Query<StreamQuery>,
    mut request: Request,
) -> Result<Response, ApiError> {
    let container = engine.container(&id)?;
    let log = std::fs::File::open(engine.log_path(&container))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let tty = container.request.tty;
    let with_stdin = flag(query.stdin.as_deref()) && container.request.open_stdin;
    let upgrade = hyper::upgrade::on(&mut request);
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Batch>(16);
    let id = container.id.clone();
    tokio::spawn(berth_engine::logs::follow(
        Arc::clone(&engine),
        container,
        log,
        0,
        sender,
    ));
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else {
            return;
        };
        let (input, mut output) = tokio::io::split(hyper_util::rt::TokioIo::new(upgraded));
        if with_stdin {
            tokio::spawn(forward_stdin(engine, id, input));
        }
        while let Some(entries) = receiver.recv().await {
            if output
                .write_all(&encode(&entries, &query, tty))
                .await
                .is_err()
            {
                return;
            }
        }
        let _ = output.shutdown().await;
    });
    Ok(switching_protocols(tty))
}

/// Copies an attached client's input into the container's stdin once the container runs
/// (a client attaches before `start`); the end of the input is passed on.
async fn forward_stdin(engine: Arc<Engine>, id: String, mut input: impl AsyncRead + Unpin) {
    let Ok(exits) = engine.container(&id).map(|c| c.state.exits) else {
        return;
    };
    let stdin = loop {
        match engine.container(&id).map(|c| c.state) {
            Ok(state) if state.status == Status::Running => {
                let engine = Arc::clone(&engine);
                let id = id.clone();
                match blocking(move || engine.container_stdin(&id)).await {
                    Ok(stdin) => break stdin,
                    Err(_) => return,
                }
            }
            // Not started yet: the client attached first, as `run` does.
            Ok(state) if state.exits == exits => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            _ => return,
        }
    };
    let Ok(stdin) = stdin
        .set_nonblocking(true)
        .and_then(|()| tokio::net::UnixStream::from_std(stdin))
    else {
        return;
    };
    let mut stdin = stdin;
    let _ = tokio::io::copy(&mut input, &mut stdin).await;
    let _ = stdin.shutdown().await;
}

/// The media type of a container's output stream: raw with a terminal, else framed.
pub(crate) fn stream_type(tty: bool) -> &'static str {
    if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }
}

/// The 101 answer that hands the connection over to a hijacked stream.
pub(crate) fn switching_protocols(tty: bool) -> Response {
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "tcp")
        .header(header::CONTENT_TYPE, stream_type(tty))
        .body(Body::empty())
        .unwrap_or_default()
}

/// `GET /containers/{id}/logs`.
pub(crate) async fn logs(
    Extract(engine): Extract<State>,
    Path(id): Path<String>,
    Query(query): Query<StreamQuery>,
) -> Result<Response, ApiError> {
    let container = engine.container(&id)?;
    let path = engine.log_path(&container);
    let tty = container.request.tty;
    let content_type = stream_type(tty);
    if !flag(query.follow.as_deref()) || container.state.status != Status::Running {
        let mut entries = berth_engine::logs::read_all(&path)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        if let Some(tail) = query.tail.as_deref().and_then(|t| t.parse::<usize>().ok()) {
            entries.drain(..entries.len().saturating_sub(tail));
        }
        return Ok((
            [(header::CONTENT_TYPE, content_type)],
            encode(&entries, &query, tty),
        )
            .into_response());
    }
    let log = std::fs::File::open(&path)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let (sender, receiver) = tokio::sync::mpsc::channel::<Batch>(16);
    tokio::spawn(berth_engine::logs::follow(
        engine, container, log, 0, sender,
    ));
    let stream = futures_util::stream::unfold(receiver, move |mut receiver| {
        let query = query.clone();
        async move {
            let entries = receiver.recv().await?;
            Some((
                Ok::<_, std::io::Error>(encode(&entries, &query, tty)),
                receiver,
            ))
        }
    });
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response())
}

/// `GET /containers/{id}/stats`: one reading in Docker's shape (`stream=false`, as
/// `docker stats --no-stream` asks); CPU percentages come from two readings, so the
/// previous one is taken 100 ms before.
pub(crate) async fn stats(
    Extract(engine): Extract<State>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let container = engine.container(&id)?;
    let reading = |engine: Arc<Engine>, id: String| {
        blocking(move || Ok((engine.container_stats(&id)?, system_cpu_nanos())))
    };
    let (before, system_before) = reading(engine.clone(), id.clone()).await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (now, system_now) = reading(engine.clone(), id.clone()).await?;
    let interfaces = blocking(move || engine.container_network_usage(&id)).await?;
    let networks: serde_json::Map<String, Value> = interfaces
        .into_iter()
        .map(|i| {
            let counters = json!({
                "rx_bytes": i.rx_bytes, "rx_packets": i.rx_packets,
                "rx_errors": i.rx_errors, "rx_dropped": i.rx_dropped,
                "tx_bytes": i.tx_bytes, "tx_packets": i.tx_packets,
                "tx_errors": i.tx_errors, "tx_dropped": i.tx_dropped,
            });
            (i.name, counters)
        })
        .collect();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = |s: &berth_engine::Stats, system: u64| {
        json!({
            "cpu_usage": {
                "total_usage": s.cpu.usage.total,
                "usage_in_kernelmode": s.cpu.usage.kernel,
                "usage_in_usermode": s.cpu.usage.user,
            },
            "system_cpu_usage": system,
            "online_cpus": cpus,
        })
    };
    Ok(Json(json!({
        "read": berth_engine::now_rfc3339(),
        "name": format!("/{}", container.name),
        "id": container.id,
        "cpu_stats": cpu(&now, system_now),
        "precpu_stats": cpu(&before, system_before),
        "memory_stats": {
            "usage": now.memory.usage.usage,
            "max_usage": now.memory.usage.max,
            // Unlimited is the cgroup's largest number; the host's memory bounds it, as
            // Docker reports.
            "limit": now.memory.usage.limit.min(host_memory().unwrap_or(u64::MAX)),
            "failcnt": now.memory.usage.failcnt,
            "stats": now.memory.raw,
        },
        "pids_stats": {"current": now.pids.current, "limit": now.pids.limit},
        "blkio_stats": {},
        "networks": networks,
    })))
}

/// The host's memory in bytes (/proc/meminfo's MemTotal).
fn host_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The host's total CPU time in nanoseconds (/proc/stat's first line), the base of
/// Docker's CPU percentage.
fn system_cpu_nanos() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    ticks * 10_000_000
}

/// `POST /containers/{id}/pause`.
pub(crate) async fn pause(
    engine: Extract<State>,
    id: Path<String>,
) -> Result<StatusCode, ApiError> {
    set_paused(engine, id, true).await
}

/// `POST /containers/{id}/unpause`.
pub(crate) async fn unpause(
    engine: Extract<State>,
    id: Path<String>,
) -> Result<StatusCode, ApiError> {
    set_paused(engine, id, false).await
}

async fn set_paused(
    Extract(engine): Extract<State>,
    Path(id): Path<String>,
    paused: bool,
) -> Result<StatusCode, ApiError> {
    blocking(move || engine.pause_container(&id, paused)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /containers/{id}/restart`: stop (with `t`), then start.
pub(crate) async fn restart(
    Extract(engine): Extract<State>,
    Path(id): Path<String>,
    Query(query): Query<StopQuery>,
) -> Result<StatusCode, ApiError> {
    let timeout = query.t.map(Duration::from_secs);
    blocking(move || engine.restart_container(&id, timeout)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct ResizeQuery {
    pub(crate) h: u16,
    pub(crate) w: u16,
}

/// `POST /containers/{id}/resize`: the attached client's terminal size.
pub(crate) async fn resize(
    Extract(engine): Extract<State>,
    Path(id): Path<String>,
    Query(query): Query<ResizeQuery>,
) -> Result<StatusCode, ApiError> {
    blocking(move || engine.resize_container(&id, query.h, query.w)).await?;
    Ok(StatusCode::OK)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct RenameQuery {
    name: String,
}

/// `POST /containers/{id}/rename`.
pub(crate) async fn rename(
    Extract(engine): Extract<State>,
    Path(id): Path<String>,
    Query(query): Query<RenameQuery>,
) -> Result<StatusCode, ApiError> {
    blocking(move || engine.rename_container(&id, &query.name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /containers/{id}/update` (`docker update`): resource limits and the restart
/// policy, changed in place; anything else set is refused by name.
pub(crate) async fn update(
    Extract(engine): Extract<State>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    crate::unsupported::check_update(&body)
        .map_err(|message| ApiError::new(StatusCode::BAD_REQUEST, message))?;
    let update: berth_engine::UpdateRequest = serde_json::from_value(body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid update body: {e}")))?;
    blocking(move || engine.update_container(&id, update)).await?;
    Ok(Json(json!({"Warnings": []})))
}

/// `GET /containers/{id}/top`.
pub(crate) async fn top(
    Extract(engine): Extract<State>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let processes = blocking(move || engine.container_processes(&id)).await?;
    let rows: Vec<Value> = processes
        .into_iter()
        .map(|(pid, ppid, uid, command)| {
            json!([uid.to_string(), pid.to_string(), ppid.to_string(), command])
        })
        .collect();
    Ok(Json(
        json!({"Titles": ["UID", "PID", "PPID", "CMD"], "Processes": rows}),
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct ArchiveQuery {
    path: String,
}

/// The `X-Docker-Container-Path-Stat` header: the stat as base64 JSON.
fn path_stat_header(stat: &berth_engine::PathStat) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(stat).unwrap_or_default())
}

/// `GET /containers/{id}/archive`: a tar of the path.
pub(crate) async fn archive_get(
    Extract(engine): Extract<State>,
    Path(id): Path<String>,
    Query(query): Query<ArchiveQuery>,
) -> Result<Response, ApiError> {
    let (stat, tar) = blocking(move || engine.copy_from(&id, &query.path)).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_string()),
            (
                header::HeaderName::from_static("x-docker-container-path-stat"),
                path_stat_header(&stat),
            ),
        ],
        tar,
    )
        .into_response())
}

/// `HEAD /containers/{id}/archive`: the path's stat only.
pub(crate) async fn archive_head(
    Extract(engine): Extract<State>,
    Path(id): Path<String>,
    Query(query): Query<ArchiveQuery>,
) -> Result<Response, ApiError> {
    let stat = blocking(move || engine.stat_path(&id, &query.path)).await?;
    Ok(([(
        header::HeaderName::from_static("x-docker-container-path-stat"),
        path_stat_header(&stat),
    )])
    .into_response())
}

/// `PUT /containers/{id}/archive`: extracts the tar in the body into the path.
pub(crate) async fn archive_put(
    Extract(engine): Extract<State>,
    Path(id): Path<String>,
    Query(query): Query<ArchiveQuery>,
    body: Body,
) -> Result<StatusCode, ApiError> {
    use futures_util::TryStreamExt;
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    blocking(move || engine.copy_into(&id, &query.path, reader)).await?;
    Ok(StatusCode::OK)
}

/// `POST /containers/prune`: removes every stopped container.
pub(crate) async fn prune(Extract(engine): Extract<State>) -> Result<Json<Value>, ApiError> {
    let removed = blocking(move || {
        let stopped: Vec<String> = engine
            .containers(true)
            .into_iter()
            .filter(|c| c.state.status != Status::Running)
            .map(|c| c.id)
            .collect();
        Ok(stopped
            .into_iter()
            .filter(|id| engine.remove_container(id, false).is_ok())
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(Json(
        json!({"ContainersDeleted": removed, "SpaceReclaimed": 0}),
    ))
}
