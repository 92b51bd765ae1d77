//! `POST /build`, the classic builder's API (`DOCKER_BUILDKIT=0 docker build`): the
//! request's body is the build context as a tar (plain or gzip), the query names the
//! Dockerfile, tags, build args and target; berth-build carries it out and its progress
//! streams back as Docker's `{"stream": …}` lines, ending in `Successfully built`. Options
//! the build does not carry out are refused by name before the context is read.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State as Extract};
use axum::response::Response;
use berth_build::{BuildRequest, Progress};
use berth_engine::Engine;
use berth_image::Reference;
use futures_util::TryStreamExt as _;
use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use crate::pull::{error_line, progress_response};
use crate::query::QueryPairs;
use crate::{ApiError, State};

/// What the query asks for, checked before the context is read.
pub(crate) struct Options {
    pub(crate) dockerfile: String,
    pub(crate) tags: Vec<Reference>,
    pub(crate) build_args: BTreeMap<String, String>,
    pub(crate) target: Option<String>,
    pub(crate) no_cache: bool,
    pub(crate) quiet: bool,
    pub(crate) pull: bool,
    pub(crate) network: Option<String>,
    pub(crate) dialect: Dialect,
}

/// Whose words the progress is in: the classic builder's (`Step 1/2 : …`, `Successfully
/// built`) or buildah's (`STEP 1/2: …`, the image's id last), which podman reads.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Docker,
    Podman,
}

/// `POST /build`.
pub(crate) async fn build(
    engine: Extract<State>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    start(engine, options(&QueryPairs::parse(query.as_deref())), body).await
}

/// Reads the context from `body` and builds it as `options` asks, streaming the progress
/// back. Refused options are answered once the body is read, so that a client still
/// sending it hears the refusal.
pub(crate) async fn start<E: From<ApiError>>(
    Extract(engine): Extract<State>,
    options: Result<Options, E>,
    body: Body,
) -> Result<Response, E> {
    let options = match options {
        Ok(options) => options,
        Err(error) => {
            let _ = axum::body::to_bytes(body, usize::MAX).await;
            return Err(error);
        }
    };
    let context = tempfile::Builder::new()
        .prefix("berth-build-")
        .tempdir()
        .map_err(|e| {
            E::from(ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                e.to_string(),
            ))
        })?;
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    let (sender, receiver) = unbounded_channel();
    tokio::task::spawn_blocking(move || {
        let outcome = extract(reader, context.path())
            .and_then(|()| run(&engine, &options, context.path(), &sender));
        if let Err(message) = outcome {
            let _ = sender.send(error_line(&message));
        }
    });
    let lines = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|line| (line, receiver))
    });
    Ok(progress_response(lines))
}

fn options(query: &QueryPairs) -> Result<Options, ApiError> {
    for (name, flag) in [
        ("remote", "a remote context"),
        ("platform", "--platform"),
        ("cachefrom", "--cache-from"),
        ("extrahosts", "--add-host"),
        ("squash", "--squash"),
        ("outputs", "--output"),
    ] {
        if query
            .first(name)
            .is_some_and(|v| !matches!(v, "[]" | "{}" | "0" | "false"))
        {
            return Err(ApiError::bad_request(format!(
                "berth's builder does not support {flag} yet"
            )));
        }
    }
    if query.first("version") == Some("2") {
        return Err(ApiError::bad_request(
            "berth's builder is the classic one: build with DOCKER_BUILDKIT=0",
        ));
    }
    let network = match query.first("networkmode") {
        None | Some("" | "default") => None,
        Some(mode @ ("none" | "host" | "bridge")) => Some(mode.to_string()),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "berth's builder runs steps on none, host or bridge: --network {other} is not supported"
            )));
        }
    };
    if query.first("labels").is_some_and(|v| v != "{}") {
        return Err(ApiError::bad_request(
            "berth's builder does not support --label yet",
        ));
    }
    let tags = query
        .all("t")
        .iter()
        .filter(|t| !t.is_empty())
        .map(|t| Reference::parse(t))
        .collect::<Result<_, _>>()?;
    let build_args = match query.first("buildargs") {
        Some(args) => serde_json::from_str::<BTreeMap<String, Option<String>>>(args)
            .map_err(|e| ApiError::bad_request(format!("buildargs: {e}")))?
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect(),
        None => BTreeMap::new(),
    };
    Ok(Options {
        dockerfile: query
            .first("dockerfile")
            .unwrap_or("Dockerfile")
            .to_string(),
        tags,
        build_args,
        target: query.first("target").map(str::to_string),
        no_cache: query
            .first("nocache")
            .is_some_and(|v| v == "1" || v == "true"),
        quiet: query.first("q").is_some_and(|v| v == "1" || v == "true"),
        pull: query.first("pull").is_some_and(|v| v == "1" || v == "true"),
        network,
        dialect: Dialect::Docker,
    })
}

/// The context tar (gzip or not) into `dir`.
fn extract(reader: impl std::io::Read, dir: &std::path::Path) -> Result<(), String> {
    berth_image::extract_into(reader, dir).map_err(|e| format!("reading the build context: {e}"))
}

/// Builds from the context in `dir`, sending progress lines.
fn run(
    engine: &Arc<Engine>,
    options: &Options,
    dir: &std::path::Path,
    sender: &UnboundedSender<Value>,
) -> Result<(), String> {
    let path = dir.join(&options.dockerfile);
    let dockerfile = std::fs::read_to_string(&path)
        .map_err(|_| format!("Cannot locate specified Dockerfile: {}", options.dockerfile))?;
    let request = BuildRequest {
        context: dir.to_path_buf(),
        dockerfile,
        tags: options.tags.clone(),
        build_args: options.build_args.clone(),
        target: options.target.clone(),
        no_cache: options.no_cache,
        pull: options.pull,
        network: options.network.clone(),
    };
    let say = |text: String| {
        if !options.quiet {
            let _ = sender.send(json!({"stream": text}));
        }
    };
    let podman = options.dialect == Dialect::Podman;
    let report = |progress: Progress| match progress {
        Progress::Step(number, total, text) if podman => {
            say(format!("STEP {number}/{total}: {text}\n"));
        }
        Progress::Step(number, total, text) => say(format!("Step {number}/{total} : {text}\n")),
        Progress::Running(_) if podman => {}
        Progress::Running(id) => say(format!(" ---> Running in {id}\n")),
        Progress::Cached if podman => say("--> Using cache\n".into()),
        Progress::Cached => say(" ---> Using cache\n".into()),
        Progress::Triggers(count) => say(format!(
            "# Executing {count} build trigger{}\n",
            if count == 1 { "" } else { "s" }
        )),
        Progress::Output(text) => say(text),
        Progress::Done(Some(image)) if podman => say(format!("--> {}\n", short(image.hex()))),
        Progress::Done(Some(image)) => say(format!(" ---> {}\n", short(image.hex()))),
        Progress::Done(None) => {}
    };
    let id = berth_build::build(engine, &request, &report).map_err(|e| e.to_string())?;
    if !podman {
        let _ = sender.send(json!({"aux": {"ID": id.as_str()}}));
        if options.quiet {
            let _ = sender.send(json!({"stream": format!("{id}\n")}));
            return Ok(());
        }
        say(format!("Successfully built {}\n", short(id.hex())));
    }
    for tag in &options.tags {
        say(format!("Successfully tagged {tag}\n"));
        engine.emit_image(id.as_str(), "tag", &tag.to_string());
    }
    if podman {
        // podman takes the last line that holds an id for the image's, quiet or not.
        let _ = sender.send(json!({"stream": format!("{}\n", id.hex())}));
    }
    Ok(())
}

fn short(hex: &str) -> &str {
    &hex[..hex.len().min(12)]
}
