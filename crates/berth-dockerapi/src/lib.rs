//! The Docker Engine API over berth-engine: the server the daemon exposes on its unix
//! socket, and the client the `berth` CLI uses, so `docker` and its SDKs work unchanged.
//!
//! Requests may carry a version prefix (`/v1.50/images/json`); it is checked against the
//! range we serve and stripped before routing. Every error is Docker's JSON
//! `{"message": …}` with Docker's status code; endpoints not served yet answer 501.
//! Podman's libpod API (`/v4.X.Y/libpod/…`) is served beside it, for `podman --remote`
//! and podman-compose (see `libpod`).
//!
//! Depends on berth-engine and berth-image; berth-build, berth-registry and berth-ui join
//! when they have code.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::routing::{get, post};
use berth_engine::Engine;

mod build;
mod changes;
pub mod client;
mod containers;
mod error;
mod events;
mod exec;
mod images;
mod import;
mod libpod;
mod networks;
mod pull;
mod push;
mod query;
mod system;
mod time;
mod unsupported;
mod volumes;

pub use error::ApiError;

/// Oldest Docker Engine API version we answer.
pub const MIN_API_VERSION: (u32, u32) = (1, 41);
/// Newest Docker Engine API version we negotiate up to (what docker 28 asks for).
pub const MAX_API_VERSION: (u32, u32) = (1, 50);

/// The engine behind every handler.
type State = Arc<Engine>;

/// Every route we serve, without the version prefix.
pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/system/df", get(system::df))
        .route("/build", post(build::build))
        .route("/build/prune", post(system::build_prune))
        .route("/images/json", get(images::list))
        .route("/images/load", post(images::load))
        .route("/images/get", get(images::save_many))
        .route("/images/create", post(import::create))
        .route("/auth", post(pull::login))
        .route("/images/prune", post(images::prune))
        // Image names hold slashes (`registry:5000/team/app`): one catch-all route per
        // method, split on the trailing action.
        .route(
            "/images/{*name}",
            get(images::get_image)
                .post(images::tag_or_push)
                .delete(images::remove),
        )
        .route("/containers/json", get(containers::list))
        .route("/containers/create", post(containers::create))
        .route("/containers/prune", post(containers::prune))
        .route("/containers/{id}/json", get(containers::inspect))
        .route("/containers/{id}/start", post(containers::start))
        .route("/containers/{id}/wait", post(containers::wait))
        .route("/containers/{id}/stop", post(containers::stop))
        .route("/containers/{id}/kill", post(containers::kill))
        .route("/containers/{id}/attach", post(containers::attach))
        .route("/containers/{id}/logs", get(containers::logs))
        .route(
            "/containers/{id}",
            axum::routing::delete(containers::remove),
        )
        .route("/containers/{id}/exec", post(exec::create))
        .route("/containers/{id}/stats", get(containers::stats))
        .route("/containers/{id}/pause", post(containers::pause))
        .route("/containers/{id}/unpause", post(containers::unpause))
        .route("/containers/{id}/restart", post(containers::restart))
        .route("/containers/{id}/rename", post(containers::rename))
        .route("/containers/{id}/resize", post(containers::resize))
        .route("/containers/{id}/top", get(containers::top))
        .route("/containers/{id}/changes", get(changes::diff))
        .route("/containers/{id}/export", get(changes::export))
        .route("/containers/{id}/update", post(containers::update))
        .route("/commit", post(changes::commit))
        .route(
            "/containers/{id}/archive",
            get(containers::archive_get)
                .head(containers::archive_head)
                .put(containers::archive_put),
        )
        .route("/exec/{id}/start", post(exec::start))
        .route("/exec/{id}/json", get(exec::inspect))
        .route("/exec/{id}/resize", post(exec::resize))
        .route("/events", get(events::events))
        .route("/networks", get(networks::list))
        .route("/networks/create", post(networks::create))
        .route("/networks/prune", post(networks::prune))
        .route("/networks/{name}/connect", post(networks::connect))
        .route("/networks/{name}/disconnect", post(networks::disconnect))
        .route(
            "/networks/{name}",
            get(networks::inspect).delete(networks::remove),
        )
        .route("/volumes", get(volumes::list))
        .route("/volumes/create", post(volumes::create))
        .route("/volumes/prune", post(volumes::prune))
        .route(
            "/volumes/{name}",
            get(volumes::inspect).delete(volumes::remove),
        )
        .route("/plugins/{*name}", get(error::no_such_plugin))
        .merge(libpod::router())
        .fallback(error::not_implemented)
        .with_state(engine)
}

/// Serves the API on `listener` until the process ends.
pub async fn serve(engine: Arc<Engine>, listener: tokio::net::UnixListener) -> std::io::Result<()> {
    use axum::ServiceExt;
    let app = tower::Layer::layer(
        &tower::util::MapRequestLayer::new(strip_version),
        router(engine),
    );
    axum::serve(listener, app.into_make_service()).await
}

/// Removes a `/v1.NN` prefix so that one router serves every version, and podman's
/// `/v4.X.Y` before `/libpod/…`; an unsupported version is routed to a path that answers
/// the error for it.
fn strip_version(mut request: Request) -> Request {
    let path = request.uri().path();
    let Some(rest) = path.strip_prefix("/v") else {
        return request;
    };
    let Some((version, tail)) = rest.split_once('/') else {
        return request;
    };
    let numbers: Option<Vec<u32>> = version.split('.').map(|n| n.parse().ok()).collect();
    let new_path = match numbers.as_deref() {
        Some(&[major, minor]) if (MIN_API_VERSION..=MAX_API_VERSION).contains(&(major, minor)) => {
            format!("/{tail}")
        }
        Some(&[libpod::LIBPOD_MAJOR, _, _]) if tail.starts_with("libpod/") => format!("/{tail}"),
        Some(&[_, _] | [_, _, _]) => format!("/_unsupported_version/{version}"),
        _ => return request,
    };
    let query = request
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    if let Ok(uri) = format!("{new_path}{query}").parse() {
        *request.uri_mut() = uri;
    }
    request
}

/// `MAJOR.MINOR` of a version pair.
fn version_string((major, minor): (u32, u32)) -> String {
    format!("{major}.{minor}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefixes_are_stripped_or_refused() {
        let path = |p: &str| {
            strip_version(
                Request::builder()
                    .uri(p)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .uri()
            .to_string()
        };
        assert_eq!(path("/v1.50/images/json?all=1"), "/images/json?all=1");
        assert_eq!(path("/v1.41/_ping"), "/_ping");
        assert_eq!(path("/v1.12/_ping"), "/_unsupported_version/1.12");
        assert_eq!(
            path("/v4.3.1/libpod/containers/json?all=true"),
            "/libpod/containers/json?all=true"
        );
        assert_eq!(path("/v5.0.0/libpod/_ping"), "/_unsupported_version/5.0.0");
        assert_eq!(path("/v4.3.1/_ping"), "/_unsupported_version/4.3.1");
        assert_eq!(path("/_ping"), "/_ping");
        assert_eq!(path("/volumes"), "/volumes");
    }
}
