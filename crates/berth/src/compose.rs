//! `berth compose`: Compose projects (berth-compose reads them) run through the daemon's
//! Docker API, as `docker compose` runs them — a `<project>_default` network where each
//! service's containers answer to the service's name, named volumes `<project>_<name>`,
//! containers `<project>-<service>-<n>` labelled `com.docker.compose.*`, started in
//! dependency order with each dependency's condition awaited. `config` prints the
//! resolved model; `up -d`, `down [-v]` and `ps`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use berth_compose::{Loaded, Service};
use berth_dockerapi::client::Client;
use serde_json::{Value, json};

use crate::Outcome;
use crate::cli::{ComposeArgs, ComposeCommand, ComposeDownArgs, ComposeUpArgs};
use crate::containers::with_daemon;

/// How long `up` waits for a dependency's condition.
const CONDITION_TIMEOUT: Duration = Duration::from_secs(120);

/// `berth compose [-f FILE] [-p NAME] COMMAND`.
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
    match &args.command {
        ComposeCommand::Config(_) => {
            print!("{}", berth_compose::config_yaml(&loaded)?);
        }
        ComposeCommand::Up(up) => with_daemon(host, |client| async move {
            self::up(&client, &loaded, up).await
        })?,
        ComposeCommand::Down(down) => with_daemon(host, |client| async move {
            self::down(&client, &loaded, down).await
        })?,
        ComposeCommand::Ps(_) => {
            with_daemon(host, |client| async move { ps(&client, &loaded).await })?
        }
        _ => return Err(Outcome::NotImplemented),
    }
    Ok(ExitCode::SUCCESS)
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

/// The services `up` starts (those without profiles: none is active), dependencies
/// first.
fn start_order(loaded: &Loaded) -> Vec<(&String, &Service)> {
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
    for name in services.keys() {
        visit(name, services, &mut order);
    }
    order
        .into_iter()
        .map(|name| (name, &services[name]))
        .filter(|(_, service)| service.profiles.is_empty())
        .collect()
}

async fn up(client: &Client, loaded: &Loaded, args: &ComposeUpArgs) -> anyhow::Result<()> {
    if !args.detach {
        bail!("berth compose up attaches to no output yet: run it with -d");
    }
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
    for (name, service) in start_order(loaded) {
        for (dependency, condition) in &service.depends_on {
            await_condition(client, loaded, dependency, &condition.condition).await?;
        }
        let image = service_image(client, loaded, name, service).await?;
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
            start_container(
                client,
                loaded,
                (name, service),
                &image,
                (&container, number),
            )
            .await?;
        }
    }
    if args.wait {
        for (name, _) in start_order(loaded) {
            await_condition(client, loaded, name, "service_healthy_or_running").await?;
        }
    }
    Ok(())
}

/// The image a service runs: built (and tagged with its `image` or `<project>-<name>`)
/// when it has `build`, pulled when it is missing.
async fn service_image(
    client: &Client,
    loaded: &Loaded,
    name: &str,
    service: &Service,
) -> anyhow::Result<String> {
    let image = service
        .image
        .clone()
        .unwrap_or_else(|| format!("{}-{name}", loaded.name));
    if let Some(build) = &service.build {
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
        return Ok(image);
    }
    if call(client, "GET", &format!("/images/{image}/json"), None)
        .await
        .is_err()
    {
        crate::pull::pull_image(client, &image, true).await?;
    }
    Ok(image)
}

/// Creates (unless it exists) and starts one container of a service.
async fn start_container(
    client: &Client,
    loaded: &Loaded,
    (name, service): (&str, &Service),
    image: &str,
    (container, number): (&str, u32),
) -> anyhow::Result<()> {
    if let Ok(existing) = call(
        client,
        "GET",
        &format!("/containers/{container}/json"),
        None,
    )
    .await
    {
        if existing["State"]["Running"] == true {
            println!(" Container {container}  Running");
            return Ok(());
        }
    } else {
        let body = create_body(loaded, (name, service), image, number)?;
        let path = format!("/containers/create?name={container}");
        call(client, "POST", &path, Some(&body)).await?;
        println!(" Container {container}  Created");
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

/// The Docker API's create request for a service's container.
fn create_body(
    loaded: &Loaded,
    (name, service): (&str, &Service),
    image: &str,
    number: u32,
) -> anyhow::Result<Value> {
    let words = |command: &berth_compose::Command, what: &str| {
        command
            .words()
            .with_context(|| format!("service {name}: {what} has an unclosed quote"))
    };
    let env = environment(loaded, name, service)?;
    let mut labels = service.labels.clone();
    labels.insert("com.docker.compose.project".into(), loaded.name.clone());
    labels.insert("com.docker.compose.service".into(), name.into());
    labels.insert(
        "com.docker.compose.container-number".into(),
        number.to_string(),
    );
    labels.insert("com.docker.compose.oneoff".into(), "False".into());
    let (exposed, bindings) = ports(service);
    let mounts = mounts(loaded, service);
    let networks: Vec<String> = if service.networks.is_empty() {
        vec!["default".into()]
    } else {
        service.networks.clone()
    };
    let endpoints: serde_json::Map<String, Value> = networks
        .iter()
        .map(|n| (scoped(loaded, n), json!({"Aliases": [name]})))
        .collect();
    let mut host_config = json!({
        "PortBindings": bindings,
        "Mounts": mounts,
        "NetworkMode": scoped(loaded, &networks[0]),
        "RestartPolicy": restart_policy(service.restart.as_deref())?,
    });
    if let Some(limits) = service
        .deploy
        .as_ref()
        .and_then(|d| d.resources.as_ref())
        .and_then(|r| r.limits.as_ref())
    {
        if let Some(memory) = &limits.memory {
            host_config["Memory"] =
                json!(bytes(memory).with_context(|| format!("service {name}: memory {memory}"))?);
        }
        if let Some(cpus) = &limits.cpus {
            let cpus: f64 = cpus
                .parse()
                .with_context(|| format!("service {name}: cpus {cpus}"))?;
            host_config["NanoCpus"] = json!((cpus * 1e9) as u64);
        }
    }
    let mut body = json!({
        "Image": image,
        "Env": env,
        "Labels": labels,
        "ExposedPorts": exposed,
        "Tty": service.tty,
        "OpenStdin": service.stdin_open,
        "HostConfig": host_config,
        "NetworkingConfig": {"EndpointsConfig": endpoints},
    });
    if let Some(command) = &service.command {
        body["Cmd"] = json!(words(command, "command")?);
    }
    if let Some(entrypoint) = &service.entrypoint {
        body["Entrypoint"] = json!(words(entrypoint, "entrypoint")?);
    }
    for (key, value) in [
        ("WorkingDir", &service.working_dir),
        ("User", &service.user),
        ("Hostname", &service.hostname),
    ] {
        if let Some(value) = value {
            body[key] = json!(value);
        }
    }
    if let Some(check) = &service.healthcheck {
        body["Healthcheck"] = health_check(name, check)?;
    }
    Ok(body)
}

/// The container's environment: its env_files' lines, then `environment` (a name without
/// a value takes the caller's, and is left out when the caller has none).
fn environment(loaded: &Loaded, name: &str, service: &Service) -> anyhow::Result<Vec<String>> {
    let mut env: Vec<String> = Vec::new();
    for file in &service.env_file {
        let text = std::fs::read_to_string(loaded.dir.join(file))
            .with_context(|| format!("service {name}: env_file {file}"))?;
        env.extend(
            berth_compose::dotenv(&text)
                .into_iter()
                .map(|(k, v)| format!("{k}={v}")),
        );
    }
    for (key, value) in &service.environment {
        if let Some(value) = value.clone().or_else(|| std::env::var(key).ok()) {
            env.push(format!("{key}={value}"));
        }
    }
    Ok(env)
}

/// `ExposedPorts` and `PortBindings` of the service's published ports.
fn ports(service: &Service) -> (BTreeMap<String, Value>, BTreeMap<String, Vec<Value>>) {
    let mut exposed = BTreeMap::new();
    let mut bindings: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for port in &service.ports {
        let key = format!("{}/{}", port.target, port.protocol);
        exposed.insert(key.clone(), json!({}));
        bindings.entry(key).or_default().push(json!({
            "HostIp": port.host_ip.clone().unwrap_or_default(),
            "HostPort": port.published.map(|p| p.to_string()).unwrap_or_default(),
        }));
    }
    (exposed, bindings)
}

/// The service's mounts in the Docker API's shape: the project's named volumes under
/// their project names, bind sources relative to the project directory.
fn mounts(loaded: &Loaded, service: &Service) -> Vec<Value> {
    service
        .volumes
        .iter()
        .map(|mount| {
            let external = |volume: &String| {
                loaded
                    .project
                    .volumes
                    .get(volume)
                    .is_some_and(|v| v.external)
            };
            let source = match (mount.kind.as_str(), &mount.source) {
                ("volume", Some(volume)) if !external(volume) => Some(scoped(loaded, volume)),
                ("bind", Some(path)) => Some(loaded.dir.join(path).display().to_string()),
                (_, source) => source.clone(),
            };
            json!({
                "Type": mount.kind,
                "Source": source.unwrap_or_default(),
                "Target": mount.target,
                "ReadOnly": mount.read_only,
            })
        })
        .collect()
}

/// A service's healthcheck as the Docker API takes it.
fn health_check(name: &str, check: &berth_compose::Healthcheck) -> anyhow::Result<Value> {
    if check.disable {
        return Ok(json!({"Test": ["NONE"]}));
    }
    let test = match &check.test {
        Some(berth_compose::Command::Line(line)) => json!(["CMD-SHELL", line]),
        Some(berth_compose::Command::Exec(words)) => json!(words),
        None => json!([]),
    };
    let mut out = json!({"Test": test});
    for (key, value) in [
        ("Interval", &check.interval),
        ("Timeout", &check.timeout),
        ("StartPeriod", &check.start_period),
    ] {
        if let Some(value) = value {
            let nanoseconds = berth_build::go_duration(value)
                .with_context(|| format!("service {name}: healthcheck duration {value}"))?;
            out[key] = json!(nanoseconds);
        }
    }
    if let Some(retries) = check.retries {
        out["Retries"] = json!(retries);
    }
    Ok(out)
}

fn restart_policy(restart: Option<&str>) -> anyhow::Result<Value> {
    let (name, count) = match restart.unwrap_or("no").split_once(':') {
        Some((name, count)) => (name, count.parse::<u32>().context("restart: on-failure:N")?),
        None => (restart.unwrap_or("no"), 0),
    };
    match name {
        "no" | "always" | "on-failure" | "unless-stopped" => {
            Ok(json!({"Name": name, "MaximumRetryCount": count}))
        }
        other => bail!("invalid restart policy {other:?}"),
    }
}

/// `512m`, `1g`, `100k`, `1024` as bytes.
fn bytes(text: &str) -> Option<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let lower = lower.trim_end_matches('b');
    let (number, scale) = match lower.char_indices().last()? {
        (i, 'k') => (&lower[..i], 1u64 << 10),
        (i, 'm') => (&lower[..i], 1 << 20),
        (i, 'g') => (&lower[..i], 1 << 30),
        _ => (lower, 1),
    };
    Some((number.trim().parse::<f64>().ok()? * scale as f64) as u64)
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
        let containers = project_containers(client, loaded, Some(service)).await?;
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

/// The project's containers (of `service` when given), inspected.
async fn project_containers(
    client: &Client,
    loaded: &Loaded,
    service: Option<&str>,
) -> anyhow::Result<Vec<Value>> {
    let mut labels = vec![format!("com.docker.compose.project={}", loaded.name)];
    labels.extend(service.map(|s| format!("com.docker.compose.service={s}")));
    let filters = json!({"label": labels}).to_string();
    let query = serde_urlencoded::to_string([("all", "1"), ("filters", filters.as_str())])?;
    let listed = call(client, "GET", &format!("/containers/json?{query}"), None).await?;
    let mut out = Vec::new();
    for container in listed.as_array().into_iter().flatten() {
        let id = container["Id"].as_str().unwrap_or_default();
        out.push(call(client, "GET", &format!("/containers/{id}/json"), None).await?);
    }
    Ok(out)
}

async fn down(client: &Client, loaded: &Loaded, args: &ComposeDownArgs) -> anyhow::Result<()> {
    for container in project_containers(client, loaded, None).await? {
        let name = container["Name"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string();
        call(
            client,
            "POST",
            &format!("/containers/{name}/stop?t=10"),
            None,
        )
        .await?;
        let volumes = if args.volumes { "1" } else { "0" };
        call(
            client,
            "DELETE",
            &format!("/containers/{name}?force=1&v={volumes}"),
            None,
        )
        .await?;
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

async fn ps(client: &Client, loaded: &Loaded) -> anyhow::Result<()> {
    println!("{:<24} {:<24} {:<12} STATUS", "NAME", "IMAGE", "SERVICE");
    for container in project_containers(client, loaded, None).await? {
        println!(
            "{:<24} {:<24} {:<12} {}",
            container["Name"]
                .as_str()
                .unwrap_or_default()
                .trim_start_matches('/'),
            container["Config"]["Image"].as_str().unwrap_or_default(),
            container["Config"]["Labels"]["com.docker.compose.service"]
                .as_str()
                .unwrap_or_default(),
            container["State"]["Status"].as_str().unwrap_or_default(),
        );
    }
    Ok(())
}
