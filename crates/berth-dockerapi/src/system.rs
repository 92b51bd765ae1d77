//! `_ping`, `version` and `info`: what the CLI asks first, to negotiate the API version
//! and to describe the daemon.

use axum::Json;
use axum::extract::State as Extract;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::{ApiError, MAX_API_VERSION, MIN_API_VERSION, State, version_string};

/// The daemon's version, as `docker version` shows it.
const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// `GET|HEAD /_ping`: "OK", with the newest API version we serve in `API-Version`.
pub(crate) async fn ping() -> impl IntoResponse {
    let mut headers = HeaderMap::new();
    let api = version_string(MAX_API_VERSION);
    for (name, value) in [
        ("API-Version", api.as_str()),
        ("Docker-Experimental", "false"),
        ("OSType", "linux"),
        ("Builder-Version", "1"),
        ("Cache-Control", "no-cache, no-store, must-revalidate"),
        ("Pragma", "no-cache"),
    ] {
        if let Ok(value) = value.parse() {
            headers.insert(name, value);
        }
    }
    (headers, "OK")
}

fn kernel() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `GET /version`.
pub(crate) async fn version() -> Json<Value> {
    let details = json!({
        "ApiVersion": version_string(MAX_API_VERSION),
        "MinAPIVersion": version_string(MIN_API_VERSION),
        "Os": "linux",
        "Arch": berth_image::host_architecture(),
        "KernelVersion": kernel(),
    });
    Json(json!({
        "Platform": {"Name": "Berth Engine"},
        "Components": [{"Name": "Engine", "Version": ENGINE_VERSION, "Details": details}],
        "Version": ENGINE_VERSION,
        "ApiVersion": version_string(MAX_API_VERSION),
        "MinAPIVersion": version_string(MIN_API_VERSION),
        "GitCommit": "",
        "GoVersion": "n/a (Rust)",
        "Os": "linux",
        "Arch": berth_image::host_architecture(),
        "KernelVersion": kernel(),
    }))
}

/// `GET /info`.
pub(crate) async fn info(Extract(engine): Extract<State>) -> Json<Value> {
    let hostname = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024);
    let containers = engine.containers(true);
    let running = containers
        .iter()
        .filter(|c| c.state.status == berth_engine::Status::Running)
        .count();
    let paused = containers.iter().filter(|c| c.state.paused).count();
    let cgroup_v2 = nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
    Json(json!({
        "ID": hostname,
        "Name": hostname,
        "Containers": containers.len(),
        "ContainersRunning": running - paused,
        "ContainersPaused": paused,
        "ContainersStopped": containers.len() - running,
        "Images": engine.images().list().len(),
        "Driver": "overlay2",
        "DockerRootDir": engine.data_dir(),
        "ServerVersion": ENGINE_VERSION,
        "OperatingSystem": "Berth on Linux",
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "KernelVersion": kernel(),
        "NCPU": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "MemTotal": memory,
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": if cgroup_v2 { "2" } else { "1" },
        "LoggingDriver": "json-file",
        "DefaultRuntime": "berth",
        "Runtimes": {"berth": {"path": "berth-runtime (in-process)"}},
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"], "Log": ["json-file"]},
        "Swarm": {"LocalNodeState": "inactive"},
        "Warnings": [],
    }))
}

/// `GET /system/df`: the disk each image, container and volume takes.
pub(crate) async fn df(Extract(engine): Extract<State>) -> Result<Json<Value>, ApiError> {
    crate::containers::blocking(move || Ok(disk_usage(&engine)))
        .await
        .map(Json)
}

fn disk_usage(engine: &berth_engine::Engine) -> Value {
    let containers = engine.containers(true);
    let images = engine.images().list();
    // Each layer once: its size and how many images use it.
    let mut layers = std::collections::BTreeMap::new();
    for layer in images.iter().flat_map(|(image, _)| &image.layers) {
        let entry = layers
            .entry(layer.diff_id.clone())
            .or_insert((layer.unpacked_size, 0usize));
        entry.1 += 1;
    }
    let image_rows: Vec<Value> = images
        .iter()
        .map(|(image, tags)| {
            let mut row = crate::images::summary(engine, image, tags);
            let users = containers
                .iter()
                .filter(|c| c.image_id == image.id.as_str())
                .count();
            let shared: u64 = image
                .layers
                .iter()
                .filter(|l| layers.get(&l.diff_id).is_some_and(|(_, n)| *n > 1))
                .map(|l| l.unpacked_size)
                .sum();
            row["Containers"] = json!(users);
            row["SharedSize"] = json!(shared);
            row
        })
        .collect();
    let container_rows: Vec<Value> = containers
        .iter()
        .map(|c| {
            let mut row = crate::containers::summary(engine, c);
            let written = engine.container_size(c);
            let image = engine
                .images()
                .resolve(&c.image_id)
                .map_or(0, |i| crate::images::size(&i));
            row["SizeRw"] = json!(written);
            row["SizeRootFs"] = json!(written + image);
            row
        })
        .collect();
    let volume_rows: Vec<Value> = engine
        .volumes()
        .iter()
        .map(|v| {
            let mut row = v.to_json();
            let (size, users) = engine.volume_usage(&v.name);
            row["UsageData"] = json!({"Size": size, "RefCount": users});
            row
        })
        .collect();
    json!({
        "LayersSize": layers.values().map(|(size, _)| size).sum::<u64>(),
        "Images": image_rows,
        "Containers": container_rows,
        "Volumes": volume_rows,
        "BuildCache": [],
    })
}

/// `POST /build/prune`: Berth keeps no build cache yet, so there is nothing to remove.
pub(crate) async fn build_prune() -> Json<Value> {
    Json(json!({"CachesDeleted": [], "SpaceReclaimed": 0}))
}
