//! `POST /images/{name}/push?tag=…`, `docker push`: the tagged image goes to the
//! registry its name holds, with the credentials of `X-Registry-Auth`, streamed as
//! Docker's progress JSON. An image without that tag is an HTTP error, as Docker's; what
//! the registry refuses comes as the stream's error line.

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::response::Response;
use berth_engine::Engine;
use berth_image::{PushProgress, Reference};
use serde_json::{Value, json};
use tokio::sync::mpsc::unbounded_channel;

use crate::ApiError;
use crate::pull::{error_line, layer_line, progress_response, registry_auth, short_id};
use crate::query::QueryPairs;

/// Pushes `name` (the path before `/push`) at the query's tag.
pub(crate) async fn push(
    engine: Arc<Engine>,
    name: &str,
    query: &QueryPairs,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let reference = pushed_reference(name, query)?;
    let image = engine.tagged_image(&reference)?;
    let credentials = registry_auth(headers);
    let (sender, receiver) = unbounded_channel();
    let opening = json!({"status": format!(
        "The push refers to repository [{}]", reference.repository
    )});
    let _ = sender.send(opening);
    tokio::spawn(async move {
        let report = |progress: PushProgress| {
            for line in progress_lines(progress) {
                let _ = sender.send(line);
            }
        };
        let pushed = engine
            .push_image(&reference, &image, credentials, &report)
            .await;
        let lines = match pushed {
            Ok(pushed) => {
                let tag = &reference.tag;
                let (digest, size) = (pushed.digest.as_str(), pushed.size);
                vec![
                    json!({"status": format!("{tag}: digest: {digest} size: {size}")}),
                    json!({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": size}}),
                ]
            }
            Err(error) => vec![error_line(&error.to_string())],
        };
        for line in lines {
            let _ = sender.send(line);
        }
    });
    let lines = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|line| (line, receiver))
    });
    Ok(progress_response(lines))
}

/// Docker's lines for one step of a push.
fn progress_lines(progress: PushProgress) -> Vec<Value> {
    let line = match progress {
        PushProgress::Preparing(layers) => {
            return layers
                .iter()
                .map(|layer| layer_line("Preparing", layer))
                .collect();
        }
        PushProgress::LayerExists(layer) => layer_line("Layer already exists", &layer),
        PushProgress::Mounted { layer, from } => {
            layer_line(&format!("Mounted from {from}"), &layer)
        }
        PushProgress::Pushing {
            layer,
            current,
            total,
        } => json!({
            "status": "Pushing",
            "progressDetail": {"current": current, "total": total},
            "id": short_id(&layer),
        }),
        PushProgress::Pushed(layer) => layer_line("Pushed", &layer),
    };
    vec![line]
}

/// The reference `docker push NAME[:TAG]` names; every tag at once and other platforms
/// are refused by name.
fn pushed_reference(name: &str, query: &QueryPairs) -> Result<Reference, ApiError> {
    let Some(tag) = query.first("tag").filter(|tag| !tag.is_empty()) else {
        return Err(ApiError::bad_request(format!(
            "berth does not support pushing every tag yet (docker push --all-tags {name}): name a tag"
        )));
    };
    if let Some(platform) = query.first("platform") {
        return Err(ApiError::bad_request(format!(
            "berth does not support pushing one platform of an image yet (--platform {platform})"
        )));
    }
    Ok(Reference::parse(&format!("{name}:{tag}"))?)
}
