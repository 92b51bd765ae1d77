//! Volume endpoints: list, create, inspect, remove, prune.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State as Extract};
use axum::http::StatusCode;
use berth_engine::{Engine, Volume};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ApiError, State};

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct ListQuery {
    filters: Option<String>,
}

/// The volumes that pass `filters` (Docker's and libpod's `label` and `name`); other
/// filters are refused by name.
pub(crate) fn matching(engine: &Engine, filters: Option<&str>) -> Result<Vec<Volume>, ApiError> {
    let filters = crate::query::filters(filters)?;
    if let Some(key) = filters
        .keys()
        .find(|k| !matches!(k.as_str(), "label" | "name"))
    {
        return Err(ApiError::bad_request(format!(
            "berth does not support the volume filter {key:?} yet"
        )));
    }
    let passes = |volume: &Volume| {
        filters.iter().all(|(key, values)| match key.as_str() {
            "label" => {
                crate::query::labels_match(values, |k| volume.labels.get(k).map(String::as_str))
            }
            _ => values
                .iter()
                .any(|name| volume.name.contains(name.as_str())),
        })
    };
    Ok(engine.volumes().into_iter().filter(passes).collect())
}

/// `GET /volumes`.
pub(crate) async fn list(
    Extract(engine): Extract<State>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let volumes: Vec<Value> = matching(&engine, query.filters.as_deref())?
        .iter()
        .map(Volume::to_json)
        .collect();
    Ok(Json(json!({"Volumes": volumes, "Warnings": []})))
}

/// The body of `POST /volumes/create`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct CreateBody {
    name: String,
    driver: Option<String>,
    driver_opts: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
}

/// `POST /volumes/create`.
pub(crate) async fn create(
    Extract(engine): Extract<State>,
    Json(body): Json<CreateBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let labels = body.labels.unwrap_or_default();
    let volume = make(
        &engine,
        &body.name,
        body.driver.as_deref(),
        body.driver_opts.as_ref(),
        &labels,
    )?;
    Ok((StatusCode::CREATED, Json(volume.to_json())))
}

/// Makes a volume of the local driver, the only one; options it would need are refused.
pub(crate) fn make(
    engine: &Engine,
    name: &str,
    driver: Option<&str>,
    options: Option<&BTreeMap<String, String>>,
    labels: &BTreeMap<String, String>,
) -> Result<Volume, ApiError> {
    if let Some(driver) = driver.filter(|d| !matches!(*d, "" | "local")) {
        return Err(ApiError::bad_request(format!(
            "berth has the local volume driver only, not {driver:?}"
        )));
    }
    if let Some(key) = options.into_iter().flatten().next().map(|(k, _)| k) {
        return Err(ApiError::bad_request(format!(
            "berth does not support the volume option {key:?}"
        )));
    }
    Ok(engine.create_volume(name, labels)?)
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
