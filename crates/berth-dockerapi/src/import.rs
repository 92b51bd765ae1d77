//! `POST /images/create?fromSrc=-`: `docker import`, a root filesystem tarball in the
//! request body made into an image, with `--change` instructions (CMD, ENTRYPOINT, ENV,
//! WORKDIR, USER, EXPOSE, LABEL) written into its config. Pulling (`fromImage`) waits for
//! the registry client.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State as Extract};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_image::Reference;
use futures_util::TryStreamExt;
use serde_json::{Map, Value, json};

use crate::{ApiError, State};

/// What `docker import` asked for, from the query.
struct ImportRequest {
    config: Value,
    tags: Vec<Reference>,
    comment: String,
}

fn import_request(query: Option<&str>) -> Result<ImportRequest, ApiError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.unwrap_or_default()).unwrap_or_default();
    let value = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    if value("fromSrc") != Some("-") {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "berth cannot pull images yet: load them with docker load, or import a tarball with docker import",
        ));
    }
    let changes: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "changes")
        .map(|(_, v)| v.as_str())
        .collect();
    let tags = match value("repo").filter(|r| !r.is_empty()) {
        // The CLI sends `repo=name:tag` whole; other clients split it.
        Some(repo) => match value("tag").filter(|t| !t.is_empty()) {
            Some(tag) => vec![Reference::parse(&format!("{repo}:{tag}"))?],
            None => vec![Reference::parse(repo)?],
        },
        None => Vec::new(),
    };
    Ok(ImportRequest {
        config: config_from_changes(&changes)?,
        tags,
        comment: value("message").unwrap_or("Imported from -").to_string(),
    })
}

/// `POST /images/create`. A refused request still reads its body, so the client, still
/// sending it, hears the refusal instead of a reset connection.
pub(crate) async fn create(
    Extract(engine): Extract<State>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
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

/// The image config that `--change` instructions describe.
fn config_from_changes(changes: &[&str]) -> Result<Value, ApiError> {
    let mut config = Map::new();
    config.insert(
        "Env".into(),
        json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]),
    );
    for change in changes {
        let (instruction, rest) = change
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((change, ""));
        let rest = rest.trim();
        match instruction.to_ascii_uppercase().as_str() {
            "CMD" => {
                config.insert("Cmd".into(), command(rest));
            }
            "ENTRYPOINT" => {
                config.insert("Entrypoint".into(), command(rest));
            }
            "WORKDIR" => {
                config.insert("WorkingDir".into(), json!(rest));
            }
            "USER" => {
                config.insert("User".into(), json!(rest));
            }
            "STOPSIGNAL" => {
                config.insert("StopSignal".into(), json!(rest));
            }
            "ENV" => {
                let pair = match rest.split_once('=') {
                    Some(_) => rest.to_string(),
                    None => rest.replacen(char::is_whitespace, "=", 1),
                };
                let key = pair.split('=').next().unwrap_or_default().to_string();
                if let Some(Value::Array(env)) = config.get_mut("Env") {
                    env.retain(|e| {
                        e.as_str().and_then(|e| e.split('=').next()) != Some(key.as_str())
                    });
                    env.push(json!(pair));
                }
            }
            "EXPOSE" => {
                let ports = config.entry("ExposedPorts").or_insert_with(|| json!({}));
                for port in rest.split_whitespace() {
                    let port = if port.contains('/') {
                        port.to_string()
                    } else {
                        format!("{port}/tcp")
                    };
                    ports[port] = json!({});
                }
            }
            "LABEL" => {
                let labels = config.entry("Labels").or_insert_with(|| json!({}));
                for pair in rest.split_whitespace() {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    labels[key] = json!(value.trim_matches('"'));
                }
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "{other} is not a valid change command"
                )));
            }
        }
    }
    Ok(Value::Object(config))
}

/// A CMD or ENTRYPOINT: the JSON form as it is, the shell form under `/bin/sh -c`.
fn command(text: &str) -> Value {
    match serde_json::from_str::<Vec<String>>(text) {
        Ok(words) => json!(words),
        Err(_) => json!(["/bin/sh", "-c", text]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_become_docker_s_config() {
        let config = config_from_changes(&[
            r#"CMD ["/bin/sh", "-c", "echo hi"]"#,
            "ENTRYPOINT exec app",
            "ENV A=1",
            "ENV PATH /bin",
            "WORKDIR /srv",
            "EXPOSE 80 53/udp",
            "LABEL team=core",
        ])
        .unwrap();
        assert_eq!(config["Cmd"], json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(config["Entrypoint"], json!(["/bin/sh", "-c", "exec app"]));
        assert_eq!(config["Env"], json!(["A=1", "PATH=/bin"]));
        assert_eq!(config["WorkingDir"], "/srv");
        assert_eq!(config["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(config["Labels"], json!({"team": "core"}));
        assert!(config_from_changes(&["RUN make"]).is_err());
    }
}
