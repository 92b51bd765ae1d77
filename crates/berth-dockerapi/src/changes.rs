//! A container's filesystem as a whole: `docker diff` (`GET /containers/{id}/changes`),
//! `docker commit` (`POST /commit`) and `docker export` (`GET /containers/{id}/export`).

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State as Extract};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_engine::CommitRequest;
use berth_image::CommitNote;
use serde_json::{Value, json};

use crate::containers::blocking;
use crate::query::QueryPairs;
use crate::unsupported::unset;
use crate::{ApiError, State};

/// `GET /containers/{id}/changes`: Docker's `[{"Path", "Kind"}]`, Kind 0 modified, 1
/// added, 2 deleted.
pub(crate) async fn diff(
    Extract(engine): Extract<State>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let changes = blocking(move || engine.changes(&id)).await?;
    let listed: Vec<Value> = changes
        .into_iter()
        .map(|c| json!({"Path": c.path, "Kind": c.kind as u8}))
        .collect();
    Ok(Json(json!(listed)))
}

/// `POST /commit?container=…&repo=…&tag=…&comment=…&author=…&changes=…&pause=…`.
/// The body, a container config to merge, is refused unless empty: `--change` says the
/// same in the CLI.
pub(crate) async fn commit(
    Extract(engine): Extract<State>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    refuse_config_body(&body)?;
    let query = QueryPairs::parse(query.as_deref());
    let container = query
        .first("container")
        .ok_or_else(|| ApiError::bad_request("commit needs a container"))?
        .to_string();
    let request = CommitRequest {
        changes: query.all("changes"),
        note: CommitNote {
            author: query.first("author").unwrap_or_default().to_string(),
            comment: query.first("comment").unwrap_or_default().to_string(),
        },
        tags: query.tags()?,
        pause: !matches!(query.first("pause"), Some("0" | "false")),
    };
    let id = blocking(move || engine.commit(&container, request)).await?;
    Ok((StatusCode::CREATED, Json(json!({"Id": id.as_str()}))).into_response())
}

fn refuse_config_body(body: &[u8]) -> Result<(), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let config: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid commit config: {e}")))?;
    let set: Vec<&String> = match &config {
        Value::Object(fields) => fields
            .iter()
            .filter(|(_, v)| !unset(v))
            .map(|(k, _)| k)
            .collect(),
        _ => Vec::new(),
    };
    if set.is_empty() {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "berth does not support a container config in the commit request body (set: {}): use changes (docker commit --change)",
        set.iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// `GET /containers/{id}/export`: its root filesystem as a tar, streamed as it is
/// written.
pub(crate) async fn export(
    Extract(engine): Extract<State>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    engine.container(&id)?;
    let (reader, writer) = tokio::io::duplex(1 << 16);
    tokio::task::spawn_blocking(move || {
        let out = tokio_util::io::SyncIoBridge::new(writer);
        if let Err(error) = engine.export(&id, out) {
            tracing::warn!(%error, "docker export stopped");
        }
    });
    Ok((
        [("Content-Type", "application/x-tar")],
        Body::from_stream(tokio_util::io::ReaderStream::new(reader)),
    )
        .into_response())
}
