//! Image endpoints: list, inspect, load, tag and remove, in Docker's JSON shapes.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, RawQuery, State as Extract};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_image::{ImageRecord, Reference, Removed};
use futures_util::TryStreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::query::QueryPairs;
use crate::{ApiError, State};

/// The size Docker reports for an image: its layers, uncompressed.
pub(crate) fn size(image: &ImageRecord) -> u64 {
    image.layers.iter().map(|l| l.unpacked_size).sum()
}

fn repo_tags(tags: &[String]) -> Value {
    json!(tags)
}

/// An image as `docker images` lists it.
pub(crate) fn summary(
    engine: &berth_engine::Engine,
    image: &ImageRecord,
    tags: &[String],
) -> Value {
    let config = engine.images().config(image).unwrap_or_default();
    json!({
        "Id": image.id.as_str(),
        "ParentId": "",
        "RepoTags": repo_tags(tags),
        "RepoDigests": [],
        "Created": crate::time::unix_seconds(config["created"].as_str().unwrap_or_default()),
        "Size": size(image),
        "SharedSize": -1,
        "Labels": config["config"]["Labels"].clone(),
        "Containers": -1,
    })
}

/// `GET /images/json`.
pub(crate) async fn list(Extract(engine): Extract<State>) -> Result<Json<Value>, ApiError> {
    let images = engine.images().list();
    let summaries = images
        .iter()
        .map(|(image, tags)| summary(&engine, image, tags))
        .collect();
    Ok(Json(Value::Array(summaries)))
}

/// The image name of `/images/{name}/{action}`, when the path ends with that action.
fn name_before(path: &str, action: &str) -> Result<String, ApiError> {
    path.strip_suffix(action)
        .and_then(|name| name.strip_suffix('/'))
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                format!("berth does not implement /images/{path} yet"),
            )
        })
}

/// `GET /images/{name}/json|history|get`: one route for the three, as names hold slashes.
pub(crate) async fn get_image(
    engine: Extract<State>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    if let Ok(name) = name_before(&path, "history") {
        return history(&engine, &name).map(IntoResponse::into_response);
    }
    if let Ok(name) = name_before(&path, "get") {
        return save(engine, vec![name]).await;
    }
    inspect(engine, &path).map(IntoResponse::into_response)
}

/// `GET /images/get?names=…`: `docker save` of several images.
pub(crate) async fn save_many(
    engine: Extract<State>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let names = QueryPairs::parse(query.as_deref()).all("names");
    if names.is_empty() {
        return Err(ApiError::bad_request("no images named to save"));
    }
    save(engine, names).await
}

/// The archive of `names`, streamed as it is written.
async fn save(Extract(engine): Extract<State>, names: Vec<String>) -> Result<Response, ApiError> {
    for name in &names {
        engine.images().resolve(name)?;
    }
    let (reader, writer) = tokio::io::duplex(1 << 16);
    tokio::task::spawn_blocking(move || {
        let out = tokio_util::io::SyncIoBridge::new(writer);
        if let Err(error) = engine.images().save_archive(&names, out) {
            tracing::warn!(%error, "docker save stopped");
        }
    });
    Ok((
        [("Content-Type", "application/x-tar")],
        Body::from_stream(tokio_util::io::ReaderStream::new(reader)),
    )
        .into_response())
}

/// `GET /images/{name}/history`: the config's history, newest first, each step that made
/// a layer with that layer's size.
fn history(engine: &State, name: &str) -> Result<Json<Value>, ApiError> {
    let image = engine.images().resolve(name)?;
    let config = engine.images().config(&image)?;
    let mut sizes = image.layers.iter().map(|l| l.unpacked_size);
    let steps = config["history"].as_array().cloned().unwrap_or_default();
    let mut rows: Vec<Value> = steps
        .iter()
        .map(|step| {
            let empty = step["empty_layer"].as_bool().unwrap_or(false);
            json!({
                "Id": "<missing>",
                "Created": crate::time::unix_seconds(step["created"].as_str().unwrap_or_default()),
                "CreatedBy": step["created_by"].as_str().unwrap_or_default(),
                "Tags": null,
                "Size": if empty { 0 } else { sizes.next().unwrap_or(0) },
                "Comment": step["comment"].as_str().unwrap_or_default(),
            })
        })
        .collect();
    // Layers the history does not account for (images without one) get a row each.
    rows.extend(sizes.map(|size| json!({"Id": "<missing>", "Created": 0, "CreatedBy": "", "Tags": null, "Size": size, "Comment": ""})));
    rows.reverse();
    if let Some(top) = rows.first_mut() {
        top["Id"] = json!(image.id.as_str());
        top["Tags"] = json!(engine.images().tags(&image));
    }
    Ok(Json(Value::Array(rows)))
}

/// `GET /images/{name}/json`.
fn inspect(Extract(engine): Extract<State>, path: &str) -> Result<Json<Value>, ApiError> {
    let name = name_before(path, "json")?;
    let image = engine.images().resolve(&name)?;
    let config = engine.images().config(&image)?;
    Ok(Json(json!({
        "Id": image.id.as_str(),
        "RepoTags": repo_tags(&engine.images().tags(&image)),
        "RepoDigests": [],
        "Parent": "",
        "Comment": config["comment"].as_str().unwrap_or_default(),
        "Created": config["created"].as_str().unwrap_or_default(),
        "DockerVersion": "",
        "Author": config["author"].as_str().unwrap_or_default(),
        "Config": config["config"].clone(),
        "Architecture": config["architecture"].clone(),
        "Os": config["os"].clone(),
        "Size": size(&image),
        "GraphDriver": {"Name": "overlay2", "Data": {}},
        "RootFS": {
            "Type": "layers",
            "Layers": image.layers.iter().map(|l| l.diff_id.as_str()).collect::<Vec<_>>(),
        },
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    })))
}

/// `POST /images/load`: the archive streams from the request body into the store.
pub(crate) async fn load(
    Extract(engine): Extract<State>,
    body: Body,
) -> Result<Response, ApiError> {
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    let store = Arc::clone(&engine);
    let loaded = tokio::task::spawn_blocking(move || store.images().load(reader))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let mut lines = String::new();
    for image in loaded {
        let name = image
            .tags
            .first()
            .map_or_else(|| image.id.to_string(), |t| t.to_string());
        engine.emit_image(image.id.as_str(), "load", &name);
        let message = if image.tags.is_empty() {
            format!("Loaded image ID: {}\n", image.id)
        } else {
            image
                .tags
                .iter()
                .map(|t| format!("Loaded image: {t}\n"))
                .collect()
        };
        lines.push_str(&json!({"stream": message}).to_string());
        lines.push('\n');
    }
    Ok(([("Content-Type", "application/json")], lines).into_response())
}

/// Query of `DELETE /images/{name}`.
#[derive(Deserialize)]
pub(crate) struct RemoveQuery {
    #[serde(default)]
    force: Option<String>,
}

fn flag(value: &Option<String>) -> bool {
    matches!(value.as_deref(), Some("1" | "true" | "True"))
}

/// `DELETE /images/{name}`.
pub(crate) async fn remove(
    Extract(engine): Extract<State>,
    Path(name): Path<String>,
    Query(query): Query<RemoveQuery>,
) -> Result<Json<Value>, ApiError> {
    let removed = engine.remove_image(&name, flag(&query.force))?;
    Ok(Json(Value::Array(
        removed
            .into_iter()
            .map(|r| match r {
                Removed::Untagged(tag) => json!({"Untagged": tag}),
                Removed::Deleted(id) => json!({"Deleted": id.as_str()}),
            })
            .collect(),
    )))
}

/// `POST /images/{name}/tag` and `POST /images/{name}/push`: one route for both, as
/// names hold slashes.
pub(crate) async fn tag_or_push(
    Extract(engine): Extract<State>,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let query = QueryPairs::parse(query.as_deref());
    if let Some(name) = path.strip_suffix("/push") {
        return crate::push::push(engine, name, &query, &headers).await;
    }
    let name = name_before(&path, "tag")?;
    let repo = query
        .first("repo")
        .ok_or_else(|| ApiError::bad_request("repository name (repo) is required"))?;
    let tag = query
        .first("tag")
        .filter(|t| !t.is_empty())
        .unwrap_or("latest");
    let target = Reference::parse(&format!("{repo}:{tag}"))?;
    engine.images().tag(&name, &target)?;
    let id = engine.images().resolve(&name)?.id;
    engine.emit_image(id.as_str(), "tag", &target.to_string());
    Ok(StatusCode::CREATED.into_response())
}

/// `POST /images/prune`: removes the images no container uses: the dangling ones (those
/// without a tag), or every one with the filter `dangling=false` (`prune -a`).
pub(crate) async fn prune(
    Extract(engine): Extract<State>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let filters = QueryPairs::parse(query.as_deref()).all("filters");
    let all = filters.iter().any(|f| {
        serde_json::from_str::<Value>(f).is_ok_and(|v| {
            v["dangling"] == json!(["false"]) || v["dangling"]["false"] == json!(true)
        })
    });
    let in_use: Vec<String> = engine
        .containers(true)
        .into_iter()
        .map(|c| c.image_id)
        .collect();
    let mut deleted = Vec::new();
    for (image, tags) in engine.images().list() {
        if (all || tags.is_empty()) && !in_use.contains(&image.id.to_string()) {
            engine.remove_image(image.id.as_str(), true)?;
            deleted.push(json!({"Deleted": image.id.as_str()}));
        }
    }
    Ok(Json(json!({"ImagesDeleted": deleted, "SpaceReclaimed": 0})))
}
