//! Volume endpoints: list, create, inspect, remove, prune.

use axum::Json;
use axum::extract::{Path, State as Extract};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ApiError, State};

/// `GET /volumes`.
pub(crate) async fn list(Extract(engine): Extract<State>) -> Json<Value> {
    let volumes: Vec<Value> = engine.volumes().iter().map(|v| v.to_json()).collect();
    Json(json!({"Volumes": volumes, "Warnings": []}))
}

/// The body of `POST /volumes/create`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct CreateBody {
    name: String,
}

/// `POST /volumes/create`.
pub(crate) async fn create(
    Extract(engine): Extract<State>,
    Json(body): Json<CreateBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let volume = engine.create_volume(&body.name)?;
    Ok((StatusCode::CREATED, Json(volume.to_json())))
}

/// `GET /volumes/{name}`.
pub(crate) async fn inspect(
    Extract(engine): Extract<State>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(engine.volume(&name)?.to_json()))
}

/// `DELETE /volumes/{name}`.
pub(crate) async fn remove(
    Extract(engine): Extract<State>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    engine.remove_volume(&name)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /volumes/prune`: every volume no container uses.
pub(crate) async fn prune(Extract(engine): Extract<State>) -> Json<Value> {
    let removed: Vec<String> = engine
        .volumes()
        .into_iter()
        .filter(|v| engine.remove_volume(&v.name).is_ok())
        .map(|v| v.name)
        .collect();
    Json(json!({"VolumesDeleted": removed, "SpaceReclaimed": 0}))
}
