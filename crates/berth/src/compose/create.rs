//! A service's container as the Docker API's create request: its environment, ports,
//! mounts, networks with the service's name as an alias, health check, restart policy and
//! limits, labelled as Compose labels them — and the hash of that request, which tells
//! `up` whether a running container still matches the file.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use berth_compose::{Loaded, Service};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::scoped;

/// The label holding [`config_hash`], Compose's name for it.
pub(super) const CONFIG_HASH: &str = "com.docker.compose.config-hash";

/// A digest of the create request and the image's id: when either changes, the container
/// no longer is what the file asks for.
pub(super) fn config_hash(body: &Value, image_id: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(body.to_string());
    hasher.update(image_id);
    format!("{:x}", hasher.finalize())
}

/// The Docker API's create request for a service's container.
pub(super) fn create_body(
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
