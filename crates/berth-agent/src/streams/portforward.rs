//! `port-forward`: connections to ports of a pod, inside its network namespace (so a
//! server bound to 127.0.0.1 is reached too), as the kubelet forwards them. The
//! protocol (`portforward.k8s.io`) is SPDY: for each forwarded connection the client
//! opens an `error` and a `data` stream carrying the same `requestid` and `port`; bytes
//! on `data` go both ways, and a failure is written on `error`. kubectl 1.31 and later
//! tunnel the same SPDY through a WebSocket (`SPDY/3.1+portforward.k8s.io`).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use berth_engine::Engine;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::spdy::{self, Sender, Stream};
use super::{Transport, refuse, upgrade};
use crate::kubelet::{POD_NAME, POD_NAMESPACE};

/// The port-forward protocol over SPDY.
const SPDY_PROTOCOLS: [&str; 1] = ["portforward.k8s.io"];
/// The same, tunnelled through a WebSocket.
const WEBSOCKET_PROTOCOLS: [&str; 1] = ["SPDY/3.1+portforward.k8s.io"];

/// How long connecting to the pod's port may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `/portForward/{namespace}/{pod}`.
pub(crate) async fn serve(
    State(engine): State<Arc<Engine>>,
    Path((namespace, pod)): Path<(String, String)>,
    request: Request,
) -> Response {
    let sandbox = engine.sandboxes().into_iter().find(|s| {
        s.labels.get(POD_NAMESPACE) == Some(&namespace) && s.labels.get(POD_NAME) == Some(&pod)
    });
    let Some(sandbox) = sandbox else {
        return refuse(
            StatusCode::NOT_FOUND,
            format!("pod \"{pod}\" in namespace \"{namespace}\" has no sandbox on this node"),
        );
    };
    // A pod on the host's network has no namespace of its own.
    let netns = sandbox.netns;
    upgrade(
        request,
        (&SPDY_PROTOCOLS[..], &WEBSOCKET_PROTOCOLS[..]),
        move |transport| async move {
            let served = match transport {
                Transport::Spdy(io) => spdy::serve(io),
                Transport::WebSocket(socket) => spdy::serve(tunnel(*socket)),
            };
            if let Ok((sender, incoming)) = served {
                forward_all(sender, incoming, netns).await;
            }
        },
    )
    .await
}

/// Pairs each request's streams and forwards it, until the connection ends.
async fn forward_all(
    sender: Sender,
    mut incoming: tokio::sync::mpsc::Receiver<Stream>,
    netns: Option<PathBuf>,
) {
    let mut errors: HashMap<String, u32> = HashMap::new();
    let mut waiting: HashMap<String, Stream> = HashMap::new();
    while let Some(stream) = incoming.recv().await {
        let request = stream.header("requestid").to_string();
        match stream.header("streamtype") {
            "error" => {
                errors.insert(request.clone(), stream.id);
            }
            "data" => {
                waiting.insert(request.clone(), stream);
            }
            other => tracing::debug!(kind = other, "a port-forward stream of an unknown type"),
        }
        if let (Some(error), Some(data)) = (errors.get(&request), waiting.remove(&request)) {
            let forward = Forward {
                sender: sender.clone(),
                error: *error,
                netns: netns.clone(),
            };
            errors.remove(&request);
            tokio::spawn(forward.run(data));
        }
    }
}

/// One forwarded connection.
struct Forward {
    sender: Sender,
    /// The request's error stream.
    error: u32,
    netns: Option<PathBuf>,
}

impl Forward {
    async fn run(self, mut data: Stream) {
        let port = data.header("port").to_string();
        match self.connect(&port).await {
            Ok(connection) => {
                let (mut from_pod, mut to_pod) = connection.into_split();
                let upstream = async {
                    while let Some(bytes) = data.data.recv().await {
                        if to_pod.write_all(&bytes).await.is_err() {
                            break;
                        }
                    }
                    let _ = to_pod.shutdown().await;
                };
                let downstream = async {
                    let mut buffer = vec![0u8; spdy::CHUNK];
                    while let Ok(n) = from_pod.read(&mut buffer).await {
                        if n == 0
                            || self
                                .sender
                                .data(data.id, &buffer[..n], false)
                                .await
                                .is_err()
                        {
                            break;
                        }
                    }
                    let _ = self.sender.finish(data.id).await;
                };
                tokio::join!(upstream, downstream);
            }
            Err(message) => {
                let _ = self
                    .sender
                    .data(self.error, message.as_bytes(), false)
                    .await;
                let _ = self.sender.finish(data.id).await;
            }
        }
        // kubectl waits for the end of the error stream before it closes its side.
        let _ = self.sender.finish(self.error).await;
    }

    /// A connection to `port` on the pod's loopback, or why there is none.
    async fn connect(&self, port: &str) -> Result<tokio::net::TcpStream, String> {
        let number: u16 = port
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("invalid port {port:?}"))?;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, number));
        let netns = self.netns.clone();
        let connected = tokio::task::spawn_blocking(move || {
            let connect = move || {
                std::net::TcpStream::connect_timeout(&address, CONNECT_TIMEOUT)
                    .map_err(|e| berth_net::Error::Invalid(e.to_string()))
            };
            match netns {
                Some(path) => berth_net::netns::run_in(&path, connect),
                None => connect(),
            }
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
        let failed = |e: String| {
            format!(
                "failed to connect to localhost:{number} inside the pod's network namespace: {e}"
            )
        };
        let stream = connected.map_err(failed)?;
        stream
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpStream::from_std(stream))
            .map_err(|e| failed(e.to_string()))
    }
}

/// The bytes of a WebSocket's binary messages as one stream, and what is written to it
/// sent as binary messages: the tunnel kubectl puts SPDY in.
fn tunnel(socket: WebSocket) -> impl AsyncRead + AsyncWrite + Send + 'static {
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let (mut read, mut write) = tokio::io::split(ours);
    let (mut sink, mut source) = socket.split();
    tokio::spawn(async move {
        while let Some(Ok(message)) = source.next().await {
            match message {
                Message::Binary(bytes) if write.write_all(&bytes).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = write.shutdown().await;
    });
    tokio::spawn(async move {
        let mut buffer = vec![0u8; spdy::CHUNK + 16];
        while let Ok(n) = read.read(&mut buffer).await {
            if n == 0 {
                break;
            }
            let message = Message::Binary(buffer[..n].to_vec().into());
            if sink.send(message).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    theirs
}
