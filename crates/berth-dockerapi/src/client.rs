//! The client side of the API, for the `berth` CLI: one HTTP/1.1 connection per request
//! over the daemon's unix socket (long requests such as attach and wait each need their
//! own), JSON in and out, and hijacked streams for attach.

use std::path::PathBuf;

use axum::body::Bytes;
use futures_util::TryStreamExt;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// Where the daemon listens: `-H`, then `BERTH_HOST`, then `DOCKER_HOST`, then the
/// default socket.
pub fn socket_from(host: Option<&str>) -> Result<PathBuf, String> {
    let from_env = std::env::var("DOCKER_HOST").ok();
    let host = host.map(str::to_string).or(from_env);
    match host {
        None => Ok(PathBuf::from("/run/berth/berth.sock")),
        Some(host) => host
            .strip_prefix("unix://")
            .map(PathBuf::from)
            .ok_or_else(|| {
                format!("unsupported host {host:?}: only unix:// sockets are supported")
            }),
    }
}

/// A client of one daemon.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

/// A response: status and body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON (null when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// Ok with the answer, or Docker's error message.
    pub fn ok(self) -> Result<Self, String> {
        if self.status < 400 {
            return Ok(self);
        }
        let message = self.json()["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).into_owned());
        Err(format!("Error response from daemon: {message}"))
    }
}

/// Reads a response whole.
async fn read_answer(response: hyper::Response<hyper::body::Incoming>) -> Result<Answer, String> {
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Answer { status, body })
}

type Connection = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

impl Client {
    /// A client of the daemon on `socket`.
    pub fn new(socket: PathBuf) -> Self {
        Self { socket }
    }

    async fn connect(&self) -> Result<Connection, String> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| {
                format!(
                    "Cannot connect to the Berth daemon at unix://{}: {e}. Is the daemon running?",
                    self.socket.display()
                )
            })?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection.with_upgrades());
        Ok(sender)
    }

    fn request(
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Request<Full<Bytes>>, String> {
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        Self::raw_request(method, path, body, "application/json")
    }

    fn raw_request(
        method: &str,
        path: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<Request<Full<Bytes>>, String> {
        Request::builder()
            .method(method)
            .uri(format!("http://berth/v1.50{path}"))
            .header("Host", "berth")
            .header("Content-Type", content_type)
            .body(Full::new(body))
            .map_err(|e| e.to_string())
    }

    /// POSTs `body` as it is (`load`'s archive) and reads the whole answer.
    pub async fn upload(
        &self,
        path: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<Answer, String> {
        self.upload_with_method("POST", path, body, content_type)
            .await
    }

    /// Sends `body` as it is with `method` (a PUT of an archive into a container) and
    /// reads the whole answer.
    pub async fn upload_with_method(
        &self,
        method: &str,
        path: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<Answer, String> {
        let mut sender = self.connect().await?;
        let response = sender
            .send_request(Self::raw_request(method, path, body, content_type)?)
            .await
            .map_err(|e| e.to_string())?;
        read_answer(response).await
    }

    /// Sends a request and reads the whole answer.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, String> {
        let mut sender = self.connect().await?;
        let response = sender
            .send_request(Self::request(method, path, body)?)
            .await
            .map_err(|e| e.to_string())?;
        read_answer(response).await
    }

    /// Sends a request, with `headers`, whose answer is a stream of JSON lines (`pull`'s
    /// progress): an error status is the daemon's message; otherwise each line as it
    /// comes.
    pub async fn json_lines(
        &self,
        method: &str,
        path: &str,
        headers: &[(&'static str, String)],
    ) -> Result<impl futures_util::Stream<Item = Result<Value, String>> + use<>, String> {
        self.json_lines_after(Self::request(method, path, None)?, headers)
            .await
    }

    /// POSTs `body` (`build`'s context, of `content_type`) and streams the answer's JSON
    /// lines as [`Client::json_lines`] does.
    pub async fn upload_json_lines(
        &self,
        path: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<impl futures_util::Stream<Item = Result<Value, String>> + use<>, String> {
        self.json_lines_after(Self::raw_request("POST", path, body, content_type)?, &[])
            .await
    }

    async fn json_lines_after(
        &self,
        mut request: Request<Full<Bytes>>,
        headers: &[(&'static str, String)],
    ) -> Result<impl futures_util::Stream<Item = Result<Value, String>> + use<>, String> {
        let mut sender = self.connect().await?;
        for (name, value) in headers {
            let value = value
                .parse()
                .map_err(|_| format!("invalid {name} header"))?;
            request.headers_mut().insert(*name, value);
        }
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        if response.status().as_u16() >= 400 {
            return Err(read_answer(response).await?.ok().err().unwrap_or_default());
        }
        let state = (response.into_body(), Vec::<u8>::new());
        Ok(futures_util::stream::unfold(
            state,
            |(mut body, mut pending)| async move {
                loop {
                    if let Some(end) = pending.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=end).collect();
                        if line.iter().all(u8::is_ascii_whitespace) {
                            continue;
                        }
                        let value = serde_json::from_slice(&line).map_err(|e| e.to_string());
                        return Some((value, (body, pending)));
                    }
                    match body.frame().await {
                        Some(Ok(frame)) => {
                            if let Some(data) = frame.data_ref() {
                                pending.extend_from_slice(data);
                            }
                        }
                        Some(Err(error)) => {
                            return Some((Err(error.to_string()), (body, Vec::new())));
                        }
                        None => return None,
                    }
                }
            },
        ))
    }

    /// GETs `path` and hands over its body as bytes to read while they come (`logs
    /// --follow`); an error status is the daemon's message.
    pub async fn stream(
        &self,
        path: &str,
    ) -> Result<impl tokio::io::AsyncRead + Unpin + use<>, String> {
        let mut sender = self.connect().await?;
        let response = sender
            .send_request(Self::request("GET", path, None)?)
            .await
            .map_err(|e| e.to_string())?;
        if response.status().as_u16() >= 400 {
            return Err(read_answer(response).await?.ok().err().unwrap_or_default());
        }
        let data = response
            .into_body()
            .into_data_stream()
            .map_err(std::io::Error::other);
        Ok(tokio_util::io::StreamReader::new(data))
    }

    /// Sends a request whose answer comes later (`wait`): returns once the headers are
    /// in, with a future of the body.
    pub async fn call_later(
        &self,
        method: &str,
        path: &str,
    ) -> Result<impl Future<Output = Result<Answer, String>> + use<>, String> {
        let mut sender = self.connect().await?;
        let response = sender
            .send_request(Self::request(method, path, None)?)
            .await
            .map_err(|e| e.to_string())?;
        Ok(read_answer(response))
    }

    /// Opens a hijacked stream (`attach`): the raw connection after the upgrade.
    pub async fn hijack(&self, path: &str) -> Result<TokioIo<hyper::upgrade::Upgraded>, String> {
        let mut sender = self.connect().await?;
        let mut request = Self::request("POST", path, None)?;
        request
            .headers_mut()
            .insert("Connection", "Upgrade".parse().map_err(|_| "header")?);
        request
            .headers_mut()
            .insert("Upgrade", "tcp".parse().map_err(|_| "header")?);
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        if response.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
            return read_answer(response)
                .await?
                .ok()
                .and(Err("the daemon did not upgrade the connection".into()));
        }
        let upgraded = hyper::upgrade::on(response)
            .await
            .map_err(|e| e.to_string())?;
        Ok(TokioIo::new(upgraded))
    }
}
