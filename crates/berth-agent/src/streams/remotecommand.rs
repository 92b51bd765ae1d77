//! `exec` and `attach`: a process started in a pod's container, or the container's own
//! process, wired to a client's remote command session. The session ends with a
//! Status on the error channel, as the kubelet's: Success, or NonZeroExitCode with the
//! exit code as its cause (kubectl exits with it).

use std::sync::Arc;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use berth_engine::{Container, Engine, ExecRequest};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::channels::{self, Channel, Output, SPDY_PROTOCOLS, Session, WEBSOCKET_PROTOCOLS, Wants};
use super::{Transport, refuse, upgrade};

/// The words of a query, in order (`command` repeats).
fn words(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// The running container a stream is for, or the kubelet's refusal.
fn running(
    engine: &Engine,
    (namespace, pod, container): (&str, &str, &str),
) -> Result<Container, (StatusCode, String)> {
    let Some(run) = crate::api::runs(engine, namespace, pod, container).pop() else {
        return Err((
            StatusCode::NOT_FOUND,
            format!("container \"{container}\" in pod \"{pod}\" not found"),
        ));
    };
    if run.state.status != berth_engine::Status::Running {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("container \"{container}\" in pod \"{pod}\" is not running"),
        ));
    }
    Ok(run)
}

/// The session of an upgraded connection.
async fn session(transport: Transport, wants: Wants) -> Option<Session> {
    match transport {
        Transport::Spdy(io) => channels::over_spdy(io, wants).await,
        Transport::WebSocket(socket) => Some(channels::over_websocket(*socket, wants).await),
    }
}

/// `/exec/{namespace}/{pod}/{container}?command=…&stdin=…&stdout=…&stderr=…&tty=…`.
pub(crate) async fn exec(
    State(engine): State<Arc<Engine>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    let words = words(query.as_deref());
    let command: Vec<String> = words
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    let wants = Wants::of(&words.into_iter().collect());
    if command.is_empty() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "you must specify at least one command for the container".into(),
        );
    }
    let run = match running(&engine, (&namespace, &pod, &container)) {
        Ok(run) => run,
        Err((status, message)) => return refuse(status, message),
    };
    let protocols = (&SPDY_PROTOCOLS[..], &WEBSOCKET_PROTOCOLS[..]);
    upgrade(request, protocols, move |transport| async move {
        if let Some(session) = session(transport, wants).await {
            run_exec(engine, &run.id, command, wants, session).await;
        }
    })
    .await
}

/// Runs `command` in the container for the session, then reports how it ended.
async fn run_exec(
    engine: Arc<Engine>,
    container: &str,
    command: Vec<String>,
    wants: Wants,
    session: Session,
) {
    let Session {
        stdin,
        resize,
        output,
    } = session;
    let shown = command.join(" ");
    let request = ExecRequest {
        cmd: command,
        tty: wants.tty,
        attach_stdin: stdin.is_some(),
        ..ExecRequest::default()
    };
    let started = engine
        .create_exec(container, request)
        .and_then(|record| Ok((engine.start_exec(&record.id)?, record.id)));
    let (mut child, id) = match started {
        Ok(started) => started,
        Err(error) => {
            let message = format!("error executing command in container: {error}");
            return output.finish(&internal_error(&message)).await;
        }
    };
    if let Some(sizes) = resize {
        let (engine, id) = (Arc::clone(&engine), id.clone());
        tokio::spawn(resize_terminal(sizes, move |rows, columns| {
            engine.resize_exec(&id, rows, columns)
        }));
    }
    let (pipe, stdout, stderr) = berth_engine::exec_pipes(&mut child);
    if let (Some(input), Some(pipe)) = (stdin, pipe) {
        tokio::spawn(feed(input, pipe));
    }
    tokio::join!(
        pump(stdout, Channel::Stdout, &output),
        pump(stderr, Channel::Stderr, &output)
    );
    let code = tokio::task::spawn_blocking(move || child.wait().ok().and_then(|s| s.code()))
        .await
        .ok()
        .flatten()
        .unwrap_or(255);
    engine.exec_ended(&id, code);
    output.finish(&exit_status(&shown, code)).await;
}

/// Copies the client's input to the process until either ends.
async fn feed(mut input: mpsc::Receiver<Vec<u8>>, mut pipe: impl tokio::io::AsyncWrite + Unpin) {
    while let Some(bytes) = input.recv().await {
        if pipe.write_all(&bytes).await.is_err() {
            return;
        }
    }
    let _ = pipe.shutdown().await;
}

async fn drain(mut messages: mpsc::Receiver<Vec<u8>>) {
    while messages.recv().await.is_some() {}
}

/// Copies one output pipe of the process to its channel, then ends the channel.
async fn pump(pipe: Option<impl AsyncRead + Unpin>, channel: Channel, output: &Output) {
    let Some(mut pipe) = pipe else {
        return;
    };
    let mut buffer = vec![0u8; super::spdy::CHUNK];
    let mut client = true;
    while let Ok(n) = pipe.read(&mut buffer).await {
        if n == 0 {
            break;
        }
        // Once the client is gone the pipe is still read, so the process never blocks.
        client = client && output.send(channel, &buffer[..n]).await;
    }
    output.end(channel).await;
}

/// `/attach/{namespace}/{pod}/{container}?stdin=…&stdout=…&stderr=…&tty=…`: the
/// container's output from now on, the client's input to its stdin (when the
/// container has `stdin: true`) and its terminal's size (with `tty: true`).
pub(crate) async fn attach(
    State(engine): State<Arc<Engine>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    let wants = Wants::of(&words(query.as_deref()).into_iter().collect());
    let run = match running(&engine, (&namespace, &pod, &container)) {
        Ok(run) => run,
        Err((status, message)) => return refuse(status, message),
    };
    let log = match std::fs::File::open(engine.log_path(&run)) {
        Ok(log) => log,
        Err(error) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    };
    let protocols = (&SPDY_PROTOCOLS[..], &WEBSOCKET_PROTOCOLS[..]);
    upgrade(request, protocols, move |transport| async move {
        if let Some(session) = session(transport, wants).await {
            run_attach(engine, run, log, session).await;
        }
    })
    .await
}

async fn run_attach(engine: Arc<Engine>, run: Container, log: std::fs::File, session: Session) {
    let Session {
        stdin,
        resize,
        output,
    } = session;
    if let Some(input) = stdin {
        let stdin = run
            .request
            .open_stdin
            .then(|| engine.container_stdin(&run.id).ok())
            .flatten()
            .and_then(|s| s.set_nonblocking(true).ok().map(|()| s))
            .and_then(|s| tokio::net::UnixStream::from_std(s).ok());
        match stdin {
            Some(stdin) => _ = tokio::spawn(feed(input, stdin)),
            None => _ = tokio::spawn(drain(input)),
        }
    }
    if let Some(sizes) = resize {
        let (engine, id) = (Arc::clone(&engine), run.id.clone());
        tokio::spawn(resize_terminal(sizes, move |rows, columns| {
            engine.resize_container(&id, rows, columns)
        }));
    }
    let offset = log.metadata().map_or(0, |m| m.len());
    let (sender, mut entries) = mpsc::channel(16);
    tokio::spawn(berth_engine::logs::follow(engine, run, log, offset, sender));
    while let Some(batch) = entries.recv().await {
        for entry in batch {
            let channel = if entry.stream == "stderr" {
                Channel::Stderr
            } else {
                Channel::Stdout
            };
            if !output.send(channel, entry.log.as_bytes()).await {
                return;
            }
        }
    }
    output.end(Channel::Stdout).await;
    output.end(Channel::Stderr).await;
    output
        .finish(&json!({"metadata": {}, "status": "Success"}))
        .await;
}

/// A client terminal's size, as kubectl sends it.
#[derive(serde::Deserialize)]
struct TerminalSize {
    #[serde(rename = "Width")]
    width: u16,
    #[serde(rename = "Height")]
    height: u16,
}

/// Gives a terminal each size the client sends, through `apply` (rows, columns).
async fn resize_terminal<F>(mut sizes: mpsc::Receiver<Vec<u8>>, apply: F)
where
    F: Fn(u16, u16) -> berth_engine::Result<()> + Clone + Send + 'static,
{
    while let Some(bytes) = sizes.recv().await {
        let messages = serde_json::Deserializer::from_slice(&bytes).into_iter::<TerminalSize>();
        for size in messages.map_while(Result::ok) {
            let apply = apply.clone();
            let resized = tokio::task::spawn_blocking(move || apply(size.height, size.width)).await;
            if let Ok(Err(error)) = resized {
                tracing::debug!(%error, "a terminal could not be resized");
            }
        }
    }
}

/// The Status an exec ends with: Success, or NonZeroExitCode carrying the code.
fn exit_status(command: &str, code: i32) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: error executing command [{command}], exit code {code}"),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

fn internal_error(message: &str) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: {message}"),
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_merges_stderr_and_commands_keep_their_order() {
        let query =
            "command=sh&command=-c&command=echo+a%26b&stdin=true&stdout=true&stderr=true&tty=true";
        let wants = Wants::of(&words(Some(query)).into_iter().collect());
        assert!(wants.stdin && wants.stdout && wants.tty && !wants.stderr);
        let command: Vec<String> = words(Some(query))
            .into_iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v)
            .collect();
        assert_eq!(command, ["sh", "-c", "echo a&b"]);
    }

    #[test]
    fn a_non_zero_exit_is_reported_with_its_code() {
        let status = exit_status("false", 3);
        assert_eq!(status["reason"], "NonZeroExitCode");
        assert_eq!(status["details"]["causes"][0]["message"], "3");
        assert_eq!(exit_status("true", 0)["status"], "Success");
    }
}
