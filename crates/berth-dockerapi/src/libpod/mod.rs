//! Podman's libpod REST API (v4), beside Docker's on the same socket, so that
//! `podman --remote` (`CONTAINER_HOST=unix:///run/berth/berth.sock`) and podman-compose,
//! which drives the podman CLI, work against `berth daemon`: ping, version and info,
//! containers from podman's own spec, networks, volumes with labels, images (list,
//! exists, inspect, remove, pull with podman's policies) and builds. Errors are
//! libpod's JSON (`cause`, `message`, `response`); endpoints not served answer 501
//! naming the path.

mod build;
mod containers;
mod objects;
mod spec;

use axum::Json;
use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::{ApiError, State};

/// The libpod API version we answer as: what podman 4.3, Debian 12's, speaks.
pub(crate) const LIBPOD_API_VERSION: &str = "4.3.1";

/// The libpod API's major version; a client of another major is refused.
pub(crate) const LIBPOD_MAJOR: u32 = 4;

/// Every libpod route, under `/libpod`.
pub(crate) fn router() -> Router<State> {
    use containers as c;
    use objects as o;
    Router::new()
        .route("/libpod/_ping", get(ping).head(ping))
        .route("/libpod/version", get(version))
        .route("/libpod/containers/create", post(c::create))
        .route("/libpod/containers/json", get(c::list))
        .route("/libpod/containers/{name}/json", get(c::inspect))
        .route("/libpod/containers/{name}/exists", get(c::exists))
        .route("/libpod/containers/{name}/start", post(c::start))
        .route("/libpod/containers/{name}/stop", post(c::stop))
        .route("/libpod/containers/{name}/kill", post(c::kill))
        .route("/libpod/containers/{name}/restart", post(c::restart))
        .route("/libpod/containers/{name}/wait", post(c::wait))
        .route(
            "/libpod/containers/{name}/logs",
            get(crate::containers::logs),
        )
        .route(
            "/libpod/containers/{name}",
            axum::routing::delete(c::remove),
        )
        .route("/libpod/networks/create", post(o::create_network))
        .route("/libpod/networks/json", get(o::list_networks))
        .route("/libpod/networks/{name}/json", get(o::inspect_network))
        .route("/libpod/networks/{name}/exists", get(o::network_exists))
        .route(
            "/libpod/networks/{name}",
            axum::routing::delete(o::remove_network),
        )
        .route("/libpod/volumes/create", post(o::create_volume))
        .route("/libpod/volumes/json", get(o::list_volumes))
        .route("/libpod/volumes/{name}/json", get(o::inspect_volume))
        .route("/libpod/volumes/{name}/exists", get(o::volume_exists))
        .route(
            "/libpod/volumes/{name}",
            axum::routing::delete(o::remove_volume),
        )
        .route("/libpod/info", get(info))
        .route("/libpod/images/pull", post(o::pull))
        .route("/libpod/images/json", get(o::list_images))
        .route(
            "/libpod/images/remove",
            axum::routing::delete(o::remove_images),
        )
        // Image names hold slashes: one catch-all route, split on the trailing action.
        .route("/libpod/images/{*name}", get(o::get_image))
        .route("/libpod/build", post(build::build))
}

/// An error as libpod reports it.
#[derive(Debug)]
pub(crate) struct PodmanError(pub(crate) ApiError);

impl PodmanError {
    /// A 400: the request itself is wrong.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self(ApiError::bad_request(message))
    }
}

impl<E> From<E> for PodmanError
where
    ApiError: From<E>,
{
    fn from(error: E) -> Self {
        Self(ApiError::from(error))
    }
}

impl IntoResponse for PodmanError {
    fn into_response(self) -> Response {
        let ApiError { status, message } = self.0;
        let body = json!({"cause": message, "message": message, "response": status.as_u16()});
        (status, Json(body)).into_response()
    }
}

/// A JSON request body: podman sends its bodies without a content type, which axum's
/// `Json` requires.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(
    body: &axum::body::Bytes,
) -> Result<T, PodmanError> {
    serde_json::from_slice(body)
        .map_err(|e| PodmanError::bad_request(format!("invalid request body: {e}")))
}

/// Query parameters that are flags: `1`, `true`.
pub(crate) fn flag(value: Option<&str>) -> bool {
    matches!(value, Some("1" | "true" | "True"))
}

/// Seconds since the epoch of an RFC 3339 time; Go's zero time (as libpod reports "never")
/// when there is none.
pub(crate) fn unix_seconds(time: &str) -> i64 {
    const GO_ZERO_TIME: i64 = -62_135_596_800;
    if time.is_empty() {
        GO_ZERO_TIME
    } else {
        crate::time::unix_seconds(time)
    }
}

/// `GET|HEAD /libpod/_ping`: "OK", with the libpod API version the podman CLI checks.
async fn ping() -> impl IntoResponse {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("Libpod-Api-Version", LIBPOD_API_VERSION),
        ("API-Version", "1.41"),
        ("Cache-Control", "no-cache"),
        ("Pragma", "no-cache"),
    ] {
        if let Ok(value) = value.parse() {
            headers.insert(name, value);
        }
    }
    (StatusCode::OK, headers, "OK")
}

/// `GET /libpod/info`: `podman info`'s host, store and version parts.
async fn info(axum::extract::State(engine): axum::extract::State<State>) -> Json<Value> {
    let containers = engine.containers(true);
    let running = containers
        .iter()
        .filter(|c| c.state.status == berth_engine::Status::Running)
        .count();
    let hostname = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let arch = berth_image::host_architecture();
    Json(json!({
        "host": {
            "arch": arch, "os": "linux", "hostname": hostname, "kernel": kernel,
            "cpus": std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            "ociRuntime": {"name": "berth", "version": env!("CARGO_PKG_VERSION")},
        },
        "store": {
            "containerStore": {
                "number": containers.len(), "running": running,
                "stopped": containers.len() - running, "paused": 0,
            },
            "imageStore": {"number": engine.images().list().len()},
        },
        "version": {
            "APIVersion": LIBPOD_API_VERSION, "Version": env!("CARGO_PKG_VERSION"),
            "OsArch": format!("linux/{arch}"),
        },
    }))
}

/// `GET /libpod/version`: `podman version`'s server part.
async fn version() -> Json<Value> {
    let version = env!("CARGO_PKG_VERSION");
    let arch = berth_image::host_architecture();
    Json(json!({
        "Platform": {"Name": "Berth Engine"},
        "Components": [{
            "Name": "Podman Engine", "Version": version,
            "Details": {"APIVersion": LIBPOD_API_VERSION, "MinAPIVersion": "4.0.0", "Os": "linux", "Arch": arch},
        }],
        "Version": version,
        "ApiVersion": "1.41",
        "MinAPIVersion": "1.24",
        "GoVersion": "n/a (Rust)",
        "GitCommit": "",
        "Os": "linux",
        "Arch": arch,
        "BuildTime": "1970-01-01T00:00:00Z",
    }))
}
