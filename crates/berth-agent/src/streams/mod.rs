//! The streams kubectl opens to a pod through the API server, served on the agent's
//! HTTPS API as the kubelet serves them: `exec` (and so `cp`, an exec of tar),
//! `attach` and `port-forward`. The API server checks who asks and splices the
//! upgraded connection through; the protocol is spoken here, over SPDY/3.1 for older
//! clients and WebSocket for newer ones ([`upgrade`] negotiates which).

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::extract::Request;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use berth_engine::Engine;
use hyper_util::rt::TokioIo;

mod channels;
mod portforward;
mod remotecommand;
mod spdy;

/// The stream endpoints, at the kubelet's paths.
pub(crate) fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route(
            "/exec/{namespace}/{pod}/{container}",
            any(remotecommand::exec),
        )
        .route(
            "/attach/{namespace}/{pod}/{container}",
            any(remotecommand::attach),
        )
        .route("/portForward/{namespace}/{pod}", any(portforward::serve))
}

/// An upgraded connection.
pub(crate) enum Transport {
    /// A SPDY/3.1 connection.
    Spdy(TokioIo<hyper::upgrade::Upgraded>),
    /// A WebSocket, with one of the subprotocols asked for.
    WebSocket(Box<WebSocket>),
}

/// Answers a request to upgrade to SPDY (with one of the `spdy` protocols in
/// `X-Stream-Protocol-Version`) or to a WebSocket (with one of the `websocket`
/// subprotocols), each list best first; `run` gets the connection once upgraded.
pub(crate) async fn upgrade<F, Fut>(
    request: Request,
    (spdy, websocket): (&[&str], &[&str]),
    run: F,
) -> Response
where
    F: FnOnce(Transport) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let asked = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if asked == "websocket" {
        let offered = offered(request.headers(), header::SEC_WEBSOCKET_PROTOCOL.as_str());
        let Some(protocol) = choose(websocket, &offered) else {
            return unnegotiable(&offered, websocket);
        };
        let (mut parts, _) = request.into_parts();
        let socket = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(socket) => socket,
            Err(rejection) => return rejection.into_response(),
        };
        return socket
            .protocols([protocol])
            .on_upgrade(move |socket| run(Transport::WebSocket(Box::new(socket))));
    }
    if asked.starts_with("spdy/3.1") {
        let offered = offered(request.headers(), "x-stream-protocol-version");
        let Some(protocol) = choose(spdy, &offered) else {
            return unnegotiable(&offered, spdy);
        };
        let mut request = request;
        let upgraded = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            match upgraded.await {
                Ok(io) => run(Transport::Spdy(TokioIo::new(io))).await,
                Err(error) => tracing::debug!(%error, "a stream upgrade failed"),
            }
        });
        return Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, "SPDY/3.1")
            .header("X-Stream-Protocol-Version", protocol)
            .body(Body::empty())
            .unwrap_or_default();
    }
    refuse(
        StatusCode::BAD_REQUEST,
        "Upgrade request required: SPDY/3.1 or websocket".into(),
    )
}

/// The protocols a client offers in `name` (repeated, or comma separated).
fn offered(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// The best of `ours` the client offers.
fn choose(ours: &[&str], offered: &[String]) -> Option<String> {
    ours.iter()
        .find(|p| offered.iter().any(|o| o == *p))
        .map(|p| p.to_string())
}

/// The kubelet's refusal when no protocol is common.
fn unnegotiable(offered: &[String], ours: &[&str]) -> Response {
    refuse(
        StatusCode::FORBIDDEN,
        format!(
            "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports {ours:?}"
        ),
    )
}

/// A refusal before any upgrade, its message as the body (the API server passes it on).
pub(crate) fn refuse(status: StatusCode, message: String) -> Response {
    (status, message).into_response()
}
