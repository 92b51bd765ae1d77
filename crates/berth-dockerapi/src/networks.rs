//! Network endpoints: list, inspect, create, remove, prune, in Docker's shapes.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State as Extract};
use axum::http::StatusCode;
use berth_engine::{Engine, Network, NetworkRequest};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::containers::blocking;
use crate::{ApiError, State};

/// Docker's NetworkResource for `network`, with the containers running on it.
fn resource(engine: &Engine, network: &Network) -> Value {
    let containers: BTreeMap<String, Value> = engine
        .network_endpoints(network)
        .into_iter()
        .map(|(container, endpoint)| {
            let value = json!({
                "Name": container.name,
                "EndpointID": endpoint.endpoint_id,
                "MacAddress": endpoint.mac,
                "IPv4Address": format!("{}/{}", endpoint.ip, endpoint.prefix),
                "IPv6Address": "",
            });
            (container.id, value)
        })
        .collect();
    let config: Vec<Value> = network
        .subnet
        .iter()
        .map(|subnet| json!({"Subnet": subnet.to_string(), "Gateway": network.gateway.map(|g| g.to_string())}))
        .collect();
    let mut options = BTreeMap::new();
    if !network.bridge.is_empty() {
        options.insert("com.docker.network.bridge.name", network.bridge.clone());
    }
    if network.name == "bridge" {
        options.insert("com.docker.network.bridge.default_bridge", "true".into());
    }
    json!({
        "Name": network.name,
        "Id": network.id,
        "Created": network.created,
        "Scope": "local",
        "Driver": network.driver,
        "EnableIPv4": true,
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": null, "Config": config},
        "Internal": network.internal,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        "Options": options,
        "Labels": network.labels,
    })
}

/// `GET /networks`.
pub(crate) async fn list(Extract(engine): Extract<State>) -> Json<Value> {
    let networks: Vec<Value> = engine
        .networks()
        .iter()
        .map(|n| resource(&engine, n))
        .collect();
    Json(Value::Array(networks))
}

/// `GET /networks/{name}`.
pub(crate) async fn inspect(
    Extract(engine): Extract<State>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let network = engine.network(&name)?;
    Ok(Json(resource(&engine, &network)))
}

/// The body of `POST /networks/create`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct CreateBody {
    name: String,
    driver: String,
    internal: bool,
    #[serde(rename = "IPAM")]
    ipam: Option<Ipam>,
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Ipam {
    config: Option<Vec<IpamConfig>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct IpamConfig {
    subnet: Option<String>,
    gateway: Option<String>,
}

/// `POST /networks/create`.
pub(crate) async fn create(
    Extract(engine): Extract<State>,
    Json(body): Json<CreateBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let config = body
        .ipam
        .and_then(|i| i.config)
        .and_then(|c| c.into_iter().next())
        .unwrap_or_default();
    let request = NetworkRequest {
        name: body.name,
        driver: body.driver,
        subnet: config.subnet.filter(|s| !s.is_empty()),
        gateway: config.gateway.filter(|g| !g.is_empty()),
        internal: body.internal,
        labels: body.labels.unwrap_or_default(),
    };
    let engine = Arc::clone(&engine);
    let network = blocking(move || engine.create_network(request)).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": network.id, "Warning": ""})),
    ))
}

/// `DELETE /networks/{name}`.
pub(crate) async fn remove(
    Extract(engine): Extract<State>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    blocking(move || engine.remove_network(&name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /networks/prune`: every user-defined network no running container is on.
pub(crate) async fn prune(Extract(engine): Extract<State>) -> Result<Json<Value>, ApiError> {
    let removed = blocking(move || {
        Ok(engine
            .networks()
            .into_iter()
            .filter(|n| !matches!(n.name.as_str(), "bridge" | "host" | "none"))
            .filter(|n| engine.remove_network(&n.id).is_ok())
            .map(|n| n.name)
            .collect::<Vec<String>>())
    })
    .await?;
    Ok(Json(json!({"NetworksDeleted": removed})))
}
