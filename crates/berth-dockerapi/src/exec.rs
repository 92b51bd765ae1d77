//! Exec endpoints: create an exec instance, start it on a hijacked connection (stdin in,
//! stdout and stderr out as multiplexed frames, or raw with a terminal), inspect it.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Request, State as Extract};
use axum::http::StatusCode;
use axum::response::Response;
use berth_engine::ExecRequest;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::{ApiError, State};

/// `POST /containers/{id}/exec`.
pub(crate) async fn create(
    Extract(engine): Extract<State>,
    Path(id): Path<String>,
    Json(request): Json<ExecRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let exec = engine.create_exec(&id, request)?;
    Ok((StatusCode::CREATED, Json(json!({"Id": exec.id}))))
}

/// The body of `POST /exec/{id}/start`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct StartBody {
    detach: bool,
}

/// `POST /exec/{id}/start`.
pub(crate) async fn start(
    Extract(engine): Extract<State>,
    Path(id): Path<String>,
    mut request: Request,
) -> Result<Response, ApiError> {
    let upgrade = hyper::upgrade::on(&mut request);
    let bytes = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let start: StartBody = serde_json::from_slice(&bytes).unwrap_or_default();
    let exec = engine.exec(&id)?;
    let mut child = engine.start_exec(&id)?;
    let tty = exec.request.tty;
    if start.detach {
        tokio::task::spawn_blocking(move || {
            let code = child.wait().ok().and_then(|s| s.code()).unwrap_or(255);
            engine.exec_ended(&id, code);
        });
        return Ok(Response::builder()
            .status(StatusCode::OK)
            .body(Body::empty())
            .unwrap_or_default());
    }
    let (stdin, stdout, stderr) = berth_engine::exec_pipes(&mut child);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else {
            let _ = child.kill();
            return;
        };
        let (mut from_client, to_client) = tokio::io::split(hyper_util::rt::TokioIo::new(upgraded));
        if let Some(mut stdin) = stdin {
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut from_client, &mut stdin).await;
            });
        }
        let to_client = std::sync::Arc::new(tokio::sync::Mutex::new(to_client));
        let out = tokio::spawn(pump(stdout, 1, tty, to_client.clone()));
        let err = tokio::spawn(pump(stderr, 2, tty, to_client.clone()));
        let _ = tokio::join!(out, err);
        let code = tokio::task::spawn_blocking(move || {
            child.wait().ok().and_then(|s| s.code()).unwrap_or(255)
        })
        .await
        .unwrap_or(255);
        engine.exec_ended(&id, code);
        let _ = to_client.lock().await.shutdown().await;
    });
    Ok(crate::containers::switching_protocols(tty))
}

/// Copies one output pipe of the helper to the client: framed as `stream` (1 stdout,
/// 2 stderr) unless the process has a terminal.
async fn pump<W: tokio::io::AsyncWrite + Unpin>(
    pipe: Option<impl AsyncRead + Unpin>,
    stream: u8,
    tty: bool,
    client: std::sync::Arc<tokio::sync::Mutex<W>>,
) {
    let Some(mut pipe) = pipe else {
        return;
    };
    let mut buffer = vec![0u8; 32 * 1024];
    while let Ok(n) = pipe.read(&mut buffer).await {
        if n == 0 {
            return;
        }
        let mut out = Vec::with_capacity(n + 8);
        if !tty {
            out.extend_from_slice(&[stream, 0, 0, 0]);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        out.extend_from_slice(&buffer[..n]);
        if client.lock().await.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// `POST /exec/{id}/resize`: the exec's terminal size (`docker exec -it`).
pub(crate) async fn resize(
    Extract(engine): Extract<State>,
    Path(id): Path<String>,
    axum::extract::Query(query): axum::extract::Query<crate::containers::ResizeQuery>,
) -> Result<StatusCode, ApiError> {
    crate::containers::blocking(move || engine.resize_exec(&id, query.h, query.w)).await?;
    Ok(StatusCode::OK)
}

/// `GET /exec/{id}/json`.
pub(crate) async fn inspect(
    Extract(engine): Extract<State>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let exec = engine.exec(&id)?;
    Ok(Json(json!({
        "ID": exec.id,
        "ContainerID": exec.container_id,
        "Running": exec.running,
        "ExitCode": exec.exit_code,
        "OpenStdin": exec.request.attach_stdin,
        "OpenStdout": true,
        "OpenStderr": true,
        "ProcessConfig": {
            "tty": exec.request.tty,
            "entrypoint": exec.request.cmd.first(),
            "arguments": exec.request.cmd.get(1..).unwrap_or_default(),
            "user": exec.request.user,
        },
        "Pid": 0,
    })))
}
