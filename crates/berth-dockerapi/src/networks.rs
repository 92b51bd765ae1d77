//! Network endpoints: list, inspect, create, remove, prune, connect and disconnect, in
//! Docker's shapes; and the networks part of a container's inspect.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State as Extract};
use axum::http::StatusCode;
use berth_engine::{Container, Endpoint, EndpointConfig, Engine, Network, NetworkRequest, Status};
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

/// The body of `POST /networks/{name}/connect`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct ConnectBody {
    container: String,
    endpoint_config: Option<Value>,
}

/// `POST /networks/{name}/connect`: endpoint settings the engine does not honour are
/// refused with a 400 naming them.
pub(crate) async fn connect(
    Extract(engine): Extract<State>,
    Path(name): Path<String>,
    Json(body): Json<ConnectBody>,
) -> Result<StatusCode, ApiError> {
    let config = body.endpoint_config.unwrap_or(Value::Null);
    crate::unsupported::check_endpoint(&config).map_err(ApiError::bad_request)?;
    let settings: EndpointConfig = match config {
        Value::Null => EndpointConfig::default(),
        config => serde_json::from_value(config)
            .map_err(|e| ApiError::bad_request(format!("invalid EndpointConfig: {e}")))?,
    };
    blocking(move || engine.connect_network(&name, &body.container, settings)).await?;
    Ok(StatusCode::OK)
}

/// The body of `POST /networks/{name}/disconnect`. `Force` changes nothing here: an
/// endpoint never outlives its container, so there is none to force away.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct DisconnectBody {
    container: String,
}

/// `POST /networks/{name}/disconnect`.
pub(crate) async fn disconnect(
    Extract(engine): Extract<State>,
    Path(name): Path<String>,
    Json(body): Json<DisconnectBody>,
) -> Result<StatusCode, ApiError> {
    blocking(move || engine.disconnect_network(&name, &body.container)).await?;
    Ok(StatusCode::OK)
}

/// NetworkSettings.Networks of inspect: each network the container is on, with its
/// address there while it runs; a stopped container's networks as it will join them.
pub(crate) fn container_networks(container: &Container) -> Value {
    let mode = match container.request.host_config.network_mode.as_str() {
        "" | "default" => "bridge",
        mode => mode,
    };
    if mode.starts_with("container:") {
        return json!({});
    }
    let configs: BTreeMap<&str, &EndpointConfig> = container
        .request
        .networking_config
        .iter()
        .filter_map(|n| n.endpoints_config.as_ref())
        .flatten()
        .map(|(key, config)| {
            (
                if key == "default" {
                    "bridge"
                } else {
                    key.as_str()
                },
                config,
            )
        })
        .collect();
    let mut networks = serde_json::Map::new();
    let joins_first = !container.state.left_first_network;
    if joins_first && container.state.endpoint.is_none() {
        networks.insert(mode.to_string(), endpoint_value(None, configs.get(mode)));
    }
    let first = joins_first && container.state.endpoint.is_some();
    for (index, endpoint) in container.state.endpoints().enumerate() {
        let config = configs
            .get(endpoint.network_name.as_str())
            .or_else(|| configs.get(endpoint.network_id.as_str()))
            .or_else(|| (first && index == 0).then(|| configs.get(mode)).flatten());
        networks.insert(
            endpoint.network_name.clone(),
            endpoint_value(Some(endpoint), config),
        );
    }
    if container.state.status != Status::Running {
        for (key, config) in &configs {
            if *key != mode {
                networks.insert(key.to_string(), endpoint_value(None, Some(config)));
            }
        }
    }
    Value::Object(networks)
}

/// One network of NetworkSettings.Networks.
fn endpoint_value(endpoint: Option<&Endpoint>, config: Option<&&EndpointConfig>) -> Value {
    json!({
        "IPAMConfig": config
            .and_then(|c| c.ipam_config.as_ref())
            .filter(|i| !i.ipv4_address.is_empty())
            .map(|i| json!({"IPv4Address": i.ipv4_address})),
        "Links": null,
        "Aliases": config.and_then(|c| c.aliases.clone()),
        "MacAddress": endpoint.map(|e| e.mac.as_str()).unwrap_or_default(),
        "NetworkID": endpoint.map(|e| e.network_id.as_str()).unwrap_or_default(),
        "EndpointID": endpoint.map(|e| e.endpoint_id.as_str()).unwrap_or_default(),
        "Gateway": endpoint.map(|e| e.gateway.to_string()).unwrap_or_default(),
        "IPAddress": endpoint.map(|e| e.ip.to_string()).unwrap_or_default(),
        "IPPrefixLen": endpoint.map_or(0, |e| e.prefix),
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": endpoint.map(|e| e.dns_names.clone()),
    })
}
