//! The channels of Kubernetes' remote command protocol (`exec`, `attach`): stdin,
//! stdout, stderr, the error channel that carries the final Status, and terminal
//! resizes — over either of the two transports kubectl speaks:
//!
//! - SPDY/3.1 (`X-Stream-Protocol-Version: v4.channel.k8s.io`, kubectl ≤ 1.30): one
//!   stream per channel, opened by the client with its kind in `streamtype`;
//! - WebSocket (`v5.channel.k8s.io` or `v4.channel.k8s.io`, kubectl ≥ 1.31): binary
//!   messages whose first byte is the channel (0 stdin, 1 stdout, 2 stderr, 3 error,
//!   4 resize); v5 lets the client close stdin with the message `255 0`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Mutex, mpsc};

use super::spdy;

/// The remote command protocol versions served over SPDY, best first.
pub(crate) const SPDY_PROTOCOLS: [&str; 1] = ["v4.channel.k8s.io"];
/// The remote command protocol versions served over WebSocket, best first.
pub(crate) const WEBSOCKET_PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// How long a SPDY client has to open the streams it asked for, as the kubelet's.
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// v5's message from the client closing one channel: this byte, then the channel.
const CLOSE_SIGNAL: u8 = 255;

/// Which channels the client asked for (`stdin`, `stdout`, `stderr`, `tty` in the
/// query).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Wants {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl Wants {
    /// What the query asks for.
    pub fn of(query: &HashMap<String, String>) -> Self {
        let flag = |key: &str| matches!(query.get(key).map(String::as_str), Some("true" | "1"));
        let tty = flag("tty");
        Self {
            stdin: flag("stdin"),
            stdout: flag("stdout"),
            // A terminal merges stderr into stdout.
            stderr: flag("stderr") && !tty,
            tty,
        }
    }
}

/// An output channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Channel {
    Stdout = 1,
    Stderr = 2,
    Error = 3,
}

/// A client's session: what it sends, and where the output goes.
pub(crate) struct Session {
    /// Its input, ending when it closes stdin; None when it did not ask for stdin.
    pub stdin: Option<mpsc::Receiver<Vec<u8>>>,
    /// Its terminal's sizes (`{"Width":80,"Height":24}` each); None without a tty.
    pub resize: Option<mpsc::Receiver<Vec<u8>>>,
    /// The output side.
    pub output: Output,
}

/// The output side of a session.
pub(crate) enum Output {
    Spdy {
        sender: spdy::Sender,
        /// The stream of each output channel the client opened.
        streams: HashMap<u8, u32>,
    },
    WebSocket {
        sink: Arc<Mutex<SplitSink<WebSocket, Message>>>,
    },
}

impl Output {
    /// Sends `bytes` on `channel`; false once the client is gone.
    pub async fn send(&self, channel: Channel, bytes: &[u8]) -> bool {
        match self {
            Output::Spdy { sender, streams } => match streams.get(&(channel as u8)) {
                Some(id) => sender.data(*id, bytes, false).await.is_ok(),
                None => true,
            },
            Output::WebSocket { sink, .. } => {
                let mut message = Vec::with_capacity(bytes.len() + 1);
                message.push(channel as u8);
                message.extend_from_slice(bytes);
                sink.lock()
                    .await
                    .send(Message::Binary(message.into()))
                    .await
                    .is_ok()
            }
        }
    }

    /// Ends `channel` (the process closed it).
    /// Over a WebSocket nothing is sent: clients take no close signal from the
    /// server, its channels end with the connection.
    pub async fn end(&self, channel: Channel) {
        if let Output::Spdy { sender, streams } = self
            && let Some(id) = streams.get(&(channel as u8))
        {
            let _ = sender.finish(*id).await;
        }
    }

    /// Sends the final Status on the error channel and closes the session.
    pub async fn finish(self, status: &serde_json::Value) {
        let text = serde_json::to_vec(status).unwrap_or_default();
        self.send(Channel::Error, &text).await;
        self.end(Channel::Error).await;
        match self {
            Output::Spdy { sender, .. } => sender.close().await,
            Output::WebSocket { sink, .. } => {
                // A normal closure: clients read any other as an error.
                let normal = CloseFrame {
                    code: axum::extract::ws::close_code::NORMAL,
                    reason: "".into(),
                };
                let mut sink = sink.lock().await;
                let _ = sink.send(Message::Close(Some(normal))).await;
                let _ = sink.close().await;
            }
        }
    }
}

/// The session of a SPDY connection, once the client has opened the streams `wants`
/// asks for (None if it does not within 30 seconds or goes away).
pub(crate) async fn over_spdy(
    io: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
    wants: Wants,
) -> Option<Session> {
    let (sender, mut incoming) = spdy::serve(io).ok()?;
    let expected = 1 + [wants.stdin, wants.stdout, wants.stderr, wants.tty]
        .iter()
        .filter(|w| **w)
        .count();
    let deadline = tokio::time::Instant::now() + STREAM_CREATION_TIMEOUT;
    let (mut stdin, mut resize, mut streams) = (None, None, HashMap::new());
    for _ in 0..expected {
        let stream = tokio::time::timeout_at(deadline, incoming.recv())
            .await
            .ok()??;
        match stream.header("streamtype") {
            "stdin" => stdin = Some(stream.data),
            "resize" => resize = Some(stream.data),
            "stdout" => _ = streams.insert(Channel::Stdout as u8, stream.id),
            "stderr" => _ = streams.insert(Channel::Stderr as u8, stream.id),
            "error" => _ = streams.insert(Channel::Error as u8, stream.id),
            other => tracing::debug!(kind = other, "a stream of an unknown type"),
        }
    }
    Some(Session {
        stdin,
        resize,
        output: Output::Spdy { sender, streams },
    })
}

/// The session of a WebSocket (v4 or v5: v5 only adds the client's close signal).
pub(crate) async fn over_websocket(socket: WebSocket, wants: Wants) -> Session {
    let (sink, mut source) = socket.split();
    let (stdin, stdin_receiver) = mpsc::channel::<Vec<u8>>(16);
    let (resize, resize_receiver) = mpsc::channel::<Vec<u8>>(4);
    tokio::spawn(async move {
        let mut stdin = Some(stdin);
        while let Some(Ok(message)) = source.next().await {
            let Message::Binary(bytes) = message else {
                if matches!(message, Message::Close(_)) {
                    break;
                }
                continue;
            };
            match (bytes.first(), bytes.get(1)) {
                (Some(0), _) => {
                    if let Some(input) = &stdin
                        && input.send(bytes[1..].to_vec()).await.is_err()
                    {
                        stdin = None;
                    }
                }
                (Some(4), _) => _ = resize.try_send(bytes[1..].to_vec()),
                (Some(&CLOSE_SIGNAL), Some(0)) => stdin = None,
                _ => {}
            }
        }
    });
    let output = Output::WebSocket {
        sink: Arc::new(Mutex::new(sink)),
    };
    // The kubelet's readiness signal: an empty message on the first output channel.
    let first = if wants.stdout {
        Channel::Stdout
    } else if wants.stderr {
        Channel::Stderr
    } else {
        Channel::Error
    };
    output.send(first, &[]).await;
    Session {
        stdin: wants.stdin.then_some(stdin_receiver),
        resize: wants.tty.then_some(resize_receiver),
        output,
    }
}
