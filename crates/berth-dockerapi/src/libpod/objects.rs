//! libpod's network, volume and image endpoints, in libpod's shapes: what
//! `podman network|volume|image` and podman-compose's set-up ask.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, RawQuery, State as Extract};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use berth_engine::{Engine, Network, NetworkRequest, Volume};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{PodmanError, flag, json_body};
use crate::State;
use crate::containers::blocking;
use crate::query::QueryPairs;

/// A network as libpod describes it.
fn network_json(network: &Network) -> Value {
    let subnets: Vec<Value> = network
        .subnet
        .iter()
        .map(|subnet| json!({"subnet": subnet.to_string(), "gateway": network.gateway.map(|g| g.to_string())}))
        .collect();
    json!({
        "name": network.name,
        "id": network.id,
        "driver": network.driver,
        "network_interface": network.bridge,
        "created": network.created,
        "subnets": subnets,
        "ipv6_enabled": false,
        "internal": network.internal,
        "dns_enabled": network.has_dns(),
        "labels": network.labels,
        "ipam_options": {"driver": "host-local"},
    })
}

/// The body of `POST /libpod/networks/create` (`podman network create`).
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct NetworkBody {
    name: String,
    driver: String,
    internal: bool,
    labels: Option<BTreeMap<String, String>>,
    subnets: Option<Vec<Subnet>>,
    dns_enabled: bool,
    ipv6_enabled: bool,
    options: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Subnet {
    subnet: String,
    gateway: Option<String>,
}

/// `POST /libpod/networks/create`.
pub(crate) async fn create_network(
    Extract(engine): Extract<State>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, PodmanError> {
    let body: NetworkBody = json_body(&body)?;
    if body.ipv6_enabled {
        return Err(PodmanError::bad_request(
            "berth's networks are IPv4 only: --ipv6 is not supported",
        ));
    }
    if !body.dns_enabled {
        return Err(PodmanError::bad_request(
            "berth's networks always serve their containers' names: --disable-dns is not supported",
        ));
    }
    if let Some(key) = body.options.iter().flatten().next().map(|(k, _)| k) {
        return Err(PodmanError::bad_request(format!(
            "berth does not support the network option {key:?}"
        )));
    }
    let subnet = match body.subnets.unwrap_or_default().as_slice() {
        [] => None,
        [one] => Some((one.subnet.clone(), one.gateway.clone())),
        _ => {
            return Err(PodmanError::bad_request(
                "berth's networks have one subnet: more than one --subnet is not supported",
            ));
        }
    };
    let request = NetworkRequest {
        name: body.name,
        driver: body.driver,
        subnet: subnet.as_ref().map(|(s, _)| s.clone()),
        gateway: subnet.and_then(|(_, g)| g).filter(|g| !g.is_empty()),
        internal: body.internal,
        labels: body.labels.unwrap_or_default(),
    };
    let network = blocking(move || engine.create_network(request)).await?;
    Ok(Json(network_json(&network)))
}

/// `GET /libpod/networks/json`.
pub(crate) async fn list_networks(Extract(engine): Extract<State>) -> Json<Value> {
    Json(engine.networks().iter().map(network_json).collect())
}

/// `GET /libpod/networks/{name}/json`.
pub(crate) async fn inspect_network(
    Extract(engine): Extract<State>,
    Path(name): Path<String>,
) -> Result<Json<Value>, PodmanError> {
    Ok(Json(network_json(&engine.network(&name)?)))
}

/// `GET /libpod/networks/{name}/exists`: 204, or 404.
pub(crate) async fn network_exists(
    Extract(engine): Extract<State>,
    Path(name): Path<String>,
) -> Result<StatusCode, PodmanError> {
    engine.network(&name)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /libpod/networks/{name}`: a report of the network removed.
pub(crate) async fn remove_network(
    Extract(engine): Extract<State>,
    Path(name): Path<String>,
) -> Result<Json<Value>, PodmanError> {
    let network = engine.network(&name)?;
    blocking(move || engine.remove_network(&name)).await?;
    Ok(Json(json!([{"Name": network.name, "Err": null}])))
}

/// A volume as libpod describes it.
fn volume_json(volume: &Volume) -> Value {
    json!({
        "Name": volume.name,
        "Driver": "local",
        "Mountpoint": volume.mountpoint,
        "CreatedAt": volume.created,
        "Labels": volume.labels,
        "Scope": "local",
        "Options": {},
        "MountCount": 0,
    })
}

/// The body of `POST /libpod/volumes/create` (`podman volume create`): podman 4 sends
/// the labels as `Label`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct VolumeBody {
    name: String,
    driver: Option<String>,
    label: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
    options: Option<BTreeMap<String, String>>,
}

/// `POST /libpod/volumes/create`.
pub(crate) async fn create_volume(
    Extract(engine): Extract<State>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), PodmanError> {
    let body: VolumeBody = json_body(&body)?;
    let mut labels = body.labels.unwrap_or_default();
    labels.extend(body.label.unwrap_or_default());
    let volume = crate::volumes::make(
        &engine,
        &body.name,
        body.driver.as_deref(),
        body.options.as_ref(),
        &labels,
    )?;
    Ok((StatusCode::CREATED, Json(volume_json(&volume))))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct VolumeListQuery {
    filters: Option<String>,
}

/// `GET /libpod/volumes/json` (`podman volume ls`, `volume inspect --all`).
pub(crate) async fn list_volumes(
    Extract(engine): Extract<State>,
    Query(query): Query<VolumeListQuery>,
) -> Result<Json<Value>, PodmanError> {
    let volumes = crate::volumes::matching(&engine, query.filters.as_deref())?;
    Ok(Json(volumes.iter().map(volume_json).collect()))
}

/// `GET /libpod/volumes/{name}/json`.
pub(crate) async fn inspect_volume(
    Extract(engine): Extract<State>,
    Path(name): Path<String>,
) -> Result<Json<Value>, PodmanError> {
    Ok(Json(volume_json(&engine.volume(&name)?)))
}

/// `GET /libpod/volumes/{name}/exists`: 204, or 404.
pub(crate) async fn volume_exists(
    Extract(engine): Extract<State>,
    Path(name): Path<String>,
) -> Result<StatusCode, PodmanError> {
    engine.volume(&name)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /libpod/volumes/{name}`.
pub(crate) async fn remove_volume(
    Extract(engine): Extract<State>,
    Path(name): Path<String>,
) -> Result<StatusCode, PodmanError> {
    engine.remove_volume(&name)?;
    Ok(StatusCode::NO_CONTENT)
}

/// An image's id as libpod writes it: the hex digits alone.
fn bare_id(id: &str) -> &str {
    id.trim_start_matches("sha256:")
}

/// `GET /libpod/images/{name}/exists|json`: one route, as names hold slashes.
pub(crate) async fn get_image(
    Extract(engine): Extract<State>,
    Path(path): Path<String>,
) -> Result<Response, PodmanError> {
    use axum::response::IntoResponse;
    if let Some(name) = path.strip_suffix("/exists") {
        engine
            .images()
            .resolve(name)
            .map_err(crate::ApiError::from)?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let Some(name) = path.strip_suffix("/json") else {
        return Err(crate::ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("berth does not implement /libpod/images/{path} yet"),
        )
        .into());
    };
    let image = engine
        .images()
        .resolve(name)
        .map_err(crate::ApiError::from)?;
    let config = engine
        .images()
        .config(&image)
        .map_err(crate::ApiError::from)?;
    Ok(Json(json!({
        "Id": bare_id(image.id.as_str()),
        "RepoTags": engine.images().tags(&image),
        "RepoDigests": [],
        "Parent": "",
        "Comment": config["comment"].as_str().unwrap_or_default(),
        "Created": config["created"].as_str().unwrap_or_default(),
        "Config": config["config"].clone(),
        "Author": config["author"].as_str().unwrap_or_default(),
        "Architecture": config["architecture"].clone(),
        "Os": config["os"].clone(),
        "Size": crate::images::size(&image),
        "VirtualSize": crate::images::size(&image),
        "RootFS": {
            "Type": "layers",
            "Layers": image.layers.iter().map(|l| l.diff_id.as_str()).collect::<Vec<_>>(),
        },
        "Labels": config["config"]["Labels"].clone(),
        "Annotations": {},
        "User": config["config"]["User"].as_str().unwrap_or_default(),
    }))
    .into_response())
}

/// `GET /libpod/images/json`: `podman images`.
pub(crate) async fn list_images(Extract(engine): Extract<State>) -> Json<Value> {
    let containers = engine.containers(true);
    let images = engine.images().list();
    let summaries = images.iter().map(|(image, tags)| {
        let config = engine.images().config(image).unwrap_or_default();
        let size = crate::images::size(image);
        let users = containers
            .iter()
            .filter(|c| c.image_id == image.id.as_str())
            .count();
        json!({
            "Id": bare_id(image.id.as_str()),
            "ParentId": "",
            "RepoTags": tags,
            "RepoDigests": [],
            "Created": crate::time::unix_seconds(config["created"].as_str().unwrap_or_default()),
            "Size": size,
            "SharedSize": 0,
            "VirtualSize": size,
            "Labels": config["config"]["Labels"].clone(),
            "Containers": users,
            "Dangling": tags.is_empty(),
            "Names": tags,
        })
    });
    Json(summaries.collect())
}

/// `DELETE /libpod/images/remove?images=…` (`podman rmi`): a report of what was untagged
/// and deleted, and what could not be.
pub(crate) async fn remove_images(
    Extract(engine): Extract<State>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, PodmanError> {
    let query = QueryPairs::parse(query.as_deref());
    if flag(query.first("all")) {
        return Err(PodmanError::bad_request(
            "berth does not support removing every image (--all)",
        ));
    }
    let force = flag(query.first("force"));
    let ignore = flag(query.first("ignore"));
    let (mut deleted, mut untagged, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    for name in query.all("images") {
        match engine.remove_image(&name, force) {
            Ok(removed) => {
                for step in removed {
                    match step {
                        berth_image::Removed::Untagged(tag) => untagged.push(tag),
                        berth_image::Removed::Deleted(id) => {
                            deleted.push(bare_id(id.as_str()).to_string())
                        }
                    }
                }
            }
            Err(berth_engine::Error::Image(berth_image::Error::NotFound(_))) if ignore => {}
            Err(error) => errors.push(error.to_string()),
        }
    }
    let exit_code = i32::from(!errors.is_empty());
    Ok(Json(json!({
        "Deleted": deleted, "Untagged": untagged, "Errors": errors, "ExitCode": exit_code,
    })))
}

/// `POST /libpod/images/pull?reference=…&policy=…`: with the policy `missing` (podman
/// run's) an image already here is not pulled again. The answer streams `stream` lines
/// and ends with the image's id, or an `error`.
pub(crate) async fn pull(
    Extract(engine): Extract<State>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, PodmanError> {
    let query = QueryPairs::parse(query.as_deref());
    let Some(reference) = query.first("reference").map(str::to_string) else {
        return Err(PodmanError::bad_request("a pull needs a reference"));
    };
    if flag(query.first("alltags")) {
        return Err(PodmanError::bad_request(
            "berth does not support pulling every tag (--all-tags)",
        ));
    }
    let policy = query.first("policy").unwrap_or("always").to_string();
    if !matches!(policy.as_str(), "always" | "missing" | "newer" | "never") {
        return Err(PodmanError::bad_request(format!(
            "unknown pull policy {policy:?}"
        )));
    }
    let present = engine.images().resolve(&reference).ok();
    if let (Some(image), "missing" | "never") = (&present, policy.as_str()) {
        let line = pulled_line(bare_id(image.id.as_str()));
        return Ok(crate::pull::progress_response(futures_util::stream::iter(
            [line],
        )));
    }
    if policy == "never" {
        return Err(crate::ApiError::new(
            StatusCode::NOT_FOUND,
            format!("{reference}: image not known"),
        )
        .into());
    }
    let parsed = berth_image::Reference::parse(&reference).map_err(crate::ApiError::from)?;
    let credentials = crate::pull::registry_auth(&headers);
    let lines = run_pull(engine, parsed, credentials).await;
    Ok(crate::pull::progress_response(futures_util::stream::iter(
        lines,
    )))
}

/// Pulls, and returns the lines libpod answers with.
async fn run_pull(
    engine: Arc<Engine>,
    reference: berth_image::Reference,
    credentials: Option<berth_image::Credentials>,
) -> Vec<Value> {
    let mut lines = vec![json!({"stream": format!("Trying to pull {reference}...\n")})];
    match engine.pull_image(&reference, credentials, &|_| {}).await {
        Ok(pulled) => lines.push(pulled_line(bare_id(pulled.id.as_str()))),
        Err(error) => lines.push(json!({"error": error.to_string()})),
    }
    lines
}

/// The last line of a pull: the image's id.
fn pulled_line(id: &str) -> Value {
    json!({"images": [id], "id": id})
}
