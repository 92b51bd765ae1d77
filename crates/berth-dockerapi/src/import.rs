//! `POST /images/create?fromSrc=-`: `docker import`, a root filesystem tarball in the
//! request body made into an image, with `--change` instructions (CMD, ENTRYPOINT, ENV,
//! WORKDIR, USER, EXPOSE, LABEL) written into its config. The same endpoint pulls with
//! `fromImage`: see `pull.rs`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State as Extract};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_image::Reference;
use futures_util::TryStreamExt;
use serde_json::{Map, Value, json};

use crate::query::QueryPairs;
use crate::{ApiError, State};

/// What `docker import` asked for, from the query.
struct ImportRequest {
    config: Value,
    tags: Vec<Reference>,
    comment: String,
}

fn import_request(query: Option<&str>) -> Result<ImportRequest, ApiError> {
    let query = QueryPairs::parse(query);
    if query.first("fromSrc") != Some("-") {
        return Err(ApiError::bad_request(
            "berth imports a tarball from the request body only (fromSrc=-): name an image to pull with fromImage",
        ));
    }
    Ok(ImportRequest {
        config: config_from_changes(&query.all("changes"))?,
        tags: query.tags()?,
        comment: query
            .first("message")
            .unwrap_or("Imported from -")
            .to_string(),
    })
}

/// `POST /images/create`. A refused request still reads its body, so the client, still
/// sending it, hears the refusal instead of a reset connection.
pub(crate) async fn create(
    Extract(engine): Extract<State>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let pairs = QueryPairs::parse(query.as_deref());
    if pairs.first("fromImage").is_some() {
        let _ = axum::body::to_bytes(body, usize::MAX).await;
        return crate::pull::pull(engine, &pairs, &headers).await;
    }
    let request = match import_request(query.as_deref()) {
        Ok(request) => request,
        Err(error) => {
            let _ = axum::body::to_bytes(body, usize::MAX).await;
            return Err(error);
        }
    };
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    let store = Arc::clone(&engine);
    let name = request.tags.first().map(|t| t.to_string());
    let id = tokio::task::spawn_blocking(move || {
        store
            .images()
            .import_rootfs(reader, request.config, &request.comment, &request.tags)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    engine.emit_image(
        id.as_str(),
        "import",
        &name.unwrap_or_else(|| id.to_string()),
    );
    let line = format!("{}\n", json!({"status": id.as_str()}));
    Ok(([("Content-Type", "application/json")], line).into_response())
}

/// The image config that `docker import`'s `--change` instructions describe, over the
/// default PATH Docker gives an imported image.
fn config_from_changes(changes: &[String]) -> Result<Value, ApiError> {
    let mut config = Map::new();
    config.insert(
        "Env".into(),
        json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]),
    );
    berth_engine::apply_changes(&mut config, changes)?;
    Ok(Value::Object(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_become_docker_s_config() {
        let changes = [
            r#"CMD ["/bin/sh", "-c", "echo hi"]"#,
            "ENTRYPOINT exec app",
            "ENV A=1",
            "ENV PATH /bin",
            "WORKDIR /srv",
            "EXPOSE 80 53/udp",
            "LABEL team=core",
        ]
        .map(String::from);
        let config = config_from_changes(&changes).unwrap();
        assert_eq!(config["Cmd"], json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(config["Entrypoint"], json!(["/bin/sh", "-c", "exec app"]));
        assert_eq!(config["Env"], json!(["A=1", "PATH=/bin"]));
        assert_eq!(config["WorkingDir"], "/srv");
        assert_eq!(config["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(config["Labels"], json!({"team": "core"}));
        assert!(config_from_changes(&["RUN make".to_string()]).is_err());
    }
}
