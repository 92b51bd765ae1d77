//! `_ping`, `version` and `info`: what the CLI asks first, to negotiate the API version
//! and to describe the daemon.

use axum::Json;
use axum::extract::State as Extract;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::{MAX_API_VERSION, MIN_API_VERSION, State, version_string};

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
        "Arch": go_arch(),
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
        "Arch": go_arch(),
        "KernelVersion": kernel(),
    }))
}

/// The architecture as Go (and so Docker) names it.
pub(crate) fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
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
    let cgroup_v2 = nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
    Json(json!({
        "ID": hostname,
        "Name": hostname,
        "Containers": 0, "ContainersRunning": 0, "ContainersPaused": 0, "ContainersStopped": 0,
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
