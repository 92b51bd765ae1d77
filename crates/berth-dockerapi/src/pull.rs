//! Registries: `POST /images/create?fromImage=…&tag=…`, `docker pull` (and `docker run`'s
//! pull of a missing image), streamed as Docker's progress JSON — a pull that fails
//! before its first layer is an HTTP error, as Docker's, which the CLI prints as the
//! daemon's answer —, and `POST /auth`, `docker login`'s check of credentials, which the
//! CLI then keeps and sends with each pull.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State as Extract;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use berth_engine::Engine;
use berth_image::{Credentials, Digest, PullProgress, Reference, Registry, RegistryOptions};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use crate::ApiError;
use crate::query::QueryPairs;

/// What the pulling task tells the response: a progress line, or how the pull began.
enum Message {
    Line(Value),
    /// The manifest could not be had: the pull ends before any output.
    Refused(berth_image::Error),
}

/// Pulls the image the query names.
pub(crate) async fn pull(
    engine: Arc<Engine>,
    query: &QueryPairs,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let reference = requested_reference(query)?;
    let (sender, mut receiver) = unbounded_channel();
    let credentials = registry_auth(headers);
    tokio::spawn(run_pull(engine, reference.clone(), credentials, sender));
    let first = match receiver.recv().await {
        Some(Message::Refused(error)) => return Err(error.into()),
        Some(Message::Line(line)) => line,
        None => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the pull stopped",
            ));
        }
    };
    let (_, path) = reference.registry_and_path();
    let opening = json!({"status": format!("Pulling from {path}"), "id": reference.tag});
    let rest = futures_util::stream::unfold(receiver, |mut receiver| async move {
        match receiver.recv().await {
            Some(Message::Line(line)) => Some((line, receiver)),
            Some(Message::Refused(error)) => Some((error_line(&error.to_string()), receiver)),
            None => None,
        }
    });
    Ok(progress_response(
        futures_util::stream::iter([opening, first]).chain(rest),
    ))
}

/// A stream of Docker's progress messages as the response the CLI reads, one JSON
/// object per line.
pub(crate) fn progress_response(
    lines: impl futures_util::Stream<Item = Value> + Send + 'static,
) -> Response {
    let lines = lines.map(|line| Ok::<_, std::convert::Infallible>(format!("{line}\r\n")));
    (
        [("Content-Type", "application/json")],
        Body::from_stream(lines),
    )
        .into_response()
}

/// Pulls the image through the engine, sending progress as it goes.
async fn run_pull(
    engine: Arc<Engine>,
    reference: Reference,
    credentials: Option<Credentials>,
    sender: UnboundedSender<Message>,
) {
    let report = |progress: PullProgress| {
        for line in progress_lines(progress) {
            let _ = sender.send(Message::Line(line));
        }
    };
    let pulled = match engine.pull_image(&reference, credentials, &report).await {
        Ok(pulled) => pulled,
        Err(berth_engine::Error::Image(error)) => {
            return drop(sender.send(Message::Refused(error)));
        }
        Err(error) => return drop(sender.send(Message::Line(error_line(&error.to_string())))),
    };
    for layer in &pulled.layers {
        let _ = sender.send(Message::Line(layer_line("Pull complete", layer)));
    }
    let name = reference.to_string();
    let status = if pulled.up_to_date {
        format!("Status: Image is up to date for {name}")
    } else {
        format!("Status: Downloaded newer image for {name}")
    };
    for line in [format!("Digest: {}", pulled.manifest_digest), status] {
        let _ = sender.send(Message::Line(json!({"status": line})));
    }
}

/// Docker's lines for one step of a pull.
fn progress_lines(progress: PullProgress) -> Vec<Value> {
    match progress {
        PullProgress::Resolved { layers, .. } => layers
            .iter()
            .map(|layer| layer_line("Pulling fs layer", layer))
            .collect(),
        PullProgress::LayerExists(layer) => vec![layer_line("Already exists", &layer)],
        PullProgress::Downloading {
            layer,
            current,
            total,
        } => vec![json!({
            "status": "Downloading",
            "progressDetail": {"current": current, "total": total},
            "id": short_id(&layer),
        })],
        PullProgress::Downloaded(layer) => vec![layer_line("Download complete", &layer)],
    }
}

pub(crate) fn layer_line(status: &str, layer: &Digest) -> Value {
    json!({"status": status, "progressDetail": {}, "id": short_id(layer)})
}

pub(crate) fn short_id(layer: &Digest) -> String {
    layer.hex().chars().take(12).collect()
}

pub(crate) fn error_line(message: &str) -> Value {
    json!({"errorDetail": {"message": message}, "error": message})
}

/// `POST /auth`: Docker's AuthConfig, checked with the registry it names.
pub(crate) async fn login(
    Extract(engine): Extract<crate::State>,
    Json(auth): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let text = |key: &str| auth[key].as_str().unwrap_or_default().to_string();
    let credentials = Credentials {
        username: text("username"),
        password: text("password"),
    };
    let server = match text("serveraddress") {
        address if address.is_empty() => "docker.io".to_string(),
        address => address,
    };
    let options = RegistryOptions {
        credentials: Some(credentials),
        insecure_registries: engine.insecure_registries().to_vec(),
    };
    Registry::login(&server, &options).await?;
    Ok(Json(
        json!({"Status": "Login Succeeded", "IdentityToken": ""}),
    ))
}

/// The reference `fromImage` and `tag` name; pulls by digest and for other platforms
/// are refused by name.
fn requested_reference(query: &QueryPairs) -> Result<Reference, ApiError> {
    let image = query.first("fromImage").unwrap_or_default();
    let named_tag = image
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':'));
    let text = match query.first("tag") {
        Some(tag) if tag.starts_with("sha256:") => format!("{image}@{tag}"),
        Some(tag) => format!("{image}:{tag}"),
        // No tag anywhere asks for every tag of the repository (`docker pull -a`).
        None if !named_tag && !image.contains('@') => {
            return Err(ApiError::bad_request(format!(
                "berth does not support pulling every tag yet (docker pull --all-tags {image}): name a tag"
            )));
        }
        None => image.to_string(),
    };
    if text.contains('@') {
        return Err(ApiError::bad_request(format!(
            "berth does not support pulling by digest yet ({text}): pull a tag"
        )));
    }
    if let Some(platform) = query.first("platform") {
        let wanted = format!("linux/{}", berth_image::host_architecture());
        if platform != "linux" && platform != wanted {
            return Err(ApiError::bad_request(format!(
                "berth pulls only {wanted} images (--platform {platform})"
            )));
        }
    }
    Ok(Reference::parse(&text)?)
}

/// The credentials of `X-Registry-Auth` (base64url JSON, as the CLI sends them).
pub(crate) fn registry_auth(headers: &HeaderMap) -> Option<Credentials> {
    let encoded = headers.get("x-registry-auth")?.to_str().ok()?;
    let decoded = base64::engine::general_purpose::URL_SAFE
        .decode(encoded.trim())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded.trim()))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(encoded.trim()))
        .ok()?;
    let auth: Value = serde_json::from_slice(&decoded).ok()?;
    let username = auth["username"].as_str().unwrap_or_default().to_string();
    let password = auth["password"].as_str().unwrap_or_default().to_string();
    (!username.is_empty() || !password.is_empty()).then_some(Credentials { username, password })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_come_from_from_image_and_tag() {
        let query = |q: &str| requested_reference(&QueryPairs::parse(Some(q)));
        assert_eq!(
            query("fromImage=127.0.0.1%3A5000%2Fapp&tag=v1")
                .unwrap()
                .to_string(),
            "127.0.0.1:5000/app:v1"
        );
        assert_eq!(
            query("fromImage=busybox%3A1.36").unwrap().to_string(),
            "busybox:1.36"
        );
        let all_tags = query("fromImage=busybox").unwrap_err();
        assert!(
            all_tags.message.contains("--all-tags busybox"),
            "{all_tags:?}"
        );
        let by_digest = query("fromImage=busybox&tag=sha256:abc").unwrap_err();
        assert!(by_digest.message.contains("by digest"), "{by_digest:?}");
        let arm = query("fromImage=busybox&tag=latest&platform=linux/s390x").unwrap_err();
        assert!(arm.message.contains("--platform linux/s390x"), "{arm:?}");
    }

    #[test]
    fn registry_auth_reads_the_cli_s_header() {
        let mut headers = HeaderMap::new();
        let auth = base64::engine::general_purpose::URL_SAFE
            .encode(r#"{"username":"ada","password":"secret","serveraddress":"127.0.0.1:5000"}"#);
        headers.insert("x-registry-auth", auth.parse().unwrap());
        assert_eq!(
            registry_auth(&headers),
            Some(Credentials {
                username: "ada".into(),
                password: "secret".into()
            })
        );
        assert_eq!(registry_auth(&HeaderMap::new()), None);
    }
}
